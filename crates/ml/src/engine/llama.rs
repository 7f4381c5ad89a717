//! Llama (`LlamaForCausalLM`): rotary positions, pre-RMSNorm blocks with
//! grouped-query attention and SwiGLU feed-forward layers, no biases, and
//! an output head of its own.
//!
//! ```text
//! x = embed_tokens[token]
//! per block:  x += o_proj(attention(rope(q_proj, k_proj), v_proj)(input_layernorm(x)))
//!             x += down_proj(silu(gate_proj(n)) · up_proj(n)),  n = post_attention_layernorm(x)
//! logits = model.norm(x) · lm_headᵀ
//! ```
//!
//! `nn.Linear` weights are `[out, in]` (`y = x·Wᵀ`). Each step packs a
//! block's `q_proj | k_proj | v_proj` rows (and `gate_proj | up_proj`)
//! into one matrix, so each projection is one product whose output is
//! the packed row of [`Heads`] (and `gate | up` for [`kernels::swiglu`]).

use std::ops::Range;

use super::Par;
use super::kernels::{self, Heads, Rope};
use super::linalg::{Mat, matmul_transposed};
use crate::model::{Architecture as _, Model, TransformerConfig};

/// RoPE's base θ (Llama's default).
pub const ROPE_THETA: f32 = 10_000.0;

/// One block's parameters in the flat view.
struct LayerAt {
    norm1: Range<usize>,
    q: Range<usize>,
    k: Range<usize>,
    v: Range<usize>,
    o: Range<usize>,
    norm2: Range<usize>,
    gate: Range<usize>,
    up: Range<usize>,
    down: Range<usize>,
}

/// What one block's forward pass keeps for its backward pass.
struct Saved {
    /// `input_layernorm`'s normalised input, reciprocal roots and output.
    xhat1: Vec<f32>,
    rstd1: Vec<f32>,
    n1: Vec<f32>,
    /// Queries and keys after rotation, and values (rows × [`Heads::width`]).
    qkv: Vec<f32>,
    /// Attention probabilities (batch × heads × seq × seq).
    probs: Vec<f32>,
    /// Attention output, heads concatenated (rows × d).
    att: Vec<f32>,
    xhat2: Vec<f32>,
    rstd2: Vec<f32>,
    n2: Vec<f32>,
    /// `gate | up` projections (rows × 2·d_ff), `sigmoid(gate)` and
    /// `silu(gate)·up`.
    gu: Vec<f32>,
    sig: Vec<f32>,
    act: Vec<f32>,
}

/// Llama with its scratch buffers.
pub(crate) struct Llama {
    c: TransformerConfig,
    heads: Heads,
    rope: Rope,
    embed: Range<usize>,
    norm: Range<usize>,
    head: Range<usize>,
    at: Vec<LayerAt>,
    saved: Vec<Saved>,
    /// One block's packed `q|k|v` or `gate|up` weights.
    pack: Vec<f32>,
    /// The residual stream.
    x: Vec<f32>,
    xhatf: Vec<f32>,
    rstdf: Vec<f32>,
    hf: Vec<f32>,
    /// Logits, then their gradient (rows × vocab).
    logits: Vec<f32>,
    losses: Vec<f32>,
    /// The residual stream's gradient.
    dx: Vec<f32>,
    /// A norm output's gradient (rows × d).
    dh: Vec<f32>,
    datt: Vec<f32>,
    dqkv: Vec<f32>,
    /// Attention's per-sequence scratch.
    work: Vec<f32>,
    dact: Vec<f32>,
    dgu: Vec<f32>,
}

fn zeros(n: usize) -> Vec<f32> {
    vec![0.0; n]
}

