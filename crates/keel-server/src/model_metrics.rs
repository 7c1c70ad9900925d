//! What served models do, for `/metrics`: inference calls by model, version
//! and outcome, the time the model took and the rows it was given, and
//! `/v1/predict` answers by deployment and variant.
//!
//! Recording is on the inference hot path, so it takes a read lock and bumps
//! atomics; the write lock is taken once per new model version (or
//! deployment and variant), and no label text is formatted until a scrape.
//! Only names that resolved to a served version (or an answered
//! prediction) are recorded, so clients cannot grow the series count with
//! made-up names.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use keel_serve::ServeError;
use keel_serve::repository::ServedVersion;
use keel_serve::tensor::NamedTensor;

use crate::metrics::escape;

/// Upper bounds of the inference-duration buckets, in nanoseconds: 100 µs
/// to 5 s, dense over the milliseconds where ONNX models answer.
const DURATION_BUCKETS_NS: [u64; 15] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// Upper bounds of the rows-per-request buckets.
const ROWS_BUCKETS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384];

/// A histogram of integer observations (nanoseconds, rows) kept in
/// non-cumulative buckets, so a scrape always sees `+Inf` equal to the sum
/// of the buckets and to `_count`, whatever it races with.
struct Histogram {
    bounds: &'static [u64],
    /// One per bound, then the overflow.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines; values are divided by
    /// `unit` (1e9 renders nanoseconds as seconds).
    fn render(&self, out: &mut String, name: &str, labels: &str, unit: f64) {
        let mut cumulative = 0u64;
        for (bound, count) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += count.load(Ordering::Relaxed);
            let le = *bound as f64 / unit;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        if let Some(overflow) = self.counts.last() {
            cumulative += overflow.load(Ordering::Relaxed);
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 / unit;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// One served version's series.
struct VersionSeries {
    successes: AtomicU64,
    errors: AtomicU64,
    duration: Histogram,
    rows: Histogram,
}

impl Default for VersionSeries {
    fn default() -> Self {
        Self {
            successes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            duration: Histogram::new(&DURATION_BUCKETS_NS),
            rows: Histogram::new(&ROWS_BUCKETS),
        }
    }
}

/// One call of a served version, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct InferenceCalled {
    /// Rows in the request (the first dimension of its first input).
    pub rows: usize,
    /// From handing the inputs to the model (its batching queue included)
    /// until its outputs came back.
    pub elapsed: Duration,
    /// Whether the model answered; an error is an input its signature
    /// refused or a failure of the model itself.
    pub succeeded: bool,
}

/// Cumulative model counters at one moment ([`ModelMetrics::snapshot`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// (model, version) → (successes, errors, seconds spent in successes)
    pub versions: std::collections::BTreeMap<(String, u64), (u64, u64, f64)>,
    /// (deployment, variant) → predictions
    pub predictions: std::collections::BTreeMap<(String, String), u64>,
}

type ByVersion = HashMap<Arc<str>, HashMap<u64, VersionSeries>>;
type ByVariant = HashMap<Arc<str>, HashMap<Arc<str>, AtomicU64>>;

/// Model-serving metrics, shared by every handler through `AppState`.
#[derive(Default)]
pub struct ModelMetrics {
    versions: RwLock<ByVersion>,
    predictions: RwLock<ByVariant>,
}

impl ModelMetrics {
    /// Runs `inputs` through `served` and records the call.
    pub async fn infer(
        &self,
        served: &ServedVersion,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, ServeError> {
        let rows = inputs
            .first()
            .and_then(|t| t.shape.first().copied())
            .unwrap_or(1);
        let started = Instant::now();
        let result = served.infer(inputs).await;
        self.record(
            &served.name,
            served.version,
            InferenceCalled {
                rows,
                elapsed: started.elapsed(),
                succeeded: result.is_ok(),
            },
        );
        result
    }

    /// Counts a call; a successful one also goes into the duration and
    /// rows histograms (a refused input says nothing about the model's speed).
    pub fn record(&self, model: &str, version: u64, call: InferenceCalled) {
        let observe = |s: &VersionSeries| {
            if call.succeeded {
                s.successes.fetch_add(1, Ordering::Relaxed);
                s.duration
                    .observe(u64::try_from(call.elapsed.as_nanos()).unwrap_or(u64::MAX));
                s.rows.observe(call.rows as u64);
            } else {
                s.errors.fetch_add(1, Ordering::Relaxed);
            }
        };
        {
            let map = self.versions.read().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = map.get(model).and_then(|v| v.get(&version)) {
                observe(s);
                return;
            }
        }
        let mut map = self.versions.write().unwrap_or_else(|p| p.into_inner());
        observe(
            map.entry(Arc::from(model))
                .or_default()
                .entry(version)
                .or_default(),
        );
    }

    /// The cumulative counters now, for the metric series: per model
    /// version `(successes, errors, duration sum in seconds)`, and
    /// predictions per deployment and variant.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut out = MetricsSnapshot::default();
        {
            let map = self.versions.read().unwrap_or_else(|p| p.into_inner());
            for (model, versions) in map.iter() {
                for (version, s) in versions {
                    out.versions.insert(
                        (model.to_string(), *version),
                        (
                            s.successes.load(Ordering::Relaxed),
                            s.errors.load(Ordering::Relaxed),
                            s.duration.sum.load(Ordering::Relaxed) as f64 / 1e9,
                        ),
                    );
                }
            }
        }
        let map = self.predictions.read().unwrap_or_else(|p| p.into_inner());
        for (deployment, variants) in map.iter() {
            for (variant, n) in variants {
                out.predictions.insert(
                    (deployment.to_string(), variant.to_string()),
                    n.load(Ordering::Relaxed),
                );
            }
        }
        out
    }

