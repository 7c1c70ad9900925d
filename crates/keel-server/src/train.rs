//! Training jobs and billing over HTTP:
//!
//! - `POST /v1/train/jobs` (a job spec, YAML or JSON) → 201 `{"job", "children"}`;
//!   429 with `Retry-After` when the tenant submits faster than its rate;
//! - `GET /v1/train/jobs?tenant=&state=&parent=&limit=` → `{"jobs"}`;
//! - `GET /v1/train/jobs/{id}` → `{"job", "children"}`;
//! - `POST /v1/train/jobs/{id}/cancel`;
//! - `GET /v1/train/jobs/{id}/logs?stream=stdout|stderr&attempt=N` → text;
//! - `GET /v1/train/tenants`, `PUT /v1/train/tenants/{name}` (a policy);
//! - `GET /v1/train/scheduler` → capacity and each tenant's share;
//! - `GET /v1/billing/report?tenant=&from=&to=` → the ledger and totals.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use keel_train::TrainError;
use keel_train::scheduler::TenantPolicy;
use keel_train::store::{JobFilter, JobState, JobStore};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::lifecycle::V1Error;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/train/jobs", post(submit).get(list))
        .route("/train/jobs/{id}", get(show))
        .route("/train/jobs/{id}/cancel", post(cancel))
        .route("/train/jobs/{id}/logs", get(logs))
        .route("/train/tenants", get(tenants))
        .route("/train/tenants/{name}", put(set_tenant))
        .route("/train/scheduler", get(scheduler))
        .route("/billing/report", get(report))
}

impl From<TrainError> for V1Error {
    fn from(e: TrainError) -> Self {
        let message = e.to_string();
        match e {
            TrainError::Spec(s) => V1Error {
                status: StatusCode::BAD_REQUEST,
                code: "INVALID_SPEC",
                message: format!("the job spec has {} problem(s)", s.problems.len()),
                field: s.problems.first().map(|p| p.path.clone()),
                problems: serde_json::to_value(&s.problems).ok(),
            },
            TrainError::Invalid(m) => {
                let field = m.split(':').next().unwrap_or("").trim().to_string();
                let mut err = V1Error::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", m);
                if !field.is_empty() && !field.contains(' ') {
                    err.field = Some(field);
                }
                err
            }
            TrainError::NotFound(_) => V1Error::not_found(message),
            TrainError::Conflict(_) => V1Error::new(StatusCode::CONFLICT, "CONFLICT", message),
            TrainError::RateLimited { .. } => {
                V1Error::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", message)
            }
            _ => {
                tracing::error!(error = %message, "training request failed");
                V1Error::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
            }
        }
    }
}

fn jobs(state: &AppState) -> Result<&JobStore, V1Error> {
    state
        .jobs
        .as_ref()
        .ok_or_else(|| V1Error::unavailable("training jobs are not kept by this server"))
}

fn training(state: &AppState) -> Result<&keel_train::Training, V1Error> {
    state.training.as_ref().ok_or_else(|| {
        V1Error::unavailable(
            "no scheduler runs here: submit, cancel and tenant changes go to a running `keel server` (--server URL)",
        )
    })
}

async fn submit(State(state): State<AppState>, body: Bytes) -> Response {
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(_) => {
            return V1Error::invalid("body", "the job spec must be UTF-8 text").into_response();
        }
    };
    let spec = match keel_train::spec::parse(text) {
        Ok(s) => s,
        Err(e) => return V1Error::from(TrainError::from(e)).into_response(),
    };
    let t = match training(&state) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match t.submit(spec).await {
        Ok(mut created) => {
            let job = created.remove(0);
            (
                StatusCode::CREATED,
                Json(json!({"job": job, "children": created})),
            )
                .into_response()
        }
        Err(TrainError::RateLimited {
            tenant,
            rate,
            retry_after,
        }) => {
            let message =
                format!("tenant {tenant} submits more than {rate}/s; retry in {retry_after:.1} s");
            let mut resp = V1Error::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", message)
                .into_response();
            let secs = retry_after.ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Err(e) => V1Error::from(e).into_response(),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    tenant: Option<String>,
    state: Option<String>,
    parent: Option<i64>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, V1Error> {
    let state_filter = match q.state.as_deref() {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            V1Error::invalid(
                "state",
                format!("unknown state {s:?}; one of queued, running, succeeded, failed, cancelled, sweep"),
            )
        })?),
    };
    let found = jobs(&state)?
        .list(&JobFilter {
            tenant: q.tenant,
            state: state_filter,
            parent: q.parent,
            limit: q.limit,
        })
        .await?;
    Ok(Json(json!({ "jobs": found })))
}

