//! Job specs: what to train, for whom, on what, with which resources.
//!
//! A spec is YAML or JSON (JSON is read by the same YAML reader), checked
//! as a whole: every problem is reported with its line, column and field
//! path, and a spec with any problem is refused. The checked spec is kept
//! as JSON ([`JobSpec`] serialises to it) so a server re-reads what a
//! command line checked.
//!
//! ```yaml
//! job: churn-gbdt
//! tenant: growth
//! trainer: builtin:gbdt
//! data: {dataset: churn_train, label: churned}      # or {training_set: OUT.parquet}
//! params: {max_depth: 6, learning_rate: 0.1, n_estimators: 200, seed: 7}
//! resources: {cpus: 1, memory: 2GiB}
//! executor: local
//! ```

use std::collections::BTreeMap;

use keel_core::yaml::{self, Checker, Node, Value as Yaml, join};
use keel_stats::rng::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The built-in trainers.
pub const BUILTIN_TRAINERS: [&str; 3] = ["logistic_regression", "linear_regression", "gbdt"];

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// A process per job on the server's machine.
    Local,
    /// A Ray cluster, through its Jobs REST API.
    Ray,
}

impl Executor {
    pub fn name(self) -> &'static str {
        match self {
            Executor::Local => "local",
            Executor::Ray => "ray",
        }
    }
}

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trainer {
    /// One of [`BUILTIN_TRAINERS`], run by Keel itself.
    Builtin(String),
    /// A user's program: a shell command line (`sh -c`).
    Command(String),
}

impl Trainer {
    /// `builtin:gbdt` or `command`.
    pub fn label(&self) -> String {
        match self {
            Trainer::Builtin(name) => format!("builtin:{name}"),
            Trainer::Command(_) => "command".into(),
        }
    }
}

/// The data a job trains on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DataRef {
    /// A dataset of the catalog, by name (latest version) or `name@version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// A training set file (Parquet or CSV), e.g. from
    /// `keel features training-set`; an absolute path once checked by the CLI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_set: Option<String>,
    /// A feature service whose point-in-time training set is built for the
    /// job from `entities` (join keys, `event_timestamp` and the label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_service: Option<String>,
    /// The entity/label file of `feature_service` (an absolute path once
    /// checked by the CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<String>,
    /// The label column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Columns left out of the features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// What a job may use while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub cpus: f64,
    pub memory_bytes: u64,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: 1.0,
            memory_bytes: 1 << 30,
        }
    }
}

/// A hyperparameter search: child jobs, one per parameter set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sweep {
    /// Every combination of the listed values.
    Grid(BTreeMap<String, Vec<Value>>),
    /// `trials` draws, seeded, from each parameter's distribution.
    Random {
        trials: u32,
        seed: u64,
        space: BTreeMap<String, Distribution>,
    },
}

/// Where a random search draws one parameter from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// One of the values, uniformly.
    Choice(Vec<Value>),
    /// A float uniform in `[low, high)`.
    Uniform(f64, f64),
    /// A float whose logarithm is uniform in `[ln low, ln high)`.
    LogUniform(f64, f64),
    /// An integer uniform in `[low, high]`.
    Int(i64, i64),
}

/// A checked job spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub job: String,
    pub tenant: String,
    pub trainer: Trainer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataRef>,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    #[serde(default)]
    pub resources: Resources,
    /// Higher runs first within a tenant.
    #[serde(default)]
    pub priority: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Further attempts after a failure, with exponential backoff.
    #[serde(default)]
    pub retries: u32,
    pub executor: Executor,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// A directory copied into the job's working directory when it is
    /// submitted (an absolute path once checked by the CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The tracking experiment the job's runs go to (default: the job name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// Built-in trainers: write a checkpoint every N iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<u32>,
    /// Built-in trainers: register the trained model as a new version of
    /// this registered model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<String>,
    /// When the job ends, send `job_succeeded` or `job_failed` to this
    /// lifecycle instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
}

/// A lifecycle instance told when a job ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notify {
    pub lifecycle: String,
    pub key: String,
}

pub use keel_core::yaml::Problem;

/// Every problem of a refused spec, in file order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct SpecError {
    pub problems: Vec<Problem>,
}

const KEYS: [&str; 18] = [
    "job",
    "tenant",
    "trainer",
    "command",
    "data",
    "params",
    "sweep",
    "resources",
    "priority",
    "timeout",
    "retries",
    "executor",
    "env",
    "code",
    "experiment",
    "checkpoint_every",
    "register",
    "notify",
];

/// Most child jobs one sweep may create.
pub const MAX_SWEEP_JOBS: usize = 1_000;

