//! Signed requests (`funetun_core::auth`): the [`Signed`] extractor, the
//! nonce memory, the per-address rate limit and the on-chain role cache.
//!
//! Order of checks, each with its own answer: headers present (401
//! `unsigned`) and well formed (401 `bad_signature`); body within the limit
//! (413 `too_large`); signature by the claimed address (401 `wrong_signer`);
//! timestamp within the window of the server's clock and not before the
//! server started (401 `stale_timestamp`); rate limit (429 `rate_limited`);
//! nonce never seen (401 `replayed_nonce`); then the body's JSON (400
//! `bad_json`). Roles are checked by the handlers (403).
//!
//! On SQLite (one process), nonces and rate buckets live in memory; nonces
//! are kept for twice the timestamp window, written to the database on a
//! clean shutdown and read back on start. After a crash they are lost, so
//! the server refuses every timestamp older than its own start: a request
//! captured before a crash can only be replayed if it was signed in the
//! very second the server came back, and every mutating endpoint is
//! idempotent, so such a replay changes nothing.
//!
//! On PostgreSQL, where several replicas may serve one deployment, both live
//! in the database ([`crate::store::nonces`]): one statement per request
//! takes a token from the address's bucket and records the nonce, so a
//! request accepted by one replica is refused as a replay by every other,
//! and the rate is the address's across all replicas. They survive a crash
//! too, so no start-time rule is needed there.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use alloy_primitives::{Address, U256};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use funetun_core::api::LeaseRequest;
use funetun_core::auth::{AuthError, RequestAuth};
use serde::de::DeserializeOwned;

use crate::config::AuthConfig;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::nonces::{Admission, Bucket, Check, LeaseProbe};
use crate::store::tasks::TaskRow;
use crate::util::now_secs;

const SHARDS: usize = 16;

fn shard_of(address: &Address) -> usize {
    address[19] as usize % SHARDS
}

/// Single-use nonces per address, remembered until their request's
/// timestamp leaves the window.
#[derive(Debug)]
pub struct NonceStore {
    shards: Vec<Mutex<NonceShard>>,
}

#[derive(Debug, Default)]
struct NonceShard {
    seen: HashMap<(Address, String), u64>,
    inserts: u64,
}

