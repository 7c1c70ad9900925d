//! Experiment search: MLflow's `search_experiments` filter and order_by
//! grammar, parsed into a typed AST and compiled into SQL over the
//! experiments table aliased `e`.
//!
//! ```text
//! filter     := or_expr                    (NOT > AND > OR, parentheses)
//! comparison := key op value
//! key        := [attribute "."] attribute_name | tag "." name
//! attribute  := attribute | attributes | attr                (any case)
//! tag        := tag | tags                                   (any case)
//! ```
//!
//! | key                                  | operators                       | value                          |
//! |--------------------------------------|---------------------------------|--------------------------------|
//! | `name`                               | `= != LIKE ILIKE`               | quoted string                  |
//! | `experiment_id`                      | `= != IN NOT IN`                | integer, quoted or not; list   |
//! | `creation_time`, `last_update_time`  | `= != < <= > >=`                | number                         |
//! | `tags.<key>`                         | `= != LIKE ILIKE IS NULL IS NOT NULL` | quoted string            |
//!
//! Attribute names are case-sensitive, as in MLflow. Tag keys, quoting,
//! strings, numbers and LIKE patterns are written as in run filters (see the
//! parent module). MLflow joins comparisons with `AND` only; `OR`, `NOT` and
//! parentheses are Keel's extension, as for runs.
//!
//! Tag comparisons are membership tests: `tags.k = 'v'` holds when the
//! experiment has tag `k` with value `v`, `tags.k != 'v'` when it has tag `k`
//! with another value, and `tags.k IS NULL` when it has no tag `k`. Every
//! user value, tag keys included, is bound as a parameter.

use std::fmt;

use keel_core::sql::{Dialect, QueryBuilder, SqlValue};

use super::ast::{Op, write_comparison, write_name, write_quoted};
use super::boolean::{BoolExpr, Node, push_bool, write_filter};
use super::compile::{ColumnType, Operand, number_bind, push_operand};
use super::error::FilterError;
use super::lexer::{Token, TokenKind};
use super::parse::{Parser, ops_list, parse_boolean, parse_order_clauses};

/// A boolean experiment filter.
#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentFilter {
    And(Vec<ExperimentFilter>),
    Or(Vec<ExperimentFilter>),
    Not(Box<ExperimentFilter>),
    Compare(ExperimentComparison),
}

/// `<key> <op> <value>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentComparison {
    pub key: ExperimentKey,
    pub op: Op,
    pub value: ExperimentValue,
}

/// What an experiment comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExperimentKey {
    Attribute(ExperimentAttribute),
    Tag(String),
}

/// A column of the experiment itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExperimentAttribute {
    Name,
    ExperimentId,
    CreationTime,
    LastUpdateTime,
}

/// The right-hand side of an experiment comparison: `String` for `name` and
/// tags, `Number` for the times, `Id` for `experiment_id =`/`!=`, `Ids` for
/// `IN`/`NOT IN`, and `Null` with `IS NULL`/`IS NOT NULL`.
#[derive(Debug, Clone, PartialEq)]
pub enum ExperimentValue {
    String(String),
    Number(f64),
    Id(i64),
    Ids(Vec<i64>),
    Null,
}

/// One experiment `order_by` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExperimentOrderKey {
    pub attribute: ExperimentAttribute,
    pub ascending: bool,
}

impl ExperimentAttribute {
    pub const ALL: [ExperimentAttribute; 4] = [
        ExperimentAttribute::Name,
        ExperimentAttribute::ExperimentId,
        ExperimentAttribute::CreationTime,
        ExperimentAttribute::LastUpdateTime,
    ];

    /// The canonical (MLflow) name of the attribute.
    pub fn name(self) -> &'static str {
        match self {
            ExperimentAttribute::Name => "name",
            ExperimentAttribute::ExperimentId => "experiment_id",
            ExperimentAttribute::CreationTime => "creation_time",
            ExperimentAttribute::LastUpdateTime => "last_update_time",
        }
    }

    /// Case-sensitive, as in MLflow.
    pub fn from_name(name: &str) -> Option<ExperimentAttribute> {
        ExperimentAttribute::ALL
            .into_iter()
            .find(|a| a.name() == name)
    }

    fn column(self) -> &'static str {
        match self {
            ExperimentAttribute::Name => "e.name",
            ExperimentAttribute::ExperimentId => "e.experiment_id",
            ExperimentAttribute::CreationTime => "e.creation_time",
            ExperimentAttribute::LastUpdateTime => "e.last_update_time",
        }
    }

    fn allowed_ops(self) -> &'static [Op] {
        use Op::*;
        match self {
            ExperimentAttribute::Name => &[Eq, Ne, Like, ILike],
            ExperimentAttribute::ExperimentId => &[Eq, Ne, In, NotIn],
            ExperimentAttribute::CreationTime | ExperimentAttribute::LastUpdateTime => {
                &[Eq, Ne, Lt, Le, Gt, Ge]
            }
        }
    }
}

