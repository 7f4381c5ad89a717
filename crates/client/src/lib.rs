//! A typed client for the orchestrator's HTTP API (`funetun_core::api`).
//!
//! Every mutating request is signed with the participant's key in the format
//! of [`funetun_core::auth`]: a fresh random nonce and the current time per
//! request. Reads are plain GETs. A 204 answer ("nothing to do") is `None`;
//! a 4xx/5xx is [`ClientError::Api`] with the server's code and detail.
//!
//! **Several replicas.** A client may be given several orchestrator URLs
//! (`http://a:8080,http://b:8080`, replicas of one deployment). It talks to
//! one at a time; when that one cannot be reached or answers 502, 503 or
//! 504, the request is signed afresh and sent to the next, each URL at most
//! once per request, and the client stays with the one that answered.
//! Every mutating endpoint is idempotent, so a request that reached a
//! replica that died before answering is safe to send again.
//!
//! - [`anchored`]: a job's checkpoints downloaded and checked against the
//!   hashes committed on-chain, the one way every tool fetches them.

pub mod anchored;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use funetun_core::api::ErrorBody;
use funetun_core::api::{
    FailureAck, FailureInfo, FailureReport, Graph, JobDetail, JobSummary, LeaseRequest,
    ParticipantInfo, RoundInfo, ServiceInfo, Task, UpdateAck, UpdateInfo, UpdateReport,
    ValidationAck, ValidationAssignment, ValidationReport, ValidationRequest,
};
use funetun_core::auth::sign_request;
use funetun_core::keccak256;
use rand_core::{OsRng, TryRngCore};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What can go wrong talking to the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("orchestrator refused {method} {path} ({status}): {code}: {detail}")]
    Api {
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The server's error code.
        code: String,
        /// The server's explanation.
        detail: String,
    },
    /// The server could not be reached or the connection broke.
    #[error(
        "cannot reach the orchestrator at {url} ({}): is it running, and is --orchestrator \
         (FUNETUN_ORCHESTRATOR) its address?",
        root_cause(.error)
    )]
    Transport {
        /// The URL tried.
        url: String,
        /// The underlying error. Its innermost cause is in the message, and
        /// it is not chained as a source, so that it is not printed twice.
        error: reqwest::Error,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer to {path}: {detail}")]
    Protocol {
        /// Request path.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// A downloaded blob does not hash to the name it was asked by.
    #[error("blob {expected} downloaded with hash {actual}: refusing it")]
    HashMismatch {
        /// The hash asked for.
        expected: B256,
        /// The hash of the bytes received.
        actual: B256,
    },
}

impl ClientError {
    /// True for errors worth retrying later: the server was unreachable or
    /// answered 5xx/429.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Api { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The server's error code, if it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The innermost cause of `error` (`Connection refused (os error 111)`,
/// not reqwest's `error sending request for url (…)`).
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ClientError>;

/// A client bound to one orchestrator (one URL, or the URLs of its
/// replicas) and (optionally) one key.
#[derive(Clone)]
pub struct Client {
    bases: std::sync::Arc<[String]>,
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    http: reqwest::Client,
    signer: Option<PrivateKeySigner>,
}

/// Whether an answer with `status` means "this replica cannot serve now;
/// another may".
fn replica_unavailable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn fresh_nonce() -> String {
    let mut bytes = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random source is available");
    hex::encode(bytes)
}

impl Client {
    /// A client for the orchestrator at `base_url` (e.g.
    /// `http://127.0.0.1:8080`, or several replicas' URLs separated by
    /// commas), signing with `signer` when given (reads need no key).
    pub fn new(base_url: &str, signer: Option<PrivateKeySigner>) -> Self {
        let bases: Vec<String> = base_url
            .split(',')
            .map(|b| b.trim().trim_end_matches('/').to_string())
            .filter(|b| !b.is_empty())
            .collect();
        let bases = if bases.is_empty() {
            vec![String::new()]
        } else {
            bases
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(4)
            // Below the orchestrator's 30 s keep-alive, so a pooled
            // connection is never reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(20))
            .build()
            .expect("a default HTTP client builds");
        Self {
            bases: bases.into(),
            current: Default::default(),
            http,
            signer,
        }
    }

    /// The base URL of the replica the client talks to now.
    pub fn base_url(&self) -> &str {
        &self.bases[self.current()]
    }

    /// The index of the replica the client talks to now.
    fn current(&self) -> usize {
        self.current.load(std::sync::atomic::Ordering::Relaxed) % self.bases.len()
    }

    /// Moves on from replica `from` to the next (unless another request
    /// has already moved on).
    fn fail_over(&self, from: usize) {
        let next = (from + 1) % self.bases.len();
        if self
            .current
            .compare_exchange(
                from,
                next,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
            && self.bases.len() > 1
        {
            tracing::warn!(
                from = %self.bases[from],
                to = %self.bases[next],
                "the orchestrator replica is unavailable; failing over"
            );
        }
    }

    /// The signing address, if any.
    pub fn address(&self) -> Option<Address> {
        self.signer.as_ref().map(|s| s.address())
    }

    /// Sends one request; signs it when a key is set. Returns the status
    /// and body. With several replicas, one that cannot be reached or is
    /// unavailable is followed by the next (signed afresh).
    pub async fn send_raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let mut tries = self.bases.len();
        loop {
            let at = self.current();
            let result = self
                .send_to(
                    at,
                    method.clone(),
                    path_and_query,
                    body.clone(),
                    content_type,
                )
                .await;
            tries -= 1;
            let result = self.after(at, result);
            if tries == 0 || self.current() == at {
                return result;
            }
        }
    }

    async fn send_to(
        &self,
        at: usize,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let url = format!("{}{}", self.bases[at], path_and_query);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(signer) = &self.signer {
            let auth = sign_request(
                signer,
                method.as_str(),
                path_and_query,
                &body,
                now_secs(),
                &fresh_nonce(),
            );
            for (name, value) in auth.headers() {
                req = req.header(name, value);
            }
        }
        if !body.is_empty() || method != Method::GET {
            req = req.header("content-type", content_type).body(body);
        }
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            error: source,
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::Transport { url, error: source })?;
        if status.is_client_error() || status.is_server_error() {
            return Err(api_error(method.as_str(), path_and_query, status, &bytes));
        }
        Ok((status, bytes.to_vec()))
    }

    async fn json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).expect("API bodies serialize"),
            None => Vec::new(),
        };
        let (status, out) = self
            .send_raw(method, path, bytes, "application/json")
            .await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        serde_json::from_slice(&out)
            .map(Some)
            .map_err(|e| ClientError::Protocol {
                path: path.to_string(),
                detail: e.to_string(),
            })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json::<(), T>(Method::GET, path, None)
            .await?
            .ok_or_else(|| ClientError::Protocol {
                path: path.to_string(),
                detail: "empty answer".into(),
            })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.json(Method::POST, path, Some(body))
            .await?
            .ok_or_else(|| ClientError::Protocol {
                path: path.to_string(),
                detail: "empty answer".into(),
            })
    }

    /// `GET /healthz`: the replica's dependencies and whether it leads.
    pub async fn health(&self) -> Result<funetun_core::api::Health> {
        self.get("/healthz").await
    }

    /// `POST /v1/tasks`: leases a task, or `None` when nothing is available.
    pub async fn lease_task(&self, req: &LeaseRequest) -> Result<Option<Task>> {
        self.json(Method::POST, "/v1/tasks", Some(req)).await
    }

    /// `PUT /v1/blobs/{hash}?job=ID`: uploads a checkpoint or delta for a job.
    /// Returns its hash.
    pub async fn put_blob(&self, job_id: u64, bytes: Vec<u8>) -> Result<B256> {
        let hash = keccak256(&bytes);
        self.send_raw(
            Method::PUT,
            &format!("/v1/blobs/{hash}?job={job_id}"),
            bytes,
            "application/octet-stream",
        )
        .await?;
        Ok(hash)
    }

    /// `PUT /v1/blobs/{hash}?kind=spec`: uploads a job spec (TOML). Returns its hash.
    pub async fn put_spec(&self, bytes: Vec<u8>) -> Result<B256> {
        let hash = keccak256(&bytes);
        self.send_raw(
            Method::PUT,
            &format!("/v1/blobs/{hash}?kind=spec"),
            bytes,
            "application/toml",
        )
        .await?;
        Ok(hash)
    }

    /// `PUT /v1/blobs/{hash}?kind=data`: streams an owner's file (a corpus,
    /// a tokenizer, an IDX pair, an initial checkpoint) of `len` bytes to
    /// the blob store without holding it in memory. `hash` is the file's
    /// keccak256 ([`hash_file`]): it names the blob and is what the
    /// request's signature covers; the server stores the bytes only if
    /// they hash to it.
    pub async fn put_data_file(&self, path: &std::path::Path, hash: B256, len: u64) -> Result<()> {
        let at = self.current();
        let result = self.put_data_file_to(at, path, hash, len).await;
        self.after(at, result)
    }

    async fn put_data_file_to(
        &self,
        at: usize,
        path: &std::path::Path,
        hash: B256,
        len: u64,
    ) -> Result<()> {
        let io = |e: std::io::Error| ClientError::Protocol {
            path: path.display().to_string(),
            detail: format!("cannot read the file: {e}"),
        };
        let path_and_query = format!("/v1/blobs/{hash}?kind=data");
        let url = format!("{}{}", self.bases[at], path_and_query);
        let file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut req = self
            .http
            .put(&url)
            .header("content-type", "application/octet-stream")
            .header("content-length", len)
            .body(reqwest::Body::from(file));
        if let Some(signer) = &self.signer {
            let auth = funetun_core::auth::sign_hashed_request(
                signer,
                "PUT",
                &path_and_query,
                hash,
                now_secs(),
                &fresh_nonce(),
            );
            for (name, value) in auth.headers() {
                req = req.header(name, value);
            }
        }
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            error: source,
        })?;
        let status = resp.status();
        if status.is_client_error() || status.is_server_error() {
            let bytes = resp
                .bytes()
                .await
                .map_err(|source| ClientError::Transport { url, error: source })?;
            return Err(api_error("PUT", &path_and_query, status, &bytes));
        }
        Ok(())
    }

    /// `GET /v1/blobs/{hash}` streamed into `writer` (a blob directory's
    /// writer), which checks the hash and stores the blob; nothing is held
    /// whole in memory. Returns the size.
    pub async fn download_blob(
        &self,
        hash: B256,
        writer: funetun_core::blobs::BlobWriter,
    ) -> Result<u64> {
        let at = self.current();
        let result = self.download_blob_from(at, hash, writer).await;
        self.after(at, result)
    }

    /// Passes on `result` of a request to replica `at`, first moving on to
    /// the next replica when that one was unavailable (so the next attempt,
    /// here or the caller's retry of a streamed body, goes there).
    fn after<T>(&self, at: usize, result: Result<T>) -> Result<T> {
        let unavailable = match &result {
            Err(ClientError::Transport { .. }) => true,
            Err(ClientError::Api { status, .. }) => {
                StatusCode::from_u16(*status).is_ok_and(replica_unavailable)
            }
            _ => false,
        };
        if unavailable {
            self.fail_over(at);
        }
        result
    }

    async fn download_blob_from(
        &self,
        at: usize,
        hash: B256,
        mut writer: funetun_core::blobs::BlobWriter,
    ) -> Result<u64> {
        let path = format!("/v1/blobs/{hash}");
        let url = format!("{}{}", self.bases[at], path);
        let mut resp =
            self.http
                .get(&url)
                .send()
                .await
                .map_err(|source| ClientError::Transport {
                    url: url.clone(),
                    error: source,
                })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ClientError::Api {
                method: "GET".into(),
                path,
                status: status.as_u16(),
                code: "http_error".into(),
                detail: format!("blob {hash} could not be downloaded"),
            });
        }
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                error: source,
            })?
        {
            writer = tokio::task::spawn_blocking(move || writer.write(&chunk).map(|()| writer))
                .await
                .map_err(|e| ClientError::Protocol {
                    path: path.clone(),
                    detail: e.to_string(),
                })?
                .map_err(|e| ClientError::Protocol {
                    path: path.clone(),
                    detail: format!("cannot store the download: {e}"),
                })?;
        }
        let len = writer.len();
        match tokio::task::spawn_blocking(move || writer.finish(hash)).await {
            Ok(Ok(_)) => Ok(len),
            Ok(Err(funetun_core::Error::BlobHash { actual, .. })) => {
                Err(ClientError::HashMismatch {
                    expected: hash,
                    actual,
                })
            }
            Ok(Err(e)) => Err(ClientError::Protocol {
                path,
                detail: format!("cannot store the download: {e}"),
            }),
            Err(e) => Err(ClientError::Protocol {
                path,
                detail: e.to_string(),
            }),
        }
    }

    /// `GET /v1/blobs/{hash}`: downloads a blob and checks its hash.
    pub async fn get_blob(&self, hash: B256) -> Result<Vec<u8>> {
        let client = Client {
            signer: None,
            ..self.clone()
        };
        let (_, bytes) = client
            .send_raw(Method::GET, &format!("/v1/blobs/{hash}"), Vec::new(), "")
            .await?;
        let actual = keccak256(&bytes);
        if actual != hash {
            return Err(ClientError::HashMismatch {
                expected: hash,
                actual,
            });
        }
        Ok(bytes)
    }

    /// `POST /v1/updates`: reports an update after `submitUpdate`.
    pub async fn report_update(&self, report: &UpdateReport) -> Result<UpdateAck> {
        self.post("/v1/updates", report).await
    }

    /// `POST /v1/failures`: gives up a leased task, saying why.
    pub async fn report_failure(&self, report: &FailureReport) -> Result<FailureAck> {
        self.post("/v1/failures", report).await
    }

    /// `POST /v1/validations/next`: asks for an update to check.
    pub async fn next_validation(
        &self,
        req: &ValidationRequest,
    ) -> Result<Option<ValidationAssignment>> {
        self.json(Method::POST, "/v1/validations/next", Some(req))
            .await
    }

    /// `POST /v1/validations`: reports a vote after `validateUpdate`.
    pub async fn report_validation(&self, report: &ValidationReport) -> Result<ValidationAck> {
        self.post("/v1/validations", report).await
    }

    /// `GET /v1/info`: the leader address and contract this orchestrator serves.
    pub async fn info(&self) -> Result<ServiceInfo> {
        self.get("/v1/info").await
    }

    /// `GET /v1/jobs`.
    pub async fn jobs(&self) -> Result<Vec<JobSummary>> {
        self.get("/v1/jobs").await
    }

    /// `GET /v1/jobs/{id}`.
    pub async fn job(&self, job_id: u64) -> Result<JobDetail> {
        self.get(&format!("/v1/jobs/{job_id}")).await
    }

    /// `GET /v1/jobs/{id}/rounds`.
    pub async fn rounds(&self, job_id: u64) -> Result<Vec<RoundInfo>> {
        self.get(&format!("/v1/jobs/{job_id}/rounds")).await
    }

    /// `GET /v1/jobs/{id}/updates`.
    pub async fn updates(&self, job_id: u64) -> Result<Vec<UpdateInfo>> {
        self.get(&format!("/v1/jobs/{job_id}/updates")).await
    }

    /// `GET /v1/jobs/{id}/failures`: the tasks trainers gave up, and why.
    pub async fn failures(&self, job_id: u64) -> Result<Vec<FailureInfo>> {
        self.get(&format!("/v1/jobs/{job_id}/failures")).await
    }

    /// `GET /v1/tasks/{id}`: a leased task (public).
    pub async fn task(&self, task_id: u64) -> Result<Task> {
        self.get(&format!("/v1/tasks/{task_id}")).await
    }

    /// `PUT /v1/blobs/{hash}?kind=data` of bytes in memory (a task or
    /// validator module). Returns their hash.
    pub async fn put_data(&self, bytes: Vec<u8>) -> Result<B256> {
        let hash = keccak256(&bytes);
        self.send_raw(
            Method::PUT,
            &format!("/v1/blobs/{hash}?kind=data"),
            bytes,
            "application/octet-stream",
        )
        .await?;
        Ok(hash)
    }

    /// `POST /v1/compute/tasks`: submits a generic task; its persistent id.
    pub async fn submit_compute_task(
        &self,
        task: &funetun_core::compute::TaskSubmission,
    ) -> Result<funetun_core::compute::TaskSubmitted> {
        self.post("/v1/compute/tasks", task).await
    }

    /// `POST /v1/compute/tasks/bulk`: submits many tasks, all or none;
    /// their persistent ids in order.
    pub async fn submit_compute_tasks(
        &self,
        tasks: &[funetun_core::compute::TaskSubmission],
    ) -> Result<Vec<B256>> {
        let body = funetun_core::compute::TaskBulk {
            tasks: tasks.to_vec(),
        };
        let reply: funetun_core::compute::TasksSubmitted =
            self.post("/v1/compute/tasks/bulk", &body).await?;
        Ok(reply.task_ids)
    }

    /// `POST /v1/compute/exchange`: reports finished replicas and takes
    /// more, up to `exchange.want` held.
    pub async fn exchange_replicas(
        &self,
        exchange: &funetun_core::compute::Exchange,
    ) -> Result<funetun_core::compute::ExchangeReply> {
        self.post("/v1/compute/exchange", exchange).await
    }

    /// `GET /v1/compute/tasks/{id}`: a generic task, its replicas and result.
    pub async fn compute_task(
        &self,
        task_id: B256,
    ) -> Result<funetun_core::compute::ComputeTaskInfo> {
        self.get(&format!("/v1/compute/tasks/{task_id}")).await
    }

    /// `POST /v1/compute/leases`: a replica to run, or `None`.
    pub async fn lease_replica(&self) -> Result<Option<funetun_core::compute::ReplicaLease>> {
        self.json(
            Method::POST,
            "/v1/compute/leases",
            Some(&funetun_core::compute::ReplicaRequest::default()),
        )
        .await
    }

    /// `POST /v1/compute/results`: reports a replica's result.
    pub async fn report_replica(
        &self,
        report: &funetun_core::compute::ReplicaReport,
    ) -> Result<funetun_core::compute::ReplicaAck> {
        self.post("/v1/compute/results", report).await
    }

    /// `GET /v1/participants`.
    pub async fn participants(&self) -> Result<Vec<ParticipantInfo>> {
        self.get("/v1/participants").await
    }

    /// `GET /graph`.
    pub async fn graph(&self) -> Result<Graph> {
        self.get("/graph").await
    }
}

/// The error of a refused request: the server's `{error, detail}` body, or
/// the start of whatever else it sent.
fn api_error(method: &str, path: &str, status: StatusCode, bytes: &[u8]) -> ClientError {
    let (code, detail) = match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => (e.error, e.detail),
        Err(_) => (
            "http_error".to_string(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned(),
        ),
    };
    ClientError::Api {
        method: method.to_string(),
        path: path.to_string(),
        status: status.as_u16(),
        code,
        detail,
    }
}

/// keccak256 and length of a file, read in 1 MiB pieces.
pub fn hash_file(path: &std::path::Path) -> std::io::Result<(B256, u64)> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = alloy_primitives::Keccak256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hasher.finalize(), len))
}
