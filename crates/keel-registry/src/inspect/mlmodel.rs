//! MLflow's `MLmodel` file: the flavors a model can be loaded as, the MLflow
//! and Python versions it was saved with, where its environment files are,
//! and its signature.
//!
//! ```yaml
//! artifact_path: mlflow-artifacts:/0/models/m-…/artifacts
//! flavors:
//!   python_function:
//!     env: {conda: conda.yaml, virtualenv: python_env.yaml}
//!     loader_module: mlflow.sklearn
//!     python_version: 3.11.7
//!   sklearn: {pickled_model: model.pkl, sklearn_version: 1.9.1, …}
//! mlflow_version: 3.17.2
//! model_id: m-…
//! model_uuid: m-…
//! run_id: b8be…
//! signature:
//!   inputs: '[{"type": "double", "name": "x", "required": true}]'
//!   outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
//!   params: null
//! utc_time_created: '2026-11-28 23:45:25.521813'
//! ```

use keel_core::yaml::{Node, Value};
use serde::{Deserialize, Serialize};

use super::environment::Flavor;
use super::signature::{self, Origin, Signature, SignatureError, SignatureSource};
use super::yaml_values::{FieldError, a, entries, field_error, join, text, text_at};

/// What the `MLmodel` file says about where the model came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// MLflow's id for this saved copy of the model; equal to `model_id`
    /// for models logged with MLflow 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uuid: Option<String>,
    /// The logged model's id (MLflow 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The run that logged the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Where the model's artifacts were logged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_path: Option<String>,
    /// As MLflow writes it: `2026-11-28 23:45:25.521813`, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_time_created: Option<String>,
    /// The size of the model's files, as MLflow measured it when saving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_size_bytes: Option<i64>,
}

/// Everything read from an `MLmodel` file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MlModel {
    pub metadata: ModelMetadata,
    pub mlflow_version: Option<String>,
    /// `flavors.python_function.python_version`.
    pub python_version: Option<String>,
    pub flavors: Vec<Flavor>,
    /// The conda environment file `python_function` names, if it names one.
    pub conda_file: Option<String>,
    /// The virtualenv (`python_env.yaml`) file `python_function` names.
    pub virtualenv_file: Option<String>,
    /// The model file of the `onnx` flavor.
    pub onnx_file: Option<String>,
    pub signature: Option<Signature>,
}

/// A problem in an `MLmodel` file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MlModelError {
    Yaml(keel_core::yaml::YamlError),
    Field(FieldError),
    Signature(SignatureError),
}

impl From<FieldError> for MlModelError {
    fn from(e: FieldError) -> Self {
        MlModelError::Field(e)
    }
}

/// Flavors whose version key is not `<flavor>_version`.
const VERSION_KEYS: [(&str, &str); 4] = [
    ("xgboost", "xgb_version"),
    ("lightgbm", "lgb_version"),
    ("spark", "pyspark_version"),
    ("johnsnowlabs", "pyspark_version"),
];

pub(crate) fn read(src: &str) -> Result<MlModel, MlModelError> {
    let doc = keel_core::yaml::parse(src).map_err(MlModelError::Yaml)?;
    let mut model = MlModel::default();
    if matches!(doc.value, Value::Null) {
        return Ok(model);
    }
    entries(&doc, "")?;

    model.mlflow_version = text_at(&doc, "mlflow_version", src, "")?;
    model.metadata = ModelMetadata {
        model_uuid: text_at(&doc, "model_uuid", src, "")?,
        model_id: text_at(&doc, "model_id", src, "")?,
        run_id: text_at(&doc, "run_id", src, "")?,
        artifact_path: text_at(&doc, "artifact_path", src, "")?,
        utc_time_created: text_at(&doc, "utc_time_created", src, "")?,
        model_size_bytes: match doc.get("model_size_bytes") {
            None => None,
            Some(Node {
                value: Value::Null, ..
            }) => None,
            Some(Node {
                value: Value::Int(n),
                ..
            }) => Some(*n),
            Some(other) => {
                return Err(field_error(
                    "model_size_bytes",
                    format!("expected an integer, found {}", a(other.kind())),
                )
                .into());
            }
        },
    };

    if let Some(flavors) = doc
        .get("flavors")
        .filter(|n| !matches!(n.value, Value::Null))
    {
        for (key, config) in entries(flavors, "flavors")? {
            let Some(name) = key.as_str() else {
                return Err(field_error("flavors", "flavor names must be strings").into());
            };
            let field = join("flavors", name);
            if matches!(config.value, Value::Null) {
                model.flavors.push(Flavor {
                    name: name.to_string(),
                    version: None,
                    loader_module: None,
                });
                continue;
            }
            entries(config, &field)?;
            let version_key = VERSION_KEYS
                .iter()
                .find(|(flavor, _)| *flavor == name)
                .map_or_else(|| format!("{name}_version"), |(_, key)| key.to_string());
            model.flavors.push(Flavor {
                name: name.to_string(),
                version: text_at(config, &version_key, src, &field)?,
                loader_module: text_at(config, "loader_module", src, &field)?,
            });
            match name {
                "python_function" => read_python_function(config, src, &field, &mut model)?,
                "onnx" => model.onnx_file = text_at(config, "data", src, &field)?,
                _ => {}
            }
        }
    }

    if let Some(sig) = doc.get("signature") {
        match &sig.value {
            Value::Null => {}
            Value::Map(_) => {
                model.signature = signature::read_signature(
                    &sig.to_json(),
                    Origin::MlModel,
                    SignatureSource::MLmodel,
                )
                .map_err(|e| MlModelError::Signature(e.within("signature")))?;
            }
            _ => {
                return Err(field_error(
                    "signature",
                    format!(
                        "expected a mapping with inputs, outputs and params, found {}",
                        a(sig.kind())
                    ),
                )
                .into());
            }
        }
    }
    Ok(model)
}

