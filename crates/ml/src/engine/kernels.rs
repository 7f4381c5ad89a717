//! The transformers' shared kernels, each with its backward pass, over
//! flat row-major f32 buffers whose rows are tokens (`batch × seq` of
//! them, sequence after sequence):
//!
//! - [`layer_norm`] and [`rms_norm`] (eps [`NORM_EPS`]);
//! - [`gelu`] (the tanh form) and [`swiglu`] (`silu(gate) · up`);
//! - [`Rope`]: rotary position embeddings in Hugging Face's
//!   `rotate_half` convention;
//! - [`attention`]: causal multi-head attention with grouped-query heads;
//! - [`embed`]: token (and position) embedding lookup;
//! - [`cross_entropy`]: the mean next-token loss and its gradient;
//! - [`add_bias`], [`column_sums`] for the linear layers around them.
//!
//! Determinism: row-wise kernels cut their rows into blocks fixed by the
//! shape, and every output element is written by one thread; attention's
//! work items are whole sequences; reductions over rows (gain, bias and
//! embedding gradients, the loss) run in row order on one thread. Sums
//! along a row use [`sum`] and [`dot`], whose order is fixed by the length
//! alone. So no result depends on the thread count.
//!
//! `exp`, `tanh` and the sigmoid are written out ([`exp`]) so that the
//! loops around them vectorise; they are within a few ulp of the C
//! library's.

use rayon::prelude::*;

use super::Par;
use super::linalg::{Mat, matmul_strided};

/// Epsilon of both norms (Hugging Face's default for GPT-2 and Llama).
pub const NORM_EPS: f32 = 1e-5;

/// Rows per work item of the row-wise kernels.
const ROWS: usize = 16;

/// Runs `f(first_row, rows_of_a)` over blocks of [`ROWS`] rows of `a`
/// (`width` values a row), in parallel when `par` allows.
fn rows1(par: Par, a: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let run = |(i, a): (usize, &mut [f32])| f(i * ROWS, a);
    if par.threads > 1 {
        a.par_chunks_mut(ROWS * width).enumerate().for_each(run);
    } else {
        a.chunks_mut(ROWS * width).enumerate().for_each(run);
    }
}

/// [`rows1`] over two buffers cut at the same rows.
fn rows2(
    par: Par,
    a: &mut [f32],
    aw: usize,
    b: &mut [f32],
    bw: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) {
    let run = |(i, (a, b)): (usize, (&mut [f32], &mut [f32]))| f(i * ROWS, a, b);
    if par.threads > 1 {
        a.par_chunks_mut(ROWS * aw)
            .zip(b.par_chunks_mut(ROWS * bw))
            .enumerate()
            .for_each(run);
    } else {
        a.chunks_mut(ROWS * aw)
            .zip(b.chunks_mut(ROWS * bw))
            .enumerate()
            .for_each(run);
    }
}

/// [`rows1`] over three buffers cut at the same rows.
#[allow(clippy::too_many_arguments)]
fn rows3(
    par: Par,
    a: &mut [f32],
    aw: usize,
    b: &mut [f32],
    bw: usize,
    c: &mut [f32],
    cw: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32], &mut [f32]) + Sync,
) {
    type Item<'a> = (usize, ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]));
    let run = |(i, ((a, b), c)): Item<'_>| f(i * ROWS, a, b, c);
    if par.threads > 1 {
        a.par_chunks_mut(ROWS * aw)
            .zip(b.par_chunks_mut(ROWS * bw))
            .zip(c.par_chunks_mut(ROWS * cw))
            .enumerate()
            .for_each(run);
    } else {
        a.chunks_mut(ROWS * aw)
            .zip(b.chunks_mut(ROWS * bw))
            .zip(c.chunks_mut(ROWS * cw))
            .enumerate()
            .for_each(run);
    }
}

/// Lanes of the partial sums in [`sum`] and [`dot`].
const LANES: usize = 16;

/// `Σ xs` in an order fixed by the length: sixteen interleaved partial
/// sums (which the compiler keeps in vector registers), then those in
/// order.
pub fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    for (a, v) in acc.iter_mut().zip(rest) {
        *a += v;
    }
    acc.iter().sum()
}

