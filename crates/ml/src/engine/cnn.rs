//! The CNN: conv5×5×32 → ReLU → max-pool 2 → conv5×5×64 → ReLU →
//! max-pool 2 → fc128 → ReLU → fc10, no padding, on 28×28×1 images.
//!
//! Convolutions are im2col + one matrix product over the whole batch, with
//! activations kept channels-last (NHWC) so im2col copies contiguous runs.
//! Bias, ReLU and pooling are fused into one pass that remembers which of
//! the four pooled positions won, so the backward pass routes gradients
//! without recomputing. The second pooling writes its output in PyTorch's
//! flatten order (channel, row, column), so `fc1.weight` means the same as
//! in a PyTorch or candle model with NCHW tensors.

use rayon::prelude::*;

use super::linalg::{Dense, Mat, column_sums, matmul};
use super::loss::softmax_cross_entropy;
use super::{Network, Par};
use crate::model::Architecture as _;
use crate::model::Model;

const SIDE: usize = 28;
const K: usize = 5;
const KK: usize = K * K;
const C1: usize = 32;
const S1: usize = SIDE - K + 1; // 24: conv1 output side
const P1: usize = S1 / 2; // 12: pool1 output side
const C2: usize = 64;
const S2: usize = P1 - K + 1; // 8: conv2 output side
const P2: usize = S2 / 2; // 4: pool2 output side
const FEAT: usize = C2 * P2 * P2; // 1024
const HIDDEN: usize = 128;
const OUT: usize = 10;
const COL2: usize = KK * C1; // 800: one conv2 im2col row
const FC1: Dense = Dense {
    batch: 0,
    inputs: FEAT,
    outputs: HIDDEN,
};
const FC2: Dense = Dense {
    batch: 0,
    inputs: HIDDEN,
    outputs: OUT,
};

struct Offsets {
    c1b: std::ops::Range<usize>,
    c1w: std::ops::Range<usize>,
    c2b: std::ops::Range<usize>,
    c2w: std::ops::Range<usize>,
    f1b: std::ops::Range<usize>,
    f1w: std::ops::Range<usize>,
    f2b: std::ops::Range<usize>,
    f2w: std::ops::Range<usize>,
}

/// The CNN with its scratch buffers (about 45 MB at batch 64).
pub struct Cnn {
    max_batch: usize,
    at: Offsets,
    col1: Vec<f32>,
    out1: Vec<f32>,
    pool1: Vec<f32>,
    arg1: Vec<u8>,
    col2: Vec<f32>,
    w2: Vec<f32>,
    out2: Vec<f32>,
    feat: Vec<f32>,
    arg2: Vec<u8>,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    dhidden: Vec<f32>,
    dfeat: Vec<f32>,
    dout2: Vec<f32>,
    dw2: Vec<f32>,
    dcol2: Vec<f32>,
    dpool1: Vec<f32>,
    dout1: Vec<f32>,
}

/// Runs `f(sample, chunk)` over `data` cut into per-sample chunks, on the
/// pool's threads when there are several. Each chunk is written by one
/// call, so the result does not depend on the thread count.
fn per_sample<T: Send>(par: Par, data: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if par.threads > 1 {
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(b, c)| f(b, c));
    } else {
        data.chunks_mut(chunk)
            .enumerate()
            .for_each(|(b, c)| f(b, c));
    }
}

impl Cnn {
    /// A CNN with scratch for batches up to `max_batch`.
    pub fn new(max_batch: usize) -> Self {
        let l = Model::Cnn.layout();
        let b = max_batch;
        Self {
            max_batch,
            at: Offsets {
                c1b: l.range("conv1.bias"),
                c1w: l.range("conv1.weight"),
                c2b: l.range("conv2.bias"),
                c2w: l.range("conv2.weight"),
                f1b: l.range("fc1.bias"),
                f1w: l.range("fc1.weight"),
                f2b: l.range("fc2.bias"),
                f2w: l.range("fc2.weight"),
            },
            col1: vec![0.0; b * S1 * S1 * KK],
            out1: vec![0.0; b * S1 * S1 * C1],
            pool1: vec![0.0; b * P1 * P1 * C1],
            arg1: vec![0; b * P1 * P1 * C1],
            col2: vec![0.0; b * S2 * S2 * COL2],
            w2: vec![0.0; C2 * COL2],
            out2: vec![0.0; b * S2 * S2 * C2],
            feat: vec![0.0; b * FEAT],
            arg2: vec![0; b * FEAT],
            hidden: vec![0.0; b * HIDDEN],
            logits: vec![0.0; b * OUT],
            dlogits: vec![0.0; b * OUT],
            dhidden: vec![0.0; b * HIDDEN],
            dfeat: vec![0.0; b * FEAT],
            dout2: vec![0.0; b * S2 * S2 * C2],
            dw2: vec![0.0; C2 * COL2],
            dcol2: vec![0.0; b * S2 * S2 * COL2],
            dpool1: vec![0.0; b * P1 * P1 * C1],
            dout1: vec![0.0; b * S1 * S1 * C1],
        }
    }

