use keel_core::sql::{Dialect, QueryBuilder, SqlValue};

use super::*;

fn compile(filter: &str, dialect: Dialect) -> (String, Vec<SqlValue>) {
    let mut q = QueryBuilder::new();
    push_filter(&parse(filter), dialect, &mut q);
    q.into_parts()
}

#[track_caller]
fn assert_sql(filter: &str, dialect: Dialect, sql: &str, binds: &[SqlValue]) {
    let (got_sql, got_binds) = compile(filter, dialect);
    assert_eq!(got_sql, sql, "for {filter:?}");
    assert_eq!(got_binds, binds, "for {filter:?}");
}

#[track_caller]
fn assert_both(filter: &str, sql: &str, binds: &[SqlValue]) {
    assert_sql(filter, Dialect::Sqlite, sql, binds);
    assert_sql(filter, Dialect::Postgres, sql, binds);
}

#[test]
fn metric_comparisons_skip_nan_except_ne() {
    assert_both(
        "metrics.auc > 0.5",
        "r.run_uuid IN (SELECT run_uuid FROM latest_metrics WHERE key = $1 \
         AND is_nan = FALSE AND value > $2)",
        &[text("auc"), SqlValue::Real(0.5)],
    );
    assert_both(
        "metrics.auc = 1",
        "r.run_uuid IN (SELECT run_uuid FROM latest_metrics WHERE key = $1 \
         AND is_nan = FALSE AND value = $2)",
        &[text("auc"), SqlValue::Real(1.0)],
    );
    assert_both(
        "metrics.auc != 1",
        "r.run_uuid IN (SELECT run_uuid FROM latest_metrics WHERE key = $1 \
         AND (is_nan = TRUE OR value != $2))",
        &[text("auc"), SqlValue::Real(1.0)],
    );
}

#[test]
fn param_and_tag_comparisons() {
    assert_both(
        "params.model = 'cnn'",
        "r.run_uuid IN (SELECT run_uuid FROM params WHERE key = $1 AND value = $2)",
        &[text("model"), text("cnn")],
    );
    assert_both(
        "tags.`a b` != 'x'",
        "r.run_uuid IN (SELECT run_uuid FROM tags WHERE key = $1 AND value != $2)",
        &[text("a b"), text("x")],
    );
    assert_both(
        "params.model IS NULL",
        "r.run_uuid NOT IN (SELECT run_uuid FROM params WHERE key = $1)",
        &[text("model")],
    );
    assert_both(
        "tags.t IS NOT NULL",
        "r.run_uuid IN (SELECT run_uuid FROM tags WHERE key = $1)",
        &[text("t")],
    );
}

