//! Tests of logged-model search: parsing, errors, SQL, order_by, end-to-end
//! cases and round trips.

use keel_core::sql::{Dialect, QueryBuilder, SqlValue};
use proptest::prelude::*;

use super::super::logged_models::{
    ModelAttribute as A, ModelComparison, ModelFilter as F, ModelKey as K, ModelOrderField,
    ModelOrderKey, ModelValue as V, parse_filter, parse_order_by, push_filter, push_order_by,
    push_order_joins,
};
use super::super::{FilterError, MAX_NESTING, Op};
use super::compile_tests::count_placeholders;
use super::proptests::{key_name, number, string_value};
use super::sqlite_cases::{case_line, json_string, write_cases};
use super::{assert_rejected, assert_rejected_with, filters, parsed, rejected, text};

fn parse(input: &str) -> F {
    parsed(parse_filter, input)
}

fn parse_err(input: &str) -> FilterError {
    rejected(parse_filter, input)
}

fn assert_err(input: &str, position: usize, near: &str, message: &str) {
    assert_rejected(parse_filter, input, position, near, message);
}

fn assert_err_contains(input: &str, needle: &str) {
    assert_rejected_with(parse_filter, input, needle);
}

fn cmp(key: K, op: Op, value: V) -> F {
    F::Compare(ModelComparison { key, op, value })
}

fn attr(a: A, op: Op, value: V) -> F {
    cmp(K::Attribute(a), op, value)
}

fn s(v: &str) -> V {
    V::String(v.into())
}

fn list(items: &[&str]) -> V {
    V::List(items.iter().map(|i| i.to_string()).collect())
}

fn order(entries: &[(&str, bool)]) -> Result<Vec<ModelOrderKey>, FilterError> {
    let entries: Vec<(String, bool)> = entries.iter().map(|(f, a)| (f.to_string(), *a)).collect();
    parse_order_by(&entries)
}

fn okey(field: ModelOrderField, ascending: bool) -> ModelOrderKey {
    ModelOrderKey { field, ascending }
}

fn compile(input: &str, dialect: Dialect) -> (String, Vec<SqlValue>) {
    let mut q = QueryBuilder::new();
    push_filter(&parse(input), dialect, &mut q);
    assert_eq!(count_placeholders(q.sql()), q.binds().len());
    q.into_parts()
}

fn order_sql(order: &[ModelOrderKey]) -> (String, Vec<SqlValue>) {
    let mut q = QueryBuilder::new();
    push_order_joins(order, &mut q);
    q.push(" | ");
    push_order_by(order, &mut q);
    assert_eq!(count_placeholders(q.sql()), q.binds().len());
    q.into_parts()
}

const LATEST_1: &str = "(SELECT lr.model_id, lr.value, lr.is_nan FROM (SELECT model_id, value, is_nan, \
     ROW_NUMBER() OVER (PARTITION BY model_id ORDER BY step DESC, timestamp DESC, \
     value DESC, is_nan ASC, run_uuid ASC) AS rn FROM metrics \
     WHERE model_id IS NOT NULL AND key = $1) lr WHERE lr.rn = 1)";

// --- parsing ---------------------------------------------------------------

#[test]
fn empty_filter_is_none() {
    assert_eq!(parse_filter(""), Ok(None));
    assert_eq!(parse_filter("  \t\n"), Ok(None));
}

#[test]
fn name_equality_the_clients_main_call() {
    assert_eq!(parse("name = 'model'"), attr(A::Name, Op::Eq, s("model")));
    assert_eq!(parse("name='model'"), attr(A::Name, Op::Eq, s("model")));
    assert_eq!(parse("name = \"model\""), attr(A::Name, Op::Eq, s("model")));
    assert_eq!(parse("name = 'it''s'"), attr(A::Name, Op::Eq, s("it's")));
}

#[test]
fn string_attributes_and_operators() {
    for (name, a) in [
        ("name", A::Name),
        ("model_id", A::ModelId),
        ("model_type", A::ModelType),
        ("status", A::Status),
        ("source_run_id", A::SourceRunId),
    ] {
        for (op_text, op) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            ("LIKE", Op::Like),
            ("ilike", Op::ILike),
        ] {
            assert_eq!(
                parse(&format!("{name} {op_text} 'v'")),
                attr(a, op, s("v")),
                "{name} {op_text}"
            );
        }
        assert_eq!(
            parse(&format!("{name} IN ('a', 'b')")),
            attr(a, Op::In, list(&["a", "b"]))
        );
        assert_eq!(
            parse(&format!("{name} not in ('a')")),
            attr(a, Op::NotIn, list(&["a"]))
        );
    }
}

