//! End-to-end cases: filter + order_by, compiled into a full search query,
//! with the run ids it must return in order on a small fixed dataset.
//!
//! The dataset and the runner live outside the crate (a Python script using
//! sqlite3); with `KEEL_SEARCH_CASES_OUT=<file>` set, this test writes the
//! compiled queries there as JSON lines for that script to execute.

use keel_core::sql::{Dialect, QueryBuilder, SqlValue};

use super::compile_tests::count_placeholders;
use super::*;

/// (filter, order_by clauses, expected run ids in order)
const CASES: &[(&str, &[&str], &[&str])] = &[
    ("", &[], &["r3", "r4", "r2", "r1", "r5"]),
    // LIKE is case-sensitive, ILIKE is not; % and _ are wildcards.
    ("params.model LIKE 'c%'", &[], &["r3", "r1"]),
    ("params.model ILIKE 'c%'", &[], &["r3", "r2", "r1"]),
    ("params.model LIKE 'c_n'", &[], &["r3", "r1"]),
    ("params.model LIKE 'C_N'", &[], &["r2"]),
    ("params.model ILIKE 'C_N'", &[], &["r3", "r2", "r1"]),
    (r"params.model LIKE 'c\_n'", &[], &["r3"]),
    (r"params.model ILIKE 'C\_N'", &[], &["r3"]),
    ("params.model LIKE 'c'", &[], &[]),
    ("params.model LIKE '%'", &[], &["r3", "r4", "r2", "r1"]),
    // GLOB metacharacters in a LIKE pattern are literal.
    ("attributes.run_name LIKE '%*%'", &[], &["r3"]),
    ("attributes.run_name LIKE 'beta*[x]?'", &[], &["r3"]),
    ("attributes.run_name LIKE 'beta_[x]_'", &[], &["r3"]),
    ("attributes.run_name LIKE 'beta_[x]'", &[], &[]),
    ("attributes.run_name LIKE 'beta?[x]?'", &[], &[]),
    ("attributes.run_name ILIKE 'BETA*[X]?'", &[], &["r3"]),
    ("attributes.run_name LIKE 'alpha%'", &[], &["r1"]),
    ("attributes.run_name ILIKE 'alpha%'", &[], &["r2", "r1"]),
    (r"attributes.run_name LIKE '%\%%'", &[], &["r2"]),
    (r"attributes.run_name ILIKE '%\%%'", &[], &["r2"]),
    ("attributes.run_name LIKE '%é%'", &[], &["r4"]),
    ("attributes.run_name LIKE 'gamm_é'", &[], &["r4"]),
    // Backslashes: \\ is one literal backslash.
    (r"tags.note = 'a\b'", &[], &["r3"]),
    (r"tags.note LIKE 'a\\b'", &[], &["r3"]),
    (r"tags.note ILIKE 'A\\B'", &[], &["r3"]),
    (r"tags.note LIKE 'a\b'", &[], &[]),
    ("tags.note LIKE '100%'", &[], &["r2"]),
    // NaN latest values satisfy only !=.
    ("metrics.auc > 0", &[], &["r3", "r1"]),
    ("metrics.auc <= 0", &[], &["r5"]),
    ("metrics.auc = 0", &[], &[]),
    ("metrics.auc != 0.9", &[], &["r3", "r2", "r5"]),
    ("NOT metrics.auc > 0", &[], &["r4", "r2", "r5"]),
    ("metrics.`val loss` < 1", &[], &["r1"]),
    // NULL end_time never satisfies a comparison, also under NOT.
    ("attributes.end_time > 100", &[], &["r4", "r1"]),
    ("NOT attributes.end_time > 100", &[], &["r3", "r2", "r5"]),
    ("attributes.end_time != 200", &[], &["r4", "r5"]),
    ("created >= 200", &[], &["r3", "r4", "r2"]),
    ("attributes.start_time = 300", &[], &["r3", "r4"]),
    ("attributes.start_time < 100.5", &[], &["r1", "r5"]),
    ("attributes.end_time <= 6e1", &[], &["r5"]),
    ("params.model IS NULL", &[], &["r5"]),
    ("tags.note IS NOT NULL", &[], &["r3", "r4", "r2"]),
    ("params.model != 'cnn'", &[], &["r3", "r4", "r2"]),
    ("NOT params.model = 'cnn'", &[], &["r3", "r4", "r2", "r5"]),
    ("attributes.run_id IN ('r1', 'r2')", &[], &["r2", "r1"]),
    (
        "attributes.run_id NOT IN ('r1', 'r2')",
        &[],
        &["r3", "r4", "r5"],
    ),
    ("attributes.run_name = 'gamma'", &[], &[]),
    (
        "NOT attributes.run_name = 'alpha_1'",
        &[],
        &["r3", "r4", "r2", "r5"],
    ),
    ("attributes.run_name = 'zeta'", &[], &["r5"]),
    ("attributes.user_id = 'ann'", &[], &["r3", "r1"]),
    ("attributes.status = 'FINISHED'", &[], &["r4", "r1", "r5"]),
    ("datasets.name = 'eval'", &[], &["r2", "r1"]),
    ("datasets.context = 'training'", &[], &["r1"]),
    ("datasets.context != 'training'", &[], &["r2"]),
    ("datasets.digest IN ('abc', 'zzz')", &[], &["r1"]),
    ("datasets.name NOT IN ('train')", &[], &["r2", "r1"]),
    ("datasets.name LIKE 'TR%'", &[], &[]),
    ("datasets.name ILIKE 'TR%'", &[], &["r1"]),
    (
        "(params.model = 'cnn' OR params.model = 'rnn') AND NOT attributes.status = 'FAILED'",
        &[],
        &["r4", "r1"],
    ),
    (
        "params.model = 'cnn' OR params.model = 'rnn' AND metrics.auc > 0",
        &[],
        &["r1"],
    ),
    // Ordering: missing values last both ways, NaN after numbers.
    ("", &["metrics.auc DESC"], &["r1", "r3", "r5", "r2", "r4"]),
    ("", &["metrics.auc ASC"], &["r5", "r3", "r1", "r2", "r4"]),
    ("", &["params.model"], &["r2", "r3", "r1", "r4", "r5"]),
    ("", &["params.model DESC"], &["r4", "r1", "r3", "r2", "r5"]),
    (
        "",
        &["attributes.run_name"],
        &["r2", "r1", "r3", "r4", "r5"],
    ),
    ("", &["run_name DESC"], &["r5", "r4", "r3", "r1", "r2"]),
    ("", &["end_time DESC"], &["r4", "r1", "r5", "r3", "r2"]),
    ("", &["end_time ASC"], &["r5", "r1", "r4", "r3", "r2"]),
    ("", &["start_time ASC"], &["r5", "r1", "r2", "r3", "r4"]),
    (
        "",
        &["created DESC", "run_id DESC"],
        &["r4", "r3", "r2", "r1", "r5"],
    ),
    (
        "",
        &["attributes.status", "metrics.auc DESC"],
        &["r2", "r1", "r5", "r4", "r3"],
    ),
    (
        "metrics.auc > 0 OR params.model = 'CNN'",
        &["tags.note ASC"],
        &["r2", "r3", "r1"],
    ),
    (
        "tags.note IS NOT NULL",
        &["metrics.auc DESC", "params.model DESC"],
        &["r3", "r2", "r4"],
    ),
];

