//! Model inspection on files written by MLflow and the `onnx` package (see
//! `tests/fixtures/README.md`).

use keel_registry::inspect::{
    ColumnKind, InspectError, Inspection, Signature, SignatureSource, inspect, validate_signature,
};
use serde_json::json;

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $path
        ))
        .as_slice()
    };
}

fn model_dir(dir: &str) -> Vec<(&'static str, &'static [u8])> {
    match dir {
        "sklearn_columns" => vec![
            ("MLmodel", fixture!("sklearn_columns/MLmodel")),
            (
                "requirements.txt",
                fixture!("sklearn_columns/requirements.txt"),
            ),
            ("conda.yaml", fixture!("sklearn_columns/conda.yaml")),
            (
                "python_env.yaml",
                fixture!("sklearn_columns/python_env.yaml"),
            ),
            ("model.pkl", b"not read".as_slice()),
        ],
        "pyfunc_tensor" => vec![
            ("MLmodel", fixture!("pyfunc_tensor/MLmodel")),
            (
                "requirements.txt",
                fixture!("pyfunc_tensor/requirements.txt"),
            ),
            ("conda.yaml", fixture!("pyfunc_tensor/conda.yaml")),
            ("python_env.yaml", fixture!("pyfunc_tensor/python_env.yaml")),
        ],
        _ => unreachable!("no fixture {dir}"),
    }
}

#[test]
fn inspect_sklearn_model_with_column_signature() {
    let got = inspect(&model_dir("sklearn_columns")).unwrap();
    let column =
        |name: &str| json!({"name": name, "kind": "column", "type": "double", "required": true});
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        json!({
            "signature": {
                "inputs": [
                    column("sepal length (cm)"),
                    column("sepal width (cm)"),
                    column("petal length (cm)"),
                    column("petal width (cm)"),
                ],
                "outputs": [{"kind": "tensor", "type": "int64", "shape": [-1], "required": true}],
                "params": [
                    {"name": "alpha", "type": "double", "default": 0.5},
                    {"name": "labels", "type": "string", "default": ["a", "b"], "shape": [-1]},
                ],
                "source": "mlmodel",
            },
            "dependencies": {
                "python_version": "3.11.7",
                "mlflow_version": "3.17.2",
                "flavors": [
                    {"name": "python_function", "loader_module": "mlflow.sklearn"},
                    {"name": "sklearn", "version": "1.9.1"},
                ],
                "requirements": [
                    "mlflow==3.17.2",
                    "cloudpickle==3.1.3",
                    "numpy==2.4.6",
                    "pandas==3.1.1",
                    "scikit-learn==1.9.1",
                    "scipy==1.17.1",
                ],
                "conda": {
                    "name": "mlflow-env",
                    "channels": ["conda-forge"],
                    "dependencies": ["python=3.11.7", "pip<=26.3"],
                    "pip": [
                        "mlflow==3.17.2",
                        "cloudpickle==3.1.3",
                        "numpy==2.4.6",
                        "pandas==3.1.1",
                        "scikit-learn==1.9.1",
                        "scipy==1.17.1",
                    ],
                },
                "python_env": {
                    "python": "3.11.7",
                    "build_dependencies": ["pip==26.3", "setuptools==65.5.0", "wheel"],
                    "dependencies": ["-r requirements.txt"],
                },
            },
            "model": {
                "model_uuid": "m-dd4f47a3522f4d8fa44e043d58284a82",
                "model_id": "m-dd4f47a3522f4d8fa44e043d58284a82",
                "run_id": "b8be7c7603d64275bec2ee086be5fa54",
                "artifact_path": "mlflow-artifacts:/0/models/m-dd4f47a3522f4d8fa44e043d58284a82/artifacts",
                "utc_time_created": "2026-11-28 23:45:25.521813",
                "model_size_bytes": 989,
            },
        })
    );
    // The JSON reads back to the same value.
    let text = serde_json::to_string(&got).unwrap();
    assert_eq!(serde_json::from_str::<Inspection>(&text).unwrap(), got);
}

#[test]
fn inspect_pyfunc_model_with_tensor_signature() {
    let got = inspect(&model_dir("pyfunc_tensor")).unwrap();
    let sig = got.signature.unwrap();
    assert_eq!(sig.source, SignatureSource::MLmodel);
    assert_eq!(
        serde_json::to_value(&sig).unwrap(),
        json!({
            "inputs": [{"name": "image", "kind": "tensor", "type": "float32", "shape": [-1, 28, 28], "required": true}],
            "outputs": [{"kind": "tensor", "type": "float32", "shape": [-1, 10], "required": true}],
            "source": "mlmodel",
        })
    );
    let deps = got.dependencies;
    assert_eq!(deps.requirements, ["mlflow==3.17.2", "cloudpickle==3.1.3"]);
    assert_eq!(deps.flavors.len(), 1);
    assert_eq!(deps.flavors[0].name, "python_function");
    assert_eq!(
        deps.flavors[0].loader_module.as_deref(),
        Some("mlflow.pyfunc.model")
    );
    assert_eq!(deps.python_version.as_deref(), Some("3.11.7"));
}

