//! `keel-features` is Keel's feature store: the definitions of a feature
//! repo (entities, sources, feature views, on-demand and stream feature
//! views, feature services), checked and planned against what is applied.
//!
//! It knows nothing about HTTP or the metadata store: callers hand it files
//! or a folder and store the resulting [`definition::Repo`] as JSON.

pub mod definition;
mod error;

pub use error::FeatureError;
