//! A small YAML reader that keeps source positions.
//!
//! [`parse`] reads exactly one YAML document into a [`Node`] tree in which
//! every node knows where it was written ([`Span`]: 1-based line and column,
//! byte offset), so that configuration checkers can point at the exact
//! place of a mistake. It is built on the event parser of `saphyr-parser`.
//!
//! Plain scalars are resolved with the YAML 1.2 core schema: `null`, `~` and
//! empty are [`Value::Null`]; `true`/`false` (also `True`, `TRUE`, …) are
//! [`Value::Bool`]; decimal, `0x` and `0o` integers are [`Value::Int`];
//! decimal floats and `.inf`/`.nan` are [`Value::Float`]; anything else is a
//! [`Value::Str`]. Quoted and block scalars are always strings. The core tags
//! (`!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq`, `!!map`) are
//! honoured; any other tag is an error, since nothing here would give it a
//! meaning.
//!
//! Aliases are resolved by cloning the anchored node, spans included, so a
//! problem inside an aliased value points at where it was written. A
//! duplicate key in a mapping is an error at the second key. To keep hostile
//! input cheap, nesting is limited to [`MAX_DEPTH`] levels and the tree,
//! aliases expanded, to [`MAX_NODES`] nodes.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};

/// Deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 128;

/// Most nodes a document may have once its aliases are expanded.
pub const MAX_NODES: usize = 1_000_000;

/// Where a node starts in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Byte offset into the source text.
    pub offset: usize,
}

impl Span {
    /// The very start of the source.
    pub const START: Span = Span {
        line: 1,
        column: 1,
        offset: 0,
    };
}

/// A YAML value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// A YAML value (core schema).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; keys are unique.
    Map(Vec<(Node, Node)>),
}

/// A document that is not valid YAML, or uses something this reader does
/// not support (several documents, unknown tags, …).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    pub message: String,
}

impl YamlError {
    fn at(span: Span, message: impl Into<String>) -> Self {
        YamlError {
            line: span.line,
            column: span.column,
            message: message.into(),
        }
    }
}

impl Node {
    /// The value converted to JSON. Mapping keys that are not strings are
    /// written as their YAML text (`1`, `true`, `null`) or, for collections,
    /// as their JSON text. Infinite and NaN floats become `null`, which JSON
    /// cannot express otherwise.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.key_text(), v.to_json());
                }
                serde_json::Value::Object(map)
            }
        }
    }

    /// The value under the string key `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// What kind of value this is, for messages: `null`, `boolean`,
    /// `integer`, `float`, `string`, `sequence` or `mapping`.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Seq(_) => "sequence",
            Value::Map(_) => "mapping",
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A key as JSON object key text.
    fn key_text(&self) -> String {
        match &self.value {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => float_text(*f),
            Value::Str(s) => s.clone(),
            Value::Seq(_) | Value::Map(_) => self.to_json().to_string(),
        }
    }

    /// Text that is equal for two keys exactly when their values are equal
    /// (spans aside); used to find duplicate keys.
    fn identity(&self) -> String {
        match &self.value {
            Value::Null => "n".to_string(),
            Value::Bool(b) => format!("b{b}"),
            Value::Int(i) => format!("i{i}"),
            Value::Float(f) => format!("f{}", f.to_bits()),
            Value::Str(s) => format!("s{}:{s}", s.len()),
            Value::Seq(items) => {
                let inner: Vec<String> = items.iter().map(Node::identity).collect();
                format!("[{}]", inner.join(","))
            }
            Value::Map(entries) => {
                let inner: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}:{}", k.identity(), v.identity()))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
        }
    }

    fn count(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(k, v)| k.count() + v.count()).sum(),
            _ => 0,
        }
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        ".nan".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { ".inf" } else { "-.inf" }.to_string()
    } else {
        format!("{f:?}")
    }
}

/// Reads exactly one YAML document. Empty input (or only comments) gives a
/// [`Value::Null`] node at line 1, column 1; a second document is an error.
pub fn parse(src: &str) -> Result<Node, YamlError> {
    Builder::new(src).run()
}

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        seen: HashSet<String>,
        key: Option<Node>,
    },
}