#[test]
fn attribute_prefixes_and_aliases() {
    let expected = attr(A::Name, Op::Eq, s("x"));
    for prefix in [
        "",
        "attribute.",
        "attributes.",
        "attr.",
        "Attributes.",
        "ATTRIBUTE.",
    ] {
        assert_eq!(parse(&format!("{prefix}name = 'x'")), expected, "{prefix}");
    }
    assert_eq!(parse("attributes.`name` = 'x'"), expected);
    assert_eq!(parse("`name` = 'x'"), expected);
    for name in [
        "creation_timestamp",
        "creation_time",
        "creation_timestamp_ms",
        "attributes.creation_time",
    ] {
        assert_eq!(
            parse(&format!("{name} > 5")),
            attr(A::CreationTimestamp, Op::Gt, V::Number(5.0)),
            "{name}"
        );
    }
    for name in [
        "last_updated_timestamp",
        "last_updated_time",
        "last_updated_timestamp_ms",
    ] {
        assert_eq!(
            parse(&format!("{name} <= 1.5e3")),
            attr(A::LastUpdatedTimestamp, Op::Le, V::Number(1500.0)),
            "{name}"
        );
    }
}

#[test]
fn numeric_attribute_operators() {
    for (op_text, op) in [
        ("=", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        ("<=", Op::Le),
        (">", Op::Gt),
        (">=", Op::Ge),
    ] {
        assert_eq!(
            parse(&format!("creation_timestamp {op_text} -7")),
            attr(A::CreationTimestamp, op, V::Number(-7.0))
        );
    }
}

#[test]
fn metric_comparisons() {
    assert_eq!(
        parse("metrics.accuracy > 0.9"),
        cmp(K::Metric("accuracy".into()), Op::Gt, V::Number(0.9))
    );
    assert_eq!(
        parse("metric.`val loss` <= 1"),
        cmp(K::Metric("val loss".into()), Op::Le, V::Number(1.0))
    );
    assert_eq!(
        parse("METRICS.a.b != -2"),
        cmp(K::Metric("a.b".into()), Op::Ne, V::Number(-2.0))
    );
}

#[test]
fn param_and_tag_comparisons() {
    for (prefix, make) in [
        ("params", K::Param as fn(String) -> K),
        ("param", K::Param),
        ("parameters", K::Param),
        ("tags", K::Tag),
        ("tag", K::Tag),
    ] {
        let key = || make("k".into());
        assert_eq!(
            parse(&format!("{prefix}.k = 'v'")),
            cmp(key(), Op::Eq, s("v"))
        );
        assert_eq!(
            parse(&format!("{prefix}.k LIKE 'v%'")),
            cmp(key(), Op::Like, s("v%"))
        );
        assert_eq!(
            parse(&format!("{prefix}.k is null")),
            cmp(key(), Op::IsNull, V::Null)
        );
        assert_eq!(
            parse(&format!("{prefix}.k IS NOT NULL")),
            cmp(key(), Op::IsNotNull, V::Null)
        );
        assert_eq!(
            parse(&format!("{prefix}.k IN ('a', 'b')")),
            cmp(key(), Op::In, list(&["a", "b"]))
        );
    }
    assert_eq!(
        parse("tags.mlflow.user = 'ann'"),
        cmp(K::Tag("mlflow.user".into()), Op::Eq, s("ann"))
    );
    assert_eq!(
        parse("tags.\"my key\" != 'x'"),
        cmp(K::Tag("my key".into()), Op::Ne, s("x"))
    );
}

#[test]
fn boolean_structure_and_precedence() {
    let a = || attr(A::Name, Op::Eq, s("a"));
    let b = || cmp(K::Metric("m".into()), Op::Gt, V::Number(1.0));
    let c = || cmp(K::Tag("t".into()), Op::IsNull, V::Null);
    assert_eq!(
        parse("name = 'a' AND metrics.m > 1 AND tags.t IS NULL"),
        F::And(vec![a(), b(), c()])
    );
    assert_eq!(
        parse("name = 'a' OR metrics.m > 1 and tags.t IS NULL"),
        F::Or(vec![a(), F::And(vec![b(), c()])])
    );
    assert_eq!(
        parse("NOT (name = 'a' OR metrics.m > 1) AND tags.t IS NULL"),
        F::And(vec![F::Not(Box::new(F::Or(vec![a(), b()]))), c()])
    );
    assert_eq!(parse("((name = 'a'))"), a());
}

// --- errors ----------------------------------------------------------------

#[test]
fn unknown_attribute_lists_the_valid_ones() {
    assert_err(
        "nam = 'x'",
        0,
        "nam",
        "unknown attribute 'nam'; valid attributes are name, model_id, model_type, status, \
         source_run_id, creation_timestamp, last_updated_timestamp (metrics, params and tags \
         need a prefix, e.g. metrics.nam)",
    );
    let e = parse_err("attributes.experiment_id = '1'");
    assert_eq!((e.position, e.near.as_str()), (11, "experiment_id"));
    // Attribute names are case-sensitive, as in MLflow.
    assert_err_contains("Name = 'x'", "unknown attribute 'Name'");
}

#[test]
fn unknown_entity_is_named() {
    assert_err(
        "datasets.name = 'x'",
        0,
        "datasets",
        "unknown entity 'datasets'; logged models are searched by attributes (name, model_id, \
         model_type, status, source_run_id, creation_timestamp, last_updated_timestamp), \
         metrics, params or tags",
    );
    assert_err(
        "metrics = 1",
        0,
        "metrics",
        "expected '.' and a key after 'metrics' (e.g. metrics.my_key)",
    );
    assert_err("tags. = 'x'", 5, "tags.", "expected a key after 'tags.'");
}

#[test]
fn operators_are_checked_per_key() {
    assert_err(
        "metrics.acc LIKE '1'",
        12,
        "LIKE",
        "LIKE is not allowed on metrics; use = != < <= > >=",
    );
    assert_err(
        "name > 'a'",
        5,
        ">",
        "> is not allowed on attribute name; use = != LIKE ILIKE IN NOT IN",
    );
    assert_err(
        "creation_timestamp IN ('1')",
        19,
        "IN",
        "IN is not allowed on numeric attribute creation_timestamp; use = != < <= > >=",
    );
    assert_err(
        "model_type IS NULL",
        11,
        "IS",
        "IS NULL is not allowed on attribute model_type; use = != LIKE ILIKE IN NOT IN \
         (IS NULL and IS NOT NULL are supported for params and tags only)",
    );
    assert_err(
        "params.lr < '1'",
        10,
        "<",
        "< is not allowed on params; use = != LIKE ILIKE IN NOT IN IS NULL IS NOT NULL",
    );
    assert_err(
        "name 'x'",
        5,
        "'x'",
        "expected a comparison operator; attribute name take = != LIKE ILIKE IN NOT IN",
    );
    assert_err("name == 'x'", 5, "==", "'==' is not an operator; use =");
}

#[test]
fn values_are_checked_per_key() {
    assert_err(
        "metrics.acc > '0.9'",
        14,
        "'0.9'",
        "expected a number (metrics compare numerically), found a quoted string",
    );
    assert_err(
        "creation_time > abc",
        16,
        "abc",
        "expected a number (numeric attribute creation_timestamp compare numerically)",
    );
    assert_err(
        "name = model",
        7,
        "model",
        "expected a quoted string value for attribute name (e.g. 'value'); string values must be quoted",
    );
    assert_err(
        "tags.t = 5",
        9,
        "5",
        "expected a quoted string value for tags (e.g. 'value'), found a number",
    );
    assert_err(
        "name = ",
        7,
        "",
        "expected a quoted string value for attribute name (e.g. 'value') after =",
    );
    assert_err(
        "model_id IN 'a'",
        12,
        "'a'",
        "expected '(' and a list of quoted strings after IN, e.g. ('a', 'b')",
    );
    assert_err(
        "model_id IN ()",
        13,
        ")",
        "expected at least one quoted string in the IN list",
    );
    assert_err(
        "model_id IN ('a', 1)",
        18,
        "1",
        "expected a quoted string in the IN list",
    );
}

#[test]
fn structural_errors() {
    assert_err(
        "name = 'a' name = 'b'",
        11,
        "name",
        "expected AND, OR or the end of the filter",
    );
    assert_err("name = 'a')", 10, ")", "unmatched ')'");
    assert_err(
        "(name = 'a'",
        11,
        "",
        "expected ')' to close the '(' at character 0",
    );
    assert_err(
        "name = 'a' AND",
        14,
        "",
        "expected a comparison such as name = 'my-model'",
    );
    assert_err(
        "AND name = 'a'",
        0,
        "AND",
        "expected a comparison such as name = 'my-model', found the keyword AND",
    );
    assert_err(
        "'name' = 'a'",
        0,
        "'name'",
        "expected a key such as name or metrics.accuracy, found a string; quote keys with backticks or double quotes",
    );
    assert_err(
        "name = 'a",
        7,
        "'a",
        "unterminated string: missing closing '",
    );
    let deep = format!("{}name = 'a'", "NOT ".repeat(MAX_NESTING + 1));
    assert_err_contains(&deep, "more than 64 deep");
}

#[test]
fn error_display_has_position_and_near() {
    assert_eq!(
        parse_err("name = 'a' & name = 'b'").to_string(),
        "invalid filter at character 11 near '&': unexpected character '&'; use AND"
    );
}

// --- order_by --------------------------------------------------------------

#[test]
fn order_by_parses_attributes_and_metrics() {
    use ModelOrderField::{Attribute as At, Metric};
    assert_eq!(order(&[]), Ok(vec![]));
    assert_eq!(
        order(&[
            ("name", true),
            ("creation_timestamp", false),
            ("creation_timestamp_ms", true),
            ("creation_time", true),
            ("last_updated_timestamp", false),
            ("last_updated_timestamp_ms", true),
            (" model_id ", true),
            ("status", false),
            ("attributes.model_type", true),
            ("source_run_id", true),
            ("metrics.acc", false),
            ("metrics.val loss", true),
            ("metrics.a.b", true),
        ]),
        Ok(vec![
            okey(At(A::Name), true),
            okey(At(A::CreationTimestamp), false),
            okey(At(A::CreationTimestamp), true),
            okey(At(A::CreationTimestamp), true),
            okey(At(A::LastUpdatedTimestamp), false),
            okey(At(A::LastUpdatedTimestamp), true),
            okey(At(A::ModelId), true),
            okey(At(A::Status), false),
            okey(At(A::ModelType), true),
            okey(At(A::SourceRunId), true),
            okey(Metric("acc".into()), false),
            okey(Metric("val loss".into()), true),
            okey(Metric("a.b".into()), true),
        ])
    );
}

#[test]
fn order_by_errors() {
    let err = |entries: &[(&str, bool)]| match order(entries) {
        Err(e) => (e.clause, e.position, e.near, e.message),
        Ok(k) => panic!("{entries:?} parsed, to {k:?}"),
    };
    assert_eq!(
        err(&[("name", true), ("params.lr", true)]),
        (
            Some(1),
            0,
            "params".into(),
            "logged models cannot be ordered by 'params' fields; order by attributes (name, \
             model_id, model_type, status, source_run_id, creation_timestamp, \
             last_updated_timestamp) or metrics.<key>"
                .into()
        )
    );
    assert_eq!(
        err(&[("nme", false)]),
        (
            Some(0),
            0,
            "nme".into(),
            "unknown order_by attribute 'nme'; order by name, model_id, model_type, status, \
             source_run_id, creation_timestamp, last_updated_timestamp or metrics.<key>"
                .into()
        )
    );
    let (clause, position, near, _) = err(&[("attributes.bogus", true)]);
    assert_eq!((clause, position, near.as_str()), (Some(0), 11, "bogus"));
    assert_eq!(
        err(&[("metrics.", true)]),
        (
            Some(0),
            8,
            "".into(),
            "expected a metric key after 'metrics.'".into()
        )
    );
    let (_, _, _, message) = err(&[("  ", true)]);
    assert!(
        message.starts_with("empty order_by field name"),
        "{message}"
    );
    assert_eq!(
        order(&[("name DESC", true)]).map_err(|e| e.to_string()),
        Err(
            "invalid order_by[0] at character 0 near 'name DESC': unknown order_by attribute \
             'name DESC'; order by name, model_id, model_type, status, source_run_id, \
             creation_timestamp, last_updated_timestamp or metrics.<key>"
                .into()
        )
    );
}

#[test]
fn order_by_sql() {
    use ModelOrderField::{Attribute as At, Metric};
    let sql = |keys: &[ModelOrderKey]| order_sql(keys).0;
    assert_eq!(sql(&[]), " | m.creation_timestamp_ms DESC, m.model_id ASC");
    assert_eq!(
        sql(&[okey(At(A::Name), true)]),
        " | m.name ASC, m.creation_timestamp_ms DESC, m.model_id ASC"
    );
    assert_eq!(
        sql(&[okey(At(A::CreationTimestamp), true)]),
        " | m.creation_timestamp_ms ASC, m.model_id ASC"
    );
    assert_eq!(
        sql(&[okey(At(A::ModelId), false), okey(At(A::Status), true)]),
        " | m.model_id DESC, m.status ASC, m.creation_timestamp_ms DESC"
    );
    assert_eq!(
        sql(&[
            okey(At(A::LastUpdatedTimestamp), false),
            okey(At(A::CreationTimestamp), false),
            okey(At(A::ModelId), true),
        ]),
        " | m.last_updated_timestamp_ms DESC, m.creation_timestamp_ms DESC, m.model_id ASC"
    );
    // Nullable columns sort NULLs last both ways.
    assert_eq!(
        sql(&[okey(At(A::SourceRunId), false)]),
        " | CASE WHEN m.source_run_id IS NULL THEN 1 ELSE 0 END, m.source_run_id DESC, \
         m.creation_timestamp_ms DESC, m.model_id ASC"
    );
    // Metrics join the latest value per model: missing last, NaN before.
    let (sql, binds) = order_sql(&[
        okey(At(A::Name), true),
        okey(Metric("acc".into()), false),
        okey(Metric("loss".into()), true),
    ]);
    let latest_2 = LATEST_1.replace("$1", "$2");
    assert_eq!(
        sql,
        format!(
            " LEFT JOIN {LATEST_1} ob1 ON ob1.model_id = m.model_id \
             LEFT JOIN {latest_2} ob2 ON ob2.model_id = m.model_id | m.name ASC, \
             CASE WHEN ob1.model_id IS NULL THEN 2 WHEN ob1.is_nan = TRUE THEN 1 ELSE 0 END, \
             ob1.value DESC, \
             CASE WHEN ob2.model_id IS NULL THEN 2 WHEN ob2.is_nan = TRUE THEN 1 ELSE 0 END, \
             ob2.value ASC, m.creation_timestamp_ms DESC, m.model_id ASC"
        )
    );
    assert_eq!(binds, vec![text("acc"), text("loss")]);
}

// --- SQL -------------------------------------------------------------------

#[test]
fn name_sql_is_the_same_on_both_dialects() {
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        assert_eq!(
            compile("name = 'model'", dialect),
            ("m.name = $1".into(), vec![text("model")])
        );
        assert_eq!(
            compile("model_id IN ('a', 'b')", dialect),
            ("m.model_id IN ($1, $2)".into(), vec![text("a"), text("b")])
        );
        assert_eq!(
            compile("attributes.name NOT IN ('a')", dialect),
            ("m.name NOT IN ($1)".into(), vec![text("a")])
        );
    }
}

