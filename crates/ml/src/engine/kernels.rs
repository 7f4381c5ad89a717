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
//! work items are whole sequences (all heads, so a key/value head's
//! gradient sums its query heads in order on one thread); reductions over
//! rows (gain, bias and embedding gradients, the loss) run in row order on
//! one thread. Sums along a row use [`sum`] and [`dot`], whose order is
//! fixed by the length alone. So no result depends on the thread count.
//!
//! Speed: each kernel's inner loop is compiled twice, for the baseline
//! and for AVX-512, and picked at run time; both give the same bits (see
//! `wide!`). `exp`, `tanh` and the sigmoid are written out ([`exp`]) so
//! that the loops around them vectorise; they are within a few ulp of the
//! C library's. Attention's small per-head products are written out too,
//! in register tiles of four rows by two vectors with the masked half
//! skipped, which beats a gemm call per head at these sizes and allocates
//! nothing.

use rayon::prelude::*;

use super::Par;

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

/// Defines `$name`, which runs `$body` (an `#[inline(always)]` function
/// of the same arguments) compiled for AVX-512 when the CPU has it, and
/// as compiled for the baseline otherwise. Both perform the same IEEE
/// operations in the same order (Rust never fuses a multiply and an add
/// by itself, and the sums' order is written out in [`sum`]), so their
/// results are identical; only the vector width differs.
macro_rules! wide {
    ($name:ident => $body:ident($($a:ident: $t:ty),* $(,)?)) => {
        #[allow(clippy::too_many_arguments)]
        fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512f") {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($a: $t),*) {
                    $body($($a),*)
                }
                // SAFETY: the CPU has AVX-512F, checked just above.
                return unsafe { avx512($($a),*) };
            }
            $body($($a),*)
        }
    };
}

/// Lanes of the partial sums in [`sum`] and [`dot`], and of attention's
/// blocks: one AVX-512 register of f32.
pub const LANES: usize = 16;

/// `Σ xs` in an order fixed by the length: sixteen interleaved partial
/// sums (which the compiler keeps in vector registers), then those in
/// order.
#[inline(always)]
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
    fold(acc)
}

/// `Σ a·b` in the order of [`sum`].
#[inline(always)]
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
    fold(acc)
}

/// `(Σ a·b, Σ a·b·c)` in the order of [`sum`].
#[inline(always)]
fn dot2(a: &[f32], b: &[f32], c: &[f32]) -> (f32, f32) {
    let n = a.len();
    let (b, c) = (&b[..n], &c[..n]);
    let (mut s1, mut s2) = ([0f32; LANES], [0f32; LANES]);
    let whole = n - n % LANES;
    for i in (0..whole).step_by(LANES) {
        for l in 0..LANES {
            let ab = a[i + l] * b[i + l];
            s1[l] += ab;
            s2[l] += ab * c[i + l];
        }
    }
    for (l, i) in (whole..n).enumerate() {
        let ab = a[i] * b[i];
        s1[l] += ab;
        s2[l] += ab * c[i];
    }
    (fold(s1), fold(s2))
}

/// `max xs` (negative infinity when empty), over sixteen lanes.
#[inline(always)]
fn max_of(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a = a.max(v);
    }
    acc.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// The sum of the lanes, pairwise.
#[inline(always)]
fn fold(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0]
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
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
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
    add_bias_wide(&mut y[..rows * bias.len()], bias);
}

wide!(add_bias_wide => add_bias_body(y: &mut [f32], bias: &[f32]));
#[inline(always)]
fn add_bias_body(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// `out[j] = Σ_r m[r, j]` over the `rows × width` matrix `m`, in row
/// order (the order of [`super::linalg::column_sums`]).
pub fn column_sums(out: &mut [f32], m: &[f32], rows: usize, width: usize) {
    column_sums_wide(&mut out[..width], &m[..rows * width]);
}

wide!(column_sums_wide => column_sums_body(out: &mut [f32], m: &[f32]));
#[inline(always)]
fn column_sums_body(out: &mut [f32], m: &[f32]) {
    out.fill(0.0);
    for row in m.chunks_exact(out.len()) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
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
        let x = &x[r0 * d..r0 * d + out.len()];
        norm_rows(out, xhat, rstd, x, w, Some(b));
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
        let x = &x[r0 * d..r0 * d + out.len()];
        norm_rows(out, xhat, rstd, x, w, None);
    });
}

