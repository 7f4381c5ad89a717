//! The content-addressed blob store: checkpoints, deltas, outer-optimizer
//! states, manifests, job specs and owners' data, named by the keccak256 of
//! their bytes.
//!
//! Two places can hold them ([`BlobLocation`]):
//!
//! - **a local directory**: `funetun_core`'s [`BlobDir`], the same checked,
//!   atomic, write-once directory participants cache blobs in
//!   (`ab/abcdef….bin`, written through `tmp/`, so a blob is never
//!   half-visible). The orchestrator is its only writer, so a crash's stray
//!   temporary files are removed when it opens;
//! - **an S3-compatible bucket** (`s3://bucket/prefix`, through
//!   `object_store`): the same names under the prefix. A streamed upload is
//!   an S3 multipart upload of 8 MiB parts, hashed as it goes and completed
//!   only when the bytes hash to the blob's name (otherwise aborted), so a
//!   wrong or half-sent blob is never visible and memory stays bounded
//!   whatever the blob's size.
//!
//! Either way a blob is checked on every read: bytes that do not hash to
//! their name are refused ([`BlobStore::get`] fails, a download breaks off
//! before its last byte), never used or served as if they were the blob.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{B256, Keccak256};
use axum::http::Method;
use bytes::Bytes;
use funetun_core::blobs::{BlobDir, BlobWriter};
use funetun_core::keccak256;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer as _;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStoreExt as _, PutPayload, RetryConfig, WriteMultipart,
};

use crate::error::{Error, Result};

/// Parts of a streamed S3 upload. S3 wants ≥ 5 MiB for all but the last.
const PART_BYTES: usize = 8 << 20;
/// Parts of one upload in flight at once (memory: `PART_BYTES` × this).
const PARTS_IN_FLIGHT: usize = 4;
/// How long a presigned download URL stays valid. S3 checks it when the
/// download starts, so a slow download of a large blob is not cut off.
const PRESIGNED_FOR: Duration = Duration::from_secs(600);

/// Where the orchestrator keeps its blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobLocation {
    /// A local directory (created if missing).
    Dir(PathBuf),
    /// A bucket of an S3-compatible server.
    S3(S3Location),
}

/// A bucket and prefix, and how to reach them. Anything not set here comes
/// from the standard environment variables (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, …) as every S3 tool reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket (it must exist).
    pub bucket: String,
    /// Key prefix under which blobs are stored (may be empty).
    pub prefix: String,
    /// The server's URL, e.g. `http://127.0.0.1:3900`; AWS when unset.
    pub endpoint: Option<String>,
    /// The region the server expects.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The key's secret. The command line reads it from
    /// `AWS_SECRET_ACCESS_KEY` only, so it never shows in a process listing.
    pub secret_access_key: Option<Secret>,
    /// Answer downloads with a redirect to a presigned URL, so blob bytes
    /// flow from the bucket to participants without passing through the
    /// orchestrator. Participants check the hash either way.
    pub redirect: bool,
}

/// A secret that `Debug` does not print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl BlobLocation {
    /// `s3://bucket[/prefix]` for a bucket, anything else is a directory.
    pub fn parse(raw: &str) -> Result<Self> {
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Config(format!(
                    "blob location `{raw}` names no bucket; use s3://bucket/prefix"
                )));
            }
            return Ok(BlobLocation::S3(S3Location {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                endpoint: None,
                region: None,
                access_key_id: None,
                secret_access_key: None,
                redirect: false,
            }));
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(Error::Config(format!(
                "blob location `{raw}`: `{scheme}://` is not a blob store this orchestrator knows; \
                 use a directory or s3://bucket/prefix (any S3-compatible server, docs/deploy.md)"
            )));
        }
        Ok(BlobLocation::Dir(PathBuf::from(raw)))
    }
}

impl S3Location {
    /// The same bucket, in a new folder `prefix/TAG-<pid>-<n>-<nanos>` of
    /// its own (a demo run, a test, a bench).
    pub fn fresh_folder(mut self, tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let folder = format!("{tag}-{}-{n}-{nanos}", std::process::id());
        self.prefix = match self.prefix.as_str() {
            "" => folder,
            prefix => format!("{prefix}/{folder}"),
        };
        self
    }
}

impl fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobLocation::Dir(dir) => write!(f, "{}", dir.display()),
            BlobLocation::S3(s3) => {
                write!(f, "s3://{}/{}", s3.bucket, s3.prefix)?;
                if let Some(endpoint) = &s3.endpoint {
                    write!(f, " at {endpoint}")?;
                }
                Ok(())
            }
        }
    }
}

