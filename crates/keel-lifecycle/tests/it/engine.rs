//! The engine end to end: recovery from snapshots and the archive, timers
//! across restarts, actions with retries and catch, ephemeral mode, the
//! store lock, and bad input leaving nothing behind.

use std::time::{Duration, Instant};

use keel_lifecycle::engine::{ListQuery, SendRequest, Target};
use keel_lifecycle::{Engine, EngineOptions, LifecycleError};
use serde_json::{Value, json};

const COUNTER: &str = "
lifecycle: counter
initial: counting
states:
  counting:
    on:
      tick: {target: counting, assign: {n: \"context.n + 1\"}}
      stop: stopped
  stopped: {terminal: true}
";

fn send(
    rt: &tokio::runtime::Runtime,
    e: &Engine,
    lifecycle: &str,
    key: &str,
    event: &str,
    data: Value,
) -> Result<u64, LifecycleError> {
    rt.block_on(e.send(SendRequest {
        event: event.into(),
        target: Target::Key {
            lifecycle: Some(lifecycle.into()),
            key: key.into(),
        },
        data,
        idempotency_key: None,
    }))
    .map(|r| r.applied)
}

fn wait_state(
    rt: &tokio::runtime::Runtime,
    e: &Engine,
    lifecycle: &str,
    key: &str,
    state: &str,
) -> keel_lifecycle::engine::InstanceView {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = rt.block_on(e.get(lifecycle, key)).expect("get");
        if v.state == state {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{lifecycle}/{key} stuck in {} (wanted {state}): {v:?}",
            v.state
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn recovery_from_snapshot_log_and_archive_keeps_every_instance_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let rt = super::runtime();
    let open_small = || {
        let mut o = EngineOptions::new(dir.path());
        o.fsync = false;
        o.segment_bytes = 16 * 1024;
        Engine::open(o).unwrap()
    };
    let e = open_small();
    rt.block_on(e.apply_definition(COUNTER)).unwrap();
    for i in 0..300 {
        rt.block_on(e.start("counter", &format!("c{i:03}"), json!({"n": 0}), None))
            .unwrap();
    }
    for round in 0..3 {
        for i in 0..300 {
            send(&rt, &e, "counter", &format!("c{i:03}"), "tick", Value::Null).unwrap();
        }
        if round == 0 {
            rt.block_on(e.snapshot()).unwrap();
        }
    }
    // A second snapshot archives the segments the first one covers.
    rt.block_on(e.snapshot()).unwrap();
    for i in 0..300 {
        send(&rt, &e, "counter", &format!("c{i:03}"), "tick", Value::Null).unwrap();
    }
    e.close(false);
    drop(e);
    let archived = std::fs::read_dir(dir.path().join("archive"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(archived > 0, "nothing was archived");

    let e = open_small();
    let stats = e.engine_stats().unwrap();
    assert!(
        stats.recovered_records > 0 && stats.recovered_records < 1500,
        "{stats:?}"
    );
    for i in [0, 150, 299] {
        let key = format!("c{i:03}");
        let v = rt.block_on(e.get("counter", &key)).unwrap();
        assert_eq!(v.context["n"], 4);
        assert_eq!(v.seq, 5);
        // History reaches back into archived segments.
        let h = rt.block_on(e.history("counter", &key, 0)).unwrap();
        assert_eq!(h.len(), 5, "{h:?}");
        assert_eq!(h.last().unwrap().kind, "start");
    }
    let page = e
        .list(
            "counter",
            &ListQuery {
                prefix: Some("c1".into()),
                limit: 40,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(page.instances.len(), 40);
    assert_eq!(page.next.as_deref(), Some("c139"));
    e.close(false);
}

#[test]
fn timers_fire_after_a_restart_and_schedules_rearm() {
    let dir = tempfile::tempdir().unwrap();
    let rt = super::runtime();
    let e = super::open(dir.path());
    rt.block_on(e.apply_definition(
        "
lifecycle: expiring
initial: waiting
states:
  waiting:
    timeout: {after: 400ms, event: expired}
    on: {expired: gone, done: finished}
  gone: {terminal: true}
  finished: {terminal: true}
",
    ))
    .unwrap();
    rt.block_on(e.start("expiring", "a", Value::Null, None))
        .unwrap();
    rt.block_on(e.start("expiring", "b", Value::Null, None))
        .unwrap();
    send(&rt, &e, "expiring", "b", "done", Value::Null).unwrap();
    e.close(false);
    drop(e);
    std::thread::sleep(Duration::from_millis(600));
    let e = super::open(dir.path());
    let v = wait_state(&rt, &e, "expiring", "a", "gone");
    assert!(v.timers.is_empty());
    let h = rt.block_on(e.history("expiring", "a", 0)).unwrap();
    assert_eq!(h[0].kind, "timeout");
    // The finished instance's timer was cancelled by leaving the state.
    assert_eq!(
        rt.block_on(e.get("expiring", "b")).unwrap().state,
        "finished"
    );
    assert_eq!(rt.block_on(e.history("expiring", "b", 0)).unwrap().len(), 2);
    e.close(false);
}

#[test]
fn failing_actions_retry_with_backoff_then_catch() {
    let dir = tempfile::tempdir().unwrap();
    let rt = super::runtime();
    let mut o = EngineOptions::new(dir.path());
    o.fsync = false;
    o.runtime = Some(rt.handle().clone());
    let e = Engine::open(o).unwrap();
    rt.block_on(e.apply_definition(
        "
lifecycle: flaky
initial: idle
states:
  idle:
    on: {go: working}
  working:
    action: {command: {run: \"echo try $KEEL_ATTEMPT of $KEEL_STATE; exit 7\"}, timeout: 10s}
    retry: {max_attempts: 3, backoff: 50ms, multiplier: 2}
    catch: recovering
    on: {action_succeeded: done}
  recovering:
    action: {command: 'echo ''{\"fixed\": true}'''}
    on: {action_succeeded: {target: done, assign: {fixed: event.output.fixed}}, action_failed: broken}
  done: {terminal: true}
  broken: {terminal: true}
",
    ))
    .unwrap();
    rt.block_on(e.start("flaky", "x", Value::Null, None))
        .unwrap();
    let started = Instant::now();
    send(&rt, &e, "flaky", "x", "go", Value::Null).unwrap();
    let v = wait_state(&rt, &e, "flaky", "x", "done");
    // Waits of 50 ms and 100 ms between the three attempts.
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(v.context["fixed"], true);
    let h: Vec<_> = rt
        .block_on(e.history("flaky", "x", 0))
        .unwrap()
        .into_iter()
        .rev()
        .collect();
    let kinds: Vec<&str> = h.iter().map(|x| x.kind).collect();
    assert_eq!(
        kinds,
        [
            "start", "event", "action", "retry", "action", "retry", "action", "action"
        ],
        "{h:#?}"
    );
    assert!(h[2].note.contains("attempt 1 of 3 failed"), "{}", h[2].note);
    assert_eq!(h[6].to, "recovering");
    assert!(
        h[6].data["output"]["stdout"]
            .as_str()
            .unwrap()
            .contains("try 3 of working")
    );
    e.close(false);
}

#[test]
fn ephemeral_instances_are_not_logged_and_vanish_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = super::runtime();
    let e = super::open(dir.path());
    rt.block_on(e.apply_definition(
        &COUNTER.replace("lifecycle: counter", "lifecycle: request\nmode: ephemeral"),
    ))
    .unwrap();
    rt.block_on(e.apply_definition(COUNTER)).unwrap();
    rt.block_on(e.start("request", "r1", json!({"n": 0}), None))
        .unwrap();
    rt.block_on(e.start("counter", "c1", json!({"n": 0}), None))
        .unwrap();
    send(&rt, &e, "request", "r1", "tick", Value::Null).unwrap();
    assert_eq!(rt.block_on(e.get("request", "r1")).unwrap().context["n"], 1);
    assert_eq!(
        rt.block_on(e.get("request", "r1")).unwrap().mode,
        "ephemeral"
    );
    assert!(
        rt.block_on(e.history("request", "r1", 0))
            .unwrap()
            .is_empty()
    );
    e.close(true);
    drop(e);
    let e = super::open(dir.path());
    assert!(matches!(
        rt.block_on(e.get("request", "r1")),
        Err(LifecycleError::NotFound { .. })
    ));
    assert_eq!(
        rt.block_on(e.get("counter", "c1")).unwrap().state,
        "counting"
    );
    // The definition itself is durable.
    assert_eq!(e.definition("request", None).unwrap().version, 1);
    e.close(false);
}

#[test]
fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = super::open(dir.path());
    let mut o = EngineOptions::new(dir.path());
    o.fsync = false;
    let err = Engine::open(o).err().expect("second open must fail");
    assert!(err.to_string().contains("in use"), "{err}");
    e.close(false);
}

#[test]
fn bad_input_is_rejected_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = super::runtime();
    let e = super::open(dir.path());
    let err = rt
        .block_on(
            e.apply_definition("lifecycle: x\ninitial: nowhere\nstates:\n  a: {on: {go: b}}\n"),
        )
        .unwrap_err();
    let LifecycleError::Definition(d) = &err else {
        panic!("{err}")
    };
    assert!(d.problems.len() >= 2, "{d}");
    rt.block_on(e.apply_definition(COUNTER)).unwrap();
    rt.block_on(e.start("counter", "c", json!({"n": 0}), None))
        .unwrap();
    let before = e.engine_stats().unwrap().inputs_applied;
    assert!(matches!(
        send(&rt, &e, "counter", "c", "nope", Value::Null),
        Err(LifecycleError::Rejected(_))
    ));
    assert!(matches!(
        rt.block_on(e.start("counter", "", Value::Null, None)),
        Err(LifecycleError::Invalid { field: "key", .. })
    ));
    let big = json!({"x": "y".repeat(100_000)});
    assert!(matches!(
        send(&rt, &e, "counter", "c", "tick", big),
        Err(LifecycleError::PayloadTooLarge { .. })
    ));
    assert!(matches!(
        send(&rt, &e, "nope", "c", "tick", Value::Null),
        Err(LifecycleError::NotFound { .. })
    ));
    send(&rt, &e, "counter", "c", "stop", Value::Null).unwrap();
    // Terminal: nothing moves it.
    assert!(matches!(
        send(&rt, &e, "counter", "c", "tick", Value::Null),
        Err(LifecycleError::Rejected(_))
    ));
    assert_eq!(e.engine_stats().unwrap().inputs_applied, before + 1);
    e.close(false);
    drop(e);
    let e = super::open(dir.path());
    let v = rt.block_on(e.get("counter", "c")).unwrap();
    assert_eq!((v.state.as_str(), v.seq), ("stopped", 2));
    e.close(false);
}

#[test]
fn idempotency_keys_hold_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let rt = super::runtime();
    let e = super::open(dir.path());
    rt.block_on(e.apply_definition(COUNTER)).unwrap();
    rt.block_on(e.start("counter", "c", json!({"n": 0}), None))
        .unwrap();
    let tick = |e: &Engine| {
        rt.block_on(e.send(SendRequest {
            event: "tick".into(),
            target: Target::Key {
                lifecycle: None,
                key: "c".into(),
            },
            data: Value::Null,
            idempotency_key: Some("payment-1".into()),
        }))
        .unwrap()
    };
    assert_eq!(tick(&e).applied, 1);
    assert_eq!(tick(&e).duplicates, 1);
    e.close(false);
    drop(e);
    let e = super::open(dir.path());
    assert_eq!(tick(&e).duplicates, 1);
    rt.block_on(e.snapshot()).unwrap();
    e.close(false);
    drop(e);
    let e = super::open(dir.path());
    assert_eq!(tick(&e).duplicates, 1);
    assert_eq!(rt.block_on(e.get("counter", "c")).unwrap().context["n"], 1);
    e.close(false);
}

/// A webhook on a real socket: the `http` action posts the instance and the
/// answer's JSON body becomes the event's output; a 5xx fails the attempt.
#[test]
fn http_actions_call_a_webhook_and_carry_its_answer() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let server_seen = seen.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            // Read until the JSON body is complete (headers, blank line, body).
            while let Ok(k) = stream.read(&mut buf[got..]) {
                got += k;
                let text = String::from_utf8_lossy(&buf[..got]).to_string();
                if k == 0 || (text.contains("\r\n\r\n") && text.trim_end().ends_with('}')) {
                    break;
                }
            }
            server_seen
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..got]).to_string());
            let (status, body) = if n == 0 {
                ("503 Service Unavailable", "{}")
            } else {
                ("200 OK", "{\"model\": \"v7\"}")
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let rt = super::runtime();
    let mut o = EngineOptions::new(dir.path());
    o.fsync = false;
    o.runtime = Some(rt.handle().clone());
    let e = Engine::open(o).unwrap();
    let def = format!(
        "
lifecycle: hooked
initial: calling
states:
  calling:
    action: {{http: {{url: \"{url}\", headers: {{x-team: growth}}}}, timeout: 5s}}
    retry: {{max_attempts: 2, backoff: 10ms}}
    on:
      action_succeeded: {{target: done, assign: {{model: event.body.model}}}}
      action_failed: failed
  done: {{terminal: true}}
  failed: {{terminal: true}}
"
    );
    rt.block_on(e.apply_definition(&def)).unwrap();
    rt.block_on(e.start("hooked", "k1", json!({"team": "growth"}), None))
        .unwrap();
    let v = wait_state(&rt, &e, "hooked", "k1", "done");
    assert_eq!(v.context["model"], "v7");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one failed attempt, one retry");
    assert!(requests[1].starts_with("POST /hook"), "{}", requests[1]);
    assert!(requests[1].to_ascii_lowercase().contains("x-team: growth"));
    assert!(
        requests[1].contains("\"key\":\"k1\"") && requests[1].contains("\"attempt\":2"),
        "{}",
        requests[1]
    );
    e.close(false);
}

/// Timeouts cancelled by leaving their state leave entries in the timer
/// queue; the queue is rebuilt from the instances once they pile up.
#[test]
fn the_timer_queue_sheds_cancelled_timers() {
    let dir = tempfile::tempdir().unwrap();
    let rt = super::runtime();
    let mut o = EngineOptions::new(dir.path());
    o.fsync = false;
    o.timer_compaction = 64;
    let e = Engine::open(o).unwrap();
    rt.block_on(e.apply_definition(
        "
lifecycle: flip
initial: a
states:
  a:
    timeout: {after: 1h, event: late}
    on: {go: b, late: a}
  b:
    timeout: {after: 1h, event: late}
    on: {go: a, late: b}
",
    ))
    .unwrap();
    for k in 0..10 {
        rt.block_on(e.start("flip", &format!("k{k}"), Value::Null, None))
            .unwrap();
    }
    for _ in 0..40 {
        for k in 0..10 {
            send(&rt, &e, "flip", &format!("k{k}"), "go", Value::Null).unwrap();
        }
    }
    // 410 timers were armed; 10 are live.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pending = e.engine_stats().unwrap().pending_timers;
        if pending <= 128 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} timers still queued");
        send(&rt, &e, "flip", "k0", "go", Value::Null).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rt.block_on(e.get("flip", "k3")).unwrap().timers.len(), 1);
    e.close(false);
}
