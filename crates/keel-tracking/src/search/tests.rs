//! Tests of the search parser and SQL compiler.

mod compile_tests;
mod experiment_tests;
mod logged_model_tests;
mod parse_tests;
mod proptests;
mod sqlite_cases;

use std::fmt::Debug;

use keel_core::sql::SqlValue;
use proptest::prelude::*;

use super::boolean::BoolExpr;
use super::*;

/// A grammar's `parse_filter`.
pub(super) type ParseFilter<F> = fn(&str) -> Result<Option<F>, FilterError>;

/// The filter `input` parses to with `parse_filter`; panics if none.
pub(super) fn parsed<F: Debug>(parse_filter: ParseFilter<F>, input: &str) -> F {
    match parse_filter(input) {
        Ok(Some(f)) => f,
        other => panic!("{input:?} did not parse to a filter: {other:?}"),
    }
}

/// The error `parse_filter` rejects `input` with; panics if it parses.
pub(super) fn rejected<F: Debug>(parse_filter: ParseFilter<F>, input: &str) -> FilterError {
    match parse_filter(input) {
        Err(e) => e,
        Ok(f) => panic!("{input:?} parsed, to {f:?}"),
    }
}

/// Asserts the position, near text and message `parse_filter` rejects
/// `input` with.
pub(super) fn assert_rejected<F: Debug>(
    parse_filter: ParseFilter<F>,
    input: &str,
    position: usize,
    near: &str,
    message: &str,
) {
    let e = rejected(parse_filter, input);
    assert_eq!(
        (e.position, e.near.as_str(), e.message.as_str()),
        (position, near, message),
        "{input:?}"
    );
}

/// Asserts that `parse_filter` rejects `input` with a message containing
/// `needle`.
pub(super) fn assert_rejected_with<F: Debug>(
    parse_filter: ParseFilter<F>,
    input: &str,
    needle: &str,
) {
    let e = rejected(parse_filter, input);
    assert!(e.message.contains(needle), "{input:?}: {e}");
}

/// Filters nesting `AND`, `OR` (each of `children` children) and `NOT` up
/// to `depth` levels over the comparisons of `leaf`.
pub(super) fn filters<F>(
    leaf: impl Strategy<Value = F> + 'static,
    depth: u32,
    size: u32,
    children: std::ops::Range<usize>,
) -> impl Strategy<Value = F>
where
    F: BoolExpr + Clone + Debug + 'static,
{
    leaf.prop_recursive(depth, size, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), children.clone()).prop_map(F::and),
            prop::collection::vec(inner.clone(), children.clone()).prop_map(F::or),
            inner.prop_map(F::not),
        ]
    })
}

pub(super) fn parse(input: &str) -> Expr {
    parsed(parse_filter, input)
}

pub(super) fn parse_err(input: &str) -> FilterError {
    rejected(parse_filter, input)
}

pub(super) fn text(v: &str) -> SqlValue {
    SqlValue::Text(v.into())
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
