//! The measurement behind `funetun bench api`: signed lease requests per
//! second against a real orchestrator (embedded dev chain, SQLite on disk or
//! a fresh database on a PostgreSQL server).
//!
//! [`prepare`] starts the chain and an orchestrator, creates a job with one
//! shard per trainer and registers the trainers; [`fire`] (run in a second
//! process by the CLI, so client and server do not share a runtime) sends
//! signed `POST /v1/tasks` from several connections for a while and reports
//! throughput and latency percentiles. After its first lease each trainer
//! holds a live lease, so the measured path is the full authenticated,
//! role-checked, idempotent lease decision against SQLite.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy_primitives::U256;
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::ledger::NewJob;
use funetun_chain::{ContractParams, DevChain, DevChainConfig, Ledger, LedgerConfig};
use funetun_client::Client;
use funetun_core::JobSpec;
use funetun_core::api::{Capacity, LeaseRequest};
use serde::Serialize;

use crate::blobs::BlobLocation;
use crate::error::{Error, Result};
use crate::{Config, Orchestrator};

/// A prepared environment: chain, orchestrator replicas, a job, registered trainers.
pub struct Prepared {
    /// The dev chain (kept alive).
    pub chain: DevChain,
    /// The orchestrator under test: one, or replicas on one database
    /// (in this process, each with its own pools, caches and listener).
    pub replicas: Vec<Orchestrator>,
    /// The job to lease from.
    pub job_id: u64,
    /// Registered trainer keys.
    pub trainers: Vec<PrivateKeySigner>,
}

/// Starts a dev chain and an orchestrator (state under `dir`, or in a fresh
/// database on the PostgreSQL server `postgres`, where `replicas` of it
/// share the database and the blob directory), creates a job and registers
/// `trainers` trainers (at most 8).
pub async fn prepare(
    dir: &Path,
    trainers: usize,
    postgres: Option<&str>,
    replicas: usize,
) -> Result<Prepared> {
    let trainers = trainers.clamp(1, 8);
    let chain = DevChain::start(DevChainConfig::default()).await?;
    let accounts = chain.accounts().to_vec();
    let owner_key = accounts[0].signer();
    let provider = funetun_chain::ledger::http_provider(&chain.rpc_url())?;
    let ledger_config = LedgerConfig {
        poll_interval: Duration::from_millis(5),
        ..LedgerConfig::default()
    };
    let (owner, _) = Ledger::deploy(
        provider,
        owner_key.clone(),
        &ContractParams::default(),
        ledger_config.clone(),
    )
    .await?;
    let mut config = Config::new(chain.rpc_url(), owner.contract(), accounts[1].signer());
    config.db_url = match postgres {
        Some(server) => crate::store::fresh_postgres_database(server, "bench").await?,
        None => format!("sqlite://{}", dir.join("state.db").display()),
    };
    config.blobs = BlobLocation::Dir(dir.join("blobs"));
    config.listen = "127.0.0.1:0".parse().expect("a socket address");
    config.poll_interval = Duration::from_millis(50);
    config.auth.rate_per_sec = 1e9;
    config.auth.rate_burst = 1e9;
    // The load measures dispatch; a drill per worker is a one-time cost
    // that the dispatch load's workers (which run only `pi`) cannot run.
    config.drill_every = None;
    let replicas = if postgres.is_some() {
        replicas.max(1)
    } else {
        1
    };
    let mut started = Vec::with_capacity(replicas);
    for i in 0..replicas {
        let mut config = config.clone();
        config.replica = format!("replica-{}", i + 1);
        started.push(crate::start(config).await?);
    }
    let orchestrator = &started[0];
    let spec = JobSpec {
        name: "bench-api".into(),
        dataset: funetun_ml::DatasetName::Synthetic(0),
        rounds: 1,
        shards: trainers as u32,
        steps: 1,
        round_timeout_secs: 86_400,
        lease_secs: 86_400,
        ..JobSpec::default()
    };
    let text = spec.to_toml().into_bytes();
    let owner_client = Client::new(&orchestrator.url(), Some(owner_key));
    let spec_hash = owner_client.put_spec(text).await.map_err(client_error)?;
    let (job_id, _) = owner
        .create_job(&NewJob {
            spec_hash,
            leader: orchestrator.address(),
            base_reward: spec
                .base_reward_wei()
                .map_err(|e| Error::Config(e.to_string()))?,
            bonus_reward: U256::ZERO,
            validation_reward: spec
                .validation_reward_wei()
                .map_err(|e| Error::Config(e.to_string()))?,
            rounds: spec.rounds,
            quorum: spec.validation.quorum,
            challenge_window: spec.validation.challenge_window_secs,
            deposit: U256::from(10u64).pow(U256::from(18u64)),
        })
        .await?;
    let job_id: u64 = job_id.saturating_to();
    let mut keys = Vec::with_capacity(trainers);
    for account in &accounts[2..2 + trainers] {
        let ledger = owner.with_signer(account.signer());
        ledger
            .register_trainer(ContractParams::default().min_stake)
            .await?;
        keys.push(account.signer());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = owner_client.jobs().await.map_err(client_error)?;
        if jobs
            .iter()
            .any(|j| j.job_id == job_id && j.status == funetun_core::protocol::JobStatus::Active)
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Inconsistent(
                "the bench job did not start within a minute".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Prepared {
        chain,
        replicas: started,
        job_id,
        trainers: keys,
    })
}

fn client_error(e: funetun_client::ClientError) -> Error {
    Error::Config(format!("bench client: {e}"))
}

/// What [`fire`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Successful lease requests per second.
    pub requests_per_sec: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Concurrent connections.
    pub connections: usize,
    /// Seconds measured.
    pub seconds: f64,
}

