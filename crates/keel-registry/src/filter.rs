//! The registry's search filters, as MLflow accepts them:
//! `name = 'churn'`, `name LIKE 'churn%'`, `name ILIKE '%CHURN%'`,
//! `run_id = '…'`, `run_id IN ('a', 'b')`, `source_path = '…'`,
//! `tags.team = 'risk'`, joined by `AND`.

/// One comparison of a filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// `name`, `run_id`, `source_path`, `version_number`, or `tags.KEY`.
    pub key: String,
    /// `=`, `!=`, `LIKE`, `ILIKE`, `IN`.
    pub op: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid filter '{filter}': {message}")]
pub struct FilterError {
    pub filter: String,
    pub message: String,
}

/// Parses a filter; `allowed` lists the attribute keys (tags are always
/// allowed).
pub fn parse_filter(filter: &str, allowed: &[&str]) -> Result<Vec<Condition>, FilterError> {
    let err = |message: String| FilterError {
        filter: filter.to_owned(),
        message,
    };
    let mut out = Vec::new();
    for term in split_and(filter) {
        let term = term.trim();
        if term.is_empty() {
            return Err(err("an empty term around AND".into()));
        }
        let (key, rest) =
            take_identifier(term).ok_or_else(|| err(format!("expected a key at '{term}'")))?;
        let rest = rest.trim_start();
        let upper = rest.to_ascii_uppercase();
        let (op, rest) = if let Some(r) = rest.strip_prefix("!=") {
            ("!=", r)
        } else if let Some(r) = rest.strip_prefix('=') {
            ("=", r)
        } else if upper.starts_with("ILIKE") {
            ("ILIKE", &rest[5..])
        } else if upper.starts_with("LIKE") {
            ("LIKE", &rest[4..])
        } else if upper.starts_with("IN") {
            ("IN", &rest[2..])
        } else {
            return Err(err(format!(
                "expected =, !=, LIKE, ILIKE or IN after '{key}'"
            )));
        };
        let base = key.strip_prefix("tags.").unwrap_or("");
        if base.is_empty() && !allowed.contains(&key.as_str()) {
            return Err(err(format!(
                "invalid attribute key '{key}'; use one of {} or tags.<key>",
                allowed.join(", ")
            )));
        }
        let rest = rest.trim();
        let values = if op == "IN" {
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| err("IN needs a parenthesised list of quoted strings".into()))?;
            inner
                .split(',')
                .map(|v| {
                    unquote(v.trim())
                        .ok_or_else(|| err(format!("'{}' is not a quoted string", v.trim())))
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![unquote(rest).ok_or_else(|| err(format!("'{rest}' is not a quoted string")))?]
        };
        out.push(Condition {
            key,
            op: op.to_owned(),
            values,
        });
    }
    Ok(out)
}

fn split_and(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                cur.push(c);
            }
            None => {
                let rest: String = chars[i..].iter().take(5).collect();
                let before_ok = i == 0 || chars[i - 1].is_whitespace();
                if before_ok && rest.len() >= 4 && rest[..4].eq_ignore_ascii_case("and ") {
                    parts.push(std::mem::take(&mut cur));
                    i += 4;
                    continue;
                }
                cur.push(c);
            }
        }
        i += 1;
    }
    if !s.trim().is_empty() {
        parts.push(cur);
    }
    parts
}

fn take_identifier(s: &str) -> Option<(String, &str)> {
    // MLflow accepts `tags.k` and `tag.k`, the key optionally in backticks.
    if let Some(rest) = s.strip_prefix("tags.").or_else(|| s.strip_prefix("tag.")) {
        if let Some(r) = rest.strip_prefix('`') {
            let end = r.find('`')?;
            return Some((format!("tags.{}", &r[..end]), &r[end + 1..]));
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || "_-./".contains(c)))
            .unwrap_or(rest.len());
        return (end > 0).then(|| (format!("tags.{}", &rest[..end]), &rest[end..]));
    }
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| (s[..end].to_owned(), &s[end..]))
}

fn unquote(s: &str) -> Option<String> {
    let q = s.chars().next()?;
    if (q == '\'' || q == '"') && s.len() >= 2 && s.ends_with(q) {
        Some(s[1..s.len() - 1].to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mlflow_filters() {
        let c = parse_filter(
            "name LIKE 'churn%' AND tags.team = 'risk and ops'",
            &["name"],
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].key.as_str(), c[0].op.as_str(), c[0].values[0].as_str()),
            ("name", "LIKE", "churn%")
        );
        assert_eq!(c[1].values[0], "risk and ops");
        let c = parse_filter("run_id IN ('a', 'b')", &["run_id"]).unwrap();
        assert_eq!(c[0].values, ["a", "b"]);
        assert!(parse_filter("", &["name"]).unwrap().is_empty());
        assert!(parse_filter("owner = 'x'", &["name"]).is_err());
        assert!(parse_filter("name = x", &["name"]).is_err());
    }
}