impl ExperimentKey {
    fn allowed_ops(&self) -> &'static [Op] {
        match self {
            ExperimentKey::Attribute(a) => a.allowed_ops(),
            ExperimentKey::Tag(_) => &[
                Op::Eq,
                Op::Ne,
                Op::Like,
                Op::ILike,
                Op::IsNull,
                Op::IsNotNull,
            ],
        }
    }

    /// How the key is named in messages.
    fn describe(&self) -> String {
        match self {
            ExperimentKey::Attribute(a) => format!("attribute {}", a.name()),
            ExperimentKey::Tag(_) => "tags".to_owned(),
        }
    }
}

impl BoolExpr for ExperimentFilter {
    type Comparison = ExperimentComparison;

    fn and(children: Vec<Self>) -> Self {
        ExperimentFilter::And(children)
    }
    fn or(children: Vec<Self>) -> Self {
        ExperimentFilter::Or(children)
    }
    fn not(inner: Self) -> Self {
        ExperimentFilter::Not(Box::new(inner))
    }
    fn node(&self) -> Node<'_, Self> {
        match self {
            ExperimentFilter::And(children) => Node::And(children),
            ExperimentFilter::Or(children) => Node::Or(children),
            ExperimentFilter::Not(inner) => Node::Not(inner),
            ExperimentFilter::Compare(c) => Node::Compare(c),
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing

fn attribute_names() -> String {
    let names: Vec<&str> = ExperimentAttribute::ALL.iter().map(|a| a.name()).collect();
    names.join(", ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entity {
    Attribute,
    Tag,
}

fn entity_from_name(name: &str) -> Option<Entity> {
    match name.to_ascii_lowercase().as_str() {
        "attribute" | "attributes" | "attr" => Some(Entity::Attribute),
        "tag" | "tags" => Some(Entity::Tag),
        _ => None,
    }
}

/// Parses an experiment-search filter. An empty or all-whitespace filter is
/// `None`. `a AND b AND c` gives one `And` of three children (likewise
/// `OR`); a parenthesised single comparison is just that comparison.
pub fn parse_filter(input: &str) -> Result<Option<ExperimentFilter>, FilterError> {
    parse_boolean(input, comparison)
}

fn comparison(p: &mut Parser<'_>) -> Result<ExperimentFilter, FilterError> {
    let (key, _) = key(p, "expected a comparison such as name = 'my-experiment'")?;
    let allowed = key.allowed_ops();
    let (op, op_tok) = p.raw_op(|| {
        format!(
            "expected a comparison operator; {} takes {}",
            key.describe(),
            ops_list(allowed)
        )
    })?;
    if !allowed.contains(&op) {
        return Err(p.error(
            &op_tok,
            format!(
                "{} is not allowed on {}; use {}",
                op.as_str(),
                key.describe(),
                ops_list(allowed)
            ),
        ));
    }
    let what = key.describe();
    let value = match (&key, op) {
        (_, Op::IsNull | Op::IsNotNull) => ExperimentValue::Null,
        (ExperimentKey::Attribute(ExperimentAttribute::ExperimentId), Op::In | Op::NotIn) => {
            ExperimentValue::Ids(p.list_of(
                op,
                "experiment ids",
                "('1', '2')",
                "experiment id",
                |p, tok| experiment_id(p, &tok, op),
            )?)
        }
        (ExperimentKey::Attribute(ExperimentAttribute::ExperimentId), _) => {
            let tok = p.bump()?;
            ExperimentValue::Id(experiment_id(p, &tok, op)?)
        }
        (
            ExperimentKey::Attribute(
                ExperimentAttribute::CreationTime | ExperimentAttribute::LastUpdateTime,
            ),
            _,
        ) => ExperimentValue::Number(p.number_value(&what, op)?),
        _ => ExperimentValue::String(p.string_value(&what, op)?),
    };
    Ok(ExperimentFilter::Compare(ExperimentComparison {
        key,
        op,
        value,
    }))
}

/// An experiment id: an integer, quoted (as MLflow's clients send ids) or not.
fn experiment_id(p: &Parser<'_>, tok: &Token, op: Op) -> Result<i64, FilterError> {
    let expected = format!(
        "expected an experiment id after {} (an integer such as '1' or 1)",
        op.as_str()
    );
    let text = match &tok.kind {
        TokenKind::Quoted { quote, text } if *quote != '`' => text.trim(),
        TokenKind::Number(_) => tok.text(p.src()),
        TokenKind::Eof => return Err(p.error(tok, expected)),
        _ => return Err(p.error(tok, format!("{expected}; found '{}'", tok.text(p.src())))),
    };
    // Plain digits with an optional minus: `parse` alone would take `+5`.
    let digits = text.strip_prefix('-').unwrap_or(text);
    match text.parse::<i64>() {
        Ok(id) if digits.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(p.error(
            tok,
            format!("invalid experiment id '{text}'; experiment ids are integers"),
        )),
    }
}

/// Reads a key. `expected` is the message when no key comes next.
fn key(p: &mut Parser<'_>, expected: &str) -> Result<(ExperimentKey, Token), FilterError> {
    let tok = p.bump()?;
    match &tok.kind {
        TokenKind::Word => word_key(p, tok),
        TokenKind::Quoted { quote, text } if *quote != '\'' => {
            let key = attribute_key(p, &tok, text)?;
            Ok((key, tok))
        }
        _ => Err(p.not_a_key(&tok, "name or tags.team", expected)),
    }
}

fn word_key(p: &mut Parser<'_>, tok: Token) -> Result<(ExperimentKey, Token), FilterError> {
    let src = p.src();
    let text = tok.text(src);
    let Some((entity_text, name)) = text.split_once('.') else {
        p.check_bare_key(
            &tok,
            "name = 'my-experiment'",
            entity_from_name(text).is_some(),
        )?;
        let key = attribute_key(p, &tok, text)?;
        return Ok((key, tok));
    };
    let Some(entity) = entity_from_name(entity_text) else {
        return Err(FilterError::new(
            tok.start,
            entity_text,
            format!(
                "unknown entity '{entity_text}'; experiments are searched by attributes ({}) or tags",
                attribute_names()
            ),
        ));
    };
    let (name, name_tok) = p.key_name(&tok, entity_text, name)?;
    let key = match entity {
        Entity::Tag => ExperimentKey::Tag(name),
        Entity::Attribute => attribute_key(p, &name_tok, &name)?,
    };
    Ok((key, tok))
}

fn attribute_key(p: &Parser<'_>, tok: &Token, name: &str) -> Result<ExperimentKey, FilterError> {
    match ExperimentAttribute::from_name(name) {
        Some(a) => Ok(ExperimentKey::Attribute(a)),
        None => Err(p.error(
            tok,
            format!(
                "unknown attribute '{name}'; valid attributes are {} (tags need a prefix, e.g. tags.{name})",
                attribute_names()
            ),
        )),
    }
}

/// Parses experiment `order_by` clauses: `<attribute> [ASC|DESC]` each,
/// the attribute bare or prefixed `attribute.`/`attributes.`/`attr.`. The
/// default direction is ascending; an attribute may appear only once.
pub fn parse_order_by(clauses: &[String]) -> Result<Vec<ExperimentOrderKey>, FilterError> {
    parse_order_clauses(clauses, parse_order_clause, |k| k.attribute.name())
}

fn parse_order_clause(clause: &str) -> Result<ExperimentOrderKey, FilterError> {
    let mut p = Parser::new(clause);
    let (key, key_tok) = key(
        &mut p,
        "expected an attribute to order by (name, experiment_id, creation_time or last_update_time), optionally followed by ASC or DESC",
    )?;
    let attribute = match key {
        ExperimentKey::Attribute(a) => a,
        ExperimentKey::Tag(_) => {
            return Err(p.error(
                &key_tok,
                format!(
                    "experiments cannot be ordered by tags; order by {}",
                    attribute_names()
                ),
            ));
        }
    };
    let ascending = p.order_direction()?;
    Ok(ExperimentOrderKey {
        attribute,
        ascending,
    })
}

// ---------------------------------------------------------------------------
// Compilation

/// Appends the filter as one SQL boolean expression over the experiments
/// table aliased `e` (no leading or trailing space; the caller wraps it in
/// parentheses). `And`/`Or` with no children compile to `1 = 1`/`1 = 0`,
/// and operator/value pairs the parser never produces to `1 = 0`.
pub fn push_filter(f: &ExperimentFilter, dialect: Dialect, q: &mut QueryBuilder) {
    push_bool(f, q, &|c, q| push_comparison(c, dialect, q));
}

fn push_comparison(c: &ExperimentComparison, dialect: Dialect, q: &mut QueryBuilder) {
    match &c.key {
        ExperimentKey::Attribute(a) => push_scalar(a.column(), c.op, &c.value, dialect, q),
        ExperimentKey::Tag(key) => {
            q.push(if c.op == Op::IsNull {
                "e.experiment_id NOT IN"
            } else {
                "e.experiment_id IN"
            })
            .push(" (SELECT experiment_id FROM experiment_tags WHERE key = ")
            .push_bind(key.as_str());
            if !matches!(c.op, Op::IsNull | Op::IsNotNull) {
                q.push(" AND ");
                push_scalar("value", c.op, &c.value, dialect, q);
            }
            q.push(")");
        }
    }
}

/// Appends `column <op> <value>` as a boolean expression.
fn push_scalar(
    column: &str,
    op: Op,
    value: &ExperimentValue,
    dialect: Dialect,
    q: &mut QueryBuilder,
) {
    let operand = match value {
        ExperimentValue::String(s) => Operand::Text(s),
        ExperimentValue::Number(n) => Operand::Scalar(number_bind(*n, ColumnType::Int)),
        ExperimentValue::Id(id) => Operand::Scalar(SqlValue::Int(*id)),
        ExperimentValue::Ids(ids) => {
            Operand::List(ids.iter().map(|&id| SqlValue::Int(id)).collect())
        }
        ExperimentValue::Null => Operand::Null,
    };
    push_operand(column, op, operand, dialect, q);
}

/// Appends the ORDER BY list (without the `ORDER BY` keywords). No keys
/// gives MLflow's default, `e.creation_time DESC, e.experiment_id ASC`;
/// otherwise, as in MLflow, `e.experiment_id DESC` follows as the tie-break
/// unless experiment_id is already a key.
pub fn push_order_by(order: &[ExperimentOrderKey], q: &mut QueryBuilder) {
    const DEFAULT: [ExperimentOrderKey; 2] = [
        ExperimentOrderKey {
            attribute: ExperimentAttribute::CreationTime,
            ascending: false,
        },
        ExperimentOrderKey {
            attribute: ExperimentAttribute::ExperimentId,
            ascending: true,
        },
    ];
    let order = if order.is_empty() {
        &DEFAULT[..]
    } else {
        order
    };
    for (i, k) in order.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push(k.attribute.column())
            .push(if k.ascending { " ASC" } else { " DESC" });
    }
    if !order
        .iter()
        .any(|k| k.attribute == ExperimentAttribute::ExperimentId)
    {
        q.push(", e.experiment_id DESC");
    }
}

// ---------------------------------------------------------------------------
// Rendering: canonical filter text that `parse_filter` parses back to an
// equal AST, for every AST the parser can produce.

impl fmt::Display for ExperimentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExperimentKey::Attribute(a) => f.write_str(a.name()),
            ExperimentKey::Tag(k) => {
                f.write_str("tags.")?;
                write_name(f, k)
            }
        }
    }
}

impl fmt::Display for ExperimentValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExperimentValue::String(s) => write_quoted(f, '\'', s),
            ExperimentValue::Number(n) => write!(f, "{n}"),
            ExperimentValue::Id(id) => write!(f, "{id}"),
            ExperimentValue::Ids(ids) => {
                f.write_str("(")?;
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "'{id}'")?;
                }
                f.write_str(")")
            }
            ExperimentValue::Null => f.write_str("NULL"),
        }
    }
}

impl fmt::Display for ExperimentComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_comparison(f, &self.key, self.op, &self.value)
    }
}

impl fmt::Display for ExperimentFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(f, self)
    }
}

impl fmt::Display for ExperimentOrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.attribute.name(),
            if self.ascending { "ASC" } else { "DESC" }
        )
    }
}
