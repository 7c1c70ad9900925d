//! The drift report as one standalone HTML page with inline SVG: the
//! verdict, a chart of every column's score against its threshold, and per
//! column the reference and current distributions overlaid. No scripts,
//! no external files, so it can be mailed or attached to a run.

use std::fmt::Write;

use crate::drift::{ColumnDrift, DriftReport, Plot};

const REFERENCE: &str = "#6b7a8f";
const CURRENT: &str = "#e07a2f";
const DRIFTED: &str = "#c0392b";
const STABLE: &str = "#2e8b57";

/// The whole page.
pub fn render_html(report: &DriftReport, title: &str) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let verdict = if report.dataset_drift {
        format!("<span style=\"color:{DRIFTED}\">Dataset drift detected</span>")
    } else {
        format!("<span style=\"color:{STABLE}\">No dataset drift</span>")
    };
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\
table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}}\
.num{{text-align:right;font-variant-numeric:tabular-nums}}.legend span{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}}\
</style></head><body><h1>{t}</h1><h2>{verdict}</h2>\
<p>{d} of {n} columns drifted (share {share:.3}; the dataset drifts at {thr}). \
Reference: {rr} rows; current: {cr} rows.</p>",
        t = escape(title),
        d = report.drifted_columns,
        n = report.number_of_columns,
        share = report.drift_share,
        thr = report.drift_share_threshold,
        rr = report.reference_rows,
        cr = report.current_rows,
    );
    out.push_str(
        "<h3>Drift score per column</h3><p>Each bar is the column's score relative to its \
threshold: 1 at the dashed line, longer when drifted (p-values on a log scale, so \
p = threshold² is 2).</p>",
    );
    out.push_str(&score_chart(&report.columns));
    let _ = write!(
        out,
        "<h3>Columns</h3><p class=\"legend\"><span style=\"background:{REFERENCE}\"></span>reference\
<span style=\"background:{CURRENT}\"></span>current</p><table><tr><th>column</th><th>type</th>\
<th>method</th><th class=\"num\">score</th><th>drift when</th><th>verdict</th><th>distributions</th></tr>"
    );
    let mut columns: Vec<&ColumnDrift> = report.columns.iter().chain(&report.prediction).collect();
    columns.sort_by(|a, b| b.drifted.cmp(&a.drifted).then(a.column.cmp(&b.column)));
    for c in columns {
        let is_prediction = report
            .prediction
            .as_ref()
            .is_some_and(|p| p.column == c.column);
        let _ = write!(
            out,
            "<tr><td>{name}{pred}</td><td>{ty:?}</td><td>{m}</td><td class=\"num\">{s}</td>\
<td>score {cmp} {th}</td><td style=\"color:{col}\">{v}</td><td>{plot}</td></tr>",
            name = escape(&c.column),
            pred = if is_prediction { " (prediction)" } else { "" },
            ty = c.column_type,
            m = c.method.name(),
            s = format_score(c.score),
            cmp = serde_json::to_value(c.comparator)
                .ok()
                .and_then(|v| v.as_str().map(escape))
                .unwrap_or_default(),
            th = c.threshold,
            col = if c.drifted { DRIFTED } else { STABLE },
            v = if c.drifted { "drifted" } else { "stable" },
            plot = c.plot.as_ref().map(distribution_svg).unwrap_or_default(),
        );
    }
    out.push_str("</table>");
    if !report.skipped.is_empty() {
        out.push_str("<h3>Not compared</h3><ul>");
        for s in &report.skipped {
            let _ = write!(out, "<li>{}: {}</li>", escape(&s.column), escape(&s.reason));
        }
        out.push_str("</ul>");
    }
    out.push_str("</body></html>\n");
    out
}

