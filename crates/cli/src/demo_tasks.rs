//! `funetun demo --preset tasks`: generic WebAssembly tasks through the
//! market on one machine (docs/tasks.md). An embedded chain, the contract
//! and an orchestrator in this process; `funetun worker` processes, the last
//! of which reports made-up outputs; the owner funds a task batch and
//! submits the shipped examples — `pi`, `rounding` judged by its tolerant
//! validator, `sweep` (three learning rates of the MLP, trained by
//! funetun-ml compiled to WebAssembly) and `hostile` (an endless loop, a
//! memory bomb, a 2 MiB answer). The summary counts what was agreed, rejected, paid and slashed,
//! read back from the orchestrator and the chain.

use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::Context as _;
use funetun_chain::JobManager::JobManagerEvents;
use funetun_chain::ledger::http_provider;
use funetun_chain::{ContractParams, Ledger, LedgerConfig};
use funetun_client::Client;
use funetun_compute::examples::example;
use funetun_core::amount::format_eth;
use funetun_core::compute::{
    ComputeStatus, ComputeTaskInfo, Redundancy, ReplicaStatus, TaskSubmission,
};
use funetun_orchestrator::blobs::BlobLocation;
use serde::Serialize;

use crate::demo::{Children, DEMO_ACCOUNTS, DemoArgs};
use crate::output::print_json;

/// What each result in a canonical class is paid.
const RESULT_REWARD_WEI: u64 = 1_000_000_000_000_000;

/// Fuel of the hostile tasks' replicas (the endless loop burns all of it).
const HOSTILE_FUEL: u64 = 200_000_000;

/// The learning rates of the demo's sweep.
const SWEEP_LRS: [f32; 3] = [0.01, 0.05, 0.5];

/// A task the demo submits.
struct DemoTask {
    kind: &'static str,
    input: String,
    validator: bool,
    fuel: Option<u64>,
}