struct Builder<'s> {
    src: &'s str,
    /// Byte offset of each character, when the source is not ASCII.
    char_offsets: Option<Vec<usize>>,
    stack: Vec<Frame>,
    /// Anchored nodes with their sizes in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    root: Option<Node>,
}

impl<'s> Builder<'s> {
    fn new(src: &'s str) -> Self {
        let char_offsets = if src.is_ascii() {
            None
        } else {
            Some(src.char_indices().map(|(i, _)| i).collect())
        };
        Builder {
            src,
            char_offsets,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            root: None,
        }
    }

    fn span(&self, m: &Marker) -> Span {
        let offset = match &self.char_offsets {
            None => m.index().min(self.src.len()),
            Some(offsets) => offsets.get(m.index()).copied().unwrap_or(self.src.len()),
        };
        Span {
            line: m.line().max(1),
            column: m.col() + 1,
            offset,
        }
    }

    fn run(mut self) -> Result<Node, YamlError> {
        let mut documents = 0usize;
        for event in Parser::new_from_str(self.src) {
            let (event, span) = event.map_err(|e| {
                let at = self.span(e.marker());
                YamlError::at(at, e.info())
            })?;
            let at = self.span(&span.start);
            match event {
                Event::StreamEnd => break,
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(YamlError::at(
                            at,
                            "a second YAML document starts here; this file must hold exactly \
                             one document: remove the `---` separator and what follows, or \
                             put it in a file of its own",
                        ));
                    }
                }
                Event::Alias(id) => {
                    // Anchors are known once their node is complete, so an
                    // alias inside its own anchored node finds nothing.
                    let size = self.anchors.get(&id).map(|(_, size)| *size);
                    let Some(size) = size else {
                        return Err(YamlError::at(
                            at,
                            "alias refers to a node that contains it; a value cannot include itself",
                        ));
                    };
                    // Checked before cloning, so a huge expansion costs nothing.
                    self.add_nodes(size, at)?;
                    if let Some((node, _)) = self.anchors.get(&id) {
                        let node = node.clone();
                        self.push_value(node)?;
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    self.add_nodes(1, at)?;
                    let value = resolve_scalar(&text, style, tag.as_deref(), at)?;
                    let node = Node { value, span: at };
                    if anchor > 0 {
                        self.anchors.insert(anchor, (node.clone(), 1));
                    }
                    self.push_value(node)?;
                }
                Event::SequenceStart(anchor, tag) => {
                    check_collection_tag(tag.as_deref(), "seq", at)?;
                    self.open(at)?;
                    self.stack.push(Frame::Seq {
                        span: at,
                        anchor,
                        items: Vec::new(),
                    });
                }
                Event::MappingStart(anchor, tag) => {
                    check_collection_tag(tag.as_deref(), "map", at)?;
                    self.open(at)?;
                    self.stack.push(Frame::Map {
                        span: at,
                        anchor,
                        entries: Vec::new(),
                        seen: HashSet::new(),
                        key: None,
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let (node, anchor) = match self.stack.pop() {
                        Some(Frame::Seq {
                            span,
                            anchor,
                            items,
                        }) => (
                            Node {
                                value: Value::Seq(items),
                                span,
                            },
                            anchor,
                        ),
                        Some(Frame::Map {
                            span,
                            anchor,
                            entries,
                            ..
                        }) => (
                            Node {
                                value: Value::Map(entries),
                                span,
                            },
                            anchor,
                        ),
                        None => {
                            return Err(YamlError::at(at, "unbalanced end of a collection"));
                        }
                    };
                    if anchor > 0 {
                        let size = node.count();
                        self.anchors.insert(anchor, (node.clone(), size));
                    }
                    self.push_value(node)?;
                }
            }
        }
        Ok(self.root.unwrap_or(Node {
            value: Value::Null,
            span: Span::START,
        }))
    }

    fn open(&mut self, at: Span) -> Result<(), YamlError> {
        self.add_nodes(1, at)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError::at(
                at,
                format!("nesting deeper than {MAX_DEPTH} levels; flatten the document"),
            ));
        }
        Ok(())
    }

    fn add_nodes(&mut self, n: usize, at: Span) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(YamlError::at(
                at,
                format!(
                    "document has more than {MAX_NODES} values once aliases are expanded; \
                     make it smaller or use fewer aliases"
                ),
            ));
        }
        Ok(())
    }

    fn push_value(&mut self, node: Node) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, seen, key, ..
            }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => {
                    if !seen.insert(node.identity()) {
                        let shown = match &node.value {
                            Value::Str(s) => format!("`{s}`"),
                            _ => format!("`{}`", node.key_text()),
                        };
                        return Err(YamlError::at(
                            node.span,
                            format!(
                                "duplicate key {shown}: it is already set in this mapping; \
                                 remove one of the two or rename it"
                            ),
                        ));
                    }
                    *key = Some(node);
                }
            },
        }
        Ok(())
    }
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, at: Span) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
        Some(t) => Err(unsupported_tag(t, at)),
    }
}

