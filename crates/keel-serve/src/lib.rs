//! Keel's inference: ONNX models compiled into optimized tract plans, checked
//! against their signatures, batched adaptively, and served from a model
//! repository whose versions swap without dropping a request.
//!
//! `keel-serve` knows nothing about HTTP: the V2 wire format is parsed at the
//! server's edge into [`tensor::NamedTensor`]s.

pub mod batch;
pub mod ml;
pub mod plan;
pub mod repository;
pub mod signature;
pub mod tensor;

/// What can go wrong compiling or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot compile the model: {0}")]
    Compile(String),
    #[error("{0}")]
    BadInput(String),
    #[error("the model failed: {0}")]
    Run(String),
    #[error("model {0} is not loaded; load it with POST /v2/repository/models/{0}/load")]
    UnknownModel(String),
    #[error("model {name} has no version {version}")]
    UnknownVersion { name: String, version: String },
    #[error("{0}")]
    Repository(String),
    #[error("internal error: {0}")]
    Internal(String),
}