#[test]
fn like_and_ilike_per_dialect() {
    assert_sql(
        "params.p LIKE 'a%b_*?[c'",
        Dialect::Sqlite,
        "r.run_uuid IN (SELECT run_uuid FROM params WHERE key = $1 AND value GLOB $2)",
        &[text("p"), text("a*b?[*][?][[]c")],
    );
    assert_sql(
        "params.p LIKE 'a%b_*?[c'",
        Dialect::Postgres,
        "r.run_uuid IN (SELECT run_uuid FROM params WHERE key = $1 AND value LIKE $2)",
        &[text("p"), text("a%b_*?[c")],
    );
    assert_sql(
        "tags.t ILIKE '%X%'",
        Dialect::Sqlite,
        "r.run_uuid IN (SELECT run_uuid FROM tags WHERE key = $1 \
         AND LOWER(value) LIKE LOWER($2) ESCAPE '\\')",
        &[text("t"), text("%X%")],
    );
    assert_sql(
        "tags.t ILIKE '%X%'",
        Dialect::Postgres,
        "r.run_uuid IN (SELECT run_uuid FROM tags WHERE key = $1 AND value ILIKE $2)",
        &[text("t"), text("%X%")],
    );
    // Escapes: \% and \_ are literal, \\ is a backslash, a trailing lone
    // backslash is literal, any other escaped character is itself.
    assert_sql(
        r"attributes.run_name LIKE '50\%\_\\x\y\'",
        Dialect::Sqlite,
        "r.run_name GLOB $1",
        &[text(r"50%_\xy\")],
    );
    assert_sql(
        r"attributes.run_name LIKE '50\%\_\\x\y\'",
        Dialect::Postgres,
        "r.run_name LIKE $1",
        &[text(r"50\%\_\\xy\\")],
    );
    assert_sql(
        r"attributes.run_name ILIKE '50\%\_\\x\y\'",
        Dialect::Sqlite,
        "LOWER(r.run_name) LIKE LOWER($1) ESCAPE '\\'",
        &[text(r"50\%\_\\xy\\")],
    );
    // ] needs no escape in GLOB outside a class.
    assert_sql(
        "attributes.status LIKE ']'",
        Dialect::Sqlite,
        "r.status GLOB $1",
        &[text("]")],
    );
}

#[test]
fn attribute_comparisons() {
    assert_both(
        "attributes.status = 'FINISHED'",
        "r.status = $1",
        &[text("FINISHED")],
    );
    assert_both(
        "attributes.start_time >= 1700000000000",
        "r.start_time >= $1",
        &[SqlValue::Int(1_700_000_000_000)],
    );
    assert_both("created < 1.5", "r.start_time < $1", &[SqlValue::Real(1.5)]);
    assert_both(
        "attributes.start_time > 1e30",
        "r.start_time > $1",
        &[SqlValue::Real(1e30)],
    );
    assert_both(
        "attributes.end_time != 5",
        "(r.end_time IS NOT NULL AND r.end_time != $1)",
        &[SqlValue::Int(5)],
    );
    assert_both(
        "attributes.run_id IN ('a', 'b', 'c')",
        "r.run_uuid IN ($1, $2, $3)",
        &[text("a"), text("b"), text("c")],
    );
    assert_both(
        "run_id NOT IN ('a')",
        "r.run_uuid NOT IN ($1)",
        &[text("a")],
    );
    assert_both("user_id = 'u'", "r.user_id = $1", &[text("u")]);
    assert_both(
        "attributes.lifecycle_stage = 'active'",
        "r.lifecycle_stage = $1",
        &[text("active")],
    );
    assert_sql(
        "attributes.artifact_uri LIKE 's3://%'",
        Dialect::Postgres,
        "r.artifact_uri LIKE $1",
        &[text("s3://%")],
    );
}

#[test]
fn dataset_comparisons() {
    let prefix = "r.run_uuid IN (SELECT ri.run_uuid FROM run_inputs ri \
                  JOIN datasets d ON d.dataset_uuid = ri.dataset_uuid WHERE ";
    assert_both(
        "datasets.name = 'train'",
        &format!("{prefix}d.name = $1)"),
        &[text("train")],
    );
    assert_both(
        "datasets.digest IN ('a', 'b')",
        &format!("{prefix}d.digest IN ($1, $2))"),
        &[text("a"), text("b")],
    );
    assert_sql(
        "datasets.context LIKE 'tr%'",
        Dialect::Sqlite,
        &format!("{prefix}ri.context GLOB $1)"),
        &[text("tr*")],
    );
}

#[test]
fn boolean_composition() {
    assert_both(
        "metrics.a > 1 AND (params.b = 'x' OR NOT tags.c = 'y') AND attributes.status = 's'",
        "r.run_uuid IN (SELECT run_uuid FROM latest_metrics WHERE key = $1 AND is_nan = FALSE \
         AND value > $2) AND (r.run_uuid IN (SELECT run_uuid FROM params WHERE key = $3 \
         AND value = $4) OR NOT (r.run_uuid IN (SELECT run_uuid FROM tags WHERE key = $5 \
         AND value = $6))) AND r.status = $7",
        &[
            text("a"),
            SqlValue::Real(1.0),
            text("b"),
            text("x"),
            text("c"),
            text("y"),
            text("s"),
        ],
    );
    assert_both(
        "status = 'a' OR status = 'b' AND status = 'c'",
        "r.status = $1 OR (r.status = $2 AND r.status = $3)",
        &[text("a"), text("b"), text("c")],
    );
    assert_both(
        "NOT (status = 'a' OR status = 'b')",
        "NOT (r.status = $1 OR r.status = $2)",
        &[text("a"), text("b")],
    );
}

#[test]
fn degenerate_asts_compile_without_panicking() {
    let cases = vec![
        Expr::And(vec![]),
        Expr::Or(vec![]),
        Expr::And(vec![metric("a", Op::Gt, 1.0)]),
        cmp(Key::Metric("m".into()), Op::Like, s("x")),
        cmp(Key::Metric("m".into()), Op::IsNull, Value::Null),
        cmp(Key::Param("p".into()), Op::Gt, Value::Number(1.0)),
        cmp(Key::Param("p".into()), Op::In, Value::List(vec![])),
        cmp(Key::Param("p".into()), Op::NotIn, Value::List(vec![])),
        cmp(Key::Param("p".into()), Op::In, s("x")),
        cmp(Key::Param("p".into()), Op::Eq, Value::Null),
        cmp(Key::Param("p".into()), Op::Ne, Value::Null),
        cmp(
            Key::Param("p".into()),
            Op::Gt,
            Value::List(vec!["a".into()]),
        ),
        cmp(Key::Param("p".into()), Op::Like, Value::Number(1.0)),
        cmp(Key::Param("p".into()), Op::Like, Value::Null),
        cmp(
            Key::Attribute(Attribute::StartTime),
            Op::Eq,
            Value::Number(f64::NAN),
        ),
        cmp(
            Key::Attribute(Attribute::StartTime),
            Op::Eq,
            Value::Number(f64::INFINITY),
        ),
        cmp(Key::Attribute(Attribute::EndTime), Op::IsNull, Value::Null),
        cmp(Key::Dataset(DatasetField::Name), Op::IsNotNull, Value::Null),
    ];
    for e in &cases {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let mut q = QueryBuilder::new();
            push_filter(e, dialect, &mut q);
            assert!(!q.sql().is_empty());
            assert_eq!(count_placeholders(q.sql()), q.binds().len(), "{e:?}");
        }
        let _ = e.to_string();
    }
    let mut q = QueryBuilder::new();
    push_filter(&Expr::And(vec![]), Dialect::Sqlite, &mut q);
    assert_eq!(q.sql(), "1 = 1");
    let mut q = QueryBuilder::new();
    push_filter(
        &cmp(Key::Param("p".into()), Op::In, Value::List(vec![])),
        Dialect::Sqlite,
        &mut q,
    );
    assert_eq!(
        q.sql(),
        "r.run_uuid IN (SELECT run_uuid FROM params WHERE key = $1 AND 1 = 0)"
    );
}

/// Counts `$n` placeholders and checks they run 1, 2, 3, … in order.
pub(super) fn count_placeholders(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut expected = 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            let n: usize = sql[start..end].parse().expect("placeholder number");
            assert_eq!(n, expected, "placeholders out of order in {sql}");
            expected += 1;
            i = end;
        } else {
            i += 1;
        }
    }
    expected - 1
}

