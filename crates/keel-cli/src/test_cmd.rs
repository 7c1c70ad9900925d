//! `keel test …`: model-quality suites, run locally.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use keel_suite::run::Status;
use reqwest::Method;
use serde_json::json;

use crate::config::Settings;
use crate::lifecycle_cmd::{Common, call, call_json, enc, enc_path};
use crate::output::{ProgressBar, print_json, table};
use keel_quality::suite::ModelRef;

#[derive(Subcommand, Debug)]
pub enum TestCmd {
    /// Run a suite file: the model under test, its data, slices and checks
    /// (performance, robustness, fairness, privacy, security, cost), each
    /// with thresholds and a severity. Files named in it are relative to it.
    ///
    ///   suite: credit-candidate
    ///   model: {onnx: model.onnx}
    ///   data:
    ///     test: {path: test.parquet, label: default}
    ///   slices:
    ///     young: "age < 25"
    ///   checks:
    ///     - {kind: performance, metric: roc_auc, min: 0.80}
    ///     - {kind: performance, metric: accuracy, slice: young, min: 0.70}
    ///     - {kind: fairness, metric: demographic_parity_difference, sensitive: sex, max: 0.10}
    ///
    ///   keel test run suite.yaml [--json] [--junit report.xml] [--html report.html]
    ///   keel test run suite.yaml --lifecycle model-release --key churn-v7 --server URL
    ///
    /// With `model: {registry: "models:/credit@candidate"}` the version's
    /// ONNX file is fetched from the server (--server, else the data
    /// directory) and the result is attached to that version: see it with
    /// GET /v1/models/credit/versions/N/suites, and in the version's tag
    /// `keel.suite.SUITE` (passed or failed).
    ///
    /// Exit status: 0 when every error-severity check passes, 1 when one
    /// fails (or cannot run), 2 when the suite file or its data is invalid.
    #[command(verbatim_doc_comment)]
    Run {
        suite: PathBuf,
        /// Print the result as JSON: {"suite", "passed", "checks": [...]}.
        #[arg(long)]
        json: bool,
        /// Also write JUnit XML here, one test case per check.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Also write an HTML report here (plots of calibration, worst
        /// slices, per-group rates, flip rates; the evidence underneath).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Send `suite_passed` or `suite_failed` to this lifecycle's
        /// instance (started when absent), so a lifecycle can gate a
        /// promotion on the suite.
        #[arg(long)]
        lifecycle: Option<String>,
        /// The lifecycle instance's key (default: the suite's name).
        #[arg(long, requires = "lifecycle")]
        key: Option<String>,
        /// The Keel server holding the lifecycle and the registry model
        /// (default: the data directory).
        #[arg(long, env = "KEEL_SERVER")]
        server: Option<String>,
    },
}

