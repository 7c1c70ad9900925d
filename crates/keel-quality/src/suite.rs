//! Suite files: what model to test, on which data, sliced how, by which
//! checks. [`parse`] reads the YAML and reports every problem at once, each
//! with its line, column and dotted path, and a "did you mean" for
//! misspelt keys and names.
//!
//! ```yaml
//! suite: credit-candidate
//! model: {onnx: model.onnx}            # or {registry: "models:/credit@candidate"}
//! data:
//!   test: {path: test.parquet, label: default}
//!   train: {path: train.parquet, label: default}
//! slices:
//!   young: "age < 25"
//! checks:
//!   - {kind: performance, metric: roc_auc, min: 0.80}
//!   - {kind: fairness, metric: demographic_parity_difference, sensitive: sex, max: 0.10}
//! ```

use std::collections::BTreeMap;

use keel_core::yaml::{self, Checker, Node, Value, join};
use serde::Serialize;

pub use keel_core::yaml::Problem;

/// Every problem of a suite file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct SuiteError {
    pub problems: Vec<Problem>,
}

/// The model under test.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelRef {
    /// An ONNX file, relative to the suite file.
    Onnx {
        path: String,
        /// Columns fed to the model's matrix input, in order (default: every
        /// column of the test set but the label, sensitive and id columns).
        features: Option<Vec<String>>,
    },
    /// A registered model version: `models:/NAME/V` or `models:/NAME@ALIAS`.
    Registry {
        reference: String,
        features: Option<Vec<String>>,
    },
}

/// One dataset of the suite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataRef {
    /// A Parquet or CSV file, relative to the suite file.
    pub path: String,
    /// The label column.
    pub label: Option<String>,
    /// Columns never fed to the model (ids, timestamps).
    pub exclude: Vec<String>,
}

/// The datasets a suite may name.
pub const DATASETS: [&str; 4] = ["test", "train", "holdout", "reference"];

/// What a check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Performance,
    Robustness,
    Fairness,
    Privacy,
    Security,
    Cost,
}

const KINDS: [&str; 6] = [
    "performance",
    "robustness",
    "fairness",
    "privacy",
    "security",
    "cost",
];

/// `error` fails the suite; `warning` is reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One check as written: its kind, name, severity and the rest of its keys
/// (validated for the kind) as JSON for the check to read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// `name:` if given, else made from the kind and its main key
    /// (`performance.roc_auc`, `fairness.demographic_parity_difference@sex`).
    pub name: String,
    pub severity: Severity,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Where the check is written, for messages.
    #[serde(skip)]
    pub line: usize,
}

/// A parsed, validated suite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suite {
    pub name: String,
    pub model: ModelRef,
    pub data: BTreeMap<String, DataRef>,
    /// Named predicates over the test set's columns (`age < 25 AND region = 'EU'`).
    pub slices: BTreeMap<String, String>,
    pub checks: Vec<CheckSpec>,
}

/// Performance metrics by task.
pub const CLASSIFICATION_METRICS: [&str; 10] = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "no_slice_worse_than_overall",
];
pub const REGRESSION_METRICS: [&str; 4] = ["rmse", "mae", "r2", "mape"];
pub const RANKING_METRICS: [&str; 3] = ["ndcg_at_k", "map_at_k", "precision_at_k"];
pub const FAIRNESS_METRICS: [&str; 7] = [
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "disparate_impact",
    "group_metrics",
];
pub const PERTURBATIONS: [&str; 4] = ["gaussian_noise", "category_swap", "missing", "typos"];
pub const PRIVACY_TESTS: [&str; 3] = ["membership_inference", "pii", "k_anonymity"];
/// How a membership-inference attacker scores a row: by the model's loss
/// on it (needs the label; the default) or by its confidence, the largest
/// class probability (needs no label).
pub const MEMBERSHIP_ATTACKS: [&str; 2] = ["loss", "confidence"];
pub const SECURITY_TESTS: [&str; 2] = ["evasion", "hostile_inputs"];
/// The probes of `hostile_inputs`: non-finite and far out-of-range values,
/// a wrong datatype, a wrong width, an empty and an oversized batch.
pub const HOSTILE_PROBES: [&str; 9] = [
    "nan",
    "pos_inf",
    "neg_inf",
    "huge",
    "neg_huge",
    "wrong_type",
    "wrong_shape",
    "empty_batch",
    "oversized_batch",
];
pub const COST_MEASURES: [&str; 5] = [
    "latency_p50_ms",
    "latency_p99_ms",
    "throughput",
    "peak_memory_mb",
    "cost_per_1000",
];

