//! Compiles the search AST into SQL on the runs table (aliased `r`).
//!
//! Metric, param, tag and dataset comparisons become membership tests
//! (`r.run_uuid IN (SELECT …)`), so every comparison is a two-valued boolean
//! and `AND`/`OR`/`NOT` compose as plain boolean logic. Attribute
//! comparisons test columns of `r`; a NULL in a nullable column never
//! satisfies a comparison, also under `NOT`.
//!
//! Every value, keys included, is bound with `push_bind`; text is pushed
//! strictly left to right, so `$n` numbering follows the binds.

use keel_core::sql::{Dialect, QueryBuilder, SqlValue};

use super::ast::{Attribute, Comparison, DatasetField, Expr, Key, Op, OrderKey, Value};
use super::boolean::push_bool;

/// How a membership test (`run_uuid IN (SELECT …)`) may be planned.
///
/// SQLite's planner cannot weigh a membership list against the run index
/// it would scan in `ORDER BY` order: left alone it always drives the query
/// from the list, which is fast when the list is short and slow (a random
/// lookup plus a sort per matching run) when it holds most runs. `Probe`
/// writes the test as a correlated `EXISTS (…)`, so runs are scanned in
/// order, each is checked with one primary-key lookup, and the scan stops at
/// `LIMIT`. PostgreSQL plans both forms alike by statistics and always gets
/// the plain form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Drive,
    Probe,
}

#[derive(Debug, Clone, Copy)]
struct Ctx {
    dialect: Dialect,
    membership: Membership,
}

impl Ctx {
    fn probe(self) -> bool {
        self.dialect == Dialect::Sqlite && self.membership == Membership::Probe
    }
}

/// Appends the filter as one SQL boolean expression (no leading or trailing
/// space; the caller wraps it in parentheses). `And`/`Or` with no children
/// compile to `1 = 1`/`1 = 0`.
pub fn push_filter(expr: &Expr, dialect: Dialect, q: &mut QueryBuilder) {
    push_filter_planned(expr, dialect, Membership::Drive, q);
}

/// [`push_filter`] with a chosen plan for membership tests.
pub fn push_filter_planned(
    expr: &Expr,
    dialect: Dialect,
    membership: Membership,
    q: &mut QueryBuilder,
) {
    let ctx = Ctx {
        dialect,
        membership,
    };
    push_bool(expr, q, &|c, q| push_comparison(c, ctx, q));
}

/// For a comparison that compiles to a membership list (metric, param or
/// tag; not `IS NULL`), appends `SELECT run_uuid FROM … WHERE …`, the ids of
/// the runs on that list (each at most once: the tables are keyed by run and
/// key), and returns true, so the caller can count the list or start a query
/// from it. Returns false (appending nothing) otherwise.
pub fn push_membership_rows(c: &Comparison, dialect: Dialect, q: &mut QueryBuilder) -> bool {
    if c.op == Op::IsNull {
        return false;
    }
    match &c.key {
        Key::Metric(k) => push_keyed_rows("latest_metrics", k, c, true, dialect, q),
        Key::Param(k) => push_keyed_rows("params", k, c, false, dialect, q),
        Key::Tag(k) => push_keyed_rows("tags", k, c, false, dialect, q),
        Key::Attribute(_) | Key::Dataset(_) => return false,
    }
    true
}

/// How numbers and strings are bound for a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColumnType {
    Text,
    /// BIGINT: integral numbers bind as `Int`, others as `Real`.
    Int,
    Real,
}

pub(super) fn number_bind(n: f64, ty: ColumnType) -> SqlValue {
    // 2^63 as f64; `as` saturates, so check the range explicitly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match ty {
        ColumnType::Int if n.fract() == 0.0 && (-LIMIT..LIMIT).contains(&n) => {
            SqlValue::Int(n as i64)
        }
        ColumnType::Int | ColumnType::Real => SqlValue::Real(n),
        ColumnType::Text => SqlValue::Text(n.to_string()),
    }
}

