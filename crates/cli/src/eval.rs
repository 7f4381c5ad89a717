//! `funetun eval`: the mean next-token loss of a Hugging Face model
//! directory on a text file, computed by Funetun's engine.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use crate::args::ComputeArgs;
use crate::output::print_json;

/// Arguments of `funetun eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A Hugging Face model directory: config.json, model.safetensors and
    /// tokenizer.json (gpt2 or llama; see docs/huggingface.md).
    #[arg(long, env = "FUNETUN_MODEL_DIR")]
    model_dir: PathBuf,
    /// The text file to score (UTF-8), cut into the model's tokens.
    #[arg(long)]
    data: PathBuf,
    /// Score only the first N context windows (0: every window).
    #[arg(long, default_value_t = 0)]
    windows: usize,
    /// End with one JSON line: {"loss","tokens","windows","model"}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    compute: ComputeArgs,
}

#[derive(Serialize)]
struct Report {
    loss: f64,
    tokens: usize,
    windows: usize,
    model: String,
}

/// Runs `funetun eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let model = funetun_ml::hf::load_dir(&args.model_dir)
        .with_context(|| format!("loading the model in {}", args.model_dir.display()))?;
    let text = std::fs::read(&args.data)
        .with_context(|| format!("reading the text {}", args.data.display()))?;
    let name = args.data.display().to_string();
    let loss =
        funetun_ml::hf::evaluate_text(&model, &text, &name, args.windows, &args.compute.compute()?)
            .with_context(|| format!("evaluating {} on {name}", args.model_dir.display()))?;
    println!(
        "{}: loss {:.4} (perplexity {:.2}) over {} tokens in {} windows of {name}",
        model.model,
        loss.loss,
        loss.loss.exp(),
        loss.tokens,
        loss.windows
    );
    if args.json {
        print_json(&Report {
            loss: loss.loss,
            tokens: loss.tokens,
            windows: loss.windows,
            model: model.model.to_string(),
        })?;
    }
    Ok(())
}