/// `Σ a·b` in the order of [`sum`].
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: lengths differ");
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    for ((s, x), y) in acc.iter_mut().zip(ra).zip(rb) {
        *s += x * y;
    }
    acc.iter().sum()
}

/// `eˣ` for `x` clamped to `[-87, 88]` (so never zero or infinite),
/// within two ulp: Cephes' `expf` (Cody–Waite reduction by ln 2 and a
/// degree-6 polynomial), branch-free so that loops over it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // 1.5 · 2²³: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.max(-87.0).min(88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let y = p * r * r + r + 1.0;
    // 2ⁿ from n's bits: n + 127 in the exponent field (1..=254 here).
    let scale = f32::from_bits(t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23);
    y * scale
}

/// `tanh x` as `(1 − e^{−2|x|}) / (1 + e^{−2|x|})` with the sign of `x`:
/// absolute error below 2·10⁻⁷.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// The logistic sigmoid `1 / (1 + e^{−x})`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Adds `bias` to each of the `rows` rows of `y`.
pub fn add_bias(y: &mut [f32], bias: &[f32], rows: usize) {
    for row in y[..rows * bias.len()].chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// `out[j] = Σ_r m[r, j]` over the `rows × width` matrix `m`, in row
/// order; [`super::linalg::column_sums`] with the same order.
pub fn column_sums(out: &mut [f32], m: &[f32], rows: usize, width: usize) {
    super::linalg::column_sums(out, m, rows, width);
}

/// LayerNorm of each `d`-wide row of `x`: `out = x̂·w + b` with
/// `x̂ = (x − mean) / √(var + eps)` (biased variance). Keeps `x̂` and
/// `1/√(var + eps)` per row for the backward pass.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    out: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: &[f32],
    rows: usize,
    par: Par,
) {
    let d = w.len();
    let (out, xhat, rstd) = (
        &mut out[..rows * d],
        &mut xhat[..rows * d],
        &mut rstd[..rows],
    );
    rows3(par, out, d, xhat, d, rstd, 1, |r0, out, xhat, rstd| {
        for (i, ((o, xh), rs)) in out
            .chunks_exact_mut(d)
            .zip(xhat.chunks_exact_mut(d))
            .zip(rstd.iter_mut())
            .enumerate()
        {
            let x = &x[(r0 + i) * d..(r0 + i + 1) * d];
            let mean = sum(x) / d as f32;
            for (h, v) in xh.iter_mut().zip(x) {
                *h = v - mean;
            }
            let var = dot(xh, xh) / d as f32;
            let r = 1.0 / (var + NORM_EPS).sqrt();
            *rs = r;
            for (((o, h), w), b) in o.iter_mut().zip(xh.iter_mut()).zip(w).zip(b) {
                *h *= r;
                *o = *h * w + b;
            }
        }
    });
}

/// LayerNorm's backward pass from the output gradient `dy`: writes the
/// gain and bias gradients `dw`, `db` (summed in row order) and adds the
/// input gradient to `dx` (or writes it, when `accumulate` is unset).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    w: &[f32],
    rows: usize,
    accumulate: bool,
    par: Par,
) {
    let d = w.len();
    column_sums(db, dy, rows, d);
    gain_gradient(dw, dy, xhat, rows, d);
    rows1(par, &mut dx[..rows * d], d, |r0, dx| {
        let mut g = [0f32; MAX_NORM_WIDTH];
        for (i, dx) in dx.chunks_exact_mut(d).enumerate() {
            let r = r0 + i;
            let (dy, xh) = (&dy[r * d..(r + 1) * d], &xhat[r * d..(r + 1) * d]);
            let g = norm_input_gradient(&mut g, dy, w);
            let m1 = sum(g) / d as f32;
            let m2 = dot(g, xh) / d as f32;
            let rs = rstd[r];
            for ((dx, g), h) in dx.iter_mut().zip(g.iter()).zip(xh) {
                let v = rs * (g - m1 - h * m2);
                *dx = if accumulate { *dx + v } else { v };
            }
        }
    });
}

