//! `funetun worker`: runs generic WebAssembly tasks for an orchestrator.
//! It leases a replica, fetches the module (kept by hash), runs it in the
//! sandbox under the limits the lease names, and reports the result — an
//! output or a failure class, which is a result too.
//!
//! Workers are registered trainers: the orchestrator hands replicas to any
//! address with the trainer role and the minimum stake (docs/tasks.md).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use anyhow::Context as _;
use funetun_client::Client;
use funetun_compute::{Input, Limits, Outcome, Program, Sandbox};
use funetun_core::compute::{ReplicaLease, ReplicaReport};

/// Arguments of `funetun worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Base URL of the orchestrator (replicas' URLs separated by commas).
    #[arg(
        long,
        env = "FUNETUN_ORCHESTRATOR",
        default_value = "http://127.0.0.1:8080"
    )]
    orchestrator: String,
    #[command(flatten)]
    key: crate::keys::KeyArgs,
    /// Stop after this many replicas.
    #[arg(long)]
    max_tasks: Option<u64>,
    /// Stop after this many seconds without work (default: never).
    #[arg(long)]
    idle_exit_secs: Option<u64>,
    /// Seconds between asks when there is no work.
    #[arg(long, default_value_t = 0.5)]
    poll_secs: f64,
    /// Cheat, for drills and the demo: `wrong-output` runs each replica and
    /// reports a made-up output instead (honest replicas outvote it, and a
    /// funded task slashes this worker's stake).
    #[arg(long, value_enum, value_name = "ATTACK")]
    attack: Option<WorkerAttack>,
}

/// How a cheating worker cheats (`funetun worker --attack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkerAttack {
    /// Report `{"forged": true}` for every replica.
    WrongOutput,
}

/// Runs `funetun worker`.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.orchestrator, Some(args.key.signer()?));
    let sandbox =
        Arc::new(Sandbox::new().map_err(|e| anyhow::anyhow!("the sandbox did not start: {e}"))?);
    crate::chain::runtime()?.block_on(async {
        let mut programs: HashMap<B256, Program> = HashMap::new();
        let mut done = 0u64;
        let mut idle_since = Instant::now();
        let poll = Duration::from_secs_f64(args.poll_secs.clamp(0.01, 60.0));
        tracing::info!(worker = %client.address().unwrap_or_default(), "worker started");
        // One signal stream for the whole run: a signal that arrives while
        // the worker waits between asks still stops it.
        let shutdown = crate::chain::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            if args.max_tasks.is_some_and(|max| done >= max) {
                break;
            }
            let lease = tokio::select! {
                lease = client.lease_replica() => lease,
                () = &mut shutdown => break,
            };
            match lease {
                Ok(Some(lease)) => {
                    let outcome = run_lease(&client, &sandbox, &mut programs, &lease).await?;
                    let mut result = outcome.to_run_result();
                    if args.attack == Some(WorkerAttack::WrongOutput) {
                        result = funetun_core::compute::RunResult {
                            output: Some(r#"{"forged":true}"#.into()),
                            error: None,
                            detail: None,
                            fuel_used: outcome.fuel_used,
                        };
                    }
                    let report = ReplicaReport {
                        task_id: lease.task_id,
                        replica: lease.replica,
                        result,
                    };
                    let mut attempt = 0;
                    let ack = loop {
                        match client.report_replica(&report).await {
                            Err(e) if e.is_transient() && attempt < 5 => {
                                attempt += 1;
                                tracing::warn!(error = %e, attempt, "reporting failed; trying again");
                                tokio::time::sleep(poll * 4).await;
                            }
                            other => {
                                break other
                                    .with_context(|| format!("reporting task {}", lease.task_id))?;
                            }
                        }
                    };
                    done += 1;
                    tracing::info!(
                        task = %lease.task_id,
                        replica = lease.replica,
                        digest = %outcome.digest(),
                        fuel = outcome.fuel_used,
                        task_status = ack.status.as_str(),
                        replica_status = ack.replica_status.as_str(),
                        "replica reported"
                    );
                    idle_since = Instant::now();
                }
                Ok(None) => {
                    if args
                        .idle_exit_secs
                        .is_some_and(|s| idle_since.elapsed() >= Duration::from_secs(s))
                    {
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(poll) => {}
                        () = &mut shutdown => break,
                    }
                }
                Err(e) if !e.is_transient() => {
                    return Err(anyhow::Error::new(e).context(
                        "the orchestrator refused this worker (a worker is a registered trainer: \
                         run `funetun trainer` once with this key, or registerTrainer with the minimum stake)",
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "asking for work failed; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(poll * 4) => {}
                        () = &mut shutdown => break,
                    }
                }
            }
        }
        tracing::info!(replicas = done, "worker stopped");
        Ok(())
    })
}

/// Runs one leased replica: a module that cannot be fetched is an error
/// of this worker (nothing is reported); one that does not compile is an
/// `invalid_module` result.
async fn run_lease(
    client: &Client,
    sandbox: &Arc<Sandbox>,
    programs: &mut HashMap<B256, Program>,
    lease: &ReplicaLease,
) -> anyhow::Result<Outcome> {
    let limits = Limits {
        fuel: lease.fuel,
        memory_bytes: usize::try_from(lease.memory_bytes).unwrap_or(usize::MAX),
        output_bytes: usize::try_from(lease.output_bytes).unwrap_or(usize::MAX),
    };
    let input = match Input::new(lease.input.as_bytes().to_vec()) {
        Ok(input) => input,
        Err(e) => anyhow::bail!(
            "the orchestrator leased task {} with a bad input: {e}",
            lease.task_id
        ),
    };
    let program = match programs.get(&lease.module) {
        Some(p) => Ok(p.clone()),
        None => {
            let bytes = client
                .get_blob(lease.module)
                .await
                .with_context(|| format!("fetching module {}", lease.module))?;
            let sb = sandbox.clone();
            let compiled = tokio::task::spawn_blocking(move || sb.compile(&bytes)).await?;
            if let Ok(p) = &compiled {
                programs.insert(lease.module, p.clone());
            }
            compiled
        }
    };
    let sb = sandbox.clone();
    Ok(tokio::task::spawn_blocking(move || match program {
        Ok(program) => sb.run(&program, &input, &limits),
        Err(failure) => Outcome {
            result: Err(failure),
            fuel_used: 0,
        },
    })
    .await?)
}
