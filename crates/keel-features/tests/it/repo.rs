//! Reading the sample repos under `tests/fixtures`, and the folder walk.

use std::path::{Path, PathBuf};

use keel_features::FeatureError;
use keel_features::definition::{
    DataType, Interval, Problem, Repo, SourcePath, View, load_repo, plan,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn sample() -> Repo {
    match load_repo(&fixture("repo")) {
        Ok(repo) => repo,
        Err(e) => panic!("the sample repo should load:\n{e}"),
    }
}

#[test]
fn the_sample_repo_loads() {
    let repo = sample();
    let names = |names: Vec<&str>| names.join(" ");
    assert_eq!(
        names(repo.entities.iter().map(|e| e.name.as_str()).collect()),
        "user item"
    );
    assert_eq!(repo.sources.len(), 3);
    assert_eq!(
        names(repo.views().map(|v| v.name()).collect()),
        "user_activity user_profile spend_per_click user_clicks_stream"
    );

    let profile = &repo.sources[1];
    assert_eq!(
        profile.path,
        SourcePath::Dataset {
            name: "user_profiles".into(),
            version: Some("3".into())
        }
    );
    assert_eq!(
        (profile.location.file.as_str(), profile.location.line),
        ("entities.yaml", 14)
    );

    let Some(View::Batch(view)) = repo.view("user_profile") else {
        panic!("user_profile is a feature view")
    };
    assert_eq!(view.location.to_string(), "views/features.yml:11:5");
    assert!(view.ttl.is_zero() && !view.online);
    assert_eq!(
        view.features[1].dtype,
        DataType::List(Box::new(DataType::String))
    );

    let Some(View::Stream(stream)) = repo.view("user_clicks_stream") else {
        panic!("user_clicks_stream is a stream feature view")
    };
    assert_eq!(stream.ttl, Interval::from_seconds(7 * 86_400));
    let Some(service) = repo.feature_service("user_features") else {
        panic!("user_features is defined")
    };
    let features: Vec<String> = service.features.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        features,
        [
            "user_activity",
            "user_profile:age",
            "spend_per_click",
            "user_clicks_stream:amount_mean_1d"
        ]
    );
}

#[test]
fn the_stored_form_is_json_that_reads_back() {
    let repo = sample();
    let json = serde_json::to_value(&repo).unwrap_or_default();
    let view = &json["feature_views"][1];
    assert_eq!(view["ttl"], "0");
    assert_eq!(view["features"][1]["dtype"], "list<string>");
    assert_eq!(view["location"]["file"], "views/features.yml");
    assert_eq!(view["location"]["path"], "feature_views[1]");
    assert_eq!(json["sources"][1]["path"], "dataset:user_profiles@3");
    assert_eq!(
        json["stream_feature_views"][0]["aggregations"][1]["name"],
        "amount_mean_1d"
    );
    assert_eq!(
        json["feature_services"][0]["features"][1],
        "user_profile:age"
    );
    let back: Repo = serde_json::from_value(json).unwrap_or_default();
    assert_eq!(back, repo);
    assert!(!plan(&repo, &back).has_changes());

    let bad = serde_json::json!({"feature_views": [{"ttl": "1 day"}]});
    assert!(serde_json::from_value::<Repo>(bad).is_err());
}

#[test]
fn a_plan_against_the_applied_repo() {
    let applied = sample();
    let mut next = sample();
    next.feature_views[0].ttl = Interval::from_seconds(2 * 86_400);
    next.entities.retain(|e| e.name != "item");
    next.feature_services.clear();
    assert_eq!(
        plan(&applied, &next).to_string(),
        "- entity item\n\
         ~ feature_view user_activity (ttl: 1d → 2d)\n\
         - feature_service user_features\n\
         Plan: 0 to create, 1 to update, 2 to delete, 8 unchanged.\n"
    );
}