impl Llama {
    /// Scratch for `max_batch` sequences of `c.context` tokens.
    pub(crate) fn new(c: TransformerConfig, max_batch: usize) -> Self {
        let l = Model::Llama(c).layout();
        let (d, f, v, t) = (c.d_model, c.d_ff, c.vocab, c.context);
        let rows = max_batch * t;
        let heads = Heads {
            n_head: c.n_head,
            n_kv_head: c.n_kv_head,
            head_dim: c.head_dim(),
        };
        let at = (0..c.n_layer)
            .map(|i| {
                let r = |s: &str| l.range(&format!("model.layers.{i}.{s}.weight"));
                LayerAt {
                    norm1: r("input_layernorm"),
                    q: r("self_attn.q_proj"),
                    k: r("self_attn.k_proj"),
                    v: r("self_attn.v_proj"),
                    o: r("self_attn.o_proj"),
                    norm2: r("post_attention_layernorm"),
                    gate: r("mlp.gate_proj"),
                    up: r("mlp.up_proj"),
                    down: r("mlp.down_proj"),
                }
            })
            .collect();
        let saved = (0..c.n_layer)
            .map(|_| Saved {
                xhat1: zeros(rows * d),
                rstd1: zeros(rows),
                n1: zeros(rows * d),
                qkv: zeros(rows * heads.width()),
                probs: zeros(max_batch * c.n_head * t * t),
                att: zeros(rows * d),
                xhat2: zeros(rows * d),
                rstd2: zeros(rows),
                n2: zeros(rows * d),
                gu: zeros(rows * 2 * f),
                sig: zeros(rows * f),
                act: zeros(rows * f),
            })
            .collect();
        Self {
            c,
            heads,
            rope: Rope::new(heads.head_dim, t, ROPE_THETA),
            embed: l.range("model.embed_tokens.weight"),
            norm: l.range("model.norm.weight"),
            head: l.range("lm_head.weight"),
            at,
            saved,
            pack: zeros(d * heads.width().max(2 * f)),
            x: zeros(rows * d),
            xhatf: zeros(rows * d),
            rstdf: zeros(rows),
            hf: zeros(rows * d),
            logits: zeros(rows * v),
            losses: zeros(rows),
            dx: zeros(rows * d),
            dh: zeros(rows * d),
            datt: zeros(rows * d),
            dqkv: zeros(rows * heads.width()),
            work: zeros(max_batch * kernels::attention_work(heads, t)),
            dact: zeros(rows * f),
            dgu: zeros(rows * 2 * f),
        }
    }

    /// Scratch held, in f32 values.
    pub(crate) fn scratch_floats(&self) -> usize {
        let per_layer: usize = self
            .saved
            .iter()
            .map(|s| {
                [
                    &s.xhat1, &s.rstd1, &s.n1, &s.qkv, &s.probs, &s.att, &s.xhat2, &s.rstd2, &s.n2,
                    &s.gu, &s.sig, &s.act,
                ]
                .iter()
                .map(|v| v.len())
                .sum::<usize>()
            })
            .sum();
        per_layer
            + self.rope.len()
            + [
                &self.pack,
                &self.x,
                &self.xhatf,
                &self.rstdf,
                &self.hf,
                &self.logits,
                &self.losses,
                &self.dx,
                &self.dh,
                &self.datt,
                &self.dqkv,
                &self.work,
                &self.dact,
                &self.dgu,
            ]
            .iter()
            .map(|v| v.len())
            .sum::<usize>()
    }

    /// Copies the rows of `parts` (each `[out, d]`) one after another into
    /// the pack buffer, returning the packed `[Σ out, d]` matrix.
    fn pack(&mut self, p: &[f32], parts: &[&Range<usize>]) -> usize {
        let mut at = 0;
        for r in parts {
            self.pack[at..at + r.len()].copy_from_slice(&p[(*r).clone()]);
            at += r.len();
        }
        at / self.c.d_model
    }

