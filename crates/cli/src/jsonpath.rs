//! The part of kubectl's JSONPath templates that field lookups need: text with `{...}`
//! expressions of `.field`, `['field']` and `[index]` steps (`{.status.phase}`,
//! `{.metadata.labels['app']}`, `{.items[0].metadata.name}`). Other forms (`[*]`,
//! filters, `range`) are refused with a clear message.

use anyhow::{Result, bail};
use serde_json::Value;

enum Step {
    Field(String),
    Index(usize),
}

fn steps(expr: &str) -> Result<Vec<Step>> {
    let e = expr.trim();
    let e = e.strip_prefix('$').unwrap_or(e);
    let mut out = Vec::new();
    let mut rest = e;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                bail!("unsupported JSONPath {expr:?}: an empty field name");
            }
            out.push(Step::Field(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(close) = r.find(']') else {
                bail!("unsupported JSONPath {expr:?}: unclosed [");
            };
            let inner = r[..close].trim();
            if let Some(q) = inner
                .strip_prefix('\'')
                .and_then(|q| q.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|q| q.strip_suffix('"')))
            {
                out.push(Step::Field(q.to_string()));
            } else if let Ok(i) = inner.parse::<usize>() {
                out.push(Step::Index(i));
            } else {
                bail!("unsupported JSONPath {expr:?}: peapod takes .field, ['field'] and [index]");
            }
            rest = &r[close + 1..];
        } else {
            bail!("unsupported JSONPath {expr:?}: peapod takes .field, ['field'] and [index]");
        }
    }
    Ok(out)
}

/// The value at `expr` (one `{...}` body) in `v`, if any.
pub fn lookup<'a>(v: &'a Value, expr: &str) -> Result<Option<&'a Value>> {
    let mut cur = v;
    for s in steps(expr)? {
        let next = match s {
            Step::Field(f) => cur.get(&f),
            Step::Index(i) => cur.get(i),
        };
        match next {
            Some(n) => cur = n,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// A value as a template prints it: strings bare, others as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders a template: text, with each `{...}` replaced by the value it names.
pub fn render(template: &str, v: &Value) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            bail!("unclosed {{ in JSONPath template {template:?}");
        };
        let expr = &rest[open + 1..open + close];
        match lookup(v, expr)? {
            Some(x) => out.push_str(&text(x)),
            None => bail!("error executing jsonpath {template:?}: {expr} is not found"),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
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
        assert!(
            render("{.spec.nodeName}", &v)
                .unwrap_err()
                .to_string()
                .contains("is not found")
        );
        assert!(
            render("{.items[*].name}", &v)
                .unwrap_err()
                .to_string()
                .contains("unsupported")
        );
    }
}
