//! The Ray executor: an attempt is a Ray job, submitted through the Jobs
//! REST API of a Ray cluster's head (`POST /api/jobs/`), followed by its
//! status (`GET /api/jobs/{id}`), stopped on cancellation or timeout
//! (`POST /api/jobs/{id}/stop`), and its driver's log fetched at the end
//! (`GET /api/jobs/{id}/logs`). The submission id is
//! `keel-<job>-<attempt>`, so a restarted server finds the attempt again.
//! The entrypoint runs in the job's working directory (`cd DIR && …`):
//! the cluster must see this server's job directories at the same path (a
//! local cluster, or a shared file system).
//!
//! Ray reports no per-job CPU time, so a Ray attempt is billed for what it
//! reserved: `entrypoint_num_cpus` × wall time, and the memory it asked
//! for × wall time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::TrainError;
use crate::local::Report;
use crate::store::Usage;

/// A Ray job's state as its API reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct RayJob {
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
    /// ms since the epoch.
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub driver_exit_code: Option<i32>,
}

impl RayJob {
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "SUCCEEDED" | "FAILED" | "STOPPED")
    }
}

/// A Ray cluster's Jobs API.
#[derive(Clone)]
pub struct RayClient {
    base: String,
    http: reqwest::Client,
}

fn failed(what: &str, e: impl std::fmt::Display) -> TrainError {
    TrainError::Executor(format!("ray: {what}: {e}"))
}

impl RayClient {
    /// `address` is the head's dashboard, e.g. `http://127.0.0.1:8265`.
    pub fn new(address: &str) -> Result<Self, TrainError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| failed("client", e))?;
        Ok(RayClient {
            base: address.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// The submission id of a job's attempt.
    pub fn submission_id(job: i64, attempt: u32) -> String {
        format!("keel-{job}-{attempt}")
    }

    /// Submits an attempt; an attempt already submitted (a retry of this
    /// call) is left as it is.
    pub async fn submit(
        &self,
        submission_id: &str,
        entrypoint: &str,
        working_dir: Option<&str>,
        env: &BTreeMap<String, String>,
        cpus: f64,
        memory_bytes: u64,
    ) -> Result<(), TrainError> {
        let runtime_env = json!({ "env_vars": env });
        let entrypoint = match working_dir {
            Some(dir) => format!("cd {} && {entrypoint}", crate::service::shell_quote(dir)),
            None => entrypoint.to_string(),
        };
        let body = json!({
            "entrypoint": entrypoint,
            "submission_id": submission_id,
            "runtime_env": runtime_env,
            "entrypoint_num_cpus": cpus,
            "entrypoint_memory": memory_bytes,
            "metadata": {"keel": "training job"},
        });
        let resp = self
            .http
            .post(format!("{}/api/jobs/", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| failed(&format!("cannot reach {}", self.base), e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        if text.contains("already exists") {
            return Ok(());
        }
        Err(failed("submit", format!("HTTP {status}: {}", text.trim())))
    }

    pub async fn status(&self, submission_id: &str) -> Result<RayJob, TrainError> {
        let resp = self
            .http
            .get(format!("{}/api/jobs/{submission_id}", self.base))
            .send()
            .await
            .map_err(|e| failed("status", e))?;
        if !resp.status().is_success() {
            return Err(failed("status", format!("HTTP {}", resp.status())));
        }
        resp.json().await.map_err(|e| failed("status", e))
    }

    pub async fn stop(&self, submission_id: &str) -> Result<(), TrainError> {
        self.http
            .post(format!("{}/api/jobs/{submission_id}/stop", self.base))
            .send()
            .await
            .map_err(|e| failed("stop", e))?;
        Ok(())
    }

    pub async fn logs(&self, submission_id: &str) -> Result<String, TrainError> {
        let v: Value = self
            .http
            .get(format!("{}/api/jobs/{submission_id}/logs", self.base))
            .send()
            .await
            .map_err(|e| failed("logs", e))?
            .json()
            .await
            .map_err(|e| failed("logs", e))?;
        Ok(v["logs"].as_str().unwrap_or_default().to_string())
    }
}

/// The report of a finished Ray attempt, billed for what it reserved.
pub fn report(
    job: &RayJob,
    cpus: f64,
    memory_bytes: u64,
    cancelled: bool,
    timed_out: bool,
) -> Report {
    let now = keel_core::time::now_millis();
    let started_at = job.start_time.unwrap_or(now);
    let finished_at = job.end_time.unwrap_or(now).max(started_at);
    let wall = (finished_at - started_at) as f64 / 1000.0;
    let exit_code = match (job.driver_exit_code, job.status.as_str()) {
        (Some(c), _) => Some(c),
        (None, "SUCCEEDED") => Some(0),
        _ => None,
    };
    Report {
        exit_code,
        signal: None,
        timed_out,
        cancelled: cancelled && !timed_out,
        usage: Usage {
            started_at,
            finished_at,
            wall_seconds: wall,
            cpu_seconds: wall * cpus,
            memory_gb_seconds: wall * memory_bytes as f64 / 1e9,
            max_rss_bytes: 0,
        },
        error: (job.status == "FAILED" && exit_code.is_none()).then(|| {
            let m = job.message.as_deref().unwrap_or("the Ray job failed");
            m.lines().next().unwrap_or(m).chars().take(500).collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ray_job_is_billed_for_what_it_reserved() {
        let job = RayJob {
            status: "SUCCEEDED".into(),
            message: None,
            start_time: Some(10_000),
            end_time: Some(14_000),
            driver_exit_code: None,
        };
        let r = report(&job, 2.0, 2_000_000_000, false, false);
        assert!(r.succeeded());
        assert_eq!(r.usage.wall_seconds, 4.0);
        assert_eq!(r.usage.cpu_seconds, 8.0);
        assert_eq!(r.usage.memory_gb_seconds, 8.0);
        let stopped = RayJob {
            status: "STOPPED".into(),
            ..job.clone()
        };
        let r = report(&stopped, 1.0, 0, true, false);
        assert!(r.cancelled && !r.succeeded());
        let broken = RayJob {
            status: "FAILED".into(),
            message: Some("Failed to start supervisor actor\nTraceback".into()),
            ..job.clone()
        };
        assert_eq!(
            report(&broken, 1.0, 0, false, false).describe(),
            "could not start: Failed to start supervisor actor"
        );
        let failed = RayJob {
            status: "FAILED".into(),
            driver_exit_code: Some(3),
            ..job
        };
        assert_eq!(
            report(&failed, 1.0, 0, false, false).describe(),
            "exited with status 3"
        );
        assert_eq!(RayClient::submission_id(7, 2), "keel-7-2");
    }
}
