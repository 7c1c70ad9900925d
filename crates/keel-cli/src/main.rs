//! The `keel` binary: `keel server` runs everything on the embedded
//! defaults; one subcommand group per domain reads and changes state either
//! directly in a data directory or through a running server.

mod builtin_train;
mod config;
mod data_cmd;
mod deploy_cmd;
mod features_cmd;
mod jobs_cmd;
mod lifecycle_cmd;
mod models_cmd;
mod monitor_cmd;
mod output;
mod serve_cmd;
mod test_cmd;
mod tracking_cmd;
mod train_action;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use keel_server::AppState;
use keel_store::{ArtifactStore, Db, DbOptions};
use keel_tracking::Tracking;

use config::Settings;

/// Keel: the ML lifecycle platform in one binary.
///
/// Start a server on the embedded defaults (SQLite + a local artifact
/// directory in ./keel-data) and point any MLflow client at it:
///
///   keel server
///   export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
///
/// Settings come from flags, then KEEL_* environment variables, then
/// ./keel.toml (or --config FILE).
#[derive(Parser, Debug)]
#[command(name = "keel", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// Configuration file (default: ./keel.toml when it exists).
    #[arg(long, global = true, env = "KEEL_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory of the embedded stores.
    #[arg(long, global = true, env = "KEEL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Metadata database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB
    /// (default: SQLite in the data directory).
    #[arg(long, global = true, env = "KEEL_DATABASE_URL")]
    database_url: Option<String>,
    /// Artifact store: a directory, file://, s3://bucket/prefix, gs://…, az://…
    /// (default: DATA_DIR/artifacts).
    #[arg(long, global = true, env = "KEEL_ARTIFACTS")]
    artifacts: Option<String>,
    /// Online feature store: `redb` (default: DATA_DIR/online.redb, one
    /// process at a time) or redis://HOST:PORT/DB (shared by many).
    #[arg(long, global = true, env = "KEEL_ONLINE_STORE")]
    online_store: Option<String>,
    /// `keel server` consumes feature pushes (Feast /push bodies) from this
    /// NATS JetStream server: nats://HOST:PORT (stream KEEL_PUSH, subjects
    /// keel.push.>).
    #[arg(long, global = true, env = "KEEL_PUSH_STREAM")]
    push_stream: Option<String>,
    /// When an acknowledged write is safe on SQLite: `process` (default;
    /// survives any crash of the server process) or `disk` (also survives
    /// power loss; one fsync per group commit).
    #[arg(long, global = true, env = "KEEL_DURABILITY", value_parser = ["process", "disk"])]
    durability: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the MLflow-compatible API, artifacts, /health and /metrics.
    ///
    /// Examples:
    ///   keel server                                  # ./keel-data, port 5000
    ///   keel server --port 8080 --data-dir /srv/keel
    ///   keel server --database-url postgres://keel@db:5432/keel --artifacts s3://bucket/keel
    #[command(verbatim_doc_comment)]
    Server {
        /// Address to listen on.
        #[arg(long, env = "KEEL_HOST")]
        host: Option<String>,
        /// Port to listen on.
        #[arg(long, env = "KEEL_PORT")]
        port: Option<u16>,
        /// Serve the ONNX models of this repository over Open Inference
        /// Protocol V2 (/v2/models/NAME/infer). Triton's layout:
        /// DIR/NAME/VERSION/model.onnx, optional DIR/NAME/model-settings.json
        /// ({"max_batch_size": 64, "max_batch_time": 0.002, "allow_nan": false}).
        #[arg(long, env = "KEEL_MODEL_REPOSITORY", value_name = "DIR")]
        model_repository: Option<PathBuf>,
    },
    /// Experiments: list and create.
    #[command(subcommand)]
    Experiments(tracking_cmd::ExperimentsCmd),
    /// Runs: list, search with MLflow filters, get one.
    #[command(subcommand)]
    Runs(tracking_cmd::RunsCmd),
    /// Lifecycles: apply definitions, start instances, send events, inspect.
    ///
    /// A lifecycle is a state machine whose transitions are events; a
    /// waiting instance costs about 170 bytes of memory, not a worker.
    ///   keel lifecycle apply churn.yaml
    ///   keel lifecycle start churn-model customer-42
    ///   keel lifecycle send data_arrived --key customer-42
    ///   keel lifecycle get churn-model customer-42 --json
    #[command(subcommand, verbatim_doc_comment)]
    Lifecycle(lifecycle_cmd::LifecycleCmd),
    /// The model store: versions, aliases, integrity, lineage, model
    /// cards, checkpoints and retraining cadence.
    ///
    ///   keel models show churn@champion
    ///   keel models verify churn/3
    ///   keel models lineage churn/3 --upstream
    ///   keel models card churn/3 --format html -o card.html
    #[command(subcommand, verbatim_doc_comment)]
    Models(models_cmd::ModelsCmd),
    /// The dataset catalog: register files as versioned datasets, inspect
    /// their schema and profile, and query them with SQL.
    ///
    ///   keel data register events data/events.parquet
    ///   keel data show events
    ///   keel data query "SELECT country, count(*) FROM events GROUP BY 1"
    #[command(subcommand, verbatim_doc_comment)]
    Data(data_cmd::DataCmd),
    /// Inference: compile ONNX models and manage what a server serves over
    /// Open Inference Protocol V2 (start one with
    /// `keel server --model-repository DIR`).
    ///
    ///   keel serve compile model.onnx
    ///   keel serve models --server http://127.0.0.1:5000
    ///   keel serve load churn --source models:/churn@champion --server URL
    ///   keel serve predict churn --features '{"age": 41}' --server URL
    #[command(subcommand, verbatim_doc_comment)]
    Serve(serve_cmd::ServeCmd),
    /// Deployments and live experiments on a running server: A/B, canary,
    /// shadow, multi-armed and contextual bandits.
    ///
    ///   keel deploy create recs.json --server URL
    ///   keel deploy decide recs --unit-id u1 --context 0.1,-0.3 --server URL
    ///   keel deploy feedback recs.1 1.0 --server URL
    ///   keel deploy show recs --server URL
    #[command(subcommand, verbatim_doc_comment)]
    Deploy(deploy_cmd::DeployCmd),
    /// The feature store: apply a feature repo, build point-in-time
    /// correct training sets.
    ///
    ///   keel features apply feature_repo/
    ///   keel features training-set --service user_features \
    ///       --entities labels.parquet --out train.parquet
    #[command(subcommand, verbatim_doc_comment)]
    Features(features_cmd::FeaturesCmd),
    /// Model-quality suites: checks with pass/fail outcomes over
    /// performance, fairness and the other dimensions, on a model file.
    ///
    ///   keel test run suite.yaml --junit report.xml
    #[command(subcommand, verbatim_doc_comment)]
    Test(test_cmd::TestCmd),
    /// Training jobs on the server's scheduler: submit, follow, cancel;
    /// tenants' shares and quotas.
    ///
    ///   keel jobs submit job.yaml --server URL --wait
    ///   keel jobs list --tenant growth --json
    ///   keel jobs tenant growth --weight 2 --max-cpus 4 --server URL
    #[command(subcommand, verbatim_doc_comment)]
    Jobs(jobs_cmd::JobsCmd),
    /// What training cost: measured usage priced from the price table.
    ///
    ///   keel billing report --tenant growth --json
    #[command(subcommand, verbatim_doc_comment)]
    Billing(jobs_cmd::BillingCmd),
    /// Monitoring: drift between files or profiles with no server; a
    /// deployment's prediction log, labels, reference, drift, performance
    /// and alert rules on a server.
    ///
    ///   keel monitor drift --reference ref.parquet --current cur.parquet --json
    ///   keel monitor drift -r ref.parquet -c cur.parquet --html drift.html
    ///   keel monitor profile day1.parquet -o day1.json
    ///   keel monitor status churn --window 1d --step 1h --server URL
    ///   keel monitor alerts evaluate --server URL
    #[command(subcommand, verbatim_doc_comment)]
    Monitor(monitor_cmd::MonitorCmd),
    /// Training internals (the supervisor of a job attempt).
    #[command(subcommand, hide = true)]
    Train(jobs_cmd::TrainCmd),
}

