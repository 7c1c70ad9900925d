//! The lifecycle action `train`: a state submits a training job and moves
//! on when it ends.
//!
//! ```yaml
//! states:
//!   training:
//!     action: {train: {job: churn-gbdt, tenant: growth, trainer: builtin:gbdt,
//!                      data: {training_set: /data/churn.parquet, label: churned}}}
//!     on: {action_succeeded: waiting, action_failed: failed}
//!   waiting:
//!     on: {job_succeeded: testing, job_failed: failed}
//! ```
//!
//! The action's settings are a job spec. It is submitted with
//! `notify: {lifecycle, key}` set to the instance, so the scheduler sends
//! `job_succeeded` or `job_failed` to it when the job ends; the action itself
//! succeeds as soon as the job is queued, with `{"job_id"}`.

use std::sync::{Arc, OnceLock};

use keel_lifecycle::actions::{Action, ActionFailure, ActionRequest};
use serde_json::{Value, json};

pub struct TrainAction {
    /// Set once the training service has opened (after the engine).
    pub training: Arc<OnceLock<keel_train::Training>>,
}

fn failure(message: String) -> ActionFailure {
    ActionFailure {
        message,
        output: Value::Null,
    }
}

#[async_trait::async_trait]
impl Action for TrainAction {
    fn kind(&self) -> &'static str {
        "train"
    }

    async fn run(&self, request: ActionRequest) -> Result<Value, ActionFailure> {
        let training = self
            .training
            .get()
            .ok_or_else(|| failure("the training scheduler is not running".into()))?;
        let mut spec = request.config.clone();
        let Some(obj) = spec.as_object_mut() else {
            return Err(failure(
                "train: the action's settings are a job spec (a mapping)".into(),
            ));
        };
        obj.insert(
            "notify".into(),
            json!({"lifecycle": request.lifecycle, "key": request.key}),
        );
        let spec = keel_train::spec::parse(&spec.to_string())
            .map_err(|e| failure(format!("train: {e}")))?;
        let jobs = training
            .submit(spec)
            .await
            .map_err(|e| failure(format!("train: {e}")))?;
        let job = &jobs[0];
        Ok(json!({"job_id": job.id, "job": job.name, "children": jobs.len() - 1}))
    }
}
