//! Model inspection: what a registered model's artifact files say about its
//! signature and what it needs to run.
//!
//! Pure: [`inspect`] takes the files' paths (relative to the model
//! directory) and bytes, and reads nothing else. Missing files are simply
//! absent data; a file that is present but malformed is an
//! [`InspectError`] naming the file and the field, since registering a
//! model whose metadata cannot be read would only move the failure to
//! serving time.
//!
//! Files read:
//!
//! - `MLmodel`: flavors, versions, model metadata, and the signature.
//! - An ONNX model: the `data` file of the `onnx` flavor, else the only
//!   `*.onnx` file. Its graph gives the signature when `MLmodel` has none.
//! - `requirements.txt`, and the conda and virtualenv files that
//!   `MLmodel` names (`conda.yaml` and `python_env.yaml` when it names none).

mod environment;
mod mlmodel;
mod onnx;
mod protobuf;
mod signature;
mod yaml_values;

use serde::{Deserialize, Serialize};

pub use environment::{CondaEnv, Dependencies, Flavor, PythonEnv};
pub use mlmodel::ModelMetadata;
pub use onnx::MAX_TYPE_DEPTH;
pub use signature::{
    ColumnKind, ColumnSpec, DATA_TYPES, NUMPY_DTYPES, ParamSpec, Schema, Signature, SignatureError,
    SignatureProblem, SignatureSource, validate_signature,
};

use environment::EnvironmentError;
use mlmodel::MlModelError;
use yaml_values::FieldError;

/// What [`inspect`] found, as JSON:
///
/// ```json
/// {
///   "signature": {"inputs": [...], "outputs": [...], "source": "mlmodel"},
///   "dependencies": {"python_version": "3.11.7", "mlflow_version": "3.17.2",
///                    "flavors": [...], "requirements": [...], ...},
///   "model": {"model_id": "m-…", "run_id": "…", "utc_time_created": "…", ...}
/// }
/// ```
///
/// See [`Signature`] and [`Dependencies`] for their shapes; `signature` and
/// `model` are omitted when there is no signature or no `MLmodel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    /// From `MLmodel`, else from the ONNX graph; absent when neither has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    pub dependencies: Dependencies,
    /// What `MLmodel` says about where the model came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelMetadata>,
}

/// A model file that is present but cannot be read. Each maps to
/// `INVALID_PARAMETER_VALUE`; the message names the file and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InspectError {
    /// A file that should be text is not UTF-8.
    #[error("{file}: not UTF-8 text (invalid byte at offset {offset})")]
    NotText { file: String, offset: usize },
    #[error("{file}: not valid YAML: {source}")]
    Yaml {
        file: String,
        source: keel_core::yaml::YamlError,
    },
    /// A value of the wrong kind.
    #[error("{file}: {field}: {message}")]
    Field {
        file: String,
        /// Where in the file: `flavors.sklearn.sklearn_version`,
        /// `dependencies[2]`; empty for the whole document.
        field: String,
        message: String,
    },
    /// The `MLmodel` signature breaks MLflow's rules; every problem is
    /// listed.
    #[error("{file}: {source}")]
    Signature {
        file: String,
        source: SignatureError,
    },
    /// Not a well-formed ONNX model.
    #[error("{file}: not a valid ONNX model: {detail}")]
    Onnx {
        file: String,
        /// Where and what: `graph.input[1].type.tensor_type.elem_type:
        /// missing or UNDEFINED; …`.
        detail: String,
    },
}

impl InspectError {
    /// The file the problem is in, as given to [`inspect`].
    pub fn file(&self) -> &str {
        match self {
            InspectError::NotText { file, .. }
            | InspectError::Yaml { file, .. }
            | InspectError::Field { file, .. }
            | InspectError::Signature { file, .. }
            | InspectError::Onnx { file, .. } => file,
        }
    }

    fn field(file: &str, e: FieldError) -> Self {
        InspectError::Field {
            file: file.to_string(),
            field: e.field,
            message: e.message,
        }
    }

    fn environment(file: &str, e: EnvironmentError) -> Self {
        match e {
            EnvironmentError::Yaml(source) => InspectError::Yaml {
                file: file.to_string(),
                source,
            },
            EnvironmentError::Field(e) => InspectError::field(file, e),
        }
    }
}

/// A model directory's files, looked up by relative path.
struct Files<'a> {
    files: &'a [(&'a str, &'a [u8])],
}