/// Reads and checks a spec's text (YAML or JSON).
pub fn parse(src: &str) -> Result<JobSpec, SpecError> {
    let root = yaml::parse(src).map_err(|e| SpecError {
        problems: vec![e.into()],
    })?;
    let mut r = Reader(Checker::default());
    let spec = r.spec(&root);
    let problems = r.0.into_problems();
    match spec {
        Some(s) if problems.is_empty() => Ok(s),
        _ => Err(SpecError { problems }),
    }
}

/// A name: letters, digits, `.`, `_` and `-`, starting with a letter or
/// digit, at most 128 characters.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `2GiB`, `512MiB`, `1.5G`, `300M`, `4096` (bytes): binary units `KiB`,
/// `MiB`, `GiB`, `TiB`, decimal units `K`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. 2GiB, 512MiB or 1G"))?;
    let scale = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" | "k" | "kB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "T" | "TB" => 1e12,
        "Ki" | "KiB" => 1024.0,
        "Mi" | "MiB" => 1024.0 * 1024.0,
        "Gi" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        "Ti" | "TiB" => 1024.0f64.powi(4),
        other => {
            return Err(format!(
                "unknown unit {other:?}; use B, KiB, MiB, GiB, TiB or K, M, G, T"
            ));
        }
    };
    let bytes = value * scale;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(bytes.round() as u64)
}

