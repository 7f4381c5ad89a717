//! `funetun orchestrator` (the job leader's service) and `funetun bench api`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use funetun_orchestrator::Config;
use funetun_orchestrator::blobs::BlobLocation;

use crate::chain::{runtime, shutdown_signal};
use crate::output::print_json;

/// Arguments of `funetun orchestrator`.
#[derive(Debug, clap::Args)]
pub struct OrchestratorArgs {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, env = "FUNETUN_RPC", default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// Address of the JobManager contract.
    #[arg(long, env = "FUNETUN_CONTRACT")]
    pub contract: alloy_primitives::Address,
    /// The leader's key; jobs naming its address as leader are run here.
    #[command(flatten)]
    pub key: crate::keys::KeyArgs,
    /// State database: `sqlite://path` (created if missing), `sqlite::memory:` or
    /// `postgres://user[:password]@host[:port]/db` (an existing database).
    #[arg(
        long,
        env = "FUNETUN_DB",
        default_value = "sqlite://funetun-orchestrator.db"
    )]
    pub db: String,
    /// Blob store: a directory (created if missing) or `s3://bucket/prefix`
    /// on any S3-compatible server (docs/deploy.md).
    #[arg(long, env = "FUNETUN_BLOBS", default_value = "funetun-blobs")]
    pub blobs: String,
    /// How to reach an `s3://` blob store.
    #[command(flatten)]
    pub s3: S3Args,
    /// Address the HTTP API listens on.
    #[arg(long, env = "FUNETUN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory holding data sets for evaluation (searched before FUNETUN_DATA_DIR and the cache).
    #[arg(long, env = "FUNETUN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Never download missing data sets.
    #[arg(long, env = "FUNETUN_OFFLINE")]
    pub offline: bool,
    /// Threads for aggregation and evaluation.
    #[arg(long, env = "FUNETUN_THREADS", default_value_t = 1)]
    pub threads: usize,
    /// Milliseconds between chain polls.
    #[arg(long, env = "FUNETUN_POLL_MS", default_value_t = 200)]
    pub poll_ms: u64,
    /// Blocks an event must be under before it counts (1 = latest block).
    #[arg(long, env = "FUNETUN_CONFIRMATIONS", default_value_t = 1)]
    pub confirmations: u64,
    /// First block to read events from on a new database (the contract's deployment block).
    #[arg(long, env = "FUNETUN_START_BLOCK", default_value_t = 0)]
    pub start_block: u64,
    /// Accepted clock difference of signed requests, in seconds.
    #[arg(long, env = "FUNETUN_AUTH_WINDOW_SECS", default_value_t = 60)]
    pub auth_window_secs: u64,
    /// Sustained requests per second per address.
    #[arg(long, env = "FUNETUN_RATE_LIMIT", default_value_t = 200.0)]
    pub rate_limit: f64,
    /// Burst of requests per address.
    #[arg(long, env = "FUNETUN_RATE_BURST", default_value_t = 400.0)]
    pub rate_burst: f64,
    /// Most HTTP connections open at once; more are answered 503 and closed.
    #[arg(long, env = "FUNETUN_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request head, and how long an
    /// idle connection is kept open.
    #[arg(long, env = "FUNETUN_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    pub header_timeout_secs: u64,
    /// This replica's name, distinct among the replicas sharing one
    /// PostgreSQL database (docs/deploy.md); `replica-<pid>` when unset.
    #[arg(long, env = "FUNETUN_REPLICA")]
    pub replica: Option<String>,
}

/// How to reach an S3-compatible blob store. Unset flags fall back to the
/// standard `AWS_*` environment variables; the secret key is read from
/// `AWS_SECRET_ACCESS_KEY` only, so it never shows in a process listing.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct S3Args {
    /// The S3 server's URL, e.g. http://127.0.0.1:3900 (AWS when unset).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub s3_endpoint: Option<String>,
    /// The region the S3 server expects.
    #[arg(long, env = "AWS_REGION")]
    pub s3_region: Option<String>,
    /// The S3 access key id (its secret comes from AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// Answer blob downloads with a redirect to a presigned URL of the
    /// bucket, so blob bytes do not pass through the orchestrator
    /// (participants must reach the S3 endpoint; they check hashes anyway).
    #[arg(long, env = "FUNETUN_S3_REDIRECT")]
    pub s3_redirect: bool,
}