#[test]
fn attribute_sql() {
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        assert_eq!(
            compile("creation_time >= 100", dialect),
            (
                "m.creation_timestamp_ms >= $1".into(),
                vec![SqlValue::Int(100)]
            )
        );
        assert_eq!(
            compile("last_updated_timestamp < 1.5", dialect),
            (
                "m.last_updated_timestamp_ms < $1".into(),
                vec![SqlValue::Real(1.5)]
            )
        );
        // Nullable columns stay two-valued under NOT.
        assert_eq!(
            compile("NOT model_type = 'sklearn'", dialect),
            (
                "NOT ((m.model_type IS NOT NULL AND m.model_type = $1))".into(),
                vec![text("sklearn")]
            )
        );
        assert_eq!(
            compile("source_run_id != 'r1'", dialect),
            (
                "(m.source_run_id IS NOT NULL AND m.source_run_id != $1)".into(),
                vec![text("r1")]
            )
        );
    }
}

#[test]
fn status_accepts_entity_and_proto_names() {
    let d = Dialect::Sqlite;
    assert_eq!(
        compile("status = 'READY'", d),
        ("m.status = $1".into(), vec![text("LOGGED_MODEL_READY")])
    );
    assert_eq!(
        compile("status != 'LOGGED_MODEL_PENDING'", d),
        ("m.status != $1".into(), vec![text("LOGGED_MODEL_PENDING")])
    );
    assert_eq!(
        compile("status IN ('PENDING', 'FAILED', 'odd')", d),
        (
            "m.status IN ($1, $2, $3)".into(),
            vec![
                text("LOGGED_MODEL_PENDING"),
                text("LOGGED_MODEL_UPLOAD_FAILED"),
                text("odd")
            ]
        )
    );
    // Patterns are the user's, as written.
    assert_eq!(
        compile("status LIKE '%READY'", d),
        ("m.status GLOB $1".into(), vec![text("*READY")])
    );
}

