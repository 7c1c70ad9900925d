//! Pictures of a lifecycle definition: [`graph_json`] describes its states
//! and transitions for a UI to draw, [`graph_svg`] draws it as a
//! self-contained SVG.
//!
//! The SVG layout is layered left to right: a state's column is its
//! shortest distance from the initial state (states no path reaches share a
//! last column), and the states of a column are ordered by one barycentre
//! pass over their predecessors. With that layering every forward edge
//! spans exactly one column and is drawn as a curve across the gutter. Edges
//! to the same or an earlier column leave into the gutter right of their
//! source, run along a lane of their own above or below all boxes and come
//! back through the gutter left of their target, so no box hides them.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

use serde_json::{Value, json};

use crate::definition::{BranchDef, Definition, Mode, StateDef, builtin_events as builtin};
use crate::duration::format_duration;

/// Live figures drawn on the picture (optional).
pub struct Overlay<'a> {
    /// Instances per state id, shown as a badge on the state.
    pub counts: Option<&'a BTreeMap<String, u64>>,
    /// Current state(s) of one instance; branch states as
    /// `"parallel_state.branch.state"`. Filled with the accent colour.
    pub highlight: &'a [String],
}

/// One transition, or a catch (no event), between indexes into a state list.
struct Edge<'d> {
    from: usize,
    to: usize,
    event: Option<&'d str>,
    guard: Option<&'d str>,
    kind: &'static str,
}

impl Edge<'_> {
    fn label(&self) -> String {
        match (self.event, self.guard) {
            (Some(ev), Some(g)) => format!("{ev} [{g}]"),
            (ev, _) => ev.unwrap_or("catch").to_string(),
        }
    }
}

/// What sends the event of an edge leaving `s` (`None`: the catch edge).
fn edge_kind(s: &StateDef, event: Option<&str>) -> &'static str {
    let Some(ev) = event else { return "catch" };
    if s.timeout.as_ref().is_some_and(|t| t.event == ev) {
        "timeout"
    } else if s.schedule.as_ref().is_some_and(|c| c.event == ev) {
        "schedule"
    } else if [builtin::ACTION_SUCCEEDED, builtin::ACTION_FAILED].contains(&ev) {
        "action"
    } else {
        "event"
    }
}

/// Transitions of `states` in file order, each state's catch edge last.
fn edges(states: &[StateDef]) -> Vec<Edge<'_>> {
    let mut out = Vec::new();
    for (from, s) in states.iter().enumerate() {
        let on =
            s.on.iter()
                .map(|t| (Some(t.event.as_str()), &t.target, t.guard.as_ref()));
        for (event, target, guard) in on.chain(s.catch.iter().map(|c| (None, c, None))) {
            let Some(to) = states.iter().position(|s| &s.name == target) else {
                continue; // cannot happen in a validated definition
            };
            let (guard, kind) = (guard.map(|g| g.source.as_str()), edge_kind(s, event));
            out.push(Edge {
                from,
                to,
                event,
                guard,
                kind,
            });
        }
    }
    out
}

/// The definition as nodes and edges. Ids are state names; states inside
/// a branch are `"STATE.BRANCH.INNER"`, and a branch's `initial` is such
/// an id too.
pub fn graph_json(def: &Definition) -> Value {
    let (nodes, edges) = states_json(&def.states, &def.initial, "");
    let mode = mode_name(def.mode);
    json!({"lifecycle": def.name, "mode": mode, "initial": def.initial, "nodes": nodes, "edges": edges})
}

fn states_json(states: &[StateDef], initial: &str, prefix: &str) -> (Vec<Value>, Vec<Value>) {
    let id = |name: &str| format!("{prefix}{name}");
    let nodes = states.iter().map(|s| {
        let mut node = json!({
            "id": id(&s.name),
            "kind": kind_of(s),
            "initial": s.name == initial,
            "action": s.action.as_ref().map(|a| &a.kind),
            "timeout": s.timeout.as_ref().map(|t| format_duration(t.after)),
            "schedule": s.schedule.as_ref().map(|c| c.cron.source()),
        });
        if let Some(branches) = &s.parallel {
            let list = branches.iter().map(|b| {
                let inner = format!("{prefix}{}.{}.", s.name, b.name);
                let (nodes, edges) = states_json(&b.states, &b.initial, &inner);
                let initial = format!("{inner}{}", b.initial);
                json!({"name": b.name, "initial": initial, "nodes": nodes, "edges": edges})
            });
            node["branches"] = list.collect();
        }
        if let Some(m) = &s.map {
            node["map"] = json!({"lifecycle": m.lifecycle, "items": m.items.source});
        }
        node
    });
    let edges = edges(states).into_iter().map(|e| {
        json!({"from": id(&states[e.from].name), "to": id(&states[e.to].name),
               "event": e.event, "guard": e.guard, "kind": e.kind})
    });
    (nodes.collect(), edges.collect())
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Durable => "durable",
        Mode::Ephemeral => "ephemeral",
    }
}

