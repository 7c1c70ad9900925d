//! The artifact store: files of runs and models under one root, on a local
//! directory by default or on any `object_store` backend (`s3://`, `gs://`,
//! `az://`, `file://`) by URL. Content is streamed in both directions, never
//! held whole in memory.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

/// Largest upload sent as one request; larger ones go up in parts of this
/// size (S3 needs parts of at least 5 MiB).
pub const SINGLE_PUT_MAX: usize = 8 * 1024 * 1024;

/// Artifact store failures; each names the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(
        "invalid artifact path '{path}': {reason}; use a relative path like 'model/weights.bin'"
    )]
    InvalidPath { path: String, reason: &'static str },
    #[error("artifact '{0}' does not exist")]
    NotFound(String),
    #[error("unsupported artifact store URL '{url}': {reason}")]
    UnsupportedUrl { url: String, reason: String },
    #[error("artifact store error on '{path}': {source}")]
    Backend {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("artifact store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// Path relative to the listed directory's root (the store-relative path
    /// minus the listing prefix is left to the caller).
    pub path: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

/// What a file's content was: its size and SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub size: u64,
    pub sha256: String,
}

/// Bytes as lowercase hex (how Keel writes digests).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A handle to the artifact store; cheap to clone.
#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// For the local backend, the canonical root: paths must resolve inside
    /// it even through symlinks.
    local_root: Option<PathBuf>,
    url: String,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("url", &self.url)
            .finish()
    }
}

