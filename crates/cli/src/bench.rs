//! `funetun bench`: benchmarks with a baseline measured in the same run.

use crate::output::print_json;

/// Subcommands of `funetun bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Deploys JobManager on the embedded chain, runs every call once, prints call → gas.
    Gas,
    /// submitUpdate transactions per second over JSON-RPC on loopback (embedded chain),
    /// against plain transfers as the baseline.
    Chain(ChainBenchArgs),
}

/// Arguments of `funetun bench chain`.
#[derive(Debug, clap::Args)]
pub struct ChainBenchArgs {
    /// Number of submitUpdate transactions.
    #[arg(long, env = "FUNETUN_BENCH_TXS", default_value_t = 4000)]
    pub txs: usize,
    /// Concurrent senders, one key each (at most 8).
    #[arg(long, env = "FUNETUN_BENCH_SENDERS", default_value_t = 8)]
    pub senders: usize,
}

/// Runs `funetun bench …`.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cmd {
        BenchCommand::Gas => print_json(&rt.block_on(funetun_chain::bench::gas_report())?),
        BenchCommand::Chain(args) => {
            let r = rt.block_on(funetun_chain::bench::chain_throughput(
                args.txs,
                args.senders,
            ))?;
            eprintln!(
                "submitUpdate: {} tx in {:.2} s = {:.0} tx/s over JSON-RPC ({} senders); plain transfers {:.0} tx/s; ratio {:.2}",
                r.transactions,
                r.seconds,
                r.tx_per_sec,
                r.senders,
                r.transfer_tx_per_sec,
                r.tx_per_sec / r.transfer_tx_per_sec
            );
            print_json(&r)
        }
    }
}
