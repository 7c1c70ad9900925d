//! Open Inference Protocol V2 over REST (KServe, Triton and MLServer clients):
//! health, server and model metadata, readiness, `infer` with the JSON tensor
//! format and Triton's binary tensor extension, and the model-repository
//! extension to load and unload models.
//!
//! Errors are V2's `{"error": "…"}` with a 4xx: 400 for a request the model
//! cannot take (the reason names the input), 404 for an unknown model or
//! version, 413 for a body over the limit.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel_serve::ServeError;
use keel_serve::repository::{Repository, ServedVersion};
use keel_serve::tensor::{Data, Datatype, NamedTensor};
use serde_json::{Map, Value, json};

use crate::AppState;

mod v2_json;

/// Largest inference request body.
pub const MAX_BODY: usize = 64 * 1024 * 1024;
/// Largest tensor, in elements.
const MAX_ELEMENTS: usize = 16 * 1024 * 1024;
const HEADER_LENGTH: &str = "inference-header-content-length";

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v2", get(server_metadata).fallback(v2_wrong_method))
        .route("/v2/health/live", get(live).fallback(v2_wrong_method))
        .route("/v2/health/ready", get(ready).fallback(v2_wrong_method))
        .route(
            "/v2/models/{name}",
            get(model_metadata).fallback(v2_wrong_method),
        )
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_version).fallback(v2_wrong_method),
        )
        .route(
            "/v2/models/{name}/ready",
            get(model_ready).fallback(v2_wrong_method),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_version).fallback(v2_wrong_method),
        )
        .route(
            "/v2/models/{name}/infer",
            post(infer).fallback(v2_wrong_method),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version).fallback(v2_wrong_method),
        )
        .route(
            "/v2/repository/index",
            post(repository_index).fallback(v2_wrong_method),
        )
        .route(
            "/v2/repository/models/{name}/load",
            post(load).fallback(v2_wrong_method),
        )
        .route(
            "/v2/repository/models/{name}/unload",
            post(unload).fallback(v2_wrong_method),
        )
        .route(
            "/v2/models/{name}/config",
            get(model_config).fallback(v2_wrong_method),
        )
        .route(
            "/v2/models/{name}/versions/{version}/config",
            get(model_config_version).fallback(v2_wrong_method),
        )
        .route("/v2/{*rest}", axum::routing::any(v2_not_found))
        .route("/v1/serving/models", get(serving_models))
}

/// A V2 path with another method: V2's error shape, not MLflow's.
async fn v2_wrong_method(request: Request) -> V2Error {
    V2Error {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    }
}

/// Unknown V2 paths answer in V2's error shape, not MLflow's.
async fn v2_not_found(request: Request) -> V2Error {
    V2Error {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "no V2 endpoint {} {}; see /v2/models/NAME[/versions/V]/infer, /ready, /config and /v2/repository/…",
            request.method(),
            request.uri().path()
        ),
    }
}

/// Keel's listing: every served version with its signature, compile report,
/// batching settings and where it came from.
async fn serving_models(State(s): State<AppState>) -> Response {
    let mut models = Vec::new();
    for model in repo(&s).models() {
        for served in model.versions.values() {
            let (requests, batches, rows) = served.batch_stats().snapshot();
            models.push(json!({
                "name": served.name,
                "version": served.version.to_string(),
                "source": served.source.display().to_string(),
                "signature": served.plan.signature,
                "report": served.plan.report,
                "max_batch_size": served.settings.batch.max_batch_size,
                "max_batch_time": served.settings.batch.max_delay.as_secs_f64(),
                "stats": {
                    "requests": requests,
                    "batches": batches,
                    "rows": rows,
                    "inline": served.batch_stats().inline.load(std::sync::atomic::Ordering::Relaxed),
                },
            }));
        }
    }
    axum::Json(json!({ "models": models })).into_response()
}