/// RMSNorm of each `d`-wide row of `x`: `out = x̂·w` with
/// `x̂ = x / √(mean(x²) + eps)`. Keeps `x̂` and the reciprocal root per row.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm(
    out: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    w: &[f32],
    rows: usize,
    par: Par,
) {
    let d = w.len();
    let (out, xhat, rstd) = (
        &mut out[..rows * d],
        &mut xhat[..rows * d],
        &mut rstd[..rows],
    );
    rows3(par, out, d, xhat, d, rstd, 1, |r0, out, xhat, rstd| {
        for (i, ((o, xh), rs)) in out
            .chunks_exact_mut(d)
            .zip(xhat.chunks_exact_mut(d))
            .zip(rstd.iter_mut())
            .enumerate()
        {
            let x = &x[(r0 + i) * d..(r0 + i + 1) * d];
            let r = 1.0 / (dot(x, x) / d as f32 + NORM_EPS).sqrt();
            *rs = r;
            for (((o, h), w), v) in o.iter_mut().zip(xh.iter_mut()).zip(w).zip(x) {
                *h = v * r;
                *o = *h * w;
            }
        }
    });
}

/// RMSNorm's backward pass: writes the gain gradient `dw` (row order) and
/// adds the input gradient to `dx` (or writes it, when `accumulate` is
/// unset).
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_backward(
    dx: &mut [f32],
    dw: &mut [f32],
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    w: &[f32],
    rows: usize,
    accumulate: bool,
    par: Par,
) {
    let d = w.len();
    gain_gradient(dw, dy, xhat, rows, d);
    rows1(par, &mut dx[..rows * d], d, |r0, dx| {
        let mut g = [0f32; MAX_NORM_WIDTH];
        for (i, dx) in dx.chunks_exact_mut(d).enumerate() {
            let r = r0 + i;
            let (dy, xh) = (&dy[r * d..(r + 1) * d], &xhat[r * d..(r + 1) * d]);
            let g = norm_input_gradient(&mut g, dy, w);
            let m2 = dot(g, xh) / d as f32;
            let rs = rstd[r];
            for ((dx, g), h) in dx.iter_mut().zip(g.iter()).zip(xh) {
                let v = rs * (g - h * m2);
                *dx = if accumulate { *dx + v } else { v };
            }
        }
    });
}

/// Widest row the norms' backward passes take (the protocol's `MAX_WIDTH`).
const MAX_NORM_WIDTH: usize = funetun_core::model::MAX_WIDTH;

/// `g = dy ⊙ w` into the start of `buf`.
fn norm_input_gradient<'a>(buf: &'a mut [f32], dy: &[f32], w: &[f32]) -> &'a [f32] {
    let g = &mut buf[..w.len()];
    for ((g, dy), w) in g.iter_mut().zip(dy).zip(w) {
        *g = dy * w;
    }
    g
}

/// `dw[j] = Σ_r dy[r, j] · x̂[r, j]`, in row order.
fn gain_gradient(dw: &mut [f32], dy: &[f32], xhat: &[f32], rows: usize, d: usize) {
    let dw = &mut dw[..d];
    dw.fill(0.0);
    for (dy, xh) in dy[..rows * d].chunks_exact(d).zip(xhat.chunks_exact(d)) {
        for ((w, dy), h) in dw.iter_mut().zip(dy).zip(xh) {
            *w += dy * h;
        }
    }
}

/// √(2/π), GELU's inner scale.
const GELU_K0: f32 = 0.797_884_6;
/// GELU's cubic coefficient.
const GELU_K1: f32 = 0.044_715;