impl BlobLocation {
    /// The location as `--blobs` takes it: the directory, or
    /// `s3://bucket/prefix` (the endpoint and keys travel apart).
    pub fn url(&self) -> String {
        match self {
            BlobLocation::Dir(dir) => dir.display().to_string(),
            BlobLocation::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
    }
}

impl From<PathBuf> for BlobLocation {
    fn from(dir: PathBuf) -> Self {
        BlobLocation::Dir(dir)
    }
}

/// What a download is answered with.
pub enum Download {
    /// The blob's bytes, checked against its name as they pass: a damaged
    /// blob's stream ends in an error before its last chunk.
    Bytes {
        /// Its length in bytes.
        len: u64,
        /// Its bytes.
        stream: BoxStream<'static, Result<Bytes>>,
    },
    /// A presigned URL of the bucket to redirect the client to.
    Redirect(String),
}

/// Why a streamed upload stored nothing.
#[derive(Debug)]
pub enum UploadError {
    /// The body grew past the limit.
    TooLarge,
    /// The body hashed to another name.
    HashMismatch(B256),
    /// The body broke off.
    Body(String),
    /// The store failed.
    Store(Error),
}

impl From<Error> for UploadError {
    fn from(e: Error) -> Self {
        UploadError::Store(e)
    }
}

/// A store of immutable blobs named by their keccak256.
pub struct BlobStore {
    backend: Backend,
}

enum Backend {
    Local(Arc<BlobDir>),
    S3 {
        store: AmazonS3,
        location: S3Location,
    },
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("location", &self.describe())
            .finish()
    }
}

fn local_error(e: funetun_core::Error) -> Error {
    match e {
        funetun_core::Error::BlobHash { .. } => Error::Inconsistent(e.to_string()),
        funetun_core::Error::Io { source, .. } => Error::Io(source),
        other => Error::Tensors(other),
    }
}

