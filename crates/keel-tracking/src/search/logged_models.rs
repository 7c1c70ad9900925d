//! TEMPORARY placeholder, being replaced by the real logged-model search grammar.
use super::error::FilterError;
use keel_core::sql::{Dialect, QueryBuilder};

#[derive(Debug, Clone, PartialEq)]
pub struct ModelFilter(String);
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOrderKey;

pub fn parse_filter(input: &str) -> Result<Option<ModelFilter>, FilterError> {
    if input.trim().is_empty() {
        return Ok(None);
    }
    let name = input
        .trim()
        .strip_prefix("name = '")
        .and_then(|r| r.strip_suffix('\''));
    match name {
        Some(n) => Ok(Some(ModelFilter(n.to_owned()))),
        None => Err(FilterError::new(0, input, "not yet")),
    }
}
pub fn parse_order_by(_clauses: &[(String, bool)]) -> Result<Vec<ModelOrderKey>, FilterError> {
    Ok(Vec::new())
}
pub fn push_order_joins(_o: &[ModelOrderKey], _q: &mut QueryBuilder) {}
pub fn push_filter(f: &ModelFilter, _d: Dialect, q: &mut QueryBuilder) {
    q.push("m.name = ").push_bind(f.0.as_str());
}
pub fn push_order_by(_o: &[ModelOrderKey], q: &mut QueryBuilder) {
    q.push("m.creation_timestamp_ms DESC, m.model_id ASC");
}
