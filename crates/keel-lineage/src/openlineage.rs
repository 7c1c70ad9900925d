//! A lineage graph as OpenLineage `RunEvent`s (spec 2-0-2), for tools that
//! read OpenLineage (Marquez, DataHub, …).
//!
//! Process nodes — runs, training jobs, deployments — become one
//! `COMPLETE` event each, whose inputs are the nodes it was made from and
//! whose outputs are the nodes made from it. An edge between two
//! non-process nodes (a logged model registered as a model version)
//! becomes an event of its own, named after the relation. Every node is
//! named by its key in the `keel` namespace, and an event's `runId` is a
//! UUID derived from the node key, so exporting twice gives the same ids.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{Graph, Node};

/// The OpenLineage namespace of Keel's nodes and jobs.
pub const NAMESPACE: &str = "keel";
const PRODUCER: &str = "urn:keel:lineage";
const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";

fn is_process(kind: &str) -> bool {
    matches!(kind, "run" | "training_job" | "deployment")
}

/// A stable UUID (version 8, RFC 9562 custom) from text, by two FNV-1a
/// 64-bit hashes.
fn uuid_of(text: &str) -> String {
    let fnv = |seed: u64| {
        text.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let (hi, lo) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    let hi = (hi & !0xf000) | 0x8000;
    let lo = (lo & !(0xc << 60)) | (0x8 << 60);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

fn dataset(n: &Node) -> Value {
    let mut facets = serde_json::Map::new();
    if let Some(attrs) = n.attrs.as_object().filter(|a| !a.is_empty()) {
        facets.insert(
            "keel".into(),
            json!({"_producer": PRODUCER, "_schemaURL": "urn:keel:lineage:attrs", "kind": n.kind, "name": n.name, "attrs": attrs}),
        );
    }
    json!({"namespace": NAMESPACE, "name": n.key, "facets": facets})
}

fn event(job: &str, run_key: &str, time: i64, inputs: Vec<Value>, outputs: Vec<Value>) -> Value {
    json!({
        "eventType": "COMPLETE",
        "eventTime": keel_core::time::rfc3339_millis(time),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": uuid_of(run_key), "facets": {}},
        "job": {"namespace": NAMESPACE, "name": job, "facets": {}},
        "inputs": inputs,
        "outputs": outputs,
    })
}

/// The events, ordered by time then job name.
pub fn events(graph: &Graph) -> Vec<Value> {
    let by_key: BTreeMap<&str, &Node> = graph.nodes.iter().map(|n| (n.key.as_str(), n)).collect();
    let mut out: Vec<(i64, String, Value)> = Vec::new();
    for n in graph.nodes.iter().filter(|n| is_process(&n.kind)) {
        let ins: Vec<Value> = graph
            .edges
            .iter()
            .filter(|e| e.to == n.key)
            .filter_map(|e| by_key.get(e.from.as_str()))
            .map(|m| dataset(m))
            .collect();
        let outs: Vec<Value> = graph
            .edges
            .iter()
            .filter(|e| e.from == n.key)
            .filter_map(|e| by_key.get(e.to.as_str()))
            .map(|m| dataset(m))
            .collect();
        out.push((
            n.created_at,
            n.key.clone(),
            event(&n.key, &n.key, n.created_at, ins, outs),
        ));
    }
    for e in &graph.edges {
        let (Some(a), Some(b)) = (by_key.get(e.from.as_str()), by_key.get(e.to.as_str())) else {
            continue;
        };
        if is_process(&a.kind) || is_process(&b.kind) {
            continue;
        }
        let job = format!("{}:{}", e.relation, b.key);
        out.push((
            b.created_at,
            job.clone(),
            event(
                &job,
                &format!("{}->{}", e.from, e.to),
                b.created_at,
                vec![dataset(a)],
                vec![dataset(b)],
            ),
        ));
    }
    out.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    out.into_iter().map(|(_, _, v)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Direction, Edge};

    fn node(key: &str, t: i64) -> Node {
        let (kind, id) = key.split_once(':').unwrap();
        Node {
            key: key.into(),
            kind: kind.into(),
            name: id.into(),
            attrs: json!({"digest": "d1"}),
            created_at: t,
        }
    }

    #[test]
    fn runs_become_events_with_their_inputs_and_outputs() {
        let g = Graph {
            start: "model_version:churn/1".into(),
            direction: Direction::Upstream,
            nodes: vec![
                node("model_version:churn/1", 3),
                node("logged_model:m-1", 2),
                node("run:r1", 1),
                node("dataset:events@d1", 0),
            ],
            edges: vec![
                Edge {
                    from: "dataset:events@d1".into(),
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
                    to: "model_version:churn/1".into(),
                    relation: "registered_as".into(),
                },
            ],
            truncated: false,
        };
        let ev = events(&g);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0]["job"]["name"], "run:r1");
        assert_eq!(ev[0]["inputs"][0]["name"], "dataset:events@d1");
        assert_eq!(ev[0]["outputs"][0]["name"], "logged_model:m-1");
        assert_eq!(ev[0]["eventTime"], "1970-01-01T00:00:00.001Z");
        assert_eq!(ev[1]["job"]["name"], "registered_as:model_version:churn/1");
        let id = ev[0]["run"]["runId"].as_str().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8");
        assert_eq!(id, events(&g)[0]["run"]["runId"].as_str().unwrap());
        assert_ne!(id, ev[1]["run"]["runId"].as_str().unwrap());
    }
}