/// A V2 error: `{"error": message}`.
#[derive(Debug)]
pub struct V2Error {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl V2Error {
    pub fn bad(message: impl Into<String>) -> V2Error {
        V2Error {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<ServeError> for V2Error {
    fn from(e: ServeError) -> V2Error {
        let status = match &e {
            ServeError::UnknownModel(_) | ServeError::UnknownVersion { .. } => {
                StatusCode::NOT_FOUND
            }
            ServeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        V2Error {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

type V2Result = Result<Response, V2Error>;

fn repo(state: &AppState) -> &Arc<Repository> {
    &state.inference
}

async fn server_metadata() -> Response {
    axum::Json(json!({
        "name": "keel",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["model_repository", "binary_tensor_data"],
    }))
    .into_response()
}

async fn live() -> Response {
    axum::Json(json!({ "live": true })).into_response()
}

async fn ready() -> Response {
    axum::Json(json!({ "ready": true })).into_response()
}

fn spec_json(spec: &keel_serve::plan::TensorSpec) -> Value {
    json!({ "name": spec.name, "datatype": spec.datatype.name(), "shape": spec.shape })
}

fn metadata(state: &AppState, name: &str, version: Option<&str>) -> V2Result {
    let model = repo(state).get(name)?;
    let served = model.version(version)?;
    let versions: Vec<String> = match version {
        Some(_) => vec![served.version.to_string()],
        None => model.versions.keys().map(|v| v.to_string()).collect(),
    };
    let signature = &served.plan.signature;
    Ok(axum::Json(json!({
        "name": name,
        "versions": versions,
        "platform": "onnx",
        "inputs": signature.inputs.iter().map(spec_json).collect::<Vec<_>>(),
        "outputs": signature.outputs.iter().map(spec_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// Triton's model configuration, as far as it applies: what tools built on
/// tritonclient (`get_model_config`, perf_analyzer) read.
fn config(state: &AppState, name: &str, version: Option<&str>) -> V2Result {
    let served = repo(state).get(name)?.version(version)?;
    let signature = &served.plan.signature;
    let batched = signature.batched && served.settings.batch.max_batch_size > 1;
    let tensor = |spec: &keel_serve::plan::TensorSpec| {
        let dims: Vec<i64> = if batched {
            spec.shape[1..].to_vec()
        } else {
            spec.shape.clone()
        };
        json!({ "name": spec.name, "data_type": format!("TYPE_{}", match spec.datatype {
            Datatype::Bytes => "STRING",
            other => other.name(),
        }), "dims": dims })
    };
    let mut body = json!({
        "name": name,
        "platform": "onnxruntime_onnx",
        "backend": "keel",
        "max_batch_size": if batched { served.settings.batch.max_batch_size } else { 0 },
        "input": signature.inputs.iter().map(tensor).collect::<Vec<_>>(),
        "output": signature.outputs.iter().map(tensor).collect::<Vec<_>>(),
    });
    if batched {
        body["dynamic_batching"] = json!({ "max_queue_delay_microseconds": served.settings.batch.max_delay.as_micros() as u64 });
    }
    Ok(axum::Json(body).into_response())
}

async fn model_config(State(s): State<AppState>, Path(name): Path<String>) -> V2Result {
    config(&s, &name, None)
}

async fn model_config_version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> V2Result {
    config(&s, &name, Some(&version))
}

async fn model_metadata(State(s): State<AppState>, Path(name): Path<String>) -> V2Result {
    metadata(&s, &name, None)
}

async fn model_metadata_version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> V2Result {
    metadata(&s, &name, Some(&version))
}

fn readiness(state: &AppState, name: &str, version: Option<&str>) -> V2Result {
    repo(state).get(name)?.version(version)?;
    Ok(axum::Json(json!({ "name": name, "ready": true })).into_response())
}

async fn model_ready(State(s): State<AppState>, Path(name): Path<String>) -> V2Result {
    readiness(&s, &name, None)
}

async fn model_ready_version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> V2Result {
    readiness(&s, &name, Some(&version))
}

async fn repository_index(State(s): State<AppState>, body: Bytes) -> V2Result {
    let ready_only = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| V2Error::bad(format!("malformed JSON: {e}")))?;
        match v.get("ready") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(V2Error::bad("ready: expected true or false")),
        }
    };
    let mut index = repo(&s).index();
    if ready_only {
        index.retain(|e| e.state == "READY");
    }
    Ok(axum::Json(index).into_response())
}

/// Loads from the repository folder, or — with `{"parameters": {"source":
/// "models:/NAME/VERSION"}}` (or `models:/NAME@ALIAS`) — compiles a version
/// of the model registry, records its compile report on the version (tag
/// `keel.compile_report`) and serves it under the registry's version
/// number. The other parameters are model-settings.json's keys.
async fn load(State(s): State<AppState>, Path(name): Path<String>, body: Bytes) -> V2Result {
    let parameters = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| V2Error::bad(format!("malformed JSON: {e}")))?;
        value.get("parameters").cloned().filter(|p| !p.is_null())
    };
    let source = parameters.as_ref().and_then(|p| p.get("source")).cloned();
    match source {
        None => {
            repo(&s).load(&name).await?;
        }
        Some(Value::String(source)) => {
            let mut settings = parameters.unwrap_or_default();
            if let Some(map) = settings.as_object_mut() {
                map.remove("source");
            }
            load_registered(&s, &name, &source, &settings).await?;
        }
        Some(_) => {
            return Err(V2Error::bad(
                "parameters.source: expected models:/NAME/VERSION or models:/NAME@ALIAS",
            ));
        }
    }
    Ok(StatusCode::OK.into_response())
}

async fn load_registered(
    s: &AppState,
    served_name: &str,
    source: &str,
    settings: &Value,
) -> Result<(), V2Error> {
    use sha2::Digest;
    let registry = s
        .registry
        .as_ref()
        .ok_or_else(|| V2Error::bad("this server has no model registry"))?;
    let usage = || {
        V2Error::bad(format!(
            "parameters.source: {source:?} is not models:/NAME/VERSION or models:/NAME@ALIAS"
        ))
    };
    let rest = source.strip_prefix("models:/").ok_or_else(usage)?;
    let not_found = |e: keel_registry::RegistryError| V2Error {
        status: StatusCode::NOT_FOUND,
        message: format!("{source}: {e}"),
    };
    let version = if let Some((model, alias)) = rest.split_once('@') {
        registry
            .get_model_version_by_alias(model, alias)
            .await
            .map_err(not_found)?
    } else {
        let (model, number) = rest.rsplit_once('/').ok_or_else(usage)?;
        let number: i64 = number.parse().map_err(|_| usage())?;
        registry
            .get_model_version(model, number)
            .await
            .map_err(not_found)?
    };
    let extras = registry
        .version_extras(&version.name, version.version)
        .await
        .map_err(not_found)?;
    let paths: Vec<&str> = extras.files.iter().map(|f| f.path.as_str()).collect();
    let file = &extras.files[keel_registry::onnx_model_file(&paths)
        .map_err(|e| V2Error::bad(format!("{source} {e}")))?];
    let (_, mut stream) = s
        .artifacts
        .get_stream(&file.store_path)
        .await
        .map_err(|e| V2Error {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{}: {e}", file.path),
        })?;
    let mut bytes = Vec::with_capacity(file.size.max(0) as usize);
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        let chunk = chunk.map_err(|e| V2Error {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{}: {e}", file.path),
        })?;
        bytes.extend_from_slice(&chunk);
    }
    let digest = keel_store::hex(&sha2::Sha256::digest(&bytes));
    if digest != file.sha256 {
        return Err(V2Error {
            status: StatusCode::CONFLICT,
            message: format!(
                "{}: its content no longer matches the digest registered with {source}; refusing to serve it",
                file.path
            ),
        });
    }
    let settings_text = settings.to_string();
    let settings = keel_serve::repository::ModelSettings::parse(
        &settings_text,
        std::path::Path::new("parameters"),
    )?;
    let plan = keel_serve::repository::compile_and_warm(bytes, &settings).await?;
    let report = json!({ "signature": plan.signature, "report": plan.report, "file": file.path });
    if let Err(e) = registry
        .set_model_version_tag(
            &version.name,
            version.version,
            keel_registry::Tag {
                key: "keel.compile_report".into(),
                value: report.to_string(),
            },
        )
        .await
    {
        tracing::warn!(error = %e, "compile report not recorded");
    }
    repo(s).insert(
        served_name,
        version.version as u64,
        plan,
        settings,
        std::path::PathBuf::from(source),
    )?;
    Ok(())
}

async fn unload(State(s): State<AppState>, Path(name): Path<String>, _body: Bytes) -> V2Result {
    repo(&s).unload(&name)?;
    Ok(StatusCode::OK.into_response())
}

async fn infer(State(s): State<AppState>, Path(name): Path<String>, request: Request) -> V2Result {
    run_infer(&s, &name, None, request).await
}

async fn infer_version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    request: Request,
) -> V2Result {
    run_infer(&s, &name, Some(&version), request).await
}

fn too_large() -> V2Error {
    V2Error {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!(
            "the request body is larger than {MAX_BODY} bytes; send fewer rows per request"
        ),
    }
}

async fn read_body(request: Request) -> Result<(HeaderMap, Bytes), V2Error> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    let encoding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let bytes = match encoding.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("identity") => bytes,
        Some("gzip") => inflate(flate2::read::GzDecoder::new(&bytes[..]))?,
        Some("deflate") => inflate(flate2::read::ZlibDecoder::new(&bytes[..]))?,
        Some(other) => {
            return Err(V2Error {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: format!(
                    "Content-Encoding {other} is not supported; use gzip, deflate or none"
                ),
            });
        }
    };
    Ok((parts.headers, bytes))
}

/// Decompresses at most `MAX_BODY` bytes: a small bomb stays small.
fn inflate(reader: impl std::io::Read) -> Result<Bytes, V2Error> {
    use std::io::Read;
    let mut out = Vec::new();
    reader
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| V2Error::bad(format!("the compressed body is corrupt: {e}")))?;
    if out.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

async fn run_infer(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    request: Request,
) -> V2Result {
    // The body is read before anything can fail, so that an early error
    // never leaves unread bytes on a kept-alive connection.
    let (headers, body) = read_body(request).await?;
    let model = repo(state).get(name)?;
    let served = model.version(version)?;
    let request = InferRequest::parse(&headers, &body)?;
    let outputs = state.model_metrics.infer(&served, request.inputs).await?;
    respond(
        &served,
        request.id,
        &request.outputs,
        request.binary_output,
        outputs,
    )
}

/// A parsed V2 inference request.
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<NamedTensor>,
    /// Requested outputs, each with its own binary flag (empty: all).
    pub outputs: Vec<(String, Option<bool>)>,
    /// `parameters.binary_data_output`: every output in binary by default.
    pub binary_output: bool,
}

impl InferRequest {
    /// A request given as a JSON body alone (no binary extension), as
    /// `keel serve compile --input` reads it from a file; the error is the
    /// reason a server would answer with.
    pub fn parse_json(body: &[u8]) -> Result<InferRequest, String> {
        Self::parse(&HeaderMap::new(), body).map_err(|e| e.message)
    }

    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<InferRequest, V2Error> {
        let header_length = match headers.get(HEADER_LENGTH) {
            Some(v) => {
                let n = v
                    .to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok())
                    .filter(|n| *n <= body.len())
                    .ok_or_else(|| {
                        V2Error::bad(format!("Inference-Header-Content-Length must be a byte count within the body ({} bytes)", body.len()))
                    })?;
                Some(n)
            }
            None => None,
        };
        let (json_part, mut binary) = match header_length {
            Some(n) => (&body[..n], &body[n..]),
            None => (body, &body[body.len()..]),
        };
        if header_length.is_none()
            && let Some((object, inputs)) = v2_json::parse(json_part)
        {
            let (id, binary_output) = Self::head(&object)?;
            if inputs.is_empty() {
                return Err(V2Error::bad("inputs: the request has no input tensors"));
            }
            return Ok(InferRequest {
                id,
                inputs,
                outputs: Self::requested_outputs(&object)?,
                binary_output,
            });
        }
        let value: Value = serde_json::from_slice(json_part)
            .map_err(|e| V2Error::bad(format!("malformed JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| V2Error::bad("the request must be a JSON object"))?;
        let (id, binary_output) = Self::head(object)?;
        let inputs_json = object
            .get("inputs")
            .and_then(Value::as_array)
            .ok_or_else(|| V2Error::bad("inputs: expected an array of tensors"))?;
        if inputs_json.is_empty() {
            return Err(V2Error::bad("inputs: the request has no input tensors"));
        }
        let mut inputs = Vec::with_capacity(inputs_json.len());
        for (i, input) in inputs_json.iter().enumerate() {
            inputs.push(parse_input(input, i, &mut binary)?);
        }
        if !binary.is_empty() {
            return Err(V2Error::bad(format!(
                "{} bytes of binary data follow the JSON header but no input claims them (parameters.binary_data_size)",
                binary.len()
            )));
        }
        Ok(InferRequest {
            id,
            inputs,
            outputs: Self::requested_outputs(object)?,
            binary_output,
        })
    }

    /// `id` and `parameters.binary_data_output`.
    fn head(object: &Map<String, Value>) -> Result<(Option<String>, bool), V2Error> {
        let id = match object.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(V2Error::bad("id: expected a string")),
        };
        let parameters = params(object.get("parameters"), "parameters")?;
        let binary_output = match parameters.and_then(|p| p.get("binary_data_output")) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(V2Error::bad(
                    "parameters.binary_data_output: expected true or false",
                ));
            }
        };
        Ok((id, binary_output))
    }

    /// The requested `outputs`, each with its own binary flag.
    fn requested_outputs(
        object: &Map<String, Value>,
    ) -> Result<Vec<(String, Option<bool>)>, V2Error> {
        let mut outputs = Vec::new();
        if let Some(requested) = object.get("outputs") {
            let list = requested
                .as_array()
                .ok_or_else(|| V2Error::bad("outputs: expected an array"))?;
            for (i, o) in list.iter().enumerate() {
                let name = o
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| V2Error::bad(format!("outputs[{i}].name: expected a string")))?;
                let p = params(o.get("parameters"), &format!("outputs[{i}].parameters"))?;
                let binary = match p.and_then(|p| p.get("binary_data")) {
                    None => None,
                    Some(Value::Bool(b)) => Some(*b),
                    Some(_) => {
                        return Err(V2Error::bad(format!(
                            "outputs[{i}].parameters.binary_data: expected true or false"
                        )));
                    }
                };
                outputs.push((name.to_string(), binary));
            }
        }
        Ok(outputs)
    }
}

fn params<'a>(
    value: Option<&'a Value>,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, V2Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(V2Error::bad(format!("{field}: expected an object"))),
    }
}