fn unsupported_tag(tag: &Tag, at: Span) -> YamlError {
    let shown = if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else if tag.handle.is_empty() {
        format!("!<{}>", tag.suffix)
    } else {
        tag.to_string()
    };
    YamlError::at(
        at,
        format!(
            "unsupported tag `{shown}` here; only the core tags !!str, !!int, !!float, \
             !!bool, !!null (on scalars), !!seq and !!map are understood: remove it"
        ),
    )
}

fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    at: Span,
) -> Result<Value, YamlError> {
    let Some(tag) = tag else {
        return Ok(if style == ScalarStyle::Plain {
            resolve_plain(text, at)?
        } else {
            Value::Str(text.to_string())
        });
    };
    // The non-specific tag `!` makes a plain scalar a string.
    if tag.handle.is_empty() && tag.suffix == "!" {
        return Ok(Value::Str(text.to_string()));
    }
    if !tag.is_yaml_core_schema() {
        return Err(unsupported_tag(tag, at));
    }
    let resolved = resolve_plain(text, at)?;
    let wrong = |what: &str| {
        YamlError::at(
            at,
            format!("`{text}` is not {what}, as its tag `!!{}` says", tag.suffix),
        )
    };
    match tag.suffix.as_str() {
        "str" => Ok(Value::Str(text.to_string())),
        "null" => match resolved {
            Value::Null => Ok(Value::Null),
            _ => Err(wrong("null")),
        },
        "bool" => match resolved {
            Value::Bool(b) => Ok(Value::Bool(b)),
            _ => Err(wrong("a boolean")),
        },
        "int" => match resolved {
            Value::Int(i) => Ok(Value::Int(i)),
            _ => Err(wrong("an integer")),
        },
        "float" => match resolved {
            Value::Float(f) => Ok(Value::Float(f)),
            Value::Int(i) => Ok(Value::Float(i as f64)),
            _ => Err(wrong("a float")),
        },
        _ => Err(unsupported_tag(tag, at)),
    }
}

