//! Keel's deployments and live experiments.
//!
//! A deployment is a name, its variants (model versions) and a strategy:
//! `single`, `canary`, `ab`, `shadow`, the multi-armed bandits
//! (`epsilon_greedy`, `ucb1`, `thompson`, `softmax`) and the contextual ones
//! (`linucb`, `linear_thompson`, `cb_epsilon_greedy`). Each decision picks a
//! variant with a known propensity and gets a decision id; feedback on that
//! id updates the policy. Every change, decision and reward goes to the
//! decision log first, so the policies survive a restart (they are rebuilt
//! by replaying it) and the log is the input of analysis and off-policy
//! evaluation.

pub mod analysis;
pub mod deployments;
pub mod evaluate;
pub mod log;
pub mod plot;
pub mod policy;
pub mod rollout;
pub mod strategy;

pub use deployments::{
    ControlRequest, DecideRequest, Decision, DeploymentEvent, Deployments, Outcome,
};
pub use strategy::{DeploymentSpec, Strategy, VariantSpec};

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("no deployment named {0:?}; list them with GET /v1/deployments")]
    UnknownDeployment(String),
    #[error("deployment {0:?} already exists; pick another name")]
    DeploymentExists(String),
    #[error("no decision {0:?}: it was never made, or its deployment is gone")]
    UnknownDecision(String),
    #[error("decision {0:?} already has its reward")]
    AlreadyRewarded(String),
    #[error("decision log I/O: {0}")]
    Io(String),
    #[error("{0}")]
    Unavailable(String),
    /// The request does not fit the deployment's current state.
    #[error("{0}")]
    Conflict(String),
    #[error("the decision log is corrupt: {0}")]
    Corrupt(String),
}