fn parse_input(input: &Value, i: usize, binary: &mut &[u8]) -> Result<NamedTensor, V2Error> {
    let field = |f: &str| format!("inputs[{i}].{f}");
    let name = input
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| V2Error::bad(format!("{}: expected a string", field("name"))))?;
    let at = |f: &str| format!("input {name} ({})", field(f));
    let datatype_name = input
        .get("datatype")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            V2Error::bad(format!(
                "{}: expected a V2 datatype such as FP32",
                at("datatype")
            ))
        })?;
    let datatype = Datatype::parse(datatype_name).ok_or_else(|| {
        let all: Vec<&str> = Datatype::ALL.iter().map(|d| d.name()).collect();
        V2Error::bad(format!(
            "{}: unknown datatype {datatype_name:?}; use one of {}",
            at("datatype"),
            all.join(", ")
        ))
    })?;
    let shape_json = input
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| V2Error::bad(format!("{}: expected an array of sizes", at("shape"))))?;
    let mut shape = Vec::with_capacity(shape_json.len());
    let mut elements: usize = 1;
    for d in shape_json {
        let n = d
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                V2Error::bad(format!(
                    "{}: sizes must be non-negative integers",
                    at("shape")
                ))
            })?;
        elements = elements
            .checked_mul(n)
            .filter(|e| *e <= MAX_ELEMENTS)
            .ok_or_else(|| {
                V2Error::bad(format!(
                    "{}: more than {MAX_ELEMENTS} elements",
                    at("shape")
                ))
            })?;
        shape.push(n);
    }
    let p = params(input.get("parameters"), &field("parameters"))?;
    let data = match p.and_then(|p| p.get("binary_data_size")) {
        Some(size) => {
            let size = size
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    V2Error::bad(format!(
                        "{}: expected a byte count",
                        at("parameters.binary_data_size")
                    ))
                })?;
            if size > binary.len() {
                return Err(V2Error::bad(format!(
                    "{}: {size} bytes claimed but only {} remain in the body",
                    at("parameters.binary_data_size"),
                    binary.len()
                )));
            }
            let (mine, rest) = binary.split_at(size);
            *binary = rest;
            decode_binary(datatype, mine, elements)
                .map_err(|m| V2Error::bad(format!("{}: {m}", at("data"))))?
        }
        None => {
            let data = input.get("data").ok_or_else(|| {
                V2Error::bad(format!(
                    "{}: missing (or set parameters.binary_data_size)",
                    at("data")
                ))
            })?;
            let nested = data
                .as_array()
                .is_some_and(|a| a.iter().any(Value::is_array));
            if nested && !nesting_matches(data, &shape) {
                return Err(V2Error::bad(format!(
                    "{}: nested arrays must follow the shape {shape:?} exactly (or send the data flat)",
                    at("data")
                )));
            }
            decode_json(datatype, data).map_err(|m| V2Error::bad(format!("{}: {m}", at("data"))))?
        }
    };
    if data.len() != elements {
        return Err(V2Error::bad(format!(
            "{}: shape {shape:?} needs {elements} elements but data has {}",
            at("data"),
            data.len()
        )));
    }
    Ok(NamedTensor::new(name, shape, data))
}

