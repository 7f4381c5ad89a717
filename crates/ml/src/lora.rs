//! Low-rank adapters (LoRA, Hu et al. 2021) on a transformer's
//! projections, in PEFT's names, shapes and initialisation.
//!
//! A [`LoraConfig`] names projections by their short names, each matched
//! as a suffix of a block's weight matrix `{…}.{target}.weight`:
//!
//! - `gpt` ([`GPT_TARGETS`]): `c_attn`, `c_proj` (both `attn.c_proj` and
//!   `mlp.c_proj`), `attn.c_proj`, `mlp.c_proj`, `c_fc`. GPT-2's `Conv1D`
//!   stores its weights `[in, out]`.
//! - `llama` ([`LLAMA_TARGETS`]): `q_proj`, `k_proj`, `v_proj`, `o_proj`,
//!   `gate_proj`, `up_proj`, `down_proj`, stored `[out, in]` as
//!   `nn.Linear` does.
//!
//! Longer suffixes select fewer matrices (`0.attn.c_attn`: the first
//! block's only); a matrix named by two targets gets one adapter.
//!
//! For a matrix `M.weight` with `in` inputs and `out` outputs the adapter
//! is two tensors, `M.lora_A.weight` (`[r, in]`) and `M.lora_B.weight`
//! (`[out, r]`), and the model computes with
//!
//! - `W + s·B·A` for a `[out, in]` weight (`Linear`),
//! - `W + s·(B·A)ᵀ` for a `[in, out]` weight (`Conv1D`, PEFT's
//!   `fan_in_fan_out`),
//!
//! where `s = alpha / r`. PEFT's files prefix the same names with
//! `base_model.model.`. `A` starts uniform in `±1/√in` (PyTorch's
//! `kaiming_uniform_(a=√5)`, PEFT's default), `B` at zero, so training
//! starts from the base model exactly.
//!
//! Training ([`crate::train::LocalTrainer::new_lora`]) merges the adapters
//! into a full flat parameter buffer ([`Lora::merge_flat`]), runs the
//! engine's ordinary forward and backward on it, and maps the full
//! gradient onto the adapters by the chain rule ([`Lora::adapter_grads`]):
//! for `Linear`, `dA = s·Bᵀ·dW` and `dB = s·dW·Aᵀ`; for `Conv1D`, with
//! `dW` stored `[in, out]`, `dA = s·Bᵀ·dWᵀ` and `dB = s·dWᵀ·Aᵀ`. This is
//! exact and reuses the engine unchanged; its cost is a full backward
//! pass, including the gradients of every frozen tensor, which are
//! computed and thrown away (skipping them is a later optimisation), plus
//! two small products per adapted matrix. Every product is one
//! single-threaded `gemm` call per matrix, and matrices are spread over
//! threads whole, so the bits never depend on the thread count.

use std::ops::Range;

use funetun_core::encoding::decode_with_layout;
use funetun_core::{DecodeLimits, Tensor, TensorSet};

use crate::engine::Par;
use crate::engine::linalg::{Mat, matmul_strided};
use crate::error::{Error, Result};
use crate::model::{Architecture as _, Model};
use crate::rng::Rng;

pub use funetun_core::lora::LoraConfig;

/// The projections of a `gpt` a target may name.
pub const GPT_TARGETS: &[&str] = &["c_attn", "c_proj", "attn.c_proj", "mlp.c_proj", "c_fc"];

/// The projections of a `llama` a target may name.
pub const LLAMA_TARGETS: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// How an adapted weight matrix is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Orientation {
    /// `nn.Linear`: `[out, in]`; the model computes with `W + s·B·A`.
    Linear,
    /// GPT-2's `Conv1D`: `[in, out]`; the model computes with
    /// `W + s·(B·A)ᵀ`.
    Conv1d,
}

/// One adapted weight matrix and where it and its adapter live.
#[derive(Clone, Debug)]
pub struct Target {
    /// The weight matrix, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub weight: String,
    /// Its `A` tensor (`[r, in]`), e.g. `….q_proj.lora_A.weight`.
    pub a: String,
    /// Its `B` tensor (`[out, r]`), e.g. `….q_proj.lora_B.weight`.
    pub b: String,
    /// How the weight is stored.
    pub orientation: Orientation,
    /// The projection's input width.
    pub inputs: usize,
    /// The projection's output width.
    pub outputs: usize,
    w_range: Range<usize>,
    a_range: Range<usize>,
    b_range: Range<usize>,
}

