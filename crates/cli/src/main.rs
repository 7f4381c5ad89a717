//! The `funetun` binary: one executable for every role of the market.
//!
//! `main` parses arguments, sets up logging and hands each subcommand to its
//! module; the work itself lives in the library crates.

mod aggregate;
mod args;
mod audit;
mod bench;
mod bench_blobs;
mod bench_sandbox;
mod bench_text;
mod chain;
mod demo;
mod demo_tasks;
mod eval;
mod finetune;
mod generate;
mod job;
mod keys;
mod orchestrator;
mod output;
mod participant;
mod task;
mod tasks;
mod train;
mod upload;
mod verify;
mod worker;

use clap::{Parser, Subcommand};

/// Funetun: train neural networks on other people's hardware, paid on-chain.
#[derive(Debug, Parser)]
#[command(name = "funetun", version, about)]
struct Cli {
    /// Log filter, e.g. `info`, `debug`, `funetun_ml=trace` (default: what
    /// the long-running roles do, one line per task, vote or round, for
    /// `trainer`, `validator`, `challenger`, `orchestrator` and the demo's
    /// `demo-out/logs/orchestrator.log`; warnings only for the rest).
    #[arg(long, global = true, env = "FUNETUN_LOG")]
    log: Option<String>,
    /// Warnings and errors only (overrides the roles' default output; not
    /// --log).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model locally on a data set and report test accuracy.
    Train(train::TrainArgs),
    /// Run single training tasks (what a trainer does for one lease).
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Merge weight-delta files with an aggregation rule (and an outer optimizer).
    Aggregate(aggregate::AggregateArgs),
    /// Run the embedded dev chain (Ethereum JSON-RPC on loopback, state kept in --data-dir).
    Chain(chain::ChainArgs),
    /// Deploy the JobManager contract; prints {"address","tx_hash","gas_used"}.
    Deploy(chain::DeployArgs),
    /// Key management.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Run the whole market on this machine: chain, contract, orchestrator,
    /// trainers and validators training a model on MNIST, with a summary.
    Demo(Box<demo::DemoArgs>),
    /// Train for a job: lease tasks, train, upload deltas, submit their hashes on-chain.
    Trainer(participant::TrainerArgs),
    /// Check sampled updates (replay or spot-check) and vote on-chain.
    Validator(participant::ValidatorArgs),
    /// Replay updates during their challenge windows and challenge forgeries with a bond.
    Challenger(participant::ChallengerArgs),
    /// Withdraw your credits (payments for accepted updates) from the contract.
    Withdraw(participant::LedgerArgs),
    /// Your account: stake, credits, balance, roles, and (with
    /// --orchestrator) your record there.
    Account(participant::AccountArgs),
    /// Give up every role; the stake unlocks after the contract's cooldown
    /// (`funetun unstake` then).
    Leave(participant::LedgerArgs),
    /// Take the stake back, once the cooldown after `funetun leave` passed.
    Unstake(participant::LedgerArgs),
    /// Prune a participant's blob cache: blobs unused for an hour (running
    /// participants do this every 10 minutes), or down to --max-mb.
    Gc(participant::GcArgs),
    /// The job owner's commands: create, status, download, withdraw.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Run the orchestrator: the signed HTTP API and round driver of the jobs this key leads.
    Orchestrator(orchestrator::OrchestratorArgs),
    /// Benchmarks that print a ratio against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Proof of training: the seven checks over a chain of checkpoints (a directory or a job).
    VerifyChain(verify::VerifyChainArgs),
    /// Sample text from a transformer checkpoint (a file, or a job's latest).
    Generate(generate::GenerateArgs),
    /// Mean next-token loss of a Hugging Face model directory (gpt2 or
    /// llama) on a text file, computed by Funetun's engine.
    Eval(eval::EvalArgs),
    /// Generic WebAssembly tasks: run one locally in the sandbox, write an
    /// example module.
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// Run generic WebAssembly tasks for an orchestrator (a registered
    /// trainer's key): lease a replica, run it in the sandbox, report.
    Worker(worker::WorkerArgs),
}

/// The long-running roles' default log filter: what they do, in a line per
/// step, and every warning.
const ROLE_LOG: &str = "warn,funetun_trainer=info,funetun_validator=info,funetun_participant=info,\
                        funetun_orchestrator=info,funetun_cli=info";

fn main() {
    let cli = Cli::parse();
    // Colour only on a terminal, and never for the demo, whose log lines
    // go to a file (`output::log_to_file`) so they never break its bars.
    let in_file = matches!(cli.command, Command::Demo(_) | Command::Bench(_));
    let long_running = matches!(
        cli.command,
        Command::Trainer(_)
            | Command::Validator(_)
            | Command::Challenger(_)
            | Command::Orchestrator(_)
            | Command::Worker(_)
            | Command::Demo(_)
    );
    let filter = match (&cli.log, cli.quiet || !long_running) {
        (Some(filter), _) => filter.clone(),
        (None, true) => "warn".to_string(),
        (None, false) => ROLE_LOG.to_string(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&filter))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && !in_file)
        .with_writer(output::LogSink)
        .init();
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Task(cmd) => task::run(cmd),
        Command::Aggregate(args) => aggregate::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Chain(args) => chain::run_chain(args),
        Command::Deploy(args) => chain::run_deploy(args),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Demo(args) => demo::run(*args),
        Command::Trainer(args) => participant::run_trainer(args),
        Command::Validator(args) => participant::run_validator(args),
        Command::Challenger(args) => participant::run_challenger(args),
        Command::Withdraw(args) => participant::run_withdraw(args),
        Command::Account(args) => participant::run_account(args),
        Command::Leave(args) => participant::run_leave(args),
        Command::Unstake(args) => participant::run_unstake(args),
        Command::Gc(args) => participant::run_gc(args),
        Command::Job(cmd) => job::run(cmd),
        Command::Orchestrator(args) => orchestrator::run(args),
        Command::VerifyChain(args) => verify::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Tasks(cmd) => tasks::run(cmd),
        Command::Worker(args) => worker::run(args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