/// Whether nested arrays have exactly the dimensions of `shape`.
fn nesting_matches(value: &Value, shape: &[usize]) -> bool {
    match (value, shape.split_first()) {
        (Value::Array(items), Some((n, rest))) => {
            items.len() == *n && items.iter().all(|item| nesting_matches(item, rest))
        }
        (Value::Array(_), None) => false,
        (_, None) => true,
        (_, Some(_)) => false,
    }
}

/// Row-major leaves of nested arrays.
fn leaves(value: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().rev()),
            leaf => out.push(leaf),
        }
    }
    out
}

pub fn decode_json(datatype: Datatype, data: &Value) -> Result<Data, String> {
    let values = leaves(data);
    if values.len() > MAX_ELEMENTS {
        return Err(format!("more than {MAX_ELEMENTS} elements"));
    }
    fn ints<T: TryFrom<i64> + TryFrom<u64>>(
        values: &[&Value],
        name: &str,
    ) -> Result<Vec<T>, String> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let n = match v {
                    Value::Number(n) => n
                        .as_i64()
                        .and_then(|x| T::try_from(x).ok())
                        .or_else(|| n.as_u64().and_then(|x| T::try_from(x).ok())),
                    _ => None,
                };
                n.ok_or_else(|| {
                    format!("element {i} ({v}) is not an integer within {name}'s range")
                })
            })
            .collect()
    }
    fn float(v: &Value, i: usize) -> Result<f64, String> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| format!("element {i} is not a number")),
            Value::String(s) => match s.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "Infinity" | "inf" | "+inf" => Ok(f64::INFINITY),
                "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                _ => Err(format!(
                    "element {i} ({s:?}) is a string; floats are numbers, or \"NaN\", \"Infinity\", \"-Infinity\""
                )),
            },
            other => Err(format!("element {i} ({other}) is not a number")),
        }
    }
    /// To f32, refusing a finite number that would round to infinity (for
    /// FP16: at or beyond 65520, the first value that rounds past 65504).
    fn narrow(values: &[&Value], limit: f64, name: &str) -> Result<Vec<f32>, String> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = float(v, i)?;
                let y = x as f32;
                if x.is_finite() && (y.is_infinite() || x.abs() >= limit) {
                    return Err(format!("element {i} ({x}) is outside {name}'s range"));
                }
                Ok(y)
            })
            .collect()
    }
    Ok(match datatype {
        Datatype::Bool => Data::Bool(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_bool()
                        .ok_or_else(|| format!("element {i} ({v}) is not true or false"))
                })
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Uint8 => Data::Uint8(ints(&values, "UINT8")?),
        Datatype::Uint16 => Data::Uint16(ints(&values, "UINT16")?),
        Datatype::Uint32 => Data::Uint32(ints(&values, "UINT32")?),
        Datatype::Uint64 => Data::Uint64(ints(&values, "UINT64")?),
        Datatype::Int8 => Data::Int8(ints(&values, "INT8")?),
        Datatype::Int16 => Data::Int16(ints(&values, "INT16")?),
        Datatype::Int32 => Data::Int32(ints(&values, "INT32")?),
        Datatype::Int64 => Data::Int64(ints(&values, "INT64")?),
        Datatype::Fp16 => Data::Fp16(narrow(&values, 65520.0, "FP16")?),
        Datatype::Fp32 => Data::Fp32(narrow(&values, f64::INFINITY, "FP32")?),
        Datatype::Fp64 => Data::Fp64(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| float(v, i))
                .collect::<Result<_, _>>()?,
        ),
        Datatype::Bytes => Data::Bytes(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone().into_bytes()),
                    other => Err(format!("element {i} ({other}) is not a string")),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn decode_binary(datatype: Datatype, bytes: &[u8], elements: usize) -> Result<Data, String> {
    if datatype == Datatype::Bytes {
        let mut out = Vec::with_capacity(elements);
        let mut rest = bytes;
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(
                    "BYTES element is cut short (a 4-byte length prefix is incomplete)".into(),
                );
            }
            let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if rest.len() - 4 < n {
                return Err(format!(
                    "BYTES element {} claims {n} bytes but {} remain",
                    out.len(),
                    rest.len() - 4
                ));
            }
            out.push(rest[4..4 + n].to_vec());
            rest = &rest[4 + n..];
        }
        return Ok(Data::Bytes(out));
    }
    let width = datatype.width().unwrap_or(1);
    if bytes.len() != elements * width {
        return Err(format!(
            "{} bytes of binary data, but the shape needs {elements} elements of {width} bytes",
            bytes.len()
        ));
    }
    macro_rules! le {
        ($t:ty, $variant:ident) => {
            Data::$variant(
                bytes
                    .chunks_exact(width)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk width")))
                    .collect(),
            )
        };
    }
    Ok(match datatype {
        Datatype::Bool => Data::Bool(bytes.iter().map(|b| *b != 0).collect()),
        Datatype::Uint8 => Data::Uint8(bytes.to_vec()),
        Datatype::Int8 => Data::Int8(bytes.iter().map(|b| *b as i8).collect()),
        Datatype::Uint16 => le!(u16, Uint16),
        Datatype::Int16 => le!(i16, Int16),
        Datatype::Uint32 => le!(u32, Uint32),
        Datatype::Int32 => le!(i32, Int32),
        Datatype::Uint64 => le!(u64, Uint64),
        Datatype::Int64 => le!(i64, Int64),
        Datatype::Fp32 => le!(f32, Fp32),
        Datatype::Fp64 => le!(f64, Fp64),
        Datatype::Fp16 => Data::Fp16(
            bytes
                .chunks_exact(2)
                .map(|c| half_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        ),
        Datatype::Bytes => unreachable!("handled above"),
    })
}