impl Target {
    /// Where the weight lives in the model's flat view.
    pub fn weight_range(&self) -> Range<usize> {
        self.w_range.clone()
    }
}

/// The adapters of one model under one [`LoraConfig`]: their layout,
/// initialisation, decoding, and the merge and its gradient.
#[derive(Clone, Debug)]
pub struct Lora {
    model: Model,
    config: LoraConfig,
    scale: f32,
    rank: usize,
    targets: Vec<Target>,
    shapes: Vec<(String, Vec<usize>)>,
    num_params: usize,
}

/// The name of a weight's adapter tensor: `M.weight` → `M.lora_{which}.weight`.
fn adapter_name(weight: &str, which: &str) -> String {
    let stem = weight.strip_suffix(".weight").unwrap_or(weight);
    format!("{stem}.lora_{which}.weight")
}

impl Lora {
    /// The adapters `config` asks for on `model`. Refuses a model that is
    /// not a transformer, a target that matches none of the model's
    /// projections (listing the ones it has), and a rank above a matched
    /// matrix's smaller side.
    pub fn new(model: Model, config: &LoraConfig) -> Result<Self> {
        config
            .check()
            .map_err(|e| Error::invalid("lora", e.to_string()))?;
        let (orientation, prefix, available) = match model {
            Model::Gpt(_) => (Orientation::Conv1d, "transformer.h.", GPT_TARGETS),
            Model::Llama(_) => (Orientation::Linear, "model.layers.", LLAMA_TARGETS),
            Model::Mlp | Model::Cnn => {
                return Err(Error::invalid(
                    "lora",
                    format!(
                        "low-rank adapters fit a transformer's projections and {model} is not a \
                         transformer; choose gpt or llama, or train the full model (remove [lora])"
                    ),
                ));
            }
        };
        let layout = model.layout();
        // The projections: the blocks' matrices (norm gains and biases are vectors).
        let matrices: Vec<(String, Vec<usize>)> = model
            .shapes()
            .into_iter()
            .filter(|(name, shape)| {
                name.starts_with(prefix) && name.ends_with(".weight") && shape.len() == 2
            })
            .collect();
        let mut chosen = vec![false; matrices.len()];
        for target in &config.targets {
            let suffix = format!(".{target}.weight");
            let mut found = false;
            for (i, (name, _)) in matrices.iter().enumerate() {
                if name.ends_with(&suffix) {
                    chosen[i] = true;
                    found = true;
                }
            }
            if !found {
                return Err(Error::invalid(
                    "lora.targets",
                    format!(
                        "`{target}` matches no projection of {model}; its projections are {}",
                        available.join(", ")
                    ),
                ));
            }
        }
        let rank = config.rank as usize;
        let mut targets = Vec::new();
        for ((weight, shape), _) in matrices.into_iter().zip(chosen).filter(|(_, c)| *c) {
            let (inputs, outputs) = match orientation {
                Orientation::Linear => (shape[1], shape[0]),
                Orientation::Conv1d => (shape[0], shape[1]),
            };
            if rank > inputs.min(outputs) {
                return Err(Error::invalid(
                    "lora.rank",
                    format!(
                        "{rank} exceeds the smaller side of `{weight}` ({inputs} in, {outputs} out): \
                         the adapter would hold more than the matrix; choose rank ≤ {}",
                        inputs.min(outputs)
                    ),
                ));
            }
            targets.push(Target {
                a: adapter_name(&weight, "A"),
                b: adapter_name(&weight, "B"),
                w_range: layout.range(&weight),
                weight,
                orientation,
                inputs,
                outputs,
                a_range: 0..0,
                b_range: 0..0,
            });
        }
        let mut shapes: Vec<(String, Vec<usize>)> = targets
            .iter()
            .flat_map(|t| {
                [
                    (t.a.clone(), vec![rank, t.inputs]),
                    (t.b.clone(), vec![t.outputs, rank]),
                ]
            })
            .collect();
        shapes.sort_by(|x, y| x.0.cmp(&y.0));
        let mut ranges = Vec::with_capacity(shapes.len());
        let mut at = 0;
        for (name, shape) in &shapes {
            let len: usize = shape.iter().product();
            ranges.push((name.clone(), at..at + len));
            at += len;
        }
        let range_of = |name: &str| {
            ranges
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, r)| r.clone())
                .unwrap_or(0..0)
        };
        for t in &mut targets {
            t.a_range = range_of(&t.a);
            t.b_range = range_of(&t.b);
        }
        Ok(Self {
            model,
            config: config.clone(),
            scale: config.scale(),
            rank,
            targets,
            shapes,
            num_params: at,
        })
    }

    /// The model the adapters fit.
    pub fn model(&self) -> Model {
        self.model
    }

    /// The configuration.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// `s = alpha / rank`.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The adapted matrices, in name order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The adapter tensors' names and shapes, in name order.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.shapes.clone()
    }

    /// A zero-filled set of the adapters' names and shapes.
    pub fn zeros(&self) -> TensorSet {
        let mut set = TensorSet::new();
        for (name, shape) in &self.shapes {
            set.insert(name.clone(), Tensor::zeros(shape.clone()));
        }
        set
    }

    /// The adapters at the start of training for `seed`: every `A` uniform
    /// in `±1/√in`, drawn in name order from a ChaCha8 stream (so the same
    /// seed gives the same bytes everywhere), every `B` zero.
    pub fn init(&self, seed: u64) -> TensorSet {
        let mut rng = Rng::derived(seed, "lora");
        let mut set = TensorSet::new();
        for (name, shape) in &self.shapes {
            let n: usize = shape.iter().product();
            let data = if name.ends_with(".lora_A.weight") {
                let bound = 1.0 / (shape[1] as f32).sqrt();
                (0..n).map(|_| rng.uniform(-bound, bound)).collect()
            } else {
                vec![0.0; n]
            };
            set.insert(
                name.clone(),
                Tensor {
                    shape: shape.clone(),
                    data,
                },
            );
        }
        set
    }

    /// Number of scalar adapter parameters.
    pub fn num_params(&self) -> usize {
        self.num_params
    }

    /// The decoder's limits for these adapters: no file larger than their
    /// canonical tensor file, no more tensors than they have.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits::for_model(self.num_params, self.shapes.len())
    }

    /// Decodes adapters (or an adapter delta) from canonical safetensors
    /// bytes, refusing anything larger, of another layout, or holding NaN
    /// or infinities.
    pub fn decode(&self, bytes: &[u8]) -> Result<TensorSet> {
        Ok(decode_with_layout(
            bytes,
            &self.decode_limits(),
            &self.zeros(),
        )?)
    }

    /// The full model the adapters make of `base`: every adapted matrix
    /// `W + s·B·A` (or `W + s·(B·A)ᵀ`), every other tensor as in `base`.
    pub fn merge(&self, base: &TensorSet, adapters: &TensorSet) -> Result<TensorSet> {
        self.check_inputs(base, adapters)?;
        let base_flat = base.to_flat();
        let mut full = base_flat.clone();
        self.merge_flat(&base_flat, &adapters.to_flat(), &mut full, Par::SERIAL);
        Ok(base.from_flat_like(&full)?)
    }

    /// Checks that `base` is the model's weights and `adapters` these
    /// adapters, both finite.
    pub fn check_inputs(&self, base: &TensorSet, adapters: &TensorSet) -> Result<()> {
        self.model.zeros().check_same_layout(base)?;
        base.check_finite()?;
        self.zeros().check_same_layout(adapters)?;
        adapters.check_finite()?;
        Ok(())
    }

    /// Writes the adapted matrices of the merged model into the flat
    /// buffer `full`: `W0 + s·B·A` (`Linear`) or `W0 + s·(B·A)ᵀ`
    /// (`Conv1D`), `W0` read from the flat base `base`. Leaves every other
    /// element of `full` as it is (a trainer fills them from `base` once).
    /// Call inside [`crate::Compute::run`] when `par` has several threads.
    ///
    /// # Panics
    /// When a buffer is not the model's or the adapters' flat view.
    pub fn merge_flat(&self, base: &[f32], adapters: &[f32], full: &mut [f32], par: Par) {
        let n = self.model.num_params();
        assert_eq!(base.len(), n, "base: not the model's flat view");
        assert_eq!(full.len(), n, "full: not the model's flat view");
        assert_eq!(
            adapters.len(),
            self.num_params,
            "adapters: not flat adapters"
        );
        let ranges: Vec<Range<usize>> = self.targets.iter().map(|t| t.weight_range()).collect();
        let dsts = slices_at(full, &ranges);
        let r = self.rank;
        let s = self.scale;
        let one = |(t, dst): (&Target, &mut [f32])| {
            dst.copy_from_slice(&base[t.w_range.clone()]);
            let a = &adapters[t.a_range.clone()];
            let b = &adapters[t.b_range.clone()];
            let (i, o) = (t.inputs, t.outputs);
            match t.orientation {
                // [out, in] += s · B[out, r] · A[r, in]
                Orientation::Linear => {
                    matmul_strided(dst, i, Mat::rows(b, o, r), Mat::rows(a, r, i), true, s)
                }
                // [in, out] += s · Aᵀ[in, r] · Bᵀ[r, out]
                Orientation::Conv1d => matmul_strided(
                    dst,
                    o,
                    Mat::rows(a, r, i).t(),
                    Mat::rows(b, o, r).t(),
                    true,
                    s,
                ),
            }
        };
        for_each_target(&self.targets, dsts, par, one);
    }

    /// The gradient of the loss with respect to the adapters, written into
    /// `out` (flat adapters), from `full_grads`, its gradient with respect
    /// to the merged model (flat), and the current flat `adapters`: for
    /// `Linear`, `dA = s·Bᵀ·dW`, `dB = s·dW·Aᵀ`; for `Conv1D` (`dW` stored
    /// `[in, out]`), `dA = s·Bᵀ·dWᵀ`, `dB = s·dWᵀ·Aᵀ`. Overwrites `out`.
    /// Call inside [`crate::Compute::run`] when `par` has several threads.
    ///
    /// # Panics
    /// When a buffer is not the model's or the adapters' flat view.
    pub fn adapter_grads(&self, full_grads: &[f32], adapters: &[f32], out: &mut [f32], par: Par) {
        assert_eq!(
            full_grads.len(),
            self.model.num_params(),
            "full_grads: not the model's flat view"
        );
        assert_eq!(
            adapters.len(),
            self.num_params,
            "adapters: not flat adapters"
        );
        assert_eq!(out.len(), self.num_params, "out: not flat adapters");
        let ranges: Vec<Range<usize>> = self
            .targets
            .iter()
            .flat_map(|t| [t.a_range.clone(), t.b_range.clone()])
            .collect();
        let mut slices = slices_at(out, &ranges).into_iter();
        let mut pairs = Vec::with_capacity(self.targets.len());
        while let (Some(da), Some(db)) = (slices.next(), slices.next()) {
            pairs.push((da, db));
        }
        let r = self.rank;
        let s = self.scale;
        let one = |(t, (da, db)): (&Target, (&mut [f32], &mut [f32]))| {
            let g = &full_grads[t.w_range.clone()];
            let a = &adapters[t.a_range.clone()];
            let b = &adapters[t.b_range.clone()];
            let (i, o) = (t.inputs, t.outputs);
            // dW as an [out, in] matrix: as stored, or the stored [in, out] transposed.
            let dw = match t.orientation {
                Orientation::Linear => Mat::rows(g, o, i),
                Orientation::Conv1d => Mat::rows(g, i, o).t(),
            };
            // dA[r, in] = s · Bᵀ[r, out] · dW[out, in]
            matmul_strided(da, i, Mat::rows(b, o, r).t(), dw, false, s);
            // dB[out, r] = s · dW[out, in] · Aᵀ[in, r]
            matmul_strided(db, r, dw, Mat::rows(a, r, i).t(), false, s);
        };
        for_each_target(&self.targets, pairs, par, one);
    }
}

