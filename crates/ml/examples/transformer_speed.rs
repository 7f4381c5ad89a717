//! Training throughput of the transformer engine: tokens per second of
//! one step (forward, backward, gradient-norm clipping at 1.0, AdamW) on
//! the `baby` configuration (vocabulary 65, batch 12 × context 64), the
//! step `benches/torch/train_bench.py` times in PyTorch, at 1 and 2
//! threads.
//!
//! ```text
//! cargo run --release -p funetun-ml --example transformer_speed [steps [gpt|llama [threads]]]
//! ```
//!
//! Measured on the 2-core AMD EPYC (Zen 4, AVX-512) development machine,
//! interleaved with `train_bench.py` runs over the same eight minutes
//! (medians of 11 runs each, tokens/s; the machine was shared, so single
//! runs vary by ±15%):
//!
//! | model | threads | this engine | PyTorch 2.15 |
//! |-------|---------|-------------|--------------|
//! | gpt   | 1       | 14,600      | 9,400        |
//! | gpt   | 2       | 23,600      | 15,600       |
//! | llama | 1       | 11,300      | 7,800        |
//! | llama | 2       | 18,400      | 11,200       |
//!
//! About 70% of a step is gemm's matrix products (near 100 GFLOP/s a
//! core); attention is about 12%, the row kernels most of the rest.

use std::time::Instant;

use funetun_ml::engine::kernels;
use funetun_ml::engine::transformer::Transformer;
use funetun_ml::engine::{Compute, Par};
use funetun_ml::optim::Optimizer;
use funetun_ml::rng::Rng;
use funetun_ml::{Architecture as _, Model, ModelKind, OptimizerKind, TransformerConfig};

const BATCH: usize = 12;

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("steps: a number"))
        .unwrap_or(60);
    let only_kind: Option<ModelKind> = std::env::args()
        .nth(2)
        .map(|s| s.parse().expect("gpt or llama"));
    let only_threads: Option<usize> = std::env::args()
        .nth(3)
        .map(|s| s.parse().expect("threads: a number"));
    let baby = TransformerConfig::preset("baby", 65).expect("baby is a preset");
    // Scratch of a few configurations (allocated zeroed, so untouched pages cost nothing).
    let big = TransformerConfig::preset("llama-100m", 32_000).expect("a preset");
    for (kind, config, batch) in [
        (ModelKind::Gpt, baby, BATCH),
        (ModelKind::Llama, baby, BATCH),
        (ModelKind::Llama, big, 8),
    ] {
        let model = Model::new(kind, Some(config)).expect("a valid model");
        let bytes = Transformer::new(model, batch).scratch_bytes();
        println!(
            "{kind:5} d_model {:4} context {:3} vocab {:5} batch {batch:2}: scratch {:7.1} MB",
            config.d_model,
            config.context,
            config.vocab,
            bytes as f64 / 1e6
        );
    }
    for (kind, config) in [
        (ModelKind::Gpt, baby),
        (ModelKind::Llama, baby),
        (
            ModelKind::Llama,
            TransformerConfig {
                n_kv_head: 2,
                ..baby
            },
        ),
    ] {
        if only_kind.is_some_and(|k| k != kind) {
            continue;
        }
        let model = Model::new(kind, Some(config)).expect("a valid model");
        for threads in [1, 2] {
            if only_threads.is_some_and(|t| t != threads) {
                continue;
            }
            let (median, best, scratch) = measure(model, threads, steps);
            let tokens = (BATCH * config.context) as f64;
            println!(
                "{kind:5} n_kv_head {} threads {threads}: {:8.0} tokens/s (median step {:5.1} ms; best {:5.1} ms = {:.0} tokens/s; scratch {:.1} MB)",
                config.n_kv_head,
                tokens / median,
                1e3 * median,
                1e3 * best,
                tokens / best,
                scratch as f64 / 1e6
            );
        }
    }
}

/// (median and best seconds per step, scratch bytes) over `steps` timed
/// steps after a few untimed ones. The median resists other work on the
/// machine better than the mean.
fn measure(model: Model, threads: usize, steps: usize) -> (f64, f64, usize) {
    let (Model::Gpt(c) | Model::Llama(c)) = model else {
        unreachable!("transformers only")
    };
    let seq = c.context;
    let compute = Compute::new(threads).expect("a thread pool");
    let par = Par { threads };
    let mut net = Transformer::new(model, BATCH);
    let mut params = model.init(0).to_flat();
    let mut grads = vec![0.0; params.len()];
    let adamw = OptimizerKind::AdamW {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut opt = Optimizer::new(adamw, 1e-3, params.len());
    let mut rng = Rng::new(1);
    let mut batch = || -> (Vec<u32>, Vec<u32>) {
        let mut draw = || {
            (0..BATCH * seq)
                .map(|_| rng.below(c.vocab as u64) as u32)
                .collect()
        };
        (draw(), draw())
    };
    let batches: Vec<_> = (0..8).map(|_| batch()).collect();
    let mut step = |i: usize| {
        let (x, y) = &batches[i % batches.len()];
        compute.run(|| {
            net.loss_and_grad(&params, x, y, BATCH, seq, &mut grads, par);
            let norm = kernels::dot(&grads, &grads).sqrt();
            if norm > 1.0 {
                let k = 1.0 / norm;
                grads.iter_mut().for_each(|g| *g *= k);
            }
            opt.step(&mut params, &grads, threads > 1);
        });
    };
    for i in 0..5 {
        step(i);
    }
    let mut times: Vec<f64> = (0..steps.max(1))
        .map(|i| {
            let start = Instant::now();
            step(i);
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0], net.scratch_bytes())
}
