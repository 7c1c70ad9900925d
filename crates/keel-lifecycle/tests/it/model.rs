//! Model-based property test: random definitions and event sequences give
//! the same states, contexts and histories on the engine — with crashes,
//! torn log tails, snapshots and recovery in between — as on the pure
//! machine alone.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use keel_lifecycle::engine::{SendRequest, Target};
use keel_lifecycle::machine::{Input, Instance, Machine};
use keel_lifecycle::parse::parse_definition;
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Spec {
    states: usize,
    /// (from, event, to, guard threshold, counts)
    transitions: Vec<(usize, usize, usize, Option<i64>, bool)>,
    terminal_last: bool,
}

impl Spec {
    fn yaml(&self, name: &str) -> String {
        let mut out = format!("lifecycle: {name}\ninitial: s0\nstates:\n");
        for s in 0..self.states {
            out.push_str(&format!("  s{s}:\n"));
            if self.terminal_last && s == self.states - 1 {
                out.push_str("    terminal: true\n");
                continue;
            }
            let mine: Vec<_> = self.transitions.iter().filter(|t| t.0 == s).collect();
            out.push_str("    on:\n");
            let mut by_event: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for (_, e, to, guard, counts) in &mine {
                let mut parts = vec![format!("target: s{to}")];
                if let Some(g) = guard {
                    parts.push(format!("guard: \"event.v > {g}\""));
                }
                if *counts {
                    parts.push("assign: {c: \"context.c + 1\"}".into());
                }
                by_event
                    .entry(*e)
                    .or_default()
                    .push(format!("{{{}}}", parts.join(", ")));
            }
            // Every non-terminal state can always leave by `reset` (no dead
            // ends), and `next` chains the states so all are reachable.
            by_event.entry(99).or_default().push("{target: s0}".into());
            if s + 1 < self.states {
                by_event
                    .entry(98)
                    .or_default()
                    .push(format!("{{target: s{}}}", s + 1));
            }
            for (e, mut alts) in by_event {
                // Guarded alternatives first; one unguarded one at most, last.
                alts.sort_by_key(|a| !a.contains("guard"));
                if let Some(first_plain) = alts.iter().position(|a| !a.contains("guard")) {
                    alts.truncate(first_plain + 1);
                }
                let e = if e == 98 { 100 } else { e };
                let name = match e {
                    99 => "reset".to_owned(),
                    100 => "next".to_owned(),
                    _ => format!("e{e}"),
                };
                out.push_str(&format!("      {name}: [{}]\n", alts.join(", ")));
            }
        }
        out
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (2usize..6).prop_flat_map(|n| {
        let t = (
            0..n,
            0usize..4,
            0..n,
            proptest::option::weighted(0.3, 0i64..10),
            any::<bool>(),
        );
        (Just(n), proptest::collection::vec(t, 1..16), any::<bool>()).prop_map(
            |(states, transitions, terminal_last)| Spec {
                states,
                transitions,
                terminal_last,
            },
        )
    })
}

#[derive(Debug, Clone)]
enum Op {
    Start(u8),
    Send {
        key: u8,
        event: u8,
        v: i64,
        idem: Option<u8>,
    },
    Broadcast {
        event: u8,
        prefix: bool,
    },
    Crash {
        torn: bool,
    },
    Snapshot,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        2 => (0u8..4).prop_map(Op::Start),
        8 => (0u8..4, 0u8..6, 0i64..12, proptest::option::weighted(0.2, 0u8..3))
            .prop_map(|(key, event, v, idem)| Op::Send { key, event, v, idem }),
        1 => (0u8..6, any::<bool>()).prop_map(|(event, prefix)| Op::Broadcast { event, prefix }),
        1 => any::<bool>().prop_map(|torn| Op::Crash { torn }),
        1 => Just(Op::Snapshot),
    ];
    proptest::collection::vec(op, 1..60)
}

fn event_name(e: u8) -> String {
    match e {
        4 => "reset".into(),
        5 => "next".into(),
        _ => format!("e{e}"),
    }
}

/// The reference: the pure machine, with the engine's rules for
/// idempotency keys and for which instances a broadcast reaches.
struct Reference {
    machine: Machine,
    instances: BTreeMap<String, (Instance, Vec<(String, String)>)>,
    seen_idem: std::collections::HashSet<(String, u8)>,
}

