//! Logged-model search: MLflow 3's `search_logged_models` filter and
//! order_by grammar, parsed into a typed AST and compiled into SQL over the
//! logged_models table aliased `m`.
//!
//! ```text
//! filter     := or_expr                    (NOT > AND > OR, parentheses)
//! comparison := key op value
//! key        := [attribute "."] attribute_name | entity "." name
//! attribute  := attribute | attributes | attr                (any case)
//! entity     := metric(s) | param(s) | parameter(s) | tag(s)  (any case)
//! ```
//!
//! | key                                           | operators                      | value          |
//! |-----------------------------------------------|--------------------------------|----------------|
//! | `name`, `model_id`, `model_type`, `status`, `source_run_id` | `= != LIKE ILIKE IN NOT IN` | quoted string; list |
//! | `creation_timestamp`, `last_updated_timestamp` | `= != < <= > >=`              | number         |
//! | `metrics.<key>`                               | `= != < <= > >=`               | number         |
//! | `params.<key>`, `tags.<key>`                  | `= != LIKE ILIKE IN NOT IN IS NULL IS NOT NULL` | quoted string; list |
//!
//! `creation_time` and `creation_timestamp_ms` name `creation_timestamp`,
//! `last_updated_time` and `last_updated_timestamp_ms` name
//! `last_updated_timestamp`. Attribute names are case-sensitive, as in
//! MLflow. Keys, quoting, strings, numbers and LIKE patterns are written as
//! in run filters (see the parent module). MLflow joins comparisons with
//! `AND` only; `OR`, `NOT` and parentheses are Keel's extension, as for runs.
//!
//! `status` is stored as the proto name (`LOGGED_MODEL_READY`); with `=`,
//! `!=`, `IN` and `NOT IN` the entity names MLflow's Python client uses
//! (`READY`, `PENDING`, `FAILED`) match too. `model_type` and
//! `source_run_id` may be NULL: a model without one satisfies no
//! comparison on it, also under `NOT`.
//!
//! `metrics.<key>` compares the model's latest value of the metric: among
//! the metric rows whose `model_id` is the model's, the one with the
//! greatest step, then timestamp (then value). A NaN latest value satisfies
//! only `!=`, as for runs. Param and tag comparisons are membership tests,
//! as for experiment tags: `params.k != 'v'` holds when the model has param
//! `k` with another value, `params.k IS NULL` when it has no param `k`.
//! Every user value, keys included, is bound as a parameter.

use std::fmt;

use keel_core::sql::{Dialect, QueryBuilder, SqlValue};

use super::ast::{Op, write_comparison, write_name, write_quoted, write_string_list};
use super::boolean::{BoolExpr, Node, push_bool, write_filter};
use super::compile::{ColumnType, Operand, number_bind, push_operand};
use super::error::FilterError;
use super::lexer::{Token, TokenKind};
use super::parse::{Parser, ops_list, parse_boolean};

/// A boolean logged-model filter.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelFilter {
    And(Vec<ModelFilter>),
    Or(Vec<ModelFilter>),
    Not(Box<ModelFilter>),
    Compare(ModelComparison),
}

/// `<key> <op> <value>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelComparison {
    pub key: ModelKey,
    pub op: Op,
    pub value: ModelValue,
}

/// What a logged-model comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelKey {
    Attribute(ModelAttribute),
    Metric(String),
    Param(String),
    Tag(String),
}

/// A column of the logged model itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelAttribute {
    Name,
    ModelId,
    ModelType,
    Status,
    SourceRunId,
    CreationTimestamp,
    LastUpdatedTimestamp,
}

/// The right-hand side of a comparison: `String` for string attributes,
/// params and tags, `Number` for the timestamps and metrics, `List` with
/// `IN`/`NOT IN`, and `Null` with `IS NULL`/`IS NOT NULL`.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelValue {
    String(String),
    Number(f64),
    List(Vec<String>),
    Null,
}

/// What a logged-model `order_by` entry orders by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelOrderField {
    Attribute(ModelAttribute),
    /// The model's latest value of the metric.
    Metric(String),
}

/// One logged-model `order_by` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelOrderKey {
    pub field: ModelOrderField,
    pub ascending: bool,
}