fn format_score(x: f64) -> String {
    if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// How far past its threshold a score is, on one scale for p-values and
/// distances: 1 at the threshold, above 1 when drifted.
fn severity(c: &ColumnDrift) -> f64 {
    let s = if c.method.is_p_value() {
        let p = c.score.max(1e-300);
        if c.threshold <= 0.0 {
            0.0
        } else {
            p.log10() / c.threshold.log10()
        }
    } else if c.threshold > 0.0 {
        c.score / c.threshold
    } else {
        0.0
    };
    if s.is_finite() { s.max(0.0) } else { 0.0 }
}

/// Horizontal bars of each column's severity with the threshold line.
fn score_chart(columns: &[ColumnDrift]) -> String {
    let row = 18.0;
    let label = 180.0;
    let width = 420.0;
    let max = columns
        .iter()
        .map(severity)
        .fold(2.0_f64, f64::max)
        .min(10.0);
    let height = row * columns.len() as f64 + 24.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" role=\"img\" \
aria-label=\"drift score per column relative to its threshold\">",
        w = label + width + 60.0
    );
    for (i, c) in columns.iter().enumerate() {
        let y = i as f64 * row;
        let s = severity(c).min(max);
        let _ = write!(
            out,
            "<text x=\"{lx}\" y=\"{ty}\" font-size=\"12\" text-anchor=\"end\">{name}</text>\
<rect x=\"{label}\" y=\"{ry}\" width=\"{bw:.1}\" height=\"{bh}\" fill=\"{fill}\"><title>{name}: {m} {score}</title></rect>",
            lx = label - 6.0,
            ty = y + 13.0,
            name = escape(&c.column),
            ry = y + 3.0,
            bw = s / max * width,
            bh = row - 6.0,
            fill = if c.drifted { DRIFTED } else { STABLE },
            m = c.method.name(),
            score = format_score(c.score),
        );
    }
    let tx = label + width / max;
    let _ = write!(
        out,
        "<line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"0\" y2=\"{y2}\" stroke=\"#222\" stroke-dasharray=\"4 3\"/>\
<text x=\"{tx:.1}\" y=\"{ty}\" font-size=\"11\" text-anchor=\"middle\">threshold</text></svg>",
        y2 = height - 14.0,
        ty = height - 2.0,
    );
    out
}

/// Reference and current distributions, overlaid.
fn distribution_svg(plot: &Plot) -> String {
    let (w, h) = (260.0, 70.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h2}\">",
        h2 = h + 14.0
    );
    let (reference, current, labels): (&[f64], &[f64], Vec<String>) = match plot {
        Plot::Histogram {
            edges,
            reference,
            current,
        } => (
            reference,
            current,
            vec![
                format_score(edges.first().copied().unwrap_or(0.0)),
                format_score(edges.last().copied().unwrap_or(0.0)),
            ],
        ),
        Plot::Bars {
            labels,
            reference,
            current,
        } => (reference, current, labels.clone()),
    };
    let n = reference.len().max(1) as f64;
    let max = reference
        .iter()
        .chain(current)
        .copied()
        .fold(1e-12_f64, f64::max);
    let bw = w / n;
    for (i, (r, c)) in reference.iter().zip(current).enumerate() {
        let x = i as f64 * bw;
        let rh = r / max * h;
        let ch = c / max * h;
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{ry:.1}\" width=\"{rw:.1}\" height=\"{rh:.1}\" fill=\"{REFERENCE}\" fill-opacity=\"0.7\"/>\
<rect x=\"{cx:.1}\" y=\"{cy:.1}\" width=\"{rw:.1}\" height=\"{ch:.1}\" fill=\"{CURRENT}\" fill-opacity=\"0.7\"/>",
            ry = h - rh,
            rw = (bw / 2.0 - 0.5).max(0.5),
            cx = x + bw / 2.0,
            cy = h - ch,
        );
    }
    match plot {
        Plot::Histogram { .. } => {
            let _ = write!(
                out,
                "<text x=\"0\" y=\"{y}\" font-size=\"10\">{a}</text><text x=\"{w}\" y=\"{y}\" font-size=\"10\" text-anchor=\"end\">{b}</text>",
                y = h + 12.0,
                a = escape(&labels[0]),
                b = escape(&labels[1]),
            );
        }
        Plot::Bars { .. } => {
            for (i, l) in labels.iter().enumerate().take(8) {
                let short: String = l.chars().take(6).collect();
                let _ = write!(
                    out,
                    "<text x=\"{x:.1}\" y=\"{y}\" font-size=\"9\">{t}</text>",
                    x = i as f64 * bw,
                    y = h + 12.0,
                    t = escape(&short),
                );
            }
        }
    }
    out.push_str("</svg>");
    out
}

/// One point of a line chart: x (ms since the epoch), y, whether it is
/// marked as alarming, and its tooltip.
pub struct LinePoint {
    pub at_ms: i64,
    pub value: f64,
    pub alarm: bool,
    pub note: String,
}