/// (name, kind, type, shape) of each spec.
type Spec = (Option<String>, ColumnKind, String, Option<Vec<i64>>);

fn specs(sig: &Signature) -> (Vec<Spec>, Vec<Spec>) {
    let list = |s: &Option<keel_registry::inspect::Schema>| -> Vec<Spec> {
        s.iter()
            .flat_map(|s| s.0.iter())
            .map(|c| (c.name.clone(), c.kind, c.dtype.clone(), c.shape.clone()))
            .collect()
    };
    (list(&sig.inputs), list(&sig.outputs))
}

fn tensor(name: &str, dtype: &str, shape: &[i64]) -> Spec {
    (
        Some(name.into()),
        ColumnKind::Tensor,
        dtype.into(),
        Some(shape.to_vec()),
    )
}

/// The expected values were printed by the `onnx` package (1.23.2) for the
/// same file: for each graph input whose name is not an initializer's, and
/// each output, `name`, `onnx.helper.tensor_dtype_to_np_dtype(elem_type).name`
/// and `[d.dim_value if d.HasField("dim_value") else -1 for d in shape.dim]`.
/// The non-tensor output's type is what onnxruntime (1.23) reports as
/// `InferenceSession(path).get_outputs()[1].type`; it too lists `X`, `ids`,
/// `flag` as the inputs and `A` alone for the second model.
#[test]
fn onnx_signature_matches_the_onnx_package() {
    let files = [(
        "onnx/dynamic_batch.onnx",
        fixture!("onnx/dynamic_batch.onnx"),
    )];
    let sig = inspect(&files).unwrap().signature.unwrap();
    assert_eq!(sig.source, SignatureSource::Onnx);
    assert_eq!(sig.params, None);
    assert_eq!(
        specs(&sig),
        (
            vec![
                tensor("X", "float32", &[-1, 4]),
                tensor("ids", "int64", &[-1, 3]),
                tensor("flag", "bool", &[]),
            ],
            vec![
                tensor("probabilities", "float32", &[-1, 2]),
                (
                    Some("output_probability".into()),
                    ColumnKind::Other,
                    "seq(map(int64,tensor(float)))".into(),
                    None
                ),
            ]
        )
    );

    let files = [(
        "initializer_as_input.onnx",
        fixture!("onnx/initializer_as_input.onnx"),
    )];
    let sig = inspect(&files).unwrap().signature.unwrap();
    assert_eq!(
        specs(&sig),
        (
            vec![tensor("A", "float64", &[1, 2])],
            vec![tensor("C", "float64", &[1, 2])]
        )
    );
}

#[test]
fn onnx_flavor_without_signature_uses_the_graph() {
    let mlmodel = b"\
flavors:
  onnx:
    data: model.onnx
    onnx_version: 1.23.2
    providers: [CPUExecutionProvider]
  python_function:
    loader_module: mlflow.onnx
    python_version: 3.11.7
mlflow_version: 3.17.2
";
    let files = [
        ("MLmodel", mlmodel.as_slice()),
        ("model.onnx", fixture!("onnx/initializer_as_input.onnx")),
    ];
    let got = inspect(&files).unwrap();
    assert_eq!(got.signature.unwrap().source, SignatureSource::Onnx);
    let onnx = &got.dependencies.flavors[0];
    assert_eq!(
        (onnx.name.as_str(), onnx.version.as_deref()),
        ("onnx", Some("1.23.2"))
    );
}

#[test]
fn a_broken_fixture_names_file_and_field() {
    let mut bytes = fixture!("onnx/dynamic_batch.onnx").to_vec();
    bytes.truncate(bytes.len() - 7);
    let err = inspect(&[("model.onnx", &bytes)]).unwrap_err();
    assert!(matches!(err, InspectError::Onnx { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("model.onnx: not a valid ONNX model: "),
        "{err}"
    );

    let mlmodel = String::from_utf8(fixture!("sklearn_columns/MLmodel").to_vec())
        .unwrap()
        .replace("\"type\": \"tensor\"", "\"type\": \"tensr\"");
    let err = inspect(&[("MLmodel", mlmodel.as_bytes())]).unwrap_err();
    assert_eq!(err.file(), "MLmodel");
    assert!(
        err.to_string().starts_with(
            "MLmodel: signature.outputs[0].type: unknown type \"tensr\"; expected one of"
        ),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("(did you mean \"tensor\"?)"),
        "{err}"
    );
}

#[test]
fn explicit_signature_round_trips_an_mlmodel_one() {
    // The signature mapping of the fixture, as MLflow's
    // `ModelSignature.to_dict()` gives it, checked as user input.
    let given = json!({
        "inputs": "[{\"type\": \"double\", \"name\": \"x\", \"required\": true}]",
        "outputs": [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}],
        "params": null,
    });
    let sig = validate_signature(&given.to_string()).unwrap();
    assert_eq!(sig.source, SignatureSource::Explicit);
    assert_eq!(sig.inputs.unwrap().0[0].name.as_deref(), Some("x"));

    let err = validate_signature(r#"{"inputs": [{"name": "x", "type": "doubel"}]}"#).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].field, "inputs[0].type");
}
