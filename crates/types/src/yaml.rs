//! YAML as `kubectl` reads it. Plain scalars are resolved with YAML 1.1's rules as go-yaml v2
//! applies them (`0400` is octal, `0x1F` hex, `1_000` an integer, `yes`/`on`/`y` are true,
//! `no`/`off`/`n` false, `~` null), and the result is made JSON as `sigs.k8s.io/yaml` makes
//! it: keys that are not strings become strings, integral floats become integers. Quoted and
//! block scalars are always strings. Double-quoted scalars accept the `\'` escape go-yaml
//! accepts. Anchors, aliases and `<<` merge keys work; a key given twice is an error.

use std::collections::HashMap;

use libyaml_safer::{Error as YamlError, EventData, Mark, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

/// Every document of `text` as JSON, empty documents as `null`. The error names the line.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut text = std::borrow::Cow::Borrowed(text);
    loop {
        match parse(&text) {
            Ok(docs) => return Ok(docs),
            Err(Failure::Syntax(e)) => match single_quote_escape(&text, &e) {
                Some(fixed) => text = std::borrow::Cow::Owned(fixed),
                None => return Err(syntax_message(&e)),
            },
            Err(Failure::Content(e)) => return Err(e),
        }
    }
}

fn syntax_message(e: &YamlError) -> String {
    let mut out = e.problem().to_string();
    if let Some(m) = e.problem_mark() {
        out.push_str(&format!(" at {}", at(m)));
    }
    if let (Some(ctx), Some(m)) = (e.context(), e.context_mark()) {
        out.push_str(&format!(" ({ctx} at {})", at(m)));
    }
    out
}

fn at(m: Mark) -> String {
    format!("line {} column {}", m.line + 1, m.column + 1)
}

enum Failure {
    Syntax(YamlError),
    Content(String),
}

/// go-yaml accepts `\'` in a double-quoted scalar, YAML itself does not: the scalar that
/// failed gets it rewritten as `\x27`, the same character.
fn single_quote_escape(text: &str, e: &YamlError) -> Option<String> {
    if e.problem() != "found unknown escape character" {
        return None;
    }
    let m = e.context_mark()?;
    let line_start: usize = text
        .split_inclusive('\n')
        .take(m.line as usize)
        .map(str::len)
        .sum();
    let start = line_start + text[line_start..].char_indices().nth(m.column as usize)?.0;
    if !text[start..].starts_with('"') {
        return None;
    }
    let mut chars = text[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return None,
            '\\' => match chars.next() {
                Some((_, '\'')) => {
                    let at = start + 1 + i;
                    return Some(format!("{}\\x27{}", &text[..at], &text[at + 2..]));
                }
                Some(_) => {}
                None => return None,
            },
            _ => {}
        }
    }
    None
}

enum Frame {
    Seq {
        anchor: Option<String>,
        items: Vec<Value>,
    },
    Map {
        anchor: Option<String>,
        entries: Map<String, Value>,
        key: Option<Key>,
        merges: Vec<(Value, Mark)>,
    },
}

enum Key {
    Name(String, Mark),
    Merge(Mark),
}

fn parse(text: &str) -> Result<Vec<Value>, Failure> {
    let mut input = text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<String, Value> = HashMap::new();
    let mut doc: Option<Value> = None;
    loop {
        let event = parser.parse().map_err(Failure::Syntax)?;
        let mark = event.start_mark;
        let (node, anchor, is_merge_key) = match event.data {
            EventData::StreamEnd => break,
            EventData::DocumentStart { .. } => {
                doc = None;
                anchors.clear();
                continue;
            }
            EventData::DocumentEnd { .. } => {
                docs.push(doc.take().unwrap_or(Value::Null));
                continue;
            }
            EventData::SequenceStart { anchor, .. } => {
                stack.push(Frame::Seq {
                    anchor,
                    items: Vec::new(),
                });
                continue;
            }
            EventData::MappingStart { anchor, .. } => {
                stack.push(Frame::Map {
                    anchor,
                    entries: Map::new(),
                    key: None,
                    merges: Vec::new(),
                });
                continue;
            }
            EventData::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { anchor, items }) => (Value::Array(items), anchor, false),
                _ => return Err(Failure::Content("unbalanced sequence".into())),
            },
            EventData::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    anchor,
                    mut entries,
                    merges,
                    ..
                }) => {
                    merge(&mut entries, merges)?;
                    (Value::Object(entries), anchor, false)
                }
                _ => return Err(Failure::Content("unbalanced mapping".into())),
            },
            EventData::Alias { anchor } => match anchors.get(&anchor) {
                Some(v) => (v.clone(), None, false),
                None => {
                    return Err(Failure::Content(format!(
                        "unknown anchor {anchor:?} referenced at {}",
                        at(mark)
                    )));
                }
            },
            EventData::Scalar {
                anchor,
                tag,
                value,
                style,
                ..
            } => {
                let merge_key = style == ScalarStyle::Plain && value == "<<" && tag.is_none();
                let v = scalar(&value, style, tag.as_deref())
                    .map_err(|e| Failure::Content(format!("{e} at {}", at(mark))))?;
                (v, anchor, merge_key)
            }
            EventData::StreamStart { .. } => continue,
        };
        if let Some(a) = anchor {
            anchors.insert(a, node.clone());
        }
        match stack.last_mut() {
            None => doc = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                merges,
                ..
            }) => match key.take() {
                None if is_merge_key => *key = Some(Key::Merge(mark)),
                None => *key = Some(Key::Name(key_string(&node, mark)?, mark)),
                Some(Key::Merge(at)) => merges.push((node, at)),
                Some(Key::Name(k, at)) => {
                    if entries.contains_key(&k) {
                        return Err(Failure::Content(format!(
                            "mapping key {k:?} already defined (line {})",
                            at.line + 1
                        )));
                    }
                    entries.insert(k, node);
                }
            },
        }
    }
    Ok(docs)
}

