//! `keel-features` is Keel's feature store: the definitions of a feature
//! repo (entities, sources, feature views, on-demand and stream feature
//! views, feature services), checked and planned against what is applied,
//! and the point-in-time joins over Arrow arrays that build training sets
//! from feature views.
//!
//! It knows nothing about HTTP or the metadata store: callers hand it files
//! or a folder and store the resulting [`definition::Repo`] as JSON, and
//! hand the join Arrow record batches.

pub mod definition;
mod error;
pub mod point_in_time;

pub use error::FeatureError;
