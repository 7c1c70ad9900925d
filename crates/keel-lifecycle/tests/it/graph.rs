//! Graph JSON and SVG of a hand-built definition.

use std::collections::BTreeMap;
use std::time::Duration;

use keel_lifecycle::cron::Cron;
use keel_lifecycle::definition::*;
use keel_lifecycle::expr;
use keel_lifecycle::graph::{Overlay, graph_json, graph_svg};
use serde_json::{Value, json};

fn guard(src: &str) -> Guard {
    Guard {
        source: src.into(),
        expr: expr::parse(src, &["event", "context", "item", "index"]).unwrap(),
    }
}

fn state(name: &str, on: &[(&str, &str, Option<&str>)]) -> StateDef {
    StateDef {
        name: name.into(),
        description: None,
        terminal: false,
        on: on
            .iter()
            .map(|&(event, target, g)| TransitionDef {
                event: event.into(),
                target: target.into(),
                guard: g.map(guard),
                assign: vec![],
            })
            .collect(),
        action: None,
        retry: None,
        catch: None,
        timeout: None,
        schedule: None,
        parallel: None,
        map: None,
    }
}

fn terminal(name: &str) -> StateDef {
    StateDef {
        terminal: true,
        ..state(name, &[])
    }
}

fn action(kind: &str, config: Value) -> Option<ActionDef> {
    Some(ActionDef {
        kind: kind.into(),
        config,
        timeout: None,
    })
}

/// The model-promotion lifecycle: train, test, validate in parallel, canary
/// in staging, serve with weekly retraining and a mapped re-scoring.
fn contract() -> Definition {
    let training = StateDef {
        action: action("command", json!({"run": "python train.py"})),
        retry: Some(RetryPolicy {
            max_attempts: 3,
            backoff: Duration::from_secs(10),
            multiplier: 2.0,
            max_backoff: None,
        }),
        ..state(
            "training",
            &[
                ("action_succeeded", "testing", None),
                ("action_failed", "failed", None),
            ],
        )
    };
    let testing = StateDef {
        action: action("http", json!({"url": "http://eval/run"})),
        catch: Some("failed".into()),
        ..state(
            "testing",
            &[
                ("action_succeeded", "validation", Some("event.auc > 0.8")),
                ("action_succeeded", "rejected", None),
            ],
        )
    };
    let fairness = BranchDef {
        name: "fairness".into(),
        initial: "checking".into(),
        states: vec![
            StateDef {
                action: action("command", json!({"run": "fairness.py"})),
                ..state(
                    "checking",
                    &[
                        ("action_succeeded", "passed", None),
                        ("action_failed", "flagged", None),
                    ],
                )
            },
            terminal("passed"),
            terminal("flagged"),
        ],
    };
    let load = BranchDef {
        name: "load".into(),
        initial: "running".into(),
        states: vec![
            state("running", &[("load_finished", "done", None)]),
            terminal("done"),
        ],
    };
    let validation = StateDef {
        parallel: Some(vec![fairness, load]),
        ..state("validation", &[("parallel_done", "staging", None)])
    };
    let staging = StateDef {
        description: Some("Canary <&> \"shadow\" traffic".into()),
        timeout: Some(TimerDef {
            after: Duration::from_secs(7 * 86_400),
            event: "canary_expired".into(),
        }),
        ..state(
            "staging",
            &[
                ("promote", "production", Some("event.approved == true")),
                ("canary_expired", "rejected", None),
                ("shift_traffic", "staging", None),
            ],
        )
    };
    let production = StateDef {
        schedule: Some(ScheduleDef {
            cron: Cron::parse("0 3 * * 1").unwrap(),
            event: "retrain_due".into(),
        }),
        ..state(
            "production",
            &[
                ("retrain_due", "training", None),
                ("rescore", "rescoring", None),
                ("retire", "retired", None),
            ],
        )
    };
    let rescoring = StateDef {
        map: Some(MapDef {
            items: guard("context.partitions"),
            lifecycle: "batch_scoring".into(),
            key: Some(guard("item.name")),
        }),
        ..state("rescoring", &[("map_done", "production", None)])
    };
    Definition {
        name: "model_promotion".into(),
        mode: Mode::Durable,
        description: Some("From training to retirement".into()),
        initial: "training".into(),
        states: vec![
            training,
            testing,
            validation,
            staging,
            production,
            rescoring,
            terminal("rejected"),
            terminal("failed"),
            terminal("retired"),
        ],
    }
}

fn edge<'a>(g: &'a Value, from: &str, to: &str, event: Value) -> &'a Value {
    let edges = g["edges"].as_array().unwrap();
    edges
        .iter()
        .find(|e| e["from"] == from && e["to"] == to && e["event"] == event)
        .unwrap_or_else(|| panic!("no edge {from} -> {to} on {event}"))
}

