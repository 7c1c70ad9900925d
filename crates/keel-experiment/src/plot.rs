//! An SVG of a deployment over time: each variant's share of the decisions
//! and its mean reward per time bin, with the deployment's moves (canary
//! steps, rollbacks, winners) marked where they happened.

use std::fmt::Write;

use crate::deployments::LoggedDecision;
use crate::rollout::Event;
use crate::strategy::DeploymentSpec;

const WIDTH: f64 = 860.0;
const PANEL: f64 = 200.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 44.0;
const GAP: f64 = 56.0;
const COLOURS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// The most bins a plot is split into.
pub const MAX_BINS: usize = 500;

/// Renders the plot of `decisions` (in log order) over `bins` time bins.
pub fn svg(
    spec: &DeploymentSpec,
    decisions: &[LoggedDecision],
    events: &[Event],
    bins: usize,
) -> String {
    let k = spec.variants.len();
    let bins = bins.clamp(1, MAX_BINS);
    let t0 = decisions.iter().map(|d| d.at).min().unwrap_or(0);
    let t1 = decisions
        .iter()
        .map(|d| d.at)
        .chain(events.iter().map(|e| e.at))
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    let span = (t1 - t0) as f64;
    let bin_of = |t: i64| ((((t - t0) as f64 / span) * bins as f64) as usize).min(bins - 1);
    // Per bin and variant: decisions, rewards, reward sum.
    let mut count = vec![vec![0u64; k]; bins];
    let mut rewarded = vec![vec![0u64; k]; bins];
    let mut sum = vec![vec![0f64; k]; bins];
    for d in decisions {
        let b = bin_of(d.at);
        if d.arm < k {
            count[b][d.arm] += 1;
            if let Some(r) = d.reward {
                rewarded[b][d.arm] += 1;
                sum[b][d.arm] += r;
            }
        }
    }
    let share: Vec<Vec<Option<f64>>> = count
        .iter()
        .map(|row| {
            let total: u64 = row.iter().sum();
            row.iter()
                .map(|c| (total > 0).then(|| *c as f64 / total as f64))
                .collect()
        })
        .collect();
    let mean: Vec<Vec<Option<f64>>> = (0..bins)
        .map(|b| {
            (0..k)
                .map(|a| (rewarded[b][a] > 0).then(|| sum[b][a] / rewarded[b][a] as f64))
                .collect()
        })
        .collect();
    let means = mean.iter().flatten().flatten().copied();
    let (lo, hi) = means.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), m| {
        (lo.min(m), hi.max(m))
    });
    // Rewards within [0, 1] (and no rewards yet) get the unit scale.
    let (lo, hi) = if lo > hi || (lo >= 0.0 && hi <= 1.0) {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let height = TOP + 2.0 * PANEL + GAP + 40.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x_of = |b: f64| LEFT + plot_w * (b + 0.5) / bins as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="20" font-size="15" font-weight="bold">{} ({}): {} decisions</text>"#,
        escape(&spec.name),
        spec.strategy.kind(),
        decisions.len()
    );
    let panels = [
        ("traffic share", &share, 0.0, 1.0, TOP),
        ("mean reward", &mean, lo, hi, TOP + PANEL + GAP),
    ];
    for (title, series, lo, hi, top) in panels {
        let y_of = |v: f64| top + PANEL - PANEL * ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
        let _ = write!(
            out,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#999"/><text x="{LEFT}" y="{}" fill="#333">{title}</text>"##,
            top - 6.0
        );
        for i in 0..=4 {
            let v = lo + (hi - lo) * i as f64 / 4.0;
            let y = y_of(v);
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                tick(v)
            );
        }
        for a in 0..k {
            let colour = COLOURS[a % COLOURS.len()];
            let mut path = String::new();
            let mut pen_down = false;
            for (b, row) in series.iter().enumerate() {
                match row[a] {
                    Some(v) => {
                        let _ = write!(
                            path,
                            "{}{:.1},{:.1} ",
                            if pen_down { "L" } else { "M" },
                            x_of(b as f64),
                            y_of(v)
                        );
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            if !path.is_empty() {
                let _ = write!(
                    out,
                    r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                    path.trim_end()
                );
            }
        }
        for e in events {
            let x = LEFT + plot_w * ((e.at - t0) as f64 / span).clamp(0.0, 1.0);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{}" stroke="#444" stroke-dasharray="4 3"><title>{}</title></line>"##,
                top + PANEL,
                escape(&format!("{}: {}", e.event.name(), e.reason))
            );
        }
    }
    // Event labels above the first panel, the time axis below the second.
    for e in events {
        let x = LEFT + plot_w * ((e.at - t0) as f64 / span).clamp(0.0, 1.0);
        let _ = write!(
            out,
            r##"<text x="{x:.1}" y="{}" font-size="10" fill="#444" transform="rotate(-20 {x:.1} {})">{}</text>"##,
            TOP - 20.0,
            TOP - 20.0,
            escape(e.event.name())
        );
    }
    let axis_y = TOP + 2.0 * PANEL + GAP + 18.0;
    for i in 0..=4 {
        let t = t0 + ((t1 - t0) as f64 * i as f64 / 4.0) as i64;
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{axis_y}" text-anchor="middle" fill="#555">{}</text>"##,
            LEFT + plot_w * i as f64 / 4.0,
            keel_core::time::rfc3339_millis(t)
                .get(11..19)
                .unwrap_or_default()
        );
    }
    let _ = write!(
        out,
        r##"<text x="{}" y="{}" text-anchor="end" fill="#555">UTC, {} bins of {}</text>"##,
        LEFT + plot_w,
        axis_y + 16.0,
        bins,
        duration(span / bins as f64)
    );
    for (a, v) in spec.variants.iter().enumerate() {
        let y = TOP + 14.0 + 18.0 * a as f64;
        let x = WIDTH - RIGHT + 14.0;
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{}</text>"#,
            y - 10.0,
            COLOURS[a % COLOURS.len()],
            x + 18.0,
            escape(&v.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn tick(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 120_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms < 7_200_000.0 {
        format!("{:.1} min", ms / 60_000.0)
    } else {
        format!("{:.1} h", ms / 3_600_000.0)
    }
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
    use crate::rollout::EventKind;
    use crate::strategy::{Strategy, VariantSpec};

    #[test]
    fn plots_shares_rewards_and_events() {
        let spec = DeploymentSpec {
            name: "recs<1>".into(),
            strategy: Strategy::Ab,
            variants: ["a", "b"]
                .iter()
                .map(|n| VariantSpec {
                    name: (*n).into(),
                    model: None,
                    weight: None,
                })
                .collect(),
            salt: None,
            per_segment: false,
            seed: None,
            guards: None,
            lifecycle: None,
        };
        let decisions: Vec<LoggedDecision> = (0..100)
            .map(|i| LoggedDecision {
                decision_id: format!("recs.{i}"),
                variant: String::new(),
                arm: i % 2,
                propensity: 0.5,
                unit_id: None,
                segment: String::new(),
                context: Vec::new(),
                covariate: None,
                decided_at: String::new(),
                reward: Some(f64::from(i % 3 == 0)),
                at: 1_000_000 + i as i64 * 1000,
                error: false,
            })
            .collect();
        let events = vec![Event {
            event: EventKind::WinnerFound,
            variant: Some("a".into()),
            step: None,
            reason: "a & b".into(),
            by: "guard".into(),
            at: 1_050_000,
        }];
        let svg = svg(&spec, &decisions, &events, 10);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("recs&lt;1&gt;"));
        assert!(svg.contains("winner_found: a &amp; b"));
        // Two panels × two variants.
        assert_eq!(svg.matches("<path").count(), 4);
        // Half the decisions per variant in every bin: the share lines are flat at 0.5.
        let y_half = TOP + PANEL / 2.0;
        assert!(svg.contains(&format!(",{y_half:.1} L")));
        // Nothing logged still renders.
        assert!(super::svg(&spec, &[], &[], 60).contains("0 decisions"));
    }
}
