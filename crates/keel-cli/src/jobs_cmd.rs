//! `keel jobs …`, `keel billing …` and `keel train …`: training jobs on a
//! running server's scheduler, read back from it or from the data
//! directory, and the supervisor that runs one attempt.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use crate::config::Settings;
use crate::lifecycle_cmd::{Common, call, call_json, enc, needs_server};
use crate::output::{UsageError, cell, print_json, table, time};

#[derive(Subcommand, Debug)]
pub enum JobsCmd {
    /// Submit a job spec (YAML or JSON) to the server's scheduler.
    ///
    /// Every problem of the spec is reported at once, with line and column.
    /// Relative `code:` and `data.training_set:` paths are resolved against
    /// the spec's folder. Without --server the job runs in this process, on
    /// the data directory, and the command waits for it.
    ///   keel jobs submit job.yaml --server URL --wait
    ///   keel jobs submit job.yaml             # runs it here
    #[command(verbatim_doc_comment)]
    Submit {
        file: PathBuf,
        /// Wait until the job (or every job of a sweep) has ended; exit 1
        /// unless it succeeded.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        common: Common,
    },
    /// List jobs, newest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// queued, running, succeeded, failed, cancelled or sweep.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        common: Common,
    },
    /// One job: state, attempts, usage, its run; a sweep's children.
    Show {
        id: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Cancel a job (queued: at once; running: its processes are stopped).
    Cancel {
        id: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Print a job attempt's output (the last attempt's stdout by default).
    Logs {
        id: i64,
        #[arg(long)]
        stderr: bool,
        #[arg(long)]
        attempt: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Set a tenant's share and quotas.
    ///
    ///   keel jobs tenant growth --weight 2 --max-cpus 4 --max-jobs 2 \
    ///       --monthly-budget 100 --submit-rate 5 --server URL
    #[command(verbatim_doc_comment)]
    Tenant {
        name: String,
        /// Relative share under contention.
        #[arg(long, default_value_t = 1.0)]
        weight: f64,
        /// Most CPUs its running jobs may use together.
        #[arg(long)]
        max_cpus: Option<f64>,
        /// Most jobs it may run at once.
        #[arg(long)]
        max_jobs: Option<u32>,
        /// Spend per calendar month (UTC) after which no job starts.
        #[arg(long)]
        monthly_budget: Option<f64>,
        /// Submissions per second (more get HTTP 429 with Retry-After).
        #[arg(long)]
        submit_rate: Option<f64>,
        /// Submissions allowed in a burst.
        #[arg(long)]
        submit_burst: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Tenants and their policies.
    Tenants {
        #[command(flatten)]
        common: Common,
    },
    /// The scheduler's capacity and each tenant's running share.
    Scheduler {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum BillingCmd {
    /// A tenant's measured usage and cost, attempt by attempt, with totals.
    ///
    ///   keel billing report --tenant growth --from 2026-11-01 --to 2026-12-01
    #[command(verbatim_doc_comment)]
    Report {
        #[arg(long)]
        tenant: String,
        /// Start (YYYY-MM-DD, RFC 3339 or ms since the epoch); default: ever.
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive; default: now and later.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
pub enum TrainCmd {
    /// Re-run the job behind a training run and compare the metrics.
    ///
    /// The job's spec is submitted again (same tenant, data, parameters and
    /// seed); when it ends, each metric's last value is compared with the
    /// original run's, and the training data's digests with each other.
    /// Exit 0 when every metric matches, 1 otherwise.
    ///   keel train reproduce 3f2a9c… --server URL
    #[command(verbatim_doc_comment)]
    Reproduce {
        run_id: String,
        /// Relative difference allowed between metric values.
        #[arg(long, default_value_t = 1e-9)]
        tolerance: f64,
        #[command(flatten)]
        common: Common,
    },
    /// Run one attempt of a built-in trainer (started by the supervisor).
    #[command(hide = true)]
    Builtin {
        /// The attempt's spec.json.
        spec: PathBuf,
    },
    /// Run one attempt of a job under supervision (started by the server).
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        attempt_dir: PathBuf,
        #[arg(long)]
        work_dir: PathBuf,
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// KEY=VALUE, repeated.
        #[arg(long = "env")]
        env: Vec<String>,
        /// The command line (run by `sh -c`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

pub async fn jobs(settings: &Settings, cmd: JobsCmd) -> Result<ExitCode> {
    match cmd {
        JobsCmd::Submit { file, wait, common } => submit(settings, &common, &file, wait).await,
        JobsCmd::List {
            tenant,
            state,
            limit,
            common,
        } => {
            let mut query = vec![format!("limit={limit}")];
            if let Some(t) = tenant {
                query.push(format!("tenant={}", enc(&t)));
            }
            if let Some(s) = state {
                query.push(format!("state={}", enc(&s)));
            }
            let path = format!("/v1/train/jobs?{}", query.join("&"));
            let v = call_json(settings, &common, Method::GET, &path, None).await?;
            if common.json {
                print_json(&v);
            } else {
                print_jobs(v["jobs"].as_array().map_or(&[], Vec::as_slice));
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCmd::Show { id, common } => {
            let v = call_json(
                settings,
                &common,
                Method::GET,
                &format!("/v1/train/jobs/{id}"),
                None,
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                print_job(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCmd::Cancel { id, common } => {
            needs_server(settings, &common, "jobs cancel")?;
            let v = call_json(
                settings,
                &common,
                Method::POST,
                &format!("/v1/train/jobs/{id}/cancel"),
                Some(serde_json::json!({})),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                println!(
                    "job {id}: {}",
                    match v["job"]["state"].as_str() {
                        Some("running") => "stopping".to_string(),
                        Some(s) => s.to_string(),
                        None => "?".into(),
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCmd::Logs {
            id,
            stderr,
            attempt,
            common,
        } => {
            let mut path = format!(
                "/v1/train/jobs/{id}/logs?stream={}",
                if stderr { "stderr" } else { "stdout" }
            );
            if let Some(a) = attempt {
                path.push_str(&format!("&attempt={a}"));
            }
            let reply = call(settings, &common, Method::GET, &path, None).await?;
            use std::io::Write;
            std::io::stdout().write_all(&reply.body)?;
            Ok(ExitCode::SUCCESS)
        }
        JobsCmd::Tenant {
            name,
            weight,
            max_cpus,
            max_jobs,
            monthly_budget,
            submit_rate,
            submit_burst,
            common,
        } => {
            needs_server(settings, &common, "jobs tenant")?;
            let policy = keel_train::scheduler::TenantPolicy {
                weight,
                max_cpus,
                max_jobs,
                monthly_budget,
                submit_rate,
                submit_burst,
            };
            policy.check().map_err(UsageError)?;
            let body = serde_json::to_value(&policy)?;
            let v = call_json(
                settings,
                &common,
                Method::PUT,
                &format!("/v1/train/tenants/{}", enc(&name)),
                Some(body),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                println!("tenant {name}: {}", v["policy"]);
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCmd::Tenants { common } => {
            let v = call_json(settings, &common, Method::GET, "/v1/train/tenants", None).await?;
            if common.json {
                print_json(&v);
            } else {
                let empty = Vec::new();
                let rows: Vec<Vec<String>> = v["tenants"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|t| {
                        let p = &t["policy"];
                        vec![
                            cell(&t["tenant"]),
                            cell(&p["weight"]),
                            cell(&p["max_cpus"]),
                            cell(&p["max_jobs"]),
                            cell(&p["monthly_budget"]),
                            cell(&p["submit_rate"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "TENANT",
                            "WEIGHT",
                            "MAX CPUS",
                            "MAX JOBS",
                            "MONTHLY BUDGET",
                            "SUBMITS/S"
                        ],
                        &rows
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCmd::Scheduler { common } => {
            needs_server(settings, &common, "jobs scheduler")?;
            let v = call_json(settings, &common, Method::GET, "/v1/train/scheduler", None).await?;
            if common.json {
                print_json(&v);
            } else {
                println!(
                    "capacity: {} CPUs, {:.1} GiB",
                    v["capacity"]["cpus"],
                    v["capacity"]["memory_bytes"].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64
                );
                let empty = Vec::new();
                let rows: Vec<Vec<String>> = v["tenants"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|t| {
                        vec![
                            cell(&t["tenant"]),
                            cell(&t["weight"]),
                            cell(&t["running"]),
                            cell(&t["queued"]),
                            cell(&t["running_cpus"]),
                            format!("{:.3}", t["weighted_share"].as_f64().unwrap_or(0.0)),
                            format!("{:.4}", t["spent_this_month"].as_f64().unwrap_or(0.0)),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "TENANT",
                            "WEIGHT",
                            "RUNNING",
                            "QUEUED",
                            "CPUS",
                            "SHARE/WEIGHT",
                            "SPENT (MONTH)"
                        ],
                        &rows
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn billing(settings: &Settings, cmd: BillingCmd) -> Result<ExitCode> {
    let BillingCmd::Report {
        tenant,
        from,
        to,
        common,
    } = cmd;
    let mut query = vec![format!("tenant={}", enc(&tenant))];
    if let Some(f) = from {
        query.push(format!("from={}", enc(&f)));
    }
    if let Some(t) = to {
        query.push(format!("to={}", enc(&t)));
    }
    let v = call_json(
        settings,
        &common,
        Method::GET,
        &format!("/v1/billing/report?{}", query.join("&")),
        None,
    )
    .await?;
    if common.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = v["entries"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|e| {
            vec![
                cell(&e["job_id"]),
                cell(&e["job"]),
                cell(&e["attempt"]),
                time(e["finished_at"].as_i64()),
                format!("{:.2}", e["cpu_seconds"].as_f64().unwrap_or(0.0)),
                format!("{:.3}", e["memory_gb_seconds"].as_f64().unwrap_or(0.0)),
                format!("{:.2}", e["wall_seconds"].as_f64().unwrap_or(0.0)),
                format!("{:.6}", e["cost"].as_f64().unwrap_or(0.0)),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "JOB ID",
                "JOB",
                "ATTEMPT",
                "ENDED (UTC)",
                "CPU S",
                "MEMORY GB·S",
                "WALL S",
                "COST"
            ],
            &rows
        )
    );
    println!(
        "tenant {tenant}: {} attempts, {:.2} CPU-seconds, {:.3} GB-seconds, {:.2} s wall, cost {:.6}",
        v["attempts"],
        v["cpu_seconds"].as_f64().unwrap_or(0.0),
        v["memory_gb_seconds"].as_f64().unwrap_or(0.0),
        v["wall_seconds"].as_f64().unwrap_or(0.0),
        v["cost"].as_f64().unwrap_or(0.0)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn train(settings: &Settings, cmd: TrainCmd) -> Result<ExitCode> {
    match cmd {
        TrainCmd::Builtin { spec } => crate::builtin_train::run(settings, &spec).await,
        TrainCmd::Reproduce {
            run_id,
            tolerance,
            common,
        } => reproduce(settings, &common, &run_id, tolerance).await,
        TrainCmd::Supervise {
            attempt_dir,
            work_dir,
            timeout_ms,
            env,
            command,
        } => {
            let env = env
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| UsageError(format!("--env {kv:?}: expected KEY=VALUE")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let report = keel_train::local::supervise(keel_train::local::Supervised {
                attempt_dir,
                work_dir,
                command: command.join(" "),
                env,
                timeout: timeout_ms.map(Duration::from_millis),
            })
            .await?;
            Ok(if report.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// A run's metrics (last value per key, Keel's usage metrics left out) and
/// tags.
async fn run_summary(
    settings: &Settings,
    common: &Common,
    run_id: &str,
) -> Result<(
    std::collections::BTreeMap<String, f64>,
    std::collections::BTreeMap<String, String>,
)> {
    let v = call_json(
        settings,
        common,
        Method::GET,
        &format!("/api/2.0/mlflow/runs/get?run_id={}", enc(run_id)),
        None,
    )
    .await?;
    let data = &v["run"]["data"];
    let mut metrics = std::collections::BTreeMap::new();
    for m in data["metrics"].as_array().into_iter().flatten() {
        let key = m["key"].as_str().unwrap_or_default();
        if key.starts_with("keel.") {
            continue;
        }
        if let Some(x) = m["value"].as_f64() {
            metrics.insert(key.to_string(), x);
        }
    }
    let mut tags = std::collections::BTreeMap::new();
    for t in data["tags"].as_array().into_iter().flatten() {
        tags.insert(cell(&t["key"]), cell(&t["value"]));
    }
    Ok((metrics, tags))
}

async fn reproduce(
    settings: &Settings,
    common: &Common,
    run_id: &str,
    tolerance: f64,
) -> Result<ExitCode> {
    needs_server(settings, common, "train reproduce")?;
    let (before, tags) = run_summary(settings, common, run_id).await?;
    let job_id = tags.get("keel.job_id").ok_or_else(|| {
        UsageError(format!(
            "run {run_id} was not made by a training job (no keel.job_id tag)"
        ))
    })?;
    let job = call_json(
        settings,
        common,
        Method::GET,
        &format!("/v1/train/jobs/{job_id}"),
        None,
    )
    .await?;
    let spec: keel_train::spec::JobSpec =
        serde_json::from_value(job["job"]["spec"].clone()).context("the job's stored spec")?;
    let v = call_json(
        settings,
        common,
        Method::POST,
        "/v1/train/jobs",
        Some(spec.to_source()),
    )
    .await?;
    let id = v["job"]["id"]
        .as_i64()
        .context("the server returned no job id")?;
    if !common.json {
        eprintln!("reproducing run {run_id} (job {job_id}) as job {id}");
    }
    let ended = wait_for_job(settings, common, id, false).await?;
    let state = ended["job"]["state"].as_str().unwrap_or("").to_string();
    let new_run = ended["job"]["run_id"].as_str().unwrap_or("").to_string();
    let (after, new_tags) = if new_run.is_empty() {
        Default::default()
    } else {
        run_summary(settings, common, &new_run).await?
    };
    let mut rows = Vec::new();
    let mut same = state == "succeeded";
    for key in before
        .keys()
        .chain(after.keys().filter(|k| !before.contains_key(*k)))
    {
        let (a, b) = (before.get(key), after.get(key));
        let equal = match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1e-300),
            _ => false,
        };
        same &= equal;
        let show = |x: Option<&f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v}"));
        rows.push(vec![
            key.clone(),
            show(a),
            show(b),
            if equal { "=" } else { "DIFFERENT" }.to_string(),
        ]);
    }
    let digest = "keel.dataset.digest";
    let same_data = tags.get(digest) == new_tags.get(digest);
    if common.json {
        print_json(&serde_json::json!({
            "run_id": run_id, "new_run_id": new_run, "job_id": id, "state": state,
            "reproduced": same, "same_data": same_data,
            "metrics": rows.iter().map(|r| serde_json::json!({"key": r[0], "original": before.get(&r[0]), "reproduced": after.get(&r[0])})).collect::<Vec<_>>(),
        }));
    } else {
        print!(
            "{}",
            table(&["METRIC", "ORIGINAL", "REPRODUCED", ""], &rows)
        );
        if !same_data {
            println!("note: the training data changed since the original run ({digest} differs)");
        }
        println!(
            "run {run_id} {} as {new_run} (job {id}, {state})",
            if same { "reproduced" } else { "NOT reproduced" }
        );
    }
    Ok(if same {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn submit(settings: &Settings, common: &Common, file: &Path, wait: bool) -> Result<ExitCode> {
    if common.server.is_none() && settings.server.is_none() {
        // No server: run the scheduler in this process until the job ends.
        let local = crate::LocalServer::start(settings).await?;
        if !common.json {
            eprintln!(
                "no --server: running the job here, on {} (the data directory)",
                settings.data_dir.display()
            );
        }
        let mut here = common.clone();
        here.server = Some(local.url.clone());
        let result = Box::pin(submit(settings, &here, file, true)).await;
        local.stop().await;
        return result;
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    let mut spec = keel_train::spec::parse(&text).map_err(|e| {
        let lines: Vec<String> = e
            .problems
            .iter()
            .map(|p| format!("{}:{p}", file.display()))
            .collect();
        UsageError(format!(
            "the job spec has {} problem(s):\n{}",
            lines.len(),
            lines.join("\n")
        ))
    })?;
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let absolute = |p: &str| -> Result<String> {
        let path = base.join(p);
        let path = std::fs::canonicalize(&path)
            .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
        Ok(path.to_string_lossy().into_owned())
    };
    if let Some(code) = &spec.code {
        spec.code = Some(absolute(code)?);
    }
    if let Some(d) = spec.data.as_mut() {
        if let Some(t) = &d.training_set {
            d.training_set = Some(absolute(t)?);
        }
        if let Some(e) = &d.entities {
            d.entities = Some(absolute(e)?);
        }
    }
    let body = spec.to_source();
    let v = call_json(settings, common, Method::POST, "/v1/train/jobs", Some(body)).await?;
    let id = v["job"]["id"]
        .as_i64()
        .context("the server returned no job id")?;
    let children = v["children"].as_array().map_or(0, Vec::len);
    if !wait {
        if common.json {
            print_json(&v);
        } else if children > 0 {
            println!("submitted sweep {id} with {children} jobs");
        } else {
            println!("submitted job {id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !common.json {
        eprintln!("submitted job {id}; waiting (Ctrl-C stops waiting, not the job)");
    }
    let v = wait_for_job(settings, common, id, !common.json).await?;
    if common.json {
        print_json(&v);
    } else {
        print_job(&v);
    }
    Ok(if v["job"]["state"] == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Polls a job until it has ended; with `progress`, each state it passes
/// through goes to stderr. Returns the job's last answer (`{"job", …}`).
async fn wait_for_job(
    settings: &Settings,
    common: &Common,
    id: i64,
    progress: bool,
) -> Result<Value> {
    let mut last = String::new();
    loop {
        let v = call_json(
            settings,
            common,
            Method::GET,
            &format!("/v1/train/jobs/{id}"),
            None,
        )
        .await?;
        let state = v["job"]["state"].as_str().unwrap_or("").to_string();
        if progress && state != last {
            eprintln!("job {id}: {state}");
            last = state.clone();
        }
        if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Jobs as a table, one row each.
fn print_jobs(jobs: &[Value]) {
    let rows: Vec<Vec<String>> = jobs.iter().map(job_row).collect();
    print!(
        "{}",
        table(
            &[
                "ID",
                "JOB",
                "TENANT",
                "STATE",
                "ATTEMPTS",
                "SUBMITTED",
                "MESSAGE"
            ],
            &rows
        )
    );
}

fn job_row(j: &Value) -> Vec<String> {
    vec![
        cell(&j["id"]),
        cell(&j["name"]),
        cell(&j["tenant"]),
        cell(&j["state"]),
        format!("{}/{}", j["attempts"], j["max_attempts"]),
        time(j["submitted_at"].as_i64()),
        cell(&j["message"]),
    ]
}

fn print_job(v: &Value) {
    let j = &v["job"];
    println!(
        "job {} ({}), tenant {}",
        j["id"],
        cell(&j["name"]),
        cell(&j["tenant"])
    );
    println!("  state:     {}", cell(&j["state"]));
    println!(
        "  trainer:   {} on {}",
        cell(&j["trainer"]),
        cell(&j["executor"])
    );
    println!("  attempts:  {} of {}", j["attempts"], j["max_attempts"]);
    println!("  submitted: {}", time(j["submitted_at"].as_i64()));
    if let Some(run) = j["run_id"].as_str() {
        println!("  run:       {run}");
    }
    if let Some(m) = j["message"].as_str() {
        println!("  outcome:   {m}");
    }
    let usage = &j["result"]["usage"];
    if usage.is_object() {
        println!(
            "  usage:     {:.2} CPU-s, {:.3} GB-s, {:.2} s wall, cost {:.6}",
            usage["cpu_seconds"].as_f64().unwrap_or(0.0),
            usage["memory_gb_seconds"].as_f64().unwrap_or(0.0),
            usage["wall_seconds"].as_f64().unwrap_or(0.0),
            j["result"]["cost"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some(children) = v["children"].as_array().filter(|c| !c.is_empty()) {
        print_jobs(children);
    }
}