#[test]
fn like_sql_per_dialect() {
    assert_eq!(
        compile(r"name LIKE 'a\_b%'", Dialect::Sqlite),
        ("m.name GLOB $1".into(), vec![text("a_b*")])
    );
    assert_eq!(
        compile(r"name LIKE 'a\_b%'", Dialect::Postgres),
        ("m.name LIKE $1".into(), vec![text(r"a\_b%")])
    );
    assert_eq!(
        compile("name ILIKE 'A%'", Dialect::Sqlite),
        (
            r"LOWER(m.name) LIKE LOWER($1) ESCAPE '\'".into(),
            vec![text("A%")]
        )
    );
    assert_eq!(
        compile("name ILIKE 'A%'", Dialect::Postgres),
        ("m.name ILIKE $1".into(), vec![text("A%")])
    );
}

#[test]
fn metric_sql() {
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        assert_eq!(
            compile("metrics.acc > 0.9", dialect),
            (
                format!(
                    "m.model_id IN (SELECT lm.model_id FROM {LATEST_1} lm \
                     WHERE lm.is_nan = FALSE AND lm.value > $2)"
                ),
                vec![text("acc"), SqlValue::Real(0.9)]
            )
        );
        assert_eq!(
            compile("metrics.acc != 1", dialect),
            (
                format!(
                    "m.model_id IN (SELECT lm.model_id FROM {LATEST_1} lm \
                     WHERE (lm.is_nan = TRUE OR lm.value != $2))"
                ),
                vec![text("acc"), SqlValue::Real(1.0)]
            )
        );
    }
}