fn scalar_bind(value: &Value, ty: ColumnType) -> Option<SqlValue> {
    match value {
        Value::Number(n) => Some(number_bind(*n, ty)),
        Value::String(s) => Some(SqlValue::Text(s.clone())),
        Value::List(_) | Value::Null => None,
    }
}

fn push_comparison(c: &Comparison, ctx: Ctx, q: &mut QueryBuilder) {
    let dialect = ctx.dialect;
    match &c.key {
        Key::Metric(k) => push_keyed("latest_metrics", k, c, true, ctx, q),
        Key::Param(k) => push_keyed("params", k, c, false, ctx, q),
        Key::Tag(k) => push_keyed("tags", k, c, false, ctx, q),
        Key::Attribute(a) => push_attribute(*a, c, dialect, q),
        Key::Dataset(field) => {
            let column = match field {
                DatasetField::Name => "d.name",
                DatasetField::Digest => "d.digest",
                DatasetField::Context => "ri.context",
            };
            q.push(if ctx.probe() {
                "EXISTS (SELECT 1"
            } else {
                "r.run_uuid IN (SELECT ri.run_uuid"
            });
            q.push(
                " FROM run_inputs ri JOIN datasets d ON d.dataset_uuid = ri.dataset_uuid WHERE ",
            );
            push_predicate(column, ColumnType::Text, c.op, &c.value, dialect, q);
            if ctx.probe() {
                q.push(" AND ri.run_uuid = r.run_uuid");
            }
            q.push(")");
        }
    }
}

/// A comparison on a key/value table (`latest_metrics`, `params`, `tags`).
fn push_keyed(
    table: &str,
    key: &str,
    c: &Comparison,
    is_metric: bool,
    ctx: Ctx,
    q: &mut QueryBuilder,
) {
    let negated = c.op == Op::IsNull;
    if ctx.probe() {
        q.push(if negated {
            "NOT EXISTS (SELECT 1"
        } else {
            "EXISTS (SELECT 1"
        });
        push_keyed_body(table, key, c, is_metric, ctx.dialect, q);
        q.push(" AND run_uuid = r.run_uuid)");
    } else {
        q.push(if negated {
            "r.run_uuid NOT IN (SELECT run_uuid"
        } else {
            "r.run_uuid IN (SELECT run_uuid"
        });
        push_keyed_body(table, key, c, is_metric, ctx.dialect, q);
        q.push(")");
    }
}

fn push_keyed_rows(
    table: &str,
    key: &str,
    c: &Comparison,
    is_metric: bool,
    dialect: Dialect,
    q: &mut QueryBuilder,
) {
    q.push("SELECT run_uuid");
    push_keyed_body(table, key, c, is_metric, dialect, q);
}

/// ` FROM <table> WHERE key = $k [AND <value test>]`.
fn push_keyed_body(
    table: &str,
    key: &str,
    c: &Comparison,
    is_metric: bool,
    dialect: Dialect,
    q: &mut QueryBuilder,
) {
    q.push(" FROM ")
        .push(table)
        .push(" WHERE key = ")
        .push_bind(key);
    match c.op {
        Op::IsNull | Op::IsNotNull => {}
        Op::Ne if is_metric => {
            // MLflow: NaN differs from every number, so a NaN latest value
            // satisfies `!=` (and no other comparison).
            q.push(" AND (is_nan = TRUE OR ");
            push_predicate("value", ColumnType::Real, c.op, &c.value, dialect, q);
            q.push(")");
        }
        _ if is_metric => {
            q.push(" AND is_nan = FALSE AND ");
            push_predicate("value", ColumnType::Real, c.op, &c.value, dialect, q);
        }
        _ => {
            q.push(" AND ");
            push_predicate("value", ColumnType::Text, c.op, &c.value, dialect, q);
        }
    }
}

fn attribute_column(a: Attribute) -> &'static str {
    match a {
        Attribute::RunId => "r.run_uuid",
        Attribute::RunName => "r.run_name",
        Attribute::Status => "r.status",
        Attribute::ArtifactUri => "r.artifact_uri",
        Attribute::UserId => "r.user_id",
        Attribute::LifecycleStage => "r.lifecycle_stage",
        Attribute::StartTime => "r.start_time",
        Attribute::EndTime => "r.end_time",
    }
}