/// `NAME` or `NAME: DESCRIPTION`, for tooltips.
fn described(name: &str, description: &Option<String>) -> String {
    description
        .as_ref()
        .map_or(name.to_string(), |d| format!("{name}: {d}"))
}

fn kind_of(s: &StateDef) -> &'static str {
    match () {
        _ if s.terminal => "terminal",
        _ if s.parallel.is_some() => "parallel",
        _ if s.map.is_some() => "map",
        _ => "state",
    }
}

const MARGIN: f64 = 24.0;
const BOX_H: f64 = 46.0;
const ROW_GAP: f64 = 50.0;
const LANE: f64 = 20.0;
/// From a column's side to the nearest vertical run of a back edge.
const RUN: f64 = 14.0;
/// Between vertical runs in one gutter.
const STEP: f64 = 8.0;
const SUB_ROW: f64 = 26.0;
const PILL_GAP: f64 = 18.0;
const MID: &str = r#" text-anchor="middle""#;
const ITALIC: &str = r#" font-style="italic""#;

const STYLE: &str = "text{font-family:system-ui,-apple-system,\"Segoe UI\",Helvetica,Arial,\
sans-serif}.n,.p{fill:#1a202c}.n{font-size:13.5px;font-weight:600}.s{font-size:11px;fill:#4a5568}\
.p{font-size:10.5px}.l,.lh{font-size:11px}.lh{fill:#fff;stroke:#fff;stroke-width:3px;\
stroke-linejoin:round}.box{fill:#fff;stroke:#4a5568;stroke-width:1.4}.par{fill:#f7fafc}\
.in{fill:none;stroke:#4a5568;stroke-width:1.2}.hl{fill:#fde68a;stroke:#b45309;stroke-width:2.2}\
.hlc{stroke:#b45309;stroke-width:2.2}.e{fill:none;stroke-width:1.4}.badge{fill:#2563eb}\
.bt{fill:#fff;font-size:10px;font-weight:700}";

const ARROW: &str = r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,1 L10,5 L0,9 z" fill="#4a5568"/></marker></defs>"##;