impl S3Args {
    /// Where blobs live: `raw` is a directory or `s3://bucket/prefix`.
    pub fn location(&self, raw: &str) -> anyhow::Result<BlobLocation> {
        let mut location = BlobLocation::parse(raw)?;
        match &mut location {
            BlobLocation::S3(s3) => {
                s3.endpoint = self.s3_endpoint.clone();
                s3.region = self.s3_region.clone();
                s3.access_key_id = self.s3_access_key_id.clone();
                s3.redirect = self.s3_redirect;
            }
            BlobLocation::Dir(_) if self.s3_redirect => anyhow::bail!(
                "--s3-redirect needs an s3://bucket/prefix blob store, not the directory `{raw}`"
            ),
            BlobLocation::Dir(_) => {}
        }
        Ok(location)
    }
}

/// Runs `funetun orchestrator` until Ctrl-C or SIGTERM.
pub fn run(args: OrchestratorArgs) -> anyhow::Result<()> {
    let key = args.key.signer()?;
    let mut config = Config::new(args.rpc, args.contract, key);
    config.db_url = args.db;
    config.blobs = args.s3.location(&args.blobs)?;
    config.listen = args.listen;
    config.data_dir = args.data_dir;
    config.offline = args.offline;
    config.threads = args.threads.max(1);
    config.poll_interval = Duration::from_millis(args.poll_ms.max(1));
    config.confirmations = args.confirmations.max(1);
    config.start_block = args.start_block;
    config.auth.timestamp_window = Duration::from_secs(args.auth_window_secs);
    config.auth.rate_per_sec = args.rate_limit;
    config.auth.rate_burst = args.rate_burst;
    config.http.max_connections = args.max_connections.max(1);
    config.http.header_read = Duration::from_secs(args.header_timeout_secs.max(1));
    if let Some(name) = args.replica {
        config.replica = name;
    }
    runtime()?
        .block_on(funetun_orchestrator::run(config, shutdown_signal()))
        .context("orchestrator")
}

/// Arguments of `funetun bench api`.
#[derive(Debug, clap::Args)]
pub struct ApiBenchArgs {
    /// Concurrent connections of the load process.
    #[arg(long, env = "FUNETUN_BENCH_CONNECTIONS", default_value_t = 8)]
    pub connections: usize,
    /// Registered trainers the connections sign as (at most 8).
    #[arg(long, env = "FUNETUN_BENCH_TRAINERS", default_value_t = 8)]
    pub trainers: usize,
    /// Seconds to measure.
    #[arg(long, env = "FUNETUN_BENCH_SECONDS", default_value_t = 5.0)]
    pub seconds: f64,
    /// Also measure on PostgreSQL, after SQLite in the same run, with one
    /// replica and then with two: a server URL whose user may create
    /// databases (each run gets a fresh one); `scripts/services.sh up DIR`
    /// starts a throw-away server.
    #[arg(long, env = "FUNETUN_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of the load process `funetun bench api-client` (started by `bench api`).
#[derive(Debug, clap::Args)]
pub struct ApiClientArgs {
    /// The orchestrator's URL, or its replicas' separated by commas
    /// (connection i sends to the i-th, round robin).
    #[arg(long)]
    pub url: String,
    /// The job to lease from.
    #[arg(long)]
    pub job: u64,
    /// Trainer keys, comma-separated hex.
    #[arg(long, env = "FUNETUN_BENCH_KEYS", hide_env_values = true)]
    pub keys: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
}

/// `funetun bench api`: a dev chain and an orchestrator here, the load from
/// a second process of this binary.
pub fn bench_api(args: ApiBenchArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let sqlite = measure_api(&args, None, 1).await?;
        let Some(server) = args.postgres.as_deref() else {
            if args.json {
                print_json(&sqlite)?;
            }
            return Ok(());
        };
        let postgres = measure_api(&args, Some(server), 1).await?;
        let replicated = measure_api(&args, Some(server), 2).await?;
        let rate = |r: &serde_json::Value| r["requests_per_sec"].as_f64().unwrap_or(0.0);
        let ratio = rate(&postgres) / rate(&sqlite).max(f64::MIN_POSITIVE);
        let ratio_replicas = rate(&replicated) / rate(&sqlite).max(f64::MIN_POSITIVE);
        eprintln!(
            "against SQLite in this run: PostgreSQL {ratio:.2}x, PostgreSQL with 2 replicas {ratio_replicas:.2}x"
        );
        if args.json {
            print_json(&serde_json::json!({
                "sqlite": sqlite,
                "postgres": postgres,
                "postgres_2_replicas": replicated,
                "ratio": ratio,
                "ratio_2_replicas": ratio_replicas,
            }))?;
        }
        Ok(())
    })
}

