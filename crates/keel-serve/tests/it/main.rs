//! keel-serve end to end below HTTP: compile, run, enforce signatures, batch,
//! swap versions.

mod onnx;

use std::sync::Arc;
use std::time::Duration;

use keel_serve::ServeError;
use keel_serve::batch::BatchSettings;
use keel_serve::plan::{CompileOptions, Plan};
use keel_serve::repository::Repository;
use keel_serve::tensor::{Data, Datatype, NamedTensor};

fn x(rows: &[[f32; 3]]) -> NamedTensor {
    NamedTensor::new(
        "X",
        vec![rows.len(), 3],
        Data::Fp32(rows.iter().flatten().copied().collect()),
    )
}

fn fp32(t: &NamedTensor) -> &[f32] {
    match &t.data {
        Data::Fp32(v) => v,
        other => panic!("expected FP32, got {other:?}"),
    }
}

fn quick() -> CompileOptions {
    CompileOptions {
        sample_batch: 4,
        timing_runs: 3,
        allow_non_finite: None,
    }
}

#[test]
fn a_linear_model_compiles_with_a_report_and_computes() {
    let plan = Plan::compile(
        &onnx::linear(&[1., 2., 3., 4., 5., 6.], &[0.5, -0.5]),
        &quick(),
    )
    .unwrap();
    let sig = &plan.signature;
    assert_eq!(sig.inputs[0].shape, vec![-1, 3]);
    assert_eq!(sig.inputs[0].datatype, Datatype::Fp32);
    assert_eq!(sig.outputs[0].shape, vec![-1, 2]);
    assert!(sig.batched && !sig.allow_non_finite);
    let r = &plan.report;
    assert!(r.nodes_before > 0 && r.nodes_after > 0 && r.latency_after_us > 0.0);
    let out = plan.run(&[x(&[[1., 0., 0.], [1., 1., 1.]])]).unwrap();
    assert_eq!(out[0].shape, vec![2, 2]);
    assert_eq!(fp32(&out[0]), &[1.5, 1.5, 9.5, 11.5]);
}

#[test]
fn tree_stumps_route_nan_and_lay_out_binary_scores() {
    let plan = Plan::compile(&onnx::stumps("NONE"), &quick()).unwrap();
    assert!(
        plan.signature.allow_non_finite,
        "tree ensembles route missing values"
    );
    let rows = NamedTensor::new(
        "X",
        vec![3, 2],
        Data::Fp32(vec![0.0, 5.0, 1.0, 1.0, f32::NAN, 1.0]),
    );
    let out = plan.run(&[rows]).unwrap();
    // Row 0: 0.1 + 0.4; row 1: 0.3 + 0.2; row 2: NaN goes left (0.1) + 0.2.
    let p = fp32(&out[1]);
    let expected = [0.5, 0.5, 0.5, 0.5, 0.7, 0.3];
    for (got, want) in p.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{p:?}");
    }
    // Ties go to the first class, as in onnxruntime.
    assert_eq!(out[0].data, Data::Int64(vec![0, 0, 0]));

    let logistic = Plan::compile(&onnx::stumps("LOGISTIC"), &quick()).unwrap();
    let out = logistic
        .run(&[NamedTensor::new(
            "X",
            vec![1, 2],
            Data::Fp32(vec![1.0, 1.0]),
        )])
        .unwrap();
    let p = fp32(&out[1]);
    let s = 1.0 / (1.0 + (-0.5f32).exp());
    assert!(
        (p[0] - (1.0 - s)).abs() < 1e-6 && (p[1] - s).abs() < 1e-6,
        "{p:?}"
    );
    assert_eq!(out[0].data, Data::Int64(vec![1]));
}

