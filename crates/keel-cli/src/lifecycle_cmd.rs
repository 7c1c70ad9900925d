//! `keel lifecycle …`: every command is one request of the lifecycle API,
//! sent to a running server (`--server URL`) or answered in this process by
//! the same router over the data directory, so `--json` output is identical
//! either way.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use axum::body::Body;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::config::Settings;
use crate::output::{UsageError, print_json, table, time};

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Talk to a running Keel server instead of the data directory.
    #[arg(long, env = "KEEL_SERVER")]
    pub server: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum LifecycleCmd {
    /// Validate a definition file and apply it (a new version if it changed).
    ///
    /// Every problem is reported at once, with its line and column.
    /// Example: keel lifecycle apply churn.yaml
    #[command(verbatim_doc_comment)]
    Apply {
        /// The definition's YAML file.
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Start an instance of a lifecycle under your key (idempotent).
    ///
    /// Example: keel lifecycle start churn-model customer-42 --data '{"model": "churn"}'
    #[command(verbatim_doc_comment)]
    Start {
        /// The lifecycle (definition name).
        lifecycle: String,
        /// Your key for the instance; starting it again changes nothing.
        key: String,
        /// The instance's initial context (JSON object).
        #[arg(long)]
        data: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Send an event to one key, a key prefix or every instance in a state.
    ///
    /// Examples:
    ///   keel lifecycle send data_arrived --key customer-42
    ///   keel lifecycle send suite_passed --key customer-42 --data '{"auc": 0.91}'
    ///   keel lifecycle send drift_detected --lifecycle churn-model --state production
    ///   keel lifecycle send retrain_due --lifecycle churn-model --prefix eu-
    /// Without --lifecycle, a key's event goes to every lifecycle that has an
    /// instance with that key and uses the event.
    #[command(verbatim_doc_comment)]
    Send {
        /// The event's name, as the definition's `on:` uses it.
        event: String,
        /// The instance's key (yours: a customer id, a model name).
        #[arg(long, conflicts_with_all = ["prefix", "state"])]
        key: Option<String>,
        /// Every instance of --lifecycle whose key starts with this.
        #[arg(long, conflicts_with = "state", requires = "lifecycle")]
        prefix: Option<String>,
        /// Every instance of --lifecycle in this state.
        #[arg(long, requires = "lifecycle")]
        state: Option<String>,
        /// The lifecycle (definition name) the event is for.
        #[arg(long)]
        lifecycle: Option<String>,
        /// The event's data (JSON).
        #[arg(long)]
        data: Option<String>,
        /// Sending again with the same key applies the event once.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Show one instance: state, version, context, timers, actions.
    ///
    /// Example: keel lifecycle get churn-model customer-42 --json
    #[command(verbatim_doc_comment)]
    Get {
        lifecycle: String,
        key: String,
        #[command(flatten)]
        common: Common,
    },
    /// An instance's history, newest first: event, transition, time.
    History {
        lifecycle: String,
        key: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        common: Common,
    },
    /// List instances, by state and key prefix.
    ///
    /// Example: keel lifecycle list churn-model --state production --json
    #[command(verbatim_doc_comment)]
    List {
        lifecycle: String,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after this key (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Instances per state of one lifecycle, or the engine's figures.
    Stats {
        lifecycle: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// A lifecycle's graph: JSON, or an SVG picture with --svg.
    ///
    /// Example: keel lifecycle graph churn-model --svg -o churn.svg
    #[command(verbatim_doc_comment)]
    Graph {
        lifecycle: String,
        #[arg(long)]
        svg: bool,
        /// Highlight this instance's state (SVG).
        #[arg(long)]
        key: Option<String>,
        /// Write to a file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// List the lifecycle definitions.
    Definitions {
        #[command(flatten)]
        common: Common,
    },
}

pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Path segments keep `/` (keys may contain it) but escape the rest.
pub fn enc_path(s: &str) -> String {
    s.split('/').map(enc).collect::<Vec<_>>().join("/")
}

pub fn parse_json(field: &str, text: Option<&str>) -> Result<Value> {
    match text {
        None => Ok(Value::Null),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| UsageError(format!("--{field} is not valid JSON: {e}")).into()),
    }
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: String,
}

/// Who the changes are made by: `KEEL_USER`, else `USER`.
fn user() -> Option<String> {
    std::env::var("KEEL_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// One API request, to `--server` or answered in this process.
pub async fn call(
    settings: &Settings,
    common: &Common,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Reply> {
    let server = common.server.clone().or_else(|| settings.server.clone());
    let reply = match server {
        Some(base) => {
            let base = base.trim_end_matches('/');
            let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
            if let Some(u) = user() {
                req = req.header("x-keel-user", u);
            }
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b);
            }
            let resp = req
                .send()
                .await
                .with_context(|| format!("cannot reach the server at {base}"))?;
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = resp
                .bytes()
                .await
                .context("reading the server's answer")?
                .to_vec();
            Reply {
                status,
                body,
                content_type,
            }
        }
        None => {
            let state = crate::local_state(settings).await?;
            let engine = state.lifecycle.clone();
            let req = axum::http::Request::builder()
                .method(
                    axum::http::Method::from_bytes(method.as_str().as_bytes()).context("method")?,
                )
                .uri(path)
                .header("content-type", "application/json")
                .header("x-keel-user", user().unwrap_or_else(|| "anonymous".into()))
                .body(Body::from(body.unwrap_or_default()))
                .context("building the request")?;
            let resp = keel_server::app(state)
                .oneshot(req)
                .await
                .context("local request")?;
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .context("reading the answer")?
                .to_vec();
            if let Some(e) = engine {
                e.shutdown().await;
            }
            Reply {
                status,
                body,
                content_type,
            }
        }
    };
    if reply.status >= 400 {
        let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let err = &v["error"];
        // Keel's `{"error": {"message"}}`, MLflow's `{"message"}` or V2's
        // `{"error": "…"}`.
        let mut msg = err["message"]
            .as_str()
            .or(v["message"].as_str())
            .or(err.as_str())
            .unwrap_or("request failed")
            .to_owned();
        // A definition's problems carry line and column; others (a
        // signature's) are already listed in the message.
        if let Some(problems) = err["problems"]
            .as_array()
            .filter(|p| p.iter().all(|x| x.get("line").is_some()))
        {
            msg = problems
                .iter()
                .map(|p| {
                    let file = p["file"]
                        .as_str()
                        .map(|f| format!("{f}:"))
                        .unwrap_or_default();
                    let path = p["path"].as_str().unwrap_or("");
                    let path = if path.is_empty() {
                        String::new()
                    } else {
                        format!(" {path}:")
                    };
                    format!(
                        "{file}{}:{}:{path} {}",
                        p["line"],
                        p["column"],
                        p["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            msg = format!("the definition has {} problem(s):\n{msg}", problems.len());
        }
        if reply.status < 500 {
            return Err(UsageError(msg).into());
        }
        bail!("{msg}");
    }
    Ok(reply)
}

/// Commands that only a running server can answer: a usage error without
/// `--server` (or `KEEL_SERVER`). `command` is e.g. `"serve load"`.
pub fn needs_server(settings: &Settings, common: &Common, command: &str) -> Result<()> {
    if common.server.is_none() && settings.server.is_none() {
        return Err(UsageError(format!(
            "keel {command} talks to a running server: pass --server URL (or set KEEL_SERVER)"
        ))
        .into());
    }
    Ok(())
}

pub async fn call_json(
    settings: &Settings,
    common: &Common,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let body = body.map(|b| b.to_string().into_bytes());
    let reply = call(settings, common, method, path, body).await?;
    serde_json::from_slice(&reply.body).context("the answer is not JSON")
}

pub async fn run(settings: &Settings, cmd: LifecycleCmd) -> Result<ExitCode> {
    match cmd {
        LifecycleCmd::Apply { file, common } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?;
            let body = json!({"definition": text});
            let v = call_json(
                settings,
                &common,
                Method::POST,
                "/v1/lifecycles",
                Some(body),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else if v["changed"].as_bool() == Some(true) {
                println!(
                    "applied {} version {}",
                    v["lifecycle"].as_str().unwrap_or(""),
                    v["version"]
                );
            } else {
                println!(
                    "{} version {} is unchanged",
                    v["lifecycle"].as_str().unwrap_or(""),
                    v["version"]
                );
            }
        }
        LifecycleCmd::Start {
            lifecycle,
            key,
            data,
            idempotency_key,
            common,
        } => {
            let body = json!({"key": key, "data": parse_json("data", data.as_deref())?, "idempotency_key": idempotency_key});
            let path = format!("/v1/lifecycles/{}/instances", enc(&lifecycle));
            let v = call_json(settings, &common, Method::POST, &path, Some(body)).await?;
            if common.json {
                print_json(&v);
            } else {
                let i = &v["instance"];
                let verb = if v["created"].as_bool() == Some(true) {
                    "started"
                } else {
                    "already running:"
                };
                println!(
                    "{verb} {}/{} in state {} (version {})",
                    lifecycle,
                    key,
                    i["state"].as_str().unwrap_or(""),
                    i["version"]
                );
            }
        }
        LifecycleCmd::Send {
            event,
            key,
            prefix,
            state,
            lifecycle,
            data,
            idempotency_key,
            common,
        } => {
            if key.is_none() && prefix.is_none() && state.is_none() {
                return Err(UsageError("give --key, --prefix or --state".into()).into());
            }
            let body = json!({
                "event": event, "lifecycle": lifecycle, "key": key, "prefix": prefix, "state": state,
                "data": parse_json("data", data.as_deref())?, "idempotency_key": idempotency_key,
            });
            let v = call_json(settings, &common, Method::POST, "/v1/events", Some(body)).await?;
            if common.json {
                print_json(&v);
            } else {
                for m in v["moved"].as_array().into_iter().flatten() {
                    println!(
                        "{}/{}: {} → {}",
                        m["lifecycle"].as_str().unwrap_or(""),
                        m["key"].as_str().unwrap_or(""),
                        m["from"].as_str().unwrap_or(""),
                        m["to"].as_str().unwrap_or("")
                    );
                }
                for r in v["rejected"].as_array().into_iter().flatten() {
                    println!(
                        "{}/{}: not applied: {}",
                        r["lifecycle"].as_str().unwrap_or(""),
                        r["key"].as_str().unwrap_or(""),
                        r["reason"].as_str().unwrap_or("")
                    );
                }
                println!(
                    "{} matched, {} applied, {} duplicate(s)",
                    v["matched"], v["applied"], v["duplicates"]
                );
            }
            if v["applied"].as_u64() == Some(0) && v["duplicates"].as_u64() == Some(0) {
                return Ok(ExitCode::from(1));
            }
        }
        LifecycleCmd::Get {
            lifecycle,
            key,
            common,
        } => {
            let path = format!(
                "/v1/lifecycles/{}/instances/{}",
                enc(&lifecycle),
                enc_path(&key)
            );
            let v = call_json(settings, &common, Method::GET, &path, None).await?;
            if common.json {
                print_json(&v);
            } else {
                println!(
                    "{}/{}  version {}  {}",
                    lifecycle,
                    key,
                    v["version"],
                    v["mode"].as_str().unwrap_or("")
                );
                println!(
                    "state:    {}{}",
                    v["state"].as_str().unwrap_or(""),
                    if v["terminal"].as_bool() == Some(true) {
                        " (terminal)"
                    } else {
                        ""
                    }
                );
                println!("since:    {}", time(v["entered_at"].as_i64()));
                if let Some(b) = v["branches"].as_array().filter(|b| !b.is_empty()) {
                    println!(
                        "branches: {}",
                        b.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                for t in v["timers"].as_array().into_iter().flatten() {
                    println!(
                        "timer:    {} at {}",
                        t["kind"].as_str().unwrap_or(""),
                        time(t["at"].as_i64())
                    );
                }
                for a in v["running_actions"].as_array().into_iter().flatten() {
                    println!("running:  action of {}", a.as_str().unwrap_or(""));
                }
                if !v["context"].is_null() {
                    println!("context:  {}", v["context"]);
                }
            }
        }
        LifecycleCmd::History {
            lifecycle,
            key,
            limit,
            common,
        } => {
            let path = format!(
                "/v1/lifecycles/{}/history/{}?limit={limit}",
                enc(&lifecycle),
                enc_path(&key)
            );
            let v = call_json(settings, &common, Method::GET, &path, None).await?;
            if common.json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["history"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|h| {
                        vec![
                            time(h["time"].as_i64()),
                            h["kind"].as_str().unwrap_or("").to_owned(),
                            h["event"].as_str().unwrap_or("").to_owned(),
                            format!(
                                "{} → {}",
                                h["from"].as_str().unwrap_or(""),
                                h["to"].as_str().unwrap_or("")
                            ),
                            h["note"].as_str().unwrap_or("").to_owned(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["time (UTC)", "kind", "event", "transition", "note"],
                        &rows
                    )
                );
            }
        }
        LifecycleCmd::List {
            lifecycle,
            state,
            prefix,
            limit,
            after,
            common,
        } => {
            let mut path = format!("/v1/lifecycles/{}/instances?limit={limit}", enc(&lifecycle));
            for (k, v) in [("state", &state), ("prefix", &prefix), ("after", &after)] {
                if let Some(v) = v {
                    path.push_str(&format!("&{k}={}", enc(v)));
                }
            }
            let v = call_json(settings, &common, Method::GET, &path, None).await?;
            if common.json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["instances"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| {
                        vec![
                            i["key"].as_str().unwrap_or("").to_owned(),
                            i["state"].as_str().unwrap_or("").to_owned(),
                            i["version"].to_string(),
                            time(i["entered_at"].as_i64()),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["key", "state", "version", "since (UTC)"], &rows)
                );
                if let Some(n) = v["next"].as_str() {
                    println!("more: --after {n}");
                }
            }
        }
        LifecycleCmd::Stats { lifecycle, common } => {
            let path = match &lifecycle {
                Some(l) => format!("/v1/lifecycles/{}/stats", enc(l)),
                None => "/v1/lifecycle-engine/stats".to_owned(),
            };
            let v = call_json(settings, &common, Method::GET, &path, None).await?;
            if common.json || lifecycle.is_none() {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["states"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        vec![
                            s["state"].as_str().unwrap_or("").to_owned(),
                            s["count"].to_string(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["state", "instances"], &rows));
                println!(
                    "{} instance(s), latest version {}",
                    v["instances"], v["latest_version"]
                );
            }
        }
        LifecycleCmd::Graph {
            lifecycle,
            svg,
            key,
            output,
            common,
        } => {
            let path = if svg {
                let mut p = format!("/v1/lifecycles/{}/graph.svg", enc(&lifecycle));
                if let Some(k) = &key {
                    p.push_str(&format!("?key={}", enc(k)));
                }
                p
            } else {
                format!("/v1/lifecycles/{}/graph", enc(&lifecycle))
            };
            let reply = call(settings, &common, Method::GET, &path, None).await?;
            let _ = &reply.content_type;
            match output {
                Some(file) => {
                    std::fs::write(&file, &reply.body)
                        .with_context(|| format!("writing {}", file.display()))?;
                    eprintln!("wrote {}", file.display());
                }
                None if svg => println!("{}", String::from_utf8_lossy(&reply.body)),
                None => print_json(&serde_json::from_slice(&reply.body).unwrap_or(Value::Null)),
            }
        }
        LifecycleCmd::Definitions { common } => {
            let v = call_json(settings, &common, Method::GET, "/v1/lifecycles", None).await?;
            if common.json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["lifecycles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        vec![
                            d["lifecycle"].as_str().unwrap_or("").to_owned(),
                            d["latest_version"].to_string(),
                            d["mode"].as_str().unwrap_or("").to_owned(),
                            d["instances"].to_string(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["lifecycle", "version", "mode", "instances"], &rows)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
