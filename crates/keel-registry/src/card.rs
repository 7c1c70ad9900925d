//! Model cards: what a model version is for, what it was trained on, how
//! well it did, what it needs, and its limits — generated from what Keel
//! knows (registry, tracking run, lineage, signature, dependencies,
//! checkpoints), with the fields only people can write ([`EDITABLE`]) kept
//! per version. The card is JSON ([`build`]); [`markdown`] and [`html`]
//! render that JSON, so all three always say the same.

use std::fmt::Write;

use serde_json::{Map, Value, json};

use crate::{
    Checkpoint, ModelCardRecord, ModelVersion, RegisteredModel, RegistryError, VersionExtras,
};

/// Fields people write; everything else is generated. `owners` and
/// `contacts` are lists of strings, the others text (Markdown allowed).
pub const EDITABLE: [&str; 9] = [
    "intended_use",
    "out_of_scope_use",
    "training_data_summary",
    "evaluation_notes",
    "fairness",
    "limitations",
    "ethical_considerations",
    "owners",
    "contacts",
];

const LISTS: [&str; 2] = ["owners", "contacts"];

/// Checks an edit: known fields, the right type, `null` to remove.
pub fn check_edit(fields: &Map<String, Value>) -> Result<(), RegistryError> {
    if fields.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "fields: give at least one of {}",
            EDITABLE.join(", ")
        )));
    }
    for (k, v) in fields {
        if !EDITABLE.contains(&k.as_str()) {
            return Err(RegistryError::Invalid(format!(
                "{k}: not an editable model-card field; editable are {}",
                EDITABLE.join(", ")
            )));
        }
        let ok = match v {
            Value::Null => true,
            Value::String(s) => !LISTS.contains(&k.as_str()) && s.len() <= 64 * 1024,
            Value::Array(items) => {
                LISTS.contains(&k.as_str())
                    && items.len() <= 100
                    && items
                        .iter()
                        .all(|i| i.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 500))
            }
            _ => false,
        };
        if !ok {
            let want = if LISTS.contains(&k.as_str()) {
                "a list of up to 100 non-empty strings"
            } else {
                "text of at most 64 KiB"
            };
            return Err(RegistryError::Invalid(format!(
                "{k}: must be {want}, or null to remove it"
            )));
        }
    }
    Ok(())
}

/// The tracking run a version came from, as the card shows it.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub run_id: String,
    pub run_name: String,
    pub user: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub params: Vec<(String, String)>,
    pub metrics: Vec<(String, f64)>,
}

/// A dataset upstream of the version (from the lineage graph).
#[derive(Debug, Clone, Default)]
pub struct DatasetSummary {
    pub name: String,
    pub key: String,
    pub attrs: Value,
}

/// Everything a card is generated from.
pub struct CardInputs<'a> {
    pub model: &'a RegisteredModel,
    pub version: &'a ModelVersion,
    pub extras: &'a VersionExtras,
    pub run: Option<RunSummary>,
    pub datasets: Vec<DatasetSummary>,
    pub checkpoints: &'a [Checkpoint],
    pub edited: Option<&'a ModelCardRecord>,
    pub generated_at: i64,
}