#[test]
fn scaler_and_one_hot_encoder_run_natively() {
    let plan = Plan::compile(&onnx::preprocess(), &quick()).unwrap();
    assert_eq!(
        plan.report.native_ops,
        vec!["Scaler".to_string(), "OneHotEncoder".to_string()]
    );
    let num = NamedTensor::new("num", vec![2, 2], Data::Fp32(vec![3.0, 12.0, 1.0, 10.0]));
    let cat = NamedTensor::new(
        "cat",
        vec![2, 1],
        Data::Bytes(vec![b"US".to_vec(), b"unseen".to_vec()]),
    );
    let out = plan.run(&[num, cat]).unwrap();
    assert_eq!(fp32(&out[0]), &[4.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn malformed_and_hostile_files_are_errors_not_panics() {
    for bytes in [
        b"not onnx at all".to_vec(),
        Vec::new(),
        onnx::linear(&[0.; 6], &[0.; 2])[..40].to_vec(),
    ] {
        assert!(matches!(
            Plan::compile(&bytes, &quick()),
            Err(ServeError::Compile(_))
        ));
    }
    // A "tree" whose node points back at its root would loop forever.
    let cyclic = onnx::model(
        vec![onnx::node(
            "TreeEnsembleRegressor",
            "ai.onnx.ml",
            &["X"],
            &["Y"],
            &[
                ("n_targets", onnx::Attr::Int(1)),
                ("nodes_treeids", onnx::Attr::Ints(&[0, 0])),
                ("nodes_nodeids", onnx::Attr::Ints(&[0, 1])),
                ("nodes_featureids", onnx::Attr::Ints(&[0, 0])),
                ("nodes_values", onnx::Attr::Floats(&[0.5, 0.5])),
                (
                    "nodes_modes",
                    onnx::Attr::Strs(&["BRANCH_LEQ", "BRANCH_LEQ"]),
                ),
                ("nodes_truenodeids", onnx::Attr::Ints(&[1, 0])),
                ("nodes_falsenodeids", onnx::Attr::Ints(&[1, 0])),
                ("target_treeids", onnx::Attr::Ints(&[])),
                ("target_nodeids", onnx::Attr::Ints(&[])),
                ("target_ids", onnx::Attr::Ints(&[])),
                ("target_weights", onnx::Attr::Floats(&[])),
            ],
        )],
        vec![onnx::value("X", onnx::FLOAT, &[0, 1])],
        vec![onnx::value("Y", onnx::FLOAT, &[0, 1])],
        vec![],
    );
    let err = Plan::compile(&cyclic, &quick()).unwrap_err().to_string();
    assert!(err.contains("do not form trees"), "{err}");
}

fn write_version(root: &std::path::Path, name: &str, version: u64, bytes: &[u8]) {
    let dir = root.join(name).join(version.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    // Write then rename, as a deployment tool would, so a reader never sees
    // half a file.
    let tmp = dir.join("model.onnx.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join("model.onnx")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_enforced_before_anything_runs() {
    let root = tempfile::tempdir().unwrap();
    write_version(root.path(), "lin", 1, &onnx::linear(&[1.; 6], &[0.; 2]));
    let repo = Repository::new(Some(root.path().to_path_buf()));
    assert!(repo.load_all().await.is_empty());
    let served = repo.get("lin").unwrap().version(None).unwrap();
    let cases: Vec<(Vec<NamedTensor>, &str)> = vec![
        (
            vec![NamedTensor::new("X", vec![1, 3], Data::Fp64(vec![0.; 3]))],
            "datatype FP64",
        ),
        (
            vec![NamedTensor::new("X", vec![1, 4], Data::Fp32(vec![0.; 4]))],
            "shape [1, 4]",
        ),
        (
            vec![NamedTensor::new("X", vec![3], Data::Fp32(vec![0.; 3]))],
            "shape [3]",
        ),
        (
            vec![NamedTensor::new(
                "X",
                vec![1, 3],
                Data::Fp32(vec![0., f32::NAN, 0.]),
            )],
            "element 1 is NaN",
        ),
        (
            vec![NamedTensor::new(
                "X",
                vec![1, 3],
                Data::Fp32(vec![0., f32::INFINITY, 0.]),
            )],
            "NaN or infinite",
        ),
        (
            vec![NamedTensor::new("Z", vec![1, 3], Data::Fp32(vec![0.; 3]))],
            "unknown input Z",
        ),
        (vec![], "input X is missing"),
        (vec![x(&[[0.; 3]]), x(&[[0.; 3]])], "given twice"),
    ];
    for (inputs, reason) in cases {
        match served.infer(inputs).await {
            Err(ServeError::BadInput(m)) => {
                assert!(m.contains(reason), "{m} should mention {reason}")
            }
            other => panic!("expected a bad-input error mentioning {reason}, got {other:?}"),
        }
    }
    assert!(served.infer(vec![x(&[[1., 1., 1.]])]).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_and_split_back_exactly() {
    let root = tempfile::tempdir().unwrap();
    write_version(
        root.path(),
        "lin",
        1,
        &onnx::linear(&[1., 2., 3., 4., 5., 6.], &[0.5, -0.5]),
    );
    std::fs::write(
        root.path().join("lin/model-settings.json"),
        r#"{"max_batch_size": 64, "max_batch_time": 0.05}"#,
    )
    .unwrap();
    let repo = Repository::new(Some(root.path().to_path_buf()));
    assert!(repo.load_all().await.is_empty());
    let served = repo.get("lin").unwrap().version(None).unwrap();
    assert_eq!(
        served.settings.batch,
        BatchSettings {
            max_batch_size: 64,
            max_delay: Duration::from_millis(50)
        }
    );
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let served = served.clone();
            tokio::spawn(async move {
                let v = i as f32;
                let rows = (i % 3) + 1;
                let input: Vec<[f32; 3]> = (0..rows).map(|r| [v, r as f32, 1.0]).collect();
                let out = served.infer(vec![x(&input)]).await.unwrap();
                assert_eq!(out[0].shape, vec![rows, 2]);
                for (r, pair) in fp32(&out[0]).chunks(2).enumerate() {
                    let (a, b, c) = (v, r as f32, 1.0);
                    assert_eq!(
                        pair,
                        [a + 3. * b + 5. * c + 0.5, 2. * a + 4. * b + 6. * c - 0.5]
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (requests, batches, _) = served.batch_stats().snapshot();
    // The warm-up runs outside the batcher, so every request counted is ours.
    assert_eq!(requests, 32);
    assert!(
        batches < 32,
        "32 concurrent requests ran as {batches} batches: nothing was coalesced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_takes_over_without_a_failed_request() {
    let root = tempfile::tempdir().unwrap();
    write_version(root.path(), "m", 1, &onnx::linear(&[1.; 6], &[0.; 2]));
    let repo = Arc::new(Repository::new(Some(root.path().to_path_buf())));
    assert!(repo.load_all().await.is_empty());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (repo, stop) = (repo.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let served = repo.get("m").unwrap().version(None).unwrap();
                    let out = served
                        .infer(vec![x(&[[1., 1., 1.]])])
                        .await
                        .expect("no request fails");
                    // Version 1 sums the row (3); version 2 doubles it (6).
                    let expected = if served.version == 1 { 3.0 } else { 6.0 };
                    assert_eq!(fp32(&out[0]), &[expected, expected]);
                    seen.push(served.version);
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    write_version(root.path(), "m", 2, &onnx::linear(&[2.; 6], &[0.; 2]));
    let model = repo.load("m").await.unwrap();
    assert_eq!(
        model.versions.keys().copied().collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(repo.get("m").unwrap().version(None).unwrap().version, 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut versions = Vec::new();
    for c in clients {
        versions.extend(c.await.unwrap());
    }
    assert!(
        versions.contains(&1) && versions.contains(&2),
        "both versions served"
    );
    assert_eq!(*versions.last().unwrap(), 2);
    // Unchanged versions are not recompiled by a second load.
    let v1 = repo.get("m").unwrap().version(Some("1")).unwrap();
    repo.load("m").await.unwrap();
    assert!(Arc::ptr_eq(
        &v1,
        &repo.get("m").unwrap().version(Some("1")).unwrap()
    ));
    repo.unload("m").unwrap();
    assert!(matches!(repo.get("m"), Err(ServeError::UnknownModel(_))));
    assert!(matches!(repo.unload("m"), Err(ServeError::UnknownModel(_))));
}

/// With no delay set, a request that finds its queue empty and a worker free
/// runs on its own thread: as a plain call for a tiny plan, under
/// `block_in_place` for a longer one; either way the answers are exact and
/// the runtime keeps serving the other tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_requests_run_inline_for_tiny_and_long_plans() {
    use keel_serve::batch::{Batcher, INLINE_LATENCY_US, worker_pool};
    for latency_us in [1.0, 10.0 * INLINE_LATENCY_US] {
        let mut plan = Plan::compile(
            &onnx::linear(&[1., 2., 3., 4., 5., 6.], &[0.5, -0.5]),
            &quick(),
        )
        .unwrap();
        // Pretend the plan is as slow as the case needs.
        plan.report.latency_after_us = latency_us;
        let batcher = Batcher::start(Arc::new(plan), BatchSettings::default(), worker_pool());
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move {
                    for k in 0..50 {
                        let v = (i * 100 + k) as f32;
                        let out = batcher.infer(vec![x(&[[v, 1.0, 0.0]])], 1).await.unwrap();
                        assert_eq!(fp32(&out[0]), &[v + 3.0 + 0.5, 2.0 * v + 4.0 - 0.5]);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let (requests, _, rows) = batcher.stats().snapshot();
        assert_eq!((requests, rows), (800, 800));
        let inline = batcher
            .stats()
            .inline
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(inline > 0, "no request ran inline at {latency_us} µs");
    }
}
