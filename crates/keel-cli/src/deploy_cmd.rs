//! `keel deploy …`: deployments and live experiments on a running server.

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
pub enum DeployCmd {
    /// Create a deployment from a JSON file (or `-` for standard input):
    ///   {"name": "recs", "strategy": {"type": "linucb", "alpha": 1.0},
    ///    "variants": [{"name": "a", "model": "models:/recs/1"}, {"name": "b"}]}
    /// Strategy types: single, canary, ab, shadow, epsilon_greedy, ucb1,
    /// thompson, softmax, linucb, linear_thompson, cb_epsilon_greedy.
    ///   keel deploy create recs.json --server URL
    #[command(verbatim_doc_comment)]
    Create {
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// List deployments with their strategies and counts.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// One deployment: variants with decisions, rewards, mean reward and
    /// traffic share.
    ///   keel deploy show recs --server URL
    #[command(verbatim_doc_comment)]
    Show {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Ask a deployment for a decision.
    ///   keel deploy decide recs --unit-id u1 --context 0.1,-0.3,0.5 --server URL
    #[command(verbatim_doc_comment)]
    Decide {
        name: String,
        /// The unit (user, session) the decision is for; sticky in ab and canary.
        #[arg(long)]
        unit_id: Option<String>,
        /// Context features, comma separated (contextual strategies).
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        context: Option<Vec<f64>>,
        /// The segment whose policy decides (deployments with per_segment).
        #[arg(long)]
        segment: Option<String>,
        /// The unit's metric before the experiment, for CUPED (analyse --cuped).
        #[arg(long, allow_hyphen_values = true)]
        covariate: Option<f64>,
        #[command(flatten)]
        common: Common,
    },
    /// A deployment's statistics: each variant's mean reward with its
    /// interval, each against the control (z-test or Welch's t-test, and an
    /// always-valid mSPRT p-value that stays valid however often you look),
    /// the sample-ratio check of fixed splits, and the Bayesian probability
    /// to be best.
    ///   keel deploy analyse recs --control a --server URL
    #[command(verbatim_doc_comment, alias = "analyze")]
    Analyse {
        name: String,
        /// The variant the others are compared with (default: the first).
        #[arg(long)]
        control: Option<String>,
        /// Confidence level of the intervals.
        #[arg(long, default_value_t = 0.95)]
        confidence: f64,
        /// The mSPRT's mixing variance (default: 1% of the reward variance).
        #[arg(long)]
        tau2: Option<f64>,
        /// One segment's policy (deployments with per_segment).
        #[arg(long)]
        segment: Option<String>,
        /// Also compare on CUPED-adjusted rewards (decisions made with --covariate).
        #[arg(long)]
        cuped: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Report the reward of a decision; bandits learn from it. With
    /// --error the request failed (it counts in the variant's error rate,
    /// which guards can roll back on); the reward may then be left out.
    ///   keel deploy feedback recs.42 1.0 --server URL
    ///   keel deploy feedback recs.43 --error --server URL
    #[command(verbatim_doc_comment)]
    Feedback {
        decision_id: String,
        #[arg(allow_hyphen_values = true, required_unless_present = "error")]
        reward: Option<f64>,
        #[arg(long)]
        error: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Move a deployment by hand. Deployments with "guards" also move on
    /// their own (a canary advances when its candidate has enough outcomes
    /// within the guards; any deployment rolls back to its first variant on
    /// a breach; a bandit names its winner); these actions override them:
    ///   pause     guards make no moves; decisions go on as they are
    ///   resume    guards run again
    ///   advance   a canary's next step (promotes after the last)
    ///   promote   all traffic to --variant (a canary's candidate by default)
    ///   rollback  all traffic to the first variant
    ///   keel deploy rollout recs rollback --reason "p99 doubled" --server URL
    #[command(verbatim_doc_comment)]
    Rollout {
        name: String,
        #[arg(value_parser = ["pause", "resume", "advance", "promote", "rollback"])]
        action: String,
        #[arg(long)]
        variant: Option<String>,
        /// Why: kept with the event and sent to the deployment's lifecycle.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Report a check (test-suite) result for a variant. A failed check of
    /// severity error on a candidate rolls the deployment back; a canary
    /// waits for its guards' required_checks to pass before advancing.
    ///   keel deploy check recs --suite quality --variant b --passed --server URL
    #[command(verbatim_doc_comment)]
    Check {
        name: String,
        #[arg(long)]
        suite: String,
        #[arg(long)]
        variant: String,
        #[arg(long, conflicts_with = "failed", required_unless_present = "failed")]
        passed: bool,
        #[arg(long)]
        failed: bool,
        #[arg(long, default_value = "error", value_parser = ["error", "warning"])]
        severity: String,
        #[command(flatten)]
        common: Common,
    },
    /// Report a metric of a variant (latency, cost, drift), checked against
    /// the bounds in the deployment's guards.metrics.
    ///   keel deploy metric recs --variant b --metric latency_p99_ms --value 42 --server URL
    #[command(verbatim_doc_comment)]
    Metric {
        name: String,
        #[arg(long)]
        variant: String,
        #[arg(long)]
        metric: String,
        #[arg(long, allow_hyphen_values = true)]
        value: f64,
        #[command(flatten)]
        common: Common,
    },
    /// A deployment's moves: canary steps, rollbacks, winners, pauses.
    ///   keel deploy events recs --server URL
    #[command(verbatim_doc_comment)]
    Events {
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// An SVG of each variant's traffic share and mean reward over time,
    /// with the deployment's moves marked.
    ///   keel deploy plot recs -o recs.svg --server URL
    #[command(verbatim_doc_comment)]
    Plot {
        name: String,
        /// Where to write the SVG (default: NAME.svg).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Time bins along the x axis.
        #[arg(long, default_value_t = 60)]
        bins: usize,
        #[command(flatten)]
        common: Common,
    },
}

fn needs_server(settings: &Settings, common: &Common, what: &str) -> Result<()> {
    crate::lifecycle_cmd::needs_server(settings, common, &format!("deploy {what}"))
}

fn variant_rows(v: &Value) -> Vec<Vec<String>> {
    v["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            vec![
                s(&x["name"]),
                s(&x["model"]),
                s(&x["decisions"]),
                s(&x["rewards"]),
                x["mean_reward"]
                    .as_f64()
                    .map_or("-".into(), |m| format!("{m:.4}")),
                format!("{:.1}%", x["traffic_share"].as_f64().unwrap_or(0.0) * 100.0),
            ]
        })
        .collect()
}

const VARIANT_HEADERS: [&str; 6] = ["VARIANT", "MODEL", "DECISIONS", "REWARDS", "MEAN", "SHARE"];

pub async fn run(settings: &Settings, cmd: DeployCmd) -> Result<ExitCode> {
    match cmd {
        DeployCmd::Create { file, common } => {
            needs_server(settings, &common, "create")?;
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| UsageError(format!("cannot read {}: {e}", file.display())))?
            };
            let spec: Value = serde_json::from_str(&text)
                .map_err(|e| UsageError(format!("{}: not JSON ({e})", file.display())))?;
            let v = call_json(
                settings,
                &common,
                Method::POST,
                "/v1/deployments",
                Some(spec),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                println!(
                    "created deployment {} ({}, {} variants)",
                    s(&v["name"]),
                    s(&v["strategy"]["type"]),
                    v["variants"].as_array().map_or(0, Vec::len)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DeployCmd::List { common } => {
            needs_server(settings, &common, "list")?;
            let v = call_json(settings, &common, Method::GET, "/v1/deployments", None).await?;
            if common.json {
                print_json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = v["deployments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    vec![
                        s(&d["name"]),
                        s(&d["strategy"]["type"]),
                        d["variants"].as_array().map_or(0, Vec::len).to_string(),
                        s(&d["decisions"]),
                        s(&d["rewards"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["DEPLOYMENT", "STRATEGY", "VARIANTS", "DECISIONS", "REWARDS"],
                    &rows
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        DeployCmd::Show { name, common } => {
            needs_server(settings, &common, "show")?;
            let v = call_json(
                settings,
                &common,
                Method::GET,
                &format!("/v1/deployments/{}", enc(&name)),
                None,
            )
            .await?;
            if common.json {
                print_json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let params: Vec<String> = v["strategy"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str() != "type")
                .map(|(k, x)| format!("{k}={}", s(x)))
                .collect();
            let strategy = if params.is_empty() {
                s(&v["strategy"]["type"])
            } else {
                format!("{} ({})", s(&v["strategy"]["type"]), params.join(", "))
            };
            println!(
                "{}: {} — {} decisions, {} rewards, {} awaiting a reward",
                s(&v["name"]),
                strategy,
                s(&v["decisions"]),
                s(&v["rewards"]),
                s(&v["awaiting_reward"])
            );
            print!("{}", table(&VARIANT_HEADERS, &variant_rows(&v)));
            print_rollout(&v);
            for seg in v["segments"].as_array().into_iter().flatten() {
                println!("segment {:?}:", s(&seg["segment"]));
                print!("{}", table(&VARIANT_HEADERS, &variant_rows(seg)));
            }
            Ok(ExitCode::SUCCESS)
        }
        DeployCmd::Decide {
            name,
            unit_id,
            context,
            segment,
            covariate,
            common,
        } => {
            needs_server(settings, &common, "decide")?;
            let mut body = json!({});
            if let Some(u) = unit_id {
                body["unit_id"] = json!(u);
            }
            if let Some(c) = context {
                body["context"] = json!(c);
            }
            if let Some(sg) = segment {
                body["segment"] = json!(sg);
            }
            if let Some(x) = covariate {
                body["covariate"] = json!(x);
            }
            let v = call_json(
                settings,
                &common,
                Method::POST,
                &format!("/v1/deployments/{}/decide", enc(&name)),
                Some(body),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                println!(
                    "{} (propensity {:.4}) decision {}",
                    s(&v["variant"]),
                    v["propensity"].as_f64().unwrap_or(0.0),
                    s(&v["decision_id"])
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DeployCmd::Analyse {
            name,
            control,
            confidence,
            tau2,
            segment,
            cuped,
            common,
        } => {
            needs_server(settings, &common, "analyse")?;
            let mut query = vec![format!("confidence={confidence}")];
            if cuped {
                query.push("cuped=true".into());
            }
            if let Some(c) = control {
                query.push(format!("control={}", enc(&c)));
            }
            if let Some(t) = tau2 {
                query.push(format!("tau2={t}"));
            }
            if let Some(sg) = segment {
                query.push(format!("segment={}", enc(&sg)));
            }
            let v = call_json(
                settings,
                &common,
                Method::GET,
                &format!(
                    "/v1/deployments/{}/analysis?{}",
                    enc(&name),
                    query.join("&")
                ),
                None,
            )
            .await?;
            if common.json {
                print_json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let num = |x: &Value, digits: usize| {
                x.as_f64()
                    .map_or("-".to_string(), |f| format!("{f:.digits$}"))
            };
            println!(
                "{} ({}, {} rewards): control {}, {:.0}% intervals",
                s(&v["deployment"]),
                s(&v["strategy"]),
                s(&v["reward_kind"]),
                s(&v["control"]),
                confidence * 100.0
            );
            let prob_best = &v["bayesian"]["prob_best"];
            let rows: Vec<Vec<String>> = v["variants"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, x)| {
                    vec![
                        s(&x["name"]),
                        s(&x["decisions"]),
                        s(&x["rewards"]),
                        num(&x["mean"], 4),
                        format!(
                            "[{}, {}]",
                            num(&x["interval"][0], 4),
                            num(&x["interval"][1], 4)
                        ),
                        num(&prob_best[i], 3),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "VARIANT",
                        "DECISIONS",
                        "REWARDS",
                        "MEAN",
                        "INTERVAL",
                        "P(BEST)"
                    ],
                    &rows
                )
            );
            let rows: Vec<Vec<String>> = v["comparisons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let f = &c["fixed_horizon"];
                    vec![
                        format!("{} − {}", s(&c["variant"]), s(&c["control"])),
                        num(&f["difference"], 4),
                        format!(
                            "[{}, {}]",
                            num(&f["interval"][0], 4),
                            num(&f["interval"][1], 4)
                        ),
                        num(&f["p_value"], 4),
                        num(&c["sequential"]["always_valid_p_value"], 4),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["COMPARISON", "DIFF", "INTERVAL", "P", "ALWAYS-VALID P"],
                    &rows
                )
            );
            let c = &v["cuped"];
            if let Some(why) = c["unavailable"].as_str() {
                println!("CUPED: {why}");
            } else if c.is_object() {
                println!(
                    "CUPED on {} rewarded decisions with a covariate: theta {}",
                    s(&c["rows"]),
                    num(&c["theta"], 4)
                );
                let reduction: std::collections::HashMap<String, String> = c["variants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        let r = x["variance_reduction"].as_f64().unwrap_or(0.0) * 100.0;
                        (s(&x["name"]), format!("{r:.1}%"))
                    })
                    .collect();
                let rows: Vec<Vec<String>> = c["comparisons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        vec![
                            format!("{} − {}", s(&x["variant"]), s(&x["control"])),
                            num(&x["difference"], 4),
                            format!(
                                "[{}, {}]",
                                num(&x["interval"][0], 4),
                                num(&x["interval"][1], 4)
                            ),
                            num(&x["p_value"], 4),
                            reduction
                                .get(&s(&x["variant"]))
                                .cloned()
                                .unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["CUPED", "DIFF", "INTERVAL", "P", "VARIANCE CUT"], &rows)
                );
            }
            if let Some(p) = v["sample_ratio"]["p_value"].as_f64() {
                println!(
                    "sample ratio: p = {p:.4}{}",
                    if p < 0.001 {
                        " — MISMATCH: the assignment, not the variants, is broken"
                    } else {
                        " (no mismatch)"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DeployCmd::Feedback {
            decision_id,
            reward,
            error,
            common,
        } => {
            needs_server(settings, &common, "feedback")?;
            let mut body = json!({ "decision_id": decision_id, "reward": reward });
            if error {
                body["error"] = json!(true);
            }
            let v = call_json(settings, &common, Method::POST, "/v1/feedback", Some(body)).await?;
            if common.json {
                print_json(&v);
            } else {
                let what = match (reward, error) {
                    (Some(r), false) => format!("reward {r}"),
                    (Some(r), true) => format!("reward {r} and an error"),
                    (None, _) => "an error".into(),
                };
                println!("{what} recorded for {decision_id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        DeployCmd::Rollout {
            name,
            action,
            variant,
            reason,
            common,
        } => {
            let body = json!({ "action": action, "variant": variant, "reason": reason });
            move_deployment(settings, &common, &name, ("rollout", "rollout"), body).await
        }
        DeployCmd::Check {
            name,
            suite,
            variant,
            passed,
            failed,
            severity,
            common,
        } => {
            let body = json!({ "suite": suite, "variant": variant,
                               "passed": passed && !failed, "severity": severity });
            move_deployment(settings, &common, &name, ("check", "checks"), body).await
        }
        DeployCmd::Metric {
            name,
            variant,
            metric,
            value,
            common,
        } => {
            let body = json!({ "variant": variant, "name": metric, "value": value });
            move_deployment(settings, &common, &name, ("metric", "metrics"), body).await
        }
        DeployCmd::Events { name, common } => {
            needs_server(settings, &common, "events")?;
            let v = call_json(
                settings,
                &common,
                Method::GET,
                &format!("/v1/deployments/{}/events", enc(&name)),
                None,
            )
            .await?;
            if common.json {
                print_json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = v["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    vec![
                        s(&e["at"]),
                        s(&e["event"]),
                        s(&e["variant"]),
                        s(&e["step"]),
                        s(&e["by"]),
                        s(&e["reason"]),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("{name} has not moved yet");
            } else {
                print!(
                    "{}",
                    table(&["AT", "EVENT", "VARIANT", "STEP", "BY", "REASON"], &rows)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DeployCmd::Plot {
            name,
            output,
            bins,
            common,
        } => {
            needs_server(settings, &common, "plot")?;
            let reply = crate::lifecycle_cmd::call(
                settings,
                &common,
                Method::GET,
                &format!("/v1/deployments/{}/plot?bins={bins}", enc(&name)),
                None,
            )
            .await?;
            let path = output.unwrap_or_else(|| PathBuf::from(format!("{name}.svg")));
            std::fs::write(&path, &reply.body)
                .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
            if common.json {
                print_json(&json!({ "deployment": name, "output": path }));
            } else {
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `keel deploy COMMAND`: POSTs to `/v1/deployments/NAME/ROUTE` (a rollout
/// action, a check, a metric: each may move the deployment) and shows
/// where it stands.
async fn move_deployment(
    settings: &Settings,
    common: &Common,
    name: &str,
    (command, route): (&str, &str),
    body: Value,
) -> Result<ExitCode> {
    needs_server(settings, common, command)?;
    let v = call_json(
        settings,
        common,
        Method::POST,
        &format!("/v1/deployments/{}/{route}", enc(name)),
        Some(body),
    )
    .await?;
    if common.json {
        print_json(&v);
    } else {
        print_rollout(&v);
    }
    Ok(ExitCode::SUCCESS)
}

/// One line on where a deployment stands as a long process.
fn print_rollout(v: &Value) {
    let r = &v["rollout"];
    let mut line = format!("{}: {}", s(&v["name"]), s(&r["phase"]));
    if let Some(p) = v["canary"]["candidate_percent"].as_f64() {
        line.push_str(&format!(
            ", canary step {} ({p}% to the candidate)",
            s(&v["canary"]["step"])
        ));
    }
    if !r["winner"].is_null() {
        line.push_str(&format!(", winner {}", s(&r["winner"])));
    }
    if let Some(e) = r["last_event"].as_object() {
        line.push_str(&format!(
            "; last move: {} ({})",
            s(&e["event"]),
            s(&e["reason"])
        ));
    }
    println!("{line}");
}