    /// The forward pass up to the logits, which it leaves in
    /// `self.logits` (`batch·seq × vocab`).
    pub(crate) fn forward(
        &mut self,
        p: &[f32],
        tokens: &[u32],
        batch: usize,
        seq: usize,
        par: Par,
    ) {
        let (d, f) = (self.c.d_model, self.c.d_ff);
        let n = batch * seq;
        let heads = self.heads;
        let w = heads.width();
        kernels::embed(
            &mut self.x,
            &p[self.embed.clone()],
            None,
            tokens,
            d,
            seq,
            par,
        );
        for i in 0..self.at.len() {
            let at = &self.at[i];
            let (q, k, v, o, gate, up, down) = (
                at.q.clone(),
                at.k.clone(),
                at.v.clone(),
                at.o.clone(),
                at.gate.clone(),
                at.up.clone(),
                at.down.clone(),
            );
            let (norm1, norm2) = (at.norm1.clone(), at.norm2.clone());
            // Attention.
            let s = &mut self.saved[i];
            kernels::rms_norm(
                &mut s.n1,
                &mut s.xhat1,
                &mut s.rstd1,
                &self.x,
                &p[norm1],
                n,
                par,
            );
            self.pack(p, &[&q, &k, &v]);
            let s = &mut self.saved[i];
            matmul_transposed(
                &mut s.qkv,
                Mat::rows(&s.n1, n, d),
                Mat::rows(&self.pack, w, d).t(),
                false,
                par,
            );
            self.rope.forward(&mut s.qkv, heads, n, seq, par);
            kernels::attention(
                &mut s.att,
                &mut s.probs,
                &mut self.work,
                &s.qkv,
                heads,
                batch,
                seq,
                par,
            );
            matmul_transposed(
                &mut self.x,
                Mat::rows(&s.att, n, d),
                Mat::rows(&p[o], d, d).t(),
                true,
                par,
            );
            // Feed-forward.
            kernels::rms_norm(
                &mut s.n2,
                &mut s.xhat2,
                &mut s.rstd2,
                &self.x,
                &p[norm2],
                n,
                par,
            );
            self.pack(p, &[&gate, &up]);
            let s = &mut self.saved[i];
            matmul_transposed(
                &mut s.gu,
                Mat::rows(&s.n2, n, d),
                Mat::rows(&self.pack, 2 * f, d).t(),
                false,
                par,
            );
            kernels::swiglu(&mut s.act, &mut s.sig, &s.gu, f, n, par);
            matmul_transposed(
                &mut self.x,
                Mat::rows(&s.act, n, f),
                Mat::rows(&p[down], d, f).t(),
                true,
                par,
            );
        }
        kernels::rms_norm(
            &mut self.hf,
            &mut self.xhatf,
            &mut self.rstdf,
            &self.x,
            &p[self.norm.clone()],
            n,
            par,
        );
        matmul_transposed(
            &mut self.logits,
            Mat::rows(&self.hf, n, d),
            Mat::rows(&p[self.head.clone()], self.c.vocab, d).t(),
            false,
            par,
        );
    }

    /// The logits the last [`Self::forward`] left.
    pub(crate) fn logits(&self, rows: usize) -> &[f32] {
        &self.logits[..rows * self.c.vocab]
    }

    /// Mean cross-entropy of the last forward pass's logits against
    /// `targets`; leaves the logits' gradient in their place.
    pub(crate) fn loss(&mut self, targets: &[u32], par: Par) -> f32 {
        kernels::cross_entropy(
            &mut self.logits,
            &mut self.losses,
            targets,
            self.c.vocab,
            par,
        )
    }