/// GELU in its tanh form (GPT-2's `gelu_new`):
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, after adding `bias` to
/// each `bias.len()`-wide row of `pre` in place (so `pre` keeps the
/// pre-activation for the backward pass).
pub fn gelu(out: &mut [f32], pre: &mut [f32], bias: &[f32], rows: usize, par: Par) {
    let f = bias.len();
    let (out, pre) = (&mut out[..rows * f], &mut pre[..rows * f]);
    rows2(par, out, f, pre, f, |_, out, pre| {
        for (o, p) in out.chunks_exact_mut(f).zip(pre.chunks_exact_mut(f)) {
            for ((o, p), b) in o.iter_mut().zip(p.iter_mut()).zip(bias) {
                *p += b;
                let x = *p;
                let t = tanh(GELU_K0 * (x + GELU_K1 * x * x * x));
                *o = 0.5 * x * (1.0 + t);
            }
        }
    });
}

/// GELU's backward pass in place: `d ← d · gelu'(pre)`.
pub fn gelu_backward(d: &mut [f32], pre: &[f32], par: Par) {
    let pre = &pre[..d.len()];
    rows1(par, d, 1024, |r0, d| {
        let pre = &pre[r0 * 1024..r0 * 1024 + d.len()];
        for (g, &x) in d.iter_mut().zip(pre) {
            let t = tanh(GELU_K0 * (x + GELU_K1 * x * x * x));
            let dt = GELU_K0 * (1.0 + 3.0 * GELU_K1 * x * x);
            *g *= 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dt;
        }
    });
}

/// SwiGLU: `out = silu(gate) · up`, with `gate` and `up` the two halves
/// of each `2f`-wide row of `gate_up` (`f = out` row width).
pub fn swiglu(out: &mut [f32], gate_up: &[f32], f: usize, rows: usize, par: Par) {
    rows1(par, &mut out[..rows * f], f, |r0, out| {
        for (i, o) in out.chunks_exact_mut(f).enumerate() {
            let row = &gate_up[(r0 + i) * 2 * f..(r0 + i + 1) * 2 * f];
            let (g, u) = row.split_at(f);
            for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                *o = g * sigmoid(g) * u;
            }
        }
    });
}

/// SwiGLU's backward pass: from `dout` (`rows × f`) writes the gradients
/// of both halves into `dgate_up` (`rows × 2f`, laid out like `gate_up`).
pub fn swiglu_backward(
    dgate_up: &mut [f32],
    dout: &[f32],
    gate_up: &[f32],
    f: usize,
    rows: usize,
    par: Par,
) {
    rows1(par, &mut dgate_up[..rows * 2 * f], 2 * f, |r0, dgu| {
        for (i, drow) in dgu.chunks_exact_mut(2 * f).enumerate() {
            let r = r0 + i;
            let (g, u) = gate_up[r * 2 * f..(r + 1) * 2 * f].split_at(f);
            let dout = &dout[r * f..(r + 1) * f];
            let (dg, du) = drow.split_at_mut(f);
            for ((((dg, du), &g), &u), &d) in dg.iter_mut().zip(du).zip(g).zip(u).zip(dout) {
                let s = sigmoid(g);
                *du = d * g * s;
                *dg = d * u * s * (1.0 + g * (1.0 - s));
            }
        }
    });
}

/// The shapes of an attention layer's packed projections: each row of
/// `qkv` holds `n_head` query heads, then `n_kv_head` key heads, then
/// `n_kv_head` value heads, `head_dim` values each. Query head `h` reads
/// key/value head `h / (n_head / n_kv_head)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heads {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (a divisor of `n_head`).
    pub n_kv_head: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl Heads {
    /// Width of a `qkv` row.
    pub fn width(self) -> usize {
        (self.n_head + 2 * self.n_kv_head) * self.head_dim
    }

    /// Width of the attention output (all query heads).
    pub fn d(self) -> usize {
        self.n_head * self.head_dim
    }

    /// Offset of query head `h` in a `qkv` row.
    pub fn q(self, h: usize) -> usize {
        h * self.head_dim
    }

    /// Offset of key head `g`.
    pub fn k(self, g: usize) -> usize {
        (self.n_head + g) * self.head_dim
    }

    /// Offset of value head `g`.
    pub fn v(self, g: usize) -> usize {
        (self.n_head + self.n_kv_head + g) * self.head_dim
    }

    /// The key/value head that query head `h` reads.
    pub fn kv_of(self, h: usize) -> usize {
        h / (self.n_head / self.n_kv_head)
    }

    /// Whether query head `h` is the first of its key/value group.
    fn first_of_group(self, h: usize) -> bool {
        h % (self.n_head / self.n_kv_head) == 0
    }
}