/// Attributes whose column may be NULL: a run that has not ended has no
/// end time. (Every other runs column is NOT NULL.)
fn attribute_nullable(a: Attribute) -> bool {
    a == Attribute::EndTime
}

fn push_attribute(a: Attribute, c: &Comparison, dialect: Dialect, q: &mut QueryBuilder) {
    let column = attribute_column(a);
    let ty = if a.is_numeric() {
        ColumnType::Int
    } else {
        ColumnType::Text
    };
    let guard = attribute_nullable(a) && !matches!(c.op, Op::IsNull | Op::IsNotNull);
    if guard {
        // Keeps the comparison two-valued: NULL gives FALSE, not UNKNOWN,
        // so `NOT (...)` selects the run.
        q.push("(").push(column).push(" IS NOT NULL AND ");
    }
    push_predicate(column, ty, c.op, &c.value, dialect, q);
    if guard {
        q.push(")");
    }
}

/// Appends a boolean expression comparing `column` with `value`. Operator
/// and value combinations the parser never produces still compile to valid
/// SQL: a scalar for `IN` is a one-element list, anything meaningless is
/// `1 = 0`.
fn push_predicate(
    column: &str,
    ty: ColumnType,
    op: Op,
    value: &Value,
    dialect: Dialect,
    q: &mut QueryBuilder,
) {
    let sql_op = match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Like | Op::ILike => {
            let pattern = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::List(_) | Value::Null => {
                    q.push("1 = 0");
                    return;
                }
            };
            push_like(column, &pattern, op == Op::ILike, dialect, q);
            return;
        }
        Op::In | Op::NotIn => {
            let items: Vec<SqlValue> = match value {
                Value::List(items) => items.iter().map(|s| SqlValue::Text(s.clone())).collect(),
                other => scalar_bind(other, ty).into_iter().collect(),
            };
            push_in_list(column, op, items, q);
            return;
        }
        Op::IsNull | Op::IsNotNull => {
            q.push(column).push(if op == Op::IsNull {
                " IS NULL"
            } else {
                " IS NOT NULL"
            });
            return;
        }
    };
    match (scalar_bind(value, ty), op) {
        (Some(bind), _) => push_binary(column, sql_op, bind, q),
        (None, Op::Eq) if *value == Value::Null => {
            q.push(column).push(" IS NULL");
        }
        (None, Op::Ne) if *value == Value::Null => {
            q.push(column).push(" IS NOT NULL");
        }
        (None, _) => {
            q.push("1 = 0");
        }
    }
}

/// `column IN (…)` or `column NOT IN (…)` for `op`; an empty list is
/// `1 = 0` (IN) or `1 = 1` (NOT IN).
fn push_in_list(column: &str, op: Op, items: Vec<SqlValue>, q: &mut QueryBuilder) {
    if items.is_empty() {
        q.push(if op == Op::In { "1 = 0" } else { "1 = 1" });
        return;
    }
    q.push(column)
        .push(if op == Op::In { " IN (" } else { " NOT IN (" });
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push_bind(item);
    }
    q.push(")");
}

/// `column <sql_op> $n`.
fn push_binary(column: &str, sql_op: &str, bind: SqlValue, q: &mut QueryBuilder) {
    q.push(column)
        .push(" ")
        .push(sql_op)
        .push(" ")
        .push_bind(bind);
}

/// The right-hand side of an experiment or logged-model comparison, as
/// [`push_operand`] binds it.
pub(super) enum Operand<'a> {
    /// A string value or LIKE pattern.
    Text(&'a str),
    /// A number or id, already converted for the column.
    Scalar(SqlValue),
    /// The items of `IN`/`NOT IN`.
    List(Vec<SqlValue>),
    Null,
}

