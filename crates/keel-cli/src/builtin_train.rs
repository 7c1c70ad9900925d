//! `keel train builtin SPEC.json`: one attempt of a built-in trainer, run
//! by the job's supervisor like any command. It reads the training data
//! (a training-set file, or a catalog dataset fetched from the server),
//! resumes from the job's last checkpoint if there is one, logs every
//! iteration's metrics to the attempt's run through the MLflow REST API,
//! writes a checkpoint every `checkpoint_every` iterations, and at the end
//! stores the model (`model/model.onnx`, `model/model.json`) as run
//! artifacts and, with `register:`, as a new version of that registered
//! model. What makes the run reproducible is recorded as run tags: the
//! training data's content digest (as the catalog computes it), the
//! parameters, the seed, Keel's version and the platform.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use keel_learn::{Checkpoint, Dataset, Trainer};
use keel_train::spec::JobSpec;
use reqwest::Method;
use serde_json::{Value, json};

use crate::config::Settings;
use crate::lifecycle_cmd::{Common, call, call_json, enc, enc_path};

/// Iterations between checkpoints when the spec does not say.
const CHECKPOINT_EVERY: u32 = 10;

/// The attempt's run on the server that started the job, through the
/// CLI's own API calls (`lifecycle_cmd::call`).
struct Tracking<'s> {
    settings: &'s Settings,
    server: Common,
    run_id: String,
}

impl Tracking<'_> {
    async fn get(&self, path: &str) -> Result<Value> {
        call_json(self.settings, &self.server, Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        call_json(self.settings, &self.server, Method::POST, path, Some(body)).await
    }

    async fn log(&self, step: usize, metrics: &[(&str, f64)]) -> Result<()> {
        let now = keel_core::time::now_millis();
        let metrics: Vec<Value> = metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| json!({"key": k, "value": v, "timestamp": now, "step": step}))
            .collect();
        self.post(
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": self.run_id, "metrics": metrics}),
        )
        .await
        .map(|_| ())
    }

    async fn tags(&self, tags: &[(&str, String)]) -> Result<()> {
        let tags: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        self.post(
            "/api/2.0/mlflow/runs/log-batch",
            json!({"run_id": self.run_id, "tags": tags}),
        )
        .await
        .map(|_| ())
    }

    /// The run's artifact folder in the server's artifact API.
    async fn artifact_root(&self) -> Result<String> {
        let v = self
            .get(&format!(
                "/api/2.0/mlflow/runs/get?run_id={}",
                enc(&self.run_id)
            ))
            .await?;
        let uri = v["run"]["info"]["artifact_uri"]
            .as_str()
            .ok_or_else(|| anyhow!("the run has no artifact location"))?;
        let rel = uri.strip_prefix("mlflow-artifacts:").ok_or_else(|| {
            anyhow!("the run's artifacts are at {uri}, which this trainer cannot write to")
        })?;
        Ok(rel.trim_start_matches('/').to_string())
    }

    /// A file of the artifact store (`rel` from its root).
    async fn download(&self, rel: &str) -> Result<Vec<u8>> {
        let path = format!("/api/2.0/mlflow-artifacts/artifacts/{}", enc_path(rel));
        Ok(call(self.settings, &self.server, Method::GET, &path, None)
            .await?
            .body)
    }

    async fn upload(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let path = format!("/api/2.0/mlflow-artifacts/artifacts/{}", enc_path(rel));
        call(self.settings, &self.server, Method::PUT, &path, Some(bytes)).await?;
        Ok(())
    }
}

fn env(name: &str) -> Result<String> {
    std::env::var(name)
        .map_err(|_| anyhow!("{name} is not set: `keel train builtin` runs inside a training job"))
}