    fn forward_into_scratch(&mut self, p: &[f32], x: &[f32], batch: usize, par: Par) {
        assert!(
            batch <= self.max_batch,
            "batch {batch} exceeds the scratch size {}",
            self.max_batch
        );
        // conv1: im2col (one channel, so columns are (ky, kx)).
        let col1 = &mut self.col1[..batch * S1 * S1 * KK];
        per_sample(par, col1, S1 * S1 * KK, |b, col| {
            let img = &x[b * SIDE * SIDE..(b + 1) * SIDE * SIDE];
            for oy in 0..S1 {
                for ox in 0..S1 {
                    let row = &mut col[(oy * S1 + ox) * KK..(oy * S1 + ox + 1) * KK];
                    for ky in 0..K {
                        let src = &img[(oy + ky) * SIDE + ox..(oy + ky) * SIDE + ox + K];
                        row[ky * K..ky * K + K].copy_from_slice(src);
                    }
                }
            }
        });
        let out1 = &mut self.out1[..batch * S1 * S1 * C1];
        matmul(
            out1,
            Mat::rows(col1, batch * S1 * S1, KK),
            Mat::rows(&p[self.at.c1w.clone()], C1, KK).t(),
            false,
            par,
        );
        // bias + ReLU + pool1, remembering the winner.
        let bias1 = &p[self.at.c1b.clone()];
        let out1 = &self.out1[..];
        let arg1 = &mut self.arg1[..batch * P1 * P1 * C1];
        let pool1 = &mut self.pool1[..batch * P1 * P1 * C1];
        pool_forward(par, out1, pool1, arg1, bias1, S1, C1, POOL1);
        // conv2: im2col with columns (ky, kx, c), weights permuted to match.
        let col2 = &mut self.col2[..batch * S2 * S2 * COL2];
        let pool1 = &self.pool1[..];
        per_sample(par, col2, S2 * S2 * COL2, |b, col| {
            let img = &pool1[b * P1 * P1 * C1..(b + 1) * P1 * P1 * C1];
            for oy in 0..S2 {
                for ox in 0..S2 {
                    let row = &mut col[(oy * S2 + ox) * COL2..(oy * S2 + ox + 1) * COL2];
                    for ky in 0..K {
                        let src = &img[((oy + ky) * P1 + ox) * C1..((oy + ky) * P1 + ox + K) * C1];
                        row[ky * K * C1..(ky + 1) * K * C1].copy_from_slice(src);
                    }
                }
            }
        });
        let w2 = &p[self.at.c2w.clone()];
        for o in 0..C2 {
            for c in 0..C1 {
                for kk in 0..KK {
                    self.w2[o * COL2 + kk * C1 + c] = w2[(o * C1 + c) * KK + kk];
                }
            }
        }
        let out2 = &mut self.out2[..batch * S2 * S2 * C2];
        matmul(
            out2,
            Mat::rows(col2, batch * S2 * S2, COL2),
            Mat::rows(&self.w2, C2, COL2).t(),
            false,
            par,
        );
        // bias + ReLU + pool2, written in (c, y, x) flatten order.
        let bias2 = &p[self.at.c2b.clone()];
        let out2 = &self.out2[..];
        let arg2 = &mut self.arg2[..batch * FEAT];
        let feat = &mut self.feat[..batch * FEAT];
        pool_forward(par, out2, feat, arg2, bias2, S2, C2, POOL2);
        // fc1 + ReLU, fc2.
        let at = &self.at;
        let feat = &self.feat[..batch * FEAT];
        FC1.with_batch(batch).forward(
            &mut self.hidden,
            feat,
            &p[at.f1w.clone()],
            &p[at.f1b.clone()],
            true,
            par,
        );
        let h = &self.hidden[..batch * HIDDEN];
        FC2.with_batch(batch).forward(
            &mut self.logits,
            h,
            &p[at.f2w.clone()],
            &p[at.f2b.clone()],
            false,
            par,
        );
    }
}