/// Stroke colour and dash attribute of an edge kind.
fn style(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "action" => ("#2b6cb0", ""),
        "timeout" => ("#c05621", r#" stroke-dasharray="6 4""#),
        "schedule" => ("#6b46c1", r#" stroke-dasharray="2 3""#),
        "catch" => ("#c53030", r#" stroke-dasharray="7 3 2 3""#),
        _ => ("#4a5568", ""),
    }
}

/// Rough advance of `s` in a sans-serif font of `size` pixels.
fn text_w(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

fn fmax(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, f64::max)
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// SVG being written: numbers with one decimal, all text escaped.
struct Svg(String);

impl Svg {
    fn rect(&mut self, class: &str, (x, y, w, h): (f64, f64, f64, f64), rx: f64) {
        let _ = write!(
            self.0,
            r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="{rx}"/>"#
        );
    }

    fn text(&mut self, class: &str, (x, y): (f64, f64), attrs: &str, text: &str) {
        let text = esc(text);
        let _ = write!(
            self.0,
            r#"<text class="{class}" x="{x:.1}" y="{y:.1}"{attrs}>{text}</text>"#
        );
    }

    /// An edge of `kind` along `d`, with an arrowhead at its end.
    fn path(&mut self, d: &str, kind: &str) {
        let (color, dash) = style(kind);
        let end = r#"marker-end="url(#arrow)""#;
        let _ = write!(
            self.0,
            r#"<path class="e" d="{d}" stroke="{color}"{dash} {end}/>"#
        );
    }

    /// A count badge centred on the top right corner at (`right`, `top`).
    fn badge(&mut self, right: f64, top: f64, n: u64) {
        let w = text_w(&n.to_string(), 10.0) + 12.0;
        let x = right + 6.0 - w;
        self.rect("badge", (x, top - 9.0, w, 18.0), 9.0);
        self.text("bt", (x + w / 2.0, top + 3.5), MID, &n.to_string());
    }
}

/// Shortest distance from `initial` over `es`; unreached states come last.
fn layers(states: &[StateDef], es: &[Edge], initial: &str) -> Vec<usize> {
    let mut layer = vec![usize::MAX; states.len()];
    let mut queue: VecDeque<usize> = states
        .iter()
        .position(|s| s.name == initial)
        .into_iter()
        .collect();
    queue.iter().for_each(|&i| layer[i] = 0);
    while let Some(v) = queue.pop_front() {
        for e in es.iter().filter(|e| e.from == v) {
            if layer[e.to] == usize::MAX {
                layer[e.to] = layer[v] + 1;
                queue.push_back(e.to);
            }
        }
    }
    let last = layer
        .iter()
        .filter(|&&l| l != usize::MAX)
        .max()
        .map_or(0, |m| m + 1);
    layer.into_iter().map(|l| l.min(last)).collect()
}

/// States per layer, ordered by the mean position of their predecessors.
fn columns(layer: &[usize], es: &[Edge]) -> Vec<Vec<usize>> {
    let mut cols = vec![Vec::new(); layer.iter().max().map_or(0, |m| m + 1)];
    for (v, &l) in layer.iter().enumerate() {
        cols[l].push(v);
    }
    for l in 1..cols.len() {
        let pos = |u: usize| cols[l - 1].iter().position(|&p| p == u);
        let bary = |i: usize, v: usize| {
            let ps: Vec<usize> = es
                .iter()
                .filter(|e| e.to == v)
                .filter_map(|e| pos(e.from))
                .collect();
            match ps.len() {
                0 => i as f64,
                n => ps.iter().sum::<usize>() as f64 / n as f64,
            }
        };
        let mut keyed: Vec<(f64, usize)> = cols[l]
            .iter()
            .enumerate()
            .map(|(i, &v)| (bary(i, v), v))
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        cols[l] = keyed.into_iter().map(|(_, v)| v).collect();
    }
    cols
}

/// The small second line of a state box.
fn subtitle(s: &StateDef) -> String {
    let parts = [
        s.action.as_ref().map(|a| a.kind.clone()),
        s.timeout
            .as_ref()
            .map(|t| format!("timeout {}", format_duration(t.after))),
        s.schedule.as_ref().map(|c| format!("cron {}", c.cron)),
        s.map.as_ref().map(|m| format!("map → {}", m.lifecycle)),
        s.parallel
            .as_ref()
            .map(|b| format!("parallel · {} branches", b.len())),
    ];
    parts.into_iter().flatten().collect::<Vec<_>>().join(" · ")
}

fn pill_w(s: &StateDef) -> f64 {
    text_w(&s.name, 10.5) + 16.0
}

fn branch_label_w(branches: &[BranchDef]) -> f64 {
    fmax(branches.iter().map(|b| text_w(&b.name, 11.0)))
}

/// Width and height of a state's box.
fn node_size(s: &StateDef) -> (f64, f64) {
    let w = (text_w(&s.name, 13.5) + 28.0).max(text_w(&subtitle(s), 11.0) + 24.0);
    let Some(branches) = &s.parallel else {
        return (w.max(110.0), BOX_H);
    };
    let rows = branches
        .iter()
        .map(|b| b.states.iter().map(|p| pill_w(p) + PILL_GAP).sum());
    let w = w.max(fmax(rows) + branch_label_w(branches) + 24.0);
    (w.max(110.0), 44.0 + branches.len() as f64 * SUB_ROW)
}

/// A path through `pts` with corners rounded by radius `r`.
fn rounded(pts: &[(f64, f64)], r: f64) -> String {
    let dist = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).hypot(a.1 - b.1);
    let toward = |b: (f64, f64), a: (f64, f64), r: f64| match dist(a, b) {
        0.0 => b,
        d => (b.0 + (a.0 - b.0) * r / d, b.1 + (a.1 - b.1) * r / d),
    };
    let mut d = format!("M{:.1},{:.1}", pts[0].0, pts[0].1);
    for w in pts.windows(3) {
        let r = r.min(dist(w[0], w[1]) / 2.0).min(dist(w[1], w[2]) / 2.0);
        let ((px, py), (cx, cy)) = (toward(w[1], w[0], r), w[1]);
        let (qx, qy) = toward(w[1], w[2], r);
        let _ = write!(d, " L{px:.1},{py:.1} Q{cx:.1},{cy:.1} {qx:.1},{qy:.1}");
    }
    let (x, y) = pts[pts.len() - 1];
    d + &format!(" L{x:.1},{y:.1}")
}

/// Where a back edge runs: its lane and its vertical runs in two gutters.
#[derive(Clone, Copy)]
struct Route {
    below: bool,
    lane: usize,
    k_out: usize,
    k_in: usize,
}

type Rect = (f64, f64, f64, f64);

/// Where everything in the picture goes.
struct Layout<'d> {
    es: Vec<Edge<'d>>,
    layer: Vec<usize>,
    /// Each state's box: x, y, width, height.
    boxes: Vec<Rect>,
    /// Left and right x of each column.
    cols: Vec<(f64, f64)>,
    route: Vec<Option<Route>>,
    /// Where each edge meets its boxes: y at the target, y at the source.
    ports: Vec<[f64; 2]>,
    /// The initial state's marker: its y, if the state exists.
    init: Option<(usize, f64)>,
    /// The innermost lane above and below the boxes.
    lane0: [f64; 2],
    width: f64,
    height: f64,
}

impl<'d> Layout<'d> {
    fn new(def: &'d Definition) -> Self {
        let (st, es) = (&def.states, edges(&def.states));
        let layer = layers(st, &es, &def.initial);
        let cols = columns(&layer, &es);
        let nl = cols.len();
        let size: Vec<(f64, f64)> = st.iter().map(node_size).collect();
        let col_h = |c: &Vec<usize>| c.iter().map(|&v| size[v].1 + ROW_GAP).sum::<f64>() - ROW_GAP;
        let body_h = fmax(cols.iter().map(col_h)).max(BOX_H);
        let mut y = vec![0.0; st.len()]; // box tops, relative to the body until shifted
        for c in &cols {
            let mut top = (body_h - col_h(c)) / 2.0;
            for &v in c {
                y[v] = top;
                top += size[v].1 + ROW_GAP;
            }
        }
        let mid: Vec<f64> = (0..st.len())
            .map(|v| (y[v] + size[v].1 / 2.0) / body_h)
            .collect();
        let (route, lanes, runs) = route_back_edges(&es, &layer, &mid, nl);
        let above = if lanes[0] > 0 { 16.0 } else { 0.0 } + lanes[0] as f64 * LANE;
        let top = MARGIN + 42.0 + above;

        // Columns from left to right, each after a gutter wide enough for
        // its labels and back edges' vertical runs; the last gutter is the
        // right margin (pushed as an empty column, popped below).
        let mut label_w = vec![0.0f64; nl + 1];
        for e in es.iter().filter(|e| layer[e.to] > layer[e.from]) {
            let g = layer[e.from] + 1;
            label_w[g] = label_w[g].max(text_w(&e.label(), 11.0));
        }
        let (mut col, mut x) = (Vec::new(), MARGIN);
        for g in 0..=nl {
            x += runs[g] as f64 * STEP
                + match g {
                    0 => 44.0,
                    _ if g == nl => 16.0 + label_w[g].max(20.0),
                    _ => (label_w[g] + 32.0).max(64.0),
                };
            let w = fmax(cols.get(g).into_iter().flatten().map(|&v| size[v].0));
            col.push((x, x + w));
            x += w;
        }
        // Boxes keep their own width, centred in their column.
        let boxes: Vec<Rect> = (0..st.len())
            .map(|v| {
                let ((l, r), (w, h)) = (col[layer[v]], size[v]);
                ((l + r - w) / 2.0, top + y[v], w, h)
            })
            .collect();
        let init = st.iter().position(|s| s.name == def.initial);
        let (ports, p_init) = assign_ports(&es, &route, &boxes, init);
        let caption_w = text_w(&def.name, 13.5) + 100.0; // with " · ephemeral"
        let legend_w = 5.0 * 90.0; // at most
        let width = (x + MARGIN).max(caption_w.max(legend_w) + 2.0 * MARGIN);
        let lane0 = [top - 24.0, top + body_h + 40.0];
        let height = lane0[1] + lanes[1] as f64 * LANE + 8.0 + MARGIN;
        col.pop(); // the right margin
        let init = init.map(|v| (v, p_init));
        Layout {
            es,
            layer,
            boxes,
            cols: col,
            route,
            ports,
            init,
            lane0,
            width,
            height,
        }
    }

    fn lane_y(&self, r: Route) -> f64 {
        match r.below {
            true => self.lane0[1] + r.lane as f64 * LANE,
            false => self.lane0[0] - r.lane as f64 * LANE,
        }
    }
}

/// Back edges (to the same or an earlier column), shortest spans first so
/// that they get the inner lanes and the runs nearest their columns. A lane
/// goes below when the ends are low in the picture (`mid`: box centres as a
/// fraction of its height), above when high, alternately when central.
/// Returns the routes, the lanes used above and below, and the vertical runs
/// in each gutter.
fn route_back_edges(
    es: &[Edge],
    layer: &[usize],
    mid: &[f64],
    nl: usize,
) -> (Vec<Option<Route>>, [usize; 2], Vec<usize>) {
    let mut back: Vec<usize> = (0..es.len()).filter(|&i| es[i].from != es[i].to).collect();
    back.retain(|&i| layer[es[i].to] <= layer[es[i].from]);
    back.sort_by_key(|&i| layer[es[i].from] - layer[es[i].to]);
    let mut route = vec![None; es.len()];
    let (mut lanes, mut ties) = ([0usize; 2], 0);
    let (mut exits, mut arrivals) = (vec![0usize; nl + 1], vec![0usize; nl + 1]);
    for &i in &back {
        let (g_out, g_in) = (layer[es[i].from] + 1, layer[es[i].to]);
        let m = (mid[es[i].from] + mid[es[i].to]) / 2.0;
        let central = (0.45..=0.55).contains(&m);
        ties += usize::from(central);
        let below = if central { ties % 2 == 1 } else { m > 0.5 };
        let (lane, k_out, k_in) = (lanes[below as usize], exits[g_out], arrivals[g_in]);
        route[i] = Some(Route {
            below,
            lane,
            k_out,
            k_in,
        });
        (lanes[below as usize], exits[g_out], arrivals[g_in]) = (lane + 1, k_out + 1, k_in + 1);
    }
    let runs = exits.iter().zip(&arrivals).map(|(a, b)| a + b).collect();
    (route, lanes, runs)
}

/// Where edges meet the sides of the boxes, spread evenly along each side.
/// Edges to outer lanes meet a side further out, so that no two runs cross.
/// Returns each edge's [in, out] y and the initial marker's y.
fn assign_ports(
    es: &[Edge],
    route: &[Option<Route>],
    boxes: &[Rect],
    init: Option<usize>,
) -> (Vec<[f64; 2]>, f64) {
    let cy = |v: usize| boxes[v].1 + boxes[v].3 / 2.0;
    let key = |i: usize, other: usize| match route[i] {
        None => cy(other),
        Some(r) if r.below => 1e6 - r.lane as f64,
        Some(r) => r.lane as f64 - 1e6,
    };
    let mut sides = vec![[Vec::new(), Vec::new()]; boxes.len()]; // [left, right]
    for (i, e) in es.iter().enumerate().filter(|(_, e)| e.from != e.to) {
        sides[e.from][1].push((key(i, e.to), Some(i)));
        sides[e.to][0].push((key(i, e.from), Some(i)));
    }
    if let Some(v) = init {
        sides[v][0].push((cy(v), None));
    }
    let (mut ports, mut p_init) = (vec![[0.0; 2]; es.len()], 0.0);
    for (v, sides) in sides.iter_mut().enumerate() {
        for (side, list) in sides.iter_mut().enumerate() {
            list.sort_by(|a, b| a.0.total_cmp(&b.0));
            let n = list.len() as f64 + 1.0;
            for (j, &(_, e)) in list.iter().enumerate() {
                let y = boxes[v].1 + boxes[v].3 * (j as f64 + 1.0) / n;
                *e.map_or(&mut p_init, |i| &mut ports[i][side]) = y;
            }
        }
    }
    (ports, p_init)
}

/// A layered left-to-right SVG picture of `def`, with `overlay` drawn on it.
pub fn graph_svg(def: &Definition, overlay: &Overlay<'_>) -> String {
    let l = Layout::new(def);
    let (w, h) = (l.width, l.height);
    let title = esc(&described(&def.name, &def.description));
    let mut svg = Svg(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}"><title>{title}</title><style>{STYLE}</style>{ARROW}<rect width="100%" height="100%" fill="#fff"/>"##
    ));
    let caption = format!("{} · {}", def.name, mode_name(def.mode));
    svg.text("n", (MARGIN, MARGIN + 14.0), "", &caption);
    // Edges first, boxes over them, labels over everything.
    let labels = draw_edges(&mut svg, &l);
    if let Some((v, y)) = l.init {
        let x = MARGIN + 8.0;
        let _ = write!(
            svg.0,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="#1a202c"/>"##
        );
        svg.path(
            &format!("M{:.1},{y:.1} H{:.1}", x + 6.0, l.boxes[v].0),
            "event",
        );
    }
    for (s, &b) in def.states.iter().zip(&l.boxes) {
        draw_state(&mut svg, s, b, overlay);
    }
    for (x, y, text, color) in labels {
        // A white halo under the label keeps it readable over edges; drawn
        // as its own element, since not every renderer knows paint-order.
        svg.text("lh", (x, y), MID, &text);
        let attrs = format!(r#"{MID} fill="{color}""#);
        svg.text("l", (x, y), &attrs, &text);
    }
    let mut kinds = ["event", "action", "timeout", "schedule", "catch"].to_vec();
    kinds.retain(|&k| l.es.iter().any(|e| e.kind == k));
    let y = l.height - MARGIN - 4.0;
    for (j, kind) in kinds.iter().enumerate() {
        let x = MARGIN + j as f64 * 90.0;
        svg.path(&format!("M{x:.1},{y:.1} h24"), kind);
        svg.text("s", (x + 30.0, y + 4.0), "", kind);
    }
    svg.0 + "</svg>\n"
}