/// The system allocator, counting bytes only while a quality suite
/// measures a model's peak memory.
#[global_allocator]
static ALLOCATOR: keel_core::alloc::Tracking = keel_core::alloc::Tracking;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::resolve(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    // Commands other than `server` print results; keep their stderr for
    // warnings and errors unless KEEL_LOG asks for more.
    init_logging(&settings, matches!(cli.command, Command::Server { .. }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server {
                host,
                port,
                model_repository,
            } => serve(&settings, host, port, model_repository)
                .await
                .map(|_| ExitCode::SUCCESS),
            Command::Experiments(cmd) => tracking_cmd::experiments(&settings, cmd).await,
            Command::Runs(cmd) => tracking_cmd::runs(&settings, cmd).await,
            Command::Lifecycle(cmd) => lifecycle_cmd::run(&settings, cmd).await,
            Command::Models(cmd) => models_cmd::run(&settings, cmd).await,
            Command::Data(cmd) => data_cmd::run(&settings, cmd).await,
            Command::Serve(cmd) => serve_cmd::run(&settings, cmd).await,
            Command::Deploy(cmd) => deploy_cmd::run(&settings, cmd).await,
            Command::Features(cmd) => features_cmd::run(&settings, cmd).await,
            Command::Test(cmd) => test_cmd::run(&settings, cmd).await,
            Command::Jobs(cmd) => jobs_cmd::jobs(&settings, cmd).await,
            Command::Billing(cmd) => jobs_cmd::billing(&settings, cmd).await,
            Command::Train(cmd) => jobs_cmd::train(&settings, cmd).await,
            Command::Monitor(cmd) => monitor_cmd::run(&settings, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<output::UsageError>() {
                Some(_) => ExitCode::from(2),
                None => ExitCode::from(1),
            }
        }
    }
}

fn init_logging(settings: &Settings, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving {
        settings.log_level.as_str()
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("KEEL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Every domain's schema steps on the metadata store.
fn migrations() -> Vec<keel_store::Migration> {
    [
        keel_tracking::MIGRATIONS,
        keel_registry::MIGRATIONS,
        keel_lineage::MIGRATIONS,
        keel_data::MIGRATIONS,
        keel_features::MIGRATIONS,
        keel_train::MIGRATIONS,
        keel_monitor::alert::MIGRATIONS,
    ]
    .concat()
}

/// Opens the metadata and artifact stores the settings name.
pub async fn open_tracking(settings: &Settings) -> Result<(Tracking, ArtifactStore)> {
    let options = DbOptions {
        durability: settings.durability,
        ..Default::default()
    };
    let db = match &settings.database_url {
        Some(url) => Db::open(url, &migrations(), options)
            .await
            .with_context(|| {
                format!(
                    "cannot open the metadata store at {}",
                    keel_store::redact_password(url)
                )
            })?,
        None => Db::open_in_dir(&settings.data_dir, &migrations(), options)
            .await
            .with_context(|| {
                format!(
                    "cannot open the metadata store in {}",
                    settings.data_dir.display()
                )
            })?,
    };
    let artifacts = match &settings.artifacts {
        Some(url) => ArtifactStore::open(url),
        None => ArtifactStore::local(&settings.data_dir.join("artifacts")),
    }
    .context("cannot open the artifact store")?;
    Ok((Tracking::new(db), artifacts))
}

/// Opens the lifecycle engine: embedded in DATA_DIR/lifecycle, or, with a
/// PostgreSQL database URL, a cluster node on that database. `owner` is
/// false for command-line tools: they neither fire timers nor run actions
/// (embedded) nor take partitions (cluster).
pub async fn open_lifecycle(
    settings: &Settings,
    owner: bool,
    extra_actions: Vec<std::sync::Arc<dyn keel_lifecycle::actions::Action>>,
) -> Result<keel_lifecycle::Lifecycles> {
    if let Some(url) = settings
        .database_url
        .as_deref()
        .filter(|u| u.starts_with("postgres"))
    {
        let db = Db::open(
            url,
            keel_lifecycle::cluster::MIGRATIONS,
            DbOptions::default(),
        )
        .await
        .with_context(|| {
            format!(
                "cannot open the lifecycle store at {}",
                keel_store::redact_password(url)
            )
        })?;
        let node = std::env::var("KEEL_NODE_ID").unwrap_or_else(|_| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            format!("{}-{}-{}", host.trim(), std::process::id(), &uuid_suffix())
        });
        let mut options = keel_lifecycle::cluster::ClusterOptions::new(node);
        options.owner = owner;
        options.runtime = tokio::runtime::Handle::try_current().ok();
        for a in &extra_actions {
            options.actions.register(a.clone());
        }
        if let Ok(lease) = std::env::var("KEEL_LIFECYCLE_LEASE") {
            options.lease = keel_lifecycle::duration::parse_duration(&lease)
                .map_err(|e| output::UsageError(format!("KEEL_LIFECYCLE_LEASE: {e}")))?;
        }
        let engine = keel_lifecycle::cluster::ClusterEngine::open(db, options)
            .await
            .context("cannot join the lifecycle cluster")?;
        return Ok(keel_lifecycle::Lifecycles::Cluster(engine));
    }
    let dir = settings.data_dir.join("lifecycle");
    let mut options = keel_lifecycle::EngineOptions::new(&dir);
    options.background = owner;
    options.runtime = tokio::runtime::Handle::try_current().ok();
    options.fsync = settings.lifecycle_fsync;
    for a in extra_actions {
        options.actions.register(a);
    }
    let engine = keel_lifecycle::Engine::open(options)
        .with_context(|| format!("cannot open the lifecycle engine in {}", dir.display()))?;
    Ok(keel_lifecycle::Lifecycles::Embedded(engine))
}

fn uuid_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos:08x}")
}

/// Opens the online feature store the settings name.
pub async fn open_online(settings: &Settings) -> Result<keel_online::SharedStore> {
    keel_online::open(
        &settings.online_store,
        &settings.data_dir.join("online.redb"),
    )
    .await
    .map_err(|e| match e {
        keel_online::OnlineError::Locked { .. } | keel_online::OnlineError::Invalid(_) => {
            output::UsageError(e.to_string()).into()
        }
        other => anyhow::Error::new(other).context("cannot open the online feature store"),
    })
}

/// Compiles and serves every model of the repository; a model that fails
/// is reported and left out, as the repository index will show.
async fn open_model_repository(
    dir: Option<PathBuf>,
) -> Result<std::sync::Arc<keel_serve::repository::Repository>> {
    if let Some(dir) = &dir
        && !dir.is_dir()
    {
        return Err(output::UsageError(format!(
            "--model-repository {}: not a folder; expected DIR/NAME/VERSION/model.onnx",
            dir.display()
        ))
        .into());
    }
    let mut repository = keel_serve::repository::Repository::new(dir);
    if let Ok(text) = std::env::var("KEEL_INFERENCE_WORKERS") {
        let n = text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=4096).contains(n))
            .ok_or_else(|| {
                output::UsageError(format!(
                    "KEEL_INFERENCE_WORKERS={text}: expected how many model runs may go at once, 1 to 4096 (default: two per core)"
                ))
            })?;
        repository = repository.with_workers(n);
    }
    let repository = std::sync::Arc::new(repository);
    for (name, error) in repository.load_all().await {
        tracing::warn!(model = %name, error = %error, "model not loaded");
        eprintln!("warning: model {name} not loaded: {error}");
    }
    Ok(repository)
}