wide!(norm_rows => norm_rows_body(
    out: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
));
/// LayerNorm (with a bias) or RMSNorm (without) of a block of rows.
#[inline(always)]
fn norm_rows_body(
    out: &mut [f32],
    xhat: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) {
    let d = w.len();
    for (((o, xh), rs), x) in out
        .chunks_exact_mut(d)
        .zip(xhat.chunks_exact_mut(d))
        .zip(rstd.iter_mut())
        .zip(x.chunks_exact(d))
    {
        let r = match b {
            Some(b) => {
                let mean = sum(x) / d as f32;
                for (h, v) in xh.iter_mut().zip(x) {
                    *h = v - mean;
                }
                let r = 1.0 / (dot(xh, xh) / d as f32 + NORM_EPS).sqrt();
                for (((o, h), w), b) in o.iter_mut().zip(xh.iter_mut()).zip(w).zip(b) {
                    *h *= r;
                    *o = *h * w + b;
                }
                r
            }
            None => {
                let r = 1.0 / (dot(x, x) / d as f32 + NORM_EPS).sqrt();
                for (((o, h), w), v) in o.iter_mut().zip(xh.iter_mut()).zip(w).zip(x) {
                    *h = v * r;
                    *o = *h * w;
                }
                r
            }
        };
        *rs = r;
    }
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
    gain_gradient(&mut dw[..d], &dy[..rows * d], &xhat[..rows * d]);
    rows1(par, &mut dx[..rows * d], d, |r0, dx| {
        let at = r0 * d..r0 * d + dx.len();
        let rs = &rstd[r0..r0 + dx.len() / d];
        norm_backward_rows(dx, &dy[at.clone()], &xhat[at], rs, w, true, accumulate);
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
    gain_gradient(&mut dw[..d], &dy[..rows * d], &xhat[..rows * d]);
    rows1(par, &mut dx[..rows * d], d, |r0, dx| {
        let at = r0 * d..r0 * d + dx.len();
        let rs = &rstd[r0..r0 + dx.len() / d];
        norm_backward_rows(dx, &dy[at.clone()], &xhat[at], rs, w, false, accumulate);
    });
}

wide!(norm_backward_rows => norm_backward_rows_body(
    dx: &mut [f32],
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    w: &[f32],
    centred: bool,
    accumulate: bool,
));
/// The input gradient of a norm over a block of rows: with `g = dy ⊙ w`,
/// `r·(g − mean(g) − x̂·mean(g ⊙ x̂))` for LayerNorm (`centred`) and
/// `r·(g − x̂·mean(g ⊙ x̂))` for RMSNorm.
#[inline(always)]
fn norm_backward_rows_body(
    dx: &mut [f32],
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    w: &[f32],
    centred: bool,
    accumulate: bool,
) {
    let d = w.len();
    for (((dx, dy), xh), &rs) in dx
        .chunks_exact_mut(d)
        .zip(dy.chunks_exact(d))
        .zip(xhat.chunks_exact(d))
        .zip(rstd)
    {
        let (s1, s2) = dot2(dy, w, xh);
        let m1 = if centred { s1 / d as f32 } else { 0.0 };
        let m2 = s2 / d as f32;
        for (((dx, dy), w), h) in dx.iter_mut().zip(dy).zip(w).zip(xh) {
            let v = rs * (dy * w - m1 - h * m2);
            *dx = if accumulate { *dx + v } else { v };
        }
    }
}

wide!(gain_gradient => gain_gradient_body(dw: &mut [f32], dy: &[f32], xhat: &[f32]));
/// `dw[j] = Σ_r dy[r, j] · x̂[r, j]`, in row order.
#[inline(always)]
fn gain_gradient_body(dw: &mut [f32], dy: &[f32], xhat: &[f32]) {
    let d = dw.len();
    dw.fill(0.0);
    for (dy, xh) in dy.chunks_exact(d).zip(xhat.chunks_exact(d)) {
        for ((w, dy), h) in dw.iter_mut().zip(dy).zip(xh) {
            *w += dy * h;
        }
    }
}

/// √(2/π), GELU's inner scale.
const GELU_K0: f32 = 0.797_884_6;
/// GELU's cubic coefficient.
const GELU_K1: f32 = 0.044_715;

/// GELU in its tanh form (GPT-2's `gelu_new`),
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, of `x = pre + bias`
/// (`bias` added to each row of `pre` in place). Keeps the derivative at
/// each `x` in `slope` for [`gelu_backward`].
pub fn gelu(
    out: &mut [f32],
    slope: &mut [f32],
    pre: &mut [f32],
    bias: &[f32],
    rows: usize,
    par: Par,
) {
    let f = bias.len();
    let (out, slope) = (&mut out[..rows * f], &mut slope[..rows * f]);
    let pre = &mut pre[..rows * f];
    // Three buffers cut at the same rows: `pre` rides along as a read of
    // the block the closure owns through `out`.
    rows3(par, out, f, slope, f, pre, f, |_, out, slope, pre| {
        gelu_rows(out, slope, pre, bias);
    });
}

wide!(gelu_rows => gelu_rows_body(out: &mut [f32], slope: &mut [f32], pre: &mut [f32], bias: &[f32]));
#[inline(always)]
fn gelu_rows_body(out: &mut [f32], slope: &mut [f32], pre: &mut [f32], bias: &[f32]) {
    let f = bias.len();
    for ((o, s), p) in out
        .chunks_exact_mut(f)
        .zip(slope.chunks_exact_mut(f))
        .zip(pre.chunks_exact_mut(f))
    {
        for (((o, s), p), b) in o.iter_mut().zip(s.iter_mut()).zip(p.iter_mut()).zip(bias) {
            *p += b;
            let x = *p;
            let t = tanh(GELU_K0 * (x + GELU_K1 * x * x * x));
            *o = 0.5 * x * (1.0 + t);
            *s =
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * x * x);
        }
    }
}

/// GELU's backward pass in place: `d ← d ⊙ slope`.
pub fn gelu_backward(d: &mut [f32], slope: &[f32], par: Par) {
    let slope = &slope[..d.len()];
    rows1(par, d, 1024, |r0, d| {
        scale_by(d, &slope[r0 * 1024..r0 * 1024 + d.len()]);
    });
}

wide!(scale_by => scale_by_body(d: &mut [f32], k: &[f32]));
#[inline(always)]
fn scale_by_body(d: &mut [f32], k: &[f32]) {
    for (d, k) in d.iter_mut().zip(k) {
        *d *= k;
    }
}

/// SwiGLU: `out = silu(gate) · up`, with `gate` and `up` the two halves
/// of each `2f`-wide row of `gate_up` (`f` the row width of `out`). Keeps
/// `sigmoid(gate)` in `sig` for [`swiglu_backward`].
pub fn swiglu(out: &mut [f32], sig: &mut [f32], gate_up: &[f32], f: usize, rows: usize, par: Par) {
    let (out, sig) = (&mut out[..rows * f], &mut sig[..rows * f]);
    rows2(par, out, f, sig, f, |r0, out, sig| {
        let gu = &gate_up[r0 * 2 * f..r0 * 2 * f + 2 * out.len()];
        swiglu_rows(out, sig, gu, f);
    });
}

wide!(swiglu_rows => swiglu_rows_body(out: &mut [f32], sig: &mut [f32], gate_up: &[f32], f: usize));
#[inline(always)]
fn swiglu_rows_body(out: &mut [f32], sig: &mut [f32], gate_up: &[f32], f: usize) {
    for ((o, s), gu) in out
        .chunks_exact_mut(f)
        .zip(sig.chunks_exact_mut(f))
        .zip(gate_up.chunks_exact(2 * f))
    {
        let (g, u) = gu.split_at(f);
        for (((o, s), &g), &u) in o.iter_mut().zip(s.iter_mut()).zip(g).zip(u) {
            *s = sigmoid(g);
            *o = g * *s * u;
        }
    }
}

/// SwiGLU's backward pass: from `dout` (`rows × f`) writes the gradients
/// of both halves into `dgate_up` (`rows × 2f`, laid out like `gate_up`).
pub fn swiglu_backward(
    dgate_up: &mut [f32],
    dout: &[f32],
    gate_up: &[f32],
    sig: &[f32],
    f: usize,
    rows: usize,
    par: Par,
) {
    rows1(par, &mut dgate_up[..rows * 2 * f], 2 * f, |r0, dgu| {
        let at = r0 * 2 * f..r0 * 2 * f + dgu.len();
        let half = r0 * f..r0 * f + dgu.len() / 2;
        swiglu_backward_rows(dgu, &dout[half.clone()], &gate_up[at], &sig[half], f);
    });
}

wide!(swiglu_backward_rows => swiglu_backward_rows_body(
    dgate_up: &mut [f32],
    dout: &[f32],
    gate_up: &[f32],
    sig: &[f32],
    f: usize,
));
#[inline(always)]
fn swiglu_backward_rows_body(
    dgate_up: &mut [f32],
    dout: &[f32],
    gate_up: &[f32],
    sig: &[f32],
    f: usize,
) {
    for (((drow, row), dout), sig) in dgate_up
        .chunks_exact_mut(2 * f)
        .zip(gate_up.chunks_exact(2 * f))
        .zip(dout.chunks_exact(f))
        .zip(sig.chunks_exact(f))
    {
        let (g, u) = row.split_at(f);
        let (dg, du) = drow.split_at_mut(f);
        for (((((dg, du), &g), &u), &d), &s) in
            dg.iter_mut().zip(du).zip(g).zip(u).zip(dout).zip(sig)
        {
            *du = d * g * s;
            *dg = d * u * s * (1.0 + g * (1.0 - s));
        }
    }
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
        h.is_multiple_of(self.n_head / self.n_kv_head)
    }
}