/// `python_version` and the environment files. `env` is a mapping
/// `{conda: …, virtualenv: …}` since MLflow 2.0, a conda file name before.
fn read_python_function(
    config: &Node,
    src: &str,
    field: &str,
    model: &mut MlModel,
) -> Result<(), FieldError> {
    model.python_version = text_at(config, "python_version", src, field)?;
    let Some(env) = config.get("env") else {
        return Ok(());
    };
    let env_field = join(field, "env");
    match &env.value {
        Value::Map(_) => {
            model.conda_file = text_at(env, "conda", src, &env_field)?;
            model.virtualenv_file = text_at(env, "virtualenv", src, &env_field)?;
        }
        _ => model.conda_file = text(env, src, &env_field)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flavors_versions_and_environment_files() {
        let src = "\
flavors:
  python_function:
    env: conda.yaml
    loader_module: mlflow.xgboost
    python_version: 3.10
  xgboost:
    xgb_version: 2.0.3
    data: model.xgb
  onnx:
    onnx_version: 1.16.0
    data: model.onnx
  custom: null
mlflow_version: 1.30.0
model_size_bytes: 1234
";
        let m = read(src).unwrap();
        assert_eq!(m.python_version.as_deref(), Some("3.10"));
        assert_eq!(m.mlflow_version.as_deref(), Some("1.30.0"));
        assert_eq!(m.conda_file.as_deref(), Some("conda.yaml"));
        assert_eq!(m.virtualenv_file, None);
        assert_eq!(m.onnx_file.as_deref(), Some("model.onnx"));
        assert_eq!(m.metadata.model_size_bytes, Some(1234));
        let flavors: Vec<(&str, Option<&str>, Option<&str>)> = m
            .flavors
            .iter()
            .map(|f| {
                (
                    f.name.as_str(),
                    f.version.as_deref(),
                    f.loader_module.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            flavors,
            [
                ("python_function", None, Some("mlflow.xgboost")),
                ("xgboost", Some("2.0.3"), None),
                ("onnx", Some("1.16.0"), None),
                ("custom", None, None),
            ]
        );
        assert_eq!(m.signature, None);
    }

    #[test]
    fn errors_name_the_field() {
        let field = |src: &str| match read(src) {
            Err(MlModelError::Field(e)) => format!("{}: {}", e.field, e.message),
            other => panic!("{src}: {other:?}"),
        };
        assert_eq!(field("- a\n"), ": expected a mapping, found a sequence");
        assert_eq!(
            field("flavors: [a]\n"),
            "flavors: expected a mapping, found a sequence"
        );
        assert_eq!(
            field("flavors:\n  sklearn:\n    sklearn_version: [1]\n"),
            "flavors.sklearn.sklearn_version: expected a single value, found a sequence"
        );
        assert_eq!(
            field("signature: '[]'\n"),
            "signature: expected a mapping with inputs, outputs and params, found a string"
        );
        assert!(matches!(read("a: [\n"), Err(MlModelError::Yaml(_))));
        match read("signature:\n  inputs: '[{\"type\": \"doubel\"}]'\n") {
            Err(MlModelError::Signature(e)) => {
                assert!(
                    e.to_string()
                        .starts_with("signature.inputs[0].type: unknown type"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_file_says_nothing() {
        assert_eq!(read("").unwrap(), MlModel::default());
        assert_eq!(read("signature: null\n").unwrap().signature, None);
    }
}
