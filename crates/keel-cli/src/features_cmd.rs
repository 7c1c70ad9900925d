//! `keel features …`: feature repos and training sets.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::config::Settings;
use crate::data_cmd::absolute;
use crate::lifecycle_cmd::{Common, call_json};
use crate::output::{UsageError, print_json, time};

#[derive(Subcommand, Debug)]
pub enum FeaturesCmd {
    /// Show what applying a feature repo folder would change.
    ///
    /// Reads every *.yaml / *.yml file below REPO_DIR, checks them (and
    /// each feature view against the columns its source really has), and
    /// prints the plan: + created, ~ changed, - deleted.
    #[command(verbatim_doc_comment)]
    Plan {
        repo_dir: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Check a feature repo folder, show the plan, and apply it.
    ///
    /// Every problem is reported at once with file, line and column, and
    /// nothing is applied until there are none. Without --yes, asks before
    /// applying (and refuses when there is no terminal to ask on).
    ///   keel features apply feature_repo/
    ///   keel features apply feature_repo/ --yes     # scripts and CI
    #[command(verbatim_doc_comment)]
    Apply {
        repo_dir: PathBuf,
        /// Apply without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Show the applied feature repo: its version and definitions.
    Show {
        #[command(flatten)]
        common: Common,
    },
    /// Build a point-in-time correct training set for a feature service.
    ///
    /// For every row of the entity file (join keys + event_timestamp) and
    /// every view, the latest feature row at or before the row's time and
    /// within the view's ttl; rows without one keep nulls, and the rows
    /// keep their order. Writes OUT (Parquet) and OUT.manifest.json: the
    /// repo version, the entity file's and every source's content hash.
    ///   keel features training-set --service user_features \
    ///       --entities labels.parquet --out train.parquet
    #[command(verbatim_doc_comment)]
    TrainingSet {
        /// The feature service.
        #[arg(long)]
        service: String,
        /// Parquet/CSV file with the join keys and `event_timestamp`.
        #[arg(long)]
        entities: PathBuf,
        /// The Parquet file to write.
        #[arg(long)]
        out: PathBuf,
        /// Name columns `feature` instead of `view__feature`.
        #[arg(long)]
        short_names: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Load the latest feature values into the online store.
    ///
    /// For every online feature view, the latest row per entity with an
    /// event time in [START, END] goes online (a newer row already online,
    /// from a push, is kept); stream feature views replay their events into
    /// their windows. Idempotent: running it twice writes the same values.
    /// Each view's END becomes its watermark, where --incremental starts.
    ///   keel features materialize                       # everything, up to now
    ///   keel features materialize --incremental         # since the last run
    ///   keel features materialize --start 2026-01-01 --end 2026-02-01T00:00:00Z
    ///   keel features materialize --view user_activity --server http://keel:5000
    #[command(verbatim_doc_comment)]
    Materialize {
        /// Start each view at its watermark (the END of its last run).
        #[arg(long)]
        incremental: bool,
        /// First event time, inclusive (RFC 3339 or a date; UTC when no zone).
        #[arg(long)]
        start: Option<String>,
        /// Last event time, inclusive (default: now).
        #[arg(long)]
        end: Option<String>,
        /// Only these views (repeat for several; default: every online view).
        #[arg(long = "view")]
        views: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Check training/serving skew: what the feature server answered
    /// against the offline point-in-time values for the same entities at
    /// the same instants.
    ///
    /// The server logs a sample of /get-online-features requests that name
    /// a feature service; this takes the latest SAMPLE served rows,
    /// recomputes them offline (sources + push logs) and reports, per
    /// feature, the mismatch rate and the largest difference.
    ///   keel features skew --service user_features --sample 1000
    ///   keel features skew --service user_features --html skew.html --server http://keel:5000
    #[command(verbatim_doc_comment)]
    Skew {
        /// The feature service whose served rows to check.
        #[arg(long)]
        service: String,
        /// How many of the latest served rows to compare.
        #[arg(long, default_value_t = 1000)]
        sample: usize,
        /// Also write the report as an HTML page.
        #[arg(long)]
        html: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

fn time_flag(flag: &str, text: Option<&str>) -> Result<Option<i64>> {
    text.map(|t| {
        keel_features::online::convert::parse_time(t)
            .map_err(|m| UsageError(format!("--{flag}: {m}")).into())
    })
    .transpose()
}

/// A feature-store failure as the CLI reports it: the caller's mistakes
/// exit 2, the rest 1.
fn feature_error(e: keel_features::FeatureError) -> anyhow::Error {
    match e {
        keel_features::FeatureError::Online(m) => anyhow::anyhow!(m),
        keel_features::FeatureError::Corrupt(_) | keel_features::FeatureError::Store(_) => {
            anyhow::Error::new(e)
        }
        other => UsageError(other.to_string()).into(),
    }
}

async fn materialize(
    settings: &Settings,
    req: keel_features::online::MaterializeRequest,
    common: &Common,
) -> Result<Value> {
    if common.server.is_some() {
        eprintln!("Materializing on the server…");
        return call_json(
            settings,
            common,
            Method::POST,
            "/v1/features/materialize",
            Some(json!({
                "views": req.views,
                "start": req.start,
                "end": req.end,
                "incremental": req.incremental,
            })),
        )
        .await;
    }
    let online = crate::open_online(settings).await?;
    let state = crate::local_state(settings).await?.with_online(online);
    let Some(online) = state.online.clone() else {
        anyhow::bail!("the feature store is not available");
    };
    let bar = crate::output::ProgressBar::new();
    let report = online
        .materialize(
            &req,
            Some(&|p: &keel_features::online::Progress| {
                bar.update(&p.view, p.rows_done, p.rows_total);
            }),
        )
        .await;
    bar.finish();
    if let Some(engine) = &state.lifecycle {
        engine.shutdown().await;
    }
    let report = report.map_err(feature_error)?;
    Ok(serde_json::to_value(report)?)
}

fn repo_body(dir: &std::path::Path) -> Result<Value> {
    let files = keel_features::definition::read_repo_files(dir).map_err(|e| match e {
        keel_features::FeatureError::Definitions(_) => {
            UsageError(format!("the feature repo has problems:\n{e}"))
        }
        other => UsageError(other.to_string()),
    })?;
    if files.is_empty() {
        return Err(UsageError(format!(
            "{} holds no .yaml or .yml files; a feature repo defines entities, sources and feature views in YAML",
            dir.display()
        ))
        .into());
    }
    Ok(json!({"files": files, "repo_dir": absolute(dir)?}))
}

fn confirm() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "not applied: there is no terminal to confirm on; run again with --yes to apply".into(),
        )
        .into());
    }
    eprint!("Apply these changes? [y/N] ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub async fn run(settings: &Settings, cmd: FeaturesCmd) -> Result<ExitCode> {
    match cmd {
        FeaturesCmd::Plan { repo_dir, common } => {
            let body = repo_body(&repo_dir)?;
            let v = call_json(
                settings,
                &common,
                Method::POST,
                "/v1/features/plan",
                Some(body),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                print!("{}", v["plan_text"].as_str().unwrap_or(""));
            }
        }
        FeaturesCmd::Apply {
            repo_dir,
            yes,
            common,
        } => {
            let mut body = repo_body(&repo_dir)?;
            let plan = call_json(
                settings,
                &common,
                Method::POST,
                "/v1/features/plan",
                Some(body.clone()),
            )
            .await?;
            let changes = plan["plan"]["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["action"] != "unchanged");
            if !common.json {
                print!("{}", plan["plan_text"].as_str().unwrap_or(""));
            }
            if changes && !yes && !confirm()? {
                eprintln!("Not applied.");
                return Ok(ExitCode::from(1));
            }
            body["expected_version"] = plan["version"].clone();
            let v = call_json(
                settings,
                &common,
                Method::POST,
                "/v1/features/apply",
                Some(body),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else if v["applied"].as_bool() == Some(true) {
                println!("Applied: the feature repo is now version {}.", v["version"]);
            } else {
                println!("The feature repo stays at version {}.", v["version"]);
            }
        }
        FeaturesCmd::Show { common } => {
            let v = call_json(settings, &common, Method::GET, "/v1/features", None).await?;
            if common.json {
                print_json(&v);
            } else {
                println!(
                    "version {} applied {} by {} from {}",
                    v["version"],
                    time(v["applied_at"].as_i64()),
                    v["actor"].as_str().unwrap_or("?"),
                    v["repo_dir"].as_str().unwrap_or("")
                );
                let repo = &v["repo"];
                for (key, label) in [
                    ("entities", "entities"),
                    ("sources", "sources"),
                    ("feature_views", "feature views"),
                    ("stream_feature_views", "stream feature views"),
                    ("on_demand_feature_views", "on-demand feature views"),
                    ("feature_services", "feature services"),
                ] {
                    let names: Vec<&str> = repo[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x["name"].as_str())
                        .collect();
                    if !names.is_empty() {
                        println!("{label}: {}", names.join(", "));
                    }
                }
            }
        }
        FeaturesCmd::TrainingSet {
            service,
            entities,
            out,
            short_names,
            common,
        } => {
            let body = json!({
                "service": service,
                "entities": absolute(&entities)?,
                "out": absolute(&out)?,
                "short_names": short_names,
            });
            eprintln!("Building training set `{service}`…");
            let v = call_json(
                settings,
                &common,
                Method::POST,
                "/v1/features/training-set",
                Some(body),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                let o = &v["output"];
                println!(
                    "wrote {} ({} rows, {} columns) in {} ms",
                    o["path"].as_str().unwrap_or(""),
                    o["rows"],
                    o["columns"].as_array().map_or(0, Vec::len),
                    v["elapsed_ms"]
                );
                println!(
                    "manifest: {}.manifest.json (feature repo v{}, {} view(s))",
                    o["path"].as_str().unwrap_or(""),
                    v["feature_repo"]["version"],
                    v["views"].as_array().map_or(0, Vec::len)
                );
            }
        }
        FeaturesCmd::Skew {
            service,
            sample,
            html,
            common,
        } => {
            let v = if common.server.is_some() {
                call_json(
                    settings,
                    &common,
                    Method::POST,
                    "/v1/features/skew",
                    Some(json!({"service": service, "sample": sample})),
                )
                .await?
            } else {
                let online = crate::open_online(settings).await?;
                let state = crate::local_state(settings).await?.with_online(online);
                let Some(online) = state.online.clone() else {
                    anyhow::bail!("the feature store is not available");
                };
                let scratch = tempfile::tempdir()?;
                let report = online.skew(&service, sample, scratch.path()).await;
                if let Some(engine) = &state.lifecycle {
                    engine.shutdown().await;
                }
                serde_json::to_value(report.map_err(feature_error)?)?
            };
            let report: keel_features::online::SkewReport = serde_json::from_value(v.clone())
                .map_err(|e| anyhow::anyhow!("the skew report is not readable: {e}"))?;
            if let Some(path) = &html {
                std::fs::write(path, keel_features::online::render_html(&report))
                    .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
            }
            if common.json {
                print_json(&v);
            } else {
                println!(
                    "{}: {} served rows ({} .. {}), {:.2}% differ",
                    report.service,
                    report.rows,
                    report.from.as_deref().unwrap_or(""),
                    report.to.as_deref().unwrap_or(""),
                    report.mismatch_rate * 100.0
                );
                let rows: Vec<Vec<String>> = report
                    .features
                    .iter()
                    .map(|f| {
                        vec![
                            f.feature.clone(),
                            f.compared.to_string(),
                            f.mismatches.to_string(),
                            format!("{:.2}%", f.mismatch_rate * 100.0),
                            f.max_abs_diff.map_or(String::new(), |d| format!("{d}")),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    crate::output::table(
                        &["FEATURE", "COMPARED", "MISMATCHES", "RATE", "MAX |DIFF|"],
                        &rows
                    )
                );
                if let Some(path) = &html {
                    println!("report: {}", path.display());
                }
            }
        }
        FeaturesCmd::Materialize {
            incremental,
            start,
            end,
            views,
            common,
        } => {
            let req = keel_features::online::MaterializeRequest {
                views,
                start: time_flag("start", start.as_deref())?,
                end: time_flag("end", end.as_deref())?,
                incremental,
            };
            let v = materialize(settings, req, &common).await?;
            if common.json {
                print_json(&v);
            } else {
                for view in v["views"].as_array().into_iter().flatten() {
                    let start = view["start"]
                        .as_i64()
                        .map(keel_features::online::rfc3339_micros)
                        .unwrap_or_else(|| "the beginning".into());
                    let end = view["end"]
                        .as_i64()
                        .map(keel_features::online::rfc3339_micros)
                        .unwrap_or_default();
                    println!(
                        "{} ({}): {} rows from {start} to {end} -> {} entities written{} in {} ms",
                        view["name"].as_str().unwrap_or(""),
                        view["kind"].as_str().unwrap_or(""),
                        view["rows"],
                        view["entities_written"],
                        match view["kept_newer"].as_u64() {
                            Some(n) if n > 0 => format!(" ({n} kept a newer online row)"),
                            _ => String::new(),
                        },
                        view["elapsed_ms"]
                    );
                }
                if v["views"].as_array().is_none_or(Vec::is_empty) {
                    println!("No online feature view to materialize.");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
