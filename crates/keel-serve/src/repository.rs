//! The model repository: Triton's layout, `ROOT/<name>/<version>/model.onnx`,
//! with optional `ROOT/<name>/model-settings.json` (MLServer's batching keys).
//!
//! Every version found is compiled and served; a request without a version
//! goes to the highest. Loading a model again compiles and warms its new or
//! changed versions while the old ones keep serving, then swaps the whole
//! model in one step: requests in flight finish on the version they started
//! on, and none fails.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::ServeError;
use crate::batch::{BatchSettings, Batcher, worker_pool};
use crate::plan::{CompileOptions, Plan, sample_inputs};
use crate::signature::check_inputs;
use crate::tensor::NamedTensor;

/// Settings of one model, from `model-settings.json`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelSettings {
    pub batch: BatchSettings,
    /// `allow_nan`: overrides whether NaN and infinities are accepted.
    pub allow_non_finite: Option<bool>,
    /// `features`: the column order of a single matrix input, so that
    /// `/v1/predict` can take named features.
    pub features: Option<Vec<String>>,
    /// `feature_service`: the online features `/v1/predict` fetches for the
    /// request's entity keys.
    pub feature_service: Option<String>,
}

impl ModelSettings {
    /// Reads `{"max_batch_size": 64, "max_batch_time": 0.002, "allow_nan": false}`
    /// (every key optional; `max_batch_time` in seconds, as in MLServer).
    pub fn parse(text: &str, file: &Path) -> Result<ModelSettings, ServeError> {
        let bad = |m: String| ServeError::Repository(format!("{}: {m}", file.display()));
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        let mut settings = ModelSettings::default();
        for (key, v) in object {
            match key.as_str() {
                "max_batch_size" => {
                    settings.batch.max_batch_size = v
                        .as_u64()
                        .filter(|n| (1..=65_536).contains(n))
                        .ok_or_else(|| {
                            bad("max_batch_size: expected an integer from 1 to 65536".into())
                        })? as usize
                }
                "max_batch_time" => {
                    let seconds =
                        v.as_f64()
                            .filter(|s| (0.0..=10.0).contains(s))
                            .ok_or_else(|| {
                                bad("max_batch_time: expected seconds from 0 to 10".into())
                            })?;
                    settings.batch.max_delay = Duration::from_secs_f64(seconds);
                }
                "allow_nan" => {
                    settings.allow_non_finite = Some(
                        v.as_bool()
                            .ok_or_else(|| bad("allow_nan: expected true or false".into()))?,
                    )
                }
                "features" => {
                    let names: Option<Vec<String>> = v
                        .as_array()
                        .and_then(|a| a.iter().map(|n| n.as_str().map(str::to_owned)).collect());
                    settings.features = Some(names.filter(|n| !n.is_empty()).ok_or_else(|| {
                        bad("features: expected a non-empty list of feature names".into())
                    })?);
                }
                "feature_service" => {
                    settings.feature_service = Some(
                        v.as_str()
                            .filter(|s| !s.is_empty())
                            .ok_or_else(|| bad("feature_service: expected a name".into()))?
                            .to_string(),
                    )
                }
                // MLServer's other keys (name, implementation, parameters)
                // describe Python runtimes; they are accepted and ignored.
                "name" | "implementation" | "parameters" | "platform" | "versions" => {}
                other => {
                    return Err(bad(format!(
                        "unknown key {other:?}; Keel reads max_batch_size, max_batch_time, allow_nan, features and feature_service"
                    )));
                }
            }
        }
        Ok(settings)
    }
}

/// One served version of a model.
pub struct ServedVersion {
    pub name: String,
    pub version: u64,
    pub plan: Arc<Plan>,
    pub settings: ModelSettings,
    pub source: PathBuf,
    fingerprint: Option<(u64, SystemTime)>,
    batcher: Batcher,
}

impl ServedVersion {
    /// Checks `inputs` against the signature and runs them, batched with
    /// whatever else is queued.
    pub async fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, ServeError> {
        let (ordered, rows) = check_inputs(&self.plan.signature, inputs)?;
        self.batcher.infer(ordered, rows).await
    }

    pub fn batch_stats(&self) -> &crate::batch::BatchStats {
        self.batcher.stats()
    }
}

/// A model and its served versions.
pub struct ServedModel {
    pub name: String,
    pub versions: BTreeMap<u64, Arc<ServedVersion>>,
}