/// Sends signed lease requests for `job_id` from `connections` concurrent
/// connections (connection i signs with `keys[i % len]` and sends to the
/// i-th of the comma-separated `url`s, round robin) for `duration`, after a
/// short warm-up.
pub async fn fire(
    url: &str,
    keys: &[PrivateKeySigner],
    job_id: u64,
    connections: usize,
    duration: Duration,
) -> Result<LoadReport> {
    if keys.is_empty() {
        return Err(Error::Config("no trainer keys to sign with".into()));
    }
    let connections = connections.max(1);
    let request = LeaseRequest {
        job_id,
        capacity: Capacity::M,
        platform: None,
        holding: None,
    };
    let urls: Vec<&str> = url.split(',').map(str::trim).collect();
    let clients: Vec<Client> = (0..connections)
        .map(|i| Client::new(urls[i % urls.len()], Some(keys[i % keys.len()].clone())))
        .collect();
    for client in &clients {
        client.lease_task(&request).await.map_err(client_error)?;
    }
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for client in clients {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            while Instant::now() < end {
                let t0 = Instant::now();
                match client.lease_task(&request).await {
                    Ok(_) => latencies.push(t0.elapsed().as_secs_f64()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if latencies.is_empty() {
            0.0
        } else {
            let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
            latencies[i] * 1000.0
        }
    };
    Ok(LoadReport {
        requests_per_sec: latencies.len() as f64 / seconds,
        p99_ms: pct(0.99),
        p50_ms: pct(0.50),
        requests: latencies.len() as u64,
        errors,
        connections,
        seconds,
    })
}

/// What [`dispatch`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct DispatchReport {
    /// Tasks submitted and decided.
    pub tasks: u64,
    /// Replicas per task (the quorum).
    pub quorum: u32,
    /// Workers.
    pub workers: usize,
    /// Seconds from the first submission until every task was decided.
    pub seconds: f64,
    /// Tasks decided per second.
    pub tasks_per_sec: f64,
    /// Signed requests per second (bulk submissions and exchanges).
    pub requests_per_sec: f64,
    /// Tasks whose canonical result differs from the local run's (0).
    pub wrong: u64,
}

/// Tasks per bulk submission in [`dispatch`].
const BULK: usize = 100;

/// Replicas a [`dispatch`] worker holds at a time.
const HELD: u32 = 16;

/// Submits `tasks` tiny tasks (the `pi` example on 16 samples) with quorum
/// 2 from `owner`, [`BULK`] to a request, while `workers` (registered
/// trainers) exchange finished replicas for new ones, [`HELD`] at a time,
/// and run them in the sandbox, until every task is decided.
pub async fn dispatch(
    url: &str,
    owner: PrivateKeySigner,
    workers: &[PrivateKeySigner],
    tasks: usize,
) -> Result<DispatchReport> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use funetun_compute::{Input, Limits, Sandbox};
    use funetun_core::compute::{
        ComputeStatus, Exchange, Redundancy, ReplicaReport, TaskSubmission,
    };

    if workers.len() < 2 {
        return Err(Error::Config("quorum 2 needs at least 2 workers".into()));
    }
    let pi = funetun_compute::examples::example("pi")
        .ok_or_else(|| Error::Config("the pi example is not shipped".into()))?
        .wasm;
    let sandbox = Arc::new(
        Sandbox::new().map_err(|e| Error::Config(format!("the sandbox did not start: {e}")))?,
    );
    let program = sandbox
        .compile(pi)
        .map_err(|e| Error::Config(format!("the pi example: {e}")))?;
    let input = r#"{"samples": 16, "seed": 1}"#;
    let expected = sandbox
        .run(
            &program,
            &Input::new(input.as_bytes().to_vec()).map_err(|e| Error::Config(e.to_string()))?,
            &Limits::TASK,
        )
        .to_run_result();
    let owner = Client::new(url, Some(owner));
    let module = owner.put_data(pi.to_vec()).await.map_err(client_error)?;
    let submission = TaskSubmission {
        batch: None,
        module,
        input: input.to_string(),
        validator: None,
        redundancy: Redundancy {
            min_quorum: 2,
            target_nresults: 2,
            ..Redundancy::default()
        },
        fuel: None,
    };
    let decided = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    // Four submitters share the tasks, BULK to a request.
    let submitters = 4usize;
    for s in 0..submitters {
        let owner = owner.clone();
        let submission = submission.clone();
        let requests = requests.clone();
        let count = tasks / submitters + usize::from(s < tasks % submitters);
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(count);
            let mut left = count;
            while left > 0 {
                let n = left.min(BULK);
                let bulk = vec![submission.clone(); n];
                ids.extend(owner.submit_compute_tasks(&bulk).await?);
                requests.fetch_add(1, Ordering::Relaxed);
                left -= n;
            }
            Ok::<_, funetun_client::ClientError>(ids)
        }));
    }
    let mut worker_handles = Vec::new();
    for key in workers {
        let client = Client::new(url, Some(key.clone()));
        let (sandbox, program) = (sandbox.clone(), program.clone());
        let (decided, requests) = (decided.clone(), requests.clone());
        let total = tasks as u64;
        worker_handles.push(tokio::spawn(async move {
            // Each exchange reports what the last one leased and asks for
            // as many again, as a BOINC client's scheduler request does.
            let mut reports = Vec::new();
            while decided.load(Ordering::Relaxed) < total {
                let reply = client
                    .exchange_replicas(&Exchange {
                        reports: std::mem::take(&mut reports),
                        want: HELD,
                    })
                    .await
                    .map_err(client_error)?;
                requests.fetch_add(1, Ordering::Relaxed);
                let done = reply
                    .acks
                    .iter()
                    .filter(|a| a.status == ComputeStatus::Done)
                    .count();
                decided.fetch_add(done as u64, Ordering::Relaxed);
                if reply.leases.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                for lease in reply.leases {
                    let input = Input::new(lease.input.into_bytes())
                        .map_err(|e| Error::Inconsistent(format!("a leased input: {e}")))?;
                    let outcome = sandbox.run(&program, &input, &Limits::TASK);
                    reports.push(ReplicaReport {
                        task_id: lease.task_id,
                        replica: lease.replica,
                        result: outcome.to_run_result(),
                    });
                }
            }
            Ok::<_, Error>(())
        }));
    }
    let mut ids = Vec::with_capacity(tasks);
    for h in handles {
        ids.extend(h.await?.map_err(client_error)?);
    }
    for h in worker_handles {
        h.await??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut wrong = 0u64;
    for id in ids.iter().step_by((tasks / 100).max(1)) {
        let info = owner.compute_task(*id).await.map_err(client_error)?;
        if info.result.as_ref().map(|r| &r.output) != Some(&expected.output) {
            wrong += 1;
        }
    }
    let n = requests.load(Ordering::Relaxed);
    Ok(DispatchReport {
        tasks: tasks as u64,
        quorum: 2,
        workers: workers.len(),
        seconds,
        tasks_per_sec: tasks as f64 / seconds,
        requests_per_sec: n as f64 / seconds,
        wrong,
    })
}
