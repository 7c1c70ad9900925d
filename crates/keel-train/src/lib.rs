//! Keel's training infrastructure.