// ---------------------------------------------------------------- order_by

fn order_sql(clauses: &[&str]) -> (String, String, Vec<SqlValue>) {
    let owned: Vec<String> = clauses.iter().map(|c| c.to_string()).collect();
    let keys = parse_order_by(&owned).expect("order_by parses");
    let mut q = QueryBuilder::new();
    push_order_joins(&keys, &mut q);
    let joins_len = q.sql().len();
    push_order_by(&keys, &mut q);
    let (sql, binds) = q.into_parts();
    let (joins, order) = sql.split_at(joins_len);
    (joins.to_owned(), order.to_owned(), binds)
}

#[test]
fn default_order_is_mlflows_tie_break() {
    assert_eq!(
        order_sql(&[]),
        (
            String::new(),
            "r.start_time DESC, r.run_uuid ASC".into(),
            vec![]
        )
    );
}

#[test]
fn order_by_metric_param_tag() {
    let (joins, order, binds) = order_sql(&["metrics.auc DESC", "params.model", "tags.t DESC"]);
    assert_eq!(
        joins,
        " LEFT JOIN latest_metrics ob0 ON ob0.run_uuid = r.run_uuid AND ob0.key = $1 \
         LEFT JOIN params ob1 ON ob1.run_uuid = r.run_uuid AND ob1.key = $2 \
         LEFT JOIN tags ob2 ON ob2.run_uuid = r.run_uuid AND ob2.key = $3"
    );
    assert_eq!(
        order,
        "CASE WHEN ob0.run_uuid IS NULL THEN 2 WHEN ob0.is_nan = TRUE THEN 1 ELSE 0 END, \
         ob0.value DESC, \
         CASE WHEN ob1.run_uuid IS NULL THEN 1 ELSE 0 END, ob1.value ASC, \
         CASE WHEN ob2.run_uuid IS NULL THEN 1 ELSE 0 END, ob2.value DESC, \
         r.start_time DESC, r.run_uuid ASC"
    );
    assert_eq!(binds, vec![text("auc"), text("model"), text("t")]);
}