/// A Keel server inside this command's process, on a free local port, with
/// the training scheduler: `keel jobs submit` without `--server` runs its
/// job here (the job's mlflow client logs to it).
pub struct LocalServer {
    pub url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    scheduling: tokio::task::JoinHandle<()>,
}

impl LocalServer {
    pub async fn start(settings: &Settings) -> Result<LocalServer> {
        let state = local_state(settings).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on a local port")?;
        let bound = listener.local_addr()?;
        let training = open_training(
            settings,
            &state.tracking,
            &state.artifacts,
            bound,
            state.lifecycle.clone(),
        )
        .await?;
        let state = state.with_training(training.clone());
        let scheduling = tokio::spawn(training.run());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(keel_server::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Ok(LocalServer {
            url: format!("http://{bound}"),
            stop,
            serving,
            scheduling,
        })
    }

    pub async fn stop(self) {
        self.scheduling.abort();
        let _ = self.stop.send(());
        let _ = self.serving.await;
    }
}

/// The application state for a command answered in this process.
pub async fn local_state(settings: &Settings) -> Result<AppState> {
    let engine = open_lifecycle(settings, false, train_actions(None))
        .await
        .map_err(|e| output::UsageError(format!("{e:#}")))?;
    let (tracking, artifacts) = open_tracking(settings).await?;
    let registry = keel_registry::Registry::new(tracking.db().clone());
    let lineage = keel_lineage::Lineage::new(tracking.db().clone());
    let catalog = keel_data::Catalog::new(tracking.db().clone(), artifacts.clone());
    let jobs = keel_train::store::JobStore::new(tracking.db().clone());
    let jobs_dir = settings.data_dir.join("jobs");
    let monitor = keel_monitor::alert::MonitorStore::new(tracking.db().clone());
    Ok(AppState::new(tracking, artifacts)
        .with_monitor(monitor)
        .with_jobs(jobs, jobs_dir)
        .with_lifecycle(engine)
        .with_registry(registry)
        .with_lineage(lineage)
        .with_data(catalog))
}

async fn serve(
    settings: &Settings,
    host: Option<String>,
    port: Option<u16>,
    model_repository: Option<PathBuf>,
) -> Result<()> {
    let host = host.unwrap_or_else(|| settings.host.clone());
    let port = port.unwrap_or(settings.port);
    let (tracking, artifacts) = open_tracking(settings).await?;
    let metadata = tracking.db().display_url();
    let training_cell = std::sync::Arc::new(std::sync::OnceLock::new());
    let engine = open_lifecycle(settings, true, train_actions(Some(training_cell.clone()))).await?;
    let registry = keel_registry::Registry::new(tracking.db().clone());
    let lineage = keel_lineage::Lineage::new(tracking.db().clone());
    let catalog = keel_data::Catalog::new(tracking.db().clone(), artifacts.clone());
    let online = open_online(settings).await?;
    let online_desc = online.describe();
    let inference = open_model_repository(model_repository).await?;
    let models_desc = inference.models().len();
    let decision_log = settings.data_dir.join("experiments").join("decisions.log");
    let experiments = {
        let (path, fsync) = (decision_log.clone(), settings.lifecycle_fsync);
        tokio::task::spawn_blocking(move || keel_experiment::Deployments::open(&path, fsync))
            .await?
            .with_context(|| format!("cannot open the decision log {}", decision_log.display()))?
    };
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| {
            use std::net::ToSocketAddrs;
            format!("{host}:{port}")
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or(())
        })
        .map_err(|_| output::UsageError(format!("cannot resolve --host '{host}'")))?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}; is another server using the port? Try --port")
    })?;
    let bound = listener.local_addr()?;
    let training =
        open_training(settings, &tracking, &artifacts, bound, Some(engine.clone())).await?;
    let _ = training_cell.set(training.clone());
    let train_loop = tokio::spawn(training.clone().run());
    let state = AppState::new(tracking.clone(), artifacts.clone())
        .with_experiments(std::sync::Arc::new(experiments))
        .with_training(training)
        .with_inference(inference)
        .with_lifecycle(engine.clone())
        .with_registry(registry)
        .with_lineage(lineage)
        .with_data(catalog)
        .with_online(online)
        .with_monitor(keel_monitor::alert::MonitorStore::new(
            tracking.db().clone(),
        ));
    let (stop_consumer, consumer_stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = match (&settings.push_stream, state.online.clone()) {
        (Some(url), Some(online)) => {
            let config = keel_stream::ConsumerConfig::new(url.clone());
            let stats = std::sync::Arc::new(keel_stream::ConsumerStats::default());
            Some(tokio::spawn(async move {
                if let Err(e) = keel_stream::run(online, config, stats, async {
                    let _ = consumer_stopped.await;
                })
                .await
                {
                    tracing::error!(error = %e, "the push stream consumer stopped");
                }
            }))
        }
        _ => None,
    };
    // The serving log (for skew checks) is flushed every second.
    let log_flusher = state.online.clone().map(|online| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if let Err(e) = online.flush_serving_log().await {
                    tracing::warn!(error = %e, "serving log not flushed");
                }
            }
        })
    });
    // The prediction log of /v1/predict is flushed every second, too.
    let prediction_flusher = {
        let (log, artifacts) = (state.predictions.clone(), state.artifacts.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                if let Err(e) = log.flush(&artifacts).await {
                    tracing::warn!(error = %e, "prediction log not flushed");
                }
            }
        })
    };
    // Every KEEL_ALERT_INTERVAL (default 60 s) the server's own figures are
    // recorded as metric series and alert rules are evaluated;
    // once an hour, log segments and series points older than
    // KEEL_MONITOR_RETENTION (default 30d) are deleted.
    let alerts = {
        let state = state.clone();
        let (interval, retention) = monitor_timing();
        tokio::spawn(async move {
            let mut last_expiry = std::time::Instant::now();
            let mut sample = keel_server::monitor::sample_system(&state, None).await;
            loop {
                tokio::time::sleep(interval).await;
                sample = keel_server::monitor::sample_system(&state, Some(&sample)).await;
                if let Err(e) = keel_server::monitor::evaluate_all(&state).await {
                    tracing::warn!(error = %e.message, "alerts not evaluated");
                }
                if last_expiry.elapsed() >= std::time::Duration::from_secs(3600) {
                    last_expiry = std::time::Instant::now();
                    let cutoff = keel_core::time::now_millis().saturating_mul(1000)
                        - retention.as_micros() as i64;
                    if let Err(e) = keel_server::monitor::expire(&state, cutoff).await {
                        tracing::warn!(error = %e, "monitoring retention not applied");
                    }
                }
            }
        })
    };
    let deployment_moves = tokio::spawn(keel_server::experiments::deliver_events(state.clone()));
    let scheduler = tokio::spawn(keel_server::models::run_retraining_scheduler(
        state.clone(),
        retraining_tick(),
    ));
    tracing::info!(%bound, metadata = %metadata, artifacts = %artifacts.url(), "keel server ready");
    eprintln!(
        "Keel {} listening on http://{bound}\n  metadata:  {metadata}\n  artifacts: {}\n  online features: {online_desc}\n  MLflow clients: export MLFLOW_TRACKING_URI=http://{bound}\n  Feast clients: POST http://{bound}/get-online-features\n  models:    {models_desc} served over V2 (POST http://{bound}/v2/models/NAME/infer)",
        env!("CARGO_PKG_VERSION"),
        artifacts.url()
    );
    let state_online = state.online.clone();
    let (predictions, prediction_store) = (state.predictions.clone(), state.artifacts.clone());
    keel_server::serve(listener, state, shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    scheduler.abort();
    alerts.abort();
    train_loop.abort();
    deployment_moves.abort();
    if let Some(f) = log_flusher {
        f.abort();
    }
    if let Some(online) = &state_online {
        let _ = online.flush_serving_log().await;
    }
    prediction_flusher.abort();
    if let Err(e) = predictions.flush(&prediction_store).await {
        tracing::warn!(error = %e, "prediction log not flushed");
    }
    let _ = stop_consumer.send(());
    if let Some(c) = consumer {
        let _ = c.await;
    }
    tracking.db().close().await;
    engine.shutdown().await;
    tracing::info!("keel server stopped");
    Ok(())
}