/// Core schema resolution of a plain scalar.
fn resolve_plain(text: &str, at: Span) -> Result<Value, YamlError> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".nan" | ".NaN" | ".NAN" => return Ok(Value::Float(f64::NAN)),
        _ => {}
    }
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Ok(Value::Float(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }));
    }
    let too_big = || {
        YamlError::at(
            at,
            format!("integer `{text}` does not fit in 64 bits; quote it to keep it as text"),
        )
    };
    let radix_digits = |prefix: &str, radix: u32| {
        text.strip_prefix(prefix)
            .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_digit(radix)))
    };
    if let Some(digits) = radix_digits("0x", 16) {
        return i64::from_str_radix(digits, 16)
            .map(Value::Int)
            .map_err(|_| too_big());
    }
    if let Some(digits) = radix_digits("0o", 8) {
        return i64::from_str_radix(digits, 8)
            .map(Value::Int)
            .map_err(|_| too_big());
    }
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().map(Value::Int).map_err(|_| too_big());
    }
    if is_core_float(unsigned)
        && let Ok(f) = text.parse::<f64>()
    {
        return Ok(Value::Float(f));
    }
    Ok(Value::Str(text.to_string()))
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, sign already removed.
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i, i - start)
    };
    let (mut i, int_digits) = digits(0);
    if i < b.len() && b[i] == b'.' {
        let (next, frac_digits) = digits(i + 1);
        if int_digits == 0 && frac_digits == 0 {
            return false;
        }
        i = next;
    } else if int_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let (next, exp_digits) = digits(i);
        if exp_digits == 0 {
            return false;
        }
        i = next;
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(src: &str) -> Value {
        parse(src).unwrap().value
    }

    fn at(node: &Node) -> (usize, usize) {
        (node.span.line, node.span.column)
    }

    #[test]
    fn core_schema_plain_scalars() {
        assert_eq!(scalar(""), Value::Null);
        assert_eq!(scalar("# only a comment\n"), Value::Null);
        assert_eq!(scalar("~"), Value::Null);
        assert_eq!(scalar("null"), Value::Null);
        assert_eq!(scalar("NULL"), Value::Null);
        assert_eq!(scalar("true"), Value::Bool(true));
        assert_eq!(scalar("False"), Value::Bool(false));
        assert_eq!(scalar("yes"), Value::Str("yes".into()));
        assert_eq!(scalar("42"), Value::Int(42));
        assert_eq!(scalar("-17"), Value::Int(-17));
        assert_eq!(scalar("+3"), Value::Int(3));
        assert_eq!(scalar("0x1F"), Value::Int(31));
        assert_eq!(scalar("0o17"), Value::Int(15));
        assert_eq!(scalar("0x"), Value::Str("0x".into()));
        assert_eq!(scalar("1.5"), Value::Float(1.5));
        assert_eq!(scalar("-.5"), Value::Float(-0.5));
        assert_eq!(scalar("1e3"), Value::Float(1000.0));
        assert_eq!(scalar("2."), Value::Float(2.0));
        assert_eq!(scalar(".inf"), Value::Float(f64::INFINITY));
        assert_eq!(scalar("-.Inf"), Value::Float(f64::NEG_INFINITY));
        assert!(matches!(scalar(".nan"), Value::Float(f) if f.is_nan()));
        assert_eq!(scalar("inf"), Value::Str("inf".into()));
        assert_eq!(scalar("1e"), Value::Str("1e".into()));
        assert_eq!(scalar("."), Value::Str(".".into()));
        assert_eq!(scalar("10s"), Value::Str("10s".into()));
        assert_eq!(scalar("0 3 * * 1"), Value::Str("0 3 * * 1".into()));
    }

    #[test]
    fn quoted_and_block_scalars_are_strings() {
        assert_eq!(scalar("'true'"), Value::Str("true".into()));
        assert_eq!(scalar("\"42\""), Value::Str("42".into()));
        assert_eq!(scalar("''"), Value::Str("".into()));
        assert_eq!(scalar("|\n  12\n"), Value::Str("12\n".into()));
        assert_eq!(scalar(">-\n  a\n  b\n"), Value::Str("a b".into()));
    }

    #[test]
    fn core_tags() {
        assert_eq!(scalar("!!str 12"), Value::Str("12".into()));
        assert_eq!(scalar("!!float 3"), Value::Float(3.0));
        assert_eq!(scalar("! 12"), Value::Str("12".into()));
        assert_eq!(
            scalar("!!seq [1]"),
            Value::Seq(vec![Node {
                value: Value::Int(1),
                span: Span {
                    line: 1,
                    column: 8,
                    offset: 7
                }
            }])
        );
        let e = parse("a: !!int abc").unwrap_err();
        assert_eq!((e.line, e.column), (1, 4));
        assert!(e.message.contains("not an integer"), "{e}");
        let e = parse("a: !include x.yaml").unwrap_err();
        assert!(e.message.contains("unsupported tag `!include`"), "{e}");
        let e = parse("a: !!map [1]").unwrap_err();
        assert!(e.message.contains("unsupported tag `!!map`"), "{e}");
    }

    #[test]
    fn big_integers_are_errors() {
        let e = parse("n: 99999999999999999999").unwrap_err();
        assert_eq!((e.line, e.column), (1, 4));
        assert!(e.message.contains("quote it"), "{e}");
        assert_eq!(scalar("9223372036854775807"), Value::Int(i64::MAX));
        assert_eq!(scalar("-9223372036854775808"), Value::Int(i64::MIN));
    }

    #[test]
    fn block_spans() {
        let src = "a: 1\nbb:\n  - x\n  - \"q\"\nc:\n  d: e\n";
        let root = parse(src).unwrap();
        assert_eq!(at(&root), (1, 1));
        let Value::Map(entries) = &root.value else {
            panic!("not a map")
        };
        let positions: Vec<_> = entries.iter().map(|(k, v)| (at(k), at(v))).collect();
        assert_eq!(
            positions,
            vec![((1, 1), (1, 4)), ((2, 1), (3, 3)), ((5, 1), (6, 3))]
        );
        let bb = root.get("bb").unwrap();
        let Value::Seq(items) = &bb.value else {
            panic!("not a seq")
        };
        assert_eq!(at(&items[0]), (3, 5));
        assert_eq!(at(&items[1]), (4, 5));
        assert_eq!(items[1].span.offset, src.find('"').unwrap());
        let c = root.get("c").unwrap();
        let Value::Map(inner) = &c.value else {
            panic!("not a map")
        };
        assert_eq!(at(&inner[0].0), (6, 3));
        assert_eq!(at(&inner[0].1), (6, 6));
    }

    #[test]
    fn flow_spans() {
        let src = "on: {data_arrived: training, \"b\": [x, 'y']}\n";
        let root = parse(src).unwrap();
        let on = root.get("on").unwrap();
        assert_eq!(at(on), (1, 5));
        let Value::Map(entries) = &on.value else {
            panic!("not a map")
        };
        assert_eq!(at(&entries[0].0), (1, 6));
        assert_eq!(at(&entries[0].1), (1, 20));
        assert_eq!(at(&entries[1].0), (1, 30));
        assert_eq!(at(&entries[1].1), (1, 35));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        assert_eq!(at(&items[0]), (1, 36));
        assert_eq!(at(&items[1]), (1, 39));
        assert_eq!(items[1].span.offset, 38);
    }

    #[test]
    fn spans_count_characters_and_offsets_bytes() {
        let src = "é: ü\nk: v\n";
        let root = parse(src).unwrap();
        let Value::Map(entries) = &root.value else {
            panic!("not a map")
        };
        assert_eq!(at(&entries[0].1), (1, 4));
        assert_eq!(entries[0].1.span.offset, 4);
        assert_eq!(at(&entries[1].0), (2, 1));
        assert_eq!(entries[1].0.span.offset, src.find('k').unwrap());
    }

    #[test]
    fn duplicate_keys_are_errors_at_the_second() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!((e.line, e.column), (3, 1));
        assert!(e.message.contains("duplicate key `a`"), "{e}");
        let e = parse("x: {k: 1, k: 2}").unwrap_err();
        assert_eq!((e.line, e.column), (1, 11));
        // Equal text but different types are different keys.
        assert!(parse("{1: a, '1': b}").is_ok());
    }

    #[test]
    fn aliases_clone_the_anchored_node() {
        let root = parse("a: &r {x: 1}\nb: *r\n").unwrap();
        assert_eq!(root.get("a"), root.get("b"));
        assert_eq!(at(root.get("b").unwrap()), (1, 4));
        let s = parse("a: &s hello\nb: *s\n").unwrap();
        assert_eq!(s.get("b").unwrap().value, Value::Str("hello".into()));
    }

    #[test]
    fn alias_bombs_are_stopped() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("aliases"), "{e}");
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let src = "[".repeat(MAX_DEPTH + 5);
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("nesting"), "{e}");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn one_document_only() {
        assert!(parse("---\na: 1\n...\n").is_ok());
        assert_eq!(parse("---\n").unwrap().value, Value::Null);
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
        assert!(e.message.contains("exactly one document"), "{e}");
    }

    #[test]
    fn syntax_errors_carry_the_position() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1 && e.column >= 1, "{e}");
        let e = parse("a: b: c\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        assert_eq!(
            e.to_string(),
            format!("line 1, column {}: {}", e.column, e.message)
        );
    }

    #[test]
    fn json_get_and_kind() {
        let root = parse("a: [1, 2.5, true, null, s]\n1: x\n.inf: y\nf: .nan\n").unwrap();
        assert_eq!(
            root.to_json(),
            serde_json::json!({"a": [1, 2.5, true, null, "s"], "1": "x", ".inf": "y", "f": null})
        );
        assert_eq!(root.kind(), "mapping");
        assert_eq!(root.get("a").unwrap().kind(), "sequence");
        assert!(root.get("1").is_none(), "get only finds string keys");
        assert!(root.get("zz").is_none());
        assert_eq!(scalar("x").clone(), Value::Str("x".into()));
        assert_eq!(parse("1").unwrap().kind(), "integer");
        assert_eq!(parse("1.0").unwrap().kind(), "float");
        assert_eq!(parse("true").unwrap().kind(), "boolean");
        assert_eq!(parse("~").unwrap().kind(), "null");
        assert_eq!(parse("s").unwrap().kind(), "string");
    }
}