impl ServedModel {
    /// The version asked for, or the highest.
    pub fn version(&self, version: Option<&str>) -> Result<Arc<ServedVersion>, ServeError> {
        let unknown = || ServeError::UnknownVersion {
            name: self.name.clone(),
            version: version.unwrap_or("").to_string(),
        };
        match version {
            None | Some("") => self
                .versions
                .values()
                .next_back()
                .cloned()
                .ok_or_else(unknown),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .and_then(|n| self.versions.get(&n))
                .cloned()
                .ok_or_else(unknown),
        }
    }
}

/// One line of the repository index.
#[derive(Clone, Debug, Serialize)]
pub struct IndexEntry {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub state: &'static str,
    pub reason: String,
}

pub struct Repository {
    root: Option<PathBuf>,
    models: RwLock<BTreeMap<String, Arc<ServedModel>>>,
    failures: RwLock<HashMap<String, String>>,
    workers: Arc<Semaphore>,
    loads: tokio::sync::Mutex<()>,
}

fn check_name(name: &str) -> Result<(), ServeError> {
    if keel_core::is_plain_name(name) {
        Ok(())
    } else {
        Err(ServeError::BadInput(format!(
            "model name {name:?} is not valid: use letters, digits, '_', '-' and '.', starting with a letter or digit"
        )))
    }
}

impl Repository {
    /// A repository over `root` (none: models come only from `insert`).
    /// Call [`Repository::load_all`] to serve what is there.
    pub fn new(root: Option<PathBuf>) -> Repository {
        Repository {
            root,
            models: RwLock::new(BTreeMap::new()),
            failures: RwLock::new(HashMap::new()),
            workers: worker_pool(),
            loads: tokio::sync::Mutex::new(()),
        }
    }

    /// Lets `n` plans run at once (default [`crate::batch::default_workers`]);
    /// set before any model is loaded.
    pub fn with_workers(mut self, n: usize) -> Repository {
        self.workers = crate::batch::worker_pool_of(n);
        self
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Loads every model folder under the root. A model that fails to load
    /// is reported in the index as UNAVAILABLE with the reason; the others
    /// are served.
    pub async fn load_all(&self) -> Vec<(String, ServeError)> {
        let Some(root) = &self.root else {
            return Vec::new();
        };
        let mut names: Vec<String> = match std::fs::read_dir(root) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(e) => {
                return vec![(
                    String::new(),
                    ServeError::Repository(format!("{}: {e}", root.display())),
                )];
            }
        };
        names.sort();
        let mut failed = Vec::new();
        for name in names {
            if let Err(e) = self.load(&name).await {
                failed.push((name, e));
            }
        }
        failed
    }