/// Scratch values [`attention`] and [`attention_backward`] need per
/// sequence of `seq` tokens: a transposed key and value head (rows padded
/// to whole vectors) and one head's `seq × seq` probability gradient.
pub fn attention_work(heads: Heads, seq: usize) -> usize {
    2 * heads.head_dim * padded(seq) + seq * seq
}

/// `seq` rounded up to whole [`LANES`]-wide vectors.
fn padded(seq: usize) -> usize {
    seq.next_multiple_of(LANES)
}

/// Causal attention of each sequence: for every query head `h`,
/// `softmax(q·kᵀ/√head_dim + mask)·v`, heads concatenated into `out`
/// (`batch·seq × n_head·head_dim`). Keeps the attention probabilities in
/// `probs` (`batch × n_head × seq × seq`, zero above the diagonal) for
/// the backward pass. `work` is scratch of `batch ×`
/// [`attention_work`]. One work item per sequence; the masked half of
/// each product is skipped.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    out: &mut [f32],
    probs: &mut [f32],
    work: &mut [f32],
    qkv: &[f32],
    heads: Heads,
    batch: usize,
    seq: usize,
    par: Par,
) {
    let d = heads.d();
    let tt = seq * seq;
    let wl = attention_work(heads, seq);
    let out = &mut out[..batch * seq * d];
    let probs = &mut probs[..batch * heads.n_head * tt];
    let work = &mut work[..batch * wl];
    let item = |b: usize, out: &mut [f32], probs: &mut [f32], work: &mut [f32]| {
        let x = &qkv[b * seq * heads.width()..(b + 1) * seq * heads.width()];
        attention_item(out, probs, work, x, heads, seq);
    };
    if par.threads > 1 {
        out.par_chunks_mut(seq * d)
            .zip(probs.par_chunks_mut(heads.n_head * tt))
            .zip(work.par_chunks_mut(wl))
            .enumerate()
            .for_each(|(b, ((o, p), w))| item(b, o, p, w));
    } else {
        for (b, ((o, p), w)) in out
            .chunks_mut(seq * d)
            .zip(probs.chunks_mut(heads.n_head * tt))
            .zip(work.chunks_mut(wl))
            .enumerate()
        {
            item(b, o, p, w);
        }
    }
}

