//! [`Config`]: everything the orchestrator needs to run, with defaults.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;

use crate::blobs::BlobLocation;

/// Rounds of a default drill: 2·64³·200 ≈ 1.05·10⁸ operations, about
/// 2.4·10⁻⁴ ut and a fraction of a second in the sandbox.
pub const DRILL_ROUNDS: u32 = 200;

/// How the orchestrator runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Ethereum JSON-RPC endpoint of the chain holding the contract.
    pub rpc_url: String,
    /// The `JobManager` contract.
    pub contract: Address,
    /// The leader key: jobs whose on-chain leader is this key's address are led here.
    pub key: PrivateKeySigner,
    /// `sqlite://path/to/state.db` (created if missing), `sqlite::memory:` or
    /// `postgres://user[:password]@host[:port]/db` (docs/deploy.md).
    pub db_url: String,
    /// Where the content-addressed blobs live: a directory or an S3 bucket.
    pub blobs: BlobLocation,
    /// Address the HTTP API listens on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Directory holding data sets (searched before `FUNETUN_DATA_DIR` and the cache).
    pub data_dir: Option<PathBuf>,
    /// Never download missing data sets.
    pub offline: bool,
    /// Compute threads for aggregation and evaluation.
    pub threads: usize,
    /// Pause between chain polls and scheduler ticks.
    pub poll_interval: Duration,
    /// Blocks an event must be under before it is applied (1 = in the latest block).
    pub confirmations: u64,
    /// First block to read events from when the database is new (the
    /// contract's deployment block saves scanning a long chain from 0).
    pub start_block: u64,
    /// Signed requests: timestamp window, rate limit, body limits.
    pub auth: AuthConfig,
    /// How long a positive on-chain role lookup is trusted.
    pub role_ttl: Duration,
    /// How long a negative on-chain role lookup is trusted (short, so a
    /// participant that just registered gets in).
    pub negative_role_ttl: Duration,
    /// Half-life of reputation points (docs/reputation.md).
    pub reputation_half_life: Duration,
    /// Longest pause between attempts to fetch a job's spec blob.
    pub spec_retry_max: Duration,
    /// Timeouts, the connection cap and the shutdown grace of the HTTP server.
    pub http: funetun_serve::Limits,
    /// This replica's name: which replica led a round, in `/healthz` and
    /// the rounds' records. Replicas of one deployment have distinct names.
    pub replica: String,
    /// How long the leader's lease lasts without renewal; it is renewed
    /// every fifth of it, and a replica takes over a lease that lapsed, so
    /// a dead leader is replaced within about this time plus a renewal.
    pub leader_ttl: Duration,
    /// How long a worker holds a replica of a generic task before it goes
    /// to someone else (docs/tasks.md).
    pub replica_lease: Duration,
    /// Adaptive replication: valid results in a row (since the last invalid
    /// one) that make a worker's record clean.
    pub trust_streak: u64,
    /// Adaptive replication: the chance that a clean worker's task is
    /// replicated anyway (a spot check).
    pub spot_check: f64,
    /// How often a worker drills (docs/tasks.md, "Drilling"): on joining,
    /// and again once its last drill is this old; none turns drilling off.
    pub drill_every: Option<Duration>,
    /// The size of a drill: rounds of the `drill` kernel's 64×64 matrix
    /// product (2·64³ operations each).
    pub drill_rounds: u32,
}

/// Limits on signed requests.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// A request's timestamp may differ from the server's clock by at most this much.
    pub timestamp_window: Duration,
    /// Sustained requests per second per address (token bucket refill rate).
    pub rate_per_sec: f64,
    /// Burst size per address (token bucket capacity).
    pub rate_burst: f64,
    /// Largest JSON body, in bytes.
    pub max_json_bytes: usize,
    /// Largest owner's data or checkpoint blob (`?kind=data`, streamed to
    /// disk), in bytes.
    pub max_data_bytes: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            timestamp_window: Duration::from_secs(60),
            rate_per_sec: 200.0,
            rate_burst: 400.0,
            max_json_bytes: 64 * 1024,
            max_data_bytes: 4 << 30,
        }
    }
}

impl Config {
    /// A configuration for the contract at `contract` on `rpc_url`, leading with
    /// `key`; state in memory and blobs in `./funetun-blobs`, listening on
    /// `127.0.0.1:8080`. Adjust the public fields for anything else.
    pub fn new(rpc_url: impl Into<String>, contract: Address, key: PrivateKeySigner) -> Self {
        Config {
            rpc_url: rpc_url.into(),
            contract,
            key,
            db_url: "sqlite::memory:".into(),
            blobs: BlobLocation::Dir(PathBuf::from("funetun-blobs")),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            data_dir: None,
            offline: false,
            threads: 1,
            poll_interval: Duration::from_millis(200),
            confirmations: 1,
            start_block: 0,
            auth: AuthConfig::default(),
            role_ttl: Duration::from_secs(30),
            negative_role_ttl: Duration::from_secs(1),
            reputation_half_life: Duration::from_secs(7 * 24 * 3600),
            spec_retry_max: Duration::from_secs(30),
            http: funetun_serve::Limits::default(),
            replica: format!("replica-{}", std::process::id()),
            leader_ttl: Duration::from_secs(5),
            replica_lease: Duration::from_secs(600),
            trust_streak: 10,
            spot_check: 0.1,
            drill_every: Some(Duration::from_secs(24 * 3600)),
            drill_rounds: DRILL_ROUNDS,
        }
    }
}