impl ArtifactStore {
    /// A store rooted at a local directory, created if needed.
    pub fn local(dir: &FsPath) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(dir)?;
        let root = dir.canonicalize()?;
        let store =
            LocalFileSystem::new_with_prefix(&root).map_err(|e| ArtifactError::Backend {
                path: root.display().to_string(),
                source: e,
            })?;
        Ok(Self {
            store: Arc::new(store),
            url: format!("file://{}", root.display()),
            local_root: Some(root),
        })
    }

    /// A store from a URL: a plain path or `file://` is local; `s3://bucket/prefix`,
    /// `gs://…`, `az://…` use `object_store` with credentials from the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, …).
    pub fn open(url: &str) -> Result<Self, ArtifactError> {
        if let Some(path) = url.strip_prefix("file://") {
            return Self::local(FsPath::new(path));
        }
        if !url.contains("://") {
            return Self::local(FsPath::new(url));
        }
        let parsed = url::Url::parse(url).map_err(|e| ArtifactError::UnsupportedUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_")
            })
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let (store, prefix) = object_store::parse_url_opts(&parsed, env).map_err(|e| {
            ArtifactError::UnsupportedUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(Self {
            store,
            local_root: None,
            url: url.to_owned(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `object_store` backend under the store's root, for engines that
    /// read artifacts themselves (the SQL engine reads dataset files
    /// through it). Paths given to it must come from [`Self::resolve`].
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Validates a user-given relative path and turns it into a store path.
    /// Rejects `..`, absolute paths, empty or `.` segments, backslashes and
    /// control characters, and (locally) anything whose existing part
    /// resolves outside the root through a symlink.
    pub fn resolve(&self, rel: &str) -> Result<Path, ArtifactError> {
        let invalid = |reason| ArtifactError::InvalidPath {
            path: rel.to_owned(),
            reason,
        };
        if rel.starts_with('/') {
            return Err(invalid("absolute paths are not allowed"));
        }
        if rel.contains('\\') {
            return Err(invalid("backslashes are not allowed"));
        }
        if rel.chars().any(|c| c.is_control()) {
            return Err(invalid("control characters are not allowed"));
        }
        let mut parts = Vec::new();
        for seg in rel.split('/') {
            match seg {
                "" => continue,
                "." => continue,
                ".." => return Err(invalid("'..' segments are not allowed")),
                s => parts.push(s),
            }
        }
        let path = Path::from_iter(parts.iter().copied());
        if let Some(root) = &self.local_root {
            let mut probe = root.clone();
            for seg in &parts {
                probe.push(seg);
                match std::fs::symlink_metadata(&probe) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        let target = probe.canonicalize()?;
                        if !target.starts_with(root) {
                            return Err(invalid(
                                "it leads outside the artifact root through a symlink",
                            ));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        Ok(path)
    }

    /// Writes a stream to `rel`, replacing what was there. The object only
    /// becomes visible once the whole stream arrived. Content up to
    /// [`SINGLE_PUT_MAX`] goes up in one request; larger content as a
    /// multipart upload, so memory stays bounded whatever the size.
    pub async fn put_stream<S, E>(&self, rel: &str, mut body: S) -> Result<u64, ArtifactError>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let path = self.resolve(rel)?;
        let backend = |source| ArtifactError::Backend {
            path: rel.to_owned(),
            source,
        };
        let mut head: Vec<Bytes> = Vec::new();
        let mut buffered = 0usize;
        let mut exhausted = true;
        while let Some(chunk) = body.next().await {
            let bytes = chunk.map_err(|e| ArtifactError::Io(std::io::Error::other(e)))?;
            buffered += bytes.len();
            head.push(bytes);
            if buffered > SINGLE_PUT_MAX {
                exhausted = false;
                break;
            }
        }
        if exhausted {
            let payload: object_store::PutPayload = head.into_iter().collect();
            self.store.put(&path, payload).await.map_err(backend)?;
            return Ok(buffered as u64);
        }
        let upload = self.store.put_multipart(&path).await.map_err(backend)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, SINGLE_PUT_MAX);
        for bytes in head {
            writer.write(&bytes);
        }
        let mut total = buffered as u64;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    total += bytes.len() as u64;
                    writer.wait_for_capacity(4).await.map_err(backend)?;
                    writer.write(&bytes);
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(ArtifactError::Io(std::io::Error::other(e)));
                }
            }
        }
        writer.finish().await.map_err(backend)?;
        Ok(total)
    }

    /// Streams the content of `rel` and its size.
    pub async fn get_stream(
        &self,
        rel: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, ArtifactError>>), ArtifactError> {
        let path = self.resolve(rel)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| map_missing(rel, e))?;
        let size = result.meta.size;
        let rel_owned = rel.to_owned();
        let stream = result
            .into_stream()
            .map_err(move |source| ArtifactError::Backend {
                path: rel_owned.clone(),
                source,
            })
            .boxed();
        Ok((size, stream))
    }

    /// Lists the direct children of directory `rel` ("" for the root).
    /// Paths in the answer are relative to the store root.
    pub async fn list(&self, rel: &str) -> Result<Vec<ArtifactEntry>, ArtifactError> {
        let path = self.resolve(rel)?;
        let prefix = if path.as_ref().is_empty() {
            None
        } else {
            Some(&path)
        };
        let listing = match self.store.list_with_delimiter(prefix).await {
            Ok(l) => l,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(source) => {
                return Err(ArtifactError::Backend {
                    path: rel.to_owned(),
                    source,
                });
            }
        };
        let mut entries: Vec<ArtifactEntry> = listing
            .common_prefixes
            .into_iter()
            .map(|p| ArtifactEntry {
                path: p.to_string(),
                is_dir: true,
                size: None,
            })
            .chain(listing.objects.into_iter().map(|o| ArtifactEntry {
                path: o.location.to_string(),
                is_dir: false,
                size: Some(o.size),
            }))
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// Every file below directory `rel`, at any depth, sorted by path.
    /// Paths in the answer are relative to the store root.
    pub async fn list_files(&self, rel: &str) -> Result<Vec<ArtifactEntry>, ArtifactError> {
        let path = self.resolve(rel)?;
        let prefix = (!path.as_ref().is_empty()).then_some(&path);
        let mut entries = Vec::new();
        let mut listing = self.store.list(prefix);
        while let Some(item) = listing.next().await {
            match item {
                Ok(o) => entries.push(ArtifactEntry {
                    path: o.location.to_string(),
                    is_dir: false,
                    size: Some(o.size),
                }),
                Err(object_store::Error::NotFound { .. }) => break,
                Err(source) => {
                    return Err(ArtifactError::Backend {
                        path: rel.to_owned(),
                        source,
                    });
                }
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// The size and SHA-256 of `rel`'s content, read as a stream.
    pub async fn digest(&self, rel: &str) -> Result<FileDigest, ArtifactError> {
        use sha2::Digest;
        let (_, mut stream) = self.get_stream(rel).await?;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(FileDigest {
            size,
            sha256: hex(&hasher.finalize()),
        })
    }

    /// Moves the file `from` to `to`, replacing what was there (a rename
    /// on a local disk; a copy then a delete on an object store).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), ArtifactError> {
        let src = self.resolve(from)?;
        let dst = self.resolve(to)?;
        if let Some(root) = &self.local_root {
            // LocalFileSystem renames into existing folders only.
            let target = root.join(dst.as_ref());
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
        }
        self.store
            .rename(&src, &dst)
            .await
            .map_err(|e| map_missing(from, e))
    }

    /// Deletes `rel` and, if it is a directory, everything below it.
    pub async fn delete(&self, rel: &str) -> Result<(), ArtifactError> {
        let path = self.resolve(rel)?;
        let backend = |source| ArtifactError::Backend {
            path: rel.to_owned(),
            source,
        };
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) if self.local_root.is_none() => return Err(backend(e)),
            Err(_) => {}
        }
        // One listing stream into batched deletes (S3 deletes up to 1,000
        // keys per request).
        let below = self.store.list(Some(&path)).map_ok(|m| m.location).boxed();
        let mut deleted = self.store.delete_stream(below);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        if let Some(root) = &self.local_root {
            // Empty directories are invisible to object stores; tidy them
            // locally so a deleted run leaves nothing behind.
            let dir = root.join(path.as_ref());
            if dir.is_dir() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(())
    }
}

fn map_missing(rel: &str, e: object_store::Error) -> ArtifactError {
    match e {
        object_store::Error::NotFound { .. } => ArtifactError::NotFound(rel.to_owned()),
        source => ArtifactError::Backend {
            path: rel.to_owned(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_list_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let chunks = futures::stream::iter(vec![
            Ok::<_, std::io::Error>(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ]);
        assert_eq!(
            store
                .put_stream("1/run/artifacts/a/b.txt", chunks)
                .await
                .unwrap(),
            11
        );
        let one = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(b"c"))]);
        store
            .put_stream("1/run/artifacts/c.txt", one)
            .await
            .unwrap();
        let (size, body) = store.get_stream("1/run/artifacts/a/b.txt").await.unwrap();
        let body: Vec<Bytes> = body.try_collect().await.unwrap();
        assert_eq!(size, 11);
        assert_eq!(body.concat(), b"hello world");
        let listing = store.list("1/run/artifacts").await.unwrap();
        assert_eq!(
            listing,
            vec![
                ArtifactEntry {
                    path: "1/run/artifacts/a".into(),
                    is_dir: true,
                    size: None
                },
                ArtifactEntry {
                    path: "1/run/artifacts/c.txt".into(),
                    is_dir: false,
                    size: Some(1)
                },
            ]
        );
        let files = store.list_files("1/run").await.unwrap();
        let paths: Vec<&str> = files.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["1/run/artifacts/a/b.txt", "1/run/artifacts/c.txt"]);
        assert!(store.list_files("9/none").await.unwrap().is_empty());
        // `printf 'hello world' | sha256sum`
        assert_eq!(
            store.digest("1/run/artifacts/a/b.txt").await.unwrap(),
            FileDigest {
                size: 11,
                sha256: "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9".into()
            }
        );
        store.delete("1/run").await.unwrap();
        assert!(store.list("1/run/artifacts").await.unwrap().is_empty());
        assert!(matches!(
            store.get_stream("1/run/artifacts/c.txt").await,
            Err(ArtifactError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn large_uploads_stream_in_parts_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        // 20 MiB in 1 MiB chunks: past the single-request limit.
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..20u8)
            .map(|i| Ok(Bytes::from(vec![i; 1024 * 1024])))
            .collect();
        let n = store
            .put_stream("big/blob.bin", futures::stream::iter(chunks))
            .await
            .unwrap();
        assert_eq!(n, 20 * 1024 * 1024);
        let (size, body) = store.get_stream("big/blob.bin").await.unwrap();
        assert_eq!(size, n);
        let bytes: Vec<Bytes> = body.try_collect().await.unwrap();
        let all = bytes.concat();
        assert_eq!(all.len(), 20 * 1024 * 1024);
        assert!(
            all.chunks(1024 * 1024)
                .enumerate()
                .all(|(i, c)| c.iter().all(|b| *b == i as u8))
        );
    }

    #[test]
    fn traversal_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        for bad in ["../x", "a/../../x", "/etc/passwd", "a\\b", "a/\u{0}b"] {
            assert!(
                matches!(store.resolve(bad), Err(ArtifactError::InvalidPath { .. })),
                "{bad} accepted"
            );
        }
        assert_eq!(store.resolve("a/./b//c").unwrap().as_ref(), "a/b/c");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        assert!(matches!(
            store.resolve("escape/secret"),
            Err(ArtifactError::InvalidPath { .. })
        ));
    }
}
