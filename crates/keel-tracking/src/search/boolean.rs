//! The boolean structure every filter grammar shares (`AND`, `OR`, `NOT`
//! around the grammar's own comparisons): how the parser builds it, and how
//! it renders back to filter text and compiles to SQL, the same for runs,
//! experiments and logged models.

use std::fmt;

use keel_core::sql::QueryBuilder;

/// One level of a filter tree, borrowed.
pub(super) enum Node<'a, E: BoolExpr> {
    And(&'a [E]),
    Or(&'a [E]),
    Not(&'a E),
    Compare(&'a E::Comparison),
}

/// The tree a filter's boolean structure builds: run filters build
/// [`super::Expr`], experiment and logged-model filters their own type.
pub(super) trait BoolExpr: Sized {
    /// The grammar's `key op value`.
    type Comparison;

    fn and(children: Vec<Self>) -> Self;
    fn or(children: Vec<Self>) -> Self;
    fn not(inner: Self) -> Self;
    fn node(&self) -> Node<'_, Self>;
}

/// Renders `e` as filter text that parses back to the same tree: children of
/// `AND` that are `AND`/`OR`, children of `OR` that are `OR`, and an
/// `AND`/`OR` under `NOT` are parenthesised.
pub(super) fn write_filter<E>(f: &mut fmt::Formatter<'_>, e: &E) -> fmt::Result
where
    E: BoolExpr + fmt::Display,
    E::Comparison: fmt::Display,
{
    match e.node() {
        Node::And(children) => write_junction(f, children, " AND ", true),
        Node::Or(children) => write_junction(f, children, " OR ", false),
        Node::Not(inner) => match inner.node() {
            Node::And(_) | Node::Or(_) => write!(f, "NOT ({inner})"),
            _ => write!(f, "NOT {inner}"),
        },
        Node::Compare(c) => write!(f, "{c}"),
    }
}

fn write_junction<E: BoolExpr + fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    children: &[E],
    sep: &str,
    is_and: bool,
) -> fmt::Result {
    for (i, child) in children.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        let group = match child.node() {
            Node::Or(_) => true,
            Node::And(_) => is_and,
            _ => false,
        };
        if group {
            write!(f, "({child})")?;
        } else {
            write!(f, "{child}")?;
        }
    }
    Ok(())
}

/// Appends `e` as one SQL boolean expression (no leading or trailing space),
/// each comparison appended by `compare`. `And`/`Or` with no children
/// compile to `1 = 1`/`1 = 0`; nested `And`/`Or` children are parenthesised.
pub(super) fn push_bool<E: BoolExpr>(
    e: &E,
    q: &mut QueryBuilder,
    compare: &impl Fn(&E::Comparison, &mut QueryBuilder),
) {
    match e.node() {
        Node::And(children) => push_junction(children, " AND ", "1 = 1", q, compare),
        Node::Or(children) => push_junction(children, " OR ", "1 = 0", q, compare),
        Node::Not(inner) => {
            q.push("NOT (");
            push_bool(inner, q, compare);
            q.push(")");
        }
        Node::Compare(c) => compare(c, q),
    }
}

fn push_junction<E: BoolExpr>(
    children: &[E],
    sep: &str,
    empty: &str,
    q: &mut QueryBuilder,
    compare: &impl Fn(&E::Comparison, &mut QueryBuilder),
) {
    if children.is_empty() {
        q.push(empty);
        return;
    }
    for (i, child) in children.iter().enumerate() {
        if i > 0 {
            q.push(sep);
        }
        if matches!(child.node(), Node::And(_) | Node::Or(_)) {
            q.push("(");
            push_bool(child, q, compare);
            q.push(")");
        } else {
            push_bool(child, q, compare);
        }
    }
}
