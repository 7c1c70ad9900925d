//! `keel serve …`: compile ONNX models and manage what a server serves.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::config::Settings;
use crate::lifecycle_cmd::{Common, call_json, enc};
use crate::output::{UsageError, cell as s, print_json, table};

#[derive(Subcommand, Debug)]
pub enum ServeCmd {
    /// Compile an ONNX model and print its signature and compile report:
    /// nodes and latency of the plan before and after optimization, on a
    /// sample batch. Nothing is served; use it to check a model before it
    /// goes into a repository.
    ///   keel serve compile model.onnx
    ///   keel serve compile model.onnx --batch 1 --json
    ///   keel serve compile model.onnx --threads 2   # in-process rows/s on 2 threads
    ///   keel serve compile model.onnx --input request.json --threads 2
    #[command(verbatim_doc_comment)]
    Compile {
        file: PathBuf,
        /// Rows in the sample batch the latencies are measured on.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Also time the plan on the inputs of this V2 inference request
        /// (the JSON body a client would POST to /v2/models/NAME/infer);
        /// with --threads, the throughput is measured on it instead of the
        /// synthetic sample. Tree ensembles take data-dependent paths, so
        /// real rows give the figure a server can approach.
        #[arg(long, value_name = "REQUEST.json")]
        input: Option<PathBuf>,
        /// Timed runs per median (more for steadier figures).
        #[arg(long, default_value_t = 15)]
        runs: usize,
        /// Also measure in-process throughput with this many threads running
        /// the plan at once, `--runs` runs each (the ceiling a server on as
        /// many cores can approach).
        #[arg(long)]
        threads: Option<usize>,
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// List the models a running server serves, with their signatures and
    /// compile reports.
    ///   keel serve models --server http://127.0.0.1:5000
    #[command(verbatim_doc_comment)]
    Models {
        #[command(flatten)]
        common: Common,
    },
    /// (Re)load a model: from the server's --model-repository folder, or a
    /// registered version with --source. New and changed versions compile
    /// and warm before they take traffic.
    ///   keel serve load churn --server URL
    ///   keel serve load churn --source models:/churn@champion --server URL
    #[command(verbatim_doc_comment)]
    Load {
        name: String,
        /// models:/NAME/VERSION or models:/NAME@ALIAS of the model registry.
        #[arg(long)]
        source: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Stop serving a model.
    Unload {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Ask a deployment for one prediction (POST /v1/predict/DEPLOYMENT).
    ///   keel serve predict churn --features '{"age": 41, "plan": 2}' --server URL
    ///   keel serve predict churn --entities '{"user_id": 1001}' --server URL
    #[command(verbatim_doc_comment)]
    Predict {
        deployment: String,
        /// Feature values as a JSON object.
        #[arg(long)]
        features: Option<String>,
        /// Entity keys (for the model's feature service) as a JSON object.
        #[arg(long)]
        entities: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

fn needs_server(settings: &Settings, common: &Common, what: &str) -> Result<()> {
    crate::lifecycle_cmd::needs_server(settings, common, &format!("serve {what}"))
}

fn json_arg(text: &Option<String>, flag: &str) -> Result<Value> {
    match text {
        None => Ok(Value::Null),
        Some(t) => serde_json::from_str(t).map_err(|e| {
            UsageError(format!(
                "{flag}: not JSON ({e}); example: {flag} '{{\"age\": 41}}'"
            ))
            .into()
        }),
    }
}

pub async fn run(settings: &Settings, cmd: ServeCmd) -> Result<ExitCode> {
    match cmd {
        ServeCmd::Compile {
            file,
            batch,
            input,
            runs,
            threads,
            json,
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
            let request = match &input {
                None => None,
                Some(path) => {
                    let body = std::fs::read(path).map_err(|e| {
                        UsageError(format!("--input: cannot read {}: {e}", path.display()))
                    })?;
                    let request = keel_server::inference::InferRequest::parse_json(&body)
                        .map_err(|e| UsageError(format!("--input {}: {e}", path.display())))?;
                    Some(request.inputs)
                }
            };
            let options = keel_serve::plan::CompileOptions {
                sample_batch: batch.max(1),
                timing_runs: runs.clamp(1, 1_000_000),
                ..Default::default()
            };
            let plan = tokio::task::spawn_blocking(move || {
                keel_serve::plan::Plan::compile(&bytes, &options)
            })
            .await?
            .map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
            let plan = std::sync::Arc::new(plan);
            let runs = runs.clamp(1, 1_000_000);
            // The request's inputs, checked and ordered as the server would.
            let given = match request {
                None => None,
                Some(inputs) => {
                    let (inputs, rows) =
                        keel_serve::signature::check_inputs(&plan.signature, inputs)
                            .map_err(|e| UsageError(format!("--input: {e}")))?;
                    let timed = plan.clone();
                    let (inputs, latency_us) = tokio::task::spawn_blocking(move || {
                        let latency = timed.latency_on(&inputs, runs);
                        (inputs, latency)
                    })
                    .await?;
                    let latency_us = latency_us.map_err(|e| UsageError(format!("--input: {e}")))?;
                    Some((inputs, rows, latency_us))
                }
            };
            let throughput = match threads {
                Some(threads) => {
                    let plan = plan.clone();
                    let threads = threads.clamp(1, 1024);
                    let (inputs, batch) = match &given {
                        Some((inputs, rows, _)) => (inputs.clone(), *rows),
                        None => (
                            keel_serve::plan::sample_inputs(&plan.signature, batch.max(1))
                                .map_err(|e| UsageError(format!("{}: {e}", file.display())))?,
                            batch.max(1),
                        ),
                    };
                    let rows_per_s = tokio::task::spawn_blocking(move || {
                        plan.throughput(&inputs, threads, runs)
                    })
                    .await?;
                    let rows_per_s =
                        rows_per_s.map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
                    Some(json!({
                        "threads": threads,
                        "batch": batch,
                        "rows_per_s": rows_per_s,
                        "on": if given.is_some() { "input" } else { "sample" },
                    }))
                }
                None => None,
            };
            let mut v = json!({ "signature": plan.signature, "report": plan.report });
            if let Some((_, rows, latency_us)) = &given {
                v["input"] = json!({ "rows": rows, "latency_us": latency_us });
            }
            if let Some(t) = &throughput {
                v["throughput"] = t.clone();
            }
            if json {
                print_json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let r = &plan.report;
            println!("compiled {} in {:.0} ms", file.display(), r.compile_ms);
            println!("  nodes: {} → {}", r.nodes_before, r.nodes_after);
            println!(
                "  latency at batch {}: {:.1} µs → {:.1} µs ({:.1}× faster; {:.0} rows/s in process)",
                r.sample_batch,
                r.latency_before_us,
                r.latency_after_us,
                r.latency_before_us / r.latency_after_us.max(1e-9),
                r.sample_batch as f64 / (r.latency_after_us.max(1e-9) / 1e6)
            );
            if let Some((_, rows, latency_us)) = &given {
                println!(
                    "  latency on --input ({rows} rows): {latency_us:.1} µs ({:.0} rows/s in process)",
                    *rows as f64 / (latency_us.max(1e-9) / 1e6)
                );
            }
            if let Some(t) = &throughput {
                println!(
                    "  throughput on {} threads at batch {} ({}): {:.0} rows/s",
                    t["threads"],
                    t["batch"],
                    if given.is_some() { "--input" } else { "sample" },
                    t["rows_per_s"].as_f64().unwrap_or(0.0)
                );
            }
            if !r.native_ops.is_empty() {
                println!("  native operators: {}", r.native_ops.join(", "));
            }
            let rows: Vec<Vec<String>> = plan
                .signature
                .inputs
                .iter()
                .map(|t| ("input", t))
                .chain(plan.signature.outputs.iter().map(|t| ("output", t)))
                .map(|(kind, t)| {
                    vec![
                        kind.to_string(),
                        t.name.clone(),
                        t.datatype.name().to_string(),
                        format!("{:?}", t.shape),
                    ]
                })
                .collect();
            print!("{}", table(&["", "NAME", "DATATYPE", "SHAPE"], &rows));
            println!(
                "  batching: {}; NaN and infinity: {}",
                if plan.signature.batched {
                    "yes, along the first axis"
                } else {
                    "no (fixed first dimension)"
                },
                if plan.signature.allow_non_finite {
                    "accepted"
                } else {
                    "refused"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        ServeCmd::Models { common } => {
            needs_server(settings, &common, "models")?;
            let v = call_json(settings, &common, Method::GET, "/v1/serving/models", None).await?;
            if common.json {
                print_json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = v["models"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    let inputs: Vec<String> = m["signature"]["inputs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|i| format!("{} {} {}", s(&i["name"]), s(&i["datatype"]), i["shape"]))
                        .collect();
                    vec![
                        s(&m["name"]),
                        s(&m["version"]),
                        inputs.join("; "),
                        format!(
                            "{:.1} µs",
                            m["report"]["latency_after_us"].as_f64().unwrap_or(0.0)
                        ),
                        s(&m["max_batch_size"]),
                        s(&m["source"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "MODEL",
                        "VERSION",
                        "INPUTS",
                        "LATENCY@64",
                        "MAX BATCH",
                        "SOURCE"
                    ],
                    &rows
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        ServeCmd::Load {
            name,
            source,
            common,
        } => {
            needs_server(settings, &common, "load")?;
            let body = source
                .map(|s| json!({ "parameters": { "source": s } }))
                .unwrap_or(json!({}));
            let path = format!("/v2/repository/models/{}/load", enc(&name));
            crate::lifecycle_cmd::call(
                settings,
                &common,
                Method::POST,
                &path,
                Some(body.to_string().into_bytes()),
            )
            .await?;
            eprintln!("loaded {name}");
            Ok(ExitCode::SUCCESS)
        }
        ServeCmd::Unload { name, common } => {
            needs_server(settings, &common, "unload")?;
            let path = format!("/v2/repository/models/{}/unload", enc(&name));
            crate::lifecycle_cmd::call(settings, &common, Method::POST, &path, None).await?;
            eprintln!("unloaded {name}");
            Ok(ExitCode::SUCCESS)
        }
        ServeCmd::Predict {
            deployment,
            features,
            entities,
            common,
        } => {
            needs_server(settings, &common, "predict")?;
            let body = json!({
                "features": json_arg(&features, "--features")?,
                "entities": json_arg(&entities, "--entities")?,
            });
            let path = format!("/v1/predict/{}", enc(&deployment));
            let v = call_json(settings, &common, Method::POST, &path, Some(body)).await?;
            if common.json {
                print_json(&v);
            } else {
                println!(
                    "{} (model {} version {}, decision {})",
                    v["outputs"],
                    s(&v["model"]),
                    s(&v["model_version"]),
                    s(&v["decision_id"])
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