    /// Counts a prediction answered by `/v1/predict` (`variant` is empty
    /// when the deployment name is a plain served model).
    pub fn prediction(&self, deployment: &str, variant: &str) {
        {
            let map = self.predictions.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = map.get(deployment).and_then(|v| v.get(variant)) {
                c.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.predictions.write().unwrap_or_else(|p| p.into_inner());
        map.entry(Arc::from(deployment))
            .or_default()
            .entry(Arc::from(variant))
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the exposition text; `pending_log_lines` is the prediction
    /// log's backlog.
    pub fn render(&self, out: &mut String, pending_log_lines: usize) {
        {
            let map = self.versions.read().unwrap_or_else(|p| p.into_inner());
            let mut series: Vec<(String, &VersionSeries)> = map
                .iter()
                .flat_map(|(model, versions)| {
                    versions.iter().map(move |(version, s)| {
                        (
                            format!("model=\"{}\",version=\"{version}\"", escape(model)),
                            s,
                        )
                    })
                })
                .collect();
            series.sort_by(|a, b| a.0.cmp(&b.0));

            header(
                out,
                "keel_inference_requests_total",
                "counter",
                "Inference calls on a served version, by outcome (error: the signature refused the inputs or the model failed).",
            );
            for (labels, s) in &series {
                for (outcome, n) in [("success", &s.successes), ("error", &s.errors)] {
                    let _ = writeln!(
                        out,
                        "keel_inference_requests_total{{{labels},outcome=\"{outcome}\"}} {}",
                        n.load(Ordering::Relaxed)
                    );
                }
            }
            header(
                out,
                "keel_inference_duration_seconds",
                "histogram",
                "Time a served version took to answer a successful call, its batching queue included.",
            );
            for (labels, s) in &series {
                s.duration
                    .render(out, "keel_inference_duration_seconds", labels, 1e9);
            }
            header(
                out,
                "keel_inference_batch_size",
                "histogram",
                "Rows per successful inference call.",
            );
            for (labels, s) in &series {
                s.rows.render(out, "keel_inference_batch_size", labels, 1.0);
            }
        }
        {
            let map = self.predictions.read().unwrap_or_else(|p| p.into_inner());
            let mut series: Vec<(String, u64)> = map
                .iter()
                .flat_map(|(deployment, variants)| {
                    variants.iter().map(move |(variant, n)| {
                        (
                            format!(
                                "deployment=\"{}\",variant=\"{}\"",
                                escape(deployment),
                                escape(variant)
                            ),
                            n.load(Ordering::Relaxed),
                        )
                    })
                })
                .collect();
            series.sort();
            header(
                out,
                "keel_predictions_total",
                "counter",
                "Predictions answered by /v1/predict, by deployment and variant (empty for a plain served model).",
            );
            for (labels, n) in series {
                let _ = writeln!(out, "keel_predictions_total{{{labels}}} {n}");
            }
        }
        header(
            out,
            "keel_prediction_log_pending",
            "gauge",
            "Prediction log lines waiting to be flushed to the artifact store.",
        );
        let _ = writeln!(out, "keel_prediction_log_pending {pending_log_lines}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(ms: u64, rows: usize, succeeded: bool) -> InferenceCalled {
        InferenceCalled {
            rows,
            elapsed: Duration::from_millis(ms),
            succeeded,
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix} in\n{text}"))
    }

    #[test]
    fn calls_are_counted_by_outcome_and_only_successes_timed() {
        let m = ModelMetrics::default();
        m.record("iris", 2, call(3, 1, true));
        m.record("iris", 2, call(30, 8, true));
        m.record("iris", 2, call(1, 1, false));
        m.record("iris", 1, call(1, 1, true));
        let mut text = String::new();
        m.render(&mut text, 0);
        let labels = "model=\"iris\",version=\"2\"";
        assert!(text.contains(&format!(
            "keel_inference_requests_total{{{labels},outcome=\"success\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "keel_inference_requests_total{{{labels},outcome=\"error\"}} 1\n"
        )));
        let bucket = |le: &str| {
            line(
                &text,
                &format!("keel_inference_duration_seconds_bucket{{{labels},le=\"{le}\"}}"),
            )
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_owned()
        };
        assert_eq!(bucket("0.0025"), "0");
        assert_eq!(bucket("0.005"), "1");
        assert_eq!(bucket("0.025"), "1");
        assert_eq!(bucket("0.05"), "2");
        assert_eq!(bucket("+Inf"), "2");
        assert_eq!(
            line(
                &text,
                &format!("keel_inference_duration_seconds_sum{{{labels}}}")
            ),
            format!("keel_inference_duration_seconds_sum{{{labels}}} 0.033")
        );
        assert!(text.contains(&format!(
            "keel_inference_batch_size_bucket{{{labels},le=\"8\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "keel_inference_batch_size_bucket{{{labels},le=\"4\"}} 1\n"
        )));
        assert!(text.contains(&format!("keel_inference_batch_size_sum{{{labels}}} 9\n")));
        assert!(text.contains(
            "keel_inference_requests_total{model=\"iris\",version=\"1\",outcome=\"success\"} 1\n"
        ));
    }

    #[test]
    fn an_observation_on_a_bound_lands_in_that_bucket_and_past_the_last_in_inf() {
        let h = Histogram::new(&ROWS_BUCKETS);
        h.observe(1);
        h.observe(2);
        h.observe(100_000);
        let mut text = String::new();
        h.render(&mut text, "x", "a=\"b\"", 1.0);
        assert!(text.contains("x_bucket{a=\"b\",le=\"1\"} 1\n"));
        assert!(text.contains("x_bucket{a=\"b\",le=\"2\"} 2\n"));
        assert!(text.contains("x_bucket{a=\"b\",le=\"16384\"} 2\n"));
        assert!(text.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("x_count{a=\"b\"} 3\n"));
        assert!(text.contains("x_sum{a=\"b\"} 100003\n"));
    }

    #[test]
    fn duration_bounds_render_as_exact_seconds() {
        let h = Histogram::new(&DURATION_BUCKETS_NS);
        let mut text = String::new();
        h.render(&mut text, "d", "m=\"x\"", 1e9);
        let les: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split("le=\"").nth(1))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert_eq!(
            les,
            [
                "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"
            ]
        );
    }

    #[test]
    fn predictions_by_deployment_and_variant_with_escaped_labels() {
        let m = ModelMetrics::default();
        m.prediction("churn", "");
        m.prediction("churn", "");
        m.prediction("pricing", "canary");
        m.prediction("odd\"name\\\n", "a");
        let mut text = String::new();
        m.render(&mut text, 7);
        assert!(text.contains("keel_predictions_total{deployment=\"churn\",variant=\"\"} 2\n"));
        assert!(
            text.contains("keel_predictions_total{deployment=\"pricing\",variant=\"canary\"} 1\n")
        );
        assert!(text.contains(
            "keel_predictions_total{deployment=\"odd\\\"name\\\\\\n\",variant=\"a\"} 1\n"
        ));
        assert!(text.contains("keel_prediction_log_pending 7\n"));
        assert!(text.contains("# TYPE keel_predictions_total counter\n"));
    }

    #[test]
    fn every_family_has_help_and_type_even_when_empty() {
        let mut text = String::new();
        ModelMetrics::default().render(&mut text, 0);
        for name in [
            "keel_inference_requests_total",
            "keel_inference_duration_seconds",
            "keel_inference_batch_size",
            "keel_predictions_total",
            "keel_prediction_log_pending",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let m = Arc::new(ModelMetrics::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        m.record(if i % 2 == 0 { "a" } else { "b" }, t, call(1, 1, true));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join()
                .unwrap_or_else(|_| panic!("a recording thread panicked"));
        }
        let mut text = String::new();
        m.render(&mut text, 0);
        let total: u64 = text
            .lines()
            .filter(|l| l.starts_with("keel_inference_duration_seconds_count"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(total, 4000);
    }
}