/// The card as JSON.
pub fn build(i: &CardInputs<'_>) -> Value {
    let v = i.version;
    let edited = |k: &str| i.edited.and_then(|e| e.fields.get(k)).cloned();
    let tag = |k: &str| {
        v.tags
            .iter()
            .chain(&i.model.tags)
            .find(|t| t.key == k)
            .map(|t| t.value.clone())
    };
    let owners = edited("owners").unwrap_or_else(|| {
        let mut o: Vec<String> = tag("owner").into_iter().collect();
        if o.is_empty()
            && let Some(r) = i.run.as_ref().filter(|r| !r.user.is_empty())
        {
            o.push(r.user.clone());
        }
        json!(o)
    });
    let intended = edited("intended_use").unwrap_or_else(|| {
        json!(
            v.description.clone().filter(|d| !d.is_empty()).or_else(|| i
                .model
                .description
                .clone()
                .filter(|d| !d.is_empty()))
        )
    });
    let aliases: Vec<&str> = i
        .model
        .aliases
        .iter()
        .filter(|(_, n)| *n == v.version)
        .map(|(a, _)| a.as_str())
        .collect();
    let metrics: Map<String, Value> = i
        .run
        .as_ref()
        .map(|r| {
            r.metrics
                .iter()
                .map(|(k, x)| (k.clone(), json!(x)))
                .collect()
        })
        .unwrap_or_default();
    let best = i
        .checkpoints
        .iter()
        .map(|c| json!({"step": c.step, "metrics": c.metrics, "artifact_uri": c.artifact_uri}))
        .collect::<Vec<_>>();
    let total_size: i64 = i.extras.files.iter().map(|f| f.size).sum();
    json!({
        "model": {
            "name": v.name,
            "version": v.version,
            "description": v.description,
            "aliases": aliases,
            "stage": v.current_stage,
            "created_at": v.creation_timestamp,
            "source": v.source,
            "storage_location": v.storage_location,
            "tags": v.tags.iter().map(|t| (t.key.clone(), json!(t.value))).collect::<Map<_, _>>(),
        },
        "owners": owners,
        "contacts": edited("contacts").unwrap_or(json!([])),
        "intended_use": intended,
        "out_of_scope_use": edited("out_of_scope_use"),
        "training_data": {
            "datasets": i.datasets.iter().map(|d| json!({"name": d.name, "node": d.key, "attrs": d.attrs})).collect::<Vec<_>>(),
            "summary": edited("training_data_summary"),
        },
        "training": i.run.as_ref().map(|r| json!({
            "run_id": r.run_id,
            "run_name": r.run_name,
            "user": r.user,
            "start_time": r.start_time,
            "end_time": r.end_time,
            "params": r.params.iter().map(|(k, x)| (k.clone(), json!(x))).collect::<Map<_, _>>(),
        })),
        "evaluation": {
            "metrics": metrics,
            "quality_suites": [],
            "notes": edited("evaluation_notes"),
        },
        "checkpoints": best,
        "signature": i.extras.signature,
        "dependencies": i.extras.dependencies,
        "integrity": {
            "files": i.extras.files.len(),
            "bytes": total_size,
            "verified_on_download": !i.extras.files.is_empty(),
        },
        "fairness": edited("fairness"),
        "limitations": edited("limitations"),
        "ethical_considerations": edited("ethical_considerations"),
        "generated_at": i.generated_at,
        "edited": i.edited.map(|e| json!({"updated_at": e.updated_at, "updated_by": e.updated_by})),
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Null => None,
        Value::String(_) => None,
        other => Some(other.to_string()),
    }
}

fn time(ms: &Value) -> String {
    ms.as_i64()
        .map(keel_core::time::rfc3339_millis)
        .unwrap_or_default()
}

/// Markdown, for READMEs and review threads. Sections that Keel could
/// not fill and nobody wrote say so, so gaps are visible.
pub fn markdown(card: &Value) -> String {
    let mut s = String::new();
    let m = &card["model"];
    let _ = writeln!(
        s,
        "# Model card: {} v{}\n",
        m["name"].as_str().unwrap_or(""),
        m["version"]
    );
    if let Some(d) = text(&m["description"]) {
        let _ = writeln!(s, "{d}\n");
    }
    let aliases: Vec<String> = m["aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .map(|a| format!("`@{a}`"))
        .collect();
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| aliases | {} |",
        if aliases.is_empty() {
            "—".into()
        } else {
            aliases.join(", ")
        }
    );
    let _ = writeln!(s, "| stage | {} |", m["stage"].as_str().unwrap_or("None"));
    let _ = writeln!(s, "| registered | {} |", time(&m["created_at"]));
    let _ = writeln!(s, "| source | `{}` |", m["source"].as_str().unwrap_or(""));
    let list = |v: &Value| -> String {
        let items: Vec<&str> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str())
            .collect();
        if items.is_empty() {
            "—".into()
        } else {
            items.join(", ")
        }
    };
    let _ = writeln!(s, "| owners | {} |", list(&card["owners"]));
    let _ = writeln!(s, "| contacts | {} |\n", list(&card["contacts"]));
    let missing = "_Not written yet: `keel models card edit` fills it._";
    let section = |s: &mut String, title: &str, v: &Value| {
        let _ = writeln!(
            s,
            "## {title}\n\n{}\n",
            text(v).unwrap_or_else(|| missing.into())
        );
    };
    section(&mut s, "Intended use", &card["intended_use"]);
    if let Some(t) = text(&card["out_of_scope_use"]) {
        let _ = writeln!(s, "**Out of scope:** {t}\n");
    }
    let _ = writeln!(s, "## Training data\n");
    let ds = card["training_data"]["datasets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if ds.is_empty() {
        let _ = writeln!(s, "No dataset recorded in the lineage graph.\n");
    }
    for d in &ds {
        let digest = d["attrs"]["digest"]
            .as_str()
            .map(|x| format!(" (digest `{x}`)"))
            .unwrap_or_default();
        let src = d["attrs"]["source"]
            .as_str()
            .map(|x| format!(", from `{x}`"))
            .unwrap_or_default();
        let _ = writeln!(s, "- **{}**{digest}{src}", d["name"].as_str().unwrap_or(""));
    }
    if !ds.is_empty() {
        s.push('\n');
    }
    if let Some(t) = text(&card["training_data"]["summary"]) {
        let _ = writeln!(s, "{t}\n");
    }
    if let Some(t) = card["training"].as_object() {
        let _ = writeln!(
            s,
            "## Training\n\nRun `{}` ({}) by {}, started {}.\n",
            t["run_id"].as_str().unwrap_or(""),
            t["run_name"].as_str().unwrap_or(""),
            t["user"]
                .as_str()
                .filter(|u| !u.is_empty())
                .unwrap_or("unknown"),
            time(&t["start_time"])
        );
        if let Some(p) = t["params"].as_object().filter(|p| !p.is_empty()) {
            let _ = writeln!(s, "| parameter | value |\n|---|---|");
            for (k, v) in p {
                let _ = writeln!(s, "| {k} | {} |", v.as_str().unwrap_or(""));
            }
            s.push('\n');
        }
    }
    let _ = writeln!(s, "## Evaluation\n");
    match card["evaluation"]["metrics"]
        .as_object()
        .filter(|m| !m.is_empty())
    {
        Some(metrics) => {
            let _ = writeln!(s, "| metric | value |\n|---|---|");
            for (k, v) in metrics {
                let _ = writeln!(
                    s,
                    "| {k} | {} |",
                    v.as_f64().map(|x| format!("{x:.4}")).unwrap_or_default()
                );
            }
            s.push('\n');
        }
        None => {
            let _ = writeln!(s, "No metrics recorded on the training run.\n");
        }
    }
    if let Some(t) = text(&card["evaluation"]["notes"]) {
        let _ = writeln!(s, "{t}\n");
    }
    if let Some(cps) = card["checkpoints"].as_array().filter(|c| !c.is_empty()) {
        let _ = writeln!(
            s,
            "Checkpoints: {}.\n",
            cps.iter()
                .map(|c| format!("step {}", c["step"]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(s, "## Signature\n");
    match card["signature"].as_object() {
        Some(sig) => {
            for part in ["inputs", "outputs"] {
                let Some(cols) = sig.get(part).and_then(Value::as_array) else {
                    continue;
                };
                let _ = writeln!(
                    s,
                    "**{part}:**\n\n| name | type | shape | required |\n|---|---|---|---|"
                );
                for c in cols {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} |",
                        c["name"].as_str().unwrap_or("—"),
                        c["type"].as_str().or(c["dtype"].as_str()).unwrap_or(""),
                        c.get("shape")
                            .filter(|x| !x.is_null())
                            .map(Value::to_string)
                            .unwrap_or_else(|| "—".into()),
                        if c["required"].as_bool() == Some(false) {
                            "no"
                        } else {
                            "yes"
                        }
                    );
                }
                s.push('\n');
            }
        }
        None => {
            let _ = writeln!(s, "No signature recorded.\n");
        }
    }
    let _ = writeln!(s, "## Dependencies\n");
    match card["dependencies"].as_object() {
        Some(d) => {
            let str_of = |k: &str| d.get(k).and_then(Value::as_str).filter(|x| !x.is_empty());
            if let Some(p) = str_of("python_version") {
                let _ = writeln!(s, "- Python {p}");
            }
            if let Some(m) = str_of("mlflow_version") {
                let _ = writeln!(s, "- MLflow {m}");
            }
            let flavors: Vec<String> = d
                .get("flavors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|f| {
                    let name = f["name"].as_str().unwrap_or("");
                    match (f["version"].as_str(), f["loader_module"].as_str()) {
                        (Some(v), _) => format!("{name} {v}"),
                        (None, Some(l)) => format!("{name} (via {l})"),
                        _ => name.to_owned(),
                    }
                })
                .collect();
            if !flavors.is_empty() {
                let _ = writeln!(s, "- flavors: {}", flavors.join(", "));
            }
            let reqs: Vec<&str> = d
                .get("requirements")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !reqs.is_empty() {
                let _ = writeln!(s, "- requirements: `{}`", reqs.join("`, `"));
            }
            match (str_of("git_commit"), str_of("repository")) {
                (Some(c), Some(r)) => {
                    let _ = writeln!(s, "- code: `{r}` at `{c}`");
                }
                (Some(c), None) => {
                    let _ = writeln!(s, "- code: commit `{c}`");
                }
                _ => {}
            }
            if let Some(e) = str_of("entry_point") {
                let _ = writeln!(s, "- entry point: `{e}`");
            }
            if let Some(i) = str_of("container_image") {
                let _ = writeln!(s, "- container image: `{i}`");
            }
            s.push('\n');
        }
        None => {
            let _ = writeln!(s, "No dependencies recorded.\n");
        }
    }
    section(&mut s, "Fairness", &card["fairness"]);
    section(&mut s, "Limitations", &card["limitations"]);
    if let Some(t) = text(&card["ethical_considerations"]) {
        let _ = writeln!(s, "## Ethical considerations\n\n{t}\n");
    }
    let i = &card["integrity"];
    let _ = writeln!(
        s,
        "---\n{} artifact files ({} bytes), each SHA-256 recorded at registration and verified on every download. Generated by Keel at {}{}.",
        i["files"],
        i["bytes"],
        time(&card["generated_at"]),
        card["edited"]
            .as_object()
            .map(|e| format!(
                "; edited by {} at {}",
                e["updated_by"].as_str().unwrap_or(""),
                time(&e["updated_at"])
            ))
            .unwrap_or_default()
    );
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A standalone HTML page of the card: the Markdown's structure, with
/// every value escaped.
pub fn html(card: &Value) -> String {
    let md = markdown(card);
    let mut body = String::new();
    let mut in_table = false;
    let mut in_list = false;
    let inline = |t: &str| -> String {
        // `code` and **bold**, on escaped text.
        let mut out = String::new();
        let mut code = false;
        for (n, part) in escape(t).split('`').enumerate() {
            if n > 0 {
                out.push_str(if code { "</code>" } else { "<code>" });
                code = !code;
            }
            let mut bold = false;
            for (m, b) in part.split("**").enumerate() {
                if m > 0 && !code {
                    out.push_str(if bold { "</strong>" } else { "<strong>" });
                    bold = !bold;
                } else if m > 0 {
                    out.push_str("**");
                }
                out.push_str(b);
            }
            if bold {
                out.push_str("</strong>");
            }
        }
        if code {
            out.push_str("</code>");
        }
        out
    };
    for line in md.lines() {
        if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                body.push_str("<table>\n");
                in_table = true;
            }
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            body.push_str("<tr>");
            for c in cells {
                let _ = write!(body, "<td>{}</td>", inline(c));
            }
            body.push_str("</tr>\n");
            continue;
        } else if in_table {
            body.push_str("</table>\n");
            in_table = false;
        }
        if let Some(item) = line.strip_prefix("- ") {
            if !in_list {
                body.push_str("<ul>\n");
                in_list = true;
            }
            let _ = writeln!(body, "<li>{}</li>", inline(item));
            continue;
        } else if in_list {
            body.push_str("</ul>\n");
            in_list = false;
        }
        if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(body, "<h1>{}</h1>", inline(h));
        } else if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(body, "<h2>{}</h2>", inline(h));
        } else if line == "---" {
            body.push_str("<hr>\n");
        } else if !line.is_empty() {
            let _ = writeln!(body, "<p>{}</p>", inline(line));
        }
    }
    if in_table {
        body.push_str("</table>\n");
    }
    if in_list {
        body.push_str("</ul>\n");
    }
    let title = format!(
        "{} v{}",
        card["model"]["name"].as_str().unwrap_or(""),
        card["model"]["version"]
    );
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Model card: {}</title>\n<style>body{{font-family:Helvetica,Arial,sans-serif;max-width:860px;margin:2em auto;color:#222;line-height:1.45}}table{{border-collapse:collapse;margin:.5em 0}}td{{border:1px solid #ddd;padding:4px 10px}}code{{background:#f4f4f4;padding:1px 4px}}h2{{border-bottom:1px solid #eee}}</style></head>\n<body>\n{body}</body></html>\n",
        escape(&title)
    )
}