#[test]
fn param_and_tag_sql() {
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        assert_eq!(
            compile("params.lr = '0.1'", dialect),
            (
                "m.model_id IN (SELECT model_id FROM logged_model_params WHERE key = $1 \
                 AND value = $2)"
                    .into(),
                vec![text("lr"), text("0.1")]
            )
        );
        assert_eq!(
            compile("tags.team IS NULL", dialect),
            (
                "m.model_id NOT IN (SELECT model_id FROM logged_model_tags WHERE key = $1)".into(),
                vec![text("team")]
            )
        );
        assert_eq!(
            compile("tags.team IS NOT NULL", dialect),
            (
                "m.model_id IN (SELECT model_id FROM logged_model_tags WHERE key = $1)".into(),
                vec![text("team")]
            )
        );
        assert_eq!(
            compile("tags.team IN ('a', 'b')", dialect),
            (
                "m.model_id IN (SELECT model_id FROM logged_model_tags WHERE key = $1 \
                 AND value IN ($2, $3))"
                    .into(),
                vec![text("team"), text("a"), text("b")]
            )
        );
    }
    assert_eq!(
        compile("params.opt ILIKE 'AD%'", Dialect::Sqlite),
        (
            "m.model_id IN (SELECT model_id FROM logged_model_params WHERE key = $1 \
             AND LOWER(value) LIKE LOWER($2) ESCAPE '\\')"
                .into(),
            vec![text("opt"), text("AD%")]
        )
    );
    assert_eq!(
        compile("params.opt ILIKE 'AD%'", Dialect::Postgres),
        (
            "m.model_id IN (SELECT model_id FROM logged_model_params WHERE key = $1 \
             AND value ILIKE $2)"
                .into(),
            vec![text("opt"), text("AD%")]
        )
    );
}

