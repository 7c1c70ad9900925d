//! Settings from flags, then `KEEL_*` environment variables (clap reads
//! both), then `keel.toml`, then built-in defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use keel_store::Durability;
use serde::Deserialize;

use crate::Cli;

/// `keel.toml`; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub artifacts: Option<String>,
    /// `redb` (the default) or `redis://HOST:PORT/DB`.
    pub online_store: Option<String>,
    /// A NATS JetStream server whose pushes the server consumes.
    pub push_stream: Option<String>,
    pub durability: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub server: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    /// fsync the lifecycle log and the decision log at each group commit
    /// (default true).
    pub lifecycle_fsync: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub artifacts: Option<String>,
    /// The online feature store: `redb` (DATA_DIR/online.redb) or a Redis URL.
    pub online_store: String,
    /// `nats://HOST:PORT`: consume pushes from its JetStream stream.
    pub push_stream: Option<String>,
    pub durability: Durability,
    pub host: String,
    pub port: u16,
    /// A running server to talk to instead of the data directory.
    pub server: Option<String>,
    pub log_level: String,
    pub log_format: String,
    /// fsync the lifecycle and decision logs at each group commit (durability `disk`,
    /// the default for the log) or not (`process`).
    pub lifecycle_fsync: bool,
}

impl Settings {
    pub(crate) fn resolve(cli: &Cli) -> Result<Settings> {
        let file = match &cli.config {
            Some(path) => load(path)?,
            None if Path::new("keel.toml").exists() => load(Path::new("keel.toml"))?,
            None => FileConfig::default(),
        };
        let log_format = std::env::var("KEEL_LOG_FORMAT")
            .ok()
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        if log_format != "text" && log_format != "json" {
            anyhow::bail!("log_format must be 'text' or 'json', got '{log_format}'");
        }
        let durability_name = cli
            .durability
            .clone()
            .or(file.durability)
            .unwrap_or_else(|| "process".into());
        let durability = Durability::parse(&durability_name).ok_or_else(|| {
            anyhow::anyhow!("durability must be 'process' or 'disk', got '{durability_name}'")
        })?;
        let lifecycle_fsync = match std::env::var("KEEL_LIFECYCLE_FSYNC").ok().as_deref() {
            Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(other) => {
                anyhow::bail!("KEEL_LIFECYCLE_FSYNC must be true or false, got '{other}'")
            }
            None => file.lifecycle_fsync.unwrap_or(true),
        };
        Ok(Settings {
            lifecycle_fsync,
            durability,
            data_dir: cli
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("keel-data")),
            database_url: cli.database_url.clone().or(file.database_url),
            artifacts: cli.artifacts.clone().or(file.artifacts),
            online_store: cli
                .online_store
                .clone()
                .or(file.online_store)
                .unwrap_or_else(|| "redb".into()),
            push_stream: cli.push_stream.clone().or(file.push_stream),
            host: file.host.unwrap_or_else(|| "127.0.0.1".into()),
            port: file.port.unwrap_or(5000),
            server: std::env::var("KEEL_SERVER").ok().or(file.server),
            log_level: file
                .log_level
                .unwrap_or_else(|| "info,tower_http=warn,sqlx=warn".into()),
            log_format,
        })
    }
}

fn load(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}
