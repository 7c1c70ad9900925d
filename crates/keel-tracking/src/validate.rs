//! MLflow's validation rules for names, values and batch sizes, so that a
//! client gets the same answer from Keel as from `mlflow server`, with the
//! offending field named.

use crate::error::TrackingError;
use crate::model::{Metric, Tag};

/// MLflow's request limits.
pub struct Limits;

impl Limits {
    pub const METRICS_PER_BATCH: usize = 1000;
    pub const PARAMS_TAGS_PER_BATCH: usize = 100;
    pub const ENTITIES_PER_BATCH: usize = 1000;
    pub const KEY_LENGTH: usize = 250;
    pub const PARAM_VALUE_LENGTH: usize = 6000;
    pub const TAG_VALUE_LENGTH: usize = 8000;
    pub const EXPERIMENT_TAG_VALUE_LENGTH: usize = 20_000;
    pub const EXPERIMENT_NAME_LENGTH: usize = 500;
    pub const RUN_NAME_LENGTH: usize = 250;
    pub const SEARCH_MAX_RESULTS: i64 = 50_000;
    pub const SEARCH_DEFAULT_RESULTS: i64 = 1000;
    pub const HISTORY_MAX_RESULTS: i64 = 25_000;
}

fn key_is_valid(key: &str) -> bool {
    key.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/' | ':'))
        && !key.starts_with('/')
        && !key.split('/').any(|seg| seg == ".." || seg == ".")
        && !key.contains("//")
        && !key.ends_with('/')
}

pub(crate) fn key(kind: &str, key: &str) -> Result<(), TrackingError> {
    if key.is_empty() {
        return Err(TrackingError::invalid(format!(
            "Invalid value \"\" for parameter 'key' supplied: {kind} name must not be empty"
        )));
    }
    if key.len() > Limits::KEY_LENGTH {
        return Err(TrackingError::invalid(format!(
            "Invalid value \"{}...\" for parameter 'key' supplied: {kind} name length {} exceeds the limit of {}",
            key.chars().take(40).collect::<String>(),
            key.len(),
            Limits::KEY_LENGTH
        )));
    }
    if !key_is_valid(key) {
        return Err(TrackingError::invalid(format!(
            "Invalid {kind} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/), and must not be paths such as '../x' or '/x'."
        )));
    }
    Ok(())
}

pub(crate) fn param(p: &Tag) -> Result<(), TrackingError> {
    key("param", &p.key)
}

pub(crate) fn tag(t: &Tag) -> Result<(), TrackingError> {
    key("tag", &t.key)
}

/// Cuts over-long values to MLflow's limits, as `mlflow server` does by
/// default (it truncates with a warning rather than rejecting).
pub(crate) fn truncate(value: &mut String, limit: usize) {
    if let Some((cut, _)) = value.char_indices().nth(limit) {
        tracing::warn!(limit, "truncating a value longer than {limit} characters");
        value.truncate(cut);
    }
}

pub(crate) fn experiment_tag(t: &Tag) -> Result<(), TrackingError> {
    key("tag", &t.key)?;
    if t.value.chars().count() > Limits::EXPERIMENT_TAG_VALUE_LENGTH {
        return Err(TrackingError::invalid(format!(
            "Experiment tag value for key '{}' exceeds the limit of {} characters",
            t.key,
            Limits::EXPERIMENT_TAG_VALUE_LENGTH
        )));
    }
    Ok(())
}

pub(crate) fn metric(m: &Metric) -> Result<(), TrackingError> {
    key("metric", &m.key)
}

