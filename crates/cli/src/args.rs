//! Argument groups shared by several subcommands, each turned into the
//! plain configuration the libraries take.

use std::path::PathBuf;

use anyhow::Context as _;
use funetun_core::TransformerSpec;
use funetun_ml::recipe::Recipe;
use funetun_ml::{Compute, Dataset, DatasetName, LoadOptions, Model, ModelKind};
use indicatif::{ProgressBar, ProgressStyle};

/// Where data comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Data set: mnist, fashion-mnist, tinyshakespeare[:byte], synthetic[:SEED]
    /// or a directory of IDX files (default: mnist for image models,
    /// tinyshakespeare for transformers).
    #[arg(long, env = "FUNETUN_DATASET")]
    pub dataset: Option<DatasetName>,
    /// Directory holding data sets (searched before FUNETUN_DATA_DIR and the cache).
    #[arg(long, env = "FUNETUN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Never download missing data sets.
    #[arg(long, env = "FUNETUN_OFFLINE")]
    pub offline: bool,
}

impl DataArgs {
    /// The data set named, or the default one for a `model`.
    pub fn name_for(&self, model: ModelKind) -> DatasetName {
        self.dataset.clone().unwrap_or(if model.is_transformer() {
            DatasetName::TinyShakespeare(funetun_core::Tokenizer::Char)
        } else {
            DatasetName::Mnist
        })
    }

    /// Loads the data set for a `model`, with a progress bar while downloading.
    pub fn load(&self, model: ModelKind) -> anyhow::Result<Dataset> {
        let name = self.name_for(model);
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

/// Which model to train: the network's word and, for transformers, a
/// named configuration and any numbers that override it.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Network: mlp, cnn, gpt or llama.
    #[arg(long, default_value = "mlp")]
    pub model: ModelKind,
    /// A transformer's named configuration (model and optimisation):
    /// baby (nanoGPT's CPU tiny-shakespeare run), tiny or llama-100m.
    /// Default for gpt and llama: baby.
    #[arg(long)]
    pub config: Option<String>,
    /// Transformer: vocabulary size (default: the tokenizer's).
    #[arg(long)]
    pub vocab: Option<usize>,
    /// Transformer: blocks.
    #[arg(long)]
    pub n_layer: Option<usize>,
    /// Transformer: query heads.
    #[arg(long)]
    pub n_head: Option<usize>,
    /// Transformer: key/value heads (llama's grouped-query attention).
    #[arg(long)]
    pub n_kv_head: Option<usize>,
    /// Transformer: residual width.
    #[arg(long)]
    pub d_model: Option<usize>,
    /// Transformer: feed-forward width.
    #[arg(long)]
    pub d_ff: Option<usize>,
    /// Transformer: context window in tokens.
    #[arg(long)]
    pub context: Option<usize>,
}

impl ModelArgs {
    /// The transformer numbers as a spec would write them (`None` for the
    /// image models).
    pub fn transformer_spec(&self) -> Option<TransformerSpec> {
        if !self.model.is_transformer() {
            return None;
        }
        let numbers = [self.n_layer, self.n_head, self.d_model, self.context];
        let config = self.config.clone().or_else(|| {
            numbers
                .iter()
                .any(Option::is_none)
                .then(|| "baby".to_string())
        });
        Some(TransformerSpec {
            config,
            vocab: self.vocab,
            n_layer: self.n_layer,
            n_head: self.n_head,
            n_kv_head: self.n_kv_head,
            d_model: self.d_model,
            d_ff: self.d_ff,
            context: self.context,
        })
    }

    /// The model for `data`, its numbers checked against the data set's
    /// vocabulary; errors name the flag to change.
    pub fn resolve(&self, data: &Dataset) -> anyhow::Result<Model> {
        if self.config.is_some() && !self.model.is_transformer() {
            anyhow::bail!(
                "--config names a transformer configuration; use it with --model gpt or llama"
            );
        }
        let config = match self.transformer_spec() {
            None => None,
            Some(t) => Some(
                t.resolve(data.vocab().map(|v| v.size()))
                    .map_err(|e| anyhow::anyhow!("--{}: {}", flag(&e.field), e.detail))?,
            ),
        };
        let model = Model::new(self.model, config)
            .map_err(|e| anyhow::anyhow!("--{}: {}", flag(e.field), e.detail))?;
        funetun_ml::train::check_fits(model, data)?;
        Ok(model)
    }

    /// The optimisation recipe of the named configuration, if any.
    pub fn recipe(&self) -> Option<Recipe> {
        self.transformer_spec()
            .and_then(|t| t.config)
            .and_then(|c| Recipe::named(&c))
    }
}

/// `transformer.n_layer` → `n-layer`.
fn flag(field: &str) -> String {
    field.trim_start_matches("transformer.").replace('_', "-")
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