/// Draws every edge; returns their labels (x, y, text, colour).
fn draw_edges(svg: &mut Svg, l: &Layout) -> Vec<(f64, f64, String, &'static str)> {
    let mut labels: Vec<(usize, f64, f64, String, &str)> = Vec::new(); // gutter first
    for (i, e) in l.es.iter().enumerate().filter(|(_, e)| e.from != e.to) {
        let (s, t, [pi, po]) = (l.boxes[e.from], l.boxes[e.to], l.ports[i]);
        let (sx, tx, color) = (s.0 + s.2, t.0, style(e.kind).0);
        let (out_col, in_col) = (l.cols[l.layer[e.from]], l.cols[l.layer[e.to]]);
        if let Some(r) = l.route[i] {
            let ex = out_col.1 + RUN + r.k_out as f64 * STEP;
            let (ax, ly) = (in_col.0 - RUN - r.k_in as f64 * STEP, l.lane_y(r));
            let pts = [(sx, po), (ex, po), (ex, ly), (ax, ly), (ax, pi), (tx, pi)];
            svg.path(&rounded(&pts, 8.0), e.kind);
            labels.push((usize::MAX, (ex + ax) / 2.0, ly - 4.0, e.label(), color));
        } else {
            let mx = (out_col.1 + in_col.0) / 2.0;
            let d = format!("M{sx:.1},{po:.1} C{mx:.1},{po:.1} {mx:.1},{pi:.1} {tx:.1},{pi:.1}");
            svg.path(&d, e.kind);
            labels.push((l.layer[e.to], mx, (po + pi) / 2.0 - 4.0, e.label(), color));
        }
    }
    // Self-loops: one small loop under the box, labelled with every event.
    for (v, &(x, y, w, h)) in l.boxes.iter().enumerate() {
        let loops: Vec<&Edge> = l.es.iter().filter(|e| e.from == v && e.to == v).collect();
        let Some(first) = loops.first() else { continue };
        let (cx, b) = (x + w / 2.0, y + h);
        let (x0, x1, x2, x3, yc) = (cx - 12.0, cx - 18.0, cx + 18.0, cx + 12.0, b + 24.0);
        let d = format!("M{x0:.1},{b:.1} C{x1:.1},{yc:.1} {x2:.1},{yc:.1} {x3:.1},{b:.1}");
        svg.path(&d, first.kind);
        let text = loops
            .iter()
            .map(|e| e.label())
            .collect::<Vec<_>>()
            .join(", ");
        labels.push((usize::MAX, cx, b + 32.0, text, style(first.kind).0));
    }
    // Labels in the middle of one gutter: push apart those that would touch.
    labels.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.total_cmp(&b.2)));
    for j in 1..labels.len() {
        let (g, prev) = (labels[j - 1].0, labels[j - 1].2);
        if g != usize::MAX && labels[j].0 == g && labels[j].2 < prev + 14.0 {
            labels[j].2 = prev + 14.0;
        }
    }
    labels
        .into_iter()
        .map(|(_, x, y, t, c)| (x, y, t, c))
        .collect()
}