/// Runs `f` on every target with its own output, each on one thread:
/// across the current rayon pool when `par` has several threads, else in
/// order. Each target's result is one fixed computation either way.
fn for_each_target<'t, T: Send>(
    targets: &'t [Target],
    outputs: Vec<T>,
    par: Par,
    f: impl Fn((&'t Target, T)) + Sync + Send,
) {
    use rayon::prelude::*;
    if par.threads > 1 && targets.len() > 1 {
        targets.par_iter().zip(outputs).for_each(f);
    } else {
        targets.iter().zip(outputs).for_each(f);
    }
}

/// Disjoint mutable slices of `buf` at `ranges` (disjoint, in bounds), in
/// the order of `ranges`.
fn slices_at<'a>(mut buf: &'a mut [f32], ranges: &[Range<usize>]) -> Vec<&'a mut [f32]> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| ranges[i].start);
    let mut out: Vec<Option<&'a mut [f32]>> = (0..ranges.len()).map(|_| None).collect();
    let mut at = 0;
    for i in order {
        let r = &ranges[i];
        let rest = std::mem::take(&mut buf);
        let (_, rest) = rest.split_at_mut(r.start - at);
        let (mine, rest) = rest.split_at_mut(r.len());
        out[i] = Some(mine);
        buf = rest;
        at = r.end;
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use funetun_core::ModelKind;
    use funetun_core::model::TransformerConfig;

    use super::*;

    /// `tiny` (32 wide, feed-forward 64); llama with one key/value head.
    fn model(kind: ModelKind) -> Model {
        let c = TransformerConfig::preset("tiny", 65).unwrap();
        let n_kv_head = if kind == ModelKind::Llama { 1 } else { 2 };
        Model::new(kind, Some(TransformerConfig { n_kv_head, ..c })).unwrap()
    }

    fn config(rank: u32, targets: &[&str]) -> LoraConfig {
        LoraConfig {
            rank,
            alpha: 2.0 * rank as f32,
            targets: targets.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn names_and_shapes_follow_peft() {
        let gpt = Lora::new(model(ModelKind::Gpt), &config(4, &["c_attn", "c_proj"])).unwrap();
        // Two blocks × (c_attn, attn.c_proj, mlp.c_proj), A and B each.
        assert_eq!(gpt.shapes().len(), 12);
        let shape = |l: &Lora, n: &str| {
            l.shapes()
                .into_iter()
                .find(|(name, _)| name == n)
                .unwrap_or_else(|| panic!("no {n}"))
                .1
        };
        // c_attn is Conv1D [32, 96]: 32 in, 96 out.
        assert_eq!(
            shape(&gpt, "transformer.h.0.attn.c_attn.lora_A.weight"),
            vec![4, 32]
        );
        assert_eq!(
            shape(&gpt, "transformer.h.0.attn.c_attn.lora_B.weight"),
            vec![96, 4]
        );
        // mlp.c_proj is Conv1D [64, 32]: 64 in, 32 out.
        assert_eq!(
            shape(&gpt, "transformer.h.1.mlp.c_proj.lora_A.weight"),
            vec![4, 64]
        );
        assert_eq!(
            shape(&gpt, "transformer.h.1.mlp.c_proj.lora_B.weight"),
            vec![32, 4]
        );
        assert_eq!(gpt.scale(), 2.0);
        let only_attn = Lora::new(model(ModelKind::Gpt), &config(4, &["attn.c_proj"])).unwrap();
        let names: Vec<_> = only_attn
            .targets()
            .iter()
            .map(|t| t.weight.clone())
            .collect();
        assert_eq!(
            names,
            [
                "transformer.h.0.attn.c_proj.weight",
                "transformer.h.1.attn.c_proj.weight"
            ]
        );
        // One block by a longer suffix; a matrix named twice is adapted once.
        let one = Lora::new(
            model(ModelKind::Gpt),
            &config(2, &["0.mlp.c_fc", "c_fc", "mlp.c_fc"]),
        )
        .unwrap();
        assert_eq!(one.targets().len(), 2);

        // llama: k_proj with one key/value head is [16, 32]: 32 in, 16 out.
        let llama = Lora::new(
            model(ModelKind::Llama),
            &config(8, &["k_proj", "down_proj"]),
        )
        .unwrap();
        let k = "model.layers.0.self_attn.k_proj";
        assert_eq!(shape(&llama, &format!("{k}.lora_A.weight")), vec![8, 32]);
        assert_eq!(shape(&llama, &format!("{k}.lora_B.weight")), vec![16, 8]);
        assert_eq!(
            shape(&llama, "model.layers.1.mlp.down_proj.lora_A.weight"),
            vec![8, 64]
        );
        assert_eq!(llama.num_params(), 2 * (8 * 32 + 16 * 8 + 8 * 64 + 32 * 8));
        assert_eq!(llama.zeros().num_params(), llama.num_params());
        // The adapters' flat view is in name order.
        let names: Vec<String> = llama.zeros().names().map(String::from).collect();
        let listed: Vec<String> = llama.shapes().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, listed);
    }

    #[test]
    fn bad_targets_and_models_are_refused_with_the_fix() {
        let e = Lora::new(model(ModelKind::Gpt), &config(4, &["q_proj"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`q_proj` matches no projection")
                && e.contains("c_attn, c_proj, attn.c_proj, mlp.c_proj, c_fc"),
            "{e}"
        );
        let e = Lora::new(model(ModelKind::Llama), &config(4, &["q_proj", "c_attn"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`c_attn`")
                && e.contains("q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"),
            "{e}"
        );
        // Not a projection: embeddings, norms, the head.
        for t in ["wte", "ln_1", "lm_head", "weight", "h.0.ln_1"] {
            assert!(
                Lora::new(model(ModelKind::Gpt), &config(4, &[t])).is_err(),
                "{t}"
            );
        }
        let e = Lora::new(Model::Mlp, &config(4, &["fc1"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a transformer") && e.contains("gpt or llama"),
            "{e}"
        );
        let e = Lora::new(model(ModelKind::Llama), &config(17, &["k_proj"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank ≤ 16"), "{e}");
        let e = Lora::new(model(ModelKind::Llama), &config(0, &["k_proj"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank") && e.contains("1..=1024"), "{e}");
    }

    #[test]
    fn init_is_seeded_bounded_and_starts_b_at_zero() {
        let lora = Lora::new(model(ModelKind::Llama), &config(4, &["q_proj", "up_proj"])).unwrap();
        let a = lora.init(3);
        assert_eq!(a, lora.init(3));
        assert_ne!(a, lora.init(4));
        for (name, t) in a.iter() {
            if name.ends_with("lora_B.weight") {
                assert!(t.data.iter().all(|&v| v == 0.0), "{name}");
            } else {
                let bound = 1.0 / (t.shape[1] as f32).sqrt();
                assert!(t.data.iter().all(|v| v.abs() <= bound), "{name}");
                let mean = t.data.iter().sum::<f32>() / t.len() as f32;
                assert!(mean.abs() < 0.1 * bound, "{name}: mean {mean}");
                assert!(t.data.iter().any(|v| v.abs() > 0.5 * bound), "{name}");
            }
        }
    }

    #[test]
    fn adapters_decode_only_in_their_own_layout() {
        let lora = Lora::new(model(ModelKind::Gpt), &config(2, &["c_fc"])).unwrap();
        let set = lora.init(1);
        let bytes = funetun_core::encode(&set);
        assert_eq!(lora.decode(&bytes).unwrap(), set);
        let other = Lora::new(model(ModelKind::Gpt), &config(2, &["c_attn"])).unwrap();
        assert!(other.decode(&bytes).is_err());
        let wider = Lora::new(model(ModelKind::Gpt), &config(4, &["c_fc"])).unwrap();
        assert!(lora.decode(&funetun_core::encode(&wider.init(1))).is_err());
        assert!(lora.decode(&bytes[..bytes.len() - 4]).is_err());
    }

    #[test]
    fn slices_land_where_their_ranges_say() {
        let mut buf: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let s = slices_at(&mut buf, &[6..9, 0..2, 3..4]);
        assert_eq!(s.len(), 3);
        assert_eq!(&*s[0], &[6.0, 7.0, 8.0]);
        assert_eq!(&*s[1], &[0.0, 1.0]);
        assert_eq!(&*s[2], &[3.0]);
    }
}
