//! `keel data …`: the dataset catalog.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::config::Settings;
use crate::lifecycle_cmd::{Common, call_json, enc};
use crate::output::{UsageError, cell as s, print_json, table, time};

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Register a Parquet, CSV or Arrow file (or a folder of them) as the
    /// next version of dataset NAME, and print the version id.
    ///
    /// The files are copied into Keel's artifact store under their content
    /// hash, so the version never changes; registering the same bytes again
    /// prints the existing version's id. Keel records the schema, the row
    /// count, a profile of every column and how the schema changed from the
    /// previous version (compatible or breaking).
    ///   keel data register events data/events.parquet
    ///   keel data register clicks exports/clicks/     # a folder
    ///   keel data register orders s3://lake/orders/   # an object store
    #[command(verbatim_doc_comment)]
    Register {
        /// Letters, digits, `_`, `-` and `.`.
        name: String,
        /// A file or folder, or an s3:// gs:// az:// URL of one (credentials
        /// from AWS_* / GOOGLE_* / AZURE_* variables); with --server, the
        /// server reads it.
        path: PathBuf,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// List the datasets.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Show a dataset's versions, or one version's schema and profile.
    ///
    ///   keel data show events            # every version
    ///   keel data show events@v2         # one: schema, profile, changes
    ///   keel data show events@latest
    #[command(verbatim_doc_comment)]
    Show {
        /// NAME, or NAME@vN / NAME@latest / NAME@ID for one version.
        dataset: String,
        #[command(flatten)]
        common: Common,
    },
    /// Run a read-only SQL query over the datasets.
    ///
    /// A table name is a dataset's latest version; quote a versioned name:
    ///   keel data query "SELECT count(*) FROM events"
    ///   keel data query 'SELECT * FROM "events@v1" LIMIT 5' --json
    #[command(verbatim_doc_comment)]
    Query {
        sql: String,
        /// Most rows to return.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        #[command(flatten)]
        common: Common,
    },
}

/// A number with thousands separators.
fn count(v: &Value) -> String {
    let n = v.as_i64().unwrap_or(0);
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A float in a short form.
fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() => {
            let a = x.abs();
            if a != 0.0 && !(1e-3..1e9).contains(&a) {
                format!("{x:.3e}")
            } else {
                let t = format!("{x:.4}");
                t.trim_end_matches('0').trim_end_matches('.').to_owned()
            }
        }
        _ => s(v),
    }
}

pub fn absolute(path: &std::path::Path) -> Result<String> {
    let abs =
        std::path::absolute(path).map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    Ok(abs.display().to_string())
}

pub async fn run(settings: &Settings, cmd: DataCmd) -> Result<ExitCode> {
    match cmd {
        DataCmd::Register {
            name,
            path,
            description,
            common,
        } => {
            let text = path.to_string_lossy();
            let path = if text.contains("://") {
                text.into_owned()
            } else {
                absolute(&path)?
            };
            let body = json!({"name": name, "path": path, "description": description});
            let v = call_json(settings, &common, Method::POST, "/v1/datasets", Some(body)).await?;
            if common.json {
                print_json(&v);
            } else {
                let ver = &v["version"];
                let change = &ver["schema_change"];
                let what = if v["created"].as_bool() == Some(true) {
                    "registered"
                } else {
                    "unchanged: the same content is"
                };
                let mut schema = s(&change["kind"]);
                if let Some(n) = change["changes"].as_array().filter(|c| !c.is_empty()) {
                    schema = format!("{schema} ({} column change(s))", n.len());
                }
                eprintln!(
                    "{what} {}@v{}: {} rows, {} columns, schema {schema}",
                    s(&ver["name"]),
                    s(&ver["version"]),
                    count(&ver["row_count"]),
                    ver["columns"].as_array().map_or(0, Vec::len),
                );
                println!("{}", s(&ver["id"]));
            }
        }
        DataCmd::List { common } => {
            let v = call_json(settings, &common, Method::GET, "/v1/datasets", None).await?;
            if common.json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v["datasets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        vec![
                            s(&d["name"]),
                            format!("v{}", s(&d["latest_version"])),
                            time(d["updated_at"].as_i64()),
                            s(&d["description"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["dataset", "latest", "updated (UTC)", "description"],
                        &rows
                    )
                );
            }
        }
        DataCmd::Show { dataset, common } => {
            let path = match dataset.split_once('@') {
                Some((n, v)) => format!("/v1/datasets/{}/versions/{}", enc(n), enc(v)),
                None => format!("/v1/datasets/{}", enc(&dataset)),
            };
            let v = call_json(settings, &common, Method::GET, &path, None).await?;
            if common.json {
                print_json(&v);
            } else if let Some(versions) = v["versions"].as_array() {
                let rows: Vec<Vec<String>> = versions
                    .iter()
                    .map(|x| {
                        vec![
                            format!("v{}", s(&x["version"])),
                            s(&x["id"]),
                            count(&x["row_count"]),
                            x["columns"].as_array().map_or(0, Vec::len).to_string(),
                            s(&x["schema_change"]["kind"]),
                            time(x["created_at"].as_i64()),
                            s(&x["source"]),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "version",
                            "id",
                            "rows",
                            "columns",
                            "schema",
                            "registered (UTC)",
                            "source"
                        ],
                        &rows
                    )
                );
            } else {
                print_version(&v["version"]);
            }
        }
        DataCmd::Query { sql, limit, common } => {
            let body = json!({"sql": sql, "limit": limit});
            let v = call_json(
                settings,
                &common,
                Method::POST,
                "/v1/datasets/query",
                Some(body),
            )
            .await?;
            if common.json {
                print_json(&v);
            } else {
                let names: Vec<String> = v["columns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| s(&c["name"]))
                    .collect();
                let headers: Vec<&str> = names.iter().map(String::as_str).collect();
                let rows: Vec<Vec<String>> = v["rows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| names.iter().map(|n| num(&r[n.as_str()])).collect())
                    .collect();
                print!("{}", table(&headers, &rows));
                if v["truncated"].as_bool() == Some(true) {
                    eprintln!("(first {} rows; raise --limit for more)", rows.len());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_version(v: &Value) {
    println!(
        "{}@v{}  id {}  ({} rows, {} bytes, {})",
        s(&v["name"]),
        s(&v["version"]),
        s(&v["id"]),
        count(&v["row_count"]),
        count(&v["size_bytes"]),
        s(&v["format"])
    );
    println!("registered: {}", time(v["created_at"].as_i64()));
    println!("source:     {}", s(&v["source"]));
    println!("lineage:    {}", s(&v["lineage_node"]));
    let change = &v["schema_change"];
    println!("schema:     {}", s(&change["kind"]));
    for c in change["changes"].as_array().into_iter().flatten() {
        println!(
            "  {:<10} {}: {}",
            s(&c["kind"]),
            s(&c["column"]),
            s(&c["detail"])
        );
    }
    println!();
    let rows: Vec<Vec<String>> = v["profile"]["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let q = &c["quantiles"];
            vec![
                s(&c["name"]),
                s(&c["type"]),
                format!("{:.1}%", c["null_fraction"].as_f64().unwrap_or(0.0) * 100.0),
                num(&c["distinct"]),
                num(&c["min"]),
                num(&q["p50"]),
                num(&c["max"]),
                num(&c["mean"]),
                num(&c["std"]),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "column",
                "type",
                "nulls",
                "distinct≈",
                "min",
                "median≈",
                "max",
                "mean",
                "std"
            ],
            &rows
        )
    );
}