/// Appends `column <op> <operand>` as a boolean expression for experiment
/// and logged-model search. Operator/operand pairs their parsers never
/// produce compile to `1 = 0`.
pub(super) fn push_operand(
    column: &str,
    op: Op,
    operand: Operand<'_>,
    dialect: Dialect,
    q: &mut QueryBuilder,
) {
    let bind = match (op, operand) {
        (Op::Like | Op::ILike, Operand::Text(pattern)) => {
            push_like(column, pattern, op == Op::ILike, dialect, q);
            return;
        }
        (Op::In | Op::NotIn, Operand::List(items)) => {
            push_in_list(column, op, items, q);
            return;
        }
        (Op::IsNull, _) => {
            q.push(column).push(" IS NULL");
            return;
        }
        (Op::IsNotNull, _) => {
            q.push(column).push(" IS NOT NULL");
            return;
        }
        (_, Operand::Text(s)) => SqlValue::Text(s.to_owned()),
        (_, Operand::Scalar(bind)) => bind,
        (_, Operand::List(_) | Operand::Null) => {
            q.push("1 = 0");
            return;
        }
    };
    let sql_op = match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        _ => {
            q.push("1 = 0");
            return;
        }
    };
    push_binary(column, sql_op, bind, q);
}

/// One element of a LIKE pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LikePart {
    /// `%`
    AnyRun,
    /// `_`
    AnyChar,
    Literal(char),
}

/// Splits a LIKE pattern: `%` and `_` are wildcards, a backslash makes the
/// next character literal, and a trailing lone backslash is literal.
fn like_parts(pattern: &str) -> Vec<LikePart> {
    let mut parts = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        parts.push(match c {
            '%' => LikePart::AnyRun,
            '_' => LikePart::AnyChar,
            '\\' => LikePart::Literal(chars.next().unwrap_or('\\')),
            other => LikePart::Literal(other),
        });
    }
    parts
}

/// The pattern for `LIKE`/`ILIKE` with backslash as the escape character
/// (PostgreSQL's default; SQLite gets an explicit `ESCAPE '\'`).
fn escaped_like_pattern(parts: &[LikePart]) -> String {
    let mut out = String::with_capacity(parts.len());
    for part in parts {
        match part {
            LikePart::AnyRun => out.push('%'),
            LikePart::AnyChar => out.push('_'),
            LikePart::Literal(c @ ('%' | '_' | '\\')) => {
                out.push('\\');
                out.push(*c);
            }
            LikePart::Literal(c) => out.push(*c),
        }
    }
    out
}

/// The same pattern for SQLite's case-sensitive `GLOB`: `*` and `?` are the
/// wildcards, and the literal characters GLOB treats specially (`*`, `?`,
/// `[`) become one-character classes (`[*]`, `[?]`, `[[]`).
fn glob_pattern(parts: &[LikePart]) -> String {
    let mut out = String::with_capacity(parts.len());
    for part in parts {
        match part {
            LikePart::AnyRun => out.push('*'),
            LikePart::AnyChar => out.push('?'),
            LikePart::Literal('*') => out.push_str("[*]"),
            LikePart::Literal('?') => out.push_str("[?]"),
            LikePart::Literal('[') => out.push_str("[[]"),
            LikePart::Literal(c) => out.push(*c),
        }
    }
    out
}

/// Appends `column LIKE pattern` (or `ILIKE` when `case_insensitive`) as a
/// boolean expression, with the pattern bound: case-sensitive `LIKE` and
/// case-insensitive `ILIKE` on both dialects (SQLite uses `GLOB` and
/// `LOWER(..) LIKE LOWER(..)`).
fn push_like(
    column: &str,
    pattern: &str,
    case_insensitive: bool,
    dialect: Dialect,
    q: &mut QueryBuilder,
) {
    let parts = like_parts(pattern);
    match (dialect, case_insensitive) {
        (Dialect::Postgres, false) => {
            q.push(column)
                .push(" LIKE ")
                .push_bind(escaped_like_pattern(&parts));
        }
        (Dialect::Postgres, true) => {
            q.push(column)
                .push(" ILIKE ")
                .push_bind(escaped_like_pattern(&parts));
        }
        (Dialect::Sqlite, false) => {
            q.push(column)
                .push(" GLOB ")
                .push_bind(glob_pattern(&parts));
        }
        (Dialect::Sqlite, true) => {
            q.push("LOWER(")
                .push(column)
                .push(") LIKE LOWER(")
                .push_bind(escaped_like_pattern(&parts))
                .push(") ESCAPE '\\'");
        }
    }
}