/// `<<` merges: keys given in the mapping itself win, then earlier merged mappings.
fn merge(entries: &mut Map<String, Value>, merges: Vec<(Value, Mark)>) -> Result<(), Failure> {
    for (value, at) in merges {
        let maps = match value {
            Value::Object(m) => vec![m],
            Value::Array(items) if items.iter().all(Value::is_object) => items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .collect(),
            _ => {
                return Err(Failure::Content(format!(
                    "map merge requires map or sequence of maps as the value (line {})",
                    at.line + 1
                )));
            }
        };
        for m in maps {
            for (k, v) in m {
                entries.entry(k).or_insert(v);
            }
        }
    }
    Ok(())
}

/// A key as JSON has it: strings as they are, numbers and booleans as their text.
fn key_string(v: &Value, at: Mark) -> Result<String, Failure> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(Failure::Content(format!(
            "unsupported map key {v} (line {})",
            at.line + 1
        ))),
    }
}

fn scalar(s: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    let core = tag.and_then(|t| t.strip_prefix("tag:yaml.org,2002:"));
    match core {
        Some("str") => return Ok(Value::String(s.to_string())),
        Some("null") => return Ok(Value::Null),
        Some(t @ ("int" | "float" | "bool")) => {
            let v = resolve(s)?;
            let fits = match t {
                "int" => v.is_i64() || v.is_u64(),
                "float" => v.is_number(),
                _ => v.is_boolean(),
            };
            return match fits {
                true => Ok(v),
                false => Err(format!("cannot decode {s:?} as a !!{t}")),
            };
        }
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(s.to_string()));
    }
    resolve(s)
}

/// go-yaml v2's resolution of a plain scalar.
pub fn resolve(s: &str) -> Result<Value, String> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Value::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Value::Bool(false));
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => {
            return Err(format!("{s} cannot be represented in JSON"));
        }
        _ => {}
    }
    let numeric = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '+' || c == '-' || c == '.');
    if !numeric {
        return Ok(Value::String(s.to_string()));
    }
    let plain = s.replace('_', "");
    if let Some(n) = parse_int(&plain) {
        return Ok(n);
    }
    if is_yaml_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return Ok(float(f));
    }
    Ok(Value::String(s.to_string()))
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: an optional sign, then `0x`, `0o`,
/// `0b` or a leading `0` (octal) choose the base.
fn parse_int(s: &str) -> Option<Value> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (digits, radix) = if let Some(d) = lower.strip_prefix("0x") {
        (d, 16)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d, 2)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d, 8)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if negative {
        let v = i64::try_from(magnitude)
            .ok()
            .map(|m| -m)
            .or_else(|| (magnitude == 1u128 << 63).then_some(i64::MIN))?;
        Some(Value::from(v))
    } else if let Ok(v) = i64::try_from(magnitude) {
        Some(Value::from(v))
    } else {
        u64::try_from(magnitude).ok().map(Value::from)
    }
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// A float as Go's `encoding/json` writes it and reads it back: integral values within
/// the range it prints without an exponent are integers.
fn float(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f.abs() < 9.2e18 {
            return Value::from(f as i64);
        }
        if f > 0.0 && f < 1.8e19 {
            return Value::from(f as u64);
        }
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
#[path = "yaml_tests.rs"]
mod tests;
