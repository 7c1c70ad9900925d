//! Keel's built-in trainers.