impl Reference {
    fn send(&mut self, key: &str, event: &str, data: &Value, idem: Option<u8>) {
        let Some((inst, hist)) = self.instances.get_mut(key) else {
            return;
        };
        if let Some(i) = idem
            && self.seen_idem.contains(&(key.to_owned(), i))
        {
            return;
        }
        if let Ok(out) = self.machine.apply(inst, Input::Event(event), data, 0) {
            hist.push((
                self.machine.state_name(out.from).to_owned(),
                self.machine.state_name(out.to).to_owned(),
            ));
            if let Some(i) = idem {
                self.seen_idem.insert((key.to_owned(), i));
            }
        }
    }
}

fn run_case(spec: &Spec, ops: &[Op]) -> Result<(), TestCaseError> {
    let name = "model";
    let yaml = spec.yaml(name);
    let def = parse_definition(&yaml, &["command", "emit", "http"])
        .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
    let machine =
        Machine::compile(def, 1, Arc::from(yaml.as_str())).map_err(TestCaseError::fail)?;
    let mut reference = Reference {
        machine,
        instances: BTreeMap::new(),
        seen_idem: Default::default(),
    };
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let rt = super::runtime();
    let mut engine = super::open(dir.path());
    rt.block_on(engine.apply_definition(&yaml))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for op in ops {
        match op {
            Op::Start(k) => {
                let key = format!("k{k}");
                let data = json!({"c": 0});
                rt.block_on(engine.start(name, &key, data.clone(), None))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                if !reference.instances.contains_key(&key) {
                    let (inst, out) = reference.machine.start(&data, 0);
                    let to = reference.machine.state_name(out.to).to_owned();
                    reference
                        .instances
                        .insert(key, (inst, vec![(String::new(), to)]));
                }
            }
            Op::Send {
                key,
                event,
                v,
                idem,
            } => {
                let key = format!("k{key}");
                let data = json!({"v": v});
                let _ = rt.block_on(engine.send(SendRequest {
                    event: event_name(*event),
                    target: Target::Key {
                        lifecycle: Some(name.into()),
                        key: key.clone(),
                    },
                    data: data.clone(),
                    idempotency_key: idem.map(|i| format!("i{i}")),
                }));
                reference.send(&key, &event_name(*event), &data, *idem);
            }
            Op::Broadcast { event, prefix } => {
                let target = if *prefix {
                    Target::Prefix {
                        lifecycle: name.into(),
                        prefix: "k".into(),
                    }
                } else {
                    Target::State {
                        lifecycle: name.into(),
                        state: "s0".into(),
                    }
                };
                let data = json!({"v": 5});
                let keys: Vec<String> = reference
                    .instances
                    .iter()
                    .filter(|(_, (inst, _))| {
                        *prefix || reference.machine.state_name(inst.state) == "s0"
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                let r = rt.block_on(engine.send(SendRequest {
                    event: event_name(*event),
                    target,
                    data: data.clone(),
                    idempotency_key: None,
                }));
                if let Ok(report) = &r {
                    prop_assert_eq!(report.matched as usize, keys.len());
                }
                for k in keys {
                    reference.send(&k, &event_name(*event), &data, None);
                }
            }
            Op::Crash { torn } => {
                engine.close(false);
                drop(engine);
                if *torn {
                    // Half a frame at the end of the log: a write the crash tore.
                    let log = dir.path().join("log");
                    let mut segs: Vec<_> = std::fs::read_dir(&log)
                        .unwrap()
                        .flatten()
                        .map(|e| e.path())
                        .collect();
                    segs.sort();
                    if let Some(last) = segs.last() {
                        let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
                        f.write_all(&[0x4B, 0x4C, 0x46, 0x31, 200, 0, 0, 0, 1, 2, 3])
                            .unwrap();
                    }
                }
                engine = super::open(dir.path());
            }
            Op::Snapshot => {
                rt.block_on(engine.snapshot())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
    }
    for (key, (inst, hist)) in &reference.instances {
        let view = rt
            .block_on(engine.get(name, key))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            &view.state,
            reference.machine.state_name(inst.state),
            "state of {}",
            key
        );
        prop_assert_eq!(&view.context, inst.context_value(), "context of {}", key);
        prop_assert_eq!(view.seq, inst.seq, "seq of {}", key);
        let engine_hist: Vec<(String, String)> = rt
            .block_on(engine.history(name, key, 0))
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .into_iter()
            .rev()
            .map(|h| (h.from, h.to))
            .collect();
        prop_assert_eq!(&engine_hist, hist, "history of {}", key);
    }
    engine.close(false);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn engine_with_crashes_matches_the_pure_machine(spec in spec(), ops in ops()) {
        run_case(&spec, &ops)?;
    }
}
