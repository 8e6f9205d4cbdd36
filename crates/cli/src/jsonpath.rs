//! kubectl's JSONPath templates (`k8s.io/client-go/util/jsonpath`), the parts people use:
//! text with `{...}` expressions of `.field`, `['field']`, `[index]` (negative counts from
//! the end) and `[*]` steps, `{range EXPR}...{end}` loops, and string literals such as
//! `{"\n"}`. Several results of one expression print separated by spaces; a missing field
//! prints nothing, as with kubectl's default `--allow-missing-template-keys`. Filters and
//! slices are refused with a clear message.

use anyhow::{Result, bail};
use serde_json::Value;

enum Step {
    Field(String),
    Index(i64),
    All,
}

fn steps(expr: &str) -> Result<Vec<Step>> {
    let e = expr.trim();
    let e = e.strip_prefix('$').unwrap_or(e);
    let unsupported = || {
        anyhow::anyhow!(
            "unsupported JSONPath {expr:?}: peapod takes .field, ['field'], [index] and [*]"
        )
    };
    let mut out = Vec::new();
    let mut rest = e;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            match &r[..end] {
                "" => bail!("unsupported JSONPath {expr:?}: an empty field name"),
                "*" => out.push(Step::All),
                f => out.push(Step::Field(f.to_string())),
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r
                .find(']')
                .ok_or_else(|| anyhow::anyhow!("unclosed [ in {expr:?}"))?;
            let inner = r[..close].trim();
            if let Some(q) = inner
                .strip_prefix('\'')
                .and_then(|q| q.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|q| q.strip_suffix('"')))
            {
                out.push(Step::Field(q.to_string()));
            } else if inner == "*" {
                out.push(Step::All);
            } else if let Ok(i) = inner.parse::<i64>() {
                out.push(Step::Index(i));
            } else {
                return Err(unsupported());
            }
            rest = &r[close + 1..];
        } else {
            return Err(unsupported());
        }
    }
    Ok(out)
}

/// Every value `expr` (one `{...}` body) reaches in `v`, in order.
pub fn lookup_all<'a>(v: &'a Value, expr: &str) -> Result<Vec<&'a Value>> {
    let mut cur = vec![v];
    for s in steps(expr)? {
        let mut next = Vec::new();
        for c in cur {
            match &s {
                Step::Field(f) => next.extend(c.get(f)),
                Step::Index(i) => {
                    let len = c.as_array().map_or(0, |a| a.len()) as i64;
                    let i = if *i < 0 { len + i } else { *i };
                    if i >= 0 {
                        next.extend(c.get(i as usize));
                    }
                }
                Step::All => match c {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
            }
        }
        cur = next;
    }
    Ok(cur)
}

/// The first value at `expr` in `v`, if any.
pub fn lookup<'a>(v: &'a Value, expr: &str) -> Result<Option<&'a Value>> {
    Ok(lookup_all(v, expr)?.into_iter().next())
}

/// A value as a template prints it: strings bare, others as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

enum Node {
    Text(String),
    Expr(String),
    Range(String, Vec<Node>),
}

/// Parses a template into nodes, up to `{end}` when inside a range.
fn parse<'a>(template: &str, mut rest: &'a str, inner: bool) -> Result<(Vec<Node>, &'a str)> {
    let mut out = Vec::new();
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Node::Text(rest[..open].to_string()));
        }
        let body_start = &rest[open + 1..];
        // A string literal may hold braces; find the closing one after it.
        let t = body_start.trim_start();
        let close = if let Some(q) = t.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let skip = body_start.len() - t.len();
            let end = t[1..].find(q).ok_or_else(|| {
                anyhow::anyhow!("unterminated string in JSONPath template {template:?}")
            })?;
            let after = skip + 1 + end + 1;
            after
                + body_start[after..].find('}').ok_or_else(|| {
                    anyhow::anyhow!("unclosed {{ in JSONPath template {template:?}")
                })?
        } else {
            body_start
                .find('}')
                .ok_or_else(|| anyhow::anyhow!("unclosed {{ in JSONPath template {template:?}"))?
        };
        let body = body_start[..close].trim();
        rest = &body_start[close + 1..];
        if body == "end" {
            if !inner {
                bail!("{{end}} without {{range}} in JSONPath template {template:?}");
            }
            return Ok((out, rest));
        }
        if let Some(expr) = body.strip_prefix("range ") {
            let (nodes, after) = parse(template, rest, true)?;
            out.push(Node::Range(expr.trim().to_string(), nodes));
            rest = after;
        } else if let Some(q) = body
            .strip_prefix('"')
            .and_then(|b| b.strip_suffix('"'))
            .or_else(|| body.strip_prefix('\'').and_then(|b| b.strip_suffix('\'')))
        {
            out.push(Node::Text(
                q.replace("\\n", "\n")
                    .replace("\\t", "\t")
                    .replace("\\r", "\r"),
            ));
        } else {
            out.push(Node::Expr(body.to_string()));
        }
    }
    if inner {
        bail!("{{range}} without {{end}} in JSONPath template {template:?}");
    }
    if !rest.is_empty() {
        out.push(Node::Text(rest.to_string()));
    }
    Ok((out, ""))
}

fn eval(nodes: &[Node], v: &Value, out: &mut String) -> Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Expr(e) => {
                let all: Vec<String> = lookup_all(v, e)?.into_iter().map(text).collect();
                out.push_str(&all.join(" "));
            }
            Node::Range(e, body) => {
                for item in lookup_all(v, e)? {
                    eval(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

/// Renders a template against `v`.
pub fn render(template: &str, v: &Value) -> Result<String> {
    let (nodes, _) = parse(template, template, false)?;
    let mut out = String::new();
    eval(&nodes, v, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keys_and_indices() {
        let v = serde_json::json!({
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "x"}},
            "status": {"phase": "Running", "containerStatuses": [{"restartCount": 2}]}
        });
        assert_eq!(render("{.status.phase}", &v).unwrap(), "Running");
        assert_eq!(
            render(
                "{.metadata.name}:{.status.containerStatuses[0].restartCount}",
                &v
            )
            .unwrap(),
            "web:2"
        );
        assert_eq!(
            render("{.metadata.labels['app.kubernetes.io/name']}", &v).unwrap(),
            "x"
        );
        assert_eq!(
            render("[{.spec.nodeName}]", &v).unwrap(),
            "[]",
            "missing prints nothing"
        );
        assert!(
            render("{.items[?(@.a)]}", &v)
                .unwrap_err()
                .to_string()
                .contains("unsupported")
        );
    }

    #[test]
    fn wildcards_ranges_and_literals() {
        let v = serde_json::json!({"items": [
            {"metadata": {"name": "a"}, "spec": {"containers": [{"image": "x"}, {"image": "y"}]}},
            {"metadata": {"name": "b"}, "spec": {"containers": [{"image": "z"}]}}
        ]});
        assert_eq!(render("{.items[*].metadata.name}", &v).unwrap(), "a b");
        assert_eq!(render("{.items[-1].metadata.name}", &v).unwrap(), "b");
        assert_eq!(
            render(
                "{range .items[*]}{.metadata.name}{\"\\t\"}{.spec.containers[*].image}{\"\\n\"}{end}",
                &v
            )
            .unwrap(),
            "a\tx y\nb\tz\n"
        );
        assert_eq!(render("{'{}'}", &v).unwrap(), "{}");
        assert!(render("{range .items[*]}{.x}", &v).is_err());
        assert!(render("{end}", &v).is_err());
    }
}