pub(crate) fn batch(metrics: &[Metric], params: &[Tag], tags: &[Tag]) -> Result<(), TrackingError> {
    if metrics.len() > Limits::METRICS_PER_BATCH {
        return Err(TrackingError::invalid(format!(
            "A batch logging request can contain at most {} metrics. Got {} metrics. Please split up metrics across multiple requests and try again.",
            Limits::METRICS_PER_BATCH,
            metrics.len()
        )));
    }
    if params.len() > Limits::PARAMS_TAGS_PER_BATCH {
        return Err(TrackingError::invalid(format!(
            "A batch logging request can contain at most {} params. Got {} params. Please split up params across multiple requests and try again.",
            Limits::PARAMS_TAGS_PER_BATCH,
            params.len()
        )));
    }
    if tags.len() > Limits::PARAMS_TAGS_PER_BATCH {
        return Err(TrackingError::invalid(format!(
            "A batch logging request can contain at most {} tags. Got {} tags. Please split up tags across multiple requests and try again.",
            Limits::PARAMS_TAGS_PER_BATCH,
            tags.len()
        )));
    }
    let total = metrics.len() + params.len() + tags.len();
    if total > Limits::ENTITIES_PER_BATCH {
        return Err(TrackingError::invalid(format!(
            "A batch logging request can contain at most {} metrics, params and tags in total. Got {total}. Please split up the request and try again.",
            Limits::ENTITIES_PER_BATCH
        )));
    }
    metrics.iter().try_for_each(metric)?;
    params.iter().try_for_each(param)?;
    tags.iter().try_for_each(tag)?;
    let mut seen = std::collections::HashMap::new();
    for p in params {
        if let Some(prev) = seen.insert(p.key.as_str(), p.value.as_str())
            && prev != p.value
        {
            return Err(TrackingError::invalid(format!(
                "Duplicate parameter keys have been submitted: '{}' with values '{prev}' and '{}'",
                p.key, p.value
            )));
        }
    }
    Ok(())
}

pub(crate) fn experiment_name(name: &str) -> Result<(), TrackingError> {
    if name.trim().is_empty() {
        return Err(TrackingError::invalid(
            "Invalid experiment name: '' (field 'name'). Experiment names must be non-empty.",
        ));
    }
    if name.chars().count() > Limits::EXPERIMENT_NAME_LENGTH {
        return Err(TrackingError::invalid(format!(
            "Experiment name exceeds the maximum length of {} characters (field 'name')",
            Limits::EXPERIMENT_NAME_LENGTH
        )));
    }
    Ok(())
}

pub(crate) fn run_name(name: &str) -> Result<(), TrackingError> {
    if name.chars().count() > Limits::RUN_NAME_LENGTH {
        return Err(TrackingError::invalid(format!(
            "Run name exceeds the maximum length of {} characters (field 'run_name')",
            Limits::RUN_NAME_LENGTH
        )));
    }
    Ok(())
}

pub(crate) fn max_results(v: Option<i64>, default: i64, max: i64) -> Result<i64, TrackingError> {
    match v {
        None => Ok(default),
        Some(n) if n < 1 => Err(TrackingError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at least 1."
        ))),
        Some(n) if n > max => Err(TrackingError::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied. It must be at most {max}."
        ))),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflow_rules() {
        for ok in ["auc", "loss/val", "a.b-c_d e", "time:1", "ünï"] {
            assert!(key("metric", ok).is_ok(), "{ok}");
        }
        for bad in ["", "/abs", "a/../b", "a//b", "x\ny", "a*b", "end/"] {
            assert!(key("metric", bad).is_err(), "{bad}");
        }
        assert!(key("metric", &"k".repeat(251)).is_err());
    }

    #[test]
    fn batches_are_bounded() {
        let m = Metric {
            key: "m".into(),
            value: 1.0,
            ..Default::default()
        };
        assert!(batch(&vec![m.clone(); 1000], &[], &[]).is_ok());
        assert!(batch(&vec![m.clone(); 1001], &[], &[]).is_err());
        let t = Tag {
            key: "t".into(),
            value: "v".into(),
        };
        assert!(batch(&[], &vec![t.clone(); 101], &[]).is_err());
        assert!(batch(&vec![m; 950], &[], &vec![t; 51]).is_err());
    }
}
