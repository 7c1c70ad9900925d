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
        #[command(flatten)]
        common: Common,
    },
    /// Report the reward of a decision; bandits learn from it.
    ///   keel deploy feedback recs.42 1.0 --server URL
    #[command(verbatim_doc_comment)]
    Feedback {
        decision_id: String,
        #[arg(allow_hyphen_values = true)]
        reward: f64,
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
            common,
        } => {
            needs_server(settings, &common, "analyse")?;
            let mut query = vec![format!("confidence={confidence}")];
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
            common,
        } => {
            needs_server(settings, &common, "feedback")?;
            let v = call_json(
                settings,
                &common,
                Method::POST,
                "/v1/feedback",
                Some(json!({ "decision_id": decision_id, "reward": reward })),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                println!("reward {reward} recorded for {decision_id}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
