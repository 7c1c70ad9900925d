//! `keel-tracking` owns experiment tracking: experiments, runs, params,
//! metrics, tags, dataset inputs and run search, stored in the metadata
//! store's tracking tables.
//!
//! It knows nothing about HTTP or MLflow's wire format (the server maps its
//! types to JSON) and never touches another domain's tables.

mod error;
mod logged_models;
mod model;
mod run_names;
pub mod search;
mod store;
mod validate;

pub use error::TrackingError;
pub use model::*;
pub use store::Tracking;
pub use validate::Limits;

use keel_store::Migration;

/// The tracking domain's schema steps, applied by the metadata store.
pub const MIGRATIONS: &[Migration] = &[Migration {
    domain: "tracking",
    version: 1,
    description: "experiments, runs, params, tags, metrics, datasets",
    sqlite: include_str!("migrations/0001_tracking.sqlite.sql"),
    postgres: include_str!("migrations/0001_tracking.postgres.sql"),
}];
