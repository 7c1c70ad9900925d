//! `keel monitor …`: drift between two files, with no server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use keel_monitor::drift::{DriftSpec, Method, drift_parquet, method_names};
use keel_monitor::profile::{ColumnProfile, DatasetProfile};
use keel_monitor::table::{profile_parquet_with_edges, reference_edges};

use crate::config::Settings;
use crate::lifecycle_cmd::{Common, call, call_json, enc};
use crate::output::{ProgressBar, UsageError, print_json, table};
use reqwest::Method as Http;
use serde_json::{Value, json};

/// A time window: --window back from --end (default now), or
/// --start/--end.
#[derive(clap::Args, Debug, Default)]
pub struct WindowArgs {
    /// How far back from the end (`30m`, `1h`, `7d`); default 1h.
    #[arg(long)]
    window: Option<String>,
    /// Start, ms since the epoch.
    #[arg(long)]
    start: Option<i64>,
    /// End, ms since the epoch (default now).
    #[arg(long)]
    end: Option<i64>,
}

impl WindowArgs {
    fn query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        if let Some(w) = &self.window {
            q.push(("window".into(), w.clone()));
        }
        if let Some(s) = self.start {
            q.push(("start".into(), s.to_string()));
        }
        if let Some(e) = self.end {
            q.push(("end".into(), e.to_string()));
        }
        q
    }
}

fn query_string(q: &[(String, String)]) -> String {
    if q.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    format!("?{}", parts.join("&"))
}