#[test]
fn order_by_attributes() {
    let (joins, order, binds) = order_sql(&["start_time ASC"]);
    assert_eq!(joins, "");
    assert_eq!(order, "r.start_time ASC, r.run_uuid ASC");
    assert!(binds.is_empty());

    let (_, order, _) = order_sql(&["attributes.status DESC", "created"]);
    assert_eq!(order, "r.status DESC, r.start_time ASC, r.run_uuid ASC");

    let (_, order, _) = order_sql(&["end_time DESC", "run_id"]);
    assert_eq!(
        order,
        "CASE WHEN r.end_time IS NULL THEN 1 ELSE 0 END, r.end_time DESC, \
         r.run_uuid ASC, r.start_time DESC"
    );

    // Aliases of later joined keys are their index in the order list.
    let (joins, order, _) = order_sql(&["run_name", "metrics.m"]);
    assert_eq!(
        joins,
        " LEFT JOIN latest_metrics ob1 ON ob1.run_uuid = r.run_uuid AND ob1.key = $1"
    );
    assert_eq!(
        order,
        "r.run_name ASC, CASE WHEN ob1.run_uuid IS NULL THEN 2 WHEN ob1.is_nan = TRUE THEN 1 ELSE 0 END, \
         ob1.value ASC, r.start_time DESC, r.run_uuid ASC"
    );
}

#[test]
fn dataset_order_keys_are_skipped() {
    let keys = vec![OrderKey {
        key: Key::Dataset(DatasetField::Name),
        ascending: true,
    }];
    let mut q = QueryBuilder::new();
    push_order_joins(&keys, &mut q);
    push_order_by(&keys, &mut q);
    assert_eq!(q.sql(), "r.start_time DESC, r.run_uuid ASC");
}

#[test]
fn joins_filter_and_order_number_binds_in_order() {
    let keys = parse_order_by(&["params.p DESC".to_owned()]).expect("parses");
    let filter = parse("metrics.m > 2 OR run_id IN ('a', 'b')");
    let mut q = QueryBuilder::new();
    q.push("SELECT r.* FROM runs r");
    push_order_joins(&keys, &mut q);
    q.push(" WHERE r.experiment_id IN (")
        .push_bind(1i64)
        .push(") AND (");
    push_filter(&filter, Dialect::Postgres, &mut q);
    q.push(") ORDER BY ");
    push_order_by(&keys, &mut q);
    assert_eq!(
        q.sql(),
        "SELECT r.* FROM runs r LEFT JOIN params ob0 ON ob0.run_uuid = r.run_uuid \
         AND ob0.key = $1 WHERE r.experiment_id IN ($2) AND (r.run_uuid IN (SELECT run_uuid \
         FROM latest_metrics WHERE key = $3 AND is_nan = FALSE AND value > $4) OR \
         r.run_uuid IN ($5, $6)) ORDER BY CASE WHEN ob0.run_uuid IS NULL THEN 1 ELSE 0 END, \
         ob0.value DESC, r.start_time DESC, r.run_uuid ASC"
    );
    assert_eq!(
        q.binds(),
        &[
            text("p"),
            SqlValue::Int(1),
            text("m"),
            SqlValue::Real(2.0),
            text("a"),
            text("b"),
        ]
    );
}

#[test]
fn user_text_never_reaches_sql_text() {
    let evil = "x'); DROP TABLE runs; --";
    let filter = format!(
        "params.`{evil}` = '{e}' OR tags.`{evil}` LIKE '{e}' OR run_id IN ('{e}')",
        e = evil.replace('\'', "''")
    );
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let (sql, binds) = compile(&filter, dialect);
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(binds.contains(&text(evil)));
    }
}