/// The job spec's own rules over the shared YAML checks.
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
    fn name(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.string(node, path)?;
        if valid_name(&s) {
            Some(s)
        } else {
            self.problem(
                node.span,
                path,
                format!("{s:?} is not a name: use letters, digits, `.`, `_` and `-` (at most 128)"),
            );
            None
        }
    }

    fn whole(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        match node.value {
            Yaml::Int(i) if (min..=max).contains(&i) => Some(i),
            Yaml::Int(i) => {
                self.problem(
                    node.span,
                    path,
                    format!("{i} is out of range; expected {min}..={max}"),
                );
                None
            }
            _ => {
                self.problem(
                    node.span,
                    path,
                    format!("expected a whole number, found a {}", node.kind()),
                );
                None
            }
        }
    }

    /// A scalar parameter value (string, number, boolean).
    fn scalar(&mut self, node: &Node, path: &str) -> Option<Value> {
        match &node.value {
            Yaml::Str(_) | Yaml::Int(_) | Yaml::Bool(_) => Some(node.to_json()),
            Yaml::Float(f) if f.is_finite() => Some(node.to_json()),
            _ => {
                self.problem(
                    node.span,
                    path,
                    format!(
                        "expected a string, number or boolean, found a {}",
                        node.kind()
                    ),
                );
                None
            }
        }
    }

    fn spec(&mut self, root: &Node) -> Option<JobSpec> {
        let entries = self.mapping(root, "", &KEYS)?;
        let get = |key: &str| entries.iter().find(|(k, _)| k.as_str() == Some(key));
        let required = |r: &mut Reader, key: &str| -> Option<&Node> {
            match get(key) {
                Some((_, v)) => Some(v),
                None => {
                    r.problem(root.span, key, "missing");
                    None
                }
            }
        };
        let job = required(self, "job").and_then(|n| self.name(n, "job"));
        let tenant = required(self, "tenant").and_then(|n| self.name(n, "tenant"));
        let command = get("command").and_then(|(_, n)| self.string(n, "command"));
        let trainer = match get("trainer") {
            Some((_, n)) => {
                let text = self.string(n, "trainer");
                match text.as_deref() {
                    Some("command") => match command.clone() {
                        Some(c) => Some(Trainer::Command(c)),
                        None => {
                            self.problem(
                                n.span,
                                "command",
                                "missing: `trainer: command` runs the `command:` line",
                            );
                            None
                        }
                    },
                    Some(t) => match t.strip_prefix("builtin:") {
                        Some(b) if BUILTIN_TRAINERS.contains(&b) => {
                            if command.is_some() {
                                self.problem(
                                    n.span,
                                    "command",
                                    "a built-in trainer runs no command; remove `command` or use `trainer: command`",
                                );
                            }
                            Some(Trainer::Builtin(b.to_string()))
                        }
                        _ => {
                            let names: Vec<String> = BUILTIN_TRAINERS
                                .iter()
                                .map(|b| format!("builtin:{b}"))
                                .chain(["command".to_string()])
                                .collect();
                            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                            let hint = keel_core::suggest::closest(t, &refs, &mut self.budget)
                                .map(|c| format!("did you mean `{c}`?"))
                                .unwrap_or_else(|| format!("expected one of {}", refs.join(", ")));
                            self.problem(
                                n.span,
                                "trainer",
                                format!("unknown trainer {t:?}; {hint}"),
                            );
                            None
                        }
                    },
                    None => None,
                }
            }
            None => match command.clone() {
                Some(c) => Some(Trainer::Command(c)),
                None => {
                    self.problem(
                        root.span,
                        "trainer",
                        "missing: name a built-in trainer (builtin:gbdt, builtin:logistic_regression, builtin:linear_regression) or give a `command:`",
                    );
                    None
                }
            },
        };
        let data = get("data").and_then(|(_, n)| self.data(n));
        if let (Some(Trainer::Builtin(_)), None) = (&trainer, &data) {
            self.problem(
                root.span,
                "data",
                "missing: a built-in trainer needs `data: {dataset: NAME, label: COLUMN}` or `{training_set: FILE, label: COLUMN}`",
            );
        }
        if let (Some(Trainer::Builtin(_)), Some(d)) = (&trainer, &data)
            && d.label.is_none()
            && let Some((_, n)) = get("data")
        {
            self.problem(n.span, "data.label", "missing: the column to learn");
        }
        let mut params = Map::new();
        if let Some((_, n)) = get("params")
            && let Some(entries) = self.mapping(n, "params", &[])
        {
            for (k, v) in entries {
                let Some(key) = k.as_str() else { continue };
                if let Some(value) = self.scalar(v, &join("params", key)) {
                    params.insert(key.to_string(), value);
                }
            }
        }
        let sweep = get("sweep").and_then(|(_, n)| self.sweep(n));
        if let Some(Trainer::Builtin(name)) = &trainer {
            // Every parameter set the job will train with (a sweep's too).
            let sets = match &sweep {
                Some(sw) => sw.expand(&params),
                None => vec![params.clone()],
            };
            let span = get("params").map_or(root.span, |(_, n)| n.span);
            if let Some(e) = sets.iter().find_map(|p| builtin_params(name, p).err()) {
                self.problem(span, "params", e);
            }
        }
        let resources = match get("resources") {
            Some((_, n)) => self.resources(n),
            None => Some(Resources::default()),
        };
        let priority = match get("priority") {
            Some((_, n)) => self.whole(n, "priority", -1_000_000, 1_000_000),
            None => Some(0),
        };
        let timeout_ms = match get("timeout") {
            Some((_, n)) => match self.string(n, "timeout") {
                Some(t) => match keel_core::duration::parse_duration(&t) {
                    Ok(d) if d.as_millis() > 0 => Some(Some(d.as_millis() as u64)),
                    Ok(_) => {
                        self.problem(n.span, "timeout", "must be longer than 0s");
                        None
                    }
                    Err(e) => {
                        self.problem(n.span, "timeout", e);
                        None
                    }
                },
                None => None,
            },
            None => Some(None),
        };
        let retries = match get("retries") {
            Some((_, n)) => self.whole(n, "retries", 0, 100).map(|r| r as u32),
            None => Some(0),
        };
        let executor = match get("executor") {
            Some((_, n)) => match self.string(n, "executor").as_deref() {
                Some("local") => Some(Executor::Local),
                Some("ray") => Some(Executor::Ray),
                Some(other) => {
                    self.problem(
                        n.span,
                        "executor",
                        format!("unknown executor {other:?}; expected local or ray"),
                    );
                    None
                }
                None => None,
            },
            None => Some(Executor::Local),
        };
        let mut env = BTreeMap::new();
        if let Some((_, n)) = get("env")
            && let Some(entries) = self.mapping(n, "env", &[])
        {
            for (k, v) in entries {
                let Some(key) = k.as_str() else { continue };
                let path = join("env", key);
                if key.starts_with("KEEL_") || key.starts_with("MLFLOW_") {
                    self.problem(
                        k.span,
                        &path,
                        "KEEL_* and MLFLOW_* variables are set by Keel for the job",
                    );
                    continue;
                }
                match self.scalar(v, &path) {
                    Some(Value::String(s)) => {
                        env.insert(key.to_string(), s);
                    }
                    Some(other) => {
                        env.insert(key.to_string(), other.to_string());
                    }
                    None => {}
                }
            }
        }
        let code = get("code").and_then(|(_, n)| self.string(n, "code"));
        let experiment = get("experiment").and_then(|(_, n)| self.string(n, "experiment"));
        let checkpoint_every = match get("checkpoint_every") {
            Some((_, n)) => self
                .whole(n, "checkpoint_every", 1, 1_000_000)
                .map(|v| Some(v as u32)),
            None => Some(None),
        };
        let register = match get("register") {
            Some((_, n)) => self.name(n, "register").map(Some),
            None => Some(None),
        };
        let notify = match get("notify") {
            Some((_, n)) => self.notify(n).map(Some),
            None => Some(None),
        };
        if let (Some(Trainer::Command(_)), Some((_, n))) = (&trainer, get("checkpoint_every")) {
            self.problem(
                n.span,
                "checkpoint_every",
                "only built-in trainers write checkpoints; a command writes its own",
            );
        }
        Some(JobSpec {
            job: job?,
            tenant: tenant?,
            trainer: trainer?,
            data,
            params,
            sweep,
            resources: resources?,
            priority: priority?,
            timeout_ms: timeout_ms?,
            retries: retries?,
            executor: executor?,
            env,
            code,
            experiment,
            checkpoint_every: checkpoint_every?,
            register: register?,
            notify: notify?,
        })
    }

    fn notify(&mut self, node: &Node) -> Option<Notify> {
        let entries = self.mapping(node, "notify", &["lifecycle", "key"])?;
        let get = |key: &str| entries.iter().find(|(k, _)| k.as_str() == Some(key));
        let lifecycle = match get("lifecycle") {
            Some((_, v)) => self.string(v, "notify.lifecycle"),
            None => {
                self.problem(node.span, "notify.lifecycle", "missing");
                None
            }
        };
        let key = match get("key") {
            Some((_, v)) => self.string(v, "notify.key"),
            None => {
                self.problem(node.span, "notify.key", "missing");
                None
            }
        };
        Some(Notify {
            lifecycle: lifecycle?,
            key: key?,
        })
    }

    fn data(&mut self, node: &Node) -> Option<DataRef> {
        let entries = self.mapping(
            node,
            "data",
            &[
                "dataset",
                "training_set",
                "feature_service",
                "entities",
                "label",
                "exclude",
            ],
        )?;
        let mut d = DataRef::default();
        for (k, v) in entries {
            match k.as_str() {
                Some("dataset") => d.dataset = self.string(v, "data.dataset"),
                Some("training_set") => d.training_set = self.string(v, "data.training_set"),
                Some("feature_service") => {
                    d.feature_service = self.string(v, "data.feature_service");
                }
                Some("entities") => d.entities = self.string(v, "data.entities"),
                Some("label") => d.label = self.string(v, "data.label"),
                Some("exclude") => match &v.value {
                    Yaml::Seq(items) => {
                        for (i, item) in items.iter().enumerate() {
                            if let Some(s) = self.string(item, &format!("data.exclude[{i}]")) {
                                d.exclude.push(s);
                            }
                        }
                    }
                    _ => {
                        self.problem(v.span, "data.exclude", "expected a list of column names");
                    }
                },
                _ => {}
            }
        }
        let sources = [
            d.dataset.is_some(),
            d.training_set.is_some(),
            d.feature_service.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if d.feature_service.is_some() != d.entities.is_some() {
            self.problem(
                node.span,
                "data.entities",
                "a feature service's training set is built from `entities` (join keys, event_timestamp, label); give both",
            );
            return None;
        }
        match sources {
            1 => Some(d),
            0 => {
                self.problem(
                    node.span,
                    "data",
                    "give `dataset: NAME`, `training_set: FILE` or `feature_service: NAME` with `entities: FILE`",
                );
                None
            }
            _ => {
                self.problem(
                    node.span,
                    "data",
                    "give one of `dataset`, `training_set` or `feature_service`",
                );
                None
            }
        }
    }

    fn resources(&mut self, node: &Node) -> Option<Resources> {
        let entries = self.mapping(node, "resources", &["cpus", "memory"])?;
        let mut r = Resources::default();
        let before = self.problems.len();
        for (k, v) in entries {
            match k.as_str() {
                Some("cpus") => {
                    if let Some(c) = self.number(v, "resources.cpus") {
                        if c > 0.0 && c <= 4096.0 {
                            r.cpus = c;
                        } else {
                            self.problem(
                                v.span,
                                "resources.cpus",
                                "must be more than 0 and at most 4096",
                            );
                        }
                    }
                }
                Some("memory") => {
                    let parsed = match &v.value {
                        Yaml::Int(i) if *i > 0 => Ok(*i as u64),
                        Yaml::Str(s) => parse_bytes(s),
                        _ => Err(format!(
                            "expected a size such as 2GiB, found a {}",
                            v.kind()
                        )),
                    };
                    match parsed {
                        Ok(b) => r.memory_bytes = b,
                        Err(e) => self.problem(v.span, "resources.memory", e),
                    }
                }
                _ => {}
            }
        }
        (self.problems.len() == before).then_some(r)
    }

    fn sweep(&mut self, node: &Node) -> Option<Sweep> {
        let entries = self.mapping(node, "sweep", &["grid", "random"])?;
        let [(k, v)] = entries else {
            self.problem(node.span, "sweep", "give one of `grid` or `random`");
            return None;
        };
        match k.as_str() {
            Some("grid") => {
                let entries = self.mapping(v, "sweep.grid", &[])?;
                let mut grid = BTreeMap::new();
                let mut combinations: usize = 1;
                for (pk, pv) in entries {
                    let Some(name) = pk.as_str() else { continue };
                    let path = join("sweep.grid", name);
                    let Yaml::Seq(items) = &pv.value else {
                        self.problem(pv.span, &path, "expected a list of values to try");
                        continue;
                    };
                    if items.is_empty() {
                        self.problem(pv.span, &path, "give at least one value");
                        continue;
                    }
                    let values: Vec<Value> = items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, item)| self.scalar(item, &format!("{path}[{i}]")))
                        .collect();
                    combinations = combinations.saturating_mul(values.len());
                    grid.insert(name.to_string(), values);
                }
                if combinations > MAX_SWEEP_JOBS {
                    self.problem(
                        v.span,
                        "sweep.grid",
                        format!(
                            "{combinations} combinations; at most {MAX_SWEEP_JOBS} jobs per sweep"
                        ),
                    );
                    return None;
                }
                Some(Sweep::Grid(grid))
            }
            Some("random") => {
                let entries = self.mapping(v, "sweep.random", &["trials", "seed", "space"])?;
                let (mut trials, mut seed, mut space) = (None, 0u64, None);
                for (rk, rv) in entries {
                    match rk.as_str() {
                        Some("trials") => {
                            trials = self
                                .whole(rv, "sweep.random.trials", 1, MAX_SWEEP_JOBS as i64)
                                .map(|t| t as u32);
                        }
                        Some("seed") => {
                            seed = self
                                .whole(rv, "sweep.random.seed", 0, i64::MAX)
                                .unwrap_or(0) as u64;
                        }
                        Some("space") => space = self.space(rv),
                        _ => {}
                    }
                }
                if trials.is_none() && !entries.iter().any(|(k, _)| k.as_str() == Some("trials")) {
                    self.problem(v.span, "sweep.random.trials", "missing");
                }
                if space.is_none() && !entries.iter().any(|(k, _)| k.as_str() == Some("space")) {
                    self.problem(v.span, "sweep.random.space", "missing");
                }
                Some(Sweep::Random {
                    trials: trials?,
                    seed,
                    space: space?,
                })
            }
            _ => None,
        }
    }

    fn space(&mut self, node: &Node) -> Option<BTreeMap<String, Distribution>> {
        let entries = self.mapping(node, "sweep.random.space", &[])?;
        let mut out = BTreeMap::new();
        let before = self.problems.len();
        for (k, v) in entries {
            let Some(name) = k.as_str() else { continue };
            let path = join("sweep.random.space", name);
            let pair = |r: &mut Reader, n: &Node, p: &str| -> Option<(f64, f64)> {
                match &n.value {
                    Yaml::Seq(items) if items.len() == 2 => {
                        let lo = r.number(&items[0], &format!("{p}[0]"))?;
                        let hi = r.number(&items[1], &format!("{p}[1]"))?;
                        if lo < hi {
                            Some((lo, hi))
                        } else {
                            r.problem(n.span, p, "expected [low, high] with low < high");
                            None
                        }
                    }
                    _ => {
                        r.problem(n.span, p, "expected [low, high]");
                        None
                    }
                }
            };
            let d = match &v.value {
                Yaml::Seq(items) if !items.is_empty() => Some(Distribution::Choice(
                    items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, item)| self.scalar(item, &format!("{path}[{i}]")))
                        .collect(),
                )),
                Yaml::Map(m) if m.len() == 1 => {
                    let (dk, dv) = &m[0];
                    let dpath = join(&path, dk.as_str().unwrap_or(""));
                    match dk.as_str() {
                        Some("uniform") => {
                            pair(self, dv, &dpath).map(|(a, b)| Distribution::Uniform(a, b))
                        }
                        Some("log_uniform") => match pair(self, dv, &dpath) {
                            Some((a, b)) if a > 0.0 => Some(Distribution::LogUniform(a, b)),
                            Some(_) => {
                                self.problem(dv.span, &dpath, "log_uniform needs low > 0");
                                None
                            }
                            None => None,
                        },
                        Some("int") => match pair(self, dv, &dpath) {
                            Some((a, b)) if a.fract() == 0.0 && b.fract() == 0.0 => {
                                Some(Distribution::Int(a as i64, b as i64))
                            }
                            Some(_) => {
                                self.problem(dv.span, &dpath, "int needs whole bounds");
                                None
                            }
                            None => None,
                        },
                        _ => {
                            self.problem(
                                dk.span,
                                &path,
                                "expected a list of choices, or one of {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {int: [lo, hi]}",
                            );
                            None
                        }
                    }
                }
                _ => {
                    self.problem(
                        v.span,
                        &path,
                        "expected a list of choices, or one of {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {int: [lo, hi]}",
                    );
                    None
                }
            };
            if let Some(d) = d {
                out.insert(name.to_string(), d);
            }
        }
        (self.problems.len() == before).then_some(out)
    }
}

