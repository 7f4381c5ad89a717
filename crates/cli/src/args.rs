//! Argument groups shared by several subcommands, each turned into the
//! plain configuration the libraries take.

use std::path::PathBuf;

use anyhow::Context as _;
use funetun_ml::{Compute, Dataset, DatasetName, LoadOptions};
use indicatif::{ProgressBar, ProgressStyle};

/// Where data comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Data set: mnist, fashion-mnist, synthetic[:SEED] or a directory of IDX files.
    #[arg(long, env = "FUNETUN_DATASET", default_value = "mnist")]
    pub dataset: DatasetName,
    /// Directory holding data sets (searched before FUNETUN_DATA_DIR and the cache).
    #[arg(long, env = "FUNETUN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Never download missing data sets.
    #[arg(long, env = "FUNETUN_OFFLINE")]
    pub offline: bool,
}

impl DataArgs {
    /// Loads the data set, with a progress bar while downloading.
    pub fn load(&self) -> anyhow::Result<Dataset> {
        let name = self.dataset.clone();
        let bar = ProgressBar::hidden();
        bar.set_style(
            ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let progress = |file: &str, done: u64, total: Option<u64>| {
            if bar.is_hidden() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            bar.set_message(format!("downloading {file}"));
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(done);
        };
        let options = LoadOptions {
            data_dir: self.data_dir.as_deref(),
            download: !self.offline,
            progress: Some(&progress),
        };
        let data =
            Dataset::load(&name, &options).with_context(|| format!("loading data set `{name}`"))?;
        bar.finish_and_clear();
        tracing::info!(dataset = %name, train = data.train.len(), test = data.test.len(), "data set loaded");
        Ok(data)
    }
}

/// How many threads compute uses.
#[derive(Debug, Clone, clap::Args)]
pub struct ComputeArgs {
    /// Compute threads (default: 1, which is fastest when several
    /// trainers share a machine; use the core count for a lone job).
    #[arg(long, env = "FUNETUN_THREADS", default_value_t = 1)]
    pub threads: usize,
}

impl ComputeArgs {
    /// The thread pool.
    pub fn compute(&self) -> anyhow::Result<Compute> {
        Ok(Compute::new(self.threads)?)
    }
}

/// A progress bar on stderr counting `len` steps (hidden when stderr is
/// not a terminal).
pub fn step_bar(len: u64, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} steps {per_sec} ({eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(prefix.to_string());
    bar
}
