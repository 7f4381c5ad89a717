//! Text out of a transformer: sampling one token at a time with
//! temperature and top-k, seeded, so the same checkpoint, prompt and seed
//! always print the same text.

use crate::engine::Compute;
use crate::engine::transformer::Transformer;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::rng::Rng;

/// How to sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// New tokens to produce.
    pub tokens: usize,
    /// Softmax temperature (> 0; lower is more conservative).
    pub temperature: f32,
    /// Keep only the `top_k` likeliest tokens (0: all).
    pub top_k: usize,
    /// Seed of the draws.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            tokens: 200,
            temperature: 0.8,
            top_k: 40,
            seed: 0,
        }
    }
}

/// Continues `prompt` (token ids) with `sampling.tokens` sampled tokens
/// from weights `params` of `model`; returns only the new tokens. The
/// model sees the last `context` tokens at each step.
pub fn generate(
    model: Model,
    params: &[f32],
    prompt: &[u32],
    sampling: &Sampling,
    compute: &Compute,
) -> Result<Vec<u32>> {
    let Some(c) = model.transformer() else {
        return Err(Error::invalid(
            "model",
            format!("{model} does not generate text"),
        ));
    };
    if prompt.is_empty() {
        return Err(Error::invalid(
            "prompt",
            "is empty; give at least one character",
        ));
    }
    if let Some(&t) = prompt.iter().find(|&&t| t as usize >= c.vocab) {
        return Err(Error::invalid(
            "prompt",
            format!("token {t} is outside the model's vocabulary of {}", c.vocab),
        ));
    }
    if !(sampling.temperature.is_finite() && sampling.temperature > 0.0) {
        return Err(Error::invalid(
            "temperature",
            format!("{} must be a number above 0", sampling.temperature),
        ));
    }
    let mut net = Transformer::new(model, 1);
    let mut logits = vec![0.0f32; c.context * c.vocab];
    let mut all = prompt.to_vec();
    let mut rng = Rng::derived(sampling.seed, "generate");
    let mut order: Vec<usize> = Vec::with_capacity(c.vocab);
    let par = compute.par();
    for _ in 0..sampling.tokens {
        let window = &all[all.len().saturating_sub(c.context)..];
        let n = window.len();
        compute.run(|| net.logits(params, window, 1, n, &mut logits[..n * c.vocab], par));
        let last = &logits[(n - 1) * c.vocab..n * c.vocab];
        order.clear();
        order.extend(0..c.vocab);
        // Likeliest first; ties by id, so the order is total.
        order.sort_by(|&a, &b| last[b].total_cmp(&last[a]).then(a.cmp(&b)));
        if sampling.top_k > 0 {
            order.truncate(sampling.top_k);
        }
        let max = last[order[0]];
        let weights: Vec<f64> = order
            .iter()
            .map(|&t| f64::from((last[t] - max) / sampling.temperature).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut draw = f64::from(rng.unit_f32()) * total;
        let mut pick = order[order.len() - 1];
        for (&t, w) in order.iter().zip(&weights) {
            if draw < *w {
                pick = t;
                break;
            }
            draw -= w;
        }
        all.push(pick as u32);
    }
    Ok(all.split_off(prompt.len()))
}