impl<'a> Files<'a> {
    /// The file at `path`; `./` prefixes are ignored on both sides.
    fn get(&self, path: &str) -> Option<(&'a str, &'a [u8])> {
        let want = normalize(path);
        self.files
            .iter()
            .find(|(p, _)| normalize(p) == want)
            .map(|(p, b)| (*p, *b))
    }

    fn text(&self, path: &str) -> Result<Option<(&'a str, &'a str)>, InspectError> {
        let Some((name, bytes)) = self.get(path) else {
            return Ok(None);
        };
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some((name, text))),
            Err(e) => Err(InspectError::NotText {
                file: name.to_string(),
                offset: e.valid_up_to(),
            }),
        }
    }

    /// The ONNX model: the file the `onnx` flavor names, else the only
    /// `*.onnx` file; none when there are several and nothing says which.
    fn onnx(&self, named: Option<&str>) -> Option<(&'a str, &'a [u8])> {
        if let Some(found) = named.and_then(|n| self.get(n)) {
            return Some(found);
        }
        let mut candidates = self
            .files
            .iter()
            .filter(|(p, _)| p.to_ascii_lowercase().ends_with(".onnx"));
        match (candidates.next(), candidates.next()) {
            (Some((p, b)), None) => Some((*p, *b)),
            _ => None,
        }
    }
}

fn normalize(path: &str) -> &str {
    let mut path = path;
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    path
}