#[test]
fn json_has_nodes_and_classified_edges() {
    let g = graph_json(&contract());
    assert_eq!(g["lifecycle"], "model_promotion");
    assert_eq!(g["mode"], "durable");
    assert_eq!(g["initial"], "training");
    let nodes = g["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "training",
            "testing",
            "validation",
            "staging",
            "production",
            "rescoring",
            "rejected",
            "failed",
            "retired"
        ]
    );
    let node = |id: &str| nodes.iter().find(|n| n["id"] == id).unwrap();
    assert_eq!(node("training")["initial"], true);
    assert_eq!(node("testing")["initial"], false);
    assert_eq!(node("training")["action"], "command");
    assert_eq!(node("training")["kind"], "state");
    assert_eq!(node("retired")["kind"], "terminal");
    assert_eq!(node("retired")["action"], Value::Null);
    assert_eq!(node("staging")["timeout"], "7d");
    assert_eq!(node("staging")["schedule"], Value::Null);
    assert_eq!(node("production")["schedule"], "0 3 * * 1");
    assert_eq!(node("rescoring")["kind"], "map");
    assert_eq!(
        node("rescoring")["map"],
        json!({"lifecycle": "batch_scoring", "items": "context.partitions"})
    );
    assert!(node("staging").get("branches").is_none() && node("staging").get("map").is_none());

    let v = node("validation");
    assert_eq!(v["kind"], "parallel");
    let branches = v["branches"].as_array().unwrap();
    assert_eq!(branches.len(), 2);
    assert_eq!(branches[0]["name"], "fairness");
    assert_eq!(branches[0]["initial"], "validation.fairness.checking");
    let inner: Vec<&Value> = branches[0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["id"])
        .collect();
    assert_eq!(
        inner,
        [
            "validation.fairness.checking",
            "validation.fairness.passed",
            "validation.fairness.flagged"
        ]
    );
    assert_eq!(branches[0]["nodes"][0]["initial"], true);
    assert_eq!(branches[0]["nodes"][1]["kind"], "terminal");
    assert_eq!(
        branches[0]["edges"][0],
        json!({"from": "validation.fairness.checking", "to": "validation.fairness.passed",
               "event": "action_succeeded", "guard": null, "kind": "action"})
    );
    assert_eq!(
        edge(
            &branches[1],
            "validation.load.running",
            "validation.load.done",
            json!("load_finished")
        )["kind"],
        "event"
    );

    assert_eq!(
        edge(&g, "staging", "rejected", json!("canary_expired"))["kind"],
        "timeout"
    );
    assert_eq!(
        edge(&g, "production", "training", json!("retrain_due"))["kind"],
        "schedule"
    );
    assert_eq!(
        edge(&g, "training", "testing", json!("action_succeeded"))["kind"],
        "action"
    );
    assert_eq!(
        edge(&g, "training", "failed", json!("action_failed"))["kind"],
        "action"
    );
    assert_eq!(
        edge(&g, "staging", "production", json!("promote"))["kind"],
        "event"
    );
    assert_eq!(
        edge(&g, "staging", "production", json!("promote"))["guard"],
        "event.approved == true"
    );
    assert_eq!(
        edge(&g, "staging", "staging", json!("shift_traffic"))["kind"],
        "event"
    );
    assert_eq!(
        edge(&g, "validation", "staging", json!("parallel_done"))["kind"],
        "event"
    );
    let catch = edge(&g, "testing", "failed", Value::Null);
    assert_eq!(catch["kind"], "catch");
    assert_eq!(catch["guard"], Value::Null);
    let guarded = edge(&g, "testing", "validation", json!("action_succeeded"));
    assert_eq!(guarded["guard"], "event.auc > 0.8");
    // 2 + 2 + catch + 1 + 3 + 3 + 1 transitions; terminal states have none.
    assert_eq!(g["edges"].as_array().unwrap().len(), 13);
}

/// Tags balance (each `<x` closed by `</x>` or self-closing), no stray `<`
/// inside a tag and every `&` starts an entity.
fn assert_well_formed(svg: &str) {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let end = i + rest[i..].find('>').expect("unclosed tag");
        let tag = &rest[i + 1..end];
        assert!(!tag.contains('<'), "'<' inside tag {tag:?}");
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().expect("empty tag"));
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    for (i, _) in svg.match_indices('&') {
        let ent = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"];
        assert!(ent.iter().any(|e| svg[i..].starts_with(e)), "bare & at {i}");
    }
}

fn no_overlay() -> Overlay<'static> {
    Overlay {
        counts: None,
        highlight: &[],
    }
}