/// The tables order_by keys join, by key kind; `None` for keys read off `r`.
fn order_table(key: &Key) -> Option<&'static str> {
    match key {
        Key::Metric(_) => Some("latest_metrics"),
        Key::Param(_) => Some("params"),
        Key::Tag(_) => Some("tags"),
        Key::Attribute(_) | Key::Dataset(_) => None,
    }
}

/// Appends one `LEFT JOIN <table> ob<i> ON ob<i>.run_uuid = r.run_uuid AND
/// ob<i>.key = $n` per metric, param or tag order key (`i` is the key's index
/// in `order`), each with a leading space. Must be pushed before the filter
/// so placeholders stay in order; appends nothing when no key needs a join.
pub fn push_order_joins(order: &[OrderKey], q: &mut QueryBuilder) {
    for (i, ok) in order.iter().enumerate() {
        let (Some(table), Key::Metric(name) | Key::Param(name) | Key::Tag(name)) =
            (order_table(&ok.key), &ok.key)
        else {
            continue;
        };
        let alias = format!("ob{i}");
        q.push(" LEFT JOIN ")
            .push(table)
            .push(" ")
            .push(&alias)
            .push(" ON ")
            .push(&alias)
            .push(".run_uuid = r.run_uuid AND ")
            .push(&alias)
            .push(".key = ")
            .push_bind(name.as_str());
    }
}

/// Appends the ORDER BY list (without the `ORDER BY` keywords).
///
/// Runs lacking a metric, param or tag (or with a NULL attribute) sort last
/// in both directions; a NaN latest metric sorts after every number and
/// before missing values, as in MLflow. Then MLflow's tie-breaks follow:
/// `r.start_time DESC` unless start_time is already an order key, and
/// `r.run_uuid ASC` unless run_id is. Dataset keys are skipped.
pub fn push_order_by(order: &[OrderKey], q: &mut QueryBuilder) {
    let mut first = true;
    let mut sep = |q: &mut QueryBuilder| {
        if !first {
            q.push(", ");
        }
        first = false;
    };
    for (i, ok) in order.iter().enumerate() {
        let dir = if ok.ascending { " ASC" } else { " DESC" };
        match &ok.key {
            Key::Metric(_) => {
                sep(q);
                let alias = format!("ob{i}");
                q.push("CASE WHEN ")
                    .push(&alias)
                    .push(".run_uuid IS NULL THEN 2 WHEN ")
                    .push(&alias)
                    .push(".is_nan = TRUE THEN 1 ELSE 0 END, ")
                    .push(&alias)
                    .push(".value")
                    .push(dir);
            }
            Key::Param(_) | Key::Tag(_) => {
                sep(q);
                let alias = format!("ob{i}");
                q.push("CASE WHEN ")
                    .push(&alias)
                    .push(".run_uuid IS NULL THEN 1 ELSE 0 END, ")
                    .push(&alias)
                    .push(".value")
                    .push(dir);
            }
            Key::Attribute(a) => {
                sep(q);
                let column = attribute_column(*a);
                if attribute_nullable(*a) {
                    q.push("CASE WHEN ")
                        .push(column)
                        .push(" IS NULL THEN 1 ELSE 0 END, ");
                }
                q.push(column).push(dir);
            }
            Key::Dataset(_) => {}
        }
    }
    let has = |a: Attribute| order.iter().any(|k| k.key == Key::Attribute(a));
    if !has(Attribute::StartTime) {
        sep(q);
        q.push("r.start_time DESC");
    }
    if !has(Attribute::RunId) {
        sep(q);
        q.push("r.run_uuid ASC");
    }
}