#[test]
fn boolean_sql() {
    assert_eq!(
        compile(
            "name = 'a' AND (tags.t = 'x' OR NOT creation_time > 1)",
            Dialect::Postgres
        ),
        (
            "m.name = $1 AND (m.model_id IN (SELECT model_id FROM logged_model_tags \
             WHERE key = $2 AND value = $3) OR NOT (m.creation_timestamp_ms > $4))"
                .into(),
            vec![text("a"), text("t"), text("x"), SqlValue::Int(1)]
        )
    );
    let mut q = QueryBuilder::new();
    push_filter(&F::And(vec![]), Dialect::Sqlite, &mut q);
    push_filter(&F::Or(vec![]), Dialect::Sqlite, &mut q);
    assert_eq!(q.sql(), "1 = 11 = 0");
}

#[test]
fn user_text_never_reaches_the_sql() {
    let evil = "x'); DROP TABLE logged_models; --";
    let q = evil.replace('\'', "''");
    let filter = format!(
        "name = '{q}' OR tags.`{evil}` LIKE '{q}' OR params.\"{evil}\" IS NULL OR metrics.`{evil}` > 1 \
         OR model_id IN ('{q}')"
    );
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let (sql, binds) = compile(&filter, dialect);
        assert!(!sql.contains("DROP"), "{sql}");
        assert_eq!(binds.len(), 7);
    }
    let keys = order(&[(&format!("metrics.{evil}"), true)]).expect("parses");
    let (sql, binds) = order_sql(&keys);
    assert!(!sql.contains("DROP"), "{sql}");
    assert_eq!(binds, vec![text(evil)]);
}

// --- end to end (SQLite) ---------------------------------------------------

/// (filter, order_by, expected model ids in order) over this dataset, as
/// checked against MLflow's own store (experiment 1; m6 is deleted and m7
/// in experiment 2, so neither is ever returned):
///
/// | id | name    | created | updated | status        | type    | run | params   | tags        |
/// |----|---------|---------|---------|---------------|---------|-----|----------|-------------|
/// | m1 | model   | 100     | 500     | READY         | sklearn | r1  | lr=0.1   | team=ml     |
/// | m2 | model   | 300     | 300     | PENDING       |         |     | lr=0.01  | team=ML     |
/// | m3 | Model-2 | 200     | 400     | UPLOAD_FAILED | pytorch | r1  | opt=adam | `my key`=x.y|
/// | m4 | other_x | 300     | 100     | READY         | sklearn | r2  | lr=0.1   | owner=bob   |
/// | m5 | gam%ma  | 50      | 50      | READY         |         | r2  |          |             |
///
/// Latest `acc` (greatest step, then timestamp): m1 0.9 (over an older
/// 0.5), m2 NaN, m3 0.6 (step 5 beats a later-timestamped 0.95 at step 0),
/// m5 0.0, m4 none (a run-only `acc` row with no model_id must not count).
/// `loss`: m1 0.2.
type Case = (
    &'static str,
    &'static [(&'static str, bool)],
    &'static [&'static str],
);