/// One state's box at `(x, y, w, h)`, with its branches and overlay.
fn draw_state(svg: &mut Svg, s: &StateDef, (x, y, w, h): Rect, o: &Overlay<'_>) {
    let hl = |id: &str| o.highlight.iter().any(|h| h == id);
    let inside = o
        .highlight
        .iter()
        .any(|h| h.starts_with(&format!("{}.", s.name)));
    let class = match () {
        _ if hl(&s.name) => "box hl",
        _ if s.parallel.is_some() && inside => "box par hlc",
        _ if s.parallel.is_some() => "box par",
        _ => "box",
    };
    let tip = described(&s.name, &s.description);
    let _ = write!(svg.0, "<g><title>{}</title>", esc(&tip));
    svg.rect(class, (x, y, w, h), 8.0);
    if s.terminal {
        svg.rect("in", (x + 3.5, y + 3.5, w - 7.0, h - 7.0), 5.0);
    }
    let sub = subtitle(s);
    let name_y = if sub.is_empty() {
        y + h / 2.0 + 5.0
    } else {
        y + 19.0
    };
    svg.text("n", (x + w / 2.0, name_y), MID, &s.name);
    if !sub.is_empty() {
        svg.text("s", (x + w / 2.0, y + 35.0), MID, &sub);
    }
    let branches = s.parallel.as_deref().unwrap_or_default();
    for (r, b) in branches.iter().enumerate() {
        let ry = y + 44.0 + r as f64 * SUB_ROW;
        svg.text("s", (x + 10.0, ry + 12.5), ITALIC, &b.name);
        let x0 = x + 18.0 + branch_label_w(branches);
        draw_branch(svg, b, &format!("{}.{}.", s.name, b.name), (x0, ry), o);
    }
    if let Some(n) = o.counts.and_then(|c| c.get(&s.name)) {
        svg.badge(x + w, y, *n);
    }
    svg.0 += "</g>";
}