impl BlobStore {
    /// Opens the store: creates a directory and clears its leftover
    /// temporary files, or sets up the bucket's client and checks that the
    /// bucket answers (so a wrong endpoint or key fails at start, not at
    /// the first round).
    pub async fn open(location: &BlobLocation) -> Result<Self> {
        let backend = match location {
            BlobLocation::Dir(root) => {
                let root = root.clone();
                let dir = tokio::task::spawn_blocking(move || -> Result<BlobDir> {
                    let dir = BlobDir::open(root).map_err(local_error)?;
                    dir.clear_temporaries().map_err(local_error)?;
                    Ok(dir)
                })
                .await??;
                Backend::Local(Arc::new(dir))
            }
            BlobLocation::S3(s3) => Backend::S3 {
                store: s3_client(s3)?,
                location: s3.clone(),
            },
        };
        let store = BlobStore { backend };
        if let Backend::S3 {
            store: s3,
            location,
        } = &store.backend
        {
            // A missing key is the expected answer; anything else is not.
            match s3.head(&store.key(B256::ZERO)).await {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(Error::Config(format!(
                        "cannot use bucket `{}`{}: {e}. Check the bucket exists, the endpoint \
                         (--s3-endpoint or AWS_ENDPOINT_URL), the region (AWS_REGION) and the \
                         key (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
                        location.bucket,
                        location
                            .endpoint
                            .as_ref()
                            .map(|e| format!(" at {e}"))
                            .unwrap_or_default(),
                    )));
                }
            }
        }
        Ok(store)
    }

    /// Where the blobs are, for logs.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local(dir) => dir.root().display().to_string(),
            Backend::S3 { location, .. } => BlobLocation::S3(location.clone()).to_string(),
        }
    }

    /// The store's directory, when it is a local one.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Local(dir) => Some(dir.root()),
            Backend::S3 { .. } => None,
        }
    }

    /// The object key of blob `hash`: `prefix/ab/abcdef….bin`.
    fn key(&self, hash: B256) -> ObjectPath {
        let hex = hex::encode(hash);
        let name = format!("{}/{hex}.bin", &hex[..2]);
        match &self.backend {
            Backend::S3 { location, .. } if !location.prefix.is_empty() => {
                ObjectPath::from(format!("{}/{name}", location.prefix))
            }
            _ => ObjectPath::from(name),
        }
    }

    /// Stores `bytes` under `hash`, which must be their keccak256. Storing a
    /// blob that is already there writes nothing. Returns whether it was new.
    pub async fn put(&self, hash: B256, bytes: Bytes) -> Result<bool> {
        match &self.backend {
            Backend::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || dir.put(hash, &bytes).map_err(local_error))
                    .await?
            }
            Backend::S3 { store, .. } => {
                let actual = keccak256(&bytes);
                if actual != hash {
                    return Err(Error::Inconsistent(format!(
                        "blob named {hash} hashes to {actual}; nothing was stored"
                    )));
                }
                if self.contains(hash).await? {
                    return Ok(false);
                }
                store
                    .put(&self.key(hash), PutPayload::from_bytes(bytes))
                    .await?;
                Ok(true)
            }
        }
    }

    /// The blob, if stored. Bytes that do not hash to `hash` are refused
    /// with an error (a local file is also removed, as a cache would).
    pub async fn get(&self, hash: B256) -> Result<Option<Bytes>> {
        match &self.backend {
            Backend::Local(dir) => {
                let dir = dir.clone();
                let got = tokio::task::spawn_blocking(move || dir.get(hash)).await?;
                Ok(got.map_err(local_error)?.map(Bytes::from))
            }
            Backend::S3 { store, .. } => {
                let bytes = match store.get(&self.key(hash)).await {
                    Ok(got) => got.bytes().await?,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let actual = keccak256(&bytes);
                if actual != hash {
                    return Err(self.damaged(hash, actual));
                }
                Ok(Some(bytes))
            }
        }
    }

    /// [`BlobStore::get`] from a blocking task (data set and frozen-model
    /// loading run on one).
    pub fn get_blocking(&self, hash: B256) -> Result<Option<Bytes>> {
        match &self.backend {
            Backend::Local(dir) => Ok(dir.get(hash).map_err(local_error)?.map(Bytes::from)),
            Backend::S3 { .. } => tokio::runtime::Handle::current().block_on(self.get(hash)),
        }
    }

    fn damaged(&self, hash: B256, actual: B256) -> Error {
        tracing::error!(blob = %hash, actual = %actual, store = %self.describe(), "a stored blob's bytes do not hash to its name; refusing it");
        Error::Inconsistent(format!(
            "blob {hash} in {} is damaged: its bytes hash to {actual}. Restore the object from a \
             backup, or delete it so that it can be uploaded again",
            self.describe()
        ))
    }

    /// Whether the blob is stored.
    pub async fn contains(&self, hash: B256) -> Result<bool> {
        match &self.backend {
            Backend::Local(dir) => Ok(dir.contains(hash)),
            Backend::S3 { store, .. } => match store.head(&self.key(hash)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Streams a new blob in (an owner's data or checkpoint, too large to
    /// hold in memory), at most `limit` bytes. It is stored only if the
    /// bytes hash to `hash`; otherwise nothing is. Returns whether it was
    /// new and its length.
    pub async fn upload<S, E>(
        &self,
        hash: B256,
        body: S,
        limit: u64,
    ) -> Result<(bool, u64), UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: fmt::Display,
    {
        match &self.backend {
            Backend::Local(dir) => upload_local(dir, hash, body, limit).await,
            Backend::S3 { store, .. } => {
                let upload = store
                    .put_multipart(&self.key(hash))
                    .await
                    .map_err(|e| UploadError::Store(e.into()))?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                match stream_parts(&mut writer, hash, body, limit).await {
                    Ok(len) => {
                        writer
                            .finish()
                            .await
                            .map_err(|e| UploadError::Store(e.into()))?;
                        Ok((true, len))
                    }
                    Err(e) => {
                        if let Err(abort) = writer.abort().await {
                            tracing::warn!(blob = %hash, error = %abort, "cannot abort a refused multipart upload; the bucket's lifecycle rule for incomplete uploads removes its parts");
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    /// The blob for a download: its checked bytes, or a redirect to a
    /// presigned URL when the bucket serves downloads itself. `None` if it
    /// is not stored.
    pub async fn download(&self, hash: B256) -> Result<Option<Download>> {
        match &self.backend {
            Backend::Local(dir) => {
                let path = dir.path(hash);
                let file = match tokio::fs::File::open(&path).await {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let len = file.metadata().await?.len();
                let chunks = tokio_util::io::ReaderStream::new(file).map(|c| c.map_err(Error::Io));
                Ok(Some(Download::Bytes {
                    len,
                    stream: checked(hash, chunks),
                }))
            }
            Backend::S3 { store, location } => {
                let key = self.key(hash);
                if location.redirect {
                    match store.head(&key).await {
                        Ok(_) => {}
                        Err(object_store::Error::NotFound { .. }) => return Ok(None),
                        Err(e) => return Err(e.into()),
                    }
                    let url = store.signed_url(Method::GET, &key, PRESIGNED_FOR).await?;
                    return Ok(Some(Download::Redirect(url.to_string())));
                }
                let got = match store.get(&key).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let len = got.meta.size;
                let chunks = got.into_stream().map(|c| c.map_err(Error::from));
                Ok(Some(Download::Bytes {
                    len,
                    stream: checked(hash, chunks),
                }))
            }
        }
    }

    /// Deletes the blob (retention, docs/orchestrator.md); its size, if it
    /// was stored.
    pub async fn remove(&self, hash: B256) -> Result<Option<u64>> {
        match &self.backend {
            Backend::Local(dir) => {
                let size = match tokio::fs::metadata(dir.path(hash)).await {
                    Ok(m) => m.len(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                Ok(dir.remove(hash).map_err(local_error)?.then_some(size))
            }
            Backend::S3 { store, .. } => {
                let key = self.key(hash);
                let size = match store.head(&key).await {
                    Ok(meta) => meta.size,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                store.delete(&key).await?;
                Ok(Some(size))
            }
        }
    }
}

/// The client of an S3-compatible server: the environment's `AWS_*`
/// settings, then the location's own. Requests fail within seconds when
/// the server is down (a 503 to the caller, a retry at the next tick)
/// instead of retrying for minutes.
fn s3_client(s3: &S3Location) -> Result<AmazonS3> {
    let options = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(120));
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
    };
    let mut builder = AmazonS3Builder::new()
        .with_client_options(options)
        .with_retry(retry);
    for (key, value) in std::env::vars() {
        if key.starts_with("AWS_")
            && let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
        {
            builder = builder.with_config(key, value);
        }
    }
    builder = builder.with_bucket_name(&s3.bucket);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let endpoint = s3
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .unwrap_or_default();
    if endpoint.starts_with("http://") {
        builder = builder.with_allow_http(true);
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &s3.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(Secret(secret)) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    builder.build().map_err(|e| {
        Error::Config(format!(
            "cannot set up the S3 client for bucket `{}`: {e}",
            s3.bucket
        ))
    })
}

async fn upload_local<S, E>(
    dir: &BlobDir,
    hash: B256,
    mut body: S,
    limit: u64,
) -> Result<(bool, u64), UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: fmt::Display,
{
    let mut writer: BlobWriter = dir
        .writer()
        .map_err(|e| UploadError::Store(local_error(e)))?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
        if writer.len() + chunk.len() as u64 > limit {
            return Err(UploadError::TooLarge);
        }
        writer = tokio::task::spawn_blocking(move || -> Result<_> {
            writer.write(&chunk).map_err(local_error)?;
            Ok(writer)
        })
        .await
        .map_err(|e| UploadError::Store(e.into()))??;
    }
    let len = writer.len();
    match tokio::task::spawn_blocking(move || writer.finish(hash))
        .await
        .map_err(|e| UploadError::Store(e.into()))?
    {
        Ok(stored) => Ok((stored, len)),
        Err(funetun_core::Error::BlobHash { actual, .. }) => Err(UploadError::HashMismatch(actual)),
        Err(e) => Err(UploadError::Store(local_error(e))),
    }
}

/// Feeds the body into a multipart upload, hashing it; the length, if it
/// stayed within `limit` and hashed to `hash`.
async fn stream_parts<S, E>(
    writer: &mut WriteMultipart,
    hash: B256,
    mut body: S,
    limit: u64,
) -> Result<u64, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: fmt::Display,
{
    let mut hasher = Keccak256::new();
    let mut len = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
        len += chunk.len() as u64;
        if len > limit {
            return Err(UploadError::TooLarge);
        }
        hasher.update(&chunk);
        writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(|e| UploadError::Store(e.into()))?;
        writer.put(chunk);
    }
    let actual = hasher.finalize();
    if actual != hash {
        return Err(UploadError::HashMismatch(actual));
    }
    Ok(len)
}

/// Passes `chunks` on, hashing them; if they do not hash to `hash`, the
/// last chunk is replaced by an error, so a damaged blob is never served
/// whole.
fn checked(
    hash: B256,
    chunks: impl Stream<Item = Result<Bytes>> + Send + 'static,
) -> BoxStream<'static, Result<Bytes>> {
    let mut chunks = Box::pin(chunks);
    let mut hasher = Some(Keccak256::new());
    let mut held: Option<Bytes> = None;
    futures_util::stream::poll_fn(move |cx| {
        use std::task::Poll;
        loop {
            let Some(h) = hasher.as_mut() else {
                return Poll::Ready(None);
            };
            match chunks.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    h.update(&chunk);
                    // Hold one chunk back until the next arrives, so the
                    // last one goes out only after the hash checks.
                    if let Some(previous) = held.replace(chunk) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    hasher = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    let actual = hasher.take().expect("checked above").finalize();
                    if actual != hash {
                        tracing::error!(blob = %hash, actual = %actual, "a stored blob's bytes do not hash to its name; its download was broken off");
                        return Poll::Ready(Some(Err(Error::Inconsistent(format!(
                            "blob {hash} is damaged: its bytes hash to {actual}"
                        )))));
                    }
                    return Poll::Ready(held.take().map(Ok));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_and_refuse_a_wrong_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&BlobLocation::Dir(dir.path().into()))
            .await
            .unwrap();
        let bytes = Bytes::from_static(b"hello blobs");
        let hash = keccak256(&bytes);
        assert!(!store.contains(hash).await.unwrap());
        assert!(store.put(hash, bytes.clone()).await.unwrap());
        assert!(!store.put(hash, bytes.clone()).await.unwrap());
        assert_eq!(store.get(hash).await.unwrap().unwrap(), bytes);
        assert!(store.put(B256::ZERO, bytes.clone()).await.is_err());
        assert_eq!(store.get(B256::ZERO).await.unwrap(), None);
        let leftovers = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn locations_parse_and_unknown_schemes_are_refused() {
        assert_eq!(
            BlobLocation::parse("funetun-blobs").unwrap(),
            BlobLocation::Dir("funetun-blobs".into())
        );
        let BlobLocation::S3(s3) = BlobLocation::parse("s3://bucket/a/b/").unwrap() else {
            panic!("an s3:// location is a bucket");
        };
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("bucket", "a/b"));
        let BlobLocation::S3(s3) = BlobLocation::parse("s3://bucket").unwrap() else {
            panic!("an s3:// location is a bucket");
        };
        assert_eq!(s3.prefix, "");
        assert!(BlobLocation::parse("s3:///x").is_err());
        let e = BlobLocation::parse("gs://bucket/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("s3://bucket/prefix"), "{e}");
    }

    #[tokio::test]
    async fn a_damaged_download_breaks_off_before_its_last_chunk() {
        let chunks = || {
            futures_util::stream::iter([
                Ok(Bytes::from_static(b"abc")),
                Ok(Bytes::from_static(b"def")),
            ])
        };
        let good = keccak256(b"abcdef");
        let served: Vec<_> = checked(good, chunks()).collect().await;
        assert_eq!(served.len(), 2);
        assert!(served.iter().all(|c| c.is_ok()));
        let served: Vec<_> = checked(keccak256(b"abcdeX"), chunks()).collect().await;
        assert_eq!(served.len(), 2);
        assert!(served[0].is_ok());
        assert!(served[1].is_err(), "the last chunk is withheld");
    }

    #[tokio::test]
    async fn an_upload_stores_only_bytes_that_hash_to_the_name_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&BlobLocation::Dir(dir.path().into()))
            .await
            .unwrap();
        let body = || {
            futures_util::stream::iter(vec![
                Ok::<_, std::io::Error>(Bytes::from_static(b"owner's ")),
                Ok(Bytes::from_static(b"data")),
            ])
        };
        let hash = keccak256(b"owner's data");
        assert!(matches!(
            store.upload(hash, body(), 4).await,
            Err(UploadError::TooLarge)
        ));
        assert!(matches!(
            store.upload(B256::ZERO, body(), 100).await,
            Err(UploadError::HashMismatch(h)) if h == hash
        ));
        assert!(!store.contains(B256::ZERO).await.unwrap());
        assert_eq!(store.upload(hash, body(), 100).await.unwrap(), (true, 12));
        assert_eq!(store.upload(hash, body(), 100).await.unwrap(), (false, 12));
        assert_eq!(
            &store.get(hash).await.unwrap().unwrap()[..],
            b"owner's data"
        );
    }
}
