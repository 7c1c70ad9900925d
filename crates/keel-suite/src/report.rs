//! A suite result as JUnit XML, so CI systems list each check.

use std::fmt::Write;

use serde_json::Value;

use crate::run::{Status, SuiteResult};

/// One `<testsuite>` with a `<testcase>` per check: a failed check is a
/// `<failure>` (a `<skipped>` note for warnings), a check that could not
/// run an `<error>`.
pub fn junit(result: &SuiteResult) -> String {
    let failures = result
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    let errors = result
        .checks
        .iter()
        .filter(|c| c.status == Status::Error)
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<testsuite name="{}" tests="{}" failures="{failures}" errors="{errors}" time="{:.3}">"#,
        escape(&result.suite),
        result.checks.len(),
        result.seconds
    );
    for c in &result.checks {
        let kind = serde_json::to_value(c.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"  <testcase classname="{}.{kind}" name="{}""#,
            escape(&result.suite),
            escape(&c.name)
        );
        let detail = format!(
            "value {} threshold {} severity {:?}",
            c.value.map_or("-".to_string(), |v| format!("{v}")),
            c.threshold,
            c.severity
        );
        match c.status {
            Status::Pass => out.push_str("/>\n"),
            Status::Fail => {
                let _ = writeln!(
                    out,
                    ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                    escape(&detail),
                    escape(&c.evidence.to_string())
                );
            }
            Status::Error => {
                let _ = writeln!(
                    out,
                    ">\n    <error message=\"{}\"/>\n  </testcase>",
                    escape(c.evidence["error"].as_str().unwrap_or(&detail))
                );
            }
        }
    }
    out.push_str("</testsuite>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page a person reads in a browser: the verdict, a table of checks, and
/// for each check its plot where one helps — the calibration curve (ECE),
/// the worst slices against the overall metric, per-group rates (fairness),
/// flip rates (robustness) — with the evidence as JSON underneath.
pub fn html(result: &SuiteResult) -> String {
    let mut out = String::new();
    let verdict = if result.passed { "PASSED" } else { "FAILED" };
    let _ = write!(
        out,
        r#"<!doctype html><html><head><meta charset="utf-8"><title>{name}: {verdict}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}
.pass{{color:#1a7f37}}.fail{{color:#cf222e}}.error{{color:#9a6700}}
section{{margin:1.5em 0}}pre{{background:#f6f8fa;padding:8px;overflow:auto;max-height:20em}}</style>
</head><body><h1>{name} — <span class="{cls}">{verdict}</span></h1>
<p>{n} checks in {secs:.2} s; rows: {rows}</p><table><tr><th>status</th><th>check</th><th>value</th><th>threshold</th><th>severity</th></tr>"#,
        name = escape(&result.suite),
        cls = if result.passed { "pass" } else { "fail" },
        n = result.checks.len(),
        secs = result.seconds,
        rows = escape(
            &result
                .rows
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    for (i, c) in result.checks.iter().enumerate() {
        let status = status_name(c.status);
        let _ = write!(
            out,
            r##"<tr><td class="{status}">{status}</td><td><a href="#c{i}">{}</a></td><td>{}</td><td>{}</td><td>{:?}</td></tr>"##,
            escape(&c.name),
            c.value.map_or("-".to_string(), |v| format!("{v:.4}")),
            escape(&c.threshold.to_string()),
            c.severity
        );
    }
    out.push_str("</table>");
    for (i, c) in result.checks.iter().enumerate() {
        let _ = write!(
            out,
            r#"<section id="c{i}"><h2 class="{}">{}</h2>"#,
            status_name(c.status),
            escape(&c.name)
        );
        let e = &c.evidence;
        if let Some(bins) = e["calibration_curve"].as_array() {
            let points: Vec<(f64, f64)> = bins
                .iter()
                .filter_map(|b| {
                    Some((
                        b["mean_predicted"].as_f64()?,
                        b["fraction_positive"].as_f64()?,
                    ))
                })
                .collect();
            out.push_str(&calibration_svg(&points));
        }
        if let Some(slices) = e["worst_slices"]["slices"]
            .as_array()
            .or_else(|| e["discovered"]["slices"].as_array())
        {
            let overall = e["worst_slices"]["overall"]
                .as_f64()
                .or_else(|| e["discovered"]["overall"].as_f64());
            let bars: Vec<(String, f64)> = slices
                .iter()
                .filter_map(|s| Some((slice_label(s), s["metric"].as_f64()?)))
                .collect();
            out.push_str("<p>Worst slices (accuracy), against the overall line:</p>");
            out.push_str(&bars_svg(&bars, overall));
        }
        if let Some(groups) = e["groups"].as_array() {
            let bars: Vec<(String, f64)> = groups
                .iter()
                .filter_map(|g| {
                    let name = g["group"]
                        .as_array()?
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" × ");
                    Some((name, g["selection_rate"].as_f64()?))
                })
                .collect();
            out.push_str("<p>Selection rate per group:</p>");
            out.push_str(&bars_svg(&bars, e["overall"]["selection_rate"].as_f64()));
        }
        if let Some(flips) = e["flip_rate"].as_f64() {
            out.push_str("<p>Predictions flipped by the perturbation:</p>");
            out.push_str(&bars_svg(&[("flip rate".into(), flips)], None));
        }
        let _ = write!(
            out,
            "<details><summary>evidence</summary><pre>{}</pre></details></section>",
            escape(&serde_json::to_string_pretty(e).unwrap_or_default())
        );
    }
    out.push_str("</body></html>\n");
    out
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Error => "error",
    }
}

fn slice_label(s: &Value) -> String {
    s["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let v = &c["value"];
            let value = if let Some(cat) = v["category"].as_str() {
                cat.to_string()
            } else if v["range"].is_object() {
                format!(
                    "{:.3}–{:.3}",
                    v["range"]["low"].as_f64().unwrap_or(f64::NAN),
                    v["range"]["high"].as_f64().unwrap_or(f64::NAN)
                )
            } else {
                "missing".to_string()
            };
            format!("{} = {value}", c["column"].as_str().unwrap_or(""))
        })
        .collect::<Vec<_>>()
        .join(" ∧ ")
}

/// Horizontal bars of values in [0, 1] with an optional reference line.
fn bars_svg(bars: &[(String, f64)], reference: Option<f64>) -> String {
    const LABEL: f64 = 260.0;
    const WIDTH: f64 = 360.0;
    let height = 22.0 * bars.len() as f64 + 10.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-size="12">"#,
        LABEL + WIDTH + 60.0
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = 5.0 + 22.0 * i as f64;
        let w = WIDTH * v.clamp(0.0, 1.0);
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{LABEL}" y="{y}" width="{w:.1}" height="16" fill="#4c78a8"/><text x="{}" y="{}">{v:.3}</text>"##,
            LABEL - 6.0,
            y + 12.0,
            escape(label),
            LABEL + w + 4.0,
            y + 12.0
        );
    }
    if let Some(r) = reference {
        let x = LABEL + WIDTH * r.clamp(0.0, 1.0);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="0" y2="{height}" stroke="#cf222e" stroke-dasharray="4 3"><title>overall {r:.4}</title></line>"##
        );
    }
    s.push_str("</svg>");
    s
}

/// A reliability diagram: mean predicted probability against the fraction
/// of positives per bin, with the diagonal of perfect calibration.
fn calibration_svg(points: &[(f64, f64)]) -> String {
    const SIZE: f64 = 260.0;
    const PAD: f64 = 40.0;
    let at = |x: f64, y: f64| (PAD + SIZE * x, PAD + SIZE * (1.0 - y));
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{w}" font-size="12"><rect x="{PAD}" y="{PAD}" width="{SIZE}" height="{SIZE}" fill="none" stroke="#999"/><line x1="{PAD}" y1="{}" x2="{}" y2="{PAD}" stroke="#bbb" stroke-dasharray="4 3"/>"##,
        PAD + SIZE,
        PAD + SIZE,
        w = SIZE + 2.0 * PAD
    );
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| {
            let (px, py) = at(*x, *y);
            format!("{px:.1},{py:.1}")
        })
        .collect();
    if !path.is_empty() {
        let _ = write!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#4c78a8" stroke-width="2"/>"##,
            path.join(" ")
        );
    }
    for (x, y) in points {
        let (px, py) = at(*x, *y);
        let _ = write!(
            s,
            r##"<circle cx="{px:.1}" cy="{py:.1}" r="3" fill="#4c78a8"/>"##
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">mean predicted probability</text><text x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle">fraction positive</text></svg>"#,
        PAD + SIZE / 2.0,
        SIZE + PAD + 30.0,
        PAD + SIZE / 2.0,
        PAD + SIZE / 2.0
    );
    s
}