/// Attention's backward pass: from the output gradient `dout` writes the
/// gradient of every query, key and value into `dqkv` (laid out like
/// `qkv`; the key and value gradients of a group sum over its query heads
/// in head order). `work` is scratch as for [`attention`].
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    dqkv: &mut [f32],
    work: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    probs: &[f32],
    heads: Heads,
    batch: usize,
    seq: usize,
    par: Par,
) {
    let (w, d) = (heads.width(), heads.d());
    let tt = heads.n_head * seq * seq;
    let wl = attention_work(heads, seq);
    let dqkv = &mut dqkv[..batch * seq * w];
    let work = &mut work[..batch * wl];
    let item = |b: usize, dx: &mut [f32], work: &mut [f32]| {
        let x = &qkv[b * seq * w..(b + 1) * seq * w];
        let dy = &dout[b * seq * d..(b + 1) * seq * d];
        let p = &probs[b * tt..(b + 1) * tt];
        attention_backward_item(dx, work, dy, x, p, heads, seq);
    };
    if par.threads > 1 {
        dqkv.par_chunks_mut(seq * w)
            .zip(work.par_chunks_mut(wl))
            .enumerate()
            .for_each(|(b, (dx, wk))| item(b, dx, wk));
    } else {
        for (b, (dx, wk)) in dqkv
            .chunks_mut(seq * w)
            .zip(work.chunks_mut(wl))
            .enumerate()
        {
            item(b, dx, wk);
        }
    }
}

