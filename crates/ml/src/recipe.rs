//! Named training recipes: a transformer configuration together with the
//! optimisation that goes with it, shared by `funetun train`, `funetun
//! bench train` and the demo's presets.

use crate::optim::{OptimizerKind, Schedule};

/// How a named configuration is trained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recipe {
    /// Sequences per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f32,
    /// Inner optimizer.
    pub optimizer: OptimizerKind,
    /// Learning rate over the global step.
    pub schedule: Schedule,
    /// Largest global gradient norm.
    pub grad_clip: f32,
    /// Optimizer steps of a full run.
    pub iters: u64,
}

impl Recipe {
    /// The recipe of a named configuration:
    /// - `baby`: nanoGPT's CPU run of character-level tiny-shakespeare —
    ///   batch 12, AdamW (β₂ 0.99, weight decay 0.1 on matrices) at 1e-3,
    ///   100 warm-up steps then cosine decay to 1e-4 at step 2,000,
    ///   gradients clipped at norm 1, 2,000 steps;
    /// - `tiny`: the same optimisation over 200 steps with batch 8;
    /// - `llama-100m`: batch 8, AdamW (β₂ 0.95) at 3e-4 with 200 warm-up
    ///   steps, cosine to 3e-5 over 10,000.
    pub fn named(config: &str) -> Option<Self> {
        let adamw = OptimizerKind::AdamW {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let cosine = |warmup, total, min_lr| Schedule::Cosine {
            warmup,
            total,
            min_lr,
        };
        match config {
            "baby" => Some(Self {
                batch: 12,
                lr: 1e-3,
                optimizer: adamw,
                schedule: cosine(100, 2000, 1e-4),
                grad_clip: 1.0,
                iters: 2000,
            }),
            "tiny" => Some(Self {
                batch: 8,
                lr: 1e-3,
                optimizer: adamw,
                schedule: cosine(10, 200, 1e-4),
                grad_clip: 1.0,
                iters: 200,
            }),
            "llama-100m" => Some(Self {
                batch: 8,
                lr: 3e-4,
                optimizer: OptimizerKind::AdamW {
                    beta1: 0.9,
                    beta2: 0.95,
                    eps: 1e-8,
                    weight_decay: 0.1,
                },
                schedule: cosine(200, 10_000, 3e-5),
                grad_clip: 1.0,
                iters: 10_000,
            }),
            _ => None,
        }
    }
}