impl JobSpec {
    /// The parameter sets of the sweep's child jobs (each merged over
    /// `params`), in a fixed order; empty without a sweep.
    pub fn sweep_params(&self) -> Vec<Map<String, Value>> {
        self.sweep
            .as_ref()
            .map_or_else(Vec::new, |sweep| sweep.expand(&self.params))
    }

    /// The spec in its own file format, as JSON (what [`parse`] reads back
    /// to an equal spec).
    pub fn to_source(&self) -> Value {
        let mut m = Map::new();
        m.insert("job".into(), Value::from(self.job.clone()));
        m.insert("tenant".into(), Value::from(self.tenant.clone()));
        match &self.trainer {
            Trainer::Builtin(b) => {
                m.insert("trainer".into(), Value::from(format!("builtin:{b}")));
            }
            Trainer::Command(c) => {
                m.insert("trainer".into(), Value::from("command"));
                m.insert("command".into(), Value::from(c.clone()));
            }
        }
        if let Some(d) = &self.data {
            m.insert(
                "data".into(),
                serde_json::to_value(d).unwrap_or(Value::Null),
            );
        }
        if !self.params.is_empty() {
            m.insert("params".into(), Value::Object(self.params.clone()));
        }
        if let Some(sweep) = &self.sweep {
            let v = match sweep {
                Sweep::Grid(g) => serde_json::json!({ "grid": g }),
                Sweep::Random {
                    trials,
                    seed,
                    space,
                } => {
                    let space: Map<String, Value> = space
                        .iter()
                        .map(|(k, d)| {
                            let v = match d {
                                Distribution::Choice(c) => Value::Array(c.clone()),
                                Distribution::Uniform(a, b) => {
                                    serde_json::json!({"uniform": [a, b]})
                                }
                                Distribution::LogUniform(a, b) => {
                                    serde_json::json!({"log_uniform": [a, b]})
                                }
                                Distribution::Int(a, b) => serde_json::json!({"int": [a, b]}),
                            };
                            (k.clone(), v)
                        })
                        .collect();
                    serde_json::json!({"random": {"trials": trials, "seed": seed, "space": space}})
                }
            };
            m.insert("sweep".into(), v);
        }
        m.insert(
            "resources".into(),
            serde_json::json!({"cpus": self.resources.cpus, "memory": self.resources.memory_bytes}),
        );
        m.insert("priority".into(), Value::from(self.priority));
        if let Some(t) = self.timeout_ms {
            m.insert("timeout".into(), Value::from(format!("{t}ms")));
        }
        m.insert("retries".into(), Value::from(self.retries));
        m.insert("executor".into(), Value::from(self.executor.name()));
        if !self.env.is_empty() {
            m.insert(
                "env".into(),
                serde_json::to_value(&self.env).unwrap_or(Value::Null),
            );
        }
        for (k, v) in [
            ("code", &self.code),
            ("experiment", &self.experiment),
            ("register", &self.register),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::from(v.clone()));
            }
        }
        if let Some(c) = self.checkpoint_every {
            m.insert("checkpoint_every".into(), Value::from(c));
        }
        if let Some(n) = &self.notify {
            m.insert(
                "notify".into(),
                serde_json::json!({"lifecycle": n.lifecycle, "key": n.key}),
            );
        }
        Value::Object(m)
    }

    /// A built-in trainer's parameters (the spec's `params` under the
    /// trainer's family) and the validation fraction (`validation_fraction`,
    /// default 0.2, which the runner takes out). `None` for a command job;
    /// an error names the parameter.
    pub fn builtin_params(&self) -> Option<Result<(keel_learn::Params, f64), String>> {
        let Trainer::Builtin(name) = &self.trainer else {
            return None;
        };
        Some(builtin_params(name, &self.params))
    }

    /// The tracking experiment of the job's runs.
    pub fn experiment_name(&self) -> &str {
        self.experiment.as_deref().unwrap_or(&self.job)
    }
}