/// One `bench api` measurement: a fresh chain and orchestrator on SQLite, or
/// `replicas` orchestrator replicas on a fresh database of the PostgreSQL
/// server `postgres`; the load process's report.
async fn measure_api(
    args: &ApiBenchArgs,
    postgres: Option<&str>,
    replicas: usize,
) -> anyhow::Result<serde_json::Value> {
    let backend = match (postgres, replicas) {
        (None, _) => "SQLite".to_string(),
        (Some(_), 1) => "PostgreSQL".to_string(),
        (Some(_), n) => format!("PostgreSQL, {n} replicas"),
    };
    let dir = tempfile::tempdir()?;
    let prepared =
        funetun_orchestrator::bench::prepare(dir.path(), args.trainers, postgres, replicas).await?;
    let urls: Vec<String> = prepared.replicas.iter().map(|o| o.url()).collect();
    let keys: Vec<String> = prepared.trainers.iter().map(crate::keys::key_hex).collect();
    let report = load_process(
        &[
            "bench",
            "api-client",
            "--url",
            &urls.join(","),
            "--job",
            &prepared.job_id.to_string(),
            "--connections",
            &args.connections.to_string(),
            "--seconds",
            &args.seconds.to_string(),
        ],
        &keys,
    )
    .await?;
    eprintln!(
        "{backend}: signed lease requests: {:.0}/s over {} connections, p50 {:.2} ms, p99 {:.2} ms, {} errors",
        report["requests_per_sec"].as_f64().unwrap_or(0.0),
        report["connections"],
        report["p50_ms"].as_f64().unwrap_or(0.0),
        report["p99_ms"].as_f64().unwrap_or(0.0),
        report["errors"],
    );
    for replica in prepared.replicas {
        replica.shutdown().await?;
    }
    prepared.chain.stop().await?;
    Ok(report)
}

/// Runs this binary with `args` as a load process (signing with `keys`,
/// passed in FUNETUN_BENCH_KEYS) and returns the JSON report it prints last.
async fn load_process(args: &[&str], keys: &[String]) -> anyhow::Result<serde_json::Value> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let output = tokio::process::Command::new(exe)
        .args(args)
        .env("FUNETUN_BENCH_KEYS", keys.join(","))
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("starting the load process")?;
    anyhow::ensure!(
        output.status.success(),
        "the load process failed ({})",
        output.status
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("the load process printed no report")?;
    Ok(serde_json::from_str(line)?)
}

/// The load process of `funetun bench api`.
pub fn api_client(args: ApiClientArgs) -> anyhow::Result<()> {
    let keys = args
        .keys
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .map(funetun_chain::keys::parse_key)
        .collect::<Result<Vec<_>, _>>()
        .context("--keys")?;
    let report = runtime()?.block_on(funetun_orchestrator::bench::fire(
        &args.url,
        &keys,
        args.job,
        args.connections,
        Duration::from_secs_f64(args.seconds.max(0.1)),
    ))?;
    print_json(&report)
}

