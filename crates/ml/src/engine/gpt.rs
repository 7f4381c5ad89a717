//! GPT-2 (`GPT2LMHeadModel`): learned positions, pre-LayerNorm blocks
//! with GELU (tanh form) feed-forward layers, biases everywhere, and the
//! output head tied to the token embedding.
//!
//! ```text
//! x = wte[token] + wpe[position]
//! per block:  x += c_proj(attention(c_attn(ln_1(x))))
//!             x += mlp.c_proj(gelu(c_fc(ln_2(x))))
//! logits = ln_f(x) · wteᵀ
//! ```
//!
//! `Conv1D` weights are `[in, out]` (`y = x·W + b`); `c_attn`'s output is
//! the packed `q | k | v` row of [`Heads`].

use std::ops::Range;

use super::Par;
use super::kernels::{self, Heads};
use super::linalg::{Mat, broadcast_rows, matmul_transposed};
use crate::model::{Architecture as _, Model, TransformerConfig};

/// One block's parameters in the flat view.
struct LayerAt {
    ln1_w: Range<usize>,
    ln1_b: Range<usize>,
    attn_w: Range<usize>,
    attn_b: Range<usize>,
    proj_w: Range<usize>,
    proj_b: Range<usize>,
    ln2_w: Range<usize>,
    ln2_b: Range<usize>,
    fc_w: Range<usize>,
    fc_b: Range<usize>,
    out_w: Range<usize>,
    out_b: Range<usize>,
}

/// What one block's forward pass keeps for its backward pass.
struct Saved {
    /// `ln_1`'s normalised input, reciprocal deviations and output.
    xhat1: Vec<f32>,
    rstd1: Vec<f32>,
    h1: Vec<f32>,
    /// `c_attn`'s output (rows × 3d).
    qkv: Vec<f32>,
    /// Attention probabilities (batch × heads × seq × seq).
    probs: Vec<f32>,
    /// Attention output, heads concatenated (rows × d).
    att: Vec<f32>,
    xhat2: Vec<f32>,
    rstd2: Vec<f32>,
    h2: Vec<f32>,
    /// GELU of `c_fc`'s output (rows × d_ff), and its derivative there.
    act: Vec<f32>,
    slope: Vec<f32>,
}

/// GPT-2 with its scratch buffers.
pub(crate) struct Gpt {
    c: TransformerConfig,
    heads: Heads,
    wte: Range<usize>,
    wpe: Range<usize>,
    lnf_w: Range<usize>,
    lnf_b: Range<usize>,
    at: Vec<LayerAt>,
    saved: Vec<Saved>,
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
    /// `c_fc`'s output in the forward pass, its gradient in the backward.
    dfc: Vec<f32>,
}

fn zeros(n: usize) -> Vec<f32> {
    vec![0.0; n]
}

impl Gpt {
    /// Scratch for `max_batch` sequences of `c.context` tokens.
    pub(crate) fn new(c: TransformerConfig, max_batch: usize) -> Self {
        let l = Model::Gpt(c).layout();
        let (d, f, v, t) = (c.d_model, c.d_ff, c.vocab, c.context);
        let rows = max_batch * t;
        let heads = Heads {
            n_head: c.n_head,
            n_kv_head: c.n_head,
            head_dim: c.head_dim(),
        };
        let at = (0..c.n_layer)
            .map(|i| {
                let r = |s: &str| l.range(&format!("transformer.h.{i}.{s}"));
                LayerAt {
                    ln1_w: r("ln_1.weight"),
                    ln1_b: r("ln_1.bias"),
                    attn_w: r("attn.c_attn.weight"),
                    attn_b: r("attn.c_attn.bias"),
                    proj_w: r("attn.c_proj.weight"),
                    proj_b: r("attn.c_proj.bias"),
                    ln2_w: r("ln_2.weight"),
                    ln2_b: r("ln_2.bias"),
                    fc_w: r("mlp.c_fc.weight"),
                    fc_b: r("mlp.c_fc.bias"),
                    out_w: r("mlp.c_proj.weight"),
                    out_b: r("mlp.c_proj.bias"),
                }
            })
            .collect();
        let saved = (0..c.n_layer)
            .map(|_| Saved {
                xhat1: zeros(rows * d),
                rstd1: zeros(rows),
                h1: zeros(rows * d),
                qkv: zeros(rows * heads.width()),
                probs: zeros(max_batch * c.n_head * t * t),
                att: zeros(rows * d),
                xhat2: zeros(rows * d),
                rstd2: zeros(rows),
                h2: zeros(rows * d),
                act: zeros(rows * f),
                slope: zeros(rows * f),
            })
            .collect();
        Self {
            c,
            heads,
            wte: l.range("transformer.wte.weight"),
            wpe: l.range("transformer.wpe.weight"),
            lnf_w: l.range("transformer.ln_f.weight"),
            lnf_b: l.range("transformer.ln_f.bias"),
            at,
            saved,
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
            dfc: zeros(rows * f),
        }
    }