impl Default for NonceStore {
    fn default() -> Self {
        NonceStore {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl NonceStore {
    /// Records `nonce` of `address` until `expires_at`; false if it was seen.
    pub fn insert(&self, address: Address, nonce: &str, expires_at: u64, now: u64) -> bool {
        let mut shard = self.shards[shard_of(&address)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shard.inserts += 1;
        if shard.inserts.is_multiple_of(4096) {
            shard.seen.retain(|_, exp| *exp > now);
        }
        let key = (address, nonce.to_string());
        match shard.seen.get(&key) {
            Some(exp) if *exp > now => false,
            _ => {
                shard.seen.insert(key, expires_at);
                true
            }
        }
    }

    /// Every live nonce, to persist on shutdown.
    pub fn live(&self, now: u64) -> Vec<(Address, String, u64)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(
                shard
                    .seen
                    .iter()
                    .filter(|(_, exp)| **exp > now)
                    .map(|((a, n), exp)| (*a, n.clone(), *exp)),
            );
        }
        out
    }
}

/// A token bucket per address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    shards: Vec<Mutex<HashMap<Address, (f64, Instant)>>>,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Takes one token of `address`; false when none is left.
    pub fn allow(&self, address: Address, now: Instant) -> bool {
        let mut shard = self.shards[shard_of(&address)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if shard.len() > 100_000 {
            let burst = self.burst;
            let rate = self.rate;
            shard.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = shard.entry(address).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The role bits of `funetun_chain::bindings::roles`.
pub mod role {
    /// Trainer.
    pub const TRAINER: u8 = funetun_chain::bindings::roles::TRAINER;
    /// Validator.
    pub const VALIDATOR: u8 = funetun_chain::bindings::roles::VALIDATOR;
}

/// On-chain roles, cached: a participant with a role and enough stake is
/// trusted for `positive` time, anyone else is asked again after `negative`.
#[derive(Debug)]
pub struct RoleCache {
    positive: std::time::Duration,
    negative: std::time::Duration,
    entries: Mutex<HashMap<Address, (u8, Instant)>>,
}

impl RoleCache {
    /// A cache with these lifetimes.
    pub fn new(positive: std::time::Duration, negative: std::time::Duration) -> Self {
        RoleCache {
            positive,
            negative,
            entries: Mutex::default(),
        }
    }

    /// The cached roles of `address` if fresh enough to answer for `role`.
    pub fn get(&self, address: Address, role: u8, now: Instant) -> Option<bool> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (roles, at) = entries.get(&address)?;
        let age = now.saturating_duration_since(*at);
        let has = roles & role != 0;
        let ttl = if has { self.positive } else { self.negative };
        (age < ttl).then_some(has)
    }

    /// Records the roles of `address` (0 when it lacks the minimum stake).
    pub fn put(&self, address: Address, roles: u8, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > 100_000 {
            entries.clear();
        }
        entries.insert(address, (roles, now));
    }

    /// Forgets `address` (its roles changed on-chain).
    pub fn invalidate(&self, address: Address) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&address);
    }
}

impl AppState {
    /// Refuses `address` unless it holds `role` on-chain with at least the
    /// minimum stake (403 `not_trainer` / `not_validator`).
    pub async fn require_role(&self, address: Address, role: u8) -> Result<()> {
        let now = Instant::now();
        let has = match self.roles.get(address, role, now) {
            Some(has) => has,
            None => {
                let account = self.ledger.account(address).await?;
                let roles = if U256::from(account.stake) >= self.min_stake {
                    account.roles
                } else {
                    0
                };
                self.roles.put(address, roles, now);
                roles & role != 0
            }
        };
        if has {
            return Ok(());
        }
        let (code, what) = if role == role::VALIDATOR {
            ("not_validator", "a validator")
        } else {
            ("not_trainer", "a trainer")
        };
        Err(Error::forbidden(
            code,
            format!(
                "{address} is not registered as {what} with at least the minimum stake on-chain; \
                 register first (registerTrainer / registerValidator)"
            ),
        ))
    }
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return too_large(limit);
            }
            source = s.source();
        }
        Error::bad_request("bad_body", format!("could not read the request body: {e}"))
    })
}