async fn show(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<Value>, V1Error> {
    let store = jobs(&state)?;
    let job = store.get(id).await?;
    let children = if job.state == JobState::Sweep || job.parent.is_none() {
        store
            .list(&JobFilter {
                parent: Some(id),
                ..JobFilter::default()
            })
            .await?
    } else {
        Vec::new()
    };
    Ok(Json(json!({"job": job, "children": children})))
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, V1Error> {
    let job = training(&state)?.cancel(id).await?;
    Ok(Json(json!({ "job": job })))
}

#[derive(Deserialize)]
struct LogQuery {
    stream: Option<String>,
    attempt: Option<u32>,
}

async fn logs(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> Result<Response, V1Error> {
    let job = jobs(&state)?.get(id).await?;
    let stream = match q.stream.as_deref().unwrap_or("stdout") {
        s @ ("stdout" | "stderr") => s,
        other => {
            return Err(V1Error::invalid(
                "stream",
                format!("{other:?}; expected stdout or stderr"),
            ));
        }
    };
    let attempt = q.attempt.unwrap_or(job.attempts);
    if attempt == 0 {
        return Err(V1Error::not_found(format!("job {id} has not started yet")));
    }
    let Some(root) = &state.jobs_dir else {
        return Err(V1Error::unavailable("job logs are not kept by this server"));
    };
    let dir = keel_train::local::JobDir::new(root, id).attempt(attempt);
    let text = tokio::fs::read(dir.join(format!("{stream}.log")))
        .await
        .map_err(|_| V1Error::not_found(format!("job {id} attempt {attempt} has no {stream}")))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

async fn tenants(State(state): State<AppState>) -> Result<Json<Value>, V1Error> {
    let list: Vec<Value> = jobs(&state)?
        .tenants()
        .await?
        .into_iter()
        .map(|(name, policy)| json!({"tenant": name, "policy": policy}))
        .collect();
    Ok(Json(json!({ "tenants": list })))
}

async fn set_tenant(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, V1Error> {
    let policy: TenantPolicy = serde_json::from_slice(&body).map_err(|e| {
        V1Error::invalid(
            "policy",
            format!("{e}; expected {{\"weight\", \"max_cpus\", \"max_jobs\", \"monthly_budget\", \"submit_rate\", \"submit_burst\"}}"),
        )
    })?;
    if let Err(m) = policy.check() {
        return Err(TrainError::Invalid(m).into());
    }
    training(&state)?.set_tenant(&name, policy.clone()).await?;
    Ok(Json(json!({"tenant": name, "policy": policy})))
}

async fn scheduler(State(state): State<AppState>) -> Result<Json<Value>, V1Error> {
    let (capacity, shares) = training(&state)?.shares();
    let tenants: Vec<Value> = shares
        .into_iter()
        .map(|(s, spent)| {
            let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
            v["spent_this_month"] = json!(spent);
            v
        })
        .collect();
    Ok(Json(json!({"capacity": capacity, "tenants": tenants})))
}

#[derive(Deserialize)]
struct ReportQuery {
    tenant: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `2026-11-01`, `2026-11-01T12:00:00Z` or ms since the epoch.
fn instant(field: &str, text: &str) -> Result<i64, V1Error> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let date = text.get(..10).unwrap_or("");
    let parts: Vec<&str> = date.split('-').collect();
    let bad = || {
        V1Error::invalid(
            field,
            format!(
                "{text:?}; expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or milliseconds since the epoch"
            ),
        )
    };
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut ms = keel_core::time::days_from_civil(y, m, d) * 86_400_000;
    if let Some(time) = text.get(11..19) {
        let hms: Vec<i64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
        let [h, mi, s] = hms.as_slice() else {
            return Err(bad());
        };
        ms += ((h * 60 + mi) * 60 + s) * 1000;
    }
    Ok(ms)
}

async fn report(
    State(state): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> Result<Json<Value>, V1Error> {
    let tenant = q
        .tenant
        .ok_or_else(|| V1Error::invalid("tenant", "name the tenant to bill"))?;
    let from = match &q.from {
        Some(f) => instant("from", f)?,
        None => 0,
    };
    let to = match &q.to {
        Some(t) => instant("to", t)?,
        None => i64::MAX,
    };
    if from >= to {
        return Err(V1Error::invalid("to", "must be after `from`"));
    }
    let report = jobs(&state)?.report(&tenant, from, to).await?;
    Ok(Json(serde_json::to_value(&report).unwrap_or(Value::Null)))
}
