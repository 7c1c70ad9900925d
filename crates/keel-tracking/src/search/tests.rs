//! Tests of the search parser and SQL compiler.

mod compile_tests;
mod experiment_tests;
mod logged_model_tests;
mod parse_tests;
mod proptests;
mod sqlite_cases;

use super::*;

pub(super) fn parse(input: &str) -> Expr {
    match parse_filter(input) {
        Ok(Some(e)) => e,
        other => panic!("{input:?} did not parse to an expression: {other:?}"),
    }
}

pub(super) fn parse_err(input: &str) -> FilterError {
    match parse_filter(input) {
        Err(e) => e,
        Ok(e) => panic!("{input:?} parsed, to {e:?}"),
    }
}

pub(super) fn cmp(key: Key, op: Op, value: Value) -> Expr {
    Expr::Compare(Comparison { key, op, value })
}

pub(super) fn metric(k: &str, op: Op, n: f64) -> Expr {
    cmp(Key::Metric(k.into()), op, Value::Number(n))
}

pub(super) fn param(k: &str, op: Op, s: &str) -> Expr {
    cmp(Key::Param(k.into()), op, Value::String(s.into()))
}

pub(super) fn tag(k: &str, op: Op, s: &str) -> Expr {
    cmp(Key::Tag(k.into()), op, Value::String(s.into()))
}

pub(super) fn attr(a: Attribute, op: Op, value: Value) -> Expr {
    cmp(Key::Attribute(a), op, value)
}

pub(super) fn s(v: &str) -> Value {
    Value::String(v.into())
}
