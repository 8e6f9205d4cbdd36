//! The CRI container log format: one record per line,
//! `<RFC 3339 nano time> <stdout|stderr> <F|P> <text>`, where `P` marks a partial line (a
//! line longer than [`MAX_LINE`] is split into several records) and `F` a full one.

/// The longest line written as one record.
pub const MAX_LINE: usize = 16 * 1024;

/// One parsed log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// Timestamp as written.
    pub time: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// Whether the line continues in the next record.
    pub partial: bool,
    /// The text, without the newline.
    pub text: &'a str,
}

/// Parses one record; `None` for a malformed line.
pub fn parse(line: &str) -> Option<LogLine<'_>> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?;
    let stream = it.next()?;
    let tag = it.next()?;
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let text = it.next().unwrap_or("");
    Some(LogLine {
        time,
        stream,
        partial: tag.starts_with('P'),
        text,
    })
}

/// Splits a line into records of at most [`MAX_LINE`] bytes, each with its tag: all
/// partial but the last.
pub fn split_long(line: &[u8]) -> Vec<(&[u8], char)> {
    if line.len() <= MAX_LINE {
        return vec![(line, 'F')];
    }
    let chunks: Vec<&[u8]> = line.chunks(MAX_LINE).collect();
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, if i == last { 'F' } else { 'P' }))
        .collect()
}

/// The text of a whole log, partial records joined, one line per full record.
pub fn text_of(log: &str) -> String {
    let mut text = String::new();
    for l in log.lines().filter_map(parse) {
        text.push_str(l.text);
        if !l.partial {
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let l = parse("2026-01-01T00:00:00.000000001Z stderr P half a line").unwrap();
        assert_eq!(
            (l.stream, l.partial, l.text),
            ("stderr", true, "half a line")
        );
        let l = parse("2026-01-01T00:00:00Z stdout F ").unwrap();
        assert_eq!(l.text, "");
        assert!(parse("garbage").is_none());
        assert!(parse("t other F x").is_none());
    }

    #[test]
    fn long_lines_split_into_partial_records() {
        let tags: String = split_long(&[b'x'; MAX_LINE + 1])
            .iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(tags, "PF");
        assert_eq!(split_long(b"short"), vec![(&b"short"[..], 'F')]);
        let exact = split_long(&[b'y'; MAX_LINE * 2]);
        assert_eq!(exact.len(), 2);
        assert_eq!(exact[1].1, 'F');
    }

    #[test]
    fn joins_partial_records() {
        let log = "t stdout P hel\nt stdout F lo\nt stderr F oops\n";
        assert_eq!(text_of(log), "hello\noops\n");
    }
}