    /// The backward pass from the logits' gradient that [`Self::loss`]
    /// left, writing every parameter's gradient into `g`.
    pub(crate) fn backward(
        &mut self,
        p: &[f32],
        tokens: &[u32],
        batch: usize,
        seq: usize,
        g: &mut [f32],
        par: Par,
    ) {
        let (d, f, vocab) = (self.c.d_model, self.c.d_ff, self.c.vocab);
        let n = batch * seq;
        let heads = self.heads;
        let w = heads.width();
        let kv = heads.n_kv_head * heads.head_dim;
        let dlogits = Mat::rows(&self.logits, n, vocab);
        matmul_transposed(
            &mut g[self.head.clone()],
            dlogits.t(),
            Mat::rows(&self.hf, n, d),
            false,
            par,
        );
        matmul_transposed(
            &mut self.dh,
            dlogits,
            Mat::rows(&p[self.head.clone()], vocab, d),
            false,
            par,
        );
        kernels::rms_norm_backward(
            &mut self.dx,
            &mut g[self.norm.clone()],
            &self.dh,
            &self.xhatf,
            &self.rstdf,
            &p[self.norm.clone()],
            n,
            false,
            par,
        );
        for i in (0..self.at.len()).rev() {
            let at = &self.at[i];
            let (q, k, v, o, gate, up, down) = (
                at.q.clone(),
                at.k.clone(),
                at.v.clone(),
                at.o.clone(),
                at.gate.clone(),
                at.up.clone(),
                at.down.clone(),
            );
            let (norm1, norm2) = (at.norm1.clone(), at.norm2.clone());
            // Feed-forward.
            let s = &self.saved[i];
            matmul_transposed(
                &mut g[down.clone()],
                Mat::rows(&self.dx, n, d).t(),
                Mat::rows(&s.act, n, f),
                false,
                par,
            );
            matmul_transposed(
                &mut self.dact,
                Mat::rows(&self.dx, n, d),
                Mat::rows(&p[down], d, f),
                false,
                par,
            );
            kernels::swiglu_backward(&mut self.dgu, &self.dact, &s.gu, &s.sig, f, n, par);
            let n2 = Mat::rows(&s.n2, n, d);
            matmul_transposed(
                &mut g[gate.clone()],
                Mat::strided(&self.dgu, n, f, 2 * f).t(),
                n2,
                false,
                par,
            );
            matmul_transposed(
                &mut g[up.clone()],
                Mat::strided(&self.dgu[f..], n, f, 2 * f).t(),
                n2,
                false,
                par,
            );
            self.pack(p, &[&gate, &up]);
            matmul_transposed(
                &mut self.dh,
                Mat::rows(&self.dgu, n, 2 * f),
                Mat::rows(&self.pack, 2 * f, d),
                false,
                par,
            );
            let s = &self.saved[i];
            kernels::rms_norm_backward(
                &mut self.dx,
                &mut g[norm2.clone()],
                &self.dh,
                &s.xhat2,
                &s.rstd2,
                &p[norm2],
                n,
                true,
                par,
            );
            // Attention.
            matmul_transposed(
                &mut g[o.clone()],
                Mat::rows(&self.dx, n, d).t(),
                Mat::rows(&s.att, n, d),
                false,
                par,
            );
            matmul_transposed(
                &mut self.datt,
                Mat::rows(&self.dx, n, d),
                Mat::rows(&p[o], d, d),
                false,
                par,
            );
            kernels::attention_backward(
                &mut self.dqkv,
                &mut self.work,
                &self.datt,
                &s.qkv,
                &s.probs,
                heads,
                batch,
                seq,
                par,
            );
            self.rope.backward(&mut self.dqkv, heads, n, seq, par);
            let n1 = Mat::rows(&s.n1, n, d);
            for (range, at, width) in [(&q, 0, d), (&k, d, kv), (&v, d + kv, kv)] {
                matmul_transposed(
                    &mut g[range.clone()],
                    Mat::strided(&self.dqkv[at..], n, width, w).t(),
                    n1,
                    false,
                    par,
                );
            }
            self.pack(p, &[&q, &k, &v]);
            matmul_transposed(
                &mut self.dh,
                Mat::rows(&self.dqkv, n, w),
                Mat::rows(&self.pack, w, d),
                false,
                par,
            );
            let s = &self.saved[i];
            kernels::rms_norm_backward(
                &mut self.dx,
                &mut g[norm1.clone()],
                &self.dh,
                &s.xhat1,
                &s.rstd1,
                &p[norm1],
                n,
                true,
                par,
            );
        }
        let ge = &mut g[self.embed.clone()];
        ge.fill(0.0);
        kernels::embed_backward(ge, None, &self.dx[..n * d], tokens, d, seq);
    }
}
