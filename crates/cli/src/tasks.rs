//! `funetun tasks`: generic WebAssembly tasks. `run-local` runs one in the
//! sandbox a worker uses, on this machine — what a task author tries before
//! paying for replicas; `example` writes a module shipped in the binary;
//! `submit`, `status` and `result` talk to an orchestrator, by the task's
//! persistent id, from any machine.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use alloy_primitives::{B256, U256};
use anyhow::{Context as _, bail};
use funetun_chain::{Ledger, LedgerConfig};
use funetun_client::Client;
use funetun_compute::examples::{EXAMPLES, example};
use funetun_compute::{Input, Limits, Redundancy, Sandbox, Validator};
use funetun_core::amount::{format_eth, parse_amount};
use funetun_core::compute::{ComputeStatus, ComputeTaskInfo, TaskSubmission};

use crate::output::print_json;

/// `funetun tasks …`.
#[derive(Debug, clap::Subcommand)]
pub enum TasksCommand {
    /// Run a task (a WebAssembly module and a JSON input) in the sandbox a
    /// worker uses, here, and print its output or its failure class
    /// (invalid_module, trap, fuel, memory, output_size, bad_output). Exits
    /// 0 with an output, 2 with a failure.
    RunLocal(RunLocalArgs),
    /// Write an example module shipped in this binary (no toolchain
    /// needed); without a name, list them.
    Example(ExampleArgs),
    /// Submit a task to an orchestrator: uploads the module (and the
    /// validator module), prints the task's persistent id.
    Submit(SubmitArgs),
    /// Where a task stands: its replicas, who ran them, their verdicts.
    Status(StatusArgs),
    /// A task's canonical result: its output (exit 0), or its failure
    /// class or why no quorum was reached (exit 2); exit 3 while it is
    /// still open (without --wait).
    Result(ResultArgs),
}

/// Where the orchestrator is.
#[derive(Debug, clap::Args)]
pub struct OrchestratorArg {
    /// Base URL of the orchestrator (replicas' URLs separated by commas).
    #[arg(
        long,
        env = "FUNETUN_ORCHESTRATOR",
        default_value = "http://127.0.0.1:8080"
    )]
    orchestrator: String,
}

/// Arguments of `funetun tasks submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    at: OrchestratorArg,
    #[command(flatten)]
    key: crate::keys::KeyArgs,
    /// The task's module (.wasm).
    #[arg(long)]
    wasm: PathBuf,
    /// The input: JSON text, or @FILE.
    #[arg(long)]
    input: String,
    /// A module exporting `init_valid` and/or `compare_valid` (default:
    /// results must be equal byte for byte).
    #[arg(long)]
    validator_wasm: Option<PathBuf>,
    /// Agreeing results needed.
    #[arg(long, default_value_t = Redundancy::default().min_quorum)]
    min_quorum: u32,
    /// Replicas issued at first (default: --min-quorum).
    #[arg(long)]
    target_nresults: Option<u32>,
    /// Failures tolerated without a quorum before the task is given up.
    #[arg(long, default_value_t = Redundancy::default().max_error_results)]
    max_error_results: u32,
    /// Most replicas ever issued.
    #[arg(long, default_value_t = Redundancy::default().max_total_results)]
    max_total_results: u32,
    /// Adaptive replication: run the task once when its first worker has
    /// a clean record (spot checks aside); new workers are always checked.
    #[arg(long)]
    adaptive: bool,
    /// Fuel per replica (default: the orchestrator's, 10^10).
    #[arg(long)]
    fuel: Option<u64>,
    /// Fund a new task batch on the contract with this deposit (e.g.
    /// `0.01eth`), after every local check passed; results in the task's
    /// canonical class are paid from it, results outside it slashed. The
    /// batch id is printed, for --batch. Without --deposit or --batch the
    /// task runs unpaid.
    #[arg(long, conflicts_with = "batch")]
    deposit: Option<String>,
    /// What the new batch pays per result (default: the deposit divided by
    /// --max-total-results, so it pays this task's results at least).
    #[arg(long, requires = "deposit")]
    reward: Option<String>,
    /// How long the new batch pays results, in hours; its unused deposit
    /// can be withdrawn after (`funetun job withdraw BATCH`).
    #[arg(long, default_value_t = 24, requires = "deposit")]
    batch_hours: u32,
    /// Fund the task from an existing batch of yours (an id an earlier
    /// --deposit printed).
    #[arg(long)]
    batch: Option<u64>,
    /// Ethereum JSON-RPC endpoint (for --deposit).
    #[arg(long, env = "FUNETUN_RPC", default_value = "http://127.0.0.1:8545")]
    rpc: String,
    /// Print one JSON line.
    #[arg(long)]
    json: bool,
}