impl Sweep {
    /// The parameter sets of its child jobs, each `base` with the swept
    /// values set, in a fixed order (random draws seeded).
    pub fn expand(&self, base: &Map<String, Value>) -> Vec<Map<String, Value>> {
        match self {
            Sweep::Grid(grid) => {
                let mut sets = vec![base.clone()];
                for (name, values) in grid {
                    let mut next = Vec::with_capacity(sets.len() * values.len());
                    for set in &sets {
                        for v in values {
                            let mut s = set.clone();
                            s.insert(name.clone(), v.clone());
                            next.push(s);
                        }
                    }
                    sets = next;
                }
                sets
            }
            Sweep::Random {
                trials,
                seed,
                space,
            } => {
                let mut rng = Rng::from_seed(*seed);
                (0..*trials)
                    .map(|_| {
                        let mut s = base.clone();
                        for (name, d) in space {
                            s.insert(name.clone(), draw(d, &mut rng));
                        }
                        s
                    })
                    .collect()
            }
        }
    }
}

fn builtin_params(
    trainer: &str,
    params: &Map<String, Value>,
) -> Result<(keel_learn::Params, f64), String> {
    let family = match trainer {
        "gbdt" => "gbdt",
        "logistic_regression" => "logistic",
        "linear_regression" => "linear",
        other => return Err(format!("unknown built-in trainer {other}")),
    };
    let mut p = params.clone();
    let fraction = match p.remove("validation_fraction") {
        None => 0.2,
        Some(v) => v
            .as_f64()
            .filter(|f| (0.0..0.9).contains(f))
            .ok_or_else(|| format!("validation_fraction: {v}; expected a number in [0, 0.9)"))?,
    };
    p.insert("family".into(), Value::from(family));
    let parsed: keel_learn::Params =
        serde_json::from_value(Value::Object(p)).map_err(|e| e.to_string())?;
    parsed.validate().map_err(|e| e.to_string())?;
    Ok((parsed, fraction))
}