fn tasks() -> Vec<DemoTask> {
    let mut tasks: Vec<DemoTask> = (1..=6)
        .map(|seed| DemoTask {
            kind: "pi",
            input: format!(r#"{{"samples": 200000, "seed": {seed}}}"#),
            validator: false,
            fuel: None,
        })
        .collect();
    for order in ["forward", "pairwise"] {
        tasks.push(DemoTask {
            kind: "rounding",
            input: format!(r#"{{"values": 50000, "seed": 3, "order": "{order}"}}"#),
            validator: true,
            fuel: None,
        });
    }
    for lr in SWEEP_LRS {
        tasks.push(DemoTask {
            kind: "sweep",
            input: format!(r#"{{"lr": {lr}, "optimizer": "momentum", "steps": 40, "seed": 1}}"#),
            validator: false,
            fuel: None,
        });
    }
    for attack in ["loop", "memory", "output"] {
        tasks.push(DemoTask {
            kind: "hostile",
            input: format!(r#"{{"attack": "{attack}"}}"#),
            validator: false,
            fuel: Some(HOSTILE_FUEL),
        });
    }
    tasks
}

/// One worker in the summary.
#[derive(Debug, Serialize)]
pub struct TasksWorker {
    /// Its address.
    pub address: Address,
    /// Whether it reported made-up outputs.
    pub wrong_outputs: bool,
    /// Its replicas judged valid / invalid.
    pub valid: u64,
    /// Its replicas judged invalid.
    pub invalid: u64,
    /// Its credit on the contract, in wei.
    pub credit_wei: String,
    /// What it lost of its stake, in wei.
    pub slashed_wei: String,
    /// Its effective compute in ut (`0.4·D + 0.6·T`, docs/reputation.md):
    /// here the drills it ran on joining whose results agreed.
    pub effective_compute_ut: f64,
}

/// One hostile task in the summary.
#[derive(Debug, Serialize)]
pub struct HostileTask {
    /// Its input.
    pub input: String,
    /// The canonical failure class the quorum agreed on.
    pub class: Option<String>,
}

/// One point of the sweep in the summary: the canonical result.
#[derive(Debug, Serialize)]
pub struct SweepPoint {
    /// The learning rate.
    pub lr: f64,
    /// Test accuracy of the MLP the quorum agreed on (none: no output).
    pub val_accuracy: Option<f64>,
}

/// What `funetun demo --preset tasks --json` prints.
#[derive(Debug, Serialize)]
pub struct TasksSummary {
    /// The task batch that paid the results.
    pub batch: u64,
    /// Tasks submitted.
    pub tasks_submitted: u64,
    /// Tasks a quorum decided (an agreed failure class counts).
    pub tasks_completed: u64,
    /// Tasks given up without a quorum.
    pub tasks_failed: u64,
    /// Replicas in a canonical class.
    pub results_agreed: u64,
    /// Made-up results the quorum outvoted.
    pub wrong_results_rejected: u64,
    /// Made-up results judged valid (must be 0).
    pub wrong_results_accepted: u64,
    /// Paid to the canonical classes, in wei.
    pub paid_wei: String,
    /// Taken from the stakes of workers outside them, in wei.
    pub slashed_wei: String,
    /// Whether every hostile task ended as an agreed failure class within
    /// its limits while the honest workers kept working.
    pub hostile_contained: bool,
    /// The hostile tasks.
    pub hostile: Vec<HostileTask>,
    /// The sweep's points, as agreed.
    pub sweep: Vec<SweepPoint>,
    /// Gas of the settlements per paid result.
    pub gas_per_accepted_result: u64,
    /// The workers.
    pub workers: Vec<TasksWorker>,
    /// Wall-clock seconds from start to the last settlement.
    pub seconds: f64,
}

/// Runs the tasks demo and prints its summary.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    // Ctrl-C or SIGTERM drops the demo, whose worker processes die with it.
    let summary = crate::chain::runtime()?.block_on(async {
        tokio::select! {
            summary = run_demo(&args) => summary,
            () = crate::chain::shutdown_signal() => {
                anyhow::bail!("interrupted; the workers were stopped")
            }
        }
    })?;
    if args.json {
        print_json(&summary)?;
    } else {
        print_summary(&summary);
    }
    Ok(())
}

/// The tasks demo, returning its summary.
pub async fn run_demo(args: &DemoArgs) -> anyhow::Result<TasksSummary> {
    let started = Instant::now();
    let liars = args.byzantine.max(1);
    anyhow::ensure!(
        args.trainers >= liars + 2,
        "--preset tasks needs two honest workers for a quorum besides the {liars} cheating one(s): \
         --trainers {} is too few",
        args.trainers
    );
    let funded = if args.rpc.is_some() {
        10
    } else {
        DEMO_ACCOUNTS
    };
    anyhow::ensure!(
        args.trainers + 2 <= funded,
        "--trainers is at most {} (the funded dev accounts after owner and orchestrator)",
        funded - 2
    );
    let out = &args.out;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out.join("logs"))
        .with_context(|| format!("creating {}", out.join("logs").display()))?;
    crate::output::log_to_file(&out.join("logs").join("orchestrator.log"))?;

    let (_chain, rpc_url, accounts) = crate::demo::demo_chain(args, funded).await?;
    let params = ContractParams::default();
    let (owner, _) = Ledger::deploy(
        http_provider(&rpc_url)?,
        accounts[0].clone(),
        &params,
        LedgerConfig::default(),
    )
    .await
    .with_context(|| format!("deploying the contract on {rpc_url}"))?;
    let first_block = owner.block_number().await?;
    let leader = accounts[1].clone();
    let mut config = funetun_orchestrator::Config::new(&rpc_url, owner.contract(), leader.clone());
    config.db_url = format!("sqlite://{}", out.join("orchestrator.db").display());
    config.blobs = BlobLocation::Dir(out.join("blobs"));
    config.listen = args.listen;
    config.offline = true;
    config.poll_interval = Duration::from_millis(50);
    // A lease lapses after 10 s here (600 s by default), should a worker
    // stop without reporting; the cheating worker's leases lapse at once when
    // a slash leaves it below the minimum stake.
    config.replica_lease = Duration::from_secs(10);
    let orchestrator = funetun_orchestrator::start(config)
        .await
        .context("starting the orchestrator")?;
    let url = orchestrator.url();

    // Workers are registered trainers.
    let worker_keys = &accounts[2..2 + args.trainers];
    for key in worker_keys {
        owner
            .with_signer(key.clone())
            .register_trainer(params.min_stake)
            .await
            .context("registering a worker")?;
    }

    // The owner funds a batch that covers every task's most results.
    let tasks = tasks();
    let redundancy = Redundancy::default();
    let reward = U256::from(RESULT_REWARD_WEI);
    let deposit =
        reward * U256::from(redundancy.max_total_results) * U256::from(tasks.len() as u64);
    let (batch, _) = owner
        .create_task_batch(
            funetun_core::keccak256(b"funetun demo --preset tasks"),
            leader.address(),
            reward,
            3_600,
            deposit,
        )
        .await
        .context("funding the task batch")?;
    let batch: u64 = batch.saturating_to();
    let client = Client::new(&url, Some(accounts[0].clone()));
    let module_of = |name: &str| -> anyhow::Result<&'static [u8]> {
        Ok(example(name)
            .with_context(|| format!("the example {name} is not shipped"))?
            .wasm)
    };
    let validator = client
        .put_data(module_of("rounding-valid")?.to_vec())
        .await?;
    let mut submitted: Vec<(B256, &DemoTask)> = Vec::new();
    for task in &tasks {
        let module = client.put_data(module_of(task.kind)?.to_vec()).await?;
        let id = client
            .submit_compute_task(&TaskSubmission {
                module,
                input: task.input.clone(),
                validator: task.validator.then_some(validator),
                redundancy,
                fuel: task.fuel,
                batch: Some(batch),
            })
            .await
            .with_context(|| format!("submitting {} {}", task.kind, task.input))?
            .task_id;
        submitted.push((id, task));
    }
    eprintln!(
        "funetun demo --preset tasks: {} tasks in batch {batch} ({} deposit, {} per result); {} \
         workers, the last {liars} reporting made-up outputs; orchestrator {url}",
        submitted.len(),
        format_eth(deposit),
        format_eth(reward),
        args.trainers,
    );

    // The workers, as processes of this binary: the cheating ones first,
    // and the honest ones once a cheat holds a replica, so the demo always
    // shows a made-up result outvoted.
    let exe = std::env::current_exe().context("finding the funetun binary")?;
    let mut children = Children { procs: Vec::new() };
    // A cheating worker stops once a slash takes its stake below the
    // minimum (the orchestrator refuses it): expected, so apart.
    let mut cheats = Children { procs: Vec::new() };
    let liar_addresses: Vec<Address> = worker_keys[args.trainers - liars..]
        .iter()
        .map(|k| k.address())
        .collect();
    let spawn = |i: usize, key: &PrivateKeySigner, group: &mut Children| {
        let liar = liar_addresses.contains(&key.address());
        let name = format!("worker-{}", i + 1);
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["worker", "--orchestrator", &url, "--poll-secs", "0.05"])
            .env("FUNETUN_KEY", crate::keys::key_hex(key))
            .env("FUNETUN_LOG", "info")
            .env_remove("FUNETUN_JSON");
        if liar {
            cmd.args(["--attack", "wrong-output"]);
        }
        group.spawn(&name, cmd, &out.join("logs").join(format!("{name}.log")))
    };
    for (i, key) in worker_keys.iter().enumerate().skip(args.trainers - liars) {
        spawn(i, key, &mut cheats)?;
    }
    let ids: Vec<B256> = submitted.iter().map(|(id, _)| *id).collect();
    let logs = out.join("logs");
    poll_tasks(
        &client,
        &ids,
        &mut cheats,
        120,
        &logs,
        "a cheating worker's lease",
        |infos| {
            infos
                .iter()
                .flat_map(|t| &t.replicas)
                .any(|r| liar_addresses.contains(&r.worker))
        },
    )
    .await?;
    for (i, key) in worker_keys.iter().enumerate().take(args.trainers - liars) {
        spawn(i, key, &mut children)?;
    }

    // Until every task is decided and settled on-chain.
    let infos = poll_tasks(
        &client,
        &ids,
        &mut children,
        600,
        &logs,
        "every task settled",
        |infos| {
            infos
                .iter()
                .all(|t| t.status != ComputeStatus::Open && t.settled)
        },
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    // Every worker drilled on joining; wait until each honest one's drill
    // agreed with another's (a liar's never does).
    let honest: Vec<Address> = worker_keys
        .iter()
        .map(PrivateKeySigner::address)
        .filter(|a| !liar_addresses.contains(a))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let people = loop {
        let people = client.participants().await?;
        let drilled = honest
            .iter()
            .all(|a| people.iter().any(|p| p.address == *a && p.reputation > 0.0));
        if drilled {
            break people;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the honest workers' drills did not agree within 60 s; see {}",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The honest workers kept running through the hostile tasks.
    let honest_alive = children.failed().is_none();
    children.finish(Duration::ZERO);
    cheats.finish(Duration::ZERO);

    let mut summary = TasksSummary {
        batch,
        tasks_submitted: submitted.len() as u64,
        tasks_completed: 0,
        tasks_failed: 0,
        results_agreed: 0,
        wrong_results_rejected: 0,
        wrong_results_accepted: 0,
        paid_wei: String::new(),
        slashed_wei: String::new(),
        hostile_contained: honest_alive,
        hostile: Vec::new(),
        sweep: Vec::new(),
        gas_per_accepted_result: 0,
        workers: Vec::new(),
        seconds,
    };
    for (info, (_, task)) in infos.iter().zip(&submitted) {
        match info.status {
            ComputeStatus::Done => summary.tasks_completed += 1,
            _ => summary.tasks_failed += 1,
        }
        for r in &info.replicas {
            let liar = liar_addresses.contains(&r.worker);
            match (r.status, liar) {
                (ReplicaStatus::Valid, false) => summary.results_agreed += 1,
                (ReplicaStatus::Valid, true) => summary.wrong_results_accepted += 1,
                (ReplicaStatus::Invalid, true) => summary.wrong_results_rejected += 1,
                _ => {}
            }
        }
        if task.kind == "sweep" {
            let field = |text: &str, name: &str| -> Option<f64> {
                serde_json::from_str::<serde_json::Value>(text).ok()?[name].as_f64()
            };
            let output = info.result.as_ref().and_then(|r| r.output.as_deref());
            summary.sweep.push(SweepPoint {
                lr: field(&task.input, "lr").unwrap_or_default(),
                val_accuracy: output.and_then(|o| field(o, "val_accuracy")),
            });
        }
        if task.kind == "hostile" {
            let class = info.result.as_ref().and_then(|r| r.error.clone());
            let contained = info.status == ComputeStatus::Done
                && matches!(class.as_deref(), Some("fuel" | "memory" | "output_size"));
            summary.hostile_contained &= contained;
            summary.hostile.push(HostileTask {
                input: task.input.clone(),
                class,
            });
        }
    }

    // The money, from the chain.
    let (mut paid, mut slashed, mut gas, mut results) = (U256::ZERO, U256::ZERO, 0u64, 0u64);
    for event in owner.events(first_block, None).await? {
        if let JobManagerEvents::TaskSettled(e) = &event.event
            && e.batchId == U256::from(batch)
        {
            let n: u64 = e.paid.saturating_to();
            paid += reward * e.paid;
            slashed += e.slashedWei;
            results += n;
            if let Some(receipt) = owner.receipt(event.tx_hash).await? {
                gas += receipt.gas_used;
            }
        }
    }
    summary.paid_wei = paid.to_string();
    summary.slashed_wei = slashed.to_string();
    summary.gas_per_accepted_result = gas.checked_div(results).unwrap_or(0);
    for key in worker_keys {
        let address = key.address();
        let account = owner.account(address).await?;
        let count = |s: ReplicaStatus| {
            infos
                .iter()
                .flat_map(|t| &t.replicas)
                .filter(|r| r.worker == address && r.status == s)
                .count() as u64
        };
        summary.workers.push(TasksWorker {
            address,
            wrong_outputs: liar_addresses.contains(&address),
            valid: count(ReplicaStatus::Valid),
            invalid: count(ReplicaStatus::Invalid),
            credit_wei: account.credit.to_string(),
            slashed_wei: params.min_stake.saturating_sub(account.stake).to_string(),
            effective_compute_ut: people
                .iter()
                .find(|p| p.address == address)
                .map_or(0.0, |p| p.reputation),
        });
    }
    orchestrator.shutdown().await?;
    Ok(summary)
}

/// Asks for every task in `ids` until `done` holds of them; fails when a
/// process of `group` exited with an error or after `limit_secs`.
async fn poll_tasks(
    client: &Client,
    ids: &[B256],
    group: &mut Children,
    limit_secs: u64,
    logs: &std::path::Path,
    waiting_for: &str,
    done: impl Fn(&[ComputeTaskInfo]) -> bool,
) -> anyhow::Result<Vec<ComputeTaskInfo>> {
    let deadline = Instant::now() + Duration::from_secs(limit_secs);
    loop {
        let mut infos = Vec::with_capacity(ids.len());
        for id in ids {
            infos.push(client.compute_task(*id).await?);
        }
        if done(&infos) {
            return Ok(infos);
        }
        if let Some(failed) = group.failed() {
            anyhow::bail!("{failed}; see {}", logs.display());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no {waiting_for} after {limit_secs} s; see {}",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn print_summary(s: &TasksSummary) {
    let wei = |text: &str| format_eth(text.parse::<U256>().unwrap_or_default());
    println!(
        "{} of {} tasks decided in {:.1} s ({} without a quorum); {} results agreed",
        s.tasks_completed, s.tasks_submitted, s.seconds, s.tasks_failed, s.results_agreed
    );
    println!(
        "made-up results: {} rejected, {} accepted; paid {}, slashed {}, {} gas per paid result",
        s.wrong_results_rejected,
        s.wrong_results_accepted,
        wei(&s.paid_wei),
        wei(&s.slashed_wei),
        s.gas_per_accepted_result
    );
    for h in &s.hostile {
        println!(
            "hostile {}: {}",
            h.input,
            h.class.as_deref().unwrap_or("no agreed failure class")
        );
    }
    for p in &s.sweep {
        match p.val_accuracy {
            Some(a) => println!("sweep lr {}: test accuracy {a:.3}", p.lr),
            None => println!("sweep lr {}: no agreed output", p.lr),
        }
    }
    println!(
        "hostile tasks contained: {}",
        if s.hostile_contained { "yes" } else { "NO" }
    );
    for w in &s.workers {
        println!(
            "  worker {}{}: {} valid, {} invalid, credit {}, slashed {}, effective compute {:.6} ut",
            w.address,
            if w.wrong_outputs { " (cheats)" } else { "" },
            w.valid,
            w.invalid,
            wei(&w.credit_wei),
            wei(&w.slashed_wei),
            w.effective_compute_ut
        );
    }
}