/// Arguments of `funetun tasks status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The task id `submit` printed.
    id: B256,
    #[command(flatten)]
    at: OrchestratorArg,
    /// Print the whole record as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `funetun tasks result`.
#[derive(Debug, clap::Args)]
pub struct ResultArgs {
    /// The task id `submit` printed.
    id: B256,
    #[command(flatten)]
    at: OrchestratorArg,
    /// Wait until the task is decided (asking again with exponential
    /// back-off, from 0.25 s up to 10 s).
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds (exit 3).
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
    /// Print one JSON line: the status and the canonical result.
    #[arg(long)]
    json: bool,
}

/// Arguments of `funetun tasks run-local`.
#[derive(Debug, clap::Args)]
pub struct RunLocalArgs {
    /// The task's module (.wasm).
    #[arg(long)]
    wasm: PathBuf,
    /// The input: JSON text, or @FILE.
    #[arg(long)]
    input: String,
    /// Fuel: about one unit per WebAssembly instruction.
    #[arg(long, default_value_t = Limits::TASK.fuel)]
    fuel: u64,
    /// Memory cap, MiB.
    #[arg(long, default_value_t = (Limits::TASK.memory_bytes >> 20) as u64)]
    memory_mib: u64,
    /// Output cap, KiB.
    #[arg(long, default_value_t = (Limits::TASK.output_bytes >> 10) as u64)]
    output_kib: u64,
    /// Also judge the output with this validator module's `init_valid`.
    #[arg(long)]
    validator_wasm: Option<PathBuf>,
    /// Print one JSON line.
    #[arg(long)]
    json: bool,
}

/// Arguments of `funetun tasks example`.
#[derive(Debug, clap::Args)]
pub struct ExampleArgs {
    /// The example (pi, rounding, rounding-valid, sweep, drill, hostile);
    /// none lists them.
    name: Option<String>,
    /// Where to write the module (default: NAME.wasm here). An existing
    /// file is left alone.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `funetun tasks …`.
pub fn run(cmd: TasksCommand) -> anyhow::Result<()> {
    match cmd {
        TasksCommand::RunLocal(args) => run_local(args),
        TasksCommand::Example(args) => write_example(args),
        TasksCommand::Submit(args) => submit(args),
        TasksCommand::Status(args) => status(args),
        TasksCommand::Result(args) => result(args),
    }
}

fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("could not read the module {}", path.display()))
}

/// `--input`: JSON text or @FILE, checked.
fn read_input(arg: &str) -> anyhow::Result<Input> {
    let text = match arg.strip_prefix('@') {
        Some(file) => {
            std::fs::read(file).with_context(|| format!("could not read the input file {file}"))?
        }
        None => arg.as_bytes().to_vec(),
    };
    Input::new(text).context("--input takes JSON text or @FILE holding JSON")
}