impl ModelAttribute {
    pub const ALL: [ModelAttribute; 7] = [
        ModelAttribute::Name,
        ModelAttribute::ModelId,
        ModelAttribute::ModelType,
        ModelAttribute::Status,
        ModelAttribute::SourceRunId,
        ModelAttribute::CreationTimestamp,
        ModelAttribute::LastUpdatedTimestamp,
    ];

    /// The canonical (MLflow) name of the attribute.
    pub fn name(self) -> &'static str {
        match self {
            ModelAttribute::Name => "name",
            ModelAttribute::ModelId => "model_id",
            ModelAttribute::ModelType => "model_type",
            ModelAttribute::Status => "status",
            ModelAttribute::SourceRunId => "source_run_id",
            ModelAttribute::CreationTimestamp => "creation_timestamp",
            ModelAttribute::LastUpdatedTimestamp => "last_updated_timestamp",
        }
    }

    /// Looks an attribute up by its canonical name or an alias
    /// (`creation_time`, `creation_timestamp_ms`, `last_updated_time`,
    /// `last_updated_timestamp_ms`). Case-sensitive, as in MLflow.
    pub fn from_name(name: &str) -> Option<ModelAttribute> {
        match name {
            "creation_time" | "creation_timestamp_ms" => Some(ModelAttribute::CreationTimestamp),
            "last_updated_time" | "last_updated_timestamp_ms" => {
                Some(ModelAttribute::LastUpdatedTimestamp)
            }
            _ => ModelAttribute::ALL.into_iter().find(|a| a.name() == name),
        }
    }

    /// Whether the attribute compares numerically (milliseconds since the
    /// epoch) rather than as a string.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ModelAttribute::CreationTimestamp | ModelAttribute::LastUpdatedTimestamp
        )
    }

    fn column(self) -> &'static str {
        match self {
            ModelAttribute::Name => "m.name",
            ModelAttribute::ModelId => "m.model_id",
            ModelAttribute::ModelType => "m.model_type",
            ModelAttribute::Status => "m.status",
            ModelAttribute::SourceRunId => "m.source_run_id",
            ModelAttribute::CreationTimestamp => "m.creation_timestamp_ms",
            ModelAttribute::LastUpdatedTimestamp => "m.last_updated_timestamp_ms",
        }
    }

    /// Whether the column may be NULL.
    fn nullable(self) -> bool {
        matches!(
            self,
            ModelAttribute::ModelType | ModelAttribute::SourceRunId
        )
    }
}

const NUMERIC_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];
const STRING_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Like, Op::ILike, Op::In, Op::NotIn];
const KEYED_OPS: &[Op] = &[
    Op::Eq,
    Op::Ne,
    Op::Like,
    Op::ILike,
    Op::In,
    Op::NotIn,
    Op::IsNull,
    Op::IsNotNull,
];

impl ModelKey {
    fn allowed_ops(&self) -> &'static [Op] {
        match self {
            ModelKey::Attribute(a) if a.is_numeric() => NUMERIC_OPS,
            ModelKey::Attribute(_) => STRING_OPS,
            ModelKey::Metric(_) => NUMERIC_OPS,
            ModelKey::Param(_) | ModelKey::Tag(_) => KEYED_OPS,
        }
    }

    fn is_numeric(&self) -> bool {
        match self {
            ModelKey::Attribute(a) => a.is_numeric(),
            ModelKey::Metric(_) => true,
            ModelKey::Param(_) | ModelKey::Tag(_) => false,
        }
    }

    /// How the key is named in messages.
    fn describe(&self) -> String {
        match self {
            ModelKey::Attribute(a) if a.is_numeric() => {
                format!("numeric attribute {}", a.name())
            }
            ModelKey::Attribute(a) => format!("attribute {}", a.name()),
            ModelKey::Metric(_) => "metrics".to_owned(),
            ModelKey::Param(_) => "params".to_owned(),
            ModelKey::Tag(_) => "tags".to_owned(),
        }
    }
}

impl BoolExpr for ModelFilter {
    type Comparison = ModelComparison;