/// Where pooled values go: element `(py, px, c)` of sample `b` lives at
/// `b × per_sample + py × row + px × col + c × channel`.
#[derive(Clone, Copy)]
struct PooledLayout {
    per_sample: usize,
    row: usize,
    col: usize,
    channel: usize,
}

/// Fused bias + ReLU + 2×2 max-pool over a channels-last `side × side × ch`
/// map per sample. The winning position (0..4, first maximum on ties, as in
/// PyTorch) is stored at the same index of `arg`. ReLU after the max equals
/// the max after ReLU.
#[allow(clippy::too_many_arguments)]
fn pool_forward(
    par: Par,
    src: &[f32],
    dst: &mut [f32],
    arg: &mut [u8],
    bias: &[f32],
    side: usize,
    ch: usize,
    out: PooledLayout,
) {
    let half = side / 2;
    let body = |(b, (d, a)): (usize, (&mut [f32], &mut [u8]))| {
        let map = &src[b * side * side * ch..(b + 1) * side * side * ch];
        let mut best = [0f32; 64];
        let mut which = [0u8; 64];
        for py in 0..half {
            for px in 0..half {
                let at = |dy: usize, dx: usize| {
                    let o = ((2 * py + dy) * side + 2 * px + dx) * ch;
                    &map[o..o + ch]
                };
                let (r0, r1, r2, r3) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
                for c in 0..ch {
                    let (mut m, mut w) = (r0[c], 0u8);
                    if r1[c] > m {
                        (m, w) = (r1[c], 1);
                    }
                    if r2[c] > m {
                        (m, w) = (r2[c], 2);
                    }
                    if r3[c] > m {
                        (m, w) = (r3[c], 3);
                    }
                    best[c] = (m + bias[c]).max(0.0);
                    which[c] = w;
                }
                let base = py * out.row + px * out.col;
                for c in 0..ch {
                    d[base + c * out.channel] = best[c];
                    a[base + c * out.channel] = which[c];
                }
            }
        }
    };
    let chunks = dst
        .chunks_mut(out.per_sample)
        .zip(arg.chunks_mut(out.per_sample));
    if par.threads > 1 {
        dst.par_chunks_mut(out.per_sample)
            .zip(arg.par_chunks_mut(out.per_sample))
            .enumerate()
            .for_each(body);
    } else {
        chunks.enumerate().for_each(body);
    }
}

/// Routes pooled gradients back to the winning positions of a
/// channels-last map (zeroing the rest); positions whose pooled value was
/// clipped by the ReLU get no gradient.
#[allow(clippy::too_many_arguments)]
fn pool_backward(
    par: Par,
    dsrc: &mut [f32],
    pooled: &[f32],
    dpooled: &[f32],
    arg: &[u8],
    side: usize,
    ch: usize,
    out: PooledLayout,
) {
    let half = side / 2;
    per_sample(par, dsrc, side * side * ch, |b, d| {
        d.fill(0.0);
        let sample = b * out.per_sample;
        for py in 0..half {
            for px in 0..half {
                let base = sample + py * out.row + px * out.col;
                for c in 0..ch {
                    let i = base + c * out.channel;
                    if pooled[i] > 0.0 {
                        let (dy, dx) = (arg[i] as usize / 2, arg[i] as usize % 2);
                        d[((2 * py + dy) * side + 2 * px + dx) * ch + c] = dpooled[i];
                    }
                }
            }
        }
    });
}

/// pool1's output: channels-last `P1 × P1 × C1`.
const POOL1: PooledLayout = PooledLayout {
    per_sample: P1 * P1 * C1,
    row: P1 * C1,
    col: C1,
    channel: 1,
};
/// pool2's output: PyTorch's flatten order `C2 × P2 × P2`.
const POOL2: PooledLayout = PooledLayout {
    per_sample: FEAT,
    row: P2,
    col: 1,
    channel: P2 * P2,
};