const CASES: &[Case] = &[
    ("", &[], &["m2", "m4", "m3", "m1", "m5"]),
    ("name = 'model'", &[], &["m2", "m1"]),
    ("name LIKE 'model%'", &[], &["m2", "m1"]),
    ("name ILIKE 'model%'", &[], &["m2", "m3", "m1"]),
    (r"name LIKE '%\%%'", &[], &["m5"]),
    ("name LIKE 'other_x'", &[], &["m4"]),
    ("name IN ('model', 'other_x')", &[], &["m2", "m4", "m1"]),
    ("model_id NOT IN ('m1', 'm2')", &[], &["m4", "m3", "m5"]),
    ("status = 'READY'", &[], &["m4", "m1", "m5"]),
    ("status = 'LOGGED_MODEL_READY'", &[], &["m4", "m1", "m5"]),
    ("status != 'READY'", &[], &["m2", "m3"]),
    ("status IN ('PENDING', 'FAILED')", &[], &["m2", "m3"]),
    ("model_type = 'sklearn'", &[], &["m4", "m1"]),
    ("model_type != 'sklearn'", &[], &["m3"]),
    ("NOT model_type = 'sklearn'", &[], &["m2", "m3", "m5"]),
    ("source_run_id = 'r1'", &[], &["m3", "m1"]),
    ("creation_timestamp >= 200", &[], &["m2", "m4", "m3"]),
    ("creation_time < 100.5", &[], &["m1", "m5"]),
    ("attributes.last_updated_timestamp = 300", &[], &["m2"]),
    ("last_updated_time > 300", &[], &["m3", "m1"]),
    ("metrics.acc > 0.5", &[], &["m3", "m1"]),
    ("metrics.acc >= 0.9", &[], &["m1"]),
    ("metrics.acc != 0.9", &[], &["m2", "m3", "m5"]),
    ("metrics.acc <= 0", &[], &["m5"]),
    ("metrics.acc = 0", &[], &["m5"]),
    ("NOT metrics.acc > 0.5", &[], &["m2", "m4", "m5"]),
    ("metrics.loss < 1", &[], &["m1"]),
    ("params.lr = '0.1'", &[], &["m4", "m1"]),
    ("params.lr != '0.1'", &[], &["m2"]),
    ("params.lr IS NULL", &[], &["m3", "m5"]),
    ("params.lr LIKE '0.0%'", &[], &["m2"]),
    ("params.lr IN ('0.01', 'x')", &[], &["m2"]),
    ("tags.team ILIKE 'ml'", &[], &["m2", "m1"]),
    ("tags.team = 'ml'", &[], &["m1"]),
    ("tags.`my key` = 'x.y'", &[], &["m3"]),
    ("tags.owner IS NOT NULL", &[], &["m4"]),
    ("name = 'model' AND metrics.acc > 0", &[], &["m1"]),
    (
        "name = 'model' OR tags.owner = 'bob'",
        &[],
        &["m2", "m4", "m1"],
    ),
    (
        "",
        &[("metrics.acc", false)],
        &["m1", "m3", "m5", "m2", "m4"],
    ),
    (
        "",
        &[("metrics.acc", true)],
        &["m5", "m3", "m1", "m2", "m4"],
    ),
    ("", &[("name", true)], &["m3", "m5", "m2", "m1", "m4"]),
    (
        "",
        &[("creation_timestamp", true)],
        &["m5", "m1", "m3", "m2", "m4"],
    ),
    (
        "",
        &[("creation_time", false), ("model_id", false)],
        &["m4", "m2", "m3", "m1", "m5"],
    ),
    ("", &[("model_type", true)], &["m3", "m4", "m1", "m2", "m5"]),
    (
        "",
        &[("model_type", false)],
        &["m4", "m1", "m3", "m2", "m5"],
    ),
    (
        "",
        &[("last_updated_timestamp_ms", false)],
        &["m1", "m3", "m2", "m4", "m5"],
    ),
    ("", &[("status", true)], &["m2", "m4", "m1", "m5", "m3"]),
    ("name = 'model'", &[("metrics.loss", true)], &["m1", "m2"]),
    (
        "params.lr IS NOT NULL",
        &[("metrics.acc", false), ("metrics.loss", true)],
        &["m1", "m2", "m4"],
    ),
];

/// Builds the query as the store does. With `KEEL_MODEL_CASES_OUT` set,
/// writes the queries there as JSON lines for an external runner.
#[test]
fn end_to_end_cases_compile() {
    let mut lines = Vec::new();
    for (dialect, name) in [(Dialect::Sqlite, "sqlite"), (Dialect::Postgres, "postgres")] {
        for (filter, order_by, expected) in CASES {
            let entries: Vec<(String, bool)> =
                order_by.iter().map(|(f, a)| (f.to_string(), *a)).collect();
            let keys = parse_order_by(&entries).expect("order_by parses");
            let filter_ast = parse_filter(filter).expect("filter parses");
            let mut q = QueryBuilder::new();
            q.push("SELECT m.model_id FROM logged_models m");
            push_order_joins(&keys, &mut q);
            q.push(" WHERE m.lifecycle_stage = 'active' AND m.experiment_id IN (")
                .push_bind(1i64)
                .push(")");
            if let Some(f) = &filter_ast {
                q.push(" AND (");
                push_filter(f, dialect, &mut q);
                q.push(")");
            }
            q.push(" ORDER BY ");
            push_order_by(&keys, &mut q);
            q.push(" LIMIT ")
                .push_bind(100i64)
                .push(" OFFSET ")
                .push_bind(0i64);
            assert_eq!(count_placeholders(q.sql()), q.binds().len());
            let expected: Vec<String> = expected.iter().map(|id| json_string(id)).collect();
            lines.push(case_line(name, filter, None, &q, &expected));
        }
    }
    write_cases("KEEL_MODEL_CASES_OUT", &lines);
}

