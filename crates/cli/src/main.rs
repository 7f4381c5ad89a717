//! The `funetun` binary: one executable for every role of the market.
//!
//! `main` parses arguments, sets up logging and hands each subcommand to its
//! module; the work itself lives in the library crates.

mod aggregate;
mod args;
mod bench;
mod chain;
mod keys;
mod output;
mod task;
mod train;
mod verify;

use clap::{Parser, Subcommand};

/// Funetun: train neural networks on other people's hardware, paid on-chain.
#[derive(Debug, Parser)]
#[command(name = "funetun", version, about)]
struct Cli {
    /// Log filter, e.g. `info`, `debug`, `funetun_ml=trace`.
    #[arg(long, global = true, env = "FUNETUN_LOG", default_value = "warn")]
    log: String,
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
    /// Benchmarks that print a ratio against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Proof of training: the six checks over a chain of checkpoints (a directory or a job).
    VerifyChain(verify::VerifyChainArgs),
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Task(cmd) => task::run(cmd),
        Command::Aggregate(args) => aggregate::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Chain(args) => chain::run_chain(args),
        Command::Deploy(args) => chain::run_deploy(args),
        Command::Keys(cmd) => keys::run(cmd),
        Command::VerifyChain(args) => verify::run(args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
