//! `keel test …`: model-quality suites, run locally.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use keel_suite::run::Status;
use reqwest::Method;
use serde_json::json;

use crate::config::Settings;
use crate::lifecycle_cmd::{Common, call_json, enc};
use crate::output::{print_json, table};

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
        /// The Keel server holding the lifecycle (default: the data directory).
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
            let result = match keel_suite::run::run_file(&suite).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {}: {e}", suite.display());
                    return Ok(ExitCode::from(2));
                }
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
            if let Some(lifecycle) = lifecycle {
                let key = key.unwrap_or_else(|| result.suite.clone());
                let common = Common { server, json: true };
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

fn threshold_text(t: &serde_json::Value) -> String {
    match (t["min"].as_f64(), t["max"].as_f64()) {
        (Some(a), Some(b)) => format!("[{a}, {b}]"),
        (Some(a), None) => format!("≥ {a}"),
        (None, Some(b)) => format!("≤ {b}"),
        _ => "-".into(),
    }
}
