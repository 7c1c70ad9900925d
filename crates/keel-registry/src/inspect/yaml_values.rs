//! Reading the scalars and lists of the YAML files MLflow writes, with
//! errors that name the field.

use keel_core::yaml::{Node, Value};

/// A value of the wrong kind at `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub field: String,
    pub message: String,
}

pub(crate) fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// A scalar as text; `None` for null. Numbers keep the text they were
/// written with, so a version written `3.10` stays `3.10` rather than
/// becoming the float `3.1`.
pub(crate) fn text(node: &Node, src: &str, field: &str) -> Result<Option<String>, FieldError> {
    match &node.value {
        Value::Null => Ok(None),
        Value::Str(s) => Ok(Some(s.clone())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Int(i) => Ok(Some(
            written(node, src)
                .filter(|w| w.parse::<i64>().ok() == Some(*i))
                .map_or_else(|| i.to_string(), str::to_string),
        )),
        Value::Float(f) => Ok(Some(
            written(node, src)
                .filter(|w| w.parse::<f64>().ok() == Some(*f))
                .map_or_else(|| f.to_string(), str::to_string),
        )),
        Value::Seq(_) | Value::Map(_) => Err(field_error(
            field,
            format!("expected a single value, found {}", a(node.kind())),
        )),
    }
}

/// The text of a plain scalar as it appears in the source.
fn written<'s>(node: &Node, src: &'s str) -> Option<&'s str> {
    let rest = src.get(node.span.offset..)?;
    let end = rest.find(['\n', '\r', ',', ']', '}']).unwrap_or(rest.len());
    let line = &rest[..end];
    let line = line.split(" #").next().unwrap_or(line);
    Some(line.trim_end())
}

/// The value under `key` as text, if `node` is a mapping that has it.
pub(crate) fn text_at(
    node: &Node,
    key: &str,
    src: &str,
    field: &str,
) -> Result<Option<String>, FieldError> {
    match node.get(key) {
        Some(v) => text(v, src, &join(field, key)),
        None => Ok(None),
    }
}

/// A list of scalars; null or absent is empty.
pub(crate) fn text_list(
    node: Option<&Node>,
    src: &str,
    field: &str,
) -> Result<Vec<String>, FieldError> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    match &node.value {
        Value::Null => Ok(Vec::new()),
        Value::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{field}[{i}]");
                match text(item, src, &at)? {
                    Some(t) => out.push(t),
                    None => return Err(field_error(&at, "expected a value, found null")),
                }
            }
            Ok(out)
        }
        _ => Err(field_error(
            field,
            format!("expected a list, found {}", a(node.kind())),
        )),
    }
}

/// A mapping's entries, or an error when `node` is something else.
pub(crate) fn entries<'n>(node: &'n Node, field: &str) -> Result<&'n [(Node, Node)], FieldError> {
    match &node.value {
        Value::Map(entries) => Ok(entries),
        _ => Err(field_error(
            field,
            format!("expected a mapping, found {}", a(node.kind())),
        )),
    }
}

/// A YAML kind with its article: `a mapping`, `an integer`.
pub(crate) fn a(kind: &str) -> String {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {kind}")
    } else {
        format!("a {kind}")
    }
}

pub(crate) fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::yaml::parse;

    #[test]
    fn numbers_keep_their_written_text() {
        let src = "a: 3.10\nb: 3.11.9\nc: 12 # note\nd: [1.50, 2]\ne: !!float 1\nf: true\n";
        let doc = parse(src).unwrap();
        let get = |k: &str| text_at(&doc, k, src, "").unwrap();
        assert_eq!(get("a").as_deref(), Some("3.10"));
        assert_eq!(get("b").as_deref(), Some("3.11.9"));
        assert_eq!(get("c").as_deref(), Some("12"));
        assert_eq!(get("e").as_deref(), Some("1"));
        assert_eq!(get("f").as_deref(), Some("true"));
        assert_eq!(text_list(doc.get("d"), src, "d").unwrap(), ["1.50", "2"]);
        assert_eq!(get("missing"), None);
    }

    #[test]
    fn wrong_kinds_name_the_field() {
        let src = "a: {x: 1}\nb: [1, null]\nc: 1\n";
        let doc = parse(src).unwrap();
        let err = text_at(&doc, "a", src, "top").unwrap_err();
        assert_eq!(err.field, "top.a");
        assert_eq!(err.message, "expected a single value, found a mapping");
        assert_eq!(text_list(doc.get("b"), src, "b").unwrap_err().field, "b[1]");
        assert_eq!(
            text_list(doc.get("c"), src, "c").unwrap_err().message,
            "expected a list, found an integer"
        );
    }
}