pub async fn run(settings: &Settings, cmd: TestCmd) -> Result<ExitCode> {
    match cmd {
        TestCmd::Run {
            suite,
            json,
            junit,
            html,
            lifecycle,
            key,
            server,
        } => {
            let invalid = |e: &dyn std::fmt::Display| {
                eprintln!("error: {}: {e}", suite.display());
                Ok(ExitCode::from(2))
            };
            let mut definition = match keel_suite::run::read_file(&suite) {
                Ok(d) => d,
                Err(e) => return invalid(&e),
            };
            let common = Common {
                server: server.clone(),
                json: true,
            };
            // A registry model is fetched from the server (or the data
            // directory) into a temporary folder, and the result is
            // attached to the version tested.
            let scratch = tempfile::tempdir()?;
            let mut tested_version = None;
            if let ModelRef::Registry {
                reference,
                features,
            } = &definition.model
            {
                match fetch_registered(settings, &common, reference, scratch.path()).await {
                    Ok((name, version, path)) => {
                        definition.model = ModelRef::Onnx {
                            path: path.display().to_string(),
                            features: features.clone(),
                        };
                        tested_version = Some((name, version));
                    }
                    Err(e) => return invalid(&format!("model.registry: {e:#}")),
                }
            }
            let base = suite.parent().unwrap_or(std::path::Path::new("."));
            let bar = ProgressBar::counting("steps");
            let report = |what: &str, done: usize, total: usize| {
                bar.update(
                    &format!("{}: {what}", definition.name),
                    done as u64,
                    total as u64,
                );
            };
            let outcome =
                keel_suite::run::run(&definition, base, &keel_suite::run::Progress::to(&report))
                    .await;
            bar.finish();
            let result = match outcome {
                Ok(r) => r,
                Err(e) => return invalid(&e),
            };
            if let Some(path) = junit {
                std::fs::write(&path, keel_suite::report::junit(&result)).map_err(|e| {
                    crate::output::UsageError(format!("cannot write {}: {e}", path.display()))
                })?;
            }
            if let Some(path) = html {
                std::fs::write(&path, keel_suite::report::html(&result)).map_err(|e| {
                    crate::output::UsageError(format!("cannot write {}: {e}", path.display()))
                })?;
            }
            if json {
                print_json(&serde_json::to_value(&result)?);
            } else {
                let rows: Vec<Vec<String>> = result
                    .checks
                    .iter()
                    .map(|c| {
                        vec![
                            format!("{:?}", c.status).to_uppercase(),
                            c.name.clone(),
                            c.value.map_or("-".into(), |v| format!("{v:.4}")),
                            threshold_text(&c.threshold),
                            format!("{:?}", c.severity).to_lowercase(),
                            c.evidence["error"].as_str().unwrap_or("").to_string(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["STATUS", "CHECK", "VALUE", "THRESHOLD", "SEVERITY", "NOTE"],
                        &rows
                    )
                );
                println!(
                    "suite {}: {} ({} checks, {:.2} s)",
                    result.suite,
                    if result.passed { "PASSED" } else { "FAILED" },
                    result.checks.len(),
                    result.seconds
                );
            }
            if let Some((name, version)) = &tested_version {
                let path = format!("/v1/models/{}/versions/{version}/suites", enc(name));
                call_json(
                    settings,
                    &common,
                    Method::POST,
                    &path,
                    Some(serde_json::to_value(&result)?),
                )
                .await?;
                if !json {
                    println!("attached the result to {name} version {version}");
                }
            }
            if let Some(lifecycle) = lifecycle {
                let key = key.unwrap_or_else(|| result.suite.clone());
                let path = format!("/v1/lifecycles/{}/instances", enc(&lifecycle));
                call_json(
                    settings,
                    &common,
                    Method::POST,
                    &path,
                    Some(json!({"key": key, "data": {"suite": result.suite}})),
                )
                .await?;
                let failed: Vec<&str> = result
                    .checks
                    .iter()
                    .filter(|c| c.status != Status::Pass)
                    .map(|c| c.name.as_str())
                    .collect();
                let event = if result.passed {
                    "suite_passed"
                } else {
                    "suite_failed"
                };
                let body = json!({
                    "event": event, "lifecycle": lifecycle, "key": key,
                    "data": {"suite": result.suite, "passed": result.passed,
                             "checks": result.checks.len(), "not_passed": failed},
                });
                call_json(settings, &common, Method::POST, "/v1/events", Some(body)).await?;
                if !json {
                    println!("sent {event} to {lifecycle}/{key}");
                }
            }
            Ok(if result.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Resolves `models:/NAME/V` or `models:/NAME@ALIAS` and downloads the
/// version's ONNX file (its only `.onnx` file, or `model.onnx`) into
/// `folder`; the server checks the file against its registered digest.
async fn fetch_registered(
    settings: &Settings,
    common: &Common,
    reference: &str,
    folder: &std::path::Path,
) -> Result<(String, i64, PathBuf)> {
    let usage =
        || anyhow::anyhow!("{reference:?} is not models:/NAME/VERSION or models:/NAME@ALIAS");
    let rest = reference.strip_prefix("models:/").ok_or_else(usage)?;
    let (name, selector) = match rest.split_once('@') {
        Some((name, alias)) => (name, format!("@{alias}")),
        None => {
            let (name, number) = rest.rsplit_once('/').ok_or_else(usage)?;
            number.parse::<i64>().map_err(|_| usage())?;
            (name, number.to_string())
        }
    };
    let detail = call_json(
        settings,
        common,
        Method::GET,
        &format!("/v1/models/{}/versions/{}", enc(name), enc(&selector)),
        None,
    )
    .await?;
    let version: i64 = match &detail["model_version"]["version"] {
        serde_json::Value::String(v) => v.parse().ok(),
        v => v.as_i64(),
    }
    .ok_or_else(|| anyhow::anyhow!("the server's answer names no version"))?;
    let files = detail["files"].as_array().cloned().unwrap_or_default();
    let paths: Vec<&str> = files
        .iter()
        .map(|f| f["path"].as_str().unwrap_or_default())
        .collect();
    let file = &files[keel_registry::onnx_model_file(&paths)
        .map_err(|e| anyhow::anyhow!("{reference} (version {version}) {e}"))?];
    let store_path = file["store_path"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the server's answer gives no store_path; upgrade it"))?;
    let reply = call(
        settings,
        common,
        Method::GET,
        &format!(
            "/api/2.0/mlflow-artifacts/artifacts/{}",
            enc_path(store_path)
        ),
        None,
    )
    .await?;
    let path = folder.join("model.onnx");
    std::fs::write(&path, &reply.body)?;
    Ok((name.to_string(), version, path))
}

fn threshold_text(t: &serde_json::Value) -> String {
    match (t["min"].as_f64(), t["max"].as_f64()) {
        (Some(a), Some(b)) => format!("[{a}, {b}]"),
        (Some(a), None) => format!("≥ {a}"),
        (None, Some(b)) => format!("≤ {b}"),
        _ => "-".into(),
    }
}
