//! `keel-features` is Keel's feature store: the definitions of a feature
//! repo (entities, sources, feature views, on-demand and stream feature
//! views, feature services), checked and planned against what is applied,
//! and the point-in-time joins over Arrow arrays that build training sets
//! from feature views.
//!
//! [`definition`] and [`point_in_time`] know nothing about storage: they
//! take files and Arrow record batches. [`store`] keeps applied repo
//! versions in the metadata store, reads sources through the dataset
//! catalog's SQL engine and writes training sets.

pub mod definition;
mod error;
pub mod online;
pub mod point_in_time;
pub mod store;

pub use error::FeatureError;
pub use store::{FeatureStore, MIGRATIONS};
