//! Kubernetes' `$(VAR)` expansion (`third_party/forked/golang/expansion`), used for `env`
//! values, `command` and `args`.
//!
//! `$(NAME)` becomes the value of NAME when NAME is defined, and stays as written when it is
//! not; `$$` escapes a `$`; any other `$` is kept.

/// Expands `input` with `lookup`.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut start = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push_str(&input[start..i]);
                    out.push('$');
                    i += 2;
                    start = i;
                    continue;
                }
                b'(' => {
                    if let Some(len) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + len];
                        out.push_str(&input[start..i]);
                        match lookup(name).filter(|_| !name.is_empty()) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + len]),
                        }
                        i += 3 + len;
                        start = i;
                        continue;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push_str(&input[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn kubernetes_cases() {
        assert_eq!(expand("$(A)", env), "alpha");
        assert_eq!(expand("x-$(A)-y", env), "x-alpha-y");
        assert_eq!(expand("$(MISSING)", env), "$(MISSING)");
        assert_eq!(expand("$$(A)", env), "$(A)");
        assert_eq!(expand("$$$(A)", env), "$alpha");
        assert_eq!(expand("$(A", env), "$(A");
        assert_eq!(expand("$A $", env), "$A $");
        assert_eq!(expand("$(EMPTY)!", env), "!");
        assert_eq!(expand("$()", env), "$()");
    }
}