/// 413 for a body over `limit` bytes.
pub fn too_large(limit: usize) -> Error {
    Error::refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

/// Checks a request's signature, freshness, rate and nonce; returns the
/// signer.
pub async fn authenticate(
    state: &AppState,
    method: &str,
    path_and_query: &str,
    auth: std::result::Result<RequestAuth, AuthError>,
    body: &[u8],
) -> Result<Address> {
    authenticate_hashed(
        state,
        method,
        path_and_query,
        auth,
        funetun_core::keccak256(body),
    )
    .await
}

/// [`authenticate`] for a body known by its keccak256: a streamed upload
/// whose bytes are checked against that hash once they have arrived.
pub async fn authenticate_hashed(
    state: &AppState,
    method: &str,
    path_and_query: &str,
    auth: std::result::Result<RequestAuth, AuthError>,
    body_hash: alloy_primitives::B256,
) -> Result<Address> {
    let (address, _) = admit(state, method, path_and_query, auth, body_hash, None).await?;
    Ok(address)
}

/// What [`admit`] read besides admitting: `None` when it read no lease (no
/// probe, or a SQLite orchestrator), else the signer's live lease if any.
type ReadLease = Option<Option<TaskRow>>;

/// [`authenticate_hashed`], reading the live lease `probe` asks about in
/// the same statement as the shared check where there is one.
async fn admit(
    state: &AppState,
    method: &str,
    path_and_query: &str,
    auth: std::result::Result<RequestAuth, AuthError>,
    body_hash: alloy_primitives::B256,
    probe: Option<LeaseProbe>,
) -> Result<(Address, ReadLease)> {
    let auth = auth.map_err(auth_error)?;
    auth.verify_hashed(method, path_and_query, body_hash)
        .map_err(auth_error)?;
    let cfg: &AuthConfig = &state.config.auth;
    let now = now_secs();
    let window = cfg.timestamp_window.as_secs();
    if auth.timestamp.abs_diff(now) > window {
        return Err(Error::unauthorized(
            "stale_timestamp",
            format!(
                "timestamp {} is more than {window} s from the server's clock ({now}); check your clock",
                auth.timestamp
            ),
        ));
    }
    let expires = auth.timestamp.max(now) + window + 1;
    let mut read = None;
    let admission = if state.shared_admission() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let check = Check {
            address: auth.address,
            nonce: &auth.nonce,
            expires_at: expires,
            now,
            now_ms,
            bucket: Bucket {
                rate: cfg.rate_per_sec,
                burst: cfg.rate_burst,
            },
        };
        match probe {
            Some(probe) => {
                let (admission, task) = state.store.admit_lease(check, probe).await?;
                read = Some(task);
                admission
            }
            None => state.store.admit(check).await?,
        }
    } else {
        if auth.timestamp < state.started_at {
            return Err(Error::unauthorized(
                "stale_timestamp",
                format!(
                    "timestamp {} is older than the server's start ({}); sign the request again",
                    auth.timestamp, state.started_at
                ),
            ));
        }
        if !state.rate.allow(auth.address, Instant::now()) {
            Admission::RateLimited
        } else if !state.nonces.insert(auth.address, &auth.nonce, expires, now) {
            Admission::Replayed
        } else {
            Admission::Admitted
        }
    };
    match admission {
        Admission::Admitted => Ok((auth.address, read)),
        Admission::RateLimited => Err(Error::refused(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests per second from {}; slow down",
                cfg.rate_per_sec, auth.address
            ),
        )),
        Admission::Replayed => Err(Error::unauthorized(
            "replayed_nonce",
            format!(
                "nonce `{}` was already used by {}; use a fresh nonce per request",
                auth.nonce, auth.address
            ),
        )),
    }
}

fn auth_error(e: AuthError) -> Error {
    match e {
        AuthError::Missing(_) => Error::unauthorized("unsigned", e.to_string()),
        AuthError::Malformed { .. } => Error::unauthorized("bad_signature", e.to_string()),
        AuthError::WrongSigner { .. } => Error::unauthorized("wrong_signer", e.to_string()),
    }
}

/// A signed request with raw bytes: the signer and the body.
#[derive(Debug)]
pub struct SignedBytes {
    /// Who signed.
    pub address: Address,
    /// The body.
    pub bytes: Bytes,
}

/// A signed request with a JSON body of type `T`.
#[derive(Debug)]
pub struct Signed<T> {
    /// Who signed.
    pub address: Address,
    /// The body.
    pub body: T,
}

async fn signed_bytes(state: &Arc<AppState>, req: Request, limit: usize) -> Result<SignedBytes> {
    let (signed, _) = signed_bytes_probing(state, req, limit, |_| None).await?;
    Ok(signed)
}

/// [`signed_bytes`], reading the live lease `probe` names (from the body)
/// with the shared check.
async fn signed_bytes_probing(
    state: &Arc<AppState>,
    req: Request,
    limit: usize,
    probe: impl FnOnce(&[u8]) -> Option<LeaseProbe>,
) -> Result<(SignedBytes, ReadLease)> {
    let (parts, body) = req.into_parts();
    let auth =
        RequestAuth::from_headers(|name| parts.headers.get(name).and_then(|v| v.to_str().ok()));
    if let Err(e @ AuthError::Missing(_)) = auth {
        return Err(auth_error(e));
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| parts.uri.path());
    if let Some(len) = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(too_large(limit));
    }
    let bytes = read_body(body, limit).await?;
    let probe = probe(&bytes);
    let hash = funetun_core::keccak256(&bytes);
    let (address, read) = admit(state, parts.method.as_str(), path, auth, hash, probe).await?;
    Ok((SignedBytes { address, bytes }, read))
}

