//! `funetun task`: single training tasks.

/// Subcommands of `funetun task`.
#[derive(Debug, clap::Subcommand)]
pub enum TaskCommand {}

/// Runs `funetun task …`.
pub fn run(cmd: TaskCommand) -> anyhow::Result<()> {
    match cmd {}
}