    fn and(children: Vec<Self>) -> Self {
        ModelFilter::And(children)
    }
    fn or(children: Vec<Self>) -> Self {
        ModelFilter::Or(children)
    }
    fn not(inner: Self) -> Self {
        ModelFilter::Not(Box::new(inner))
    }
    fn node(&self) -> Node<'_, Self> {
        match self {
            ModelFilter::And(children) => Node::And(children),
            ModelFilter::Or(children) => Node::Or(children),
            ModelFilter::Not(inner) => Node::Not(inner),
            ModelFilter::Compare(c) => Node::Compare(c),
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing

fn attribute_names() -> String {
    let names: Vec<&str> = ModelAttribute::ALL.iter().map(|a| a.name()).collect();
    names.join(", ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entity {
    Attribute,
    Metric,
    Param,
    Tag,
}

fn entity_from_name(name: &str) -> Option<Entity> {
    Some(match name.to_ascii_lowercase().as_str() {
        "attribute" | "attributes" | "attr" => Entity::Attribute,
        "metric" | "metrics" => Entity::Metric,
        "param" | "params" | "parameter" | "parameters" => Entity::Param,
        "tag" | "tags" => Entity::Tag,
        _ => return None,
    })
}

/// Parses a logged-model search filter. An empty or all-whitespace filter
/// is `None`. `a AND b AND c` gives one `And` of three children (likewise
/// `OR`); a parenthesised single comparison is just that comparison.
pub fn parse_filter(input: &str) -> Result<Option<ModelFilter>, FilterError> {
    parse_boolean(input, comparison)
}

fn comparison(p: &mut Parser<'_>) -> Result<ModelFilter, FilterError> {
    let key = key(p)?;
    let allowed = key.allowed_ops();
    let (op, op_tok) = p.raw_op(|| {
        format!(
            "expected a comparison operator; {} take {}",
            key.describe(),
            ops_list(allowed)
        )
    })?;
    if !allowed.contains(&op) {
        let mut message = format!(
            "{} is not allowed on {}; use {}",
            op.as_str(),
            key.describe(),
            ops_list(allowed)
        );
        if matches!(op, Op::IsNull | Op::IsNotNull) {
            message.push_str(" (IS NULL and IS NOT NULL are supported for params and tags only)");
        }
        return Err(p.error(&op_tok, message));
    }
    let what = key.describe();
    let value = match op {
        Op::IsNull | Op::IsNotNull => ModelValue::Null,
        Op::In | Op::NotIn => ModelValue::List(p.string_list(op)?),
        _ if key.is_numeric() => ModelValue::Number(p.number_value(&what, op)?),
        _ => ModelValue::String(p.string_value(&what, op)?),
    };
    Ok(ModelFilter::Compare(ModelComparison { key, op, value }))
}

const EXAMPLE: &str = "name = 'my-model'";

fn key(p: &mut Parser<'_>) -> Result<ModelKey, FilterError> {
    let tok = p.bump()?;
    match &tok.kind {
        TokenKind::Word => word_key(p, tok),
        TokenKind::Quoted { quote, text } if *quote != '\'' => attribute_key(p, &tok, text),
        _ => Err(p.not_a_key(
            &tok,
            "name or metrics.accuracy",
            &format!("expected a comparison such as {EXAMPLE}"),
        )),
    }
}

fn word_key(p: &mut Parser<'_>, tok: Token) -> Result<ModelKey, FilterError> {
    let src = p.src();
    let text = tok.text(src);
    let Some((entity_text, name)) = text.split_once('.') else {
        p.check_bare_key(&tok, EXAMPLE, entity_from_name(text).is_some())?;
        return attribute_key(p, &tok, text);
    };
    let Some(entity) = entity_from_name(entity_text) else {
        return Err(FilterError::new(
            tok.start,
            entity_text,
            format!(
                "unknown entity '{entity_text}'; logged models are searched by attributes ({}), metrics, params or tags",
                attribute_names()
            ),
        ));
    };
    let (name, name_tok) = p.key_name(&tok, entity_text, name)?;
    Ok(match entity {
        Entity::Attribute => attribute_key(p, &name_tok, &name)?,
        Entity::Metric => ModelKey::Metric(name),
        Entity::Param => ModelKey::Param(name),
        Entity::Tag => ModelKey::Tag(name),
    })
}

fn attribute_key(p: &Parser<'_>, tok: &Token, name: &str) -> Result<ModelKey, FilterError> {
    match ModelAttribute::from_name(name) {
        Some(a) => Ok(ModelKey::Attribute(a)),
        None => Err(p.error(
            tok,
            format!(
                "unknown attribute '{name}'; valid attributes are {} (metrics, params and tags need a prefix, e.g. metrics.{name})",
                attribute_names()
            ),
        )),
    }
}

/// Parses logged-model `order_by` entries, `(field_name, ascending)` each.
/// A field name is an attribute (canonical name or alias, optionally
/// prefixed `attribute.`/`attributes.`; surrounding whitespace ignored) or
/// `metrics.<key>`, the key taken verbatim after the first dot. Errors carry
/// the entry's index in `clause` and byte positions within its field name.
pub fn parse_order_by(order: &[(String, bool)]) -> Result<Vec<ModelOrderKey>, FilterError> {
    order
        .iter()
        .enumerate()
        .map(|(i, (field, ascending))| {
            let field = parse_order_field(field).map_err(|mut e| {
                e.clause = Some(i);
                e
            })?;
            Ok(ModelOrderKey {
                field,
                ascending: *ascending,
            })
        })
        .collect()
}

fn parse_order_field(field: &str) -> Result<ModelOrderField, FilterError> {
    let start = field.len() - field.trim_start().len();
    let trimmed = field.trim();
    if trimmed.is_empty() {
        return Err(FilterError::new(
            0,
            "",
            format!(
                "empty order_by field name; expected an attribute ({}) or metrics.<key>",
                attribute_names()
            ),
        ));
    }
    let (entity, name, name_start) = match trimmed.split_once('.') {
        Some((entity, name)) => (Some(entity), name, start + entity.len() + 1),
        None => (None, trimmed, start),
    };
    match entity {
        Some("metrics") => {
            // Verbatim, as MLflow takes it; only the outer whitespace trimmed.
            let name = field.get(name_start..).unwrap_or("").trim_end().to_owned();
            if name.is_empty() {
                return Err(FilterError::new(
                    name_start,
                    "",
                    "expected a metric key after 'metrics.'",
                ));
            }
            Ok(ModelOrderField::Metric(name))
        }
        Some("attribute" | "attributes") | None => match ModelAttribute::from_name(name) {
            Some(a) => Ok(ModelOrderField::Attribute(a)),
            None => Err(FilterError::new(
                name_start,
                name,
                format!(
                    "unknown order_by attribute '{name}'; order by {} or metrics.<key>",
                    attribute_names()
                ),
            )),
        },
        Some(entity) => Err(FilterError::new(
            start,
            entity,
            format!(
                "logged models cannot be ordered by '{entity}' fields; order by attributes ({}) or metrics.<key>",
                attribute_names()
            ),
        )),
    }
}

// ---------------------------------------------------------------------------
// Compilation

/// Appends the filter as one SQL boolean expression over the logged_models
/// table aliased `m` (no leading or trailing space; the caller wraps it in
/// parentheses). `And`/`Or` with no children compile to `1 = 1`/`1 = 0`,
/// and operator/value pairs the parser never produces to `1 = 0`.
pub fn push_filter(f: &ModelFilter, dialect: Dialect, q: &mut QueryBuilder) {
    push_bool(f, q, &|c, q| push_comparison(c, dialect, q));
}

/// Appends a derived table of each model's latest row of metric `key`
/// (columns `model_id`, `value`, `is_nan`), in parentheses, without alias.
/// Latest is the greatest step, then timestamp, then value; NaN rows (stored
/// as 0.0) lose a tie to a real 0.0, and run_uuid settles the rest.
fn push_latest_metric(key: &str, q: &mut QueryBuilder) {
    q.push(
        "(SELECT lr.model_id, lr.value, lr.is_nan FROM (SELECT model_id, value, is_nan, \
         ROW_NUMBER() OVER (PARTITION BY model_id ORDER BY step DESC, timestamp DESC, \
         value DESC, is_nan ASC, run_uuid ASC) AS rn FROM metrics \
         WHERE model_id IS NOT NULL AND key = ",
    )
    .push_bind(key)
    .push(") lr WHERE lr.rn = 1)");
}

fn push_comparison(c: &ModelComparison, dialect: Dialect, q: &mut QueryBuilder) {
    match &c.key {
        ModelKey::Attribute(a) => push_attribute(*a, c, dialect, q),
        ModelKey::Metric(key) => {
            q.push("m.model_id IN (SELECT lm.model_id FROM ");
            push_latest_metric(key, q);
            q.push(" lm WHERE ");
            if c.op == Op::Ne {
                // MLflow: NaN differs from every number, so a NaN latest
                // value satisfies `!=` (and no other comparison).
                q.push("(lm.is_nan = TRUE OR ");
                push_scalar("lm.value", ColumnType::Real, c.op, &c.value, dialect, q);
                q.push(")");
            } else {
                q.push("lm.is_nan = FALSE AND ");
                push_scalar("lm.value", ColumnType::Real, c.op, &c.value, dialect, q);
            }
            q.push(")");
        }
        ModelKey::Param(key) => push_keyed("logged_model_params", key, c, dialect, q),
        ModelKey::Tag(key) => push_keyed("logged_model_tags", key, c, dialect, q),
    }
}

/// A membership test on `logged_model_params` or `logged_model_tags`.
fn push_keyed(table: &str, key: &str, c: &ModelComparison, dialect: Dialect, q: &mut QueryBuilder) {
    q.push(if c.op == Op::IsNull {
        "m.model_id NOT IN (SELECT model_id FROM "
    } else {
        "m.model_id IN (SELECT model_id FROM "
    })
    .push(table)
    .push(" WHERE key = ")
    .push_bind(key);
    if !matches!(c.op, Op::IsNull | Op::IsNotNull) {
        q.push(" AND ");
        push_scalar("value", ColumnType::Text, c.op, &c.value, dialect, q);
    }
    q.push(")");
}

/// The stored status for a status the user wrote: MLflow's entity names
/// map to the proto names the table holds; anything else is kept.
fn stored_status(s: &str) -> &str {
    match s {
        "PENDING" => "LOGGED_MODEL_PENDING",
        "READY" => "LOGGED_MODEL_READY",
        "FAILED" => "LOGGED_MODEL_UPLOAD_FAILED",
        other => other,
    }
}

fn push_attribute(a: ModelAttribute, c: &ModelComparison, dialect: Dialect, q: &mut QueryBuilder) {
    let column = a.column();
    let ty = if a.is_numeric() {
        ColumnType::Int
    } else {
        ColumnType::Text
    };
    let status_value;
    let value = match (&c.value, a, c.op) {
        (ModelValue::String(s), ModelAttribute::Status, Op::Eq | Op::Ne) => {
            status_value = ModelValue::String(stored_status(s).to_owned());
            &status_value
        }
        (ModelValue::List(items), ModelAttribute::Status, Op::In | Op::NotIn) => {
            status_value =
                ModelValue::List(items.iter().map(|s| stored_status(s).to_owned()).collect());
            &status_value
        }
        (value, _, _) => value,
    };
    let guard = a.nullable() && !matches!(c.op, Op::IsNull | Op::IsNotNull);
    if guard {
        // Keeps the comparison two-valued: NULL gives FALSE, not UNKNOWN,
        // so `NOT (...)` selects the model.
        q.push("(").push(column).push(" IS NOT NULL AND ");
    }
    push_scalar(column, ty, c.op, value, dialect, q);
    if guard {
        q.push(")");
    }
}

/// Appends `column <op> <value>` as a boolean expression.
fn push_scalar(
    column: &str,
    ty: ColumnType,
    op: Op,
    value: &ModelValue,
    dialect: Dialect,
    q: &mut QueryBuilder,
) {
    let operand = match value {
        ModelValue::String(s) => Operand::Text(s),
        ModelValue::Number(n) => Operand::Scalar(number_bind(*n, ty)),
        ModelValue::List(items) => Operand::List(
            items
                .iter()
                .map(|item| SqlValue::Text(item.clone()))
                .collect(),
        ),
        ModelValue::Null => Operand::Null,
    };
    push_operand(column, op, operand, dialect, q);
}

/// Appends one ` LEFT JOIN (<latest row of the metric per model>) ob<i> ON
/// ob<i>.model_id = m.model_id` per metric order key (`i` is the key's index
/// in `order`), each with a leading space. Must be pushed before the filter
/// so placeholders stay in order; appends nothing when no key is a metric.
pub fn push_order_joins(order: &[ModelOrderKey], q: &mut QueryBuilder) {
    for (i, k) in order.iter().enumerate() {
        let ModelOrderField::Metric(name) = &k.field else {
            continue;
        };
        let alias = format!("ob{i}");
        q.push(" LEFT JOIN ");
        push_latest_metric(name, q);
        q.push(" ")
            .push(&alias)
            .push(" ON ")
            .push(&alias)
            .push(".model_id = m.model_id");
    }
}

/// Appends the ORDER BY list (without the `ORDER BY` keywords).
///
/// Models lacking the metric (or with a NULL model_type/source_run_id) sort
/// last in both directions; a NaN latest metric sorts after every number and
/// before missing values, as for runs. Then MLflow's tie-breaks follow:
/// `m.creation_timestamp_ms DESC` unless creation_timestamp is already a
/// key, and `m.model_id ASC` unless model_id is. No keys thus gives
/// `m.creation_timestamp_ms DESC, m.model_id ASC`.
pub fn push_order_by(order: &[ModelOrderKey], q: &mut QueryBuilder) {
    let mut first = true;
    let mut sep = |q: &mut QueryBuilder| {
        if !first {
            q.push(", ");
        }
        first = false;
    };
    for (i, k) in order.iter().enumerate() {
        sep(q);
        let dir = if k.ascending { " ASC" } else { " DESC" };
        match &k.field {
            ModelOrderField::Metric(_) => {
                let alias = format!("ob{i}");
                q.push("CASE WHEN ")
                    .push(&alias)
                    .push(".model_id IS NULL THEN 2 WHEN ")
                    .push(&alias)
                    .push(".is_nan = TRUE THEN 1 ELSE 0 END, ")
                    .push(&alias)
                    .push(".value")
                    .push(dir);
            }
            ModelOrderField::Attribute(a) => {
                let column = a.column();
                if a.nullable() {
                    q.push("CASE WHEN ")
                        .push(column)
                        .push(" IS NULL THEN 1 ELSE 0 END, ");
                }
                q.push(column).push(dir);
            }
        }
    }
    let has = |a: ModelAttribute| {
        order
            .iter()
            .any(|k| k.field == ModelOrderField::Attribute(a))
    };
    if !has(ModelAttribute::CreationTimestamp) {
        sep(q);
        q.push("m.creation_timestamp_ms DESC");
    }
    if !has(ModelAttribute::ModelId) {
        sep(q);
        q.push("m.model_id ASC");
    }
}

// ---------------------------------------------------------------------------
// Rendering: canonical filter text that `parse_filter` parses back to an
// equal AST, for every AST the parser can produce.

impl fmt::Display for ModelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, name) = match self {
            ModelKey::Attribute(a) => return f.write_str(a.name()),
            ModelKey::Metric(k) => ("metrics.", k),
            ModelKey::Param(k) => ("params.", k),
            ModelKey::Tag(k) => ("tags.", k),
        };
        f.write_str(prefix)?;
        write_name(f, name)
    }
}

impl fmt::Display for ModelValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelValue::String(s) => write_quoted(f, '\'', s),
            ModelValue::Number(n) => write!(f, "{n}"),
            ModelValue::List(items) => write_string_list(f, items),
            ModelValue::Null => f.write_str("NULL"),
        }
    }
}

impl fmt::Display for ModelComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_comparison(f, &self.key, self.op, &self.value)
    }
}

impl fmt::Display for ModelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(f, self)
    }
}

impl fmt::Display for ModelOrderField {
    /// The field name `parse_order_by` reads back to the same field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelOrderField::Attribute(a) => f.write_str(a.name()),
            ModelOrderField::Metric(k) => write!(f, "metrics.{k}"),
        }
    }
}