    /// Compiles and warms the model's new or changed versions, then swaps
    /// the model in.
    pub async fn load(&self, name: &str) -> Result<Arc<ServedModel>, ServeError> {
        check_name(name)?;
        let _one_load_at_a_time = self.loads.lock().await;
        let result = self.load_locked(name).await;
        let mut failures = self.failures.write().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(_) => failures.remove(name),
            Err(e) => failures.insert(name.to_string(), e.to_string()),
        };
        result
    }

    async fn load_locked(&self, name: &str) -> Result<Arc<ServedModel>, ServeError> {
        let root = self.root.as_ref().ok_or_else(|| {
            ServeError::Repository(
                "the server has no model repository; start it with --model-repository DIR".into(),
            )
        })?;
        let dir = root.join(name);
        if !dir.is_dir() {
            return Err(ServeError::Repository(format!(
                "there is no model {name} in the repository ({} is not a folder)",
                dir.display()
            )));
        }
        let settings_file = dir.join("model-settings.json");
        let settings = match std::fs::read_to_string(&settings_file) {
            Ok(text) => ModelSettings::parse(&text, &settings_file)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ModelSettings::default(),
            Err(e) => {
                return Err(ServeError::Repository(format!(
                    "{}: {e}",
                    settings_file.display()
                )));
            }
        };
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
            .map_err(|e| ServeError::Repository(format!("{}: {e}", dir.display())))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u64>().ok()?;
                let file = e.path().join("model.onnx");
                file.is_file().then_some((version, file))
            })
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(ServeError::Repository(format!(
                "model {name} has no versions: expected {}/<version>/model.onnx",
                dir.display()
            )));
        }
        let current = self
            .models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        let mut versions = BTreeMap::new();
        for (version, file) in found {
            let fingerprint = std::fs::metadata(&file)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)));
            let unchanged = current
                .as_ref()
                .and_then(|m| m.versions.get(&version))
                .filter(|v| {
                    v.fingerprint.is_some()
                        && v.fingerprint == fingerprint
                        && v.settings == settings
                });
            let served = match unchanged {
                Some(v) => v.clone(),
                None => {
                    let bytes = std::fs::read(&file)
                        .map_err(|e| ServeError::Repository(format!("{}: {e}", file.display())))?;
                    let plan = compile_and_warm(bytes, &settings)
                        .await
                        .map_err(|e| match e {
                            ServeError::Compile(m) => {
                                ServeError::Compile(format!("{}: {m}", file.display()))
                            }
                            other => other,
                        })?;
                    Arc::new(self.serve(name, version, plan, settings.clone(), file, fingerprint))
                }
            };
            versions.insert(version, served);
        }
        let model = Arc::new(ServedModel {
            name: name.to_string(),
            versions,
        });
        self.models
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), model.clone());
        Ok(model)
    }

    fn serve(
        &self,
        name: &str,
        version: u64,
        plan: Plan,
        settings: ModelSettings,
        source: PathBuf,
        fingerprint: Option<(u64, SystemTime)>,
    ) -> ServedVersion {
        let plan = Arc::new(plan);
        let batcher = Batcher::start(plan.clone(), settings.batch, self.workers.clone());
        ServedVersion {
            name: name.to_string(),
            version,
            plan,
            settings,
            source,
            fingerprint,
            batcher,
        }
    }

    /// Serves an already compiled plan as `name` version `version`, next to
    /// the model's other versions (a registered model compiled elsewhere).
    pub fn insert(
        &self,
        name: &str,
        version: u64,
        plan: Plan,
        settings: ModelSettings,
        source: PathBuf,
    ) -> Result<(), ServeError> {
        check_name(name)?;
        let served = Arc::new(self.serve(name, version, plan, settings, source, None));
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        let mut versions = models
            .get(name)
            .map(|m| m.versions.clone())
            .unwrap_or_default();
        versions.insert(version, served);
        models.insert(
            name.to_string(),
            Arc::new(ServedModel {
                name: name.to_string(),
                versions,
            }),
        );
        Ok(())
    }

    /// Stops serving a model; requests already running finish.
    pub fn unload(&self, name: &str) -> Result<(), ServeError> {
        check_name(name)?;
        match self
            .models
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        {
            Some(_) => Ok(()),
            None => Err(ServeError::UnknownModel(name.to_string())),
        }
    }

    pub fn get(&self, name: &str) -> Result<Arc<ServedModel>, ServeError> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| ServeError::UnknownModel(name.to_string()))
    }

    pub fn models(&self) -> Vec<Arc<ServedModel>> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every loaded version, every model that failed to load, and (when
    /// `all`) model folders not loaded.
    pub fn index(&self) -> Vec<IndexEntry> {
        let models = self.models();
        let mut entries: Vec<IndexEntry> = models
            .iter()
            .flat_map(|m| {
                m.versions.keys().map(|v| IndexEntry {
                    name: m.name.clone(),
                    version: Some(v.to_string()),
                    state: "READY",
                    reason: String::new(),
                })
            })
            .collect();
        let failures = self
            .failures
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let loaded: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        if let Some(root) = &self.root
            && let Ok(dirs) = std::fs::read_dir(root)
        {
            let mut names: Vec<String> = dirs
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !loaded.contains(&n.as_str()))
                .collect();
            names.sort();
            for name in names {
                let reason = failures
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| "unloaded".into());
                entries.push(IndexEntry {
                    name,
                    version: None,
                    state: "UNAVAILABLE",
                    reason,
                });
            }
        }
        entries
    }
}

/// Compiles on the blocking pool and runs the plan once at batch 1 and once
/// at the largest batch before it takes traffic.
pub async fn compile_and_warm(
    bytes: Vec<u8>,
    settings: &ModelSettings,
) -> Result<Plan, ServeError> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || {
        let options = CompileOptions {
            allow_non_finite: settings.allow_non_finite,
            ..CompileOptions::default()
        };
        let plan = Plan::compile(&bytes, &options)?;
        for batch in [1, settings.batch.max_batch_size.max(1)] {
            plan.run(&sample_inputs(&plan.signature, batch)?)?;
        }
        Ok(plan)
    })
    .await
    .map_err(|e| ServeError::Internal(format!("compiling stopped: {e}")))?
}
