//! `keel-stream` feeds the online feature store from a NATS JetStream
//! stream: every message is a Feast push body
//! (`{"push_source_name": …, "df": {…}, "to": …}`) and goes through the
//! same path as `POST /push` ([`OnlineFeatures::push`]) — the same
//! validation, the same window updates, the same push log.
//!
//! The consumer is a durable pull consumer with explicit acks, so the
//! stream remembers where Keel is across restarts and a message is only
//! acknowledged once its push has been written:
//!
//! * messages that arrive together (up to [`ConsumerConfig::batch`]) are
//!   grouped by push source and mode and pushed as one request — one
//!   durable online write per group rather than per message;
//! * a message that is not a valid push (bad JSON, an unknown source, a
//!   value of the wrong type) is terminated (`Term`: never redelivered)
//!   and counted, with the reason logged: redelivering it would fail the
//!   same way forever;
//! * a failure of Keel's own stores (Redis unreachable) naks the batch
//!   with a delay, so it is redelivered.
//!
//! The stream is created when absent, on the subjects `SUBJECT_PREFIX.>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use keel_features::FeatureError;
use keel_features::online::{OnlineFeatures, PushMode, PushRequest};

/// What the consumer fails with.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(
        "cannot connect to NATS at {url}: {message}; is nats-server running with JetStream (-js)?"
    )]
    Connect { url: String, message: String },
    #[error("JetStream: {0}")]
    JetStream(String),
}

/// Where to consume from.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `nats://HOST:PORT`.
    pub url: String,
    /// The stream's name (created when absent).
    pub stream: String,
    /// Subjects are `SUBJECT_PREFIX.>`; the rest of a subject is free
    /// (the body names the push source).
    pub subject_prefix: String,
    /// The durable consumer's name: Keel's position in the stream.
    pub durable: String,
    /// Messages handled together.
    pub batch: usize,
}

impl ConsumerConfig {
    /// The defaults for a URL: stream `KEEL_PUSH` on `keel.push.>`,
    /// consumer `keel-online`.
    pub fn new(url: impl Into<String>) -> Self {
        ConsumerConfig {
            url: url.into(),
            stream: "KEEL_PUSH".into(),
            subject_prefix: "keel.push".into(),
            durable: "keel-online".into(),
            batch: 512,
        }
    }
}

/// Counts since the consumer started.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub messages: AtomicU64,
    pub rows: AtomicU64,
    pub rejected: AtomicU64,
    pub retried: AtomicU64,
}

/// Consumes until `shutdown` resolves. Errors only when the stream cannot
/// be reached or set up; a bad message is rejected, not an error.
pub async fn run(
    online: OnlineFeatures,
    config: ConsumerConfig,
    stats: Arc<ConsumerStats>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StreamError> {
    let client = async_nats::connect(config.url.as_str())
        .await
        .map_err(|e| StreamError::Connect {
            url: config.url.clone(),
            message: e.to_string(),
        })?;
    let js = jetstream::new(client);
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            ..Default::default()
        })
        .await
        .map_err(|e| StreamError::JetStream(format!("stream {}: {e}", config.stream)))?;
    let consumer = stream
        .get_or_create_consumer(
            &config.durable,
            pull::Config {
                durable_name: Some(config.durable.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| StreamError::JetStream(format!("consumer {}: {e}", config.durable)))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| StreamError::JetStream(e.to_string()))?;
    let mut batches = messages.ready_chunks(config.batch.max(1));
    tracing::info!(url = %config.url, stream = %config.stream, "consuming pushes from NATS JetStream");
    tokio::pin!(shutdown);
    loop {
        let batch = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            next = batches.next() => match next {
                Some(b) => b,
                None => return Err(StreamError::JetStream("the message stream ended".into())),
            },
        };
        let mut ok = Vec::with_capacity(batch.len());
        for m in batch {
            match m {
                Ok(m) => ok.push(m),
                Err(e) => tracing::warn!(error = %e, "JetStream delivery"),
            }
        }
        handle(&online, ok, &stats).await;
    }
}

/// Pushes one batch of messages: grouped by (source, mode), in arrival
/// order within a group.
async fn handle(online: &OnlineFeatures, messages: Vec<jetstream::Message>, stats: &ConsumerStats) {
    push_all(online, &messages, stats).await;
    // Counted once settled, so a reader of the counts sees finished work.
    stats
        .messages
        .fetch_add(messages.len() as u64, Ordering::Relaxed);
}

