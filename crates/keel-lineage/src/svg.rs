//! A lineage graph as a standalone SVG picture: one column per generation
//! (upstream on the left), one box per node coloured by kind, an arrow per
//! edge labelled with its relation. The walk's start node is outlined.

use std::collections::HashMap;
use std::fmt::Write;

use crate::Graph;

const BOX_W: f64 = 210.0;
const BOX_H: f64 = 48.0;
const COL_GAP: f64 = 90.0;
const ROW_GAP: f64 = 22.0;
const MARGIN: f64 = 24.0;
const NAME_CHARS: usize = 30;

fn colour(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "dataset" => ("#e8f1fb", "#2f6db5"),
        "feature_view" => ("#e9f7f1", "#23885a"),
        "training_job" | "run" => ("#fdf3e4", "#b86e00"),
        "logged_model" => ("#f4eefb", "#7a4cb5"),
        "model_version" => ("#f1ecfb", "#5b2fb5"),
        "deployment" => ("#fdeaea", "#b52f3c"),
        _ => ("#f2f2f2", "#555555"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// Each node's column: the longest chain of edges leading to it, so every
/// edge points right (cycles, which lineage should not have, are cut).
fn columns(graph: &Graph) -> HashMap<&str, usize> {
    let mut col: HashMap<&str, usize> = graph.nodes.iter().map(|n| (n.key.as_str(), 0)).collect();
    for _ in 0..graph.nodes.len() {
        let mut changed = false;
        for e in &graph.edges {
            let (Some(&a), Some(&b)) = (col.get(e.from.as_str()), col.get(e.to.as_str())) else {
                continue;
            };
            if b < a + 1 {
                col.insert(e.to.as_str(), a + 1);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    col
}

/// The picture.
pub fn render(graph: &Graph) -> String {
    let col = columns(graph);
    let ncols = col.values().copied().max().map_or(1, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); ncols];
    for (i, n) in graph.nodes.iter().enumerate() {
        rows[col[n.key.as_str()]].push(i);
    }
    for r in &mut rows {
        r.sort_by(|&a, &b| {
            let (x, y) = (&graph.nodes[a], &graph.nodes[b]);
            (x.kind.as_str(), x.name.as_str()).cmp(&(y.kind.as_str(), y.name.as_str()))
        });
    }
    let nrows = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let width = MARGIN * 2.0 + ncols as f64 * BOX_W + (ncols as f64 - 1.0) * COL_GAP;
    let height = MARGIN * 2.0 + 20.0 + nrows as f64 * BOX_H + (nrows as f64 - 1.0) * ROW_GAP;
    let mut pos: HashMap<&str, (f64, f64)> = HashMap::new();
    for (c, r) in rows.iter().enumerate() {
        let col_h = r.len() as f64 * BOX_H + (r.len() as f64 - 1.0).max(0.0) * ROW_GAP;
        let top = MARGIN + 20.0 + (height - MARGIN * 2.0 - 20.0 - col_h) / 2.0;
        for (j, &i) in r.iter().enumerate() {
            let x = MARGIN + c as f64 * (BOX_W + COL_GAP);
            let y = top + j as f64 * (BOX_H + ROW_GAP);
            pos.insert(graph.nodes[i].key.as_str(), (x, y));
        }
    }
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{MARGIN}" y="{ty}" font-size="13" fill="#333">lineage of {start} ({dir})</text>
"##,
        ty = MARGIN + 4.0,
        start = escape(&graph.start),
        dir = match graph.direction {
            crate::Direction::Upstream => "upstream",
            crate::Direction::Downstream => "downstream",
            crate::Direction::Both => "upstream and downstream",
        },
    );
    for e in &graph.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(e.from.as_str()), pos.get(e.to.as_str()))
        else {
            continue;
        };
        let (ax, ay) = (x1 + BOX_W, y1 + BOX_H / 2.0);
        let (bx, by) = (x2, y2 + BOX_H / 2.0);
        let mid = (ax + bx) / 2.0;
        let _ = writeln!(
            s,
            r##"<path d="M {ax:.1} {ay:.1} C {mid:.1} {ay:.1}, {mid:.1} {by:.1}, {bx:.1} {by:.1}" fill="none" stroke="#666" stroke-width="1.3" marker-end="url(#arrow)"/>"##
        );
        let _ = writeln!(
            s,
            r##"<text x="{mid:.1}" y="{ly:.1}" font-size="10" fill="#777" text-anchor="middle">{rel}</text>"##,
            ly = (ay + by) / 2.0 - 4.0,
            rel = escape(&e.relation)
        );
    }
    for n in &graph.nodes {
        let Some(&(x, y)) = pos.get(n.key.as_str()) else {
            continue;
        };
        let (fill, stroke) = colour(&n.kind);
        let width = if n.key == graph.start { 3.0 } else { 1.3 };
        let _ = writeln!(
            s,
            r##"<g><title>{key}</title><rect x="{x:.1}" y="{y:.1}" width="{BOX_W}" height="{BOX_H}" rx="7" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>
<text x="{tx:.1}" y="{ky:.1}" font-size="10" fill="{stroke}">{kind}</text>
<text x="{tx:.1}" y="{ny:.1}" font-size="13" font-weight="bold" fill="#222">{name}</text></g>"##,
            key = escape(&n.key),
            tx = x + 10.0,
            ky = y + 17.0,
            ny = y + 36.0,
            kind = escape(&n.kind.replace('_', " ")),
            name = escape(&shorten(&n.name, NAME_CHARS)),
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Direction, Edge, Node};

    fn node(key: &str) -> Node {
        let (kind, id) = key.split_once(':').unwrap();
        Node {
            key: key.into(),
            kind: kind.into(),
            name: id.into(),
            attrs: serde_json::Value::Null,
            created_at: 0,
        }
    }

    #[test]
    fn columns_follow_the_longest_chain_and_text_is_escaped() {
        let g = Graph {
            start: "model_version:churn/3".into(),
            direction: Direction::Upstream,
            nodes: vec![
                node("model_version:churn/3"),
                node("run:r1"),
                node("dataset:events<v2>"),
                node("logged_model:m-1"),
            ],
            edges: vec![
                Edge {
                    from: "dataset:events<v2>".into(),
                    to: "run:r1".into(),
                    relation: "input".into(),
                },
                Edge {
                    from: "run:r1".into(),
                    to: "logged_model:m-1".into(),
                    relation: "produced".into(),
                },
                Edge {
                    from: "logged_model:m-1".into(),
                    to: "model_version:churn/3".into(),
                    relation: "registered_as".into(),
                },
                Edge {
                    from: "run:r1".into(),
                    to: "model_version:churn/3".into(),
                    relation: "trained".into(),
                },
            ],
            truncated: false,
        };
        let c = columns(&g);
        assert_eq!(c["dataset:events<v2>"], 0);
        assert_eq!(c["run:r1"], 1);
        assert_eq!(c["logged_model:m-1"], 2);
        assert_eq!(c["model_version:churn/3"], 3);
        let svg = render(&g);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("events&lt;v2&gt;"));
        assert!(!svg.contains("events<v2>"));
        assert_eq!(svg.matches("marker-end").count(), 4);
        assert_eq!(svg.matches("<rect x=").count(), 4);
    }
}