/// Arguments of `funetun bench tasks`.
#[derive(Debug, clap::Args)]
pub struct TasksBenchArgs {
    /// Tiny tasks to dispatch (the `pi` example on 16 samples, quorum 2).
    #[arg(long, default_value_t = 2000)]
    pub tasks: usize,
    /// Workers (registered trainers, at most 8).
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Seconds of the training lease measurement beside it.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of the load process `funetun bench tasks-client`.
#[derive(Debug, clap::Args)]
pub struct TasksClientArgs {
    /// The orchestrator's URL.
    #[arg(long)]
    pub url: String,
    /// Tasks to dispatch.
    #[arg(long)]
    pub tasks: usize,
    /// The owner's key, then the workers' keys, separated by commas.
    #[arg(long, env = "FUNETUN_BENCH_KEYS", hide_env_values = true)]
    pub keys: String,
}

/// `funetun bench tasks`: tiny generic tasks dispatched through an
/// orchestrator (SQLite) with quorum 2, beside signed training leases per
/// second on a fresh orchestrator of the same kind in the same run.
pub fn bench_tasks(args: TasksBenchArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let leases = measure_api(
            &ApiBenchArgs {
                connections: 8,
                trainers: 8,
                seconds: args.seconds,
                postgres: None,
                json: false,
            },
            None,
            1,
        )
        .await?;
        let dir = tempfile::tempdir()?;
        let prepared =
            funetun_orchestrator::bench::prepare(dir.path(), args.workers.clamp(2, 8), None, 1)
                .await?;
        let owner = prepared.chain.accounts()[0].signer();
        let keys: Vec<String> = std::iter::once(&owner)
            .chain(&prepared.trainers)
            .map(crate::keys::key_hex)
            .collect();
        let url = prepared.replicas[0].url();
        let tasks = args.tasks.to_string();
        let report = load_process(
            &["bench", "tasks-client", "--url", &url, "--tasks", &tasks],
            &keys,
        )
        .await?;
        for replica in prepared.replicas {
            replica.shutdown().await?;
        }
        prepared.chain.stop().await?;
        let tasks_per_sec = report["tasks_per_sec"].as_f64().unwrap_or(0.0);
        let requests_per_sec = report["requests_per_sec"].as_f64().unwrap_or(0.0);
        let lease_rate = leases["requests_per_sec"].as_f64().unwrap_or(0.0);
        let ratio = tasks_per_sec / lease_rate.max(f64::MIN_POSITIVE);
        eprintln!(
            "generic tasks, quorum 2, {} workers: {tasks_per_sec:.0} tasks/s ({} tasks in {:.2} s, \
             {requests_per_sec:.0} signed requests/s, {} wrong); training leases {lease_rate:.0}/s; \
             tasks against training leases in this run: {ratio:.2}x",
            report["workers"],
            report["tasks"],
            report["seconds"].as_f64().unwrap_or(0.0),
            report["wrong"],
        );
        if args.json {
            print_json(&serde_json::json!({
                "dispatch": report,
                "leases": leases,
                "tasks_per_sec": tasks_per_sec,
                "lease_requests_per_sec": lease_rate,
                "ratio_tasks_to_leases": ratio,
            }))?;
        }
        Ok(())
    })
}

/// The load process of `funetun bench tasks`.
pub fn tasks_client(args: TasksClientArgs) -> anyhow::Result<()> {
    let mut keys = args
        .keys
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .map(funetun_chain::keys::parse_key)
        .collect::<Result<Vec<_>, _>>()
        .context("--keys")?;
    anyhow::ensure!(
        keys.len() >= 3,
        "--keys: the owner's and at least two workers'"
    );
    let owner = keys.remove(0);
    let report = runtime()?.block_on(funetun_orchestrator::bench::dispatch(
        &args.url, owner, &keys, args.tasks,
    ))?;
    print_json(&report)
}
