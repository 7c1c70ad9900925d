//! Integration tests of `keel-features`: feature repos on disk.

mod fuzz;
mod online;
mod repo;
mod store;