wide!(attention_item => attention_item_body(
    out: &mut [f32],
    probs: &mut [f32],
    work: &mut [f32],
    x: &[f32],
    heads: Heads,
    seq: usize,
));
/// One sequence's attention, every head.
#[inline(always)]
fn attention_item_body(
    out: &mut [f32],
    probs: &mut [f32],
    work: &mut [f32],
    x: &[f32],
    heads: Heads,
    seq: usize,
) {
    let (w, d, hd) = (heads.width(), heads.d(), heads.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    let tp = padded(seq);
    let kt = &mut work[..hd * tp];
    for (h, p) in probs.chunks_exact_mut(seq * seq).enumerate() {
        let g = heads.kv_of(h);
        if heads.first_of_group(h) {
            transpose_head(kt, x, heads.k(g), w, hd, seq);
        }
        let q = &x[heads.q(h)..];
        for rows in row_groups(0, seq) {
            // S = scale · Q·Kᵀ on and below the diagonal (the tile's
            // corner above it is overwritten below).
            let Panel { r0, n } = rows;
            let b = Operand {
                m: kt,
                rs: tp,
                readable: tp,
            };
            panel(
                &mut p[r0 * seq..],
                seq,
                rows,
                r0 + n,
                |r, k| q[r * w + k],
                b,
                0..hd,
                scale,
                false,
            );
            for i in r0..r0 + n {
                let row = &mut p[i * seq..(i + 1) * seq];
                softmax_in_place(&mut row[..=i]);
                row[i + 1..].fill(0.0);
            }
        }
        // Y = P·V: row i sums the values of keys 0..=i.
        let v = Operand {
            m: &x[heads.v(g)..],
            rs: w,
            readable: hd,
        };
        let y = &mut out[h * hd..];
        for rows in row_groups(0, seq) {
            let Panel { r0, n } = rows;
            panel(
                &mut y[r0 * d..],
                d,
                rows,
                hd,
                |r, k| p[r * seq + k],
                v,
                0..r0 + n,
                1.0,
                false,
            );
        }
    }
}

wide!(attention_backward_item => attention_backward_item_body(
    dx: &mut [f32],
    work: &mut [f32],
    dy: &[f32],
    x: &[f32],
    probs: &[f32],
    heads: Heads,
    seq: usize,
));
/// One sequence's attention backward pass, every head.
#[inline(always)]
fn attention_backward_item_body(
    dx: &mut [f32],
    work: &mut [f32],
    dy: &[f32],
    x: &[f32],
    probs: &[f32],
    heads: Heads,
    seq: usize,
) {
    let (w, d, hd) = (heads.width(), heads.d(), heads.head_dim);
    let scale = 1.0 / (hd as f32).sqrt();
    let tp = padded(seq);
    let (vt, ds) = work.split_at_mut(hd * tp);
    let ds = &mut ds[..seq * seq];
    for (h, p) in probs.chunks_exact(seq * seq).enumerate() {
        let g = heads.kv_of(h);
        let first = heads.first_of_group(h);
        if first {
            transpose_head(vt, x, heads.v(g), w, hd, seq);
        }
        let dyh = &dy[h * hd..];
        // dP = dY·Vᵀ on and below the diagonal, then
        // dS = scale · P ⊙ (dP − rowsum(P ⊙ dP)), zero above it.
        let b = Operand {
            m: vt,
            rs: tp,
            readable: tp,
        };
        for rows in row_groups(0, seq) {
            let Panel { r0, n } = rows;
            panel(
                &mut ds[r0 * seq..],
                seq,
                rows,
                r0 + n,
                |r, k| dyh[r * d + k],
                b,
                0..hd,
                1.0,
                false,
            );
        }
        causal_softmax_backward_body(ds, p, seq, scale);
        let ds = &*ds;
        // dQ = dS·K: row i sums keys 0..=i.
        let k = Operand {
            m: &x[heads.k(g)..],
            rs: w,
            readable: hd,
        };
        let dq = &mut dx[heads.q(h)..];
        for rows in row_groups(0, seq) {
            let Panel { r0, n } = rows;
            panel(
                &mut dq[r0 * w..],
                w,
                rows,
                hd,
                |r, k| ds[r * seq + k],
                k,
                0..r0 + n,
                1.0,
                false,
            );
        }
        // dK (+)= dSᵀ·Q and dV (+)= Pᵀ·dY: row j sums queries j..seq
        // (the terms above the diagonal are zeros).
        let q = Operand {
            m: &x[heads.q(h)..],
            rs: w,
            readable: hd,
        };
        let dyo = Operand {
            m: dyh,
            rs: d,
            readable: hd,
        };
        for rows in row_groups(0, seq) {
            let Panel { r0, .. } = rows;
            let dk = &mut dx[heads.k(g)..];
            panel(
                &mut dk[r0 * w..],
                w,
                rows,
                hd,
                |r, i| ds[i * seq + r],
                q,
                r0..seq,
                1.0,
                !first,
            );
            let dv = &mut dx[heads.v(g)..];
            panel(
                &mut dv[r0 * w..],
                w,
                rows,
                hd,
                |r, i| p[i * seq + r],
                dyo,
                r0..seq,
                1.0,
                !first,
            );
        }
    }
}

/// `t[c·tp + j] = x[j·w + at + c]`: head `at..at + hd` of the `seq` rows
/// of `x`, transposed into rows of `tp` values (the padding is left as
/// it is; [`panel`] never stores the lanes that read it).
#[inline(always)]
fn transpose_head(t: &mut [f32], x: &[f32], at: usize, w: usize, hd: usize, seq: usize) {
    let tp = t.len() / hd;
    let x = &x[at..at + (seq - 1) * w + hd];
    for (c, row) in t.chunks_exact_mut(tp).enumerate() {
        for (j, o) in row[..seq].iter_mut().enumerate() {
            *o = x[j * w + c];
        }
    }
}

/// Rows `r0..r0 + n` of a product, `n` at most [`TILE_ROWS`].
#[derive(Clone, Copy, Debug)]
struct Panel {
    r0: usize,
    n: usize,
}

/// Rows a product tile covers at once.
const TILE_ROWS: usize = 4;

/// Rows `from..to` in groups of [`TILE_ROWS`] (the last one shorter).
fn row_groups(from: usize, to: usize) -> impl Iterator<Item = Panel> {
    (from..to).step_by(TILE_ROWS).map(move |r0| Panel {
        r0,
        n: TILE_ROWS.min(to - r0),
    })
}

/// The right operand of [`panel`]: row `k` starts at `m[k·rs]`, and at
/// least `readable` values of each row may be read.
#[derive(Clone, Copy)]
struct Operand<'a> {
    m: &'a [f32],
    rs: usize,
    readable: usize,
}

