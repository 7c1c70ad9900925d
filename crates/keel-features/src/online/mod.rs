//! The online feature store: the latest values of every online feature
//! view per entity, and the window state of stream feature views, in an
//! [`keel_online::OnlineStore`], written by materialization, pushes and
//! direct writes, and read by the feature server.
//!
//! * **Tables.** A feature view's rows live in the store table
//!   `fv:VIEW` keyed by the entity key ([`keel_online::codec`]), each
//!   value its named features stamped with the row's event time; a stream
//!   feature view's window state lives in `sfv:VIEW`. Watermarks and the
//!   kinds of each view's join keys live in `keel_meta`.
//! * **Newest wins.** A row never replaces one of a later event time,
//!   whatever order writes arrive in (Feast's online store lets an older
//!   event overwrite a newer one).
//! * **ttl.** A read answers `OUTSIDE_MAX_AGE` with a null value for a row
//!   older than its view's ttl at the time of the read (Feast's online
//!   read ignores the ttl); a ttl of 0 never expires.
//! * **Streams.** A pushed event updates its stream views' windows
//!   ([`window`]) and, unless pushed online only, is appended to the
//!   source's push log, which every offline read of the source includes —
//!   so a training set computes the same windows from the same events.

pub mod convert;
mod materialize;
mod serve;
pub mod skew;
pub mod window;
#[cfg(test)]
mod window_prop_tests;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use keel_online::codec::KeyPart;
use keel_online::{Durability, Entry, SharedStore, TableKeys};
use serde::{Deserialize, Serialize};

use crate::FeatureError;
use crate::definition::{DataType, Field, Repo};
use crate::store::{Applied, FeatureStore};

pub use materialize::{MaterializeReport, MaterializeRequest, Progress, ViewMaterialized};
pub use serve::{OnlineRequest, OnlineResponse};
pub use skew::{SkewReport, render_html};
pub use write::{PushMode, PushRequest, WriteReport, WriteRequest};

type Result<T> = std::result::Result<T, FeatureError>;

/// The table of store-wide records: watermarks and key kinds.
const META: &str = "keel_meta";

/// How often a server looks for a newly applied repo.
const REFRESH: Duration = Duration::from_secs(1);

/// The online side of the feature store. Cheap to clone.
#[derive(Clone)]
pub struct OnlineFeatures {
    inner: Arc<Inner>,
}

struct Inner {
    features: FeatureStore,
    store: SharedStore,
    compiled: RwLock<Option<(Instant, Arc<Compiled>)>>,
    /// Serialises read-modify-write of window state.
    windows: tokio::sync::Mutex<()>,
    /// Served requests not yet flushed to the serving log.
    serving_log: skew::ServingLog,
}

/// A kind of online view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Batch,
    Stream,
}

/// What serving and writing need of one feature view or stream feature
/// view, compiled once per applied repo version.
#[derive(Debug, Clone)]
pub(crate) struct OnlineView {
    pub name: String,
    pub kind: Kind,
    pub table: String,
    pub source: String,
    pub join_keys: Vec<String>,
    pub timestamp_field: String,
    pub created_field: Option<String>,
    /// Batch views: the features. Stream views: the aggregated columns'
    /// names are in `aggregations`, the features here are their outputs
    /// (dtype of the column for min/max/last; see `window`).
    pub features: Vec<Field>,
    /// Stream views: (source column, window) per feature, in order.
    pub aggregations: Vec<(String, window::WindowSpec)>,
    /// Zero: never expires.
    pub ttl_us: i64,
    pub online: bool,
    /// Batch views with `sql` are materialized but not written by pushes.
    pub has_sql: bool,
}

/// The applied repo, compiled for the online path.
pub(crate) struct Compiled {
    pub applied: Applied,
    pub views: HashMap<String, OnlineView>,
    /// Recorded kinds of each view's join keys (`integer`/`string`).
    pub key_kinds: HashMap<String, Vec<String>>,
    /// Sources' Arrow schemas, read once per applied version.
    pub schemas: std::sync::Mutex<HashMap<String, datafusion::arrow::datatypes::SchemaRef>>,
}

impl Compiled {
    pub fn repo(&self) -> &Repo {
        &self.applied.repo
    }

    pub fn view(&self, name: &str) -> Option<&OnlineView> {
        self.views.get(name)
    }
}

/// A store-wide record kept in [`META`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyKinds {
    kinds: Vec<String>,
}