fn draw(d: &Distribution, rng: &mut Rng) -> Value {
    match d {
        Distribution::Choice(values) => {
            let i = (rng.next_f64() * values.len() as f64) as usize;
            values[i.min(values.len() - 1)].clone()
        }
        Distribution::Uniform(lo, hi) => Value::from(lo + (hi - lo) * rng.next_f64()),
        Distribution::LogUniform(lo, hi) => {
            Value::from((lo.ln() + (hi.ln() - lo.ln()) * rng.next_f64()).exp())
        }
        Distribution::Int(lo, hi) => {
            // In f64, so bounds near i64's limits cannot overflow.
            let (lo, hi) = (*lo as f64, *hi as f64);
            let x = (lo + (rng.next_f64() * (hi - lo + 1.0)).floor()).min(hi);
            Value::from(x as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTRACT: &str = "job: churn-gbdt
tenant: growth
trainer: builtin:gbdt
data: {dataset: churn_train, label: churned}      # or {training_set: OUT.parquet}
params: {max_depth: 6, learning_rate: 0.1, n_estimators: 200, seed: 7}
resources: {cpus: 1, memory: 2GiB}
executor: local
";

    #[test]
    fn the_contract_spec_reads() {
        let s = parse(CONTRACT).unwrap();
        assert_eq!(s.job, "churn-gbdt");
        assert_eq!(s.tenant, "growth");
        assert_eq!(s.trainer, Trainer::Builtin("gbdt".into()));
        assert_eq!(
            s.data.as_ref().unwrap().dataset.as_deref(),
            Some("churn_train")
        );
        assert_eq!(s.params["max_depth"], 6);
        assert_eq!(s.resources.memory_bytes, 2 << 30);
        assert_eq!(s.resources.cpus, 1.0);
        assert_eq!(s.executor, Executor::Local);
        // Stored as JSON, and sent in its own format, both read back equal.
        let json = serde_json::to_string(&s).unwrap();
        let back: JobSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(parse(&s.to_source().to_string()).unwrap(), s);
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let src = "job: churn gbdt
tenant: growth
trainer: builtin:gbtd
data: {dataset: x, training_set: y}
resources: {cpus: 0, memroy: 2GiB}
timeout: 10
retries: -1
executor: kubernetes
env: {MLFLOW_TRACKING_URI: x}
colour: red
";
        let err = parse(src).unwrap_err();
        let text = err.to_string();
        for needle in [
            "line 1, column 6: job: \"churn gbdt\" is not a name",
            "line 3, column 10: trainer: unknown trainer \"builtin:gbtd\"; did you mean `builtin:gbdt`?",
            "data: give one of `dataset`, `training_set` or `feature_service`",
            "resources.cpus: must be more than 0",
            "resources.memroy: unknown key; did you mean `memory`?",
            "timeout: expected a string",
            "retries: -1 is out of range",
            "executor: unknown executor \"kubernetes\"",
            "env.MLFLOW_TRACKING_URI: KEEL_* and MLFLOW_* variables are set by Keel",
            "colour: unknown key",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        let lines: Vec<usize> = err.problems.iter().map(|p| p.line).collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
        assert!(
            parse("job: x\ntenant: t\n")
                .unwrap_err()
                .to_string()
                .contains("trainer: missing")
        );
        assert!(parse("job: [").is_err());
        let fs = parse(
            "job: x\ntenant: t\ntrainer: builtin:gbdt\ndata: {feature_service: churn, entities: e.parquet, label: y}\n",
        )
        .unwrap();
        assert_eq!(fs.data.unwrap().feature_service.as_deref(), Some("churn"));
        let no_entities = parse(
            "job: x\ntenant: t\ntrainer: builtin:gbdt\ndata: {feature_service: churn, label: y}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            no_entities.contains("data.entities: a feature service"),
            "{no_entities}"
        );
        let typo = parse(
            "job: x\ntenant: t\ntrainer: builtin:gbdt\ndata: {training_set: a.parquet, label: y}\nparams: {n_estimator: 5}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            typo.contains("line 5, column 9: params: unknown field `n_estimator`"),
            "{typo}"
        );
        let swept = parse(
            "job: x\ntenant: t\ntrainer: builtin:gbdt\ndata: {training_set: a.parquet, label: y}\nsweep: {grid: {learning_rate: [0.1, -1]}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(swept.contains("learning_rate"), "{swept}");
        assert!(
            parse("job: x\ntenant: t\ntrainer: builtin:gbdt\n")
                .unwrap_err()
                .to_string()
                .contains("data: missing")
        );
    }

    #[test]
    fn commands_sweeps_and_sizes() {
        let s = parse(
            r#"{"job": "sweep", "tenant": "t", "command": "python train.py --lr {learning_rate}",
                "params": {"epochs": 3}, "sweep": {"grid": {"learning_rate": [0.1, 0.01], "depth": [3, 4, 5]}},
                "timeout": "30m", "retries": 2, "priority": 5}"#,
        )
        .unwrap();
        assert_eq!(
            s.trainer,
            Trainer::Command("python train.py --lr {learning_rate}".into())
        );
        assert_eq!(s.timeout_ms, Some(30 * 60 * 1000));
        let sets = s.sweep_params();
        assert_eq!(sets.len(), 6);
        assert!(sets.iter().all(|p| p["epochs"] == 3));
        assert_eq!(sets[0]["depth"], 3);
        assert_eq!(sets[0]["learning_rate"], 0.1);
        assert_eq!(sets[5]["depth"], 5);
        assert_eq!(sets[5]["learning_rate"], 0.01);

        let r = parse(
            "job: r\ntenant: t\ncommand: ./run.sh\nsweep:\n  random:\n    trials: 20\n    seed: 3\n    space:\n      lr: {log_uniform: [0.001, 0.1]}\n      depth: {int: [2, 4]}\n      booster: [gbtree, dart]\n",
        )
        .unwrap();
        assert_eq!(parse(&r.to_source().to_string()).unwrap(), r);
        let n =
            parse("job: n\ntenant: t\ncommand: x\nnotify: {lifecycle: churn, key: v7}\n").unwrap();
        assert_eq!(
            n.notify,
            Some(Notify {
                lifecycle: "churn".into(),
                key: "v7".into()
            })
        );
        assert_eq!(parse(&n.to_source().to_string()).unwrap(), n);
        assert!(
            parse("job: n\ntenant: t\ncommand: x\nnotify: {lifecycle: churn}\n")
                .unwrap_err()
                .to_string()
                .contains("notify.key: missing")
        );
        assert_eq!(parse(&s.to_source().to_string()).unwrap(), s);
        let sets = r.sweep_params();
        assert_eq!(sets.len(), 20);
        assert_eq!(sets, r.sweep_params(), "seeded");
        for p in &sets {
            let lr = p["lr"].as_f64().unwrap();
            assert!((0.001..0.1).contains(&lr));
            assert!((2..=4).contains(&p["depth"].as_i64().unwrap()));
            assert!(["gbtree", "dart"].contains(&p["booster"].as_str().unwrap()));
        }
        assert!(sets.iter().any(|p| p["depth"] == 2) && sets.iter().any(|p| p["depth"] == 4));

        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5G"), Ok(1_500_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("2 gigs").is_err());
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("").is_err());
        let too_many = "job: g\ntenant: t\ncommand: x\nsweep: {grid: {a: [1,2,3,4,5,6,7,8,9,10], b: [1,2,3,4,5,6,7,8,9,10], c: [1,2,3,4,5,6,7,8,9,10,11]}}\n";
        assert!(
            parse(too_many)
                .unwrap_err()
                .to_string()
                .contains("1100 combinations")
        );
    }
}