/// Where and how [`tile`] writes: row `r` (relative to the panel),
/// column `c` of the result goes to `out[r·ors + c]` for `c < cols`,
/// scaled, added to what is there when `accumulate`.
#[derive(Clone, Copy)]
struct Dest {
    ors: usize,
    cols: usize,
    scale: f32,
    accumulate: bool,
}

/// `out[(r − r0)·ors + c] = [out +] scale · Σ_{k ∈ ks} a(r, k) · b[k][c]`
/// for the panel's rows `r` and `c < cols`, each sum over `k` in order
/// (so the result does not depend on how rows and columns are tiled).
/// Tiles of up to [`TILE_ROWS`] rows × 2·[`LANES`] columns keep eight
/// independent vector accumulators.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn panel(
    out: &mut [f32],
    ors: usize,
    rows: Panel,
    cols: usize,
    a: impl Fn(usize, usize) -> f32 + Copy,
    b: Operand<'_>,
    ks: std::ops::Range<usize>,
    scale: f32,
    accumulate: bool,
) {
    let dest = Dest {
        ors,
        cols,
        scale,
        accumulate,
    };
    let mut c0 = 0;
    while c0 < cols {
        let wide = cols - c0 > LANES;
        match (rows.n, wide) {
            (TILE_ROWS, true) => tile::<TILE_ROWS, 2>(out, dest, rows.r0, c0, a, b, ks.clone()),
            (TILE_ROWS, false) => tile::<TILE_ROWS, 1>(out, dest, rows.r0, c0, a, b, ks.clone()),
            (n, true) => {
                for r in 0..n {
                    let out = &mut out[r * ors..];
                    tile::<1, 2>(out, dest, rows.r0 + r, c0, a, b, ks.clone());
                }
            }
            (n, false) => {
                for r in 0..n {
                    let out = &mut out[r * ors..];
                    tile::<1, 1>(out, dest, rows.r0 + r, c0, a, b, ks.clone());
                }
            }
        }
        c0 += if wide { 2 * LANES } else { LANES };
    }
}

/// One tile of [`panel`]: rows `r0..r0 + R`, columns `c0..c0 + B·LANES`
/// (those below `dest.cols` stored); lanes past `b.readable` read as
/// zero.
#[inline(always)]
fn tile<const R: usize, const B: usize>(
    out: &mut [f32],
    dest: Dest,
    r0: usize,
    c0: usize,
    a: impl Fn(usize, usize) -> f32,
    b: Operand<'_>,
    ks: std::ops::Range<usize>,
) {
    let mut acc = [[[0f32; LANES]; B]; R];
    if c0 + B * LANES <= b.readable {
        for k in ks {
            let row = &b.m[k * b.rs + c0..k * b.rs + c0 + B * LANES];
            let mut bv = [[0f32; LANES]; B];
            for (v, src) in bv.iter_mut().zip(row.chunks_exact(LANES)) {
                v.copy_from_slice(src);
            }
            tile_step(&mut acc, r0, k, &a, &bv);
        }
    } else {
        let avail = b.readable.saturating_sub(c0).min(B * LANES);
        for k in ks {
            let row = &b.m[k * b.rs + c0..k * b.rs + c0 + avail];
            let mut bv = [[0f32; LANES]; B];
            for (v, src) in bv.iter_mut().zip(row.chunks(LANES)) {
                v[..src.len()].copy_from_slice(src);
            }
            tile_step(&mut acc, r0, k, &a, &bv);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (j, acc) in acc.iter().enumerate() {
            let c = c0 + j * LANES;
            if c < dest.cols {
                let n = LANES.min(dest.cols - c);
                let o = &mut out[r * dest.ors + c..r * dest.ors + c + n];
                for (o, &v) in o.iter_mut().zip(acc) {
                    let v = v * dest.scale;
                    *o = if dest.accumulate { *o + v } else { v };
                }
            }
        }
    }
}

/// One `k` of [`tile`]: `acc[r][j] += a(r0 + r, k) · bv[j]`.
#[inline(always)]
fn tile_step<const R: usize, const B: usize>(
    acc: &mut [[[f32; LANES]; B]; R],
    r0: usize,
    k: usize,
    a: &impl Fn(usize, usize) -> f32,
    bv: &[[f32; LANES]; B],
) {
    for (r, acc) in acc.iter_mut().enumerate() {
        let av = a(r0 + r, k);
        for (acc, bv) in acc.iter_mut().zip(bv) {
            for (s, &v) in acc.iter_mut().zip(bv) {
                *s += av * v;
            }
        }
    }
}

/// The softmax of `row` in place.
#[inline(always)]
fn softmax_in_place(row: &mut [f32]) {
    let max = max_of(row);
    for s in row.iter_mut() {
        *s = exp(*s - max);
    }
    let inv = 1.0 / sum(row);
    for s in row.iter_mut() {
        *s *= inv;
    }
}

/// The scores' gradient from the probabilities' gradient `ds`, in place:
/// `scale · P ⊙ (dP − rowsum(P ⊙ dP))`, zero above the diagonal.
#[inline(always)]
fn causal_softmax_backward_body(ds: &mut [f32], p: &[f32], seq: usize, scale: f32) {
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
            head_dim.is_multiple_of(2),
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
        let turned = (heads.n_head + heads.n_kv_head) * hd;
        rows1(par, &mut x[..rows * w], w, |r0, x| {
            rope_rows(x, r0, seq, w, turned, half, &self.cos, &self.sin, dir);
        });
    }
}

