//! `funetun bench train --model gpt|llama`: the engine's training steps
//! (forward, backward, clipping, AdamW) in tokens per second against
//! PyTorch on the same architecture, batch, context, optimizer and thread
//! count, measured in the same run (`benches/torch/train_bench.py`).

use std::path::PathBuf;
use std::process::Command;

use funetun_ml::data::Tokenizer;
use funetun_ml::train::{LocalTrainer, shard_pool};
use funetun_ml::{Architecture as _, Compute, Dataset, DatasetName, Model};
use serde::Serialize;

use crate::args::ModelArgs;
use crate::output::print_json;

/// The PyTorch side of the benchmark, beside the workspace.
const TORCH_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../benches/torch/train_bench.py"
);

#[derive(Serialize)]
struct Report {
    model: String,
    params: usize,
    batch: usize,
    context: usize,
    threads: usize,
    tokens_per_sec: f64,
    step_ms: f64,
    pytorch_tokens_per_sec: Option<f64>,
    ratio_vs_pytorch: Option<f64>,
    peak_rss_bytes: Option<u64>,
    bytes_per_param: Option<f64>,
}

/// A corpus of seeded random characters (what is read does not change
/// the arithmetic), so the benchmark needs no data set.
fn random_corpus() -> anyhow::Result<Dataset> {
    let alphabet: Vec<u8> = (b' '..=b'~').take(65).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let text: Vec<u8> = (0..400_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize]
        })
        .collect();
    Ok(Dataset::from_text(
        DatasetName::Synthetic(0),
        &text,
        Tokenizer::Char,
    )?)
}

/// Runs the transformer training benchmark.
pub fn bench_train_text(
    model_args: &ModelArgs,
    threads: usize,
    batch: Option<usize>,
    seconds: f64,
    python: Option<PathBuf>,
    no_baseline: bool,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(threads >= 1, "--threads must be at least 1");
    let data = random_corpus()?;
    let model = model_args.resolve(&data)?;
    let c = model.transformer().expect("a transformer");
    let spec = crate::train::text_spec(
        model,
        model_args.recipe(),
        crate::train::Overrides {
            batch,
            ..Default::default()
        },
        0,
    );
    spec.validate()?;
    let compute = Compute::new(threads)?;
    let pool = shard_pool(model, &data, 0, 1)?;
    let mut trainer = LocalTrainer::new(&spec, &model.init(0), pool)?;
    for _ in 0..3 {
        trainer.step(&data, &compute)?;
    }
    let steps_per_sec = crate::bench::time_steps(seconds, 2, || {
        trainer.step(&data, &compute)?;
        Ok(())
    })?;
    let tokens = (spec.batch * c.context) as f64;
    let ours = steps_per_sec * tokens;
    eprintln!(
        "funetun engine: {ours:.0} tokens/s, {:.1} ms/step ({model}, batch {} × {}, {threads} threads)",
        1e3 / steps_per_sec,
        spec.batch,
        c.context
    );
    let pytorch = if no_baseline {
        None
    } else {
        Some(pytorch_rate(model, spec.batch, threads, seconds, python)?)
    };
    let peak = crate::train::peak_rss_bytes();
    let report = Report {
        model: model.to_string(),
        params: model.num_params(),
        batch: spec.batch,
        context: c.context,
        threads,
        tokens_per_sec: ours,
        step_ms: 1e3 / steps_per_sec,
        pytorch_tokens_per_sec: pytorch,
        ratio_vs_pytorch: pytorch.map(|p| ours / p),
        peak_rss_bytes: peak,
        bytes_per_param: peak.map(|b| b as f64 / model.num_params() as f64),
    };
    if let Some(r) = report.ratio_vs_pytorch {
        eprintln!("ratio funetun / pytorch: {r:.2}×");
    }
    if json {
        print_json(&report)?;
    }
    Ok(())
}

/// The default interpreter: the virtual environment `benches/torch/setup.sh` makes.
fn default_python() -> Option<PathBuf> {
    dirs::home_dir().map(|h| h.join(".cache/funetun/venv-torch/bin/python"))
}

fn pytorch_rate(
    model: Model,
    batch: usize,
    threads: usize,
    seconds: f64,
    python: Option<PathBuf>,
) -> anyhow::Result<f64> {
    let python = python
        .or_else(default_python)
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no Python with torch found for the baseline; run `bash benches/torch/setup.sh` \
                 (or pass --python, or --no-baseline to measure the engine alone)"
            )
        })?;
    let c = model.transformer().expect("a transformer");
    // Steps for about `seconds` at PyTorch's usual rate on this class of machine.
    let steps = ((seconds * 20.0) as usize).max(20);
    let out = Command::new(&python)
        .arg(TORCH_SCRIPT)
        .args(["--model", model.kind().as_str()])
        .args(["--n-layer", &c.n_layer.to_string()])
        .args(["--n-head", &c.n_head.to_string()])
        .args(["--n-kv-head", &c.n_kv_head.to_string()])
        .args(["--d-model", &c.d_model.to_string()])
        .args(["--d-ff", &c.d_ff.to_string()])
        .args(["--context", &c.context.to_string()])
        .args(["--vocab", &c.vocab.to_string()])
        .args(["--batch", &batch.to_string()])
        .args(["--steps", &steps.to_string()])
        .args(["--warmup", "5"])
        .args(["--threads", &threads.to_string()])
        .arg("--json")
        .output()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "the PyTorch baseline failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("the PyTorch baseline printed no JSON: {stdout}"))?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    let rate = v["tokens_per_sec"].as_f64().ok_or_else(|| {
        anyhow::anyhow!("the PyTorch baseline's JSON lacks tokens_per_sec: {line}")
    })?;
    eprintln!(
        "pytorch {}: {rate:.0} tokens/s",
        v["torch"].as_str().unwrap_or("?")
    );
    Ok(rate)
}