/// A branch as a row of pills from `(x, y)`, ordered by distance from its
/// initial state; an arrow joins neighbours with a transition between them,
/// and each pill's tooltip lists all its transitions.
fn draw_branch(
    svg: &mut Svg,
    b: &BranchDef,
    prefix: &str,
    (mut x, y): (f64, f64),
    o: &Overlay<'_>,
) {
    let es = edges(&b.states);
    let layer = layers(&b.states, &es, &b.initial);
    let mut order: Vec<usize> = (0..b.states.len()).collect();
    order.sort_by_key(|&i| layer[i]);
    for (j, &p) in order.iter().enumerate() {
        let (s, w) = (&b.states[p], pill_w(&b.states[p]));
        let id = format!("{prefix}{}", s.name);
        let on = es.iter().filter(|e| e.from == p);
        let tip: Vec<String> = on
            .map(|e| format!("\n{} → {}", e.label(), b.states[e.to].name))
            .collect();
        let _ = write!(
            svg.0,
            "<g><title>{}</title>",
            esc(&(id.clone() + &tip.concat()))
        );
        let class = if o.highlight.contains(&id) {
            "box hl"
        } else {
            "box"
        };
        svg.rect(class, (x, y, w, 18.0), 9.0);
        if s.terminal {
            svg.rect("in", (x + 3.0, y + 3.0, w - 6.0, 12.0), 6.0);
        }
        svg.text("p", (x + w / 2.0, y + 12.5), MID, &s.name);
        if let Some(n) = o.counts.and_then(|c| c.get(&id)) {
            svg.badge(x + w, y, *n);
        }
        svg.0 += "</g>";
        if order
            .get(j + 1)
            .is_some_and(|&q| es.iter().any(|e| e.from == p && e.to == q))
        {
            let d = format!("M{:.1},{:.1} h{PILL_GAP}", x + w, y + 9.0);
            svg.path(&d, "event");
        }
        x += w + PILL_GAP;
    }
}