#[derive(Subcommand, Debug)]
pub enum MonitorCmd {
    /// Data drift between a reference and a current Parquet file, column by
    /// column, and whether the dataset drifted (the share of drifted
    /// columns reaches --drift-share).
    ///
    /// The method per column follows Evidently's DataDriftPreset: with at
    /// most 1,000 reference rows, Kolmogorov–Smirnov for numbers (more than
    /// 5 distinct values), a chi-square test for categories, a z-test for
    /// two values; above that, Wasserstein distance normed by the
    /// reference's std for numbers and Jensen–Shannon distance for
    /// categories. Keel's chi-square is the two-sample contingency test
    /// (`chi2_contingency`); --evidently-chisquare uses Evidently's
    /// goodness-of-fit test instead. Nulls, NaN and infinities are dropped.
    ///
    ///   keel monitor drift --reference ref.parquet --current cur.parquet
    ///   keel monitor drift --reference ref.parquet --current cur.parquet --json
    ///   keel monitor drift -r ref.parquet -c cur.parquet --html drift.html \
    ///       --method psi --method country=chi2_contingency --threshold age=0.2
    ///   keel monitor drift -r ref.profile.json -c today.profile.json
    ///
    /// Saved profiles (`keel monitor profile -o`) compare without the data:
    /// exactly where both hold their values (up to 100,000 numbers or
    /// 10,000 categories), else numbers by the Wasserstein distance between
    /// their quantile sketches, with `score_error_bound` in the result.
    ///
    /// Methods: ks, chisquare, chi2_contingency, z, wasserstein,
    /// jensenshannon, psi, kl_div, hellinger, anderson, cramer_von_mises, ed.
    ///
    /// Exit status: 0 (1 with --fail-on-drift when the dataset drifted), 2
    /// for unusable input.
    #[command(verbatim_doc_comment)]
    Drift {
        /// The reference data (what the model was trained or validated on).
        #[arg(long, short = 'r')]
        reference: PathBuf,
        /// The current data (what the model sees now).
        #[arg(long, short = 'c')]
        current: PathBuf,
        /// Print the result as JSON: {"dataset_drift", "drift_share",
        /// "columns": [{"column", "type", "method", "score", "threshold",
        /// "drifted", "comparator", ...}]}.
        #[arg(long)]
        json: bool,
        /// Also write an HTML report with plots of every column.
        #[arg(long)]
        html: Option<PathBuf>,
        /// A method for every column (`psi`), or for one (`age=ks`);
        /// repeatable.
        #[arg(long, value_name = "[COLUMN=]METHOD")]
        method: Vec<String>,
        /// A threshold for every column (`0.2`), or for one (`age=0.2`);
        /// repeatable.
        #[arg(long, value_name = "[COLUMN=]VALUE")]
        threshold: Vec<String>,
        /// The dataset drifts when at least this share of columns drifts.
        #[arg(long, default_value_t = 0.5)]
        drift_share: f64,
        /// Compare only these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// Leave these columns out (comma-separated).
        #[arg(long, value_delimiter = ',')]
        exclude: Vec<String>,
        /// Compare these columns as categories whatever their type.
        #[arg(long, value_delimiter = ',')]
        categorical: Vec<String>,
        /// The model's prediction column: its drift is reported apart, as
        /// prediction drift, and not counted in the share.
        #[arg(long)]
        prediction: Option<String>,
        /// Use Evidently's goodness-of-fit chi-square where the default
        /// rule asks for a chi-square test.
        #[arg(long)]
        evidently_chisquare: bool,
        /// Exit with status 1 when the dataset drifted.
        #[arg(long)]
        fail_on_drift: bool,
        /// Threads (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Append a batch of predictions to a deployment's prediction log from
    /// a Parquet file: every column is a feature, except `id`, `at` (ms
    /// since the epoch, or a timestamp column), `prediction`, `label`,
    /// `variant`, `model_version` and `latency_ms`, which fill those
    /// fields. Rows go in batches of 10,000, each one segment.
    ///
    ///   keel monitor log churn scored.parquet --server URL
    #[command(verbatim_doc_comment)]
    Log {
        deployment: String,
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Send labels that arrived later: a Parquet file with `id` and
    /// `label` columns.
    ///
    ///   keel monitor labels churn outcomes.parquet --server URL
    #[command(verbatim_doc_comment)]
    Labels {
        deployment: String,
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Set a deployment's reference data: a Parquet file, or a window of
    /// its own log (--start/--end, ms since the epoch, or --window back
    /// from now).
    ///
    ///   keel monitor reference churn --file train.parquet --server URL
    ///   keel monitor reference churn --window 7d --server URL
    #[command(verbatim_doc_comment)]
    Reference {
        deployment: String,
        #[arg(long, conflicts_with_all = ["window", "start", "end"])]
        file: Option<PathBuf>,
        #[command(flatten)]
        window: WindowArgs,
        #[command(flatten)]
        common: Common,
    },
    /// A deployment's drift: its log's window against its reference; with
    /// --step, drift per step over the window.
    ///
    ///   keel monitor status churn --window 1h --server URL
    ///   keel monitor status churn --window 1d --step 1h --html drift.html
    #[command(verbatim_doc_comment)]
    Status {
        deployment: String,
        #[command(flatten)]
        window: WindowArgs,
        /// Drift per step of this length (`1h`), oldest first.
        #[arg(long)]
        step: Option<String>,
        /// A method for every column, or `COLUMN=METHOD,…`.
        #[arg(long)]
        method: Option<String>,
        /// Also write the HTML report here.
        #[arg(long)]
        html: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// A deployment's performance: realized metrics where labels arrived,
    /// estimated from calibrated scores (CBPE) where they did not.
    ///
    ///   keel monitor performance churn --window 7d --step 1d --server URL
    #[command(verbatim_doc_comment)]
    Performance {
        deployment: String,
        #[command(flatten)]
        window: WindowArgs,
        #[arg(long)]
        step: Option<String>,
        /// classification (default) or regression.
        #[arg(long)]
        task: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Alert rules: list, set one from a JSON file, delete, evaluate now.
    ///
    ///   keel monitor alerts --server URL
    ///   keel monitor alerts set churn-drift rule.json --server URL
    ///   keel monitor alerts evaluate --server URL
    #[command(verbatim_doc_comment)]
    Alerts {
        /// `set NAME FILE`, `delete NAME`, `evaluate`, or nothing to list.
        args: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Mergeable profiles: profile Parquet files once (count, nulls,
    /// moments, KLL quantiles, HyperLogLog distinct counts, frequent items;
    /// exact below 100,000 values), save them as JSON, and merge profiles of
    /// parts (days, shards, machines) into the profile of the whole.
    ///
    ///   keel monitor profile day1.parquet -o day1.profile.json
    ///   keel monitor profile day1.profile.json day2.parquet     # merged
    ///   keel monitor profile part-*.parquet --json
    ///   keel monitor profile today.parquet --edges-from train.profile.json --bins 10
    #[command(verbatim_doc_comment)]
    Profile {
        /// Parquet files to profile and JSON profiles to merge with them.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Write the merged profile (JSON) here.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
        /// Print the merged profile as JSON instead of a summary table.
        #[arg(long)]
        json: bool,
        /// Give every numeric column a histogram on this reference
        /// profile's quantile edges, so windows share the reference's bins.
        #[arg(long, value_name = "PROFILE.json")]
        edges_from: Option<PathBuf>,
        /// With --edges-from: how many bins (quantiles 0, 1/N, …, 1).
        #[arg(long, default_value_t = 10, requires = "edges_from")]
        bins: usize,
    },
}

pub async fn run(settings: &Settings, cmd: MonitorCmd) -> Result<ExitCode> {
    match cmd {
        MonitorCmd::Log {
            deployment,
            file,
            common,
        } => {
            let rows = tokio::task::block_in_place(|| keel_monitor::table::log_rows(&file))
                .map_err(|e| UsageError(e.to_string()))?;
            let sent =
                post_in_batches(settings, &common, &deployment, "predictions", "rows", &rows)
                    .await?;
            if common.json {
                print_json(&json!({"deployment": deployment, "logged": sent}));
            } else {
                println!("logged {sent} predictions to {deployment}");
            }
            Ok(ExitCode::SUCCESS)
        }
        MonitorCmd::Labels {
            deployment,
            file,
            common,
        } => {
            let labels = tokio::task::block_in_place(|| keel_monitor::table::label_rows(&file))
                .map_err(|e| UsageError(e.to_string()))?;
            let sent = post_in_batches(settings, &common, &deployment, "labels", "labels", &labels)
                .await?;
            if common.json {
                print_json(&json!({"deployment": deployment, "labels": sent}));
            } else {
                println!("sent {sent} labels to {deployment}");
            }
            Ok(ExitCode::SUCCESS)
        }
        MonitorCmd::Reference {
            deployment,
            file,
            window,
            common,
        } => {
            let path = format!(
                "/v1/monitor/deployments/{}/reference{}",
                enc(&deployment),
                query_string(&window.query())
            );
            let body = match &file {
                Some(f) => Some(
                    std::fs::read(f).map_err(|e| UsageError(format!("{}: {e}", f.display())))?,
                ),
                None => None,
            };
            let reply = call(settings, &common, Http::PUT, &path, body).await?;
            let v: Value = serde_json::from_slice(&reply.body)?;
            if common.json {
                print_json(&v);
            } else {
                println!(
                    "reference of {deployment}: {} rows, columns {}",
                    v["rows"],
                    v["columns"]
                        .as_array()
                        .map(|c| c
                            .iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        MonitorCmd::Status {
            deployment,
            window,
            step,
            method,
            html,
            common,
        } => {
            let mut q = window.query();
            if let Some(m) = &method {
                q.push(("method".into(), m.clone()));
            }
            let base = format!("/v1/monitor/deployments/{}/drift", enc(&deployment));
            let route = match &step {
                Some(s) => {
                    q.push(("step".into(), s.clone()));
                    format!("{base}/history")
                }
                None => base,
            };
            let v = call_json(
                settings,
                &common,
                Http::GET,
                &format!("{route}{}", query_string(&q)),
                None,
            )
            .await?;
            if let Some(path) = &html {
                q.push(("format".into(), "html".into()));
                let page = call(
                    settings,
                    &common,
                    Http::GET,
                    &format!("{route}{}", query_string(&q)),
                    None,
                )
                .await?;
                std::fs::write(path, &page.body)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if common.json {
                print_json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            if step.is_some() {
                let rows: Vec<Vec<String>> = v["points"]
                    .as_array()
                    .map(|p| p.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        vec![
                            crate::output::time(p["start"].as_i64()),
                            p["rows"].to_string(),
                            format!("{:.3}", p["drift_share"].as_f64().unwrap_or(0.0)),
                            if p["dataset_drift"].as_bool().unwrap_or(false) {
                                "DRIFT"
                            } else {
                                "ok"
                            }
                            .into(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["STEP START", "ROWS", "DRIFT SHARE", "VERDICT"], &rows)
                );
            } else {
                let rows: Vec<Vec<String>> = v["columns"]
                    .as_array()
                    .map(|c| c.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .chain(v.get("prediction").filter(|p| !p.is_null()))
                    .map(|c| {
                        vec![
                            c["column"].as_str().unwrap_or("").to_string(),
                            c["method"].as_str().unwrap_or("").to_string(),
                            format!("{:.6}", c["score"].as_f64().unwrap_or(f64::NAN)),
                            format!(
                                "{} {}",
                                c["comparator"].as_str().unwrap_or(""),
                                c["threshold"]
                            ),
                            if c["drifted"].as_bool().unwrap_or(false) {
                                "DRIFTED"
                            } else {
                                "stable"
                            }
                            .into(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["COLUMN", "METHOD", "SCORE", "DRIFT WHEN", "VERDICT"],
                        &rows
                    )
                );
                println!(
                    "{}: {} of {} columns drifted ({} current rows)",
                    if v["dataset_drift"].as_bool().unwrap_or(false) {
                        "DATASET DRIFT"
                    } else {
                        "no dataset drift"
                    },
                    v["drifted_columns"],
                    v["number_of_columns"],
                    v["current_rows"]
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        MonitorCmd::Performance {
            deployment,
            window,
            step,
            task,
            common,
        } => {
            let mut q = window.query();
            if let Some(s) = step {
                q.push(("step".into(), s));
            }
            if let Some(t) = task {
                q.push(("task".into(), t));
            }
            let v = call_json(
                settings,
                &common,
                Http::GET,
                &format!(
                    "/v1/monitor/deployments/{}/performance{}",
                    enc(&deployment),
                    query_string(&q)
                ),
                None,
            )
            .await?;
            if common.json {
                print_json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let f = f_or_dash;
            let rows: Vec<Vec<String>> = v["steps"]
                .as_array()
                .map(|p| p.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let r = &p["realized"];
                    let e = &p["estimated"];
                    vec![
                        crate::output::time(p["start"].as_i64()),
                        p["predictions"].to_string(),
                        p["labelled"].to_string(),
                        f(&r["accuracy"]),
                        f(&r["roc_auc"]),
                        f(&r["rmse"]),
                        f(&e["accuracy"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "STEP START",
                        "PREDICTIONS",
                        "LABELLED",
                        "ACCURACY",
                        "ROC AUC",
                        "RMSE",
                        "EST. ACCURACY"
                    ],
                    &rows
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        MonitorCmd::Alerts { args, common } => {
            let words: Vec<&str> = args.iter().map(String::as_str).collect();
            let v = match words.as_slice() {
                [] | ["list"] => {
                    call_json(settings, &common, Http::GET, "/v1/monitor/alerts", None).await?
                }
                ["set", name, file] => {
                    let text =
                        std::fs::read(file).map_err(|e| UsageError(format!("{file}: {e}")))?;
                    let rule: Value = serde_json::from_slice(&text)
                        .map_err(|e| UsageError(format!("{file}: not JSON: {e}")))?;
                    call_json(
                        settings,
                        &common,
                        Http::PUT,
                        &format!("/v1/monitor/alerts/{}", enc(name)),
                        Some(rule),
                    )
                    .await?
                }
                ["delete", name] => {
                    call_json(
                        settings,
                        &common,
                        Http::DELETE,
                        &format!("/v1/monitor/alerts/{}", enc(name)),
                        None,
                    )
                    .await?
                }
                ["evaluate"] => {
                    call_json(
                        settings,
                        &common,
                        Http::POST,
                        "/v1/monitor/alerts/evaluate",
                        None,
                    )
                    .await?
                }
                _ => {
                    return Err(UsageError(
                        "keel monitor alerts [list | set NAME FILE | delete NAME | evaluate]"
                            .into(),
                    )
                    .into());
                }
            };
            if common.json {
                print_json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let list = v["alerts"].as_array().or(v["evaluated"].as_array());
            match list {
                Some(items) => {
                    let rows: Vec<Vec<String>> = items
                        .iter()
                        .map(|a| {
                            vec![
                                a.get("name")
                                    .or(a.get("alert"))
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                                a["state"].as_str().unwrap_or("").to_string(),
                                a.get("last_value")
                                    .or(a.get("value"))
                                    .map(f_or_dash)
                                    .unwrap_or_default(),
                                a["message"].as_str().unwrap_or("").to_string(),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["ALERT", "STATE", "VALUE", "MESSAGE"], &rows));
                }
                None => print_json(&v),
            }
            Ok(ExitCode::SUCCESS)
        }
        MonitorCmd::Profile {
            inputs,
            out,
            json,
            edges_from,
            bins,
        } => {
            let edges = match &edges_from {
                Some(path) => reference_edges(&read_profile(path)?, bins)
                    .map_err(|e| UsageError(e.to_string()))?,
                None => Default::default(),
            };
            let merged = tokio::task::block_in_place(|| merge_profiles(&inputs, &edges))?;
            if let Some(path) = &out {
                std::fs::write(path, serde_json::to_vec(&merged)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if json {
                print_json(&serde_json::to_value(&merged)?);
            } else {
                print!("{}", profile_table(&merged));
                println!(
                    "{} rows from {} input(s){}",
                    merged.rows(),
                    inputs.len(),
                    out.as_ref()
                        .map(|p| format!("; profile written to {}", p.display()))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        MonitorCmd::Drift {
            reference,
            current,
            json,
            html,
            method,
            threshold,
            drift_share,
            columns,
            exclude,
            categorical,
            prediction,
            evidently_chisquare,
            fail_on_drift,
            threads,
        } => {
            let mut spec = DriftSpec {
                drift_share,
                columns,
                exclude,
                categorical,
                prediction,
                evidently_chisquare,
                ..Default::default()
            };
            for m in method {
                let (column, name) = match m.split_once('=') {
                    Some((c, n)) => (Some(c.to_string()), n),
                    None => (None, m.as_str()),
                };
                let parsed = Method::parse(name).ok_or_else(|| {
                    UsageError(format!(
                        "--method {m}: unknown method {name:?}; one of {}",
                        method_names()
                    ))
                })?;
                match column {
                    Some(c) => {
                        spec.methods.insert(c, parsed);
                    }
                    None => {
                        if !parsed.numerical_only() {
                            spec.categorical_method = Some(parsed);
                        }
                        spec.numerical_method = Some(parsed);
                    }
                }
            }
            for t in threshold {
                let (column, value) = match t.split_once('=') {
                    Some((c, v)) => (Some(c.to_string()), v),
                    None => (None, t.as_str()),
                };
                let v: f64 = value.parse().map_err(|_| {
                    UsageError(format!("--threshold {t}: {value:?} is not a number"))
                })?;
                match column {
                    Some(c) => {
                        spec.thresholds.insert(c, v);
                    }
                    None => spec.threshold = Some(v),
                }
            }
            let threads = threads.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            });
            let bar = ProgressBar::counting("columns");
            let progress = |done: usize, total: usize| {
                bar.update("comparing", done as u64, total as u64);
            };
            let is_profile = |p: &PathBuf| p.extension().is_some_and(|e| e == "json");
            let report = match (is_profile(&reference), is_profile(&current)) {
                (false, false) => tokio::task::block_in_place(|| {
                    drift_parquet(&reference, &current, &spec, threads, &progress)
                }),
                (true, true) => {
                    let r = read_profile(&reference)?;
                    let c = read_profile(&current)?;
                    keel_monitor::drift::drift_profiles(&r, &c, &spec)
                }
                _ => {
                    return Err(UsageError(
                        "--reference and --current must both be Parquet files or both saved profiles (.json)".into(),
                    )
                    .into());
                }
            };
            bar.finish();
            let report = report.map_err(|e| match e {
                keel_monitor::MonitorError::Statistics { .. } => anyhow::anyhow!(e),
                other => anyhow::Error::new(UsageError(other.to_string())),
            })?;
            if let Some(path) = &html {
                let title = format!("Drift: {} vs {}", current.display(), reference.display());
                std::fs::write(path, keel_monitor::report::render_html(&report, &title))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            if json {
                print_json(&serde_json::to_value(&report)?);
            } else {
                let rows: Vec<Vec<String>> = report
                    .columns
                    .iter()
                    .chain(&report.prediction)
                    .map(|c| {
                        vec![
                            c.column.clone(),
                            format!("{:?}", c.column_type).to_lowercase(),
                            c.method.name().to_string(),
                            format!("{:.6}", c.score),
                            format!(
                                "{} {}",
                                serde_json::to_value(c.comparator)
                                    .ok()
                                    .and_then(|v| v.as_str().map(String::from))
                                    .unwrap_or_default(),
                                c.threshold
                            ),
                            if c.drifted { "DRIFTED" } else { "stable" }.to_string(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["COLUMN", "TYPE", "METHOD", "SCORE", "DRIFT WHEN", "VERDICT"],
                        &rows,
                    )
                );
                for s in &report.skipped {
                    println!("not compared: {}: {}", s.column, s.reason);
                }
                println!(
                    "{}: {} of {} columns drifted (share {:.3}, threshold {})",
                    if report.dataset_drift {
                        "DATASET DRIFT"
                    } else {
                        "no dataset drift"
                    },
                    report.drifted_columns,
                    report.number_of_columns,
                    report.drift_share,
                    report.drift_share_threshold
                );
                if let Some(path) = &html {
                    println!("report: {}", path.display());
                }
            }
            Ok(if fail_on_drift && report.dataset_drift {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// A profile saved by `keel monitor profile -o`.
fn read_profile(path: &PathBuf) -> Result<DatasetProfile> {
    let text = std::fs::read(path).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    Ok(serde_json::from_slice::<DatasetProfile>(&text)
        .map_err(|e| UsageError(format!("{}: not a Keel profile: {e}", path.display())))?)
}

/// Profiles the Parquet inputs and merges them with the JSON ones.
fn merge_profiles(
    inputs: &[PathBuf],
    edges: &std::collections::BTreeMap<String, Vec<f64>>,
) -> Result<DatasetProfile> {
    let mut merged: Option<DatasetProfile> = None;
    for path in inputs {
        let is_json = path.extension().is_some_and(|e| e == "json");
        let profile = if is_json {
            read_profile(path)?
        } else {
            profile_parquet_with_edges(path, edges).map_err(|e| UsageError(e.to_string()))?
        };
        match &mut merged {
            None => merged = Some(profile),
            Some(m) => m
                .merge(&profile)
                .map_err(|e| UsageError(format!("{}: {e}", path.display())))?,
        }
    }
    merged.ok_or_else(|| anyhow::Error::new(UsageError("no inputs".into())))
}

fn profile_table(p: &DatasetProfile) -> String {
    let fmt = |x: Option<f64>| x.map(|v| format!("{v:.6}")).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = p
        .columns()
        .iter()
        .map(|(name, c)| match c {
            ColumnProfile::Numeric(n) => vec![
                name.clone(),
                "numerical".into(),
                n.count().to_string(),
                n.null_count().to_string(),
                fmt(n.mean()),
                fmt(n.std_dev()),
                fmt(n.quantile(0.5).ok().flatten()),
                fmt(n.quantile(0.99).ok().flatten()),
                format!("{:.0}", n.distinct_count()),
                if n.is_exact() { "exact" } else { "sketch" }.into(),
            ],
            ColumnProfile::Categorical(k) => vec![
                name.clone(),
                "categorical".into(),
                k.count().to_string(),
                k.null_count().to_string(),
                "-".into(),
                "-".into(),
                k.frequent_items()
                    .first()
                    .map(|f| f.value.clone())
                    .unwrap_or_else(|| "-".into()),
                "-".into(),
                format!("{:.0}", k.distinct_count()),
                if k.is_exact() { "exact" } else { "sketch" }.into(),
            ],
        })
        .collect();
    table(
        &[
            "COLUMN", "TYPE", "COUNT", "NULLS", "MEAN", "STD", "P50/TOP", "P99", "DISTINCT",
            "SUMMARY",
        ],
        &rows,
    )
}

fn f_or_dash(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.4}"))
        .unwrap_or_else(|| "-".into())
}

/// Posts `items` to `/v1/monitor/deployments/D/ROUTE` as `{FIELD: [...]}`
/// in batches of 10,000 (each one segment), with a progress bar; how many
/// were sent.
async fn post_in_batches(
    settings: &Settings,
    common: &Common,
    deployment: &str,
    route: &str,
    field: &str,
    items: &[Value],
) -> Result<usize> {
    let bar = ProgressBar::counting(if route == "labels" { "labels" } else { "rows" });
    let mut sent = 0;
    for chunk in items.chunks(10_000) {
        let mut body = serde_json::Map::new();
        body.insert(field.to_string(), Value::Array(chunk.to_vec()));
        call_json(
            settings,
            common,
            Http::POST,
            &format!("/v1/monitor/deployments/{}/{route}", enc(deployment)),
            Some(Value::Object(body)),
        )
        .await?;
        sent += chunk.len();
        bar.update(route, sent as u64, items.len() as u64);
    }
    bar.finish();
    Ok(sent)
}