/// The training scheduler over the metadata store. Its capacity is this
/// machine's (or `KEEL_TRAIN_CPUS` / `KEEL_TRAIN_MEMORY`), its prices
/// `KEEL_CPU_HOUR_PRICE` and `KEEL_GB_HOUR_PRICE`, `executor: ray` jobs go
/// to `KEEL_RAY_ADDRESS`, and its jobs log to this server.
async fn open_training(
    settings: &Settings,
    tracking: &Tracking,
    artifacts: &ArtifactStore,
    bound: SocketAddr,
    engine: Option<keel_lifecycle::Lifecycles>,
) -> Result<keel_train::Training> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let number = |name: &str, default: f64| -> Result<f64> {
        match env(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| {
                    output::UsageError(format!("{name}={v:?}: expected a number ≥ 0")).into()
                }),
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let memory = match env("KEEL_TRAIN_MEMORY") {
        Some(v) => keel_train::spec::parse_bytes(&v)
            .map_err(|e| output::UsageError(format!("KEEL_TRAIN_MEMORY: {e}")))?,
        None => total_memory().unwrap_or(8 << 30),
    };
    let defaults = keel_train::store::Prices::default();
    let host = if bound.ip().is_unspecified() {
        format!("127.0.0.1:{}", bound.port())
    } else {
        bound.to_string()
    };
    let config = keel_train::TrainingConfig {
        // Absolute: jobs run in their own working directories.
        jobs_dir: std::path::absolute(settings.data_dir.join("jobs"))
            .context("cannot resolve the data directory")?,
        capacity: keel_train::scheduler::Capacity {
            cpus: number("KEEL_TRAIN_CPUS", cores)?.max(0.001),
            memory_bytes: memory,
        },
        prices: keel_train::store::Prices {
            cpu_hour: number("KEEL_CPU_HOUR_PRICE", defaults.cpu_hour)?,
            gb_hour: number("KEEL_GB_HOUR_PRICE", defaults.gb_hour)?,
        },
        tracking_uri: Some(format!("http://{host}")),
        program: std::env::current_exe().context("cannot find the keel binary")?,
        retry_backoff: std::time::Duration::from_millis(number(
            "KEEL_TRAIN_RETRY_BACKOFF_MS",
            10_000.0,
        )? as u64),
        ray_address: env("KEEL_RAY_ADDRESS"),
        on_end: engine.map(|engine| -> keel_train::service::OnEnd {
            std::sync::Arc::new(move |lifecycle, key, event, data| {
            let engine = engine.clone();
            Box::pin(async move {
                let id = data["job_id"].clone();
                let request = keel_lifecycle::SendRequest {
                    event: event.to_string(),
                    target: keel_lifecycle::Target::Key {
                        lifecycle: Some(lifecycle.clone()),
                        key: key.clone(),
                    },
                    data,
                    idempotency_key: Some(format!("train-job-{id}-{event}")),
                };
                if let Err(e) = engine.send(request).await {
                    tracing::warn!(%lifecycle, %key, error = %e, "job end not sent to the lifecycle");
                }
            })
        })
        }),
    };
    keel_train::Training::open(
        keel_train::store::JobStore::new(tracking.db().clone()),
        tracking.clone(),
        artifacts.clone(),
        config,
    )
    .await
    .context("cannot start the training scheduler")
}

