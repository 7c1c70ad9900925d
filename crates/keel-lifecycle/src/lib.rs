//! `keel-lifecycle` is Keel's event-centric lifecycle engine: definitions
//! (YAML state machines with guards, timeouts, retries, schedules, parallel
//! branches and maps), instances keyed by the user's key, a durable
//! append-only event log with group commit and snapshots, timers, actions
//! and history.
//!
//! A waiting lifecycle is a small record in memory, not a thread: inputs
//! (events, timers, action results) move it through [`machine::Machine::apply`],
//! a pure function, and the engine makes each batch of moves durable with
//! one fsync. The crate knows nothing about HTTP or SQL; domains plug in
//! through the [`actions::Action`] trait and report back with events.

pub mod actions;
pub mod cluster;
mod codec;
pub mod cron;
pub mod definition;
pub use keel_core::duration;
pub mod engine;
mod error;
pub mod expr;
pub mod graph;
pub mod log;
pub mod machine;
pub mod parse;
pub mod service;
mod snapshot;

pub use actions::{Action, ActionFailure, ActionRegistry, ActionRequest};
pub use engine::{Engine, EngineOptions, SendRequest, Target};
pub use error::LifecycleError;
pub use service::Lifecycles;