/// One problem found while checking a document: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the value, e.g. `checks[2].max`; empty for YAML syntax.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        } else {
            write!(
                f,
                "line {}, column {}: {}: {}",
                self.line, self.column, self.path, self.message
            )
        }
    }
}

impl From<YamlError> for Problem {
    fn from(e: YamlError) -> Self {
        Problem {
            line: e.line,
            column: e.column,
            path: String::new(),
            message: e.message,
        }
    }
}

/// `path.key`, or `key` at the top.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Collects every problem of a document instead of stopping at the first,
/// for checkers of configuration files built on [`parse`]. Its readers
/// return `None` after recording why a value cannot be used.
#[derive(Debug)]
pub struct Checker {
    pub problems: Vec<Problem>,
    /// What "did you mean" suggestions may still spend
    /// ([`crate::suggest::closest`]).
    pub budget: usize,
}

impl Default for Checker {
    fn default() -> Self {
        Checker {
            problems: Vec::new(),
            budget: crate::suggest::BUDGET,
        }
    }
}

impl Checker {
    pub fn problem(&mut self, span: Span, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: span.line,
            column: span.column,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// The entries of a mapping, with keys that are not among `known`
    /// reported (with a suggestion); an empty `known` takes any name.
    pub fn mapping<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
    ) -> Option<&'n [(Node, Node)]> {
        let Value::Map(entries) = &node.value else {
            self.problem(
                node.span,
                path,
                format!("expected a mapping, found a {}", node.kind()),
            );
            return None;
        };
        for (k, _) in entries {
            let Some(key) = k.as_str() else {
                self.problem(k.span, path, "keys here are names (strings)");
                continue;
            };
            if !known.is_empty() && !known.contains(&key) {
                let hint = crate::suggest::closest(key, known, &mut self.budget)
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("; expected one of {}", known.join(", ")));
                self.problem(k.span, &join(path, key), format!("unknown key{hint}"));
            }
        }
        Some(entries)
    }

    /// A string with more than white space in it.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Str(_) => {
                self.problem(node.span, path, "must not be empty");
                None
            }
            _ => {
                self.problem(
                    node.span,
                    path,
                    format!("expected a string, found a {}", node.kind()),
                );
                None
            }
        }
    }

    /// A finite number (an integer or a float).
    pub fn number(&mut self, node: &Node, path: &str) -> Option<f64> {
        match node.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) if f.is_finite() => Some(f),
            _ => {
                self.problem(
                    node.span,
                    path,
                    format!("expected a finite number, found a {}", node.kind()),
                );
                None
            }
        }
    }

    /// The problems in file order.
    pub fn into_problems(mut self) -> Vec<Problem> {
        self.problems.sort_by_key(|p| (p.line, p.column));
        self.problems
    }
}