wide!(rope_rows => rope_rows_body(
    x: &mut [f32],
    r0: usize,
    seq: usize,
    w: usize,
    turned: usize,
    half: usize,
    cos: &[f32],
    sin: &[f32],
    dir: f32,
));
/// Turns the first `turned` values (whole heads) of each `w`-wide row of
/// `x`, the first being row `r0` of its batch.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rope_rows_body(
    x: &mut [f32],
    r0: usize,
    seq: usize,
    w: usize,
    turned: usize,
    half: usize,
    cos: &[f32],
    sin: &[f32],
    dir: f32,
) {
    for (i, row) in x.chunks_exact_mut(w).enumerate() {
        let pos = (r0 + i) % seq;
        let cos = &cos[pos * half..(pos + 1) * half];
        let sin = &sin[pos * half..(pos + 1) * half];
        for head in row[..turned].chunks_exact_mut(2 * half) {
            let (a, b) = head.split_at_mut(half);
            for (((a, b), &c), &s) in a.iter_mut().zip(b).zip(cos).zip(sin) {
                let s = dir * s;
                let (x1, x2) = (*a, *b);
                *a = x1 * c - x2 * s;
                *b = x2 * c + x1 * s;
            }
        }
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
        let targets = &targets[r0..r0 + loss.len()];
        for &t in targets {
            assert!(
                (t as usize) < vocab,
                "target {t} outside the vocabulary of {vocab}"
            );
        }
        cross_entropy_rows(z, loss, targets, vocab, inv);
    });
    (losses.iter().map(|&l| f64::from(l)).sum::<f64>() / rows as f64) as f32
}