// --- properties ------------------------------------------------------------

fn comparison() -> impl Strategy<Value = ModelComparison> {
    let attribute = |a: A| Just(K::Attribute(a));
    let numeric_key = prop_oneof![
        attribute(A::CreationTimestamp),
        attribute(A::LastUpdatedTimestamp),
        key_name().prop_map(K::Metric),
    ];
    let numeric = (
        numeric_key,
        prop::sample::select(vec![Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge]),
        number(),
    )
        .prop_map(|(key, op, n)| ModelComparison {
            key,
            op,
            value: V::Number(n),
        });
    let string_key = prop_oneof![
        prop::sample::select(vec![
            A::Name,
            A::ModelId,
            A::ModelType,
            A::Status,
            A::SourceRunId
        ])
        .prop_map(K::Attribute),
        key_name().prop_map(K::Param),
        key_name().prop_map(K::Tag),
    ];
    let string = (
        string_key.clone(),
        prop::sample::select(vec![Op::Eq, Op::Ne, Op::Like, Op::ILike]),
        string_value(),
    )
        .prop_map(|(key, op, v)| ModelComparison {
            key,
            op,
            value: V::String(v),
        });
    let lists = (
        string_key,
        prop::sample::select(vec![Op::In, Op::NotIn]),
        prop::collection::vec(string_value(), 1..4),
    )
        .prop_map(|(key, op, items)| ModelComparison {
            key,
            op,
            value: V::List(items),
        });
    let null = (
        prop_oneof![key_name().prop_map(K::Param), key_name().prop_map(K::Tag)],
        prop::sample::select(vec![Op::IsNull, Op::IsNotNull]),
    )
        .prop_map(|(key, op)| ModelComparison {
            key,
            op,
            value: V::Null,
        });
    prop_oneof![numeric, string, lists, null]
}

fn filter() -> impl Strategy<Value = F> {
    filters(comparison().prop_map(F::Compare), 4, 32, 2..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn rendered_model_filters_parse_back(f in filter()) {
        let text = f.to_string();
        prop_assert_eq!(parse_filter(&text), Ok(Some(f.clone())), "text: {}", text);
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let mut q = QueryBuilder::new();
            push_filter(&f, dialect, &mut q);
            prop_assert_eq!(count_placeholders(q.sql()), q.binds().len());
        }
    }

    #[test]
    fn model_order_keys_round_trip(
        keys in prop::collection::vec(
            (
                prop_oneof![
                    prop::sample::select(A::ALL.to_vec()).prop_map(ModelOrderField::Attribute),
                    "[a-zA-Z0-9_][a-zA-Z0-9_ ./:-]{0,8}[a-zA-Z0-9_]"
                        .prop_map(ModelOrderField::Metric),
                ],
                any::<bool>(),
            )
                .prop_map(|(field, ascending)| okey(field, ascending)),
            0..5,
        )
    ) {
        let entries: Vec<(String, bool)> =
            keys.iter().map(|k| (k.field.to_string(), k.ascending)).collect();
        prop_assert_eq!(parse_order_by(&entries), Ok(keys.clone()));
        let (sql, binds) = order_sql(&keys);
        prop_assert!(sql.contains("m.model_id ASC") || sql.contains("m.model_id DESC"));
        prop_assert_eq!(
            binds.len(),
            keys.iter().filter(|k| matches!(k.field, ModelOrderField::Metric(_))).count()
        );
    }

    #[test]
    fn arbitrary_model_text_never_panics(input in any::<String>()) {
        match parse_filter(&input) {
            Ok(Some(f)) => {
                prop_assert_eq!(parse_filter(&f.to_string()), Ok(Some(f.clone())));
            }
            Ok(None) => prop_assert!(input.trim().is_empty()),
            Err(e) => prop_assert!(e.position <= input.len()),
        }
    }

    #[test]
    fn arbitrary_order_fields_never_panic(field in any::<String>(), ascending in any::<bool>()) {
        if let Err(e) = parse_order_by(&[(field.clone(), ascending)]) {
            prop_assert!(e.position <= field.len());
            prop_assert_eq!(e.clause, Some(0));
        }
    }
}
