//! The typed filter and order_by AST, and its rendering back to filter text.
//!
//! `Display` renders canonical filter text that [`super::parse_filter`] parses
//! back to an equal AST, for every AST the parser can produce (`And`/`Or`
//! with at least two children, finite numbers, values of the right kind).

use std::fmt;

use super::boolean::{BoolExpr, Node, write_filter};

/// A boolean filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare(Comparison),
}

/// `<key> <op> <value>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub key: Key,
    pub op: Op,
    pub value: Value,
}

/// What a comparison or an order_by clause looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Metric(String),
    Param(String),
    Tag(String),
    Attribute(Attribute),
    Dataset(DatasetField),
}

/// A column of the run itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attribute {
    RunId,
    RunName,
    Status,
    ArtifactUri,
    UserId,
    LifecycleStage,
    StartTime,
    EndTime,
}

/// A field of a dataset the run used as input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetField {
    Name,
    Digest,
    Context,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

/// The right-hand side of a comparison. `Null` goes with `IsNull` and
/// `IsNotNull`, `List` with `In` and `NotIn`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    String(String),
    List(Vec<String>),
    Null,
}

/// One `order_by` clause.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderKey {
    pub key: Key,
    pub ascending: bool,
}

impl Attribute {
    pub const ALL: [Attribute; 8] = [
        Attribute::RunId,
        Attribute::RunName,
        Attribute::Status,
        Attribute::ArtifactUri,
        Attribute::UserId,
        Attribute::LifecycleStage,
        Attribute::StartTime,
        Attribute::EndTime,
    ];

    /// The canonical (MLflow) name of the attribute.
    pub fn name(self) -> &'static str {
        match self {
            Attribute::RunId => "run_id",
            Attribute::RunName => "run_name",
            Attribute::Status => "status",
            Attribute::ArtifactUri => "artifact_uri",
            Attribute::UserId => "user_id",
            Attribute::LifecycleStage => "lifecycle_stage",
            Attribute::StartTime => "start_time",
            Attribute::EndTime => "end_time",
        }
    }

    /// Looks an attribute up by a name a filter may use: the canonical names
    /// plus MLflow's aliases `created`/`Created` (start_time) and
    /// `run name`/`Run name`/`Run Name` (run_name). Case-sensitive, as in
    /// MLflow.
    pub fn from_name(name: &str) -> Option<Attribute> {
        match name {
            "created" | "Created" => Some(Attribute::StartTime),
            "run name" | "Run name" | "Run Name" => Some(Attribute::RunName),
            _ => Attribute::ALL.into_iter().find(|a| a.name() == name),
        }
    }

    /// Whether the attribute compares numerically (milliseconds since the
    /// epoch) rather than as a string.
    pub fn is_numeric(self) -> bool {
        matches!(self, Attribute::StartTime | Attribute::EndTime)
    }
}

impl DatasetField {
    pub const ALL: [DatasetField; 3] = [
        DatasetField::Name,
        DatasetField::Digest,
        DatasetField::Context,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DatasetField::Name => "name",
            DatasetField::Digest => "digest",
            DatasetField::Context => "context",
        }
    }

    /// Case-sensitive, as in MLflow.
    pub fn from_name(name: &str) -> Option<DatasetField> {
        DatasetField::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl Op {
    /// The operator as written in filter text (upper case keywords).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }
}

impl Key {
    /// The canonical entity prefix of the key (`metrics`, `params`, `tags`,
    /// `attributes`, `datasets`).
    pub fn entity(&self) -> &'static str {
        match self {
            Key::Metric(_) => "metrics",
            Key::Param(_) => "params",
            Key::Tag(_) => "tags",
            Key::Attribute(_) => "attributes",
            Key::Dataset(_) => "datasets",
        }
    }
}

/// Whether `c` may continue a bare (unquoted) name.
pub(super) fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':')
}

/// Whether `c` may start a bare word.
pub(super) fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Writes `text` between `quote` characters, doubling any `quote` inside.
pub(super) fn write_quoted(f: &mut fmt::Formatter<'_>, quote: char, text: &str) -> fmt::Result {
    f.write_fmt(format_args!("{quote}"))?;
    for c in text.chars() {
        if c == quote {
            f.write_fmt(format_args!("{quote}{quote}"))?;
        } else {
            f.write_fmt(format_args!("{c}"))?;
        }
    }
    f.write_fmt(format_args!("{quote}"))
}

pub(super) fn write_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    if !name.is_empty() && name.chars().all(is_name_char) {
        f.write_str(name)
    } else {
        write_quoted(f, '`', name)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.entity())?;
        f.write_str(".")?;
        match self {
            Key::Metric(k) | Key::Param(k) | Key::Tag(k) => write_name(f, k),
            Key::Attribute(a) => f.write_str(a.name()),
            Key::Dataset(d) => f.write_str(d.name()),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::String(s) => write_quoted(f, '\'', s),
            Value::List(items) => write_string_list(f, items),
            Value::Null => f.write_str("NULL"),
        }
    }
}

/// Writes `('a', 'b')`.
pub(super) fn write_string_list(f: &mut fmt::Formatter<'_>, items: &[String]) -> fmt::Result {
    f.write_str("(")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_quoted(f, '\'', item)?;
    }
    f.write_str(")")
}

/// Writes `key op value`, or `key op` for `IS NULL`/`IS NOT NULL`.
pub(super) fn write_comparison(
    f: &mut fmt::Formatter<'_>,
    key: &dyn fmt::Display,
    op: Op,
    value: &dyn fmt::Display,
) -> fmt::Result {
    write!(f, "{key} {op}")?;
    match op {
        Op::IsNull | Op::IsNotNull => Ok(()),
        _ => write!(f, " {value}"),
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_comparison(f, &self.key, self.op, &self.value)
    }
}

impl BoolExpr for Expr {
    type Comparison = Comparison;

    fn and(children: Vec<Self>) -> Self {
        Expr::And(children)
    }
    fn or(children: Vec<Self>) -> Self {
        Expr::Or(children)
    }
    fn not(inner: Self) -> Self {
        Expr::Not(Box::new(inner))
    }
    fn node(&self) -> Node<'_, Self> {
        match self {
            Expr::And(children) => Node::And(children),
            Expr::Or(children) => Node::Or(children),
            Expr::Not(inner) => Node::Not(inner),
            Expr::Compare(c) => Node::Compare(c),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(f, self)
    }
}

impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.key,
            if self.ascending { "ASC" } else { "DESC" }
        )
    }
}