impl FromRequest<Arc<AppState>> for SignedBytes {
    type Rejection = Error;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self> {
        let limit = state.max_blob_bytes;
        signed_bytes(state, req, limit).await
    }
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for Signed<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self> {
        let limit = state.config.auth.max_json_bytes;
        let SignedBytes { address, bytes } = signed_bytes(state, req, limit).await?;
        let body = serde_json::from_slice(&bytes).map_err(bad_json)?;
        Ok(Signed { address, body })
    }
}

/// 400 `bad_json`: a signed body that is not the JSON its endpoint takes.
fn bad_json(e: serde_json::Error) -> Error {
    Error::bad_request(
        "bad_json",
        format!("the body is not the expected JSON: {e}"),
    )
}

/// A signed lease request (`POST /v1/tasks`): the signer, the request and,
/// where requests are checked in a shared database, the signer's live lease
/// read by the same statement as the check ([`Store::admit_lease`]), so
/// that handing back a held lease, the common answer, costs one round trip.
///
/// [`Store::admit_lease`]: crate::store::Store::admit_lease
#[derive(Debug)]
pub struct SignedLease {
    /// Who signed.
    pub address: Address,
    /// The request.
    pub body: LeaseRequest,
    /// `None`: not read (SQLite); `Some(None)`: the signer holds no live
    /// lease of the job other than `body.holding`.
    pub live: Option<Option<TaskRow>>,
}

impl FromRequest<Arc<AppState>> for SignedLease {
    type Rejection = Error;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self> {
        let limit = state.config.auth.max_json_bytes;
        // The body is parsed before the check only to name the lease; an
        // unsigned or replayed request is refused as such before its JSON.
        let mut parsed = None;
        let (SignedBytes { address, .. }, live) =
            signed_bytes_probing(state, req, limit, |bytes| {
                let request = serde_json::from_slice::<LeaseRequest>(bytes);
                let probe = request.as_ref().ok().map(|r| LeaseProbe {
                    job_id: r.job_id,
                    except: r.holding,
                });
                parsed = Some(request);
                probe
            })
            .await?;
        let body = parsed
            .ok_or_else(|| Error::Inconsistent("the lease request was not read".into()))?
            .map_err(bad_json)?;
        Ok(SignedLease {
            address,
            body,
            live,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_single_use_until_it_expires() {
        let store = NonceStore::default();
        let a = Address::repeat_byte(1);
        assert!(store.insert(a, "nonce-001", 100, 10));
        assert!(!store.insert(a, "nonce-001", 100, 11));
        assert!(store.insert(Address::repeat_byte(2), "nonce-001", 100, 11));
        assert!(store.insert(a, "nonce-001", 200, 100));
        assert_eq!(store.live(50).len(), 2);
        assert_eq!(store.live(150).len(), 1);
    }

    #[test]
    fn the_bucket_refills_at_its_rate() {
        let limiter = RateLimiter::new(10.0, 2.0);
        let a = Address::repeat_byte(1);
        let t0 = Instant::now();
        assert!(limiter.allow(a, t0));
        assert!(limiter.allow(a, t0));
        assert!(!limiter.allow(a, t0));
        assert!(limiter.allow(a, t0 + std::time::Duration::from_millis(100)));
        assert!(limiter.allow(Address::repeat_byte(2), t0));
    }

    #[test]
    fn negative_roles_expire_quickly() {
        let cache = RoleCache::new(
            std::time::Duration::from_secs(30),
            std::time::Duration::from_secs(1),
        );
        let a = Address::repeat_byte(1);
        let t0 = Instant::now();
        cache.put(a, role::TRAINER, t0);
        assert_eq!(cache.get(a, role::TRAINER, t0), Some(true));
        assert_eq!(cache.get(a, role::VALIDATOR, t0), Some(false));
        let later = t0 + std::time::Duration::from_secs(2);
        assert_eq!(cache.get(a, role::TRAINER, later), Some(true));
        assert_eq!(cache.get(a, role::VALIDATOR, later), None);
        cache.invalidate(a);
        assert_eq!(cache.get(a, role::TRAINER, t0), None);
    }
}