fn run_local(args: RunLocalArgs) -> anyhow::Result<()> {
    let input = read_input(&args.input)?;
    let wasm = read_module(&args.wasm)?;
    let limits = Limits {
        fuel: args.fuel,
        memory_bytes: usize::try_from(args.memory_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        output_bytes: usize::try_from(args.output_kib.saturating_mul(1 << 10))
            .unwrap_or(usize::MAX),
    };
    let sandbox = Sandbox::new().map_err(|e| anyhow::anyhow!("the sandbox did not start: {e}"))?;
    let validator = match &args.validator_wasm {
        Some(path) => Some(
            Validator::from_wasm(&sandbox, &read_module(path)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        ),
        None => None,
    };
    let started = Instant::now();
    let outcome = match sandbox.compile(&wasm) {
        Ok(program) => sandbox.run(&program, &input, &limits),
        Err(failure) => funetun_compute::Outcome {
            result: Err(failure),
            fuel_used: 0,
        },
    };
    let seconds = started.elapsed().as_secs_f64();
    let valid = validator.map(|v| v.init_valid(&sandbox, &outcome));
    if args.json {
        let mut line = outcome.to_json();
        line["module_hash"] = funetun_core::keccak256(&wasm).to_string().into();
        line["result_digest"] = outcome.digest().to_string().into();
        line["seconds"] = seconds.into();
        if let Some(valid) = valid {
            line["valid"] = valid.into();
        }
        print_json(&line)?;
    } else {
        let mut out = std::io::stdout().lock();
        match &outcome.result {
            Ok(output) => writeln!(out, "{}", String::from_utf8_lossy(output))?,
            Err(failure) => writeln!(out, "failed ({}): {}", failure.class, failure.detail)?,
        }
        let judged = match valid {
            Some(true) => ", valid by the validator",
            Some(false) => ", NOT valid by the validator",
            None => "",
        };
        eprintln!(
            "fuel used {}, {seconds:.3} s, result digest {}{judged}",
            outcome.fuel_used,
            outcome.digest()
        );
    }
    if outcome.result.is_err() {
        std::process::exit(2);
    }
    Ok(())
}

fn write_example(args: ExampleArgs) -> anyhow::Result<()> {
    let Some(name) = args.name else {
        for e in &EXAMPLES {
            println!("{:<15} {}", e.name, e.about);
            if !e.input.is_empty() {
                println!("{:<15} try: --input '{}'", "", e.input);
            }
        }
        return Ok(());
    };
    let Some(e) = example(&name) else {
        let names: Vec<_> = EXAMPLES.iter().map(|e| e.name).collect();
        bail!("no example `{name}`; the examples are {}", names.join(", "));
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.wasm", e.name)));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&out)
        .with_context(|| {
            format!(
                "could not create {} (an existing file is left alone; pass another --out)",
                out.display()
            )
        })?;
    file.write_all(e.wasm)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write {}", out.display()))?;
    println!(
        "wrote {} ({} bytes, keccak256 {}); try: funetun tasks run-local --wasm {} --input '{}'",
        out.display(),
        e.wasm.len(),
        funetun_core::keccak256(e.wasm),
        out.display(),
        if e.input.is_empty() { "{}" } else { e.input }
    );
    Ok(())
}

fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let input = read_input(&args.input)?;
    let input = String::from_utf8(input.as_bytes().to_vec()).context("the input is not UTF-8")?;
    let redundancy = Redundancy {
        min_quorum: args.min_quorum,
        target_nresults: args.target_nresults.unwrap_or(args.min_quorum),
        max_error_results: args.max_error_results,
        max_total_results: args.max_total_results,
        adaptive: args.adaptive,
    };
    redundancy
        .check()
        .map_err(|e| anyhow::anyhow!("the redundancy settings cannot be met: {e}"))?;
    let wasm = read_module(&args.wasm)?;
    // Checked here first, so a module that cannot run is not uploaded.
    let sandbox = Sandbox::new().map_err(|e| anyhow::anyhow!("the sandbox did not start: {e}"))?;
    sandbox
        .compile(&wasm)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.wasm.display()))?;
    let validator = match &args.validator_wasm {
        Some(path) => {
            let bytes = read_module(path)?;
            Validator::from_wasm(&sandbox, &bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(bytes)
        }
        None => None,
    };
    let deposit = args
        .deposit
        .as_deref()
        .map(|d| parse_amount(d).map_err(|e| anyhow::anyhow!("--deposit: {e}")))
        .transpose()?;
    let reward = match (deposit, args.reward.as_deref()) {
        (_, Some(r)) => Some(parse_amount(r).map_err(|e| anyhow::anyhow!("--reward: {e}"))?),
        (Some(d), None) => Some(d / U256::from(redundancy.max_total_results.max(1))),
        (None, None) => None,
    };
    if let (Some(deposit), Some(reward)) = (deposit, reward) {
        anyhow::ensure!(!reward.is_zero(), "--reward must be positive");
        let most = reward * U256::from(redundancy.max_total_results);
        anyhow::ensure!(
            deposit >= most,
            "--deposit {} cannot pay this task's {} results at most (--max-total-results) of \
             {} each ({}); deposit more or lower --reward",
            format_eth(deposit),
            redundancy.max_total_results,
            format_eth(reward),
            format_eth(most)
        );
    }
    let key = args.key.signer()?;
    let client = Client::new(&args.at.orchestrator, Some(key.clone()));
    crate::chain::runtime()?.block_on(async {
        let batch = match (deposit, reward) {
            (Some(deposit), Some(reward)) => {
                let info = client
                    .info()
                    .await
                    .context("asking the orchestrator for its contract and address")?;
                let ledger =
                    Ledger::connect(&args.rpc, info.contract, key, LedgerConfig::default()).await?;
                let spec = funetun_core::keccak256(
                    format!(
                        "funetun task batch for module {}",
                        funetun_core::keccak256(&wasm)
                    )
                    .as_bytes(),
                );
                let (id, outcome) = ledger
                    .create_task_batch(
                        spec,
                        info.leader,
                        reward,
                        args.batch_hours.saturating_mul(3600),
                        deposit,
                    )
                    .await
                    .context("funding the task batch")?;
                let id: u64 = id.saturating_to();
                eprintln!(
                    "batch {id} funded: {} deposit, {} per result, for {} h (tx {}); fund more \
                     tasks from it with --batch {id}",
                    format_eth(deposit),
                    format_eth(reward),
                    args.batch_hours,
                    outcome.tx_hash
                );
                Some(id)
            }
            _ => args.batch,
        };
        let module = client
            .put_data(wasm)
            .await
            .context("uploading the module")?;
        let validator = match validator {
            Some(bytes) => Some(
                client
                    .put_data(bytes)
                    .await
                    .context("uploading the validator module")?,
            ),
            None => None,
        };
        let submitted = client
            .submit_compute_task(&TaskSubmission {
                module,
                input,
                validator,
                redundancy,
                fuel: args.fuel,
                batch,
            })
            .await
            .context("submitting the task")?;
        if args.json {
            print_json(&serde_json::json!({
                "task_id": submitted.task_id,
                "module": module,
                "validator": validator,
                "batch": batch,
            }))?;
        } else {
            println!("{}", submitted.task_id);
            eprintln!(
                "submitted; follow it with `funetun tasks status {id}`, read it with \
                 `funetun tasks result {id} --wait`",
                id = submitted.task_id
            );
        }
        Ok(())
    })
}

fn status(args: StatusArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.at.orchestrator, None);
    let info = crate::chain::runtime()?.block_on(client.compute_task(args.id))?;
    if args.json {
        return print_json(&info);
    }
    let r = info.redundancy;
    println!(
        "task {}: {} (quorum {} of {} issued at first, at most {}; {} failures tolerated)",
        info.task_id,
        info.status.as_str(),
        r.min_quorum,
        r.target_nresults,
        r.max_total_results,
        r.max_error_results
    );
    println!("  owner {}, module {}", info.owner, info.module);
    for rep in &info.replicas {
        println!(
            "  replica {:>2}  {}  {:<9}  {}",
            rep.replica,
            rep.worker,
            rep.status.as_str(),
            match (&rep.error, &rep.digest) {
                (Some(class), _) => format!("failed ({class})"),
                (None, Some(d)) => format!("digest {d}"),
                (None, None) => String::new(),
            }
        );
    }
    if let Some(reason) = &info.reason {
        println!("  no quorum: {reason}");
    }
    if let Some(batch) = info.batch {
        match (info.settled, info.settlement) {
            (true, Some(tx)) => println!("  paid from batch {batch}: settled on-chain (tx {tx})"),
            (true, None) => println!("  paid from batch {batch}: nothing owed on-chain"),
            (false, _) => println!("  paid from batch {batch}: not settled on-chain yet"),
        }
    }
    Ok(())
}