const BROKEN: &[&str] = &[
    "a_entities.yaml:6:16: entities[1].join_keys: an entity needs at least one join key, e.g. `join_keys: [user_id]`",
    "a_entities.yaml:7:11: entities[2].name: entity `user` is already defined at a_entities.yaml:3:5; rename one of them",
    "a_entities.yaml:9:5: entities[2].descripton: unknown key `descripton` in an entity; allowed keys are: name, join_keys, description; did you mean `description`?",
    "a_entities.yaml:13:11: sources[0].path: `/data/activity.parquet` is an absolute path; write it relative to the repo folder so the repo works wherever it is checked out, or as a `file://` URL",
    "a_entities.yaml:15:5: sources[1].path: missing `path`: say where the data is: a path relative to the repo folder (`data/clicks.parquet`), a URL (`s3://bucket/clicks.parquet`) or a catalog dataset (`dataset:clicks`)",
    "a_entities.yaml:16:22: sources[1].timestamp_field: invalid timestamp field `ordered-at`: it must start with a letter or `_` and continue with letters, digits or `_`, since it is used in column names",
    "a_entities.yaml:18:1: feture_services: unknown key `feture_services` in a feature repo file; allowed keys are: entities, sources, request_sources, feature_views, on_demand_feature_views, stream_feature_views, feature_services; did you mean `feature_services`?",
    "b_views.yaml:3:16: feature_views[0].entities[0]: unknown entity `usr`; the entities defined are: user, merchant; did you mean `user`?",
    "b_views.yaml:4:10: feature_views[0].ttl: invalid duration `1 day`; write `0` or a whole number followed by one unit (s, m, h, d, w), e.g. 30s, 15m, 2h, 1d, 1w",
    "b_views.yaml:5:13: feature_views[0].source: unknown source `activity_scr`; the sources defined are: activity_src, orders_src; did you mean `activity_src`?",
    "b_views.yaml:8:16: feature_views[0].features[1].name: duplicate feature `clicks_1d`: it is already listed; remove one",
    "b_views.yaml:8:34: feature_views[0].features[1].dtype: unknown dtype `flaot64`; use one of int32, int64, float32, float64, string, bool, bytes, timestamp, or `list<…>` of one of them; did you mean `float64`?",
    "b_views.yaml:14:16: feature_views[1].features[0].name: feature `event_timestamp` has the name of the timestamp field of source `activity_src`; rename the feature, since both are columns of the same rows",
    "b_views.yaml:15:16: feature_views[1].features[1].name: invalid feature name `7d_total`: it must start with a letter or `_` and continue with letters, digits or `_`, since it is used in column names",
    "b_views.yaml:19:30: on_demand_feature_views[0].sources[1]: unknown source `request_ctx`; the feature views, stream feature views and request sources defined are: user_activity, orders",
    "b_views.yaml:21:51: on_demand_feature_views[0].features[0].expression: the expression is empty; write a SQL expression over the sources' features (`VIEW__FEATURE`) and request fields, e.g. \"user_activity__spend_1d * 2\"",
    "b_views.yaml:24:11: stream_feature_views[0].name: `orders` is already the name of the feature view at b_views.yaml:10:5; views of every kind and request sources share one set of names, since services and on-demand views refer to them by name: rename one of them",
    "b_views.yaml:27:36: stream_feature_views[0].aggregations[0].function: unknown function `average`; write one of count, sum, mean, min, max, last",
    "b_views.yaml:28:49: stream_feature_views[0].aggregations[1].window: the window must be longer than 0, e.g. `window: 1h`",
    "b_views.yaml:29:60: stream_feature_views[0].aggregations[2].slide: the slide (2h) is longer than the window (1h); a window advances by at most its length: shorten the slide or lengthen the window",
    "b_views.yaml:33:16: feature_services[0].features[0]: feature view `user_activity` has no feature `clicks_7d`; its features are: clicks_1d, user_id; did you mean `clicks_1d`?",
    "b_views.yaml:33:41: feature_services[0].features[1]: unknown view `user_activty`; the views defined are: user_activity, orders, ratio; did you mean `user_activity`?",
];

#[test]
fn a_broken_repo_reports_every_problem() {
    let problems = match load_repo(&fixture("broken")) {
        Err(FeatureError::Definitions(problems)) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    let found: Vec<String> = problems.iter().map(Problem::to_string).collect();
    assert!(
        found == BROKEN,
        "found:\n{}\nexpected:\n{}",
        found.join("\n"),
        BROKEN.join("\n")
    );
    let error = FeatureError::Definitions(problems);
    assert_eq!(error.to_string().lines().count(), BROKEN.len());
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_default();
    }
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[test]
fn the_walk_reads_yaml_files_only_and_skips_hidden_ones() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let root = dir.path();
    write(
        root,
        "b/views.yml",
        b"feature_views: [{name: v, source: s, features: [{name: f, dtype: int64}]}]\n",
    );
    write(
        root,
        "a.yaml",
        b"sources: [{name: s, path: p.parquet, timestamp_field: ts}]\n",
    );
    write(root, ".drafts/broken.yaml", b"entities: [\n");
    write(root, ".hidden.yaml", b"entities: [\n");
    write(root, "notes.txt", b"entities: [\n");
    write(root, "data/p.parquet", b"PAR1");
    let repo = load_repo(root).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(repo.feature_views[0].location.file, "b/views.yml");
    assert_eq!(repo.sources[0].location.file, "a.yaml");

    write(root, "c.yaml", b"entities:\n  - name: caf\xe9\n");
    let Err(FeatureError::Definitions(problems)) = load_repo(root) else {
        panic!("a file that is not UTF-8 is a problem")
    };
    assert_eq!(
        problems.iter().map(Problem::to_string).collect::<Vec<_>>(),
        ["c.yaml:2:14: the file is not UTF-8 text; save it as UTF-8"]
    );
}

#[cfg(unix)]
#[test]
fn links_to_files_count_and_links_to_folders_do_not() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let root = dir.path();
    write(
        root,
        "shared/sources.yaml",
        b"sources: [{name: s, path: p, timestamp_field: ts}]\n",
    );
    let repo_dir = root.join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap_or_default();
    std::os::unix::fs::symlink(
        root.join("shared/sources.yaml"),
        repo_dir.join("sources.yaml"),
    )
    .unwrap_or_else(|e| panic!("symlink: {e}"));
    // A loop: following it would never end.
    std::os::unix::fs::symlink(&repo_dir, repo_dir.join("again"))
        .unwrap_or_else(|e| panic!("symlink: {e}"));
    let repo = load_repo(&repo_dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(repo.sources.len(), 1);
}

#[test]
fn a_missing_folder_is_an_io_error() {
    let missing = fixture("no-such-repo");
    match load_repo(&missing) {
        Err(e @ FeatureError::Io { .. }) => {
            assert!(e.to_string().contains("no-such-repo"), "{e}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}
