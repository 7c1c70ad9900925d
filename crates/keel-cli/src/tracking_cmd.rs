//! `keel experiments …` and `keel runs …`, on the data directory or, with
//! `--server URL`, through a running server's MLflow API. Both paths produce
//! the same MLflow JSON, so `--json` output is identical either way.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use keel_server::mlflow::wire;
use keel_tracking::{ExperimentSearch, RunSearch, ViewType};

use crate::config::Settings;
use crate::output::{UsageError, cell as s, print_json, table, time};

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Talk to a running Keel server instead of the data directory.
    #[arg(long, env = "KEEL_SERVER")]
    server: Option<String>,
    /// Print JSON (MLflow's shapes) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ExperimentsCmd {
    /// List experiments (newest first).
    ///
    /// Example: keel experiments list --json
    List {
        #[command(flatten)]
        common: Common,
        /// Include deleted experiments.
        #[arg(long)]
        all: bool,
    },
    /// Create an experiment and print its id.
    ///
    /// Example: keel experiments create churn --tag team=growth
    Create {
        name: String,
        #[arg(long)]
        artifact_location: Option<String>,
        /// KEY=VALUE, repeatable.
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunsCmd {
    /// List the runs of experiments (newest first).
    ///
    /// Example: keel runs list --experiment 1
    List {
        /// Experiment id, repeatable; none = all experiments.
        #[arg(long = "experiment")]
        experiments: Vec<String>,
        #[arg(long, default_value_t = 100)]
        max: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Search runs with MLflow's filter grammar, plus OR, NOT and parentheses.
    ///
    /// Example:
    ///   keel runs search --experiment 1 \
    ///     --filter "metrics.auc > 0.8 and (params.model = 'gbdt' or tags.team = 'x')" \
    ///     --order-by "metrics.auc DESC" --max 10
    #[command(verbatim_doc_comment)]
    Search {
        #[arg(long = "experiment")]
        experiments: Vec<String>,
        #[arg(long, default_value = "")]
        filter: String,
        /// e.g. "metrics.auc DESC", repeatable.
        #[arg(long = "order-by")]
        order_by: Vec<String>,
        #[arg(long, default_value_t = 100)]
        max: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Show one run: info, params, latest metrics and tags.
    ///
    /// Example: keel runs get 3f2a…
    Get {
        run_id: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Where the command's state lives.
enum Target {
    Local(keel_tracking::Tracking),
    Remote {
        client: reqwest::Client,
        base: String,
    },
}

async fn target(settings: &Settings, common: &Common) -> Result<Target> {
    match common.server.clone().or_else(|| settings.server.clone()) {
        Some(base) => Ok(Target::Remote {
            client: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }),
        None => {
            let (tracking, _) = crate::open_tracking(settings).await?;
            Ok(Target::Local(tracking))
        }
    }
}

impl Target {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value> {
        let Target::Remote { client, base } = self else {
            bail!("internal: remote call on a local target");
        };
        let url = format!("{base}/api/2.0/mlflow/{path}");
        let req = if method == reqwest::Method::GET {
            let query: Vec<(String, String)> = body
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| v.to_string()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            client.get(&url).query(&query)
        } else {
            client.request(method, &url).json(&body)
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {base}"))?;
        let status = resp.status();
        let value: Value = resp
            .json()
            .await
            .with_context(|| format!("the server at {base} did not answer with JSON"))?;
        if !status.is_success() {
            let msg = value["message"].as_str().unwrap_or("request failed");
            let code = value["error_code"].as_str().unwrap_or("ERROR");
            if status.is_client_error() {
                return Err(UsageError(format!("{code}: {msg}")).into());
            }
            bail!("{code}: {msg}");
        }
        Ok(value)
    }
}

fn usage(e: keel_tracking::TrackingError) -> anyhow::Error {
    match e {
        keel_tracking::TrackingError::Store(_) => anyhow::Error::new(e),
        other => UsageError(other.to_string()).into(),
    }
}

fn parse_ids(ids: &[String]) -> Result<Option<Vec<i64>>> {
    if ids.is_empty() || ids.iter().any(|i| i == "*") {
        return Ok(None);
    }
    ids.iter()
        .map(|i| {
            i.parse::<i64>().map_err(|_| {
                UsageError(format!(
                    "--experiment '{i}' is not an experiment id (an integer)"
                ))
                .into()
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

pub async fn experiments(settings: &Settings, cmd: ExperimentsCmd) -> Result<ExitCode> {
    match cmd {
        ExperimentsCmd::List { common, all } => {
            let t = target(settings, &common).await?;
            let view = if all {
                ViewType::All
            } else {
                ViewType::ActiveOnly
            };
            let mut experiments = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = match &t {
                    Target::Local(tr) => {
                        let p = tr
                            .search_experiments(ExperimentSearch {
                                view,
                                max_results: Some(1000),
                                page_token: token.clone(),
                                ..Default::default()
                            })
                            .await
                            .map_err(usage)?;
                        json!({
                            "experiments": p.items.iter().map(wire::experiment).collect::<Vec<_>>(),
                            "next_page_token": p.next_page_token,
                        })
                    }
                    Target::Remote { .. } => {
                        t.call(
                            reqwest::Method::POST,
                            "experiments/search",
                            json!({"max_results": 1000, "view_type": if all {"ALL"} else {"ACTIVE_ONLY"}, "page_token": token}),
                        )
                        .await?
                    }
                };
                experiments.extend(page["experiments"].as_array().cloned().unwrap_or_default());
                token = page["next_page_token"].as_str().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            if common.json {
                print_json(&json!({"experiments": experiments}));
            } else {
                let rows: Vec<Vec<String>> = experiments
                    .iter()
                    .map(|e| {
                        vec![
                            s(&e["experiment_id"]),
                            s(&e["name"]),
                            s(&e["lifecycle_stage"]),
                            time(e["creation_time"].as_i64()),
                            s(&e["artifact_location"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["ID", "NAME", "STAGE", "CREATED (UTC)", "ARTIFACTS"],
                        &rows
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ExperimentsCmd::Create {
            name,
            artifact_location,
            tags,
            common,
        } => {
            let mut parsed = Vec::new();
            for t in &tags {
                let Some((k, v)) = t.split_once('=') else {
                    return Err(UsageError(format!("--tag '{t}' must be KEY=VALUE")).into());
                };
                parsed.push(keel_tracking::Tag {
                    key: k.into(),
                    value: v.into(),
                });
            }
            let t = target(settings, &common).await?;
            let id = match &t {
                Target::Local(tr) => tr
                    .create_experiment(name.clone(), artifact_location, parsed)
                    .await
                    .map_err(usage)?
                    .to_string(),
                Target::Remote { .. } => {
                    let tags: Vec<Value> = parsed
                        .iter()
                        .map(|t| json!({"key": t.key, "value": t.value}))
                        .collect();
                    let v = t
                        .call(
                            reqwest::Method::POST,
                            "experiments/create",
                            json!({"name": name, "artifact_location": artifact_location, "tags": tags}),
                        )
                        .await?;
                    s(&v["experiment_id"])
                }
            };
            if common.json {
                print_json(&json!({"experiment_id": id}));
            } else {
                println!("created experiment '{name}' with id {id}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn runs(settings: &Settings, cmd: RunsCmd) -> Result<ExitCode> {
    match cmd {
        RunsCmd::List {
            experiments,
            max,
            common,
        } => {
            search(
                settings,
                experiments,
                String::new(),
                Vec::new(),
                max,
                common,
            )
            .await
        }
        RunsCmd::Search {
            experiments,
            filter,
            order_by,
            max,
            common,
        } => search(settings, experiments, filter, order_by, max, common).await,
        RunsCmd::Get { run_id, common } => {
            let t = target(settings, &common).await?;
            let run = match &t {
                Target::Local(tr) => wire::run(&tr.get_run(&run_id).await.map_err(usage)?),
                Target::Remote { .. } => t
                    .call(reqwest::Method::GET, "runs/get", json!({"run_id": run_id}))
                    .await?["run"]
                    .clone(),
            };
            if common.json {
                print_json(&json!({"run": run}));
                return Ok(ExitCode::SUCCESS);
            }
            let info = &run["info"];
            println!("run        {}", s(&info["run_id"]));
            println!("name       {}", s(&info["run_name"]));
            println!("experiment {}", s(&info["experiment_id"]));
            println!("status     {}", s(&info["status"]));
            println!("started    {}", time(info["start_time"].as_i64()));
            println!("ended      {}", time(info["end_time"].as_i64()));
            println!("artifacts  {}", s(&info["artifact_uri"]));
            for (title, key) in [
                ("params", "params"),
                ("metrics (latest)", "metrics"),
                ("tags", "tags"),
            ] {
                let items = run["data"][key].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    continue;
                }
                println!("\n{title}:");
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|i| {
                        let mut row = vec![s(&i["key"]), s(&i["value"])];
                        if key == "metrics" {
                            row.push(i["step"].to_string());
                        }
                        row
                    })
                    .collect();
                let headers: &[&str] = if key == "metrics" {
                    &["KEY", "VALUE", "STEP"]
                } else {
                    &["KEY", "VALUE"]
                };
                print!("{}", table(headers, &rows));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn search(
    settings: &Settings,
    experiments: Vec<String>,
    filter: String,
    order_by: Vec<String>,
    max: i64,
    common: Common,
) -> Result<ExitCode> {
    let ids = parse_ids(&experiments)?;
    let t = target(settings, &common).await?;
    let runs: Vec<Value> = match &t {
        Target::Local(tr) => {
            let page = tr
                .search_runs(RunSearch {
                    experiment_ids: ids,
                    filter,
                    max_results: Some(max),
                    order_by,
                    ..Default::default()
                })
                .await
                .map_err(usage)?;
            page.items.iter().map(wire::run).collect()
        }
        Target::Remote { .. } => {
            let ids: Vec<String> = match ids {
                None => vec!["*".into()],
                Some(ids) => ids.iter().map(|i| i.to_string()).collect(),
            };
            let v = t
                .call(
                    reqwest::Method::POST,
                    "runs/search",
                    json!({"experiment_ids": ids, "filter": filter, "order_by": order_by, "max_results": max}),
                )
                .await?;
            v["runs"].as_array().cloned().unwrap_or_default()
        }
    };
    if common.json {
        print_json(&json!({"runs": runs}));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let info = &r["info"];
            let metrics: Vec<String> = r["data"]["metrics"]
                .as_array()
                .map(|ms| {
                    ms.iter()
                        .take(4)
                        .map(|m| format!("{}={}", s(&m["key"]), s(&m["value"])))
                        .collect()
                })
                .unwrap_or_default();
            vec![
                s(&info["run_id"]),
                s(&info["run_name"]),
                s(&info["experiment_id"]),
                s(&info["status"]),
                time(info["start_time"].as_i64()),
                metrics.join(" "),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["RUN", "NAME", "EXP", "STATUS", "STARTED (UTC)", "METRICS"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