/// The training data file: the spec's training set, or the catalog
/// dataset's file downloaded into `dir`.
async fn data_file(spec: &JobSpec, t: &Tracking<'_>, dir: &Path) -> Result<PathBuf> {
    let data = spec.data.as_ref().ok_or_else(|| anyhow!("data: missing"))?;
    if let Some(path) = &data.training_set {
        return Ok(PathBuf::from(path));
    }
    if let (Some(service), Some(entities)) = (&data.feature_service, &data.entities) {
        // The feature store builds the point-in-time training set.
        std::fs::create_dir_all(dir)?;
        let out = std::path::absolute(dir.join("training-set.parquet"))?;
        let manifest = t
            .post(
                "/v1/features/training-set",
                json!({"service": service, "entities": entities, "out": out}),
            )
            .await?;
        let views: Vec<Value> = manifest["views"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| json!({"name": v["name"], "dataset": v["dataset"], "file": v["file"]}))
            .collect();
        t.tags(&[
            ("keel.feature_service", service.clone()),
            (
                "keel.feature_repo.version",
                manifest["feature_repo"]["version"].to_string(),
            ),
            (
                "keel.feature_repo.digest",
                manifest["feature_repo"]["digest"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            (
                "keel.entities.digest",
                manifest["entities"]["digest"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
            ("keel.feature_views", Value::Array(views).to_string()),
        ])
        .await?;
        return Ok(out);
    }
    let name = data.dataset.as_deref().unwrap_or_default();
    // `NAME`, `NAME@vN`, `NAME@latest` or `NAME@DIGEST-PREFIX`, as the
    // catalog reads them.
    let (name, wanted) = name.split_once('@').unwrap_or((name, "latest"));
    let v = t
        .get(&format!(
            "/v1/datasets/{}/versions/{}",
            enc(name),
            enc(wanted)
        ))
        .await
        .map_err(|e| anyhow!("data.dataset: {name}@{wanted}: {e}"))?;
    let version = if v.get("files").is_some() {
        &v
    } else {
        &v["version"]
    };
    let files = version["files"].as_array().ok_or_else(|| {
        anyhow!(
            "data.dataset: {name}@{wanted}: {}",
            v["error"]["message"].as_str().unwrap_or("not found")
        )
    })?;
    let [file] = files.as_slice() else {
        bail!(
            "data.dataset: {name} has {} files; built-in trainers read single-file datasets (or use training_set:)",
            files.len()
        );
    };
    let rel = file["path"].as_str().unwrap_or_default();
    let location = version["location"].as_str().unwrap_or_default();
    t.tags(&[(
        "keel.dataset",
        format!("{name}@v{}", version["version"].as_i64().unwrap_or(0)),
    )])
    .await?;
    let bytes = t
        .download(&format!("{}/{rel}", location.trim_start_matches('/')))
        .await?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(Path::new(rel).file_name().unwrap_or_default());
    std::fs::write(&path, &bytes)?;
    Ok(path)
}

/// Every numeric column but the label and the excluded ones, as features.
async fn dataset(spec: &JobSpec, path: &Path) -> Result<Dataset> {
    use keel_suite::data::{Table, Values};
    let data = spec.data.as_ref().ok_or_else(|| anyhow!("data: missing"))?;
    let label = data
        .label
        .as_deref()
        .ok_or_else(|| anyhow!("data.label: missing"))?;
    let table = Table::load("training", path).await?;
    let labels = match &table.column(label)?.values {
        Values::Number(v) => v.clone(),
        Values::Text(_) => bail!(
            "data.label: column {label:?} is text; built-in trainers learn numbers (0/1 for classifiers)"
        ),
    };
    // A feature service's training set keeps the entity file's columns
    // (join keys, timestamps): they are not features.
    let mut excluded = data.exclude.clone();
    if let Some(entities) = &data.entities {
        let e = Table::load("entities", Path::new(entities)).await?;
        excluded.extend(e.columns.iter().map(|c| c.name.clone()));
    }
    let mut names = Vec::new();
    let mut columns = Vec::new();
    for c in &table.columns {
        if c.name == label || excluded.contains(&c.name) {
            continue;
        }
        match &c.values {
            Values::Number(v) => {
                names.push(c.name.clone());
                columns.push(v);
            }
            Values::Text(_) => bail!(
                "data: column {:?} is text; built-in trainers take numbers: add it to data.exclude or encode it",
                c.name
            ),
        }
    }
    let mut features = Vec::with_capacity(table.rows * columns.len());
    for r in 0..table.rows {
        features.extend(columns.iter().map(|c| c[r]));
    }
    Dataset::new(names, features, labels).map_err(|e| anyhow!("data: {e}"))
}

pub async fn run(settings: &Settings, spec_path: &Path) -> Result<ExitCode> {
    let spec: JobSpec = serde_json::from_slice(
        &std::fs::read(spec_path).with_context(|| format!("reading {}", spec_path.display()))?,
    )
    .context("the job spec file is damaged")?;
    let t = Tracking {
        settings,
        server: Common {
            server: Some(env("KEEL_SERVER")?),
            json: false,
        },
        run_id: env("KEEL_RUN_ID")?,
    };
    let checkpoints = PathBuf::from(env("KEEL_CHECKPOINT_DIR")?);
    std::fs::create_dir_all(&checkpoints)?;
    let (params, fraction) = spec
        .builtin_params()
        .ok_or_else(|| anyhow!("the job's trainer is not built in"))?
        .map_err(|e| anyhow!("params: {e}"))?;
    let path = data_file(&spec, &t, &checkpoints.join("data")).await?;
    let all = dataset(&spec, &path).await?;
    let seed = spec.params.get("seed").and_then(Value::as_u64).unwrap_or(0);
    let (train, validation) = if fraction > 0.0 {
        let (train, valid) = all.split_validation(fraction, seed)?;
        (train, Some(valid))
    } else {
        (all, None)
    };
    t.tags(&[
        ("keel.dataset.path", path.to_string_lossy().into_owned()),
        // The digest the catalog would give this data as a version.
        ("keel.dataset.digest", keel_data::local_digest(&path)?.1),
        (
            "keel.dataset.rows",
            (train.rows() + validation.as_ref().map_or(0, Dataset::rows)).to_string(),
        ),
        ("keel.seed", seed.to_string()),
        ("keel.params", serde_json::to_string(&params)?),
        (
            "keel.platform",
            format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        ),
        ("keel.version", env!("CARGO_PKG_VERSION").to_string()),
    ])
    .await?;
    let checkpoint_file = checkpoints.join("checkpoint.json");
    let mut trainer = match std::fs::read_to_string(&checkpoint_file) {
        Ok(text) => {
            let c = Checkpoint::from_json(&text)?;
            eprintln!(
                "resuming from the checkpoint at iteration {}",
                c.iteration()
            );
            Trainer::resume(c, &train, validation.as_ref())?
        }
        Err(_) => Trainer::new(params, &train, validation.as_ref())?,
    };
    let every = spec.checkpoint_every.unwrap_or(CHECKPOINT_EVERY).max(1) as usize;
    while !trainer.is_done() {
        let m = trainer.step()?;
        t.log(m.iteration, &m.named()).await?;
        if m.iteration % every == 0 {
            keel_train::local::write_json_atomic(
                &checkpoint_file,
                &serde_json::from_str::<Value>(&trainer.checkpoint().to_json()?)?,
            )?;
        }
    }
    let iterations = trainer.iteration();
    let model = trainer.finish()?;
    let root = t.artifact_root().await?;
    let onnx = model.to_onnx("X");
    t.upload(&format!("{root}/model/model.onnx"), onnx).await?;
    t.upload(
        &format!("{root}/model/model.json"),
        model.to_json()?.into_bytes(),
    )
    .await?;
    t.log(iterations, &[("iterations", iterations as f64)])
        .await?;
    if let Some(name) = &spec.register {
        let _ = t
            .post(
                "/api/2.0/mlflow/registered-models/create",
                json!({"name": name}),
            )
            .await;
        let v = t
            .post(
                "/api/2.0/mlflow/model-versions/create",
                json!({"name": name, "source": format!("runs:/{}/model", t.run_id), "run_id": t.run_id}),
            )
            .await?;
        println!(
            "registered {name} version {}",
            v["model_version"]["version"].as_str().unwrap_or("?")
        );
    }
    println!(
        "trained {} in {iterations} iterations",
        model.trainer_name()
    );
    Ok(ExitCode::SUCCESS)
}