/// IEEE 754 binary16 to f32.
fn half_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = ((h >> 10) & 0x1f) as i32;
    let fraction = (h & 0x3ff) as f32;
    sign * match exponent {
        0 => fraction * 2f32.powi(-24),
        31 if fraction == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + fraction / 1024.0) * 2f32.powi(e - 15),
    }
}

fn f32_to_half(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    if x.is_nan() {
        return sign | 0x7e00;
    }
    let a = x.abs();
    if a >= 65520.0 {
        return sign | 0x7c00;
    }
    if a < 2f32.powi(-24) / 2.0 {
        return sign;
    }
    if a < 2f32.powi(-14) {
        return sign | (a / 2f32.powi(-24)).round() as u16;
    }
    let e = a.log2().floor() as i32;
    let mut m = ((a / 2f32.powi(e) - 1.0) * 1024.0).round() as u32;
    let mut e = e + 15;
    if m == 1024 {
        m = 0;
        e += 1;
    }
    sign | ((e as u16) << 10) | m as u16
}

fn json_float(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else if x.is_nan() {
        json!("NaN")
    } else if x > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    }
}

fn json_f32(x: f32) -> Value {
    if !x.is_finite() {
        return json_float(x as f64);
    }
    // The shortest decimal that reads back as this f32, not the f64 widening.
    let shortest: f64 = x.to_string().parse().unwrap_or(x as f64);
    serde_json::Number::from_f64(shortest)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub fn data_json(data: &Data) -> Value {
    match data {
        Data::Bool(v) => json!(v),
        Data::Uint8(v) => json!(v),
        Data::Uint16(v) => json!(v),
        Data::Uint32(v) => json!(v),
        Data::Uint64(v) => json!(v),
        Data::Int8(v) => json!(v),
        Data::Int16(v) => json!(v),
        Data::Int32(v) => json!(v),
        Data::Int64(v) => json!(v),
        Data::Fp16(v) | Data::Fp32(v) => Value::Array(v.iter().map(|x| json_f32(*x)).collect()),
        Data::Fp64(v) => Value::Array(v.iter().map(|x| json_float(*x)).collect()),
        Data::Bytes(v) => Value::Array(
            v.iter()
                .map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                .collect(),
        ),
    }
}

fn data_binary(data: &Data, out: &mut Vec<u8>) {
    match data {
        Data::Bool(v) => out.extend(v.iter().map(|b| *b as u8)),
        Data::Uint8(v) => out.extend_from_slice(v),
        Data::Int8(v) => out.extend(v.iter().map(|x| *x as u8)),
        Data::Uint16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Int16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Uint32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Int32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Uint64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Int64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Fp16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&f32_to_half(*x).to_le_bytes())),
        Data::Fp32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Fp64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Bytes(v) => v.iter().for_each(|b| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }),
    }
}