    /// Scratch held, in f32 values.
    pub(crate) fn scratch_floats(&self) -> usize {
        let per_layer: usize = self
            .saved
            .iter()
            .map(|s| {
                [
                    &s.xhat1, &s.rstd1, &s.h1, &s.qkv, &s.probs, &s.att, &s.xhat2, &s.rstd2, &s.h2,
                    &s.act, &s.slope,
                ]
                .iter()
                .map(|v| v.len())
                .sum::<usize>()
            })
            .sum();
        per_layer
            + [
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
                &self.dfc,
            ]
            .iter()
            .map(|v| v.len())
            .sum::<usize>()
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
        let w3 = heads.width();
        kernels::embed(
            &mut self.x,
            &p[self.wte.clone()],
            Some(&p[self.wpe.clone()]),
            tokens,
            d,
            seq,
            par,
        );
        for (at, s) in self.at.iter().zip(&mut self.saved) {
            // Attention.
            kernels::layer_norm(
                &mut s.h1,
                &mut s.xhat1,
                &mut s.rstd1,
                &self.x,
                &p[at.ln1_w.clone()],
                &p[at.ln1_b.clone()],
                n,
                par,
            );
            let qkv = &mut s.qkv[..n * w3];
            broadcast_rows(qkv, &p[at.attn_b.clone()], n);
            matmul_transposed(
                qkv,
                Mat::rows(&s.h1, n, d),
                Mat::rows(&p[at.attn_w.clone()], d, w3),
                true,
                par,
            );
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
            kernels::add_bias(&mut self.x, &p[at.proj_b.clone()], n);
            matmul_transposed(
                &mut self.x,
                Mat::rows(&s.att, n, d),
                Mat::rows(&p[at.proj_w.clone()], d, d),
                true,
                par,
            );
            // Feed-forward.
            kernels::layer_norm(
                &mut s.h2,
                &mut s.xhat2,
                &mut s.rstd2,
                &self.x,
                &p[at.ln2_w.clone()],
                &p[at.ln2_b.clone()],
                n,
                par,
            );
            matmul_transposed(
                &mut self.dfc,
                Mat::rows(&s.h2, n, d),
                Mat::rows(&p[at.fc_w.clone()], d, f),
                false,
                par,
            );
            kernels::gelu(
                &mut s.act,
                &mut s.slope,
                &mut self.dfc,
                &p[at.fc_b.clone()],
                n,
                par,
            );
            kernels::add_bias(&mut self.x, &p[at.out_b.clone()], n);
            matmul_transposed(
                &mut self.x,
                Mat::rows(&s.act, n, f),
                Mat::rows(&p[at.out_w.clone()], f, d),
                true,
                par,
            );
        }
        kernels::layer_norm(
            &mut self.hf,
            &mut self.xhatf,
            &mut self.rstdf,
            &self.x,
            &p[self.lnf_w.clone()],
            &p[self.lnf_b.clone()],
            n,
            par,
        );
        matmul_transposed(
            &mut self.logits,
            Mat::rows(&self.hf, n, d),
            Mat::rows(&p[self.wte.clone()], self.c.vocab, d).t(),
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
        let (d, f, v) = (self.c.d_model, self.c.d_ff, self.c.vocab);
        let n = batch * seq;
        let heads = self.heads;
        let w3 = heads.width();
        let dlogits = Mat::rows(&self.logits, n, v);
        // Tied head: wte's gradient starts with the head's share.
        matmul_transposed(
            &mut g[self.wte.clone()],
            dlogits.t(),
            Mat::rows(&self.hf, n, d),
            false,
            par,
        );
        matmul_transposed(
            &mut self.dh,
            dlogits,
            Mat::rows(&p[self.wte.clone()], v, d),
            false,
            par,
        );
        let (gw, gb) = two(g, &self.lnf_w, &self.lnf_b);
        kernels::layer_norm_backward(
            &mut self.dx,
            gw,
            gb,
            &self.dh,
            &self.xhatf,
            &self.rstdf,
            &p[self.lnf_w.clone()],
            n,
            false,
            par,
        );
        for (at, s) in self.at.iter().zip(&self.saved).rev() {
            // Feed-forward.
            matmul_transposed(
                &mut g[at.out_w.clone()],
                Mat::rows(&s.act, n, f).t(),
                Mat::rows(&self.dx, n, d),
                false,
                par,
            );
            kernels::column_sums(&mut g[at.out_b.clone()], &self.dx, n, d);
            matmul_transposed(
                &mut self.dfc,
                Mat::rows(&self.dx, n, d),
                Mat::rows(&p[at.out_w.clone()], f, d).t(),
                false,
                par,
            );
            kernels::gelu_backward(&mut self.dfc[..n * f], &s.slope, par);
            matmul_transposed(
                &mut g[at.fc_w.clone()],
                Mat::rows(&s.h2, n, d).t(),
                Mat::rows(&self.dfc, n, f),
                false,
                par,
            );
            kernels::column_sums(&mut g[at.fc_b.clone()], &self.dfc, n, f);
            matmul_transposed(
                &mut self.dh,
                Mat::rows(&self.dfc, n, f),
                Mat::rows(&p[at.fc_w.clone()], d, f).t(),
                false,
                par,
            );
            let (gw, gb) = two(g, &at.ln2_w, &at.ln2_b);
            kernels::layer_norm_backward(
                &mut self.dx,
                gw,
                gb,
                &self.dh,
                &s.xhat2,
                &s.rstd2,
                &p[at.ln2_w.clone()],
                n,
                true,
                par,
            );
            // Attention.
            matmul_transposed(
                &mut g[at.proj_w.clone()],
                Mat::rows(&s.att, n, d).t(),
                Mat::rows(&self.dx, n, d),
                false,
                par,
            );
            kernels::column_sums(&mut g[at.proj_b.clone()], &self.dx, n, d);
            matmul_transposed(
                &mut self.datt,
                Mat::rows(&self.dx, n, d),
                Mat::rows(&p[at.proj_w.clone()], d, d).t(),
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
            matmul_transposed(
                &mut g[at.attn_w.clone()],
                Mat::rows(&s.h1, n, d).t(),
                Mat::rows(&self.dqkv, n, w3),
                false,
                par,
            );
            kernels::column_sums(&mut g[at.attn_b.clone()], &self.dqkv, n, w3);
            matmul_transposed(
                &mut self.dh,
                Mat::rows(&self.dqkv, n, w3),
                Mat::rows(&p[at.attn_w.clone()], d, w3).t(),
                false,
                par,
            );
            let (gw, gb) = two(g, &at.ln1_w, &at.ln1_b);
            kernels::layer_norm_backward(
                &mut self.dx,
                gw,
                gb,
                &self.dh,
                &s.xhat1,
                &s.rstd1,
                &p[at.ln1_w.clone()],
                n,
                true,
                par,
            );
        }
        let (gte, gpe) = two(g, &self.wte, &self.wpe);
        gpe.fill(0.0);
        kernels::embed_backward(gte, Some(gpe), &self.dx[..n * d], tokens, d, seq);
    }
}

/// Two disjoint ranges of `g`, borrowed mutably together.
pub(crate) fn two<'a>(
    g: &'a mut [f32],
    a: &Range<usize>,
    b: &Range<usize>,
) -> (&'a mut [f32], &'a mut [f32]) {
    if a.start < b.start {
        assert!(a.end <= b.start, "overlapping parameter ranges");
        let (lo, hi) = g.split_at_mut(b.start);
        (&mut lo[a.clone()], &mut hi[..b.len()])
    } else {
        let (b, a) = two(g, b, a);
        (a, b)
    }
}