#[test]
fn svg_is_well_formed_and_names_everything() {
    let def = contract();
    let svg = graph_svg(&def, &no_overlay());
    assert_well_formed(&svg);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.contains("viewBox=\"0 0 "));
    assert!(!svg.contains("<script") && !svg.contains("@import") && !svg.contains("url(http"));
    assert_eq!(svg.matches("<marker").count(), 1);
    for s in &def.states {
        assert!(
            svg.contains(&format!(">{}</text>", s.name)),
            "state {}",
            s.name
        );
        for t in &s.on {
            assert!(svg.contains(&t.event), "event {}", t.event);
        }
        for b in s.parallel.iter().flatten() {
            assert!(svg.contains(&b.name));
            for inner in &b.states {
                assert!(
                    svg.contains(&format!(">{}</text>", inner.name)),
                    "branch state {}",
                    inner.name
                );
                inner
                    .on
                    .iter()
                    .for_each(|t| assert!(svg.contains(&t.event)));
            }
        }
    }
    assert!(svg.contains("map → batch_scoring"));
    assert!(svg.contains("timeout 7d") && svg.contains("cron 0 3 * * 1"));
    assert!(svg.contains("promote [event.approved == true]"));
    assert!(svg.contains("[event.auc &gt; 0.8]"));
    assert!(svg.contains(">catch</text>"));
    // Terminal states get an inner border: rejected, failed, retired + 3 in branches.
    assert_eq!(svg.matches("class=\"in\"").count(), 6);
    // Initial marker: one filled circle.
    assert_eq!(svg.matches("<circle").count(), 1);
}

#[test]
fn svg_escapes_text() {
    let mut def = contract();
    def.name = "a'b".into();
    let svg = graph_svg(&def, &no_overlay());
    assert_well_formed(&svg);
    assert!(svg.contains("staging: Canary &lt;&amp;&gt; &quot;shadow&quot; traffic"));
    assert!(svg.contains("a&apos;b"));
    assert!(!svg.contains("<&>"));
}

#[test]
fn svg_shows_highlight_and_counts() {
    let def = contract();
    let plain = graph_svg(&def, &no_overlay());
    assert!(!plain.contains("class=\"box hl\"") && !plain.contains("class=\"badge\""));

    let counts = BTreeMap::from([
        ("staging".to_string(), 3),
        ("production".to_string(), 12345),
        ("validation.load.running".to_string(), 7),
    ]);
    let highlight = ["staging".to_string()];
    let svg = graph_svg(
        &def,
        &Overlay {
            counts: Some(&counts),
            highlight: &highlight,
        },
    );
    assert_well_formed(&svg);
    assert_eq!(svg.matches("class=\"box hl\"").count(), 1);
    let staging = svg.find(">staging</text>").unwrap();
    let hl = svg.find("class=\"box hl\"").unwrap();
    assert!(hl < staging && svg[hl..staging].matches("<rect").count() == 0);
    assert_eq!(svg.matches("class=\"badge\"").count(), 3);
    for n in [">3</text>", ">12345</text>", ">7</text>"] {
        assert!(svg.contains(n), "{n}");
    }

    let branch = [
        "validation.fairness.checking".to_string(),
        "validation.load.done".to_string(),
    ];
    let svg = graph_svg(
        &def,
        &Overlay {
            counts: None,
            highlight: &branch,
        },
    );
    assert_well_formed(&svg);
    assert_eq!(svg.matches("class=\"box hl\"").count(), 2);
    assert!(svg.contains("class=\"box par hlc\""));
}

#[test]
fn svg_copes_with_odd_definitions() {
    // No states at all, an unknown initial, and a state nothing reaches.
    let mut def = contract();
    def.states.clear();
    assert_well_formed(&graph_svg(&def, &no_overlay()));
    let mut def = contract();
    def.states
        .push(state("orphan", &[("adopt", "orphan2", None)]));
    def.states
        .push(state("orphan2", &[("back", "orphan", None)]));
    let svg = graph_svg(&def, &no_overlay());
    assert_well_formed(&svg);
    assert!(svg.contains(">orphan</text>") && svg.contains(">orphan2</text>"));
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
}

/// `GRAPH_EXAMPLE_OUT=path cargo test` writes the example picture there.
#[test]
fn write_example() {
    if let Ok(path) = std::env::var("GRAPH_EXAMPLE_OUT") {
        let counts = BTreeMap::from([
            ("staging".to_string(), 2),
            ("production".to_string(), 14),
            ("training".to_string(), 1),
        ]);
        let highlight = ["staging".to_string()];
        std::fs::write(
            path,
            graph_svg(
                &contract(),
                &Overlay {
                    counts: Some(&counts),
                    highlight: &highlight,
                },
            ),
        )
        .unwrap();
    }
}