fn compile(applied: Applied, key_kinds: HashMap<String, Vec<String>>) -> Compiled {
    let repo = &applied.repo;
    let mut views = HashMap::new();
    let join_keys = |entities: &[String]| -> Vec<String> {
        entities
            .iter()
            .filter_map(|e| repo.entity(e))
            .flat_map(|e| e.join_keys.iter().cloned())
            .collect()
    };
    for v in &repo.feature_views {
        let Some(source) = repo.source(&v.source) else {
            continue;
        };
        views.insert(
            v.name.clone(),
            OnlineView {
                name: v.name.clone(),
                kind: Kind::Batch,
                table: format!("fv:{}", v.name),
                source: source.name.clone(),
                join_keys: join_keys(&v.entities),
                timestamp_field: source.timestamp_field.clone(),
                created_field: source.created_timestamp_field.clone(),
                features: v.features.clone(),
                aggregations: Vec::new(),
                ttl_us: ttl_us(v.ttl.seconds()),
                online: v.online,
                has_sql: v.sql.is_some(),
            },
        );
    }
    for v in &repo.stream_feature_views {
        let Some(source) = repo.source(&v.source) else {
            continue;
        };
        views.insert(
            v.name.clone(),
            OnlineView {
                name: v.name.clone(),
                kind: Kind::Stream,
                table: format!("sfv:{}", v.name),
                source: source.name.clone(),
                join_keys: join_keys(&v.entities),
                timestamp_field: v
                    .timestamp_field
                    .clone()
                    .unwrap_or_else(|| source.timestamp_field.clone()),
                created_field: None,
                features: v
                    .aggregations
                    .iter()
                    .map(|a| Field {
                        name: a.name.clone(),
                        dtype: DataType::Float64,
                    })
                    .collect(),
                aggregations: v
                    .aggregations
                    .iter()
                    .map(|a| (a.column.clone(), window::WindowSpec::new(a)))
                    .collect(),
                ttl_us: ttl_us(v.ttl.seconds()),
                online: v.online,
                has_sql: false,
            },
        );
    }
    Compiled {
        applied,
        views,
        key_kinds,
        schemas: std::sync::Mutex::new(HashMap::new()),
    }
}

