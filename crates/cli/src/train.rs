//! `funetun train`: local training with a progress bar.

/// Arguments of `funetun train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {}

/// Runs `funetun train`.
pub fn run(_args: TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