pub(super) fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(super) fn json_bind(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => "null".into(),
        SqlValue::Bool(b) => b.to_string(),
        SqlValue::Int(i) => format!("{{\"int\": {i}}}"),
        SqlValue::Real(r) => format!("{{\"real\": {r:?}}}"),
        SqlValue::Text(t) => json_string(t),
    }
}

/// One JSON line for an external runner: the case (with its `order_by`
/// when given), its compiled query and the ids it must return (as JSON).
pub(super) fn case_line(
    dialect: &str,
    filter: &str,
    order_by: Option<&[&str]>,
    q: &QueryBuilder,
    expected: &[String],
) -> String {
    let binds: Vec<String> = q.binds().iter().map(json_bind).collect();
    let order_by = match order_by {
        Some(order) => {
            let order: Vec<String> = order.iter().map(|s| json_string(s)).collect();
            format!(" \"order_by\": [{}],", order.join(", "))
        }
        None => String::new(),
    };
    format!(
        "{{\"dialect\": \"{dialect}\", \"filter\": {},{order_by} \"sql\": {}, \
         \"binds\": [{}], \"expected\": [{}]}}",
        json_string(filter),
        json_string(q.sql()),
        binds.join(", "),
        expected.join(", ")
    )
}

/// Writes the case lines to the file named by the environment variable
/// `var`, if it is set.
pub(super) fn write_cases(var: &str, lines: &[String]) {
    if let Ok(path) = std::env::var(var) {
        std::fs::write(path, lines.join("\n") + "\n").expect("write cases");
    }
}

fn build(filter: &str, order: &[&str], dialect: Dialect) -> QueryBuilder {
    let order: Vec<String> = order.iter().map(|s| s.to_string()).collect();
    let keys = parse_order_by(&order).expect("order_by parses");
    let filter = parse_filter(filter).expect("filter parses");
    let mut q = QueryBuilder::new();
    q.push("SELECT r.run_uuid FROM runs r");
    push_order_joins(&keys, &mut q);
    q.push(" WHERE r.experiment_id IN (")
        .push_bind(1i64)
        .push(") AND r.lifecycle_stage IN (")
        .push_bind("active")
        .push(")");
    if let Some(filter) = filter {
        q.push(" AND (");
        push_filter(&filter, dialect, &mut q);
        q.push(")");
    }
    q.push(" ORDER BY ");
    push_order_by(&keys, &mut q);
    q
}

#[test]
fn end_to_end_cases_compile() {
    let mut lines = Vec::new();
    for (dialect, name) in [(Dialect::Sqlite, "sqlite"), (Dialect::Postgres, "postgres")] {
        for (filter, order, expected) in CASES {
            let q = build(filter, order, dialect);
            assert_eq!(count_placeholders(q.sql()), q.binds().len());
            let expected: Vec<String> = expected.iter().map(|s| json_string(s)).collect();
            lines.push(case_line(name, filter, Some(order), &q, &expected));
        }
    }
    write_cases("KEEL_SEARCH_CASES_OUT", &lines);
}
