//! `keel models …`: the model store from the command line. Every command is
//! one request of the registry or model-store API, sent to `--server` or
//! answered in this process over the data directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::config::Settings;
use crate::lifecycle_cmd::{Common, call, call_json, enc};
use crate::output::{UsageError, cell as s, print_json, table, time};

#[derive(Subcommand, Debug)]
pub enum ModelsCmd {
    /// List registered models, optionally with an MLflow filter.
    ///
    /// Example: keel models list --filter "name LIKE 'churn%'"
    #[command(verbatim_doc_comment)]
    List {
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// A registered model (its versions and aliases), or one version with
    /// its files, signature, dependencies and checkpoints.
    ///
    /// Examples: keel models show churn
    ///           keel models show churn/3
    ///           keel models show churn@champion --json
    #[command(verbatim_doc_comment)]
    Show {
        /// NAME, NAME/VERSION or NAME@ALIAS.
        model: String,
        #[command(flatten)]
        common: Common,
    },
    /// Move an alias to a version (recorded with who and when).
    ///
    /// Example: keel models alias churn champion 3
    #[command(verbatim_doc_comment)]
    Alias {
        name: String,
        alias: String,
        /// The version; leave out with --delete.
        version: Option<String>,
        /// Remove the alias instead.
        #[arg(long)]
        delete: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Who moved which alias of a model (or which version into which
    /// stage), and when.
    AliasHistory {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// A version's signature (JSON), or replace it with one from a file in
    /// MLflow's shape.
    ///
    /// Examples:
    ///   keel models signature churn@champion
    ///   keel models signature churn/3 --set signature.json
    ///     where signature.json is {"inputs": [{"name": "tenure", "type": "double"}],
    ///                              "outputs": [{"type": "long"}]}
    #[command(verbatim_doc_comment)]
    Signature {
        version: String,
        #[arg(long, value_name = "FILE")]
        set: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Re-read a version's files and compare each with its SHA-256 from
    /// registration; exits 1 when any changed, went missing or was added.
    ///
    /// Example: keel models verify churn/3
    #[command(verbatim_doc_comment)]
    Verify {
        /// NAME/VERSION or NAME@ALIAS.
        version: String,
        #[command(flatten)]
        common: Common,
    },
    /// A version's model card as Markdown (default), HTML or JSON.
    ///
    /// Examples: keel models card churn@champion
    ///           keel models card churn/3 --format html -o card.html
    #[command(verbatim_doc_comment)]
    Card {
        version: String,
        #[arg(long, default_value = "md", value_parser = ["md", "html", "json"])]
        format: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Write the card fields only people know: intended_use,
    /// out_of_scope_use, training_data_summary, evaluation_notes, fairness,
    /// limitations, ethical_considerations, owners, contacts.
    ///
    /// Examples:
    ///   keel models card-edit churn/3 --set intended_use="Weekly retention call list"
    ///   keel models card-edit churn/3 --set owners=ana@example.com,bo@example.com
    ///   keel models card-edit churn/3 --unset limitations
    #[command(verbatim_doc_comment)]
    CardEdit {
        version: String,
        /// FIELD=VALUE; owners and contacts take a comma-separated list.
        #[arg(long, value_name = "FIELD=VALUE")]
        set: Vec<String>,
        /// Remove a field.
        #[arg(long, value_name = "FIELD")]
        unset: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Where a version (or any node) came from, or what came from it.
    ///
    /// Examples:
    ///   keel models lineage churn/3 --upstream
    ///   keel models lineage dataset:churn-events@3f2a --downstream
    ///   keel models lineage churn/3 --both --format svg -o lineage.svg
    ///   keel models lineage churn/3 --format openlineage
    #[command(verbatim_doc_comment)]
    Lineage {
        /// NAME/VERSION, NAME@ALIAS or a node key KIND:ID.
        node: String,
        #[arg(long, conflicts_with_all = ["downstream", "both"])]
        upstream: bool,
        #[arg(long, conflicts_with = "both")]
        downstream: bool,
        #[arg(long)]
        both: bool,
        #[arg(long, default_value_t = 10)]
        depth: u32,
        #[arg(long, default_value = "table", value_parser = ["table", "json", "svg", "openlineage"])]
        format: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// List a version's training checkpoints, or add one.
    ///
    /// Examples:
    ///   keel models checkpoints churn/3
    ///   keel models checkpoints churn/3 --add 1200 --metric val_loss=0.31 --artifact s3://ckpt/1200
    #[command(verbatim_doc_comment)]
    Checkpoints {
        version: String,
        /// Add a checkpoint at this step.
        #[arg(long, value_name = "STEP")]
        add: Option<i64>,
        #[arg(long, value_name = "NAME=VALUE", requires = "add")]
        metric: Vec<String>,
        #[arg(long, requires = "add")]
        artifact: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// List the quality-suite results attached to a version (by
    /// `keel test run` with a registry model): the latest per suite.
    ///
    /// Examples:
    ///   keel models suites credit/3
    ///   keel models suites credit@candidate --json
    #[command(verbatim_doc_comment)]
    Suites {
        version: String,
        #[command(flatten)]
        common: Common,
    },
    /// Show or set a model's retraining cadence: a cron schedule and
    /// trigger conditions, delivered as events to a lifecycle.
    ///
    /// Examples:
    ///   keel models retrain churn
    ///   keel models retrain churn --lifecycle churn-model --schedule "0 3 * * 1" \
    ///       --trigger drift:tenure:0.2 --trigger metric_decay:auc:0.05 --trigger data_arrival
    ///   keel models retrain churn --fire drift --on tenure --value 0.31
    #[command(verbatim_doc_comment)]
    Retrain {
        name: String,
        #[arg(long)]
        lifecycle: Option<String>,
        /// Five-field cron, UTC.
        #[arg(long)]
        schedule: Option<String>,
        /// KIND[:ON[:THRESHOLD]], KIND one of drift, data_arrival, metric_decay.
        #[arg(long)]
        trigger: Vec<String>,
        /// The lifecycle instance key (default: the model name).
        #[arg(long)]
        key: Option<String>,
        /// The event sent (default: retrain).
        #[arg(long)]
        event: Option<String>,
        /// Report an observation of this kind; fires when a trigger holds.
        #[arg(long, conflicts_with_all = ["lifecycle", "schedule", "trigger"])]
        fire: Option<String>,
        #[arg(long, requires = "fire")]
        on: Option<String>,
        #[arg(long, requires = "fire")]
        value: Option<f64>,
        /// Remove the policy.
        #[arg(long, conflicts_with_all = ["lifecycle", "schedule", "trigger", "fire"])]
        delete: bool,
        #[command(flatten)]
        common: Common,
    },
}

/// `churn/3` → (`churn`, `3`); `churn@champion` → (`churn`, `@champion`).
fn version_ref(text: &str) -> Result<(String, String)> {
    if let Some((name, alias)) = text.split_once('@') {
        if !name.is_empty() && !alias.is_empty() {
            return Ok((name.to_owned(), format!("@{alias}")));
        }
    } else if let Some((name, v)) = text.rsplit_once('/')
        && !name.is_empty()
        && v.parse::<i64>().is_ok()
    {
        return Ok((name.to_owned(), v.to_owned()));
    }
    Err(UsageError(format!(
        "`{text}` names no version; write NAME/VERSION (churn/3) or NAME@ALIAS (churn@champion)"
    ))
    .into())
}

fn version_path(text: &str) -> Result<(String, String, String)> {
    let (name, v) = version_ref(text)?;
    let path = format!("/v1/models/{}/versions/{}", enc(&name), enc(&v));
    Ok((name, v, path))
}

fn write_or_print(output: &Option<PathBuf>, body: &[u8]) -> Result<()> {
    match output {
        Some(file) => {
            std::fs::write(file, body).with_context(|| format!("writing {}", file.display()))?;
            eprintln!("wrote {}", file.display());
        }
        None => print!("{}", String::from_utf8_lossy(body)),
    }
    Ok(())
}

pub async fn run(settings: &Settings, cmd: ModelsCmd) -> Result<ExitCode> {
    match cmd {
        ModelsCmd::List { filter, common } => {
            let mut path = "/api/2.0/mlflow/registered-models/search?max_results=1000".to_owned();
            if let Some(f) = &filter {
                path.push_str(&format!("&filter={}", enc(f)));
            }
            let v = call_json(settings, &common, Method::GET, &path, None).await?;
            if common.json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["registered_models"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let latest = m["latest_versions"]
                            .as_array()
                            .and_then(|l| {
                                l.iter()
                                    .filter_map(|x| x["version"].as_str()?.parse::<i64>().ok())
                                    .max()
                            })
                            .map(|x| x.to_string())
                            .unwrap_or_default();
                        let aliases = m["aliases"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|a| format!("@{}→{}", s(&a["alias"]), s(&a["version"])))
                            .collect::<Vec<_>>()
                            .join(" ");
                        vec![
                            s(&m["name"]),
                            latest,
                            aliases,
                            time(m["last_updated_timestamp"].as_i64()),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["model", "latest", "aliases", "updated (UTC)"], &rows)
                );
            }
        }
        ModelsCmd::Show { model, common } => {
            if model.contains('@') || model.contains('/') {
                let (_, _, path) = version_path(&model)?;
                let v = call_json(settings, &common, Method::GET, &path, None).await?;
                if common.json {
                    print_json(&v);
                } else {
                    let mv = &v["model_version"];
                    println!(
                        "{} version {}  ({})",
                        s(&mv["name"]),
                        s(&mv["version"]),
                        s(&mv["current_stage"])
                    );
                    println!("registered: {}", time(mv["creation_timestamp"].as_i64()));
                    println!("source:     {}", s(&mv["source"]));
                    if !s(&mv["run_id"]).is_empty() {
                        println!("run:        {}", s(&mv["run_id"]));
                    }
                    if let Some(a) = mv["aliases"].as_array() {
                        println!(
                            "aliases:    {}",
                            a.iter().map(s).collect::<Vec<_>>().join(", ")
                        );
                    }
                    println!("lineage:    {}", s(&v["lineage_node"]));
                    if let Some(sig) = v["signature"].as_object() {
                        for part in ["inputs", "outputs"] {
                            let cols: Vec<String> = sig
                                .get(part)
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .map(|c| {
                                    let shape = c
                                        .get("shape")
                                        .filter(|x| !x.is_null())
                                        .map(|x| x.to_string())
                                        .unwrap_or_default();
                                    format!(
                                        "{}:{}{shape}",
                                        c["name"].as_str().unwrap_or("_"),
                                        s(&c["type"])
                                    )
                                })
                                .collect();
                            if !cols.is_empty() {
                                println!(
                                    "{part:<11} {}  (from {})",
                                    cols.join(", "),
                                    s(&sig["source"])
                                );
                            }
                        }
                    }
                    if let Some(d) = v["dependencies"].as_object() {
                        let flavors: Vec<String> = d["flavors"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|f| {
                                let name = f["name"].as_str()?;
                                Some(match f["version"].as_str() {
                                    Some(v) => format!("{name} {v}"),
                                    None => name.to_owned(),
                                })
                            })
                            .collect();
                        println!(
                            "python:     {}  mlflow {}",
                            s(&d["python_version"]),
                            s(&d["mlflow_version"])
                        );
                        println!("flavors:    {}", flavors.join(", ").trim());
                        if let Some(c) = d.get("git_commit") {
                            println!(
                                "code:       {} {}",
                                s(c),
                                d.get("repository").map(s).unwrap_or_default()
                            );
                        }
                    }
                    let files = v["files"].as_array().cloned().unwrap_or_default();
                    if !files.is_empty() {
                        let rows: Vec<Vec<String>> = files
                            .iter()
                            .map(|f| vec![s(&f["path"]), s(&f["size"]), s(&f["sha256"])])
                            .collect();
                        println!();
                        print!("{}", table(&["file", "bytes", "sha256"], &rows));
                    }
                    let cps = v["checkpoints"].as_array().cloned().unwrap_or_default();
                    if !cps.is_empty() {
                        println!(
                            "checkpoints: {}",
                            cps.iter()
                                .map(|c| s(&c["step"]))
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                }
            } else {
                let path = format!("/api/2.0/mlflow/registered-models/get?name={}", enc(&model));
                let m = call_json(settings, &common, Method::GET, &path, None).await?;
                let path = format!(
                    "/api/2.0/mlflow/model-versions/search?max_results=200&filter={}",
                    enc(&format!("name = '{}'", model.replace('\'', "\\'")))
                );
                let vs = call_json(settings, &common, Method::GET, &path, None).await?;
                if common.json {
                    print_json(
                        &json!({"registered_model": m["registered_model"], "model_versions": vs["model_versions"]}),
                    );
                } else {
                    let rm = &m["registered_model"];
                    println!("{}  {}", s(&rm["name"]), s(&rm["description"]));
                    for a in rm["aliases"].as_array().into_iter().flatten() {
                        println!("@{} → version {}", s(&a["alias"]), s(&a["version"]));
                    }
                    let rows: Vec<Vec<String>> = vs["model_versions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| {
                            vec![
                                s(&v["version"]),
                                s(&v["current_stage"]),
                                time(v["creation_timestamp"].as_i64()),
                                s(&v["run_id"]),
                                s(&v["source"]),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(
                            &["version", "stage", "registered (UTC)", "run", "source"],
                            &rows
                        )
                    );
                }
            }
        }
        ModelsCmd::Alias {
            name,
            alias,
            version,
            delete,
            common,
        } => {
            let body = json!({"name": name, "alias": alias, "version": version});
            if delete {
                call(
                    settings,
                    &common,
                    Method::DELETE,
                    "/api/2.0/mlflow/registered-models/alias",
                    Some(body.to_string().into_bytes()),
                )
                .await?;
                println!("removed @{alias} from {name}");
            } else {
                let Some(v) = version else {
                    return Err(UsageError(
                        "give the VERSION the alias points at, or --delete".into(),
                    )
                    .into());
                };
                call(
                    settings,
                    &common,
                    Method::POST,
                    "/api/2.0/mlflow/registered-models/alias",
                    Some(body.to_string().into_bytes()),
                )
                .await?;
                println!("{name}@{alias} → version {v}");
            }
        }
        ModelsCmd::AliasHistory { name, common } => {
            let path = format!("/v1/models/{}/aliases/history", enc(&name));
            let v = call_json(settings, &common, Method::GET, &path, None).await?;
            if common.json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["history"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|h| {
                        let from = h["previous_version"]
                            .as_i64()
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "—".into());
                        let to = h["version"]
                            .as_i64()
                            .map(|x| x.to_string())
                            .unwrap_or_else(|| "removed".into());
                        let (what, moved) = if h["kind"] == "stage" {
                            (format!("stage {}", s(&h["alias"])), format!("version {to}"))
                        } else {
                            (format!("@{}", s(&h["alias"])), format!("{from} → {to}"))
                        };
                        vec![
                            time(h["time"].as_i64()),
                            what,
                            moved,
                            s(&h["actor"]),
                            s(&h["note"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["time (UTC)", "alias or stage", "version", "by", "note"],
                        &rows
                    )
                );
            }
        }
        ModelsCmd::Signature {
            version,
            set,
            common,
        } => {
            let (_, _, path) = version_path(&version)?;
            let path = format!("{path}/signature");
            let reply = match set {
                Some(file) => {
                    let body = std::fs::read(&file)
                        .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
                    call(settings, &common, Method::PUT, &path, Some(body)).await?
                }
                None => call(settings, &common, Method::GET, &path, None).await?,
            };
            let v: Value = serde_json::from_slice(&reply.body).context("the answer is not JSON")?;
            print_json(&v["signature"]);
        }
        ModelsCmd::Verify { version, common } => {
            let (_, _, path) = version_path(&version)?;
            let v = call_json(
                settings,
                &common,
                Method::GET,
                &format!("{path}/verify"),
                None,
            )
            .await?;
            if common.json {
                print_json(&v);
            } else if v["verifiable"].as_bool() != Some(true) {
                println!(
                    "{version}: its files are not in Keel's artifact store, so no digests were recorded"
                );
            } else {
                for f in v["files"].as_array().into_iter().flatten() {
                    println!("{:<8} {}", s(&f["status"]), s(&f["path"]));
                }
                for f in v["unregistered_files"].as_array().into_iter().flatten() {
                    println!("{:<8} {}", "added", s(f));
                }
                println!(
                    "{version}: {}",
                    if v["ok"].as_bool() == Some(true) {
                        "every file matches its digest from registration"
                    } else {
                        "CHANGED since registration"
                    }
                );
            }
            if v["ok"].as_bool() != Some(true) {
                return Ok(ExitCode::from(1));
            }
        }
        ModelsCmd::Card {
            version,
            format,
            output,
            common,
        } => {
            let (_, _, path) = version_path(&version)?;
            let reply = call(
                settings,
                &common,
                Method::GET,
                &format!("{path}/card?format={format}"),
                None,
            )
            .await?;
            write_or_print(&output, &reply.body)?;
        }
        ModelsCmd::CardEdit {
            version,
            set,
            unset,
            common,
        } => {
            let (_, _, path) = version_path(&version)?;
            let mut fields = Map::new();
            for item in &set {
                let (k, val) = item
                    .split_once('=')
                    .ok_or_else(|| UsageError(format!("--set {item}: write FIELD=VALUE")))?;
                let value = if k == "owners" || k == "contacts" {
                    json!(
                        val.split(',')
                            .map(str::trim)
                            .filter(|x| !x.is_empty())
                            .collect::<Vec<_>>()
                    )
                } else {
                    json!(val)
                };
                fields.insert(k.to_owned(), value);
            }
            for k in unset {
                fields.insert(k, Value::Null);
            }
            if fields.is_empty() {
                return Err(UsageError("give --set FIELD=VALUE or --unset FIELD".into()).into());
            }
            let v = call_json(
                settings,
                &common,
                Method::PATCH,
                &format!("{path}/card"),
                Some(Value::Object(fields)),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                println!(
                    "card of {version} updated by {}",
                    s(&v["edited"]["updated_by"])
                );
            }
        }
        ModelsCmd::Lineage {
            node,
            upstream: _,
            downstream,
            both,
            depth,
            format,
            output,
            common,
        } => {
            let key = if node.contains(':') {
                node.clone()
            } else {
                let (name, v) = version_ref(&node)?;
                let v = if let Some(alias) = v.strip_prefix('@') {
                    let path = format!(
                        "/api/2.0/mlflow/registered-models/alias?name={}&alias={}",
                        enc(&name),
                        enc(alias)
                    );
                    let mv = call_json(settings, &common, Method::GET, &path, None).await?;
                    s(&mv["model_version"]["version"])
                } else {
                    v
                };
                format!("model_version:{name}/{v}")
            };
            let direction = if both {
                "both"
            } else if downstream {
                "downstream"
            } else {
                "upstream"
            };
            let api_format = if format == "table" {
                "json"
            } else {
                format.as_str()
            };
            let path = format!(
                "/v1/lineage?node={}&direction={direction}&depth={depth}&format={api_format}",
                enc(&key)
            );
            let reply = call(settings, &common, Method::GET, &path, None).await?;
            if format != "table" || common.json {
                write_or_print(&output, &reply.body)?;
                if output.is_none() && format != "svg" {
                    println!();
                }
            } else {
                let g: Value =
                    serde_json::from_slice(&reply.body).context("the answer is not JSON")?;
                let rows: Vec<Vec<String>> = g["edges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| vec![s(&e["from"]), s(&e["relation"]), s(&e["to"])])
                    .collect();
                println!(
                    "{direction} of {key}: {} node(s)",
                    g["nodes"].as_array().map_or(0, Vec::len)
                );
                print!("{}", table(&["from", "relation", "to"], &rows));
                if g["truncated"].as_bool() == Some(true) {
                    println!("(stopped at depth {depth}; raise --depth to see more)");
                }
            }
        }
        ModelsCmd::Checkpoints {
            version,
            add,
            metric,
            artifact,
            common,
        } => {
            let (_, _, path) = version_path(&version)?;
            let path = format!("{path}/checkpoints");
            if let Some(step) = add {
                let mut metrics = Map::new();
                for m in &metric {
                    let (k, x) = m
                        .split_once('=')
                        .ok_or_else(|| UsageError(format!("--metric {m}: write NAME=VALUE")))?;
                    let x: f64 = x
                        .parse()
                        .map_err(|_| UsageError(format!("--metric {m}: `{x}` is not a number")))?;
                    metrics.insert(k.to_owned(), json!(x));
                }
                let body = json!({"step": step, "metrics": metrics, "artifact_uri": artifact});
                let v = call_json(settings, &common, Method::POST, &path, Some(body)).await?;
                if common.json {
                    print_json(&v);
                } else {
                    println!("checkpoint at step {step} recorded for {version}");
                }
            } else {
                let v = call_json(settings, &common, Method::GET, &path, None).await?;
                if common.json {
                    print_json(&v);
                } else {
                    let rows: Vec<Vec<String>> = v["checkpoints"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            let m = c["metrics"]
                                .as_object()
                                .map(|m| {
                                    m.iter()
                                        .map(|(k, x)| format!("{k}={x}"))
                                        .collect::<Vec<_>>()
                                        .join(" ")
                                })
                                .unwrap_or_default();
                            vec![s(&c["step"]), m, s(&c["artifact_uri"])]
                        })
                        .collect();
                    print!("{}", table(&["step", "metrics", "artifact"], &rows));
                }
            }
        }
        ModelsCmd::Suites { version, common } => {
            let (_, _, path) = version_path(&version)?;
            let v = call_json(
                settings,
                &common,
                Method::GET,
                &format!("{path}/suites"),
                None,
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["suites"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let checks = r["result"]["checks"].as_array();
                        let total = checks.map_or(0, Vec::len);
                        let passing = checks
                            .map_or(0, |c| c.iter().filter(|c| c["status"] == "pass").count());
                        vec![
                            s(&r["suite"]),
                            if r["passed"] == true {
                                "PASSED"
                            } else {
                                "FAILED"
                            }
                            .to_string(),
                            format!("{passing}/{total}"),
                            r["created_at"]
                                .as_i64()
                                .map(keel_core::time::rfc3339_millis)
                                .unwrap_or_default(),
                            s(&r["created_by"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["suite", "verdict", "checks passing", "at", "by"], &rows)
                );
            }
        }
        ModelsCmd::Retrain {
            name,
            lifecycle,
            schedule,
            trigger,
            key,
            event,
            fire,
            on,
            value,
            delete,
            common,
        } => {
            let path = format!("/v1/models/{}/retraining", enc(&name));
            let v = if delete {
                call_json(settings, &common, Method::DELETE, &path, None).await?;
                println!("retraining policy of {name} removed");
                return Ok(ExitCode::SUCCESS);
            } else if let Some(kind) = fire {
                let body = json!({"kind": kind, "on": on, "value": value});
                let v = call_json(
                    settings,
                    &common,
                    Method::POST,
                    &format!("{path}/trigger"),
                    Some(body),
                )
                .await?;
                if !common.json {
                    if v["fired"].as_bool() == Some(true) {
                        let d = &v["delivered"];
                        println!(
                            "fired: `{}` sent to {}/{}",
                            s(&d["event"]),
                            s(&d["lifecycle"]),
                            s(&d["key"])
                        );
                    } else {
                        println!("not fired: {}", s(&v["reason"]));
                    }
                }
                v
            } else if lifecycle.is_some() || schedule.is_some() || !trigger.is_empty() {
                let Some(lifecycle) = lifecycle else {
                    return Err(UsageError(
                        "--lifecycle: name the lifecycle that retrains the model".into(),
                    )
                    .into());
                };
                let mut triggers = Vec::new();
                for t in &trigger {
                    let mut parts = t.splitn(3, ':');
                    let kind = parts.next().unwrap_or_default();
                    let on = parts.next().filter(|x| !x.is_empty());
                    let threshold = match parts.next() {
                        Some(x) => Some(x.parse::<f64>().map_err(|_| {
                            UsageError(format!("--trigger {t}: threshold `{x}` is not a number"))
                        })?),
                        None => None,
                    };
                    triggers.push(json!({"kind": kind, "on": on, "threshold": threshold}));
                }
                let mut body =
                    json!({"lifecycle": lifecycle, "schedule": schedule, "triggers": triggers});
                if let Some(k) = key {
                    body["key"] = json!(k);
                }
                if let Some(e) = event {
                    body["event"] = json!(e);
                }
                let v = call_json(settings, &common, Method::PUT, &path, Some(body)).await?;
                if !common.json {
                    println!(
                        "retraining policy of {name} set; next scheduled run {}",
                        v["next_due_at"].as_str().unwrap_or("— (triggers only)")
                    );
                }
                v
            } else {
                let v = call_json(settings, &common, Method::GET, &path, None).await?;
                if !common.json {
                    let p = &v["policy"];
                    println!(
                        "lifecycle: {}  key: {}  event: {}",
                        s(&p["lifecycle"]),
                        p["key"].as_str().unwrap_or(&name),
                        s(&p["event"])
                    );
                    println!(
                        "schedule:  {}  next {}",
                        p["schedule"].as_str().unwrap_or("—"),
                        v["next_due_at"].as_str().unwrap_or("—")
                    );
                    for t in p["triggers"].as_array().into_iter().flatten() {
                        println!(
                            "trigger:   {} {} {}",
                            s(&t["kind"]),
                            s(&t["on"]),
                            s(&t["threshold"])
                        );
                    }
                    println!(
                        "last fired: {}",
                        v["last_fired"]
                            .as_i64()
                            .map(|t| time(Some(t)))
                            .unwrap_or_else(|| "never".into())
                    );
                }
                v
            };
            if common.json {
                print_json(&v);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_refs() {
        assert_eq!(
            version_ref("churn/3").unwrap(),
            ("churn".into(), "3".into())
        );
        assert_eq!(
            version_ref("churn@champion").unwrap(),
            ("churn".into(), "@champion".into())
        );
        assert!(version_ref("churn").is_err());
        assert!(version_ref("churn/x").is_err());
        assert!(version_ref("@x").is_err());
    }
}