/// A line chart of a series over time, with an optional dashed threshold.
/// The y axis runs from 0 (or the series' minimum when negative) to the
/// largest of the values and the threshold.
pub fn line_chart(label: &str, points: &[LinePoint], threshold: Option<f64>) -> String {
    let (w, h, pad) = (720.0, 200.0, 34.0);
    let lo = points.iter().map(|p| p.value).fold(0.0_f64, f64::min);
    let hi = points
        .iter()
        .map(|p| p.value)
        .chain(threshold)
        .fold(f64::MIN_POSITIVE, f64::max);
    let (t0, t1) = match (points.first(), points.last()) {
        (Some(a), Some(b)) if b.at_ms > a.at_ms => (a.at_ms, b.at_ms),
        (Some(a), _) => (a.at_ms - 1, a.at_ms + 1),
        _ => (0, 1),
    };
    let x = |t: i64| pad + (t - t0) as f64 / (t1 - t0) as f64 * (w - 2.0 * pad);
    let y = |v: f64| h - pad - (v - lo) / (hi - lo).max(f64::MIN_POSITIVE) * (h - 2.0 * pad);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{l}\">",
        l = escape(label)
    );
    if let Some(t) = threshold {
        let _ = write!(
            out,
            "<line x1=\"{pad}\" x2=\"{x2}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\" stroke=\"#222\" stroke-dasharray=\"4 3\"/>",
            x2 = w - pad,
            ty = y(t)
        );
    }
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { "L" },
                x(p.at_ms),
                y(p.value)
            )
        })
        .collect();
    let _ = write!(
        out,
        "<path d=\"{}\" fill=\"none\" stroke=\"{CURRENT}\" stroke-width=\"2\"/>",
        path.join(" ")
    );
    for p in points {
        let _ = write!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{}</title></circle>",
            x(p.at_ms),
            y(p.value),
            if p.alarm { DRIFTED } else { STABLE },
            escape(&p.note)
        );
    }
    let _ = write!(
        out,
        "<text x=\"2\" y=\"{top}\" font-size=\"11\">{hi}</text><text x=\"2\" y=\"{bottom}\" font-size=\"11\">{lo}</text>\
<text x=\"{pad}\" y=\"{h}\" font-size=\"10\">{start}</text><text x=\"{end_x}\" y=\"{h}\" font-size=\"10\" text-anchor=\"end\">{end}</text></svg>",
        top = pad - 4.0,
        bottom = h - pad,
        hi = compact(hi),
        lo = compact(lo),
        end_x = w - pad,
        start = utc(t0),
        end = utc(t1),
    );
    out
}

/// An axis label: SI suffixes past ten thousand (75.9M), else four
/// significant places.
fn compact(x: f64) -> String {
    let a = x.abs();
    for (scale, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e4, "k")] {
        if a >= scale {
            let v = x / if suffix == "k" { 1e3 } else { scale };
            return format!("{v:.1}{suffix}");
        }
    }
    format_score(x)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a time in ms since the epoch.
fn utc(ms: i64) -> String {
    keel_core::time::display_utc(ms)
}

/// A page of titled charts.
pub fn chart_page(title: &str, intro: &str, charts: &[(String, String)]) -> String {
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
<body style=\"font-family:system-ui,sans-serif;margin:2em;color:#222\"><h1>{t}</h1><p>{i}</p>",
        t = escape(title),
        i = escape(intro)
    );
    for (heading, svg) in charts {
        let _ = write!(out, "<h3>{}</h3>{svg}", escape(heading));
    }
    out.push_str("</body></html>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_000_000_000), "2026-11-30 00:53:20");
        assert_eq!(compact(75_902_976.0), "75.9M");
        assert_eq!(compact(12_345.0), "12.3k");
        assert_eq!(compact(0.5), "0.5000");
    }

    #[test]
    fn a_line_chart_draws_every_point_and_the_threshold() {
        let points: Vec<LinePoint> = (0..5)
            .map(|i| LinePoint {
                at_ms: i * 60_000,
                value: i as f64 / 4.0,
                alarm: i >= 2,
                note: format!("p{i}"),
            })
            .collect();
        let svg = line_chart("share", &points, Some(0.5));
        assert_eq!(svg.matches("<circle").count(), 5);
        assert_eq!(svg.matches("stroke-dasharray").count(), 1);
        assert!(svg.contains("1970-01-01 00:04:00"));
        assert!(line_chart("empty", &[], None).contains("<svg"));
    }
}
