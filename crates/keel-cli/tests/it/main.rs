//! End-to-end tests of the real `keel` binary in a temporary directory.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

fn keel(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEEL_DATA_DIR")
        .env_remove("KEEL_SERVER")
        .env_remove("KEEL_DATABASE_URL")
        .output()
        .expect("run keel")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "keel failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &std::path::Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["server", "--data-dir", "data", "--port", "0"])
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keel server");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .expect("read stderr");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

#[test]
fn experiments_and_runs_on_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let created = json(&keel(
        d,
        &[
            "experiments",
            "create",
            "churn",
            "--tag",
            "team=growth",
            "--json",
        ],
    ));
    let id = created["experiment_id"].as_str().unwrap().to_owned();
    assert_eq!(id, "1");
    let listed = json(&keel(d, &["experiments", "list", "--json"]));
    let names: Vec<&str> = listed["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["churn", "Default"]);
    // Tables for people.
    let table = keel(d, &["experiments", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("ID"), "{text}");
    assert!(text.contains("churn"), "{text}");
    // The data directory was created where we asked (default ./keel-data).
    assert!(d.join("keel-data/keel.db").exists());
    let runs = json(&keel(d, &["runs", "search", "--experiment", &id, "--json"]));
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0);
}

#[test]
fn bad_input_exits_2_with_a_pointed_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = keel(
        dir.path(),
        &["runs", "search", "--filter", "metrics.auc LIKE 'x'"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LIKE"), "{err}");
    let out = keel(dir.path(), &["runs", "get", "nope"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = keel(
        dir.path(),
        &["experiments", "create", "x", "--tag", "novalue"],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_file_and_environment_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("keel.toml"), "data_dir = \"from-toml\"\n").unwrap();
    json(&keel(d, &["experiments", "create", "a", "--json"]));
    assert!(d.join("from-toml/keel.db").exists());
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["experiments", "create", "b", "--json"])
        .current_dir(d)
        .env("KEEL_DATA_DIR", "from-env")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(d.join("from-env/keel.db").exists());
    json(&keel(
        d,
        &[
            "experiments",
            "create",
            "c",
            "--data-dir",
            "from-flag",
            "--json",
        ],
    ));
    assert!(d.join("from-flag/keel.db").exists());
    std::fs::write(d.join("keel.toml"), "data_dri = \"typo\"\n").unwrap();
    let out = keel(d, &["experiments", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("data_dri"));
}

#[test]
fn the_cli_talks_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let created = json(&keel(
        dir.path(),
        &[
            "experiments",
            "create",
            "remote",
            "--server",
            &server.url,
            "--json",
        ],
    ));
    assert_eq!(created["experiment_id"], "1");
    let listed = json(&keel(
        dir.path(),
        &["experiments", "list", "--server", &server.url, "--json"],
    ));
    assert_eq!(listed["experiments"][0]["name"], "remote");
    let out = keel(
        dir.path(),
        &[
            "runs",
            "search",
            "--server",
            &server.url,
            "--filter",
            "params.x = ",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_teaches_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = keel(dir.path(), &["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("MLFLOW_TRACKING_URI"), "{text}");
    let out = keel(dir.path(), &["runs", "search", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--filter"), "{text}");
    assert!(text.contains("Example"), "{text}");
}

const CONTRACT: &str = include_str!("../../../../examples/lifecycles/churn-model.yaml");

/// The contract's CLI forms, on the data directory and through a server,
/// give the same JSON.
#[test]
fn lifecycle_contract_commands_on_the_data_directory_and_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("def.yaml"), CONTRACT).unwrap();
    let lc = |args: &[&str]| {
        let mut full = vec!["lifecycle"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--data-dir", "data"]);
        keel(d, &full)
    };
    let applied = json(&lc(&["apply", "def.yaml", "--json"]));
    assert_eq!(applied["version"], 1);
    json(&lc(&["start", "churn-model", "cust-1", "--json"]));
    json(&lc(&["start", "churn-model", "cust-2", "--json"]));
    // `send EVENT --key KEY` finds the lifecycle that uses the event.
    let sent = json(&lc(&["send", "data_arrived", "--key", "cust-1", "--json"]));
    assert_eq!(sent["applied"], 1);
    let got = json(&lc(&["get", "churn-model", "cust-1", "--json"]));
    assert_eq!(got["state"], "training");
    assert_eq!(got["version"], 1);
    // The action did not run: a command-line tool leaves it to the server.
    assert_eq!(got["running_actions"][0], "training");
    let listed = json(&lc(&[
        "list",
        "churn-model",
        "--state",
        "waiting_for_data",
        "--json",
    ]));
    assert_eq!(listed["instances"].as_array().unwrap().len(), 1);
    assert_eq!(listed["instances"][0]["key"], "cust-2");

    // A rejected event: exit code 2 (bad input), nothing changed.
    let out = lc(&[
        "send",
        "canary_won",
        "--key",
        "cust-2",
        "--lifecycle",
        "churn-model",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting_for_data"));

    // A bad definition: every problem with line and column, exit code 2.
    std::fs::write(
        d.join("bad.yaml"),
        "lifecycle: x\ninitial: nowhere\nstates:\n  a: {on: {go: b}}\n",
    )
    .unwrap();
    let out = lc(&["apply", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2:10:") && err.contains("4:"), "{err}");

    let server = start_server(d);
    let remote = |args: &[&str]| {
        let mut full = vec!["lifecycle"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--server", &server.url]);
        keel(d, &full)
    };
    // The server owns the store now: the data directory is locked.
    let out = lc(&["get", "churn-model", "cust-2", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server"));
    let local_view = got;
    let remote_view = json(&remote(&["get", "churn-model", "cust-1", "--json"]));
    assert_eq!(remote_view["key"], local_view["key"]);
    assert_eq!(remote_view["version"], local_view["version"]);
    let history = json(&remote(&["history", "churn-model", "cust-1", "--json"]));
    assert!(history["history"].as_array().unwrap().len() >= 2);
    let stats = json(&remote(&["stats", "churn-model", "--json"]));
    assert_eq!(stats["instances"], 2);
    let svg = remote(&["graph", "churn-model", "--svg"]);
    assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
}

/// `keel models …` against a server holding a registered model with a
/// lineage chain: show, aliases and their history, lineage both ways and as
/// SVG, cards, checkpoints, retraining, and pointed errors.
#[test]
fn models_commands_through_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());
    let http = reqwest::blocking::Client::new();
    let api = format!("{}/api/2.0/mlflow", server.url);
    let post = |path: &str, body: Value| {
        let r = http
            .post(format!("{api}/{path}"))
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.text().unwrap());
    };
    post(
        "registered-models/create",
        serde_json::json!({"name": "churn"}),
    );
    for _ in 0..2 {
        post(
            "model-versions/create",
            serde_json::json!({"name": "churn", "source": "s3://bucket/churn"}),
        );
    }
    let r = http
        .post(format!("{}/v1/lineage", server.url))
        .json(&serde_json::json!({
            "nodes": [{"kind": "dataset", "id": "events@d1", "name": "events"}, {"kind": "run", "id": "r1"}],
            "edges": [{"from": "dataset:events@d1", "to": "run:r1", "relation": "input"},
                      {"from": "run:r1", "to": "model_version:churn/2", "relation": "registered_as"}]
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let s = server.url.as_str();
    let run = |args: &[&str]| {
        let mut all = vec!["models"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", s]);
        keel(dir.path(), &all)
    };
    let text = |out: &Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    assert!(
        text(&run(&["alias", "churn", "champion", "1"])).contains("churn@champion → version 1")
    );
    text(&run(&["alias", "churn", "champion", "2"]));
    let shown = json(&run(&["show", "churn@champion", "--json"]));
    assert_eq!(shown["model_version"]["version"], "2");
    let listed = text(&run(&["list"]));
    assert!(
        listed.contains("churn") && listed.contains("@champion→2"),
        "{listed}"
    );
    let hist = json(&run(&["alias-history", "churn", "--json"]));
    assert_eq!(hist["history"].as_array().unwrap().len(), 2);
    assert!(
        hist["history"][1]["actor"]
            .as_str()
            .is_some_and(|a| !a.is_empty())
    );

    let up = text(&run(&["lineage", "churn@champion", "--upstream"]));
    assert!(
        up.contains("3 node(s)") && up.contains("dataset:events@d1"),
        "{up}"
    );
    let down = json(&run(&[
        "lineage",
        "dataset:events@d1",
        "--downstream",
        "--format",
        "json",
    ]));
    assert_eq!(down["nodes"].as_array().unwrap().len(), 3);
    run(&[
        "lineage",
        "churn/2",
        "--both",
        "--format",
        "svg",
        "-o",
        "lineage.svg",
    ]);
    let svg = std::fs::read_to_string(dir.path().join("lineage.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("events"));

    text(&run(&[
        "card-edit",
        "churn/2",
        "--set",
        "intended_use=Weekly call list",
        "--set",
        "owners=ana,bo",
    ]));
    let card = text(&run(&["card", "churn@champion"]));
    assert!(
        card.starts_with("# Model card: churn v2") && card.contains("Weekly call list"),
        "{card}"
    );
    assert!(
        card.contains("ana, bo") && card.contains("**events**"),
        "{card}"
    );

    text(&run(&[
        "checkpoints",
        "churn/2",
        "--add",
        "100",
        "--metric",
        "val_loss=0.4",
    ]));
    let cps = json(&run(&["checkpoints", "churn/2", "--json"]));
    assert_eq!(cps["checkpoints"][0]["metrics"]["val_loss"], 0.4);

    std::fs::write(
        dir.path().join("sig.json"),
        r#"{"inputs": [{"name": "tenure", "type": "double"}], "outputs": [{"type": "long"}]}"#,
    )
    .unwrap();
    let sig = json(&run(&["signature", "churn/2", "--set", "sig.json"]));
    assert_eq!(sig["inputs"][0]["name"], "tenure");
    assert_eq!(
        json(&run(&["signature", "churn@champion"]))["source"],
        "explicit"
    );
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"inputs": [{"name": "t", "type": "doubel"}]}"#,
    )
    .unwrap();
    let out = run(&["signature", "churn/2", "--set", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inputs[0].type"));

    // Verify: a version whose files are elsewhere cannot be checked, and says so.
    let out = run(&["verify", "churn/1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not in Keel's artifact store"));

    // Retraining needs a lifecycle that exists.
    let out = run(&[
        "retrain",
        "churn",
        "--lifecycle",
        "nope",
        "--schedule",
        "0 3 * * 1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("apply its definition first"));

    // Pointed errors, exit code 2.
    for (args, needle) in [
        (vec!["show", "churn/x"], "names no version"),
        (vec!["card", "churn/9"], "not found"),
        (
            vec!["card-edit", "churn/2", "--set", "purpose=x"],
            "not an editable model-card field",
        ),
        (vec!["lineage", "nope/1"], "does not exist"),
    ] {
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