/// Reads and validates a suite file's text.
pub fn parse(src: &str) -> Result<Suite, SuiteError> {
    let root = yaml::parse(src).map_err(|e| SuiteError {
        problems: vec![e.into()],
    })?;
    let mut r = Reader(Checker::default());
    let suite = r.suite(&root);
    let problems = r.0.into_problems();
    match suite {
        Some(s) if problems.is_empty() => Ok(s),
        _ => Err(SuiteError { problems }),
    }
}

/// The suite's own rules over the shared YAML checks.
struct Reader(Checker);

impl std::ops::Deref for Reader {
    type Target = Checker;
    fn deref(&self) -> &Checker {
        &self.0
    }
}

impl std::ops::DerefMut for Reader {
    fn deref_mut(&mut self) -> &mut Checker {
        &mut self.0
    }
}

impl Reader {
    /// A string or a list of strings.
    fn strings(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        match &node.value {
            Value::Str(_) => self.string(node, path).map(|s| vec![s]),
            Value::Seq(items) if !items.is_empty() => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    out.push(self.string(item, &format!("{path}[{i}]"))?);
                }
                Some(out)
            }
            _ => {
                self.problem(
                    node.span,
                    path,
                    "expected a name or a non-empty list of names",
                );
                None
            }
        }
    }

    fn suite(&mut self, root: &Node) -> Option<Suite> {
        let entries = self.mapping(root, "", &["suite", "model", "data", "slices", "checks"])?;
        let _ = entries;
        let required = |r: &mut Reader, key: &str| -> Option<&Node> {
            let found = root.get(key);
            if found.is_none() {
                r.problem(root.span, key, "missing; every suite names it");
            }
            found
        };
        let name = required(self, "suite").and_then(|n| self.string(n, "suite"));
        let model = required(self, "model").and_then(|n| self.model(n));
        let data = required(self, "data").and_then(|n| self.data(n));
        let slices = match root.get("slices") {
            Some(n) => self.slices(n),
            None => Some(BTreeMap::new()),
        };
        let checks_node = required(self, "checks");
        let empty_data = BTreeMap::new();
        let empty_slices = BTreeMap::new();
        let checks = checks_node.and_then(|n| {
            self.checks(
                n,
                data.as_ref().unwrap_or(&empty_data),
                slices.as_ref().unwrap_or(&empty_slices),
            )
        });
        Some(Suite {
            name: name?,
            model: model?,
            data: data?,
            slices: slices?,
            checks: checks?,
        })
    }

    fn model(&mut self, node: &Node) -> Option<ModelRef> {
        self.mapping(node, "model", &["onnx", "registry", "features"])?;
        let features = match node.get("features") {
            Some(f) => Some(self.strings(f, "model.features")?),
            None => None,
        };
        match (node.get("onnx"), node.get("registry")) {
            (Some(p), None) => Some(ModelRef::Onnx {
                path: self.string(p, "model.onnx")?,
                features,
            }),
            (None, Some(r)) => {
                let reference = self.string(r, "model.registry")?;
                if !reference.starts_with("models:/") {
                    self.problem(
                        r.span,
                        "model.registry",
                        "expected models:/NAME/VERSION or models:/NAME@ALIAS",
                    );
                    return None;
                }
                Some(ModelRef::Registry {
                    reference,
                    features,
                })
            }
            _ => {
                self.problem(
                    node.span,
                    "model",
                    "give exactly one of `onnx: FILE` or `registry: models:/NAME@ALIAS`",
                );
                None
            }
        }
    }

    fn data(&mut self, node: &Node) -> Option<BTreeMap<String, DataRef>> {
        let entries = self.mapping(node, "data", &DATASETS)?;
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let Some(name) = k.as_str().filter(|k| DATASETS.contains(k)) else {
                continue;
            };
            let path = format!("data.{name}");
            let Some(_) = self.mapping(v, &path, &["path", "label", "exclude"]) else {
                continue;
            };
            let Some(file) = v
                .get("path")
                .and_then(|p| self.string(p, &format!("{path}.path")))
            else {
                if v.get("path").is_none() {
                    self.problem(v.span, &format!("{path}.path"), "missing: the data file");
                }
                continue;
            };
            let lower = file.to_ascii_lowercase();
            if !(lower.ends_with(".parquet") || lower.ends_with(".csv")) {
                self.problem(
                    v.span,
                    &format!("{path}.path"),
                    format!("{file:?}: expected a .parquet or .csv file"),
                );
            }
            let label = match v.get("label") {
                Some(l) => self.string(l, &format!("{path}.label")),
                None => None,
            };
            let exclude = match v.get("exclude") {
                Some(e) => self
                    .strings(e, &format!("{path}.exclude"))
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            out.insert(
                name.to_string(),
                DataRef {
                    path: file,
                    label,
                    exclude,
                },
            );
        }
        if !out.contains_key("test") {
            // Reported; the checks are still read against what is declared.
            self.problem(
                node.span,
                "data.test",
                "missing: the data the checks run on",
            );
        }
        Some(out)
    }

    fn slices(&mut self, node: &Node) -> Option<BTreeMap<String, String>> {
        let Value::Map(entries) = &node.value else {
            self.problem(node.span, "slices", "expected a mapping of name: predicate");
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let Some(name) = k.as_str() else {
                self.problem(k.span, "slices", "slice names are strings");
                continue;
            };
            if !keel_core::is_plain_name(name) {
                self.problem(k.span, &join("slices", name), "not a plain name");
            }
            if let Some(predicate) = self.string(v, &join("slices", name)) {
                out.insert(name.to_string(), predicate);
            }
        }
        Some(out)
    }

    fn checks(
        &mut self,
        node: &Node,
        data: &BTreeMap<String, DataRef>,
        slices: &BTreeMap<String, String>,
    ) -> Option<Vec<CheckSpec>> {
        let Value::Seq(items) = &node.value else {
            self.problem(node.span, "checks", "expected a list of checks");
            return None;
        };
        if items.is_empty() {
            self.problem(node.span, "checks", "a suite needs at least one check");
        }
        let before = self.problems.len();
        let mut out = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("checks[{i}]");
            if let Some(check) = self.check(item, &path, data, slices) {
                if let Some(first) = names.insert(check.name.clone(), i) {
                    self.problem(
                        item.span,
                        &path,
                        format!(
                            "a check named {:?} is already checks[{first}]; give one a `name:`",
                            check.name
                        ),
                    );
                }
                out.push(check);
            }
        }
        (self.problems.len() == before).then_some(out)
    }

    fn check(
        &mut self,
        node: &Node,
        path: &str,
        data: &BTreeMap<String, DataRef>,
        slices: &BTreeMap<String, String>,
    ) -> Option<CheckSpec> {
        let Some(kind_node) = node.get("kind") else {
            let found = if matches!(node.value, Value::Map(_)) {
                "missing `kind`".to_string()
            } else {
                format!("expected a mapping, found a {}", node.kind())
            };
            self.problem(
                node.span,
                path,
                format!("{found}; e.g. {{kind: performance, metric: roc_auc, min: 0.8}}"),
            );
            return None;
        };
        let kind_name = self.string(kind_node, &join(path, "kind"))?;
        let kind = match kind_name.as_str() {
            "performance" => CheckKind::Performance,
            "robustness" => CheckKind::Robustness,
            "fairness" => CheckKind::Fairness,
            "privacy" => CheckKind::Privacy,
            "security" => CheckKind::Security,
            "cost" => CheckKind::Cost,
            other => {
                let hint = keel_core::suggest::closest(other, &KINDS, &mut self.budget)
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("expected one of {}", KINDS.join(", ")));
                self.problem(
                    kind_node.span,
                    &join(path, "kind"),
                    format!("unknown kind {other:?}; {hint}"),
                );
                return None;
            }
        };
        let common = ["kind", "name", "severity", "dataset", "slice"];
        let specific: &[&str] = match kind {
            CheckKind::Performance => &[
                "metric", "min", "max", "k", "positive", "average", "bins", "max_gap", "min_size",
                "query",
            ],
            CheckKind::Fairness => &["metric", "sensitive", "min", "max", "positive"],
            CheckKind::Robustness => &[
                "perturbation",
                "max_flip_rate",
                "max_mean_change",
                "directional",
                "max_violation_rate",
                "cases",
                "min_pass_rate",
                "seed",
            ],
            CheckKind::Privacy => &[
                "test",
                "max_advantage",
                "max_auc",
                "columns",
                "max_findings",
                "quasi_identifiers",
                "min_k",
                "scan",
                "attack",
            ],
            CheckKind::Security => &[
                "test",
                "norm",
                "budget",
                "max_success_rate",
                "reject",
                "max_answered",
                "queries",
                "samples",
                "seed",
            ],
            CheckKind::Cost => &[
                "latency_p50_ms",
                "latency_p99_ms",
                "throughput",
                "peak_memory_mb",
                "cost_per_1000",
                "cpu_hour_usd",
            ],
        };
        let known: Vec<&str> = common.iter().chain(specific).copied().collect();
        self.mapping(node, path, &known)?;
        let before = self.problems.len();
        let severity = match node.get("severity").map(|n| (n, n.as_str())) {
            None => Severity::Error,
            Some((_, Some("error"))) => Severity::Error,
            Some((_, Some("warning"))) => Severity::Warning,
            Some((n, _)) => {
                self.problem(
                    n.span,
                    &join(path, "severity"),
                    "expected `error` or `warning`",
                );
                Severity::Error
            }
        };
        if let Some(d) = node.get("dataset")
            && let Some(name) = self.string(d, &join(path, "dataset"))
            && !data.contains_key(&name)
        {
            let declared: Vec<&str> = data.keys().map(String::as_str).collect();
            self.problem(
                d.span,
                &join(path, "dataset"),
                format!(
                    "no dataset {name:?} under data; declared: {}",
                    declared.join(", ")
                ),
            );
        }
        if let Some(s) = node.get("slice")
            && let Some(name) = self.string(s, &join(path, "slice"))
            && !slices.contains_key(&name)
        {
            let names: Vec<&str> = slices.keys().map(String::as_str).collect();
            let hint = keel_core::suggest::closest(&name, &names, &mut self.budget)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            self.problem(
                s.span,
                &join(path, "slice"),
                format!("no slice {name:?} under slices{hint}"),
            );
        }
        let main = self.kind_rules(kind, node, path, data);
        for key in [
            "min",
            "max",
            "max_flip_rate",
            "max_mean_change",
            "max_violation_rate",
            "min_pass_rate",
            "max_advantage",
            "max_auc",
            "max_success_rate",
            "max_answered",
            "budget",
            "cpu_hour_usd",
        ] {
            if let Some(n) = node.get(key) {
                self.number(n, &join(path, key));
            }
        }
        if self.problems.len() > before {
            return None;
        }
        let params = match node.to_json() {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let name = match node.get("name") {
            Some(n) => self.string(n, &join(path, "name"))?,
            None => {
                let mut name = format!("{kind_name}.{}", main.unwrap_or_default());
                if let Some(s) = node.get("sensitive") {
                    name.push('@');
                    name.push_str(&s.to_json().to_string().replace('"', ""));
                }
                if let Some(s) = node.get("slice").and_then(Node::as_str) {
                    name.push_str(&format!("[{s}]"));
                }
                name
            }
        };
        Some(CheckSpec {
            kind,
            name,
            severity,
            params,
            line: node.span.line,
        })
    }

    /// Checks the keys a kind needs; returns the check's main word (its
    /// metric, test or perturbation) for its default name.
    fn kind_rules(
        &mut self,
        kind: CheckKind,
        node: &Node,
        path: &str,
        data: &BTreeMap<String, DataRef>,
    ) -> Option<String> {
        let one_of = |r: &mut Reader, key: &str, allowed: &[&str]| -> Option<String> {
            let Some(n) = node.get(key) else {
                r.problem(
                    node.span,
                    &join(path, key),
                    format!("missing; one of {}", allowed.join(", ")),
                );
                return None;
            };
            let value = r.string(n, &join(path, key))?;
            if !allowed.contains(&value.as_str()) {
                let hint = keel_core::suggest::closest(&value, allowed, &mut r.budget)
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("expected one of {}", allowed.join(", ")));
                r.problem(
                    n.span,
                    &join(path, key),
                    format!("unknown {key} {value:?}; {hint}"),
                );
                return None;
            }
            Some(value)
        };
        let bound = |r: &mut Reader, keys: &[&str]| {
            if !keys.iter().any(|k| node.get(k).is_some()) {
                r.problem(
                    node.span,
                    path,
                    format!("give a threshold: {}", keys.join(" or ")),
                );
            }
        };
        match kind {
            CheckKind::Performance => {
                let all: Vec<&str> = CLASSIFICATION_METRICS
                    .iter()
                    .chain(&REGRESSION_METRICS)
                    .chain(&RANKING_METRICS)
                    .copied()
                    .collect();
                let metric = one_of(self, "metric", &all)?;
                if metric == "no_slice_worse_than_overall" {
                    if node.get("max_gap").is_none() {
                        self.problem(
                            node.span,
                            &join(path, "max_gap"),
                            "missing: how much worse than overall a slice may be",
                        );
                    }
                } else {
                    bound(self, &["min", "max"]);
                }
                if RANKING_METRICS.contains(&metric.as_str()) {
                    match node.get("query") {
                        Some(q) => {
                            self.string(q, &join(path, "query"));
                        }
                        None => self.problem(
                            node.span,
                            &join(path, "query"),
                            "missing: the column that groups rows into queries (or users)",
                        ),
                    }
                    match node.get("k").map(|k| (k, k.to_json().as_i64())) {
                        Some((_, Some(k))) if k >= 1 => {}
                        Some((k, _)) => {
                            self.problem(k.span, &join(path, "k"), "expected a whole number ≥ 1")
                        }
                        None if metric != "ndcg_at_k" => self.problem(
                            node.span,
                            &join(path, "k"),
                            "missing: how many top-ranked items count",
                        ),
                        None => {}
                    }
                }
                let dataset = node.get("dataset").and_then(Node::as_str).unwrap_or("test");
                if let Some(d) = data.get(dataset)
                    && d.label.is_none()
                {
                    self.problem(
                        node.span,
                        path,
                        format!("performance needs the label: add `label:` to data.{dataset}"),
                    );
                }
                Some(metric)
            }
            CheckKind::Fairness => {
                let metric = one_of(self, "metric", &FAIRNESS_METRICS)?;
                match node.get("sensitive") {
                    Some(s) => {
                        self.strings(s, &join(path, "sensitive"));
                    }
                    None => self.problem(
                        node.span,
                        &join(path, "sensitive"),
                        "missing: the sensitive column(s)",
                    ),
                }
                if metric != "group_metrics" {
                    bound(self, &["min", "max"]);
                }
                Some(metric)
            }
            CheckKind::Robustness => {
                if let Some(p) = node.get("perturbation") {
                    let entries = self.mapping(p, &join(path, "perturbation"), &PERTURBATIONS)?;
                    if entries.len() != 1 {
                        self.problem(
                            p.span,
                            &join(path, "perturbation"),
                            "give exactly one perturbation",
                        );
                        return None;
                    }
                    let (k, v) = &entries[0];
                    let name = k.as_str()?.to_string();
                    let ppath = join(&join(path, "perturbation"), &name);
                    self.mapping(v, &ppath, &["columns", "scale", "rate"])?;
                    match v.get("columns") {
                        Some(c) => {
                            self.strings(c, &join(&ppath, "columns"));
                        }
                        None => self.problem(
                            v.span,
                            &join(&ppath, "columns"),
                            "missing: the columns to perturb",
                        ),
                    }
                    let amount = if name == "gaussian_noise" {
                        "scale"
                    } else {
                        "rate"
                    };
                    match v.get(amount) {
                        Some(n) => {
                            if let Some(x) = self.number(n, &join(&ppath, amount))
                                && x < 0.0
                            {
                                self.problem(n.span, &join(&ppath, amount), "must not be negative");
                            }
                        }
                        None => self.problem(v.span, &join(&ppath, amount), "missing"),
                    }
                    bound(self, &["max_flip_rate", "max_mean_change"]);
                    Some(name)
                } else if let Some(d) = node.get("directional") {
                    self.mapping(
                        d,
                        &join(path, "directional"),
                        &["feature", "increase", "expect"],
                    )?;
                    for key in ["feature", "expect"] {
                        if d.get(key).is_none() {
                            self.problem(d.span, &join(&join(path, "directional"), key), "missing");
                        }
                    }
                    bound(self, &["max_violation_rate"]);
                    Some("directional".into())
                } else if let Some(c) = node.get("cases") {
                    self.string(c, &join(path, "cases"));
                    bound(self, &["min_pass_rate"]);
                    Some("minimum_functionality".into())
                } else {
                    self.problem(node.span, path, "give a `perturbation`, a `directional` expectation or minimum-functionality `cases`");
                    None
                }
            }
            CheckKind::Privacy => {
                let test = one_of(self, "test", &PRIVACY_TESTS)?;
                match test.as_str() {
                    "membership_inference" => {
                        bound(self, &["max_advantage", "max_auc"]);
                        if node.get("attack").is_some() {
                            one_of(self, "attack", &MEMBERSHIP_ATTACKS);
                        }
                        for needed in ["train", "holdout"] {
                            if !data.contains_key(needed) {
                                self.problem(node.span, path, format!("membership inference compares training rows with holdout rows: add data.{needed}"));
                            }
                        }
                    }
                    "pii" => {
                        bound(self, &["max_findings"]);
                        if let Some(n) = node.get("scan") {
                            let spath = join(path, "scan");
                            for (i, what) in self
                                .strings(n, &spath)
                                .unwrap_or_default()
                                .iter()
                                .enumerate()
                            {
                                if what != "outputs" && !data.contains_key(what) {
                                    let declared: Vec<&str> =
                                        data.keys().map(String::as_str).collect();
                                    self.problem(
                                        n.span,
                                        &format!("{spath}[{i}]"),
                                        format!(
                                            "{what:?} is neither a dataset under data ({}) nor `outputs`",
                                            declared.join(", ")
                                        ),
                                    );
                                }
                            }
                        }
                    }
                    _ => {
                        match node.get("quasi_identifiers") {
                            Some(q) => {
                                self.strings(q, &join(path, "quasi_identifiers"));
                            }
                            None => {
                                self.problem(node.span, &join(path, "quasi_identifiers"), "missing")
                            }
                        }
                        bound(self, &["min_k"]);
                    }
                }
                Some(test)
            }
            CheckKind::Security => {
                let test = one_of(self, "test", &SECURITY_TESTS)?;
                if test == "evasion" {
                    one_of(self, "norm", &["linf", "l2"]);
                    if node.get("budget").is_none() {
                        self.problem(
                            node.span,
                            &join(path, "budget"),
                            "missing: the perturbation budget",
                        );
                    }
                    bound(self, &["max_success_rate"]);
                } else if let Some(r) = node.get("reject") {
                    for (i, probe) in self
                        .strings(r, &join(path, "reject"))
                        .unwrap_or_default()
                        .iter()
                        .enumerate()
                    {
                        if !HOSTILE_PROBES.contains(&probe.as_str()) {
                            self.problem(
                                r.span,
                                &format!("{}[{i}]", join(path, "reject")),
                                format!(
                                    "unknown probe {probe:?}; expected one of {}",
                                    HOSTILE_PROBES.join(", ")
                                ),
                            );
                        }
                    }
                }
                Some(test)
            }
            CheckKind::Cost => {
                let measures: Vec<&str> = COST_MEASURES
                    .iter()
                    .copied()
                    .filter(|m| node.get(m).is_some())
                    .collect();
                if measures.len() != 1 {
                    self.problem(
                        node.span,
                        path,
                        format!("give exactly one of {}", COST_MEASURES.join(", ")),
                    );
                    return None;
                }
                let measure = measures[0];
                let mpath = join(path, measure);
                let m = node.get(measure)?;
                self.mapping(m, &mpath, &["batch", "min", "max"])?;
                if m.get("min").is_none() && m.get("max").is_none() {
                    self.problem(m.span, &mpath, "give a threshold: min or max");
                }
                if measure == "cost_per_1000" && node.get("cpu_hour_usd").is_none() {
                    self.problem(
                        node.span,
                        &join(path, "cpu_hour_usd"),
                        "missing: the price of a CPU hour, in dollars",
                    );
                }
                Some(measure.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT: &str = r#"
suite: credit-candidate
model: {onnx: model.onnx}            # or {registry: "models:/credit@candidate"}
data:
  test: {path: test.parquet, label: default}
  train: {path: train.parquet, label: default}
  holdout: {path: holdout.parquet, label: default}
slices:
  young: "age < 25"
checks:
  - {kind: performance, metric: roc_auc, min: 0.80}
  - {kind: performance, metric: accuracy, slice: young, min: 0.70}
  - {kind: fairness, metric: demographic_parity_difference, sensitive: sex, max: 0.10}
  - {kind: robustness, perturbation: {gaussian_noise: {columns: [income], scale: 0.05}}, max_flip_rate: 0.02}
  - {kind: privacy, test: membership_inference, max_advantage: 0.05}
  - {kind: cost, latency_p99_ms: {batch: 1, max: 5}}
"#;

    #[test]
    fn the_contract_example_reads() {
        let s = parse(CONTRACT).unwrap();
        assert_eq!(s.name, "credit-candidate");
        assert_eq!(
            s.model,
            ModelRef::Onnx {
                path: "model.onnx".into(),
                features: None
            }
        );
        assert_eq!(s.data["test"].label.as_deref(), Some("default"));
        assert_eq!(s.slices["young"], "age < 25");
        let names: Vec<&str> = s.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "performance.roc_auc",
                "performance.accuracy[young]",
                "fairness.demographic_parity_difference@sex",
                "robustness.gaussian_noise",
                "privacy.membership_inference",
                "cost.latency_p99_ms"
            ]
        );
        assert!(s.checks.iter().all(|c| c.severity == Severity::Error));
        assert_eq!(s.checks[2].params["max"], 0.10);
        assert_eq!(s.checks[0].line, 11);
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let src = r#"suite: s
model: {onnx: m.onnx, registry: "models:/x/1"}
data:
  tset: {path: t.parquet}
  train: {path: t.txt}
slices:
  young: "age < 25"
checks:
  - {kind: performanse, metric: roc_auc}
  - {kind: performance, metric: roc_acu, min: 0.8}
  - {kind: performance, metric: accuracy, slice: yuong, min: high}
  - {kind: fairness, metric: demographic_parity_difference, max: 0.1}
  - {kind: privacy, test: membership_inference, max_advantage: 0.05, colour: red}
"#;
        let err = parse(src).unwrap_err();
        let text = err.to_string();
        for needle in [
            "line 2, column 8: model: give exactly one of",
            "data.tset: unknown key; did you mean `test`?",
            "data.train.path: \"t.txt\": expected a .parquet or .csv file",
            "checks[0].kind: unknown kind \"performanse\"; did you mean `performance`?",
            "checks[1].metric: unknown metric \"roc_acu\"; did you mean `roc_auc`?",
            "checks[2].slice: no slice \"yuong\" under slices; did you mean `young`?",
            "checks[2].min: expected a finite number, found a string",
            "checks[3].sensitive: missing",
            "checks[4].colour: unknown key",
            "data.test: missing",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        // In file order.
        let lines: Vec<usize> = err.problems.iter().map(|p| p.line).collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    }

    #[test]
    fn ranking_needs_a_query_column_and_hostile_probes_are_named() {
        let src = r#"
suite: s
model: {onnx: m.onnx}
data:
  test: {path: t.parquet, label: clicked}
  train: {path: train.parquet}
  holdout: {path: holdout.parquet}
checks:
  - {kind: performance, metric: map_at_k, min: 0.2}
  - {kind: performance, metric: ndcg_at_k, query: user, k: 0, min: 0.2}
  - {kind: security, test: hostile_inputs, reject: [nan, nan_values]}
  - {kind: privacy, test: pii, max_findings: 0, scan: [test, outputs, trian]}
  - {kind: privacy, test: membership_inference, attack: confidense, max_auc: 0.6}
"#;
        let text = parse(src).unwrap_err().to_string();
        for needle in [
            "checks[0].query: missing: the column that groups rows",
            "checks[0].k: missing",
            "checks[1].k: expected a whole number",
            "checks[2].reject[1]: unknown probe \"nan_values\"",
            "checks[3].scan[2]: \"trian\" is neither a dataset under data (holdout, test, train) nor `outputs`",
            "checks[4].attack: unknown attack \"confidense\"; did you mean `confidence`?",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        let ok = src
            .replace("metric: map_at_k,", "metric: map_at_k, query: user, k: 5,")
            .replace("k: 0", "k: 10")
            .replace(", nan_values", ", wrong_type")
            .replace(", trian", "")
            .replace("confidense", "confidence");
        let suite = parse(&ok).unwrap();
        assert_eq!(suite.checks[2].name, "security.hostile_inputs");
    }

    #[test]
    fn yaml_errors_and_wrong_shapes_are_problems_not_panics() {
        for src in [
            "",
            "[1, 2]",
            "suite: [",
            "suite: s\nmodel: 3\ndata: 4\nchecks: 5",
            "checks:\n  - 1\n  - {}",
        ] {
            let err = parse(src).unwrap_err();
            assert!(!err.problems.is_empty(), "{src:?}");
        }
    }
}