fn ttl_us(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of microseconds since the epoch.
pub fn rfc3339_micros(micros: i64) -> String {
    serve::rfc3339(micros)
}

/// Microseconds since the epoch, now.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl OnlineFeatures {
    pub fn new(features: FeatureStore, store: SharedStore) -> Self {
        OnlineFeatures {
            inner: Arc::new(Inner {
                features,
                store,
                compiled: RwLock::new(None),
                windows: tokio::sync::Mutex::new(()),
                serving_log: skew::ServingLog::default(),
            }),
        }
    }

    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    pub fn features(&self) -> &FeatureStore {
        &self.inner.features
    }

    /// Forgets the compiled repo, so the next call reads the applied one
    /// (after an apply through this process).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.inner.compiled.write() {
            *c = None;
        }
    }

    /// The applied repo, compiled; re-read when another process may have
    /// applied a new version (at most once a second).
    pub(crate) async fn compiled(&self) -> Result<Arc<Compiled>> {
        let cached = self
            .inner
            .compiled
            .read()
            .ok()
            .and_then(|c| c.as_ref().map(|(at, c)| (*at, c.clone())));
        if let Some((at, c)) = &cached
            && at.elapsed() < REFRESH
        {
            return Ok(c.clone());
        }
        let Some(applied) = self.inner.features.current().await? else {
            return Err(FeatureError::NotFound(
                "no feature repo is applied; run `keel features apply REPO_DIR` first".into(),
            ));
        };
        let compiled = match cached {
            Some((_, c)) if c.applied.version == applied.version => {
                // Same repo; key kinds may have been recorded since.
                let kinds = self.read_key_kinds(c.views.keys()).await?;
                if kinds == c.key_kinds {
                    c
                } else {
                    Arc::new(compile(applied, kinds))
                }
            }
            _ => {
                let names: Vec<String> = applied
                    .repo
                    .feature_views
                    .iter()
                    .map(|v| v.name.clone())
                    .chain(
                        applied
                            .repo
                            .stream_feature_views
                            .iter()
                            .map(|v| v.name.clone()),
                    )
                    .collect();
                let kinds = self.read_key_kinds(names.iter()).await?;
                Arc::new(compile(applied, kinds))
            }
        };
        if let Ok(mut c) = self.inner.compiled.write() {
            *c = Some((Instant::now(), compiled.clone()));
        }
        Ok(compiled)
    }

    async fn read_key_kinds<'a>(
        &self,
        views: impl Iterator<Item = &'a String>,
    ) -> Result<HashMap<String, Vec<String>>> {
        let names: Vec<&String> = views.collect();
        let keys: Vec<Vec<u8>> = names
            .iter()
            .map(|n| format!("keys/{n}").into_bytes())
            .collect();
        let got = self
            .inner
            .store
            .read(&[TableKeys {
                table: META,
                keys: &keys,
            }])
            .await
            .map_err(online_error)?;
        let mut out = HashMap::new();
        for (name, stored) in names.into_iter().zip(got.into_iter().flatten()) {
            if let Some(s) = stored {
                let k: KeyKinds = serde_json::from_slice(&s.value)
                    .map_err(|e| FeatureError::Corrupt(format!("key kinds of {name}: {e}")))?;
                out.insert(name.clone(), k.kinds);
            }
        }
        Ok(out)
    }

    /// Refuses keys whose kinds differ from the ones the view's rows were
    /// first written with (or, on a first write, from the first row's).
    /// `keys` yields each row's number and key; `field(key, row)` names
    /// the offending value in a message.
    pub(crate) fn check_key_kinds<'k>(
        compiled: &Compiled,
        view: &OnlineView,
        keys: impl Iterator<Item = (usize, &'k [KeyPart])>,
        field: impl Fn(&str, usize) -> String,
    ) -> Result<Option<Vec<String>>> {
        let mut want: Option<Vec<String>> = compiled.key_kinds.get(&view.name).cloned();
        for (row, parts) in keys {
            let kinds: Vec<String> = parts
                .iter()
                .map(|p| convert::key_kind(p).to_owned())
                .collect();
            match &want {
                None => want = Some(kinds),
                Some(w) if *w != kinds => {
                    let i = w.iter().zip(&kinds).position(|(a, b)| a != b).unwrap_or(0);
                    let key = view.join_keys.get(i).map_or("?", String::as_str);
                    return Err(FeatureError::Invalid(format!(
                        "{}: the join key `{key}` of feature view `{}` holds {}s, not {}s",
                        field(key, row),
                        view.name,
                        w.get(i).map_or("?", String::as_str),
                        kinds.get(i).map_or("?", String::as_str)
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(want)
    }

    /// Records the kinds of a view's join keys the first time rows are
    /// written, so reads can refuse a key of the wrong kind.
    pub(crate) async fn record_key_kinds(
        &self,
        compiled: &Compiled,
        view: &OnlineView,
        kinds: Vec<String>,
    ) -> Result<()> {
        if compiled.key_kinds.get(&view.name) == Some(&kinds) {
            return Ok(());
        }
        let value = serde_json::to_vec(&KeyKinds { kinds })
            .map_err(|e| FeatureError::Corrupt(e.to_string()))?;
        self.inner
            .store
            .put(
                META,
                vec![Entry {
                    key: format!("keys/{}", view.name).into_bytes(),
                    event_ts: now_micros(),
                    value,
                }],
                Durability::Durable,
            )
            .await
            .map_err(online_error)?;
        self.invalidate();
        Ok(())
    }

    /// The watermark of a view: the end of its last materialization.
    pub async fn watermark(&self, view: &str) -> Result<Option<i64>> {
        let keys = [format!("watermark/{view}").into_bytes()];
        let got = self
            .inner
            .store
            .read(&[TableKeys {
                table: META,
                keys: &keys,
            }])
            .await
            .map_err(online_error)?;
        Ok(got
            .into_iter()
            .flatten()
            .next()
            .flatten()
            .map(|s| s.event_ts))
    }

    async fn set_watermark(&self, view: &str, end: i64) -> Result<()> {
        self.inner
            .store
            .put(
                META,
                vec![Entry {
                    key: format!("watermark/{view}").into_bytes(),
                    event_ts: end,
                    value: Vec::new(),
                }],
                // One fsync makes the materialization's buffered writes
                // durable together with its watermark.
                Durability::Durable,
            )
            .await
            .map_err(online_error)
    }
}

pub(crate) fn online_error(e: keel_online::OnlineError) -> FeatureError {
    match e {
        keel_online::OnlineError::Invalid(m) => FeatureError::Invalid(m),
        other => FeatureError::Online(other.to_string()),
    }
}

/// The view's name, if it is a batch or stream view of the repo; a
/// "did you mean" message otherwise.
pub(crate) fn unknown_view(repo: &Repo, name: &str, field: &str) -> FeatureError {
    let names: Vec<&str> = repo.views().map(|v| v.name()).collect();
    crate::definition::suggest::not_defined(field, "feature view", name, &names)
}