/// This machine's memory (`MemTotal` of /proc/meminfo).
fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The `train` lifecycle action, bound to the training service once it
/// runs (command-line tools get one that says it is not running).
fn train_actions(
    training: Option<std::sync::Arc<std::sync::OnceLock<keel_train::Training>>>,
) -> Vec<std::sync::Arc<dyn keel_lifecycle::actions::Action>> {
    vec![std::sync::Arc::new(train_action::TrainAction {
        training: training.unwrap_or_default(),
    })]
}

/// How often due retraining schedules are looked for
/// (`KEEL_RETRAINING_TICK_MS`, default 10 s; cron has minute resolution).
fn retraining_tick() -> std::time::Duration {
    let ms = std::env::var("KEEL_RETRAINING_TICK_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms >= 10)
        .unwrap_or(10_000);
    std::time::Duration::from_millis(ms)
}

/// How often alert rules are evaluated (`KEEL_ALERT_INTERVAL`, default
/// 60 s) and how long the prediction log and metric series are kept
/// (`KEEL_MONITOR_RETENTION`, default 30 days): durations such as `15s`,
/// `1h`, `7d`.
fn monitor_timing() -> (std::time::Duration, std::time::Duration) {
    let read = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| keel_core::duration::parse_duration(&v).ok())
            .filter(|d| d.as_millis() >= 100)
            .unwrap_or(std::time::Duration::from_secs(default))
    };
    (
        read("KEEL_ALERT_INTERVAL", 60),
        read("KEEL_MONITOR_RETENTION", 30 * 86_400),
    )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
