//! Typed access to an MLflow request's fields, from the JSON body (POST,
//! PATCH, DELETE) or the query string (GET), with errors that name the
//! offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use serde_json::{Map, Value};

use super::error::ApiError;

/// The fields of one request.
#[derive(Debug, Default)]
pub struct Fields {
    map: Map<String, Value>,
    /// Fields from a query string are all text, and a list may be one value.
    from_query: bool,
    /// Where these fields sit in the request, e.g. `metrics[3].`, for errors.
    prefix: String,
}

/// Largest JSON body the tracking API accepts.
pub const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if req.method() == Method::GET {
            let query = req.uri().query().unwrap_or("");
            return Ok(Fields::from_query(query));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::invalid(format!("Cannot read the request body: {e}")))?;
        Fields::from_json(&body)
    }
}

impl Fields {
    pub fn from_query(query: &str) -> Self {
        let mut map = Map::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let v = Value::String(v.into_owned());
            match map.get_mut(k.as_ref()) {
                Some(Value::Array(items)) => items.push(v),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, v]);
                }
                None => {
                    map.insert(k.into_owned(), v);
                }
            }
        }
        Fields {
            map,
            from_query: true,
            prefix: String::new(),
        }
    }

    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Fields::default());
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("Malformed JSON in the request body: {e}")))?;
        match value {
            Value::Object(map) => Ok(Fields {
                map,
                from_query: false,
                prefix: String::new(),
            }),
            other => Err(ApiError::invalid(format!(
                "The request body must be a JSON object, got {}",
                kind(&other)
            ))),
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn wrong_type(&self, field: &str, expected: &str, got: &Value) -> ApiError {
        ApiError::invalid(format!(
            "Invalid value {got} for parameter '{}' supplied: expected {expected}, got {}",
            self.name(field),
            kind(got)
        ))
    }

    pub fn str_opt(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            // PostgreSQL cannot store NUL in text; refuse it everywhere alike.
            Some(Value::String(s)) if s.contains('\0') => Err(ApiError::invalid(format!(
                "Invalid value for parameter '{}': text must not contain NUL characters",
                self.name(field)
            ))),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong_type(field, "a string", other)),
        }
    }

    /// A required string; empty counts as missing, as in MLflow.
    pub fn str_req(&self, field: &str) -> Result<String, ApiError> {
        match self.str_opt(field)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(ApiError::missing(&self.name(field))),
        }
    }

    /// A required string that may be empty (tag and param values).
    pub fn str_req_allow_empty(&self, field: &str) -> Result<String, ApiError> {
        self.str_opt(field)?
            .ok_or_else(|| ApiError::missing(&self.name(field)))
    }

    /// `run_id`, falling back to the deprecated `run_uuid`.
    pub fn run_id(&self) -> Result<String, ApiError> {
        match self.str_opt("run_id")?.filter(|s| !s.is_empty()) {
            Some(id) => Ok(id),
            None => self
                .str_req("run_uuid")
                .map_err(|_| ApiError::missing("run_id")),
        }
    }

    pub fn i64_opt(&self, field: &str) -> Result<Option<i64>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) => Ok(Some(v)),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Some(f as i64)),
                    _ => Err(self.wrong_type(field, "an integer", &Value::Number(n.clone()))),
                },
            },
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.wrong_type(field, "an integer", &Value::String(s.clone()))),
            Some(other) => Err(self.wrong_type(field, "an integer", other)),
        }
    }

    pub fn i64_req(&self, field: &str) -> Result<i64, ApiError> {
        self.i64_opt(field)?
            .ok_or_else(|| ApiError::missing(&self.name(field)))
    }

    /// A double: a JSON number or the strings "NaN", "Infinity", "-Infinity".
    pub fn f64_req(&self, field: &str) -> Result<f64, ApiError> {
        match self.present(field) {
            None => Err(ApiError::missing(&self.name(field))),
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| self.wrong_type(field, "a number", &Value::Number(n.clone()))),
            Some(Value::String(s)) => match s.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "Infinity" | "inf" => Ok(f64::INFINITY),
                "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                other => other
                    .parse::<f64>()
                    .map_err(|_| self.wrong_type(field, "a number", &Value::String(s.clone()))),
            },
            Some(other) => Err(self.wrong_type(field, "a number", other)),
        }
    }

    pub fn bool_opt(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(self.wrong_type(field, "true or false", other)),
        }
    }

    /// A list of strings (a repeated query key, or a JSON array).
    pub fn str_list(&self, field: &str) -> Result<Vec<String>, ApiError> {
        match self.present(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(self.wrong_type(&format!("{field}[{i}]"), "a string", other)),
                })
                .collect(),
            Some(Value::String(s)) if self.from_query => Ok(vec![s.clone()]),
            Some(other) => Err(self.wrong_type(field, "a list of strings", other)),
        }
    }

    /// A list of objects, each as its own `Fields`.
    pub fn objects(&self, field: &str) -> Result<Vec<Fields>, ApiError> {
        match self.present(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(map) => Ok(Fields {
                        map: map.clone(),
                        from_query: false,
                        prefix: format!("{}{field}[{i}].", self.prefix),
                    }),
                    other => Err(self.wrong_type(&format!("{field}[{i}]"), "an object", other)),
                })
                .collect(),
            Some(other) => Err(self.wrong_type(field, "a list of objects", other)),
        }
    }

    /// A nested object.
    pub fn object(&self, field: &str) -> Result<Option<Fields>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields {
                map: map.clone(),
                from_query: false,
                prefix: format!("{}{field}.", self.prefix),
            })),
            Some(other) => Err(self.wrong_type(field, "an object", other)),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_repeat_into_lists() {
        let f = Fields::from_query(
            "run_id=a&run_uuid=a&experiment_ids=1&experiment_ids=2&max_results=25000",
        );
        assert_eq!(f.run_id().unwrap(), "a");
        assert_eq!(f.str_list("experiment_ids").unwrap(), vec!["1", "2"]);
        assert_eq!(f.i64_opt("max_results").unwrap(), Some(25000));
    }

    #[test]
    fn errors_name_the_nested_field() {
        let f = Fields::from_json(br#"{"metrics": [{"key": "a", "value": 1, "timestamp": 1}, {"key": "b", "value": "x"}]}"#).unwrap();
        let ms = f.objects("metrics").unwrap();
        assert_eq!(ms[0].f64_req("value").unwrap(), 1.0);
        let err = ms[1].f64_req("value").unwrap_err();
        assert!(err.message.contains("metrics[1].value"), "{}", err.message);
        assert!(
            ms[1]
                .i64_req("timestamp")
                .unwrap_err()
                .message
                .contains("metrics[1].timestamp")
        );
    }

    #[test]
    fn nul_characters_are_refused() {
        let f = Fields::from_json(br#"{"params": [{"key": "k", "value": "a\u0000b"}]}"#).unwrap();
        let err = f.objects("params").unwrap()[0]
            .str_opt("value")
            .unwrap_err();
        assert!(err.message.contains("params[0].value"), "{}", err.message);
    }

    #[test]
    fn special_doubles_and_bad_bodies() {
        let f = Fields::from_json(br#"{"a": "NaN", "b": "-Infinity", "c": true}"#).unwrap();
        assert!(f.f64_req("a").unwrap().is_nan());
        assert_eq!(f.f64_req("b").unwrap(), f64::NEG_INFINITY);
        assert!(f.f64_req("c").is_err());
        assert!(Fields::from_json(b"{not json").is_err());
        assert!(Fields::from_json(b"[1,2]").is_err());
        assert!(Fields::from_json(b"").is_ok());
    }
}
