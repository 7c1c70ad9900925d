//! Run search: MLflow's `filter` and `order_by` grammar, parsed into a typed
//! AST and compiled into dialect-aware SQL.
//!
//! The filter grammar is MLflow's (`metrics.auc > 0.9 AND params.model =
//! 'cnn'`) plus Keel's extensions: `OR`, prefix `NOT` and parentheses, with
//! precedence `NOT` > `AND` > `OR`.
//!
//! ```text
//! filter     := or_expr
//! or_expr    := and_expr ("OR" and_expr)*
//! and_expr   := unary ("AND" unary)*
//! unary      := "NOT" unary | "(" or_expr ")" | comparison
//! comparison := key op value
//! key        := entity "." name | attribute_name
//! entity     := metric(s) | param(s) | parameter(s) | tag(s)
//!             | attribute(s) | attr | run | dataset(s)      (any case)
//! name       := bare-name | `quoted` | "quoted"
//! op         := = | != | > | >= | < | <= | LIKE | ILIKE | IN | NOT IN
//!             | IS NULL | IS NOT NULL                       (any case)
//! value      := 'string' | "string" | number | "(" string ("," string)* ")"
//! ```
//!
//! A bare name is a letter or `_` followed by letters, digits and `_ . - / :`,
//! so `tags.mlflow.runName` names the tag `mlflow.runName`. Any other key is
//! quoted with backticks or double quotes; a quote character inside a quoted
//! key or string is written twice (`'it''s'`). Backslashes in strings are
//! kept as they are.
//!
//! `LIKE`/`ILIKE` patterns use `%` (any run of characters) and `_` (one
//! character); a backslash makes the next character literal (`\%`, `\_`,
//! `\\`), as PostgreSQL's default `LIKE` escape does. `LIKE` is
//! case-sensitive and `ILIKE` case-insensitive on both dialects.
//!
//! Every user value, keys included, is bound as a parameter; the compiled SQL
//! text only ever contains text written in this module.
//!
//! [`experiments`] holds the experiment-search grammar, built on the same
//! lexer, boolean parser and LIKE compilation.

mod ast;
mod boolean;
mod compile;
mod error;
pub mod experiments;
mod lexer;
pub mod logged_models;
mod parse;

#[cfg(test)]
mod tests;

pub use ast::{Attribute, Comparison, DatasetField, Expr, Key, Op, OrderKey, Value};
pub use compile::{
    Membership, push_filter, push_filter_planned, push_membership_rows, push_order_by,
    push_order_joins,
};
pub use error::FilterError;
pub use parse::{MAX_NESTING, parse_filter, parse_order_by};