/// Causal attention of each sequence: for every query head `h`,
/// `softmax(q·kᵀ/√head_dim + mask)·v`, heads concatenated into `out`
/// (`batch·seq × n_head·head_dim`). Keeps the attention probabilities in
/// `probs` (`batch × n_head × seq × seq`, zero above the diagonal) for
/// the backward pass. One work item per sequence.
pub fn attention(
    out: &mut [f32],
    probs: &mut [f32],
    qkv: &[f32],
    heads: Heads,
    batch: usize,
    seq: usize,
    par: Par,
) {
    let (w, d, hd) = (heads.width(), heads.d(), heads.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    let tt = seq * seq;
    let out = &mut out[..batch * seq * d];
    let probs = &mut probs[..batch * heads.n_head * tt];
    let item = |b: usize, out: &mut [f32], probs: &mut [f32]| {
        let x = &qkv[b * seq * w..(b + 1) * seq * w];
        for (h, p) in probs.chunks_exact_mut(tt).enumerate() {
            let g = heads.kv_of(h);
            let q = Mat::strided(&x[heads.q(h)..], seq, hd, w);
            let k = Mat::strided(&x[heads.k(g)..], seq, hd, w);
            let v = Mat::strided(&x[heads.v(g)..], seq, hd, w);
            matmul_strided(p, seq, q, k.t(), false, scale);
            for (i, row) in p.chunks_exact_mut(seq).enumerate() {
                let (live, masked) = row.split_at_mut(i + 1);
                let max = live.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for s in live.iter_mut() {
                    *s = exp(*s - max);
                }
                let inv = 1.0 / sum(live);
                for s in live.iter_mut() {
                    *s *= inv;
                }
                masked.fill(0.0);
            }
            let pm = Mat::rows(p, seq, seq);
            matmul_strided(&mut out[h * hd..], d, pm, v, false, 1.0);
        }
    };
    if par.threads > 1 {
        out.par_chunks_mut(seq * d)
            .zip(probs.par_chunks_mut(heads.n_head * tt))
            .enumerate()
            .for_each(|(b, (o, p))| item(b, o, p));
    } else {
        for (b, (o, p)) in out
            .chunks_mut(seq * d)
            .zip(probs.chunks_mut(heads.n_head * tt))
            .enumerate()
        {
            item(b, o, p);
        }
    }
}

/// Attention's backward pass: from the output gradient `dout` writes the
/// gradient of every query, key and value into `dqkv` (laid out like
/// `qkv`; the key and value gradients of a group sum over its query heads
/// in head order). `dprobs` is scratch of `batch × seq × seq`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    dqkv: &mut [f32],
    dprobs: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    probs: &[f32],
    heads: Heads,
    batch: usize,
    seq: usize,
    par: Par,
) {
    let (w, d, hd) = (heads.width(), heads.d(), heads.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    let tt = seq * seq;
    let dqkv = &mut dqkv[..batch * seq * w];
    let dprobs = &mut dprobs[..batch * tt];
    let item = |b: usize, dx: &mut [f32], ds: &mut [f32]| {
        let x = &qkv[b * seq * w..(b + 1) * seq * w];
        let dy = &dout[b * seq * d..(b + 1) * seq * d];
        for h in 0..heads.n_head {
            let g = heads.kv_of(h);
            let first = heads.first_of_group(h);
            let p = &probs[(b * heads.n_head + h) * tt..(b * heads.n_head + h + 1) * tt];
            let q = Mat::strided(&x[heads.q(h)..], seq, hd, w);
            let k = Mat::strided(&x[heads.k(g)..], seq, hd, w);
            let v = Mat::strided(&x[heads.v(g)..], seq, hd, w);
            let dyh = Mat::strided(&dy[h * hd..], seq, hd, d);
            let pm = Mat::rows(p, seq, seq);
            // dV (+)= Pᵀ·dY and dP = dY·Vᵀ.
            matmul_strided(&mut dx[heads.v(g)..], w, pm.t(), dyh, !first, 1.0);
            matmul_strided(ds, seq, dyh, v.t(), false, 1.0);
            // dS = P ⊙ (dP − rowsum(P ⊙ dP)), times the score scale.
            for (i, (drow, prow)) in ds
                .chunks_exact_mut(seq)
                .zip(p.chunks_exact(seq))
                .enumerate()
            {
                let (live, masked) = drow.split_at_mut(i + 1);
                let pl = &prow[..i + 1];
                let c = dot(live, pl);
                for (s, p) in live.iter_mut().zip(pl) {
                    *s = p * (*s - c) * scale;
                }
                masked.fill(0.0);
            }
            let dsm = Mat::rows(ds, seq, seq);
            // dQ = dS·K, dK (+)= dSᵀ·Q.
            matmul_strided(&mut dx[heads.q(h)..], w, dsm, k, false, 1.0);
            matmul_strided(&mut dx[heads.k(g)..], w, dsm.t(), q, !first, 1.0);
        }
    };
    if par.threads > 1 {
        dqkv.par_chunks_mut(seq * w)
            .zip(dprobs.par_chunks_mut(tt))
            .enumerate()
            .for_each(|(b, (dx, ds))| item(b, dx, ds));
    } else {
        for (b, (dx, ds)) in dqkv
            .chunks_mut(seq * w)
            .zip(dprobs.chunks_mut(tt))
            .enumerate()
        {
            item(b, dx, ds);
        }
    }
}

/// Rotary position embeddings (Hugging Face's `rotate_half` layout):
/// within a head, value `i < head_dim/2` pairs with `i + head_dim/2` and
/// both turn by `pos · θ^(−2i/head_dim)`.
#[derive(Clone, Debug)]
pub struct Rope {
    half: usize,
    /// `cos` and `sin` of every (position, pair) angle, `context × half`.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    /// The tables for heads `head_dim` wide (even) and positions below
    /// `context`. Frequencies and angles are rounded to f32 as Hugging
    /// Face computes them; cosines and sines are then correctly rounded.
    pub fn new(head_dim: usize, context: usize, theta: f32) -> Self {
        assert!(
            head_dim % 2 == 0,
            "rotary embeddings need an even head width"
        );
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(context * half);
        let mut sin = Vec::with_capacity(context * half);
        for pos in 0..context {
            for i in 0..half {
                let inv_freq = 1.0 / theta.powf((2 * i) as f32 / head_dim as f32);
                let angle = f64::from(pos as f32 * inv_freq);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Self { half, cos, sin }
    }

    /// Values held by the tables.
    pub fn len(&self) -> usize {
        self.cos.len() + self.sin.len()
    }

    /// Whether the tables are empty (a zero context).
    pub fn is_empty(&self) -> bool {
        self.cos.is_empty()
    }

    /// Turns the query and key heads of every row of `qkv` in place; row
    /// `r` is position `r % seq`.
    pub fn forward(&self, qkv: &mut [f32], heads: Heads, rows: usize, seq: usize, par: Par) {
        self.turn(qkv, heads, rows, seq, 1.0, par);
    }

    /// The backward pass in place on `dqkv`: the inverse rotation.
    pub fn backward(&self, dqkv: &mut [f32], heads: Heads, rows: usize, seq: usize, par: Par) {
        self.turn(dqkv, heads, rows, seq, -1.0, par);
    }

    fn turn(&self, x: &mut [f32], heads: Heads, rows: usize, seq: usize, dir: f32, par: Par) {
        let (w, hd, half) = (heads.width(), heads.head_dim, self.half);
        assert_eq!(hd, 2 * half, "rope: head width differs from the tables'");
        assert!(
            seq * half <= self.cos.len(),
            "rope: sequence longer than the tables"
        );
        rows1(par, &mut x[..rows * w], w, |r0, x| {
            for (i, row) in x.chunks_exact_mut(w).enumerate() {
                let pos = (r0 + i) % seq;
                let cos = &self.cos[pos * half..(pos + 1) * half];
                let sin = &self.sin[pos * half..(pos + 1) * half];
                // Query heads then key heads: the first n_head + n_kv_head heads.
                for head in row[..(heads.n_head + heads.n_kv_head) * hd].chunks_exact_mut(hd) {
                    let (a, b) = head.split_at_mut(half);
                    for (((a, b), &c), &s) in a.iter_mut().zip(b).zip(cos).zip(sin) {
                        let s = dir * s;
                        let (x1, x2) = (*a, *b);
                        *a = x1 * c - x2 * s;
                        *b = x2 * c + x1 * s;
                    }
                }
            }
        });
    }
}

/// Token embedding: row `r` of `x` (`d` wide) is `table[tokens[r]]`,
/// plus `positions[r % seq]` when given.
///
/// # Panics
/// On a token outside the table.
pub fn embed(
    x: &mut [f32],
    table: &[f32],
    positions: Option<&[f32]>,
    tokens: &[u32],
    d: usize,
    seq: usize,
    par: Par,
) {
    let vocab = table.len() / d;
    rows1(par, &mut x[..tokens.len() * d], d, |r0, x| {
        for (i, x) in x.chunks_exact_mut(d).enumerate() {
            let r = r0 + i;
            let t = tokens[r] as usize;
            assert!(t < vocab, "token {t} outside the vocabulary of {vocab}");
            x.copy_from_slice(&table[t * d..(t + 1) * d]);
            if let Some(p) = positions {
                let pos = r % seq;
                for (x, p) in x.iter_mut().zip(&p[pos * d..(pos + 1) * d]) {
                    *x += p;
                }
            }
        }
    });
}

/// Embedding's backward pass: adds row `r` of `dx` to row `tokens[r]` of
/// `dtable` and, when given, to row `r % seq` of `dpositions`, in row
/// order on the calling thread (rows that share a token sum in a fixed
/// order).
pub fn embed_backward(
    dtable: &mut [f32],
    mut dpositions: Option<&mut [f32]>,
    dx: &[f32],
    tokens: &[u32],
    d: usize,
    seq: usize,
) {
    for (r, (g, &t)) in dx.chunks_exact(d).zip(tokens).enumerate() {
        let t = t as usize;
        for (o, g) in dtable[t * d..(t + 1) * d].iter_mut().zip(g) {
            *o += g;
        }
        if let Some(p) = dpositions.as_deref_mut() {
            let pos = r % seq;
            for (o, g) in p[pos * d..(pos + 1) * d].iter_mut().zip(g) {
                *o += g;
            }
        }
    }
}

/// Mean cross-entropy of the logit rows (`vocab` wide) against
/// `targets` (one per row), with a stable log-softmax; overwrites the
/// logits with `∂loss/∂logits = (softmax − onehot) / rows`. `losses` is
/// scratch of one value per row; the mean sums them in row order in f64.
///
/// # Panics
/// On a target outside the vocabulary.
pub fn cross_entropy(
    logits: &mut [f32],
    losses: &mut [f32],
    targets: &[u32],
    vocab: usize,
    par: Par,
) -> f32 {
    let rows = targets.len();
    let inv = 1.0 / rows as f32;
    let (logits, losses) = (&mut logits[..rows * vocab], &mut losses[..rows]);
    rows2(par, logits, vocab, losses, 1, |r0, z, loss| {
        for (i, (z, loss)) in z.chunks_exact_mut(vocab).zip(loss.iter_mut()).enumerate() {
            let t = targets[r0 + i] as usize;
            assert!(t < vocab, "target {t} outside the vocabulary of {vocab}");
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let target = z[t];
            for v in z.iter_mut() {
                *v = exp(*v - max);
            }
            let s = sum(z);
            *loss = s.ln() - (target - max);
            let k = inv / s;
            for v in z.iter_mut() {
                *v *= k;
            }
            z[t] -= inv;
        }
    });
    (losses.iter().map(|&l| f64::from(l)).sum::<f64>() / rows as f64) as f32
}