fn result(args: ResultArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.at.orchestrator, None);
    let info: ComputeTaskInfo = crate::chain::runtime()?.block_on(async {
        let deadline = Instant::now() + std::time::Duration::from_secs(args.timeout_secs);
        let mut delay = std::time::Duration::from_millis(250);
        loop {
            let info = client.compute_task(args.id).await?;
            if info.status != ComputeStatus::Open || !args.wait || Instant::now() >= deadline {
                return anyhow::Ok(info);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(std::time::Duration::from_secs(10));
        }
    })?;
    if args.json {
        print_json(&serde_json::json!({
            "task_id": info.task_id,
            "status": info.status,
            "result": info.result,
            "reason": info.reason,
        }))?;
    } else {
        match (&info.status, &info.result) {
            (ComputeStatus::Done, Some(r)) => match (&r.output, &r.error) {
                (Some(output), _) => println!("{output}"),
                (None, error) => println!(
                    "failed ({}): {}",
                    error.as_deref().unwrap_or("?"),
                    r.detail.as_deref().unwrap_or("")
                ),
            },
            (ComputeStatus::Failed, _) => println!(
                "no quorum: {}",
                info.reason
                    .as_deref()
                    .unwrap_or("the redundancy limits were reached")
            ),
            _ => eprintln!(
                "task {} is still open ({} replicas so far); pass --wait to wait for it",
                info.task_id,
                info.replicas.len()
            ),
        }
    }
    match (&info.status, &info.result) {
        (ComputeStatus::Done, Some(r)) if r.output.is_some() => Ok(()),
        (ComputeStatus::Open, _) => std::process::exit(3),
        _ => std::process::exit(2),
    }
}
