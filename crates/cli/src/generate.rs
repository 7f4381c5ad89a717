//! `funetun generate`: a text sample from a transformer checkpoint — a
//! file, or a job's latest checkpoint checked against its on-chain hash.

use std::path::PathBuf;

use anyhow::Context as _;
use funetun_client::Client;
use funetun_ml::generate::{Sampling, generate};
use funetun_ml::{Architecture as _, Dataset, Model};
use serde::Serialize;

use crate::args::{ComputeArgs, DataArgs, ModelArgs};
use crate::chain::runtime;
use crate::job::OwnerArgs;
use crate::output::print_json;

/// Arguments of `funetun generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// A checkpoint file (canonical safetensors) of the model named by
    /// --model/--config and the numbers.
    #[arg(long, conflicts_with = "job", required_unless_present = "job")]
    checkpoint: Option<PathBuf>,
    /// A job's latest checkpoint (its model and data set from the job's spec).
    #[arg(long)]
    job: Option<u64>,
    /// Text to continue.
    #[arg(long, default_value = "\n")]
    prompt: String,
    /// Tokens to sample.
    #[arg(long, default_value_t = 200)]
    tokens: usize,
    /// Softmax temperature (lower: more conservative).
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Sample among the K likeliest tokens (0: all).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    compute: ComputeArgs,
    #[command(flatten)]
    owner: OwnerArgs,
}

#[derive(Serialize)]
struct Report {
    model: String,
    checkpoint_hash: String,
    prompt: String,
    sample: String,
    tokens: usize,
    seed: u64,
}

/// Runs `funetun generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let (model, data, bytes) = match (&args.checkpoint, args.job) {
        (Some(path), _) => {
            let data = args.data.load(args.model.model)?;
            let model = args.model.resolve(&data)?;
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading checkpoint {}", path.display()))?;
            (model, data, bytes)
        }
        (None, Some(job)) => {
            let (spec, bytes) = runtime()?.block_on(job_checkpoint(&args.owner, job))?;
            let model = spec.model()?;
            let data = DataArgs {
                dataset: Some(spec.dataset.clone()),
                ..args.data.clone()
            }
            .load(model.kind())?;
            (model, data, bytes)
        }
        (None, None) => anyhow::bail!("pass --checkpoint FILE or --job ID"),
    };
    let weights = model
        .decode(&bytes)
        .with_context(|| format!("the checkpoint is not a {model}"))?;
    let sample = sample_text(
        model,
        &weights.to_flat(),
        &data,
        &args.prompt,
        &Sampling {
            tokens: args.tokens,
            temperature: args.temperature,
            top_k: args.top_k,
            seed: args.seed,
        },
        &args.compute.compute()?,
    )?;
    println!("{}{sample}", args.prompt);
    if args.owner.json {
        print_json(&Report {
            model: model.to_string(),
            checkpoint_hash: funetun_core::keccak256(&bytes).to_string(),
            prompt: args.prompt.clone(),
            sample,
            tokens: args.tokens,
            seed: args.seed,
        })?;
    }
    Ok(())
}

/// The text `model` with weights `params` writes after `prompt`, in the
/// data set's tokens.
pub fn sample_text(
    model: Model,
    params: &[f32],
    data: &Dataset,
    prompt: &str,
    sampling: &Sampling,
    compute: &funetun_ml::Compute,
) -> anyhow::Result<String> {
    let vocab = data.vocab().with_context(|| {
        format!(
            "{} is not text; generation needs a text data set's tokenizer",
            data.name
        )
    })?;
    let prompt = vocab.encode(prompt)?;
    let out = generate(model, params, &prompt, sampling, compute)?;
    Ok(vocab.decode(&out))
}

/// A job's spec and its latest checkpoint, checked against the chain.
async fn job_checkpoint(
    owner: &OwnerArgs,
    job: u64,
) -> anyhow::Result<(funetun_core::JobSpec, Vec<u8>)> {
    let client = Client::new(&owner.orchestrator, None);
    let contract = crate::job::contract_of(owner, &client).await?;
    let ledger = crate::job::reader(&owner.rpc, contract).await?;
    let (_, _, bytes) = crate::job::download_latest(&client, &ledger, job).await?;
    let spec = client.job(job).await?.spec;
    Ok((spec, bytes))
}
