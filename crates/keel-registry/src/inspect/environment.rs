//! What a model needs to run: the flavors it can be loaded as and the
//! Python packages MLflow recorded beside it, in `requirements.txt`,
//! `conda.yaml` and `python_env.yaml`.

use keel_core::yaml::{Node, Value};
use serde::{Deserialize, Serialize};

use super::yaml_values::{FieldError, a, entries, field_error, text, text_at, text_list};

/// A model's runtime dependencies:
///
/// ```json
/// {
///   "python_version": "3.11.7",
///   "mlflow_version": "3.17.2",
///   "flavors": [
///     {"name": "python_function", "loader_module": "mlflow.sklearn"},
///     {"name": "sklearn", "version": "1.9.1"}
///   ],
///   "requirements": ["mlflow==3.17.2", "scikit-learn==1.9.1"],
///   "conda": {"name": "mlflow-env", "channels": ["conda-forge"],
///             "dependencies": ["python=3.11.7", "pip<=26.3"],
///             "pip": ["mlflow==3.17.2", "scikit-learn==1.9.1"]},
///   "python_env": {"python": "3.11.7", "build_dependencies": ["pip==26.3"],
///                  "dependencies": ["-r requirements.txt"]}
/// }
/// ```
///
/// Every field is empty or absent when the file it comes from is missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dependencies {
    /// The Python the model was saved with: `python_function`'s
    /// `python_version` in `MLmodel`, else `python` in `python_env.yaml`,
    /// else the `python=` package of `conda.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
    /// The MLflow that saved the model (`mlflow_version` in `MLmodel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow_version: Option<String>,
    /// In `MLmodel` order.
    #[serde(default)]
    pub flavors: Vec<Flavor>,
    /// The lines of `requirements.txt`, comments and blank lines dropped.
    #[serde(default)]
    pub requirements: Vec<String>,
    /// The conda environment file `MLmodel` names (`conda.yaml` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conda: Option<CondaEnv>,
    /// The virtualenv file `MLmodel` names (`python_env.yaml` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_env: Option<PythonEnv>,
}

/// One way the model can be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    /// `python_function`, `sklearn`, `onnx`, …
    pub name: String,
    /// The version of the flavor's library the model was saved with
    /// (`sklearn_version`, `xgb_version`, `onnx_version`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The module `python_function` loads the model with (`mlflow.sklearn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader_module: Option<String>,
}

/// A conda environment file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CondaEnv {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    /// Conda package specs (`python=3.11.7`, `pip<=26.3`).
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// The `pip:` list nested in `dependencies`.
    #[serde(default)]
    pub pip: Vec<String>,
}

/// A virtualenv description (`python_env.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonEnv {
    /// The Python version (`3.11.7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// What to install before the dependencies (`pip`, `setuptools`, `wheel`).
    #[serde(default)]
    pub build_dependencies: Vec<String>,
    /// pip arguments, often `-r requirements.txt`.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

/// The requirements of a pip requirements file: one per line, `\`
/// continuing a line, and `#` starting a comment at the start of a line or
/// after whitespace (as pip reads it, so `pkg @ https://…#egg=pkg` is kept).
pub(crate) fn read_requirements(src: &str) -> Vec<String> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut out = Vec::new();
    let mut current = String::new();
    for line in src.lines() {
        let line = strip_comment(line);
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                let requirement = current.trim();
                if !requirement.is_empty() {
                    out.push(requirement.to_string());
                }
                current.clear();
            }
        }
    }
    let requirement = current.trim();
    if !requirement.is_empty() {
        out.push(requirement.to_string());
    }
    out
}

fn strip_comment(line: &str) -> &str {
    let mut previous_is_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && previous_is_space {
            return &line[..i];
        }
        previous_is_space = c.is_whitespace();
    }
    line
}

/// A problem in an environment file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EnvironmentError {
    Yaml(keel_core::yaml::YamlError),
    Field(FieldError),
}

impl From<FieldError> for EnvironmentError {
    fn from(e: FieldError) -> Self {
        EnvironmentError::Field(e)
    }
}

/// The document of an environment file: a mapping, or nothing.
fn document(src: &str) -> Result<Option<Node>, EnvironmentError> {
    let doc = keel_core::yaml::parse(src).map_err(EnvironmentError::Yaml)?;
    if matches!(doc.value, Value::Null) {
        return Ok(None);
    }
    entries(&doc, "")?;
    Ok(Some(doc))
}

