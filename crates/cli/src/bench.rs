//! `funetun bench`: benchmarks with a baseline measured in the same run.

/// Subcommands of `funetun bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {}

/// Runs `funetun bench …`.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {}
}