impl Network for Cnn {
    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn loss_and_grad(
        &mut self,
        p: &[f32],
        x: &[f32],
        labels: &[u8],
        grads: &mut [f32],
        par: Par,
    ) -> f32 {
        let batch = labels.len();
        self.forward_into_scratch(p, x, batch, par);
        let dz = &mut self.dlogits[..batch * OUT];
        let loss = softmax_cross_entropy(&self.logits[..batch * OUT], labels, OUT, dz);
        let [gc1b, gc1w, gc2b, gc2w, gf1b, gf1w, gf2b, gf2w] =
            <[&mut [f32]; 8]>::try_from(Model::Cnn.layout().split_mut(grads))
                .unwrap_or_else(|_| unreachable!("the CNN has eight parameter tensors"));

        // fc2, then fc1 (through fc1's ReLU).
        let h = &self.hidden[..batch * HIDDEN];
        let dh = Some(&mut self.dhidden[..]);
        FC2.with_batch(batch)
            .backward(gf2w, gf2b, dh, dz, h, &p[self.at.f2w.clone()], true, par);
        let dh = &self.dhidden[..batch * HIDDEN];
        let feat = &self.feat[..batch * FEAT];
        let dfeat = Some(&mut self.dfeat[..]);
        FC1.with_batch(batch).backward(
            gf1w,
            gf1b,
            dfeat,
            dh,
            feat,
            &p[self.at.f1w.clone()],
            false,
            par,
        );
        // pool2 → conv2 output gradient.
        let dout2 = &mut self.dout2[..batch * S2 * S2 * C2];
        pool_backward(
            par,
            dout2,
            &self.feat,
            &self.dfeat,
            &self.arg2,
            S2,
            C2,
            POOL2,
        );
        // conv2 weights (permuted layout, then back to [out, in, ky, kx]).
        let dout2 = &self.dout2[..batch * S2 * S2 * C2];
        let rows2 = batch * S2 * S2;
        matmul(
            &mut self.dw2,
            Mat::rows(dout2, rows2, C2).t(),
            Mat::rows(&self.col2, rows2, COL2),
            false,
            par,
        );
        for o in 0..C2 {
            for c in 0..C1 {
                for kk in 0..KK {
                    gc2w[(o * C1 + c) * KK + kk] = self.dw2[o * COL2 + kk * C1 + c];
                }
            }
        }
        column_sums(gc2b, dout2, rows2, C2);
        // conv2 input gradient: dcol = dout2 · W2, then col2im.
        let dcol2 = &mut self.dcol2[..rows2 * COL2];
        matmul(
            dcol2,
            Mat::rows(dout2, rows2, C2),
            Mat::rows(&self.w2, C2, COL2),
            false,
            par,
        );
        let dcol2 = &self.dcol2[..];
        let dpool1 = &mut self.dpool1[..batch * P1 * P1 * C1];
        per_sample(par, dpool1, P1 * P1 * C1, |b, d| {
            d.fill(0.0);
            let col = &dcol2[b * S2 * S2 * COL2..(b + 1) * S2 * S2 * COL2];
            for oy in 0..S2 {
                for ox in 0..S2 {
                    let row = &col[(oy * S2 + ox) * COL2..(oy * S2 + ox + 1) * COL2];
                    for ky in 0..K {
                        let dst =
                            &mut d[((oy + ky) * P1 + ox) * C1..((oy + ky) * P1 + ox + K) * C1];
                        for (o, v) in dst.iter_mut().zip(&row[ky * K * C1..(ky + 1) * K * C1]) {
                            *o += v;
                        }
                    }
                }
            }
        });
        // pool1 → conv1 output gradient.
        let dout1 = &mut self.dout1[..batch * S1 * S1 * C1];
        pool_backward(
            par,
            dout1,
            &self.pool1,
            &self.dpool1,
            &self.arg1,
            S1,
            C1,
            POOL1,
        );
        // conv1 weights.
        let dout1 = &self.dout1[..batch * S1 * S1 * C1];
        let rows1 = batch * S1 * S1;
        matmul(
            gc1w,
            Mat::rows(dout1, rows1, C1).t(),
            Mat::rows(&self.col1, rows1, KK),
            false,
            par,
        );
        column_sums(gc1b, dout1, rows1, C1);
        loss
    }

    fn forward(&mut self, p: &[f32], x: &[f32], batch: usize, logits: &mut [f32], par: Par) {
        self.forward_into_scratch(p, x, batch, par);
        logits[..batch * OUT].copy_from_slice(&self.logits[..batch * OUT]);
    }
}