async fn push_all(online: &OnlineFeatures, messages: &[jetstream::Message], stats: &ConsumerStats) {
    let mut groups: BTreeMap<(String, &'static str), Vec<usize>> = BTreeMap::new();
    let mut parsed: Vec<Option<PushRequest>> = Vec::with_capacity(messages.len());
    for m in messages {
        match serde_json::from_slice::<PushRequest>(&m.payload) {
            Ok(req) => parsed.push(Some(req)),
            Err(e) => {
                reject(m, &format!("not a push body: {e}"), stats).await;
                parsed.push(None);
            }
        }
    }
    for (i, req) in parsed.iter().enumerate() {
        let Some(req) = req else { continue };
        let mode = match req.to {
            PushMode::Online => "online",
            PushMode::Offline => "offline",
            PushMode::OnlineAndOffline => "online_and_offline",
        };
        groups
            .entry((req.push_source_name.clone(), mode))
            .or_default()
            .push(i);
    }
    for ((source, _), members) in groups {
        // Concatenate the members' columns; a member whose columns differ
        // from the first's is pushed on its own.
        let mut merged: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
        let mut in_merge = Vec::new();
        let mut alone = Vec::new();
        for &i in &members {
            let Some(req) = &parsed[i] else { continue };
            if merged.is_empty() || same_columns(&merged, &req.df) {
                for (k, v) in &req.df {
                    if let (Some(serde_json::Value::Array(dst)), serde_json::Value::Array(src)) =
                        (merged.get_mut(k), v)
                    {
                        dst.extend(src.iter().cloned());
                    } else {
                        merged.insert(k.clone(), v.clone());
                    }
                }
                in_merge.push(i);
            } else {
                alone.push(i);
            }
        }
        let to = parsed[members[0]]
            .as_ref()
            .map_or(PushMode::Online, |r| r.to);
        let merged_req = PushRequest {
            push_source_name: source.clone(),
            df: merged,
            to,
        };
        match online.push(&merged_req).await {
            Ok(report) => {
                stats.rows.fetch_add(report.rows as u64, Ordering::Relaxed);
                for &i in &in_merge {
                    ack(&messages[i], AckKind::Ack).await;
                }
            }
            // One bad message spoils a merged push: push the members one by
            // one so only the bad ones are rejected.
            Err(e) if in_merge.len() > 1 && is_client_error(&e) => alone.extend(in_merge),
            Err(e) => {
                settle(&messages[in_merge[0]], e, stats).await;
                for &i in &in_merge[1..] {
                    ack(&messages[i], AckKind::Nak(Some(Duration::from_secs(1)))).await;
                }
            }
        }
        for i in alone {
            let Some(req) = &parsed[i] else { continue };
            match online.push(req).await {
                Ok(report) => {
                    stats.rows.fetch_add(report.rows as u64, Ordering::Relaxed);
                    ack(&messages[i], AckKind::Ack).await;
                }
                Err(e) => settle(&messages[i], e, stats).await,
            }
        }
    }
}

fn same_columns(
    a: &serde_json::Map<String, serde_json::Value>,
    b: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    a.len() == b.len() && b.keys().all(|k| a.contains_key(k))
}

fn is_client_error(e: &FeatureError) -> bool {
    matches!(
        e,
        FeatureError::Invalid(_) | FeatureError::NotFound(_) | FeatureError::Definitions(_)
    )
}

/// A failed push: rejected for good when the message is at fault,
/// redelivered later when Keel is.
async fn settle(m: &jetstream::Message, e: FeatureError, stats: &ConsumerStats) {
    if is_client_error(&e) {
        reject(m, &e.to_string(), stats).await;
    } else {
        stats.retried.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, subject = %m.subject, "push failed; the message will be redelivered");
        ack(m, AckKind::Nak(Some(Duration::from_secs(1)))).await;
    }
}

async fn reject(m: &jetstream::Message, why: &str, stats: &ConsumerStats) {
    stats.rejected.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(subject = %m.subject, reason = %why, "rejected a pushed message (it will not be redelivered)");
    ack(m, AckKind::Term).await;
}

async fn ack(m: &jetstream::Message, kind: AckKind) {
    if let Err(e) = m.ack_with(kind).await {
        tracing::warn!(error = %e, "JetStream ack");
    }
}
