//! Label selectors as kubectl's `-l` takes them (`k8s.io/apimachinery/pkg/labels`):
//! `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by commas.

use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// The key has one of the values.
    In(String, Vec<String>),
    /// The key is absent or has none of the values.
    NotIn(String, Vec<String>),
    /// The key is present.
    Exists(String),
    /// The key is absent.
    DoesNotExist(String),
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector(pub Vec<Requirement>);

fn key(k: &str) -> Result<String, String> {
    let k = k.trim();
    let problems = crate::names::qualified_name(k);
    match problems.first() {
        None => Ok(k.to_string()),
        Some(p) => Err(format!(
            "unable to parse requirement: invalid label key {k:?}: {p}"
        )),
    }
}

fn value(v: &str) -> Result<String, String> {
    let v = v.trim();
    match crate::names::label_value(v).first() {
        None => Ok(v.to_string()),
        Some(p) => Err(format!(
            "unable to parse requirement: invalid label value: {v:?}: {p}"
        )),
    }
}

/// Splits at commas outside parentheses.
fn parts(s: &str) -> Result<Vec<&str>, String> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!(
                "unable to parse selector {s:?}: unbalanced parentheses"
            ));
        }
    }
    if depth != 0 {
        return Err(format!(
            "unable to parse selector {s:?}: unbalanced parentheses"
        ));
    }
    out.push(&s[start..]);
    Ok(out)
}

fn set(rest: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!(
                "unable to parse requirement: expected a set of values in parentheses, found {:?}",
                rest.trim()
            )
        })?;
    inner.split(',').map(value).collect()
}

/// Parses a selector; an empty one selects everything.
pub fn parse(s: &str) -> Result<Selector, String> {
    let mut reqs = Vec::new();
    if s.trim().is_empty() {
        return Ok(Selector(reqs));
    }
    for part in parts(s)? {
        let p = part.trim();
        if p.is_empty() {
            return Err(format!("unable to parse selector {s:?}: empty requirement"));
        }
        if let Some(k) = p.strip_prefix('!') {
            reqs.push(Requirement::DoesNotExist(key(k)?));
        } else if let Some((k, v)) = p.split_once("!=") {
            reqs.push(Requirement::NotIn(key(k)?, vec![value(v)?]));
        } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            reqs.push(Requirement::In(key(k)?, vec![value(v)?]));
        } else if let Some((k, rest)) = p.split_once(" notin ") {
            reqs.push(Requirement::NotIn(key(k)?, set(rest)?));
        } else if let Some((k, rest)) = p.split_once(" in ") {
            reqs.push(Requirement::In(key(k)?, set(rest)?));
        } else {
            reqs.push(Requirement::Exists(key(p)?));
        }
    }
    Ok(Selector(reqs))
}

impl Selector {
    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.0.iter().all(|r| match r {
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms_and_matching() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let db = labels(&[("app", "db")]);
        let m = |s: &str, l: &BTreeMap<String, String>| parse(s).unwrap().matches(Some(l));
        assert!(m("app=web", &web) && !m("app=web", &db));
        assert!(m("app==web,tier", &web) && !m("app==web,tier", &db));
        assert!(m("app!=web", &db) && !m("app!=web", &web));
        assert!(m("app in (web, db)", &db) && m("app notin (web)", &db));
        assert!(m("!tier", &db) && !m("!tier", &web));
        assert!(m("", &db));
        assert!(!parse("app=web").unwrap().matches(None));
        assert!(parse("app in (web").unwrap_err().contains("unbalanced"));
        assert!(
            parse("bad key=x")
                .unwrap_err()
                .contains("invalid label key")
        );
        assert!(
            parse("app=bad value!")
                .unwrap_err()
                .contains("invalid label value")
        );
    }
}