wide!(cross_entropy_rows => cross_entropy_rows_body(
    z: &mut [f32],
    losses: &mut [f32],
    targets: &[u32],
    vocab: usize,
    inv: f32,
));
#[inline(always)]
fn cross_entropy_rows_body(
    z: &mut [f32],
    losses: &mut [f32],
    targets: &[u32],
    vocab: usize,
    inv: f32,
) {
    for ((z, loss), &t) in z
        .chunks_exact_mut(vocab)
        .zip(losses.iter_mut())
        .zip(targets)
    {
        let t = t as usize;
        let max = max_of(z);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn data(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| scale * rng.normal()).collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// On a CPU with AVX-512 the dispatching functions run the wide
    /// variants; they must give the bits of the baseline bodies (called
    /// here directly, compiled for the baseline).
    #[test]
    fn wide_variants_give_the_baseline_bits() {
        #[cfg(target_arch = "x86_64")]
        if !std::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 here: both paths are the baseline");
        }
        let mut rng = Rng::new(3);
        let (rows, d, f) = (5, 37, 21);
        let x = data(&mut rng, rows * d, 2.0);
        let w = data(&mut rng, d, 1.0);
        let b = data(&mut rng, d, 1.0);
        let dy = data(&mut rng, rows * d, 1.0);
        let rs = data(&mut rng, rows, 1.0);
        for bias in [Some(&b[..]), None] {
            let (mut o1, mut h1, mut r1) =
                (vec![0.0; rows * d], vec![0.0; rows * d], vec![0.0; rows]);
            let (mut o2, mut h2, mut r2) = (o1.clone(), h1.clone(), r1.clone());
            norm_rows(&mut o1, &mut h1, &mut r1, &x, &w, bias);
            norm_rows_body(&mut o2, &mut h2, &mut r2, &x, &w, bias);
            assert_eq!(
                (bits(&o1), bits(&h1), bits(&r1)),
                (bits(&o2), bits(&h2), bits(&r2))
            );
            let (mut d1, mut d2) = (dy.clone(), dy.clone());
            norm_backward_rows(&mut d1, &dy, &x, &rs, &w, bias.is_some(), true);
            norm_backward_rows_body(&mut d2, &dy, &x, &rs, &w, bias.is_some(), true);
            assert_eq!(bits(&d1), bits(&d2));
        }
        let (mut g1, mut g2) = (vec![0.0; d], vec![0.0; d]);
        gain_gradient(&mut g1, &dy, &x);
        gain_gradient_body(&mut g2, &dy, &x);
        assert_eq!(bits(&g1), bits(&g2));
        column_sums_wide(&mut g1, &dy);
        column_sums_body(&mut g2, &dy);
        assert_eq!(bits(&g1), bits(&g2));
        let (mut y1, mut y2) = (x.clone(), x.clone());
        add_bias_wide(&mut y1, &b);
        add_bias_body(&mut y2, &b);
        scale_by(&mut y1, &dy);
        scale_by_body(&mut y2, &dy);
        assert_eq!(bits(&y1), bits(&y2));

        let pre = data(&mut rng, rows * f, 3.0);
        let fb = data(&mut rng, f, 1.0);
        let (mut a1, mut s1, mut p1) = (vec![0.0; rows * f], vec![0.0; rows * f], pre.clone());
        let (mut a2, mut s2, mut p2) = (a1.clone(), s1.clone(), pre.clone());
        gelu_rows(&mut a1, &mut s1, &mut p1, &fb);
        gelu_rows_body(&mut a2, &mut s2, &mut p2, &fb);
        assert_eq!(
            (bits(&a1), bits(&s1), bits(&p1)),
            (bits(&a2), bits(&s2), bits(&p2))
        );

        let gu = data(&mut rng, rows * 2 * f, 3.0);
        let (mut a1, mut s1) = (vec![0.0; rows * f], vec![0.0; rows * f]);
        let (mut a2, mut s2) = (a1.clone(), s1.clone());
        swiglu_rows(&mut a1, &mut s1, &gu, f);
        swiglu_rows_body(&mut a2, &mut s2, &gu, f);
        assert_eq!((bits(&a1), bits(&s1)), (bits(&a2), bits(&s2)));
        let dout = data(&mut rng, rows * f, 1.0);
        let (mut d1, mut d2) = (vec![0.0; rows * 2 * f], vec![0.0; rows * 2 * f]);
        swiglu_backward_rows(&mut d1, &dout, &gu, &s1, f);
        swiglu_backward_rows_body(&mut d2, &dout, &gu, &s1, f);
        assert_eq!(bits(&d1), bits(&d2));

        let seq = 19;
        for heads in [
            Heads {
                n_head: 4,
                n_kv_head: 2,
                head_dim: 16,
            },
            Heads {
                n_head: 3,
                n_kv_head: 3,
                head_dim: 5,
            },
        ] {
            let x = data(&mut rng, seq * heads.width(), 1.5);
            let dy = data(&mut rng, seq * heads.d(), 1.0);
            let tt = heads.n_head * seq * seq;
            let wl = attention_work(heads, seq);
            let (mut o1, mut p1, mut w1) =
                (vec![0.0; seq * heads.d()], vec![0.0; tt], vec![0.0; wl]);
            let (mut o2, mut p2, mut w2) = (o1.clone(), p1.clone(), w1.clone());
            attention_item(&mut o1, &mut p1, &mut w1, &x, heads, seq);
            attention_item_body(&mut o2, &mut p2, &mut w2, &x, heads, seq);
            assert_eq!((bits(&o1), bits(&p1)), (bits(&o2), bits(&p2)));
            let (mut d1, mut d2) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            attention_backward_item(&mut d1, &mut w1, &dy, &x, &p1, heads, seq);
            attention_backward_item_body(&mut d2, &mut w2, &dy, &x, &p1, heads, seq);
            assert_eq!(bits(&d1), bits(&d2));
        }
        let rope = Rope::new(6, seq, 10_000.0);
        let heads = Heads {
            n_head: 2,
            n_kv_head: 1,
            head_dim: 6,
        };
        let qkv = data(&mut rng, seq * heads.width(), 1.0);
        let (mut r1, mut r2) = (qkv.clone(), qkv.clone());
        let args = (3, seq, heads.width(), 18, 3);
        rope_rows(
            &mut r1, args.0, args.1, args.2, args.3, args.4, &rope.cos, &rope.sin, -1.0,
        );
        rope_rows_body(
            &mut r2, args.0, args.1, args.2, args.3, args.4, &rope.cos, &rope.sin, -1.0,
        );
        assert_eq!(bits(&r1), bits(&r2));

        let vocab = 23;
        let logits = data(&mut rng, rows * vocab, 5.0);
        let targets: Vec<u32> = (0..rows as u32).map(|i| i * 4 % vocab as u32).collect();
        let (mut z1, mut z2) = (logits.clone(), logits.clone());
        let (mut l1, mut l2) = (vec![0.0; rows], vec![0.0; rows]);
        cross_entropy_rows(&mut z1, &mut l1, &targets, vocab, 0.2);
        cross_entropy_rows_body(&mut z2, &mut l2, &targets, vocab, 0.2);
        assert_eq!((bits(&z1), bits(&l1)), (bits(&z2), bits(&l2)));
    }
}
