//! Integration tests of `keel-features`: feature repos on disk.

mod fuzz;
mod repo;
mod store;