/// Reads the signature and dependencies of the model whose artifact files
/// are `files`: `(path relative to the model directory, contents)`.
///
/// The signature comes from `MLmodel` when it has one, else from the ONNX
/// model's graph. An ONNX model is checked even when `MLmodel` has a
/// signature, so a corrupt model file is caught at registration.
pub fn inspect(files: &[(&str, &[u8])]) -> Result<Inspection, InspectError> {
    let files = Files { files };

    let mlmodel = match files.text("MLmodel")? {
        None => None,
        Some((name, text)) => Some(mlmodel::read(text).map_err(|e| match e {
            MlModelError::Yaml(source) => InspectError::Yaml {
                file: name.to_string(),
                source,
            },
            MlModelError::Field(e) => InspectError::field(name, e),
            MlModelError::Signature(source) => InspectError::Signature {
                file: name.to_string(),
                source,
            },
        })?),
    };
    let mlmodel_ref = mlmodel.as_ref();

    let onnx_signature = match files.onnx(mlmodel_ref.and_then(|m| m.onnx_file.as_deref())) {
        None => None,
        Some((name, bytes)) => onnx::read_signature(bytes).map_err(|e| InspectError::Onnx {
            file: name.to_string(),
            detail: e.to_string(),
        })?,
    };

    let requirements = files
        .text("requirements.txt")?
        .map(|(_, text)| environment::read_requirements(text))
        .unwrap_or_default();
    let conda_path = mlmodel_ref
        .and_then(|m| m.conda_file.as_deref())
        .unwrap_or("conda.yaml");
    let conda = match files.text(conda_path)? {
        None => None,
        Some((name, text)) => {
            Some(environment::read_conda(text).map_err(|e| InspectError::environment(name, e))?)
        }
    };
    let venv_path = mlmodel_ref
        .and_then(|m| m.virtualenv_file.as_deref())
        .unwrap_or("python_env.yaml");
    let python_env = match files.text(venv_path)? {
        None => None,
        Some((name, text)) => Some(
            environment::read_python_env(text).map_err(|e| InspectError::environment(name, e))?,
        ),
    };

    let python_version = mlmodel_ref
        .and_then(|m| m.python_version.clone())
        .or_else(|| python_env.as_ref().and_then(|e| e.python.clone()))
        .or_else(|| conda.as_ref().and_then(environment::conda_python));

    let (signature, mlflow_version, flavors, model) = match mlmodel {
        Some(m) => (
            m.signature.or(onnx_signature),
            m.mlflow_version,
            m.flavors,
            Some(m.metadata),
        ),
        None => (onnx_signature, None, Vec::new(), None),
    };
    Ok(Inspection {
        signature,
        dependencies: Dependencies {
            python_version,
            mlflow_version,
            flavors,
            requirements,
            conda,
            python_env,
        },
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onnx_model() -> Vec<u8> {
        // graph { input { name: "x" type { tensor_type { elem_type: 1 } } } }
        let tensor = [0x08, 0x01];
        let ty = [&[0x0a, tensor.len() as u8][..], &tensor].concat();
        let vi = [&[0x0a, 0x01, b'x', 0x12, ty.len() as u8][..], &ty].concat();
        let graph = [&[0x5a, vi.len() as u8][..], &vi].concat();
        [&[0x3a, graph.len() as u8][..], &graph].concat()
    }

    #[test]
    fn nothing_is_no_data() {
        let got = inspect(&[]).unwrap();
        assert_eq!(
            got,
            Inspection {
                signature: None,
                dependencies: Dependencies::default(),
                model: None,
            }
        );
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::json!({"dependencies": {"flavors": [], "requirements": []}})
        );
    }

    #[test]
    fn mlmodel_signature_wins_over_onnx() {
        let onnx = onnx_model();
        let mlmodel = b"signature:\n  inputs: '[{\"type\": \"double\"}]'\n";
        let files: [(&str, &[u8]); 2] = [("model.onnx", &onnx), ("./MLmodel", mlmodel)];
        let sig = inspect(&files).unwrap().signature.unwrap();
        assert_eq!(sig.source, SignatureSource::MLmodel);

        let sig = inspect(&files[..1]).unwrap().signature.unwrap();
        assert_eq!(sig.source, SignatureSource::Onnx);
        assert_eq!(sig.inputs.unwrap().0[0].dtype, "float32");
    }

    #[test]
    fn onnx_file_is_chosen_by_flavor_or_uniqueness() {
        let onnx = onnx_model();
        let broken = b"\x0b".to_vec();
        let mlmodel = b"flavors:\n  onnx:\n    data: nested/good.onnx\n";
        let files: [(&str, &[u8]); 3] = [
            ("MLmodel", mlmodel),
            ("nested/good.onnx", &onnx),
            ("other.onnx", &broken),
        ];
        assert!(inspect(&files).unwrap().signature.is_some());
        // Two candidates and nothing saying which: neither is read.
        assert_eq!(inspect(&files[1..]).unwrap().signature, None);
        let err = inspect(&files[2..]).unwrap_err();
        assert_eq!(err.file(), "other.onnx");
        assert!(
            err.to_string()
                .starts_with("other.onnx: not a valid ONNX model: byte 0: field 1 is a group"),
            "{err}"
        );
    }

    #[test]
    fn a_corrupt_onnx_file_is_an_error_even_beside_a_signature() {
        let mlmodel = b"signature:\n  inputs: '[{\"type\": \"double\"}]'\n";
        let files: [(&str, &[u8]); 2] = [("MLmodel", mlmodel), ("model.onnx", b"\x0b")];
        assert!(matches!(inspect(&files), Err(InspectError::Onnx { .. })));
    }

    #[test]
    fn errors_name_file_and_field() {
        let cases: [(&str, &[u8], &str); 6] = [
            (
                "MLmodel",
                b"a: [",
                "MLmodel: not valid YAML: line 2, column 1",
            ),
            (
                "MLmodel",
                b"\xff",
                "MLmodel: not UTF-8 text (invalid byte at offset 0)",
            ),
            (
                "MLmodel",
                b"signature:\n  inputs: '[{\"type\": \"doubel\"}]'\n",
                "MLmodel: signature.inputs[0].type: unknown type \"doubel\"",
            ),
            (
                "MLmodel",
                b"mlflow_version: [3]\n",
                "MLmodel: mlflow_version: expected a single value, found a sequence",
            ),
            (
                "conda.yaml",
                b"dependencies: x\n",
                "conda.yaml: dependencies: expected a list, found a string",
            ),
            (
                "python_env.yaml",
                b"python: {a: 1}\n",
                "python_env.yaml: python: expected a single value, found a mapping",
            ),
        ];
        for (name, bytes, expected) in cases {
            let err = inspect(&[(name, bytes)]).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn environment_files_follow_mlmodel() {
        let mlmodel = b"flavors:\n  python_function:\n    env:\n      conda: env/c.yaml\n      virtualenv: env/v.yaml\n";
        let files: [(&str, &[u8]); 5] = [
            ("MLmodel", mlmodel),
            ("env/c.yaml", b"dependencies: [python=3.9.1]\n"),
            ("env/v.yaml", b"python: 3.9.2\n"),
            ("conda.yaml", b"not: [valid"),
            ("python_env.yaml", b"not: [valid"),
        ];
        let deps = inspect(&files).unwrap().dependencies;
        assert_eq!(deps.conda.unwrap().dependencies, ["python=3.9.1"]);
        // No python_version in MLmodel: python_env.yaml's comes next.
        assert_eq!(deps.python_version.as_deref(), Some("3.9.2"));

        let files: [(&str, &[u8]); 1] = [("conda.yaml", b"dependencies: [python=3.9.1]\n")];
        let deps = inspect(&files).unwrap().dependencies;
        assert_eq!(deps.python_version.as_deref(), Some("3.9.1"));
    }
}