pub(crate) fn read_conda(src: &str) -> Result<CondaEnv, EnvironmentError> {
    let Some(doc) = document(src)? else {
        return Ok(CondaEnv::default());
    };
    let mut env = CondaEnv {
        name: text_at(&doc, "name", src, "")?,
        channels: text_list(doc.get("channels"), src, "channels")?,
        ..CondaEnv::default()
    };
    let deps = match doc.get("dependencies") {
        None => return Ok(env),
        Some(node) => match &node.value {
            Value::Null => return Ok(env),
            Value::Seq(items) => items,
            _ => {
                return Err(field_error(
                    "dependencies",
                    format!("expected a list, found {}", a(node.kind())),
                )
                .into());
            }
        },
    };
    for (i, item) in deps.iter().enumerate() {
        let field = format!("dependencies[{i}]");
        match &item.value {
            Value::Map(_) => {
                let is_pip = |(k, _): &&(Node, Node)| k.as_str() == Some("pip");
                let all = entries(item, &field)?;
                if let Some((key, _)) = all.iter().find(|e| !is_pip(e)) {
                    return Err(field_error(
                        &field,
                        format!(
                            "unexpected key {}; the only nested list conda knows is `pip:`",
                            key.to_json()
                        ),
                    )
                    .into());
                }
                env.pip
                    .extend(text_list(item.get("pip"), src, &format!("{field}.pip"))?);
            }
            _ => match text(item, src, &field)? {
                Some(spec) => env.dependencies.push(spec),
                None => return Err(field_error(&field, "expected a package, found null").into()),
            },
        }
    }
    Ok(env)
}

pub(crate) fn read_python_env(src: &str) -> Result<PythonEnv, EnvironmentError> {
    let Some(doc) = document(src)? else {
        return Ok(PythonEnv::default());
    };
    Ok(PythonEnv {
        python: text_at(&doc, "python", src, "")?,
        build_dependencies: text_list(doc.get("build_dependencies"), src, "build_dependencies")?,
        dependencies: text_list(doc.get("dependencies"), src, "dependencies")?,
    })
}

/// The version in a conda `python` spec: `python=3.11.7` gives `3.11.7`.
pub(crate) fn conda_python(env: &CondaEnv) -> Option<String> {
    env.dependencies.iter().find_map(|spec| {
        let version = spec.strip_prefix("python")?;
        let version = version.trim_start_matches(['=', ' ']);
        (!version.is_empty() && version.starts_with(|c: char| c.is_ascii_digit()))
            .then(|| version.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_drop_comments_and_blank_lines() {
        let src = "\u{feff}# pinned\nmlflow==3.17.2  # the client\n\n  numpy>=2 \\\n    ,<3\n\
                   pkg @ https://example.com/pkg.whl#egg=pkg\n-r other.txt\n\tscipy";
        assert_eq!(
            read_requirements(src),
            [
                "mlflow==3.17.2",
                "numpy>=2     ,<3",
                "pkg @ https://example.com/pkg.whl#egg=pkg",
                "-r other.txt",
                "scipy",
            ]
        );
        assert!(read_requirements("").is_empty());
    }

    #[test]
    fn conda_reads_specs_and_the_nested_pip_list() {
        let src = "\
name: env
channels:
- conda-forge
dependencies:
- python=3.8.10
- pip<=21.2
- pip:
  - mlflow
  - cloudpickle==2.0.0
";
        let env = read_conda(src).unwrap();
        assert_eq!(env.name.as_deref(), Some("env"));
        assert_eq!(env.channels, ["conda-forge"]);
        assert_eq!(env.dependencies, ["python=3.8.10", "pip<=21.2"]);
        assert_eq!(env.pip, ["mlflow", "cloudpickle==2.0.0"]);
        assert_eq!(conda_python(&env).as_deref(), Some("3.8.10"));
        assert_eq!(read_conda("").unwrap(), CondaEnv::default());
    }

    #[test]
    fn conda_errors_name_the_field() {
        let field = |src: &str| match read_conda(src) {
            Err(EnvironmentError::Field(e)) => format!("{}: {}", e.field, e.message),
            other => panic!("{src}: {other:?}"),
        };
        assert_eq!(
            field("dependencies: numpy\n"),
            "dependencies: expected a list, found a string"
        );
        assert_eq!(
            field("dependencies:\n- a\n- npm: [x]\n"),
            "dependencies[1]: unexpected key \"npm\"; the only nested list conda knows is `pip:`"
        );
        assert_eq!(
            field("dependencies:\n- pip: [[x]]\n"),
            "dependencies[0].pip[0]: expected a single value, found a sequence"
        );
        assert_eq!(
            field("channels: 1\n"),
            "channels: expected a list, found an integer"
        );
        assert!(matches!(read_conda("a: ["), Err(EnvironmentError::Yaml(_))));
    }

    #[test]
    fn python_env_reads_all_three_fields() {
        let src =
            "python: 3.10\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n";
        let env = read_python_env(src).unwrap();
        assert_eq!(env.python.as_deref(), Some("3.10"));
        assert_eq!(env.build_dependencies, ["pip"]);
        assert_eq!(env.dependencies, ["-r requirements.txt"]);
        assert!(matches!(
            read_python_env("[1]"),
            Err(EnvironmentError::Field(_))
        ));
    }

    #[test]
    fn conda_python_needs_a_version() {
        let env = |deps: &[&str]| CondaEnv {
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
            ..CondaEnv::default()
        };
        assert_eq!(conda_python(&env(&["python"])), None);
        assert_eq!(conda_python(&env(&["python-dateutil=2"])), None);
        assert_eq!(conda_python(&env(&["python==3.9"])).as_deref(), Some("3.9"));
    }
}