fn respond(
    served: &ServedVersion,
    id: Option<String>,
    requested: &[(String, Option<bool>)],
    binary_default: bool,
    outputs: Vec<NamedTensor>,
) -> Result<Response, V2Error> {
    let chosen: Vec<(NamedTensor, bool)> = if requested.is_empty() {
        outputs.into_iter().map(|o| (o, binary_default)).collect()
    } else {
        let mut chosen = Vec::with_capacity(requested.len());
        let mut outputs: Vec<Option<NamedTensor>> = outputs.into_iter().map(Some).collect();
        for (i, (name, binary)) in requested.iter().enumerate() {
            if requested[..i].iter().any(|(n, _)| n == name) {
                return Err(V2Error::bad(format!("output {name} is requested twice")));
            }
            let pos = outputs
                .iter()
                .position(|o| o.as_ref().is_some_and(|o| &o.name == name))
                .ok_or_else(|| {
                    let names: Vec<&str> = served
                        .plan
                        .signature
                        .outputs
                        .iter()
                        .map(|o| o.name.as_str())
                        .collect();
                    V2Error::bad(format!(
                        "unknown output {name}; the model gives {}",
                        names.join(", ")
                    ))
                })?;
            let tensor = outputs[pos].take().expect("position found");
            chosen.push((tensor, binary.unwrap_or(binary_default)));
        }
        chosen
    };
    let mut binary = Vec::new();
    let mut list = Vec::with_capacity(chosen.len());
    for (tensor, as_binary) in &chosen {
        let mut entry = v2_json::OutputJson {
            name: &tensor.name,
            datatype: tensor.data.datatype().name(),
            shape: &tensor.shape,
            parameters: None,
            data: None,
        };
        if *as_binary {
            let before = binary.len();
            data_binary(&tensor.data, &mut binary);
            entry.parameters = Some(v2_json::BinarySize {
                binary_data_size: binary.len() - before,
            });
        } else {
            entry.data = Some(v2_json::DataJson(&tensor.data));
        }
        list.push(entry);
    }
    let body = v2_json::ResponseBody {
        id: id.as_deref(),
        model_name: &served.name,
        model_version: served.version.to_string(),
        outputs: list,
    };
    let header_json = serde_json::to_vec(&body).map_err(|e| V2Error {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: e.to_string(),
    })?;
    if binary.is_empty() && !chosen.iter().any(|(_, b)| *b) {
        return Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            header_json,
        )
            .into_response());
    }
    let length = header_json.len();
    let mut all = header_json;
    all.extend_from_slice(&binary);
    let mut response = Response::new(Body::from(all));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(HEADER_LENGTH, HeaderValue::from(length));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_data_must_follow_the_shape() {
        assert!(nesting_matches(&json!([[1, 2], [3, 4]]), &[2, 2]));
        assert!(!nesting_matches(&json!([[1, 2, 3], [4]]), &[2, 2]));
        assert!(!nesting_matches(&json!([[[1]], 2]), &[1, 2]));
        assert!(nesting_matches(&json!([[["a"]]]), &[1, 1, 1]));
    }

    #[test]
    fn floats_are_range_checked_after_rounding() {
        // FLT_MAX as Rust and as Python write it.
        assert!(
            decode_json(
                Datatype::Fp32,
                &json!([3.4028235e38, 3.4028234663852886e38])
            )
            .is_ok()
        );
        assert!(decode_json(Datatype::Fp32, &json!([3.5e38])).is_err());
        assert!(decode_json(Datatype::Fp16, &json!([65519.0])).is_ok());
        assert!(decode_json(Datatype::Fp16, &json!([65520.0])).is_err());
        // float_roundtrip: the nearest double, not one ulp off.
        let Data::Fp64(v) = decode_json(
            Datatype::Fp64,
            &serde_json::from_str("[0.9580639753088469]").unwrap(),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(v[0], 0.9580639753088469);
    }

    #[test]
    fn half_round_trips() {
        for x in [
            0.0f32,
            1.0,
            -2.5,
            0.333_251_95,
            65504.0,
            6.103_515_6e-5,
            5.960_464_5e-8,
        ] {
            assert_eq!(half_to_f32(f32_to_half(x)), x, "{x}");
        }
        assert!(half_to_f32(f32_to_half(f32::NAN)).is_nan());
        assert_eq!(half_to_f32(f32_to_half(1e6)), f32::INFINITY);
    }

    #[test]
    fn nested_and_flat_data_agree() {
        let nested = decode_json(Datatype::Fp32, &json!([[1, 2.5], [3, "NaN"]])).unwrap();
        let Data::Fp32(v) = nested else { panic!() };
        assert_eq!(&v[..3], &[1.0, 2.5, 3.0]);
        assert!(v[3].is_nan());
        assert!(decode_json(Datatype::Int32, &json!([1.5])).is_err());
        assert!(decode_json(Datatype::Uint8, &json!([256])).is_err());
        assert!(decode_json(Datatype::Int8, &json!([-128, 127])).is_ok());
        assert!(decode_json(Datatype::Fp32, &json!([1e39])).is_err());
        assert!(decode_json(Datatype::Bool, &json!([1])).is_err());
    }

    use proptest::prelude::*;

    fn any_data() -> impl Strategy<Value = Data> {
        prop_oneof![
            proptest::collection::vec(any::<bool>(), 0..20).prop_map(Data::Bool),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Data::Uint8),
            proptest::collection::vec(any::<u16>(), 0..20).prop_map(Data::Uint16),
            proptest::collection::vec(any::<u32>(), 0..20).prop_map(Data::Uint32),
            proptest::collection::vec(any::<u64>(), 0..20).prop_map(Data::Uint64),
            proptest::collection::vec(any::<i8>(), 0..20).prop_map(Data::Int8),
            proptest::collection::vec(any::<i16>(), 0..20).prop_map(Data::Int16),
            proptest::collection::vec(any::<i32>(), 0..20).prop_map(Data::Int32),
            proptest::collection::vec(any::<i64>(), 0..20).prop_map(Data::Int64),
            proptest::collection::vec(any::<u16>(), 0..20).prop_map(|v| Data::Fp16(
                v.into_iter()
                    .map(half_to_f32)
                    .filter(|x| !x.is_nan())
                    .collect()
            )),
            proptest::collection::vec(
                any::<f32>().prop_filter("NaN != NaN", |x| !x.is_nan()),
                0..20
            )
            .prop_map(Data::Fp32),
            proptest::collection::vec(
                any::<f64>().prop_filter("NaN != NaN", |x| !x.is_nan()),
                0..20
            )
            .prop_map(Data::Fp64),
            proptest::collection::vec(".{0,8}", 0..20)
                .prop_map(|v| Data::Bytes(v.into_iter().map(String::into_bytes).collect())),
        ]
    }

    proptest! {
        /// What Keel writes (JSON or binary) reads back as the same tensor.
        #[test]
        fn tensors_round_trip_through_json_and_binary(data in any_data()) {
            let datatype = data.datatype();
            let json = data_json(&data);
            prop_assert_eq!(&decode_json(datatype, &json).unwrap(), &data);
            let mut bytes = Vec::new();
            data_binary(&data, &mut bytes);
            prop_assert_eq!(&decode_binary(datatype, &bytes, data.len()).unwrap(), &data);
        }

        /// Arbitrary bytes as a binary tensor are an error or a tensor, never a
        /// panic.
        #[test]
        fn arbitrary_binary_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), n in 0usize..20) {
            for datatype in Datatype::ALL {
                let _ = decode_binary(datatype, &bytes, n);
            }
        }

        /// So do arbitrary JSON request bodies.
        #[test]
        fn arbitrary_requests_never_panic(body in ".{0,200}") {
            let _ = InferRequest::parse(&HeaderMap::new(), body.as_bytes());
        }

        /// The direct writer and the `Value` writer give the same tensor back,
        /// and the direct scanner decodes flat and nested data as the generic
        /// decoder does.
        #[test]
        fn direct_json_agrees_with_the_generic_path(data in any_data(), rows in 1usize..4) {
            let datatype = data.datatype();
            let written = serde_json::to_string(&v2_json::DataJson(&data)).unwrap();
            let value: Value = serde_json::from_str(&written).unwrap();
            prop_assert_eq!(&decode_json(datatype, &value).unwrap(), &data);
            let n = data.len();
            if datatype != Datatype::Bytes && data_is_finite(&data) {
                prop_assert_eq!(&v2_json::scan_data(&written, datatype, &[n], n).unwrap(), &data);
                if n % rows == 0 && n > 0 {
                    let nested = nest(&value, n / rows);
                    let text = nested.to_string();
                    let shape = [rows, n / rows];
                    prop_assert_eq!(&v2_json::scan_data(&text, datatype, &shape, n).unwrap(), &data);
                    // Another nesting than the shape is left to the generic path.
                    if rows != n / rows {
                        prop_assert!(v2_json::scan_data(&text, datatype, &[n / rows, rows], n).is_none());
                    }
                }
            }
        }

        /// A whole request decodes to the same tensors on both paths.
        #[test]
        fn fast_requests_decode_as_generic_ones(data in any_data()) {
            prop_assume!(data.datatype() != Datatype::Bytes && data_is_finite(&data));
            let body = json!({
                "id": "r1",
                "inputs": [{"name": "x", "datatype": data.datatype().name(),
                            "shape": [data.len()], "data": data_json(&data)}],
                "outputs": [{"name": "y"}],
            })
            .to_string();
            let (_, fast) = v2_json::parse(body.as_bytes()).expect("the fast path takes it");
            let value: Value = serde_json::from_str(&body).unwrap();
            let generic = parse_input(&value["inputs"][0], 0, &mut &[][..]).unwrap();
            prop_assert_eq!(&fast[0].data, &generic.data);
            let request = InferRequest::parse(&HeaderMap::new(), body.as_bytes()).unwrap();
            prop_assert_eq!(request.id.as_deref(), Some("r1"));
            prop_assert_eq!(request.outputs, vec![("y".to_string(), None)]);
        }
    }

    fn data_is_finite(data: &Data) -> bool {
        match data {
            Data::Fp16(v) | Data::Fp32(v) => v.iter().all(|x| x.is_finite()),
            Data::Fp64(v) => v.iter().all(|x| x.is_finite()),
            _ => true,
        }
    }

    /// A flat JSON array as rows of `width`.
    fn nest(flat: &Value, width: usize) -> Value {
        let items = flat.as_array().unwrap();
        Value::Array(
            items
                .chunks(width)
                .map(|row| Value::Array(row.to_vec()))
                .collect(),
        )
    }

    #[test]
    fn unusual_requests_take_the_generic_path() {
        let fp32 = |data: &str, shape: &[usize]| {
            let n = shape.iter().product();
            v2_json::scan_data(data, Datatype::Fp32, shape, n)
        };
        assert!(fp32("[1, 2.5, -3e2]", &[3]).is_some());
        assert!(fp32("[[1, 2], [3, 4]]", &[2, 2]).is_some());
        assert!(fp32("[1, \"NaN\"]", &[2]).is_none());
        assert!(fp32("[1e39]", &[1]).is_none());
        assert!(fp32("[[1, 2, 3], [4]]", &[2, 2]).is_none());
        assert!(fp32("[[1], 2]", &[2, 1]).is_none());
        assert!(fp32("[1, 2]", &[3]).is_none());
        assert!(fp32("[1, null]", &[2]).is_none());
        assert!(fp32("7", &[1]).is_none());
        assert!(v2_json::scan_data("[1.0]", Datatype::Int64, &[1], 1).is_none());
        assert!(v2_json::scan_data("[256]", Datatype::Uint8, &[1], 1).is_none());
        assert!(v2_json::scan_data("[-0]", Datatype::Int32, &[1], 1).is_none());
        // Binary inputs, missing data and a null output list are the generic
        // parser's to judge.
        for body in [
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]}"#,
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}"#,
            r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ["NaN"]}]}"#,
        ] {
            assert!(v2_json::parse(body.as_bytes()).is_none(), "{body}");
        }
        let null_outputs = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": null}"#;
        let Err(e) = InferRequest::parse(&HeaderMap::new(), null_outputs.as_bytes()) else {
            panic!("outputs: null was accepted")
        };
        assert!(e.message.contains("outputs"), "{}", e.message);
    }

    #[test]
    fn binary_bytes_elements_are_length_prefixed() {
        let mut buf = Vec::new();
        data_binary(&Data::Bytes(vec![b"EU".to_vec(), b"".to_vec()]), &mut buf);
        assert_eq!(
            decode_binary(Datatype::Bytes, &buf, 2).unwrap(),
            Data::Bytes(vec![b"EU".to_vec(), vec![]])
        );
        assert!(decode_binary(Datatype::Bytes, &buf[..5], 2).is_err());
        assert!(decode_binary(Datatype::Fp32, &[0, 0, 0], 1).is_err());
    }
}
