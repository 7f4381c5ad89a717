//! Weighted combinations of the inputs and distances to a vector.
//!
//! Every rule except the order statistics ends in one kernel:
//!
//! ```text
//! out[j] = (sum_i c_i * x_ij) / D                      (no center)
//! out[j] = v[j] + (sum_i c_i * (x_ij - v[j])) / D      (center v)
//! ```
//!
//! where `x_ij = rows[i][j] * scales[i]` (an `f32` product, exact when the
//! scale is 1), and all sums, differences, products and the division are in
//! `f64`, over `i` in input order, rounded to `f32` once at the end. Mean,
//! weighted mean, the mean of the Krum selection, a Weiszfeld step and a
//! centered-clipping step are all of this form.
//!
//! The same pass can return the squared L2 distance of every input to the
//! vector it just wrote (the next Weiszfeld or clipping iteration needs
//! exactly that), while the block's rows are still in cache. Sums over
//! coordinates follow the fixed block order of [`crate::exec`], so they are
//! the same at any thread count.

use std::ops::Range;

use crate::exec::{BLOCK, Exec, TASK, sum_in_order};
use crate::simd::{Kernel, L, Simd, dispatch};

/// The inputs, scaled: `rows[i][j] * scales[i]`.
#[derive(Clone, Copy)]
pub(crate) struct Scaled<'a> {
    pub rows: &'a [&'a [f32]],
    pub scales: &'a [f32],
}

impl Scaled<'_> {
    pub fn n(&self) -> usize {
        self.rows.len()
    }

    pub fn d(&self) -> usize {
        self.rows.first().map_or(0, |r| r.len())
    }
}

/// The coefficients of a combination.
#[derive(Clone, Copy)]
pub(crate) struct Coeffs<'a> {
    /// `c_i`, one per input.
    pub c: &'a [f64],
    /// `D`.
    pub divisor: f64,
    /// `v`, if the combination is taken around a center.
    pub center: Option<&'a [f32]>,
}

/// What a [`combine`] or [`distances`] pass found.
pub(crate) struct Pass {
    /// Squared L2 distances of the scaled inputs to the vector (empty if not
    /// asked for).
    pub dist2: Vec<f64>,
    /// Whether an input value was NaN or infinite.
    pub bad: bool,
}

/// Writes the combination into `out`; with `dists`, also returns each scaled
/// input's squared distance to `out`.
pub(crate) fn combine(x: Scaled, k: Coeffs, out: &mut [f32], dists: bool, exec: &Exec) -> Pass {
    debug_assert_eq!(k.c.len(), x.n());
    debug_assert_eq!(out.len(), x.d());
    let level = exec.simd();
    let n = x.n();
    let parts = exec.map_chunks(out, TASK, |start, out| {
        dispatch(
            level,
            CombineTask {
                x,
                k,
                start,
                out,
                dists,
            },
        )
    });
    // One partial per task, n each: small beside the inputs.
    let bad = parts.iter().any(|p| p.1);
    Pass {
        dist2: sum_in_order(parts.into_iter().map(|p| p.0), if dists { n } else { 0 }),
        bad,
    }
}

/// Squared L2 distances of the scaled inputs to `z` (to zero when `None`:
/// squared norms).
pub(crate) fn distances(x: Scaled, z: Option<&[f32]>, exec: &Exec) -> Pass {
    let level = exec.simd();
    let d = x.d();
    let (dist2, bad) = exec.sum_tasks(d.div_ceil(TASK), x.n(), |t| {
        let range = t * TASK..((t + 1) * TASK).min(d);
        dispatch(level, DistTask { x, z, range })
    });
    Pass { dist2, bad }
}

/// Loads coordinates `r` of scaled input `i`.
#[inline(always)]
fn load_scaled<S: Simd>(s: S, x: &Scaled, i: usize, r: Range<usize>) -> S::F32 {
    s.mul(s.load_part(x.rows[i], r), s.splat(x.scales[i]))
}

/// How far ahead (in values) a streaming loop asks for its input.
const AHEAD: usize = 1024;

/// `lanes + (x * scale - z)^2`, lane-wise in `f64`, noting non-finite `x`.
#[inline(always)]
fn add_dist2<S: Simd>(
    s: S,
    lanes: S::F64,
    x: S::F32,
    scale: S::F32,
    z: Option<S::F32>,
    check: &mut S::Check,
) -> S::F64 {
    let xv = s.mul(x, scale);
    *check = s.check(*check, xv);
    let mut w = s.widen(xv);
    if let Some(z) = z {
        w = s.sub64(w, s.widen(z));
    }
    s.add64(lanes, s.mul64(w, w))
}

/// The squared distance of scaled input `i` to `z` (zero when `None`) over
/// the block `b`: lane sums in coordinate order, reduced in a fixed order.
#[inline(always)]
fn block_dist<S: Simd>(
    s: S,
    x: &Scaled,
    i: usize,
    z: Option<&[f32]>,
    b: Range<usize>,
    check: &mut S::Check,
) -> f64 {
    let scale = s.splat(x.scales[i]);
    let row = &x.rows[i][b.clone()];
    let mut lanes = s.splat64(0.0);
    let full = row.len() / L * L;
    match z {
        Some(z) => {
            let z = &z[b.clone()];
            for (k, (xc, zc)) in row[..full]
                .chunks_exact(L)
                .zip(z[..full].chunks_exact(L))
                .enumerate()
            {
                s.prefetch(row, k * L + AHEAD);
                let (xv, zv) = (
                    s.load(xc.try_into().unwrap()),
                    s.load(zc.try_into().unwrap()),
                );
                lanes = add_dist2(s, lanes, xv, scale, Some(zv), check);
            }
            if full < row.len() {
                let r = full..row.len();
                let (xv, zv) = (s.load_part(row, r.clone()), s.load_part(z, r));
                lanes = add_dist2(s, lanes, xv, scale, Some(zv), check);
            }
        }
        None => {
            for (k, xc) in row[..full].chunks_exact(L).enumerate() {
                s.prefetch(row, k * L + AHEAD);
                lanes = add_dist2(s, lanes, s.load(xc.try_into().unwrap()), scale, None, check);
            }
            if full < row.len() {
                let xv = s.load_part(row, full..row.len());
                lanes = add_dist2(s, lanes, xv, scale, None, check);
            }
        }
    }
    s.sum64(lanes)
}

/// One task of [`distances`].
struct DistTask<'a> {
    x: Scaled<'a>,
    z: Option<&'a [f32]>,
    range: Range<usize>,
}

impl Kernel for DistTask<'_> {
    type Output = (Vec<f64>, bool);

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> Self::Output {
        // Row by row: each row of the task is one long sequential stream.
        // The sum of a row adds its blocks in order, as everywhere else.
        let mut acc = vec![0.0f64; self.x.n()];
        let mut check = s.check_none();
        for (i, a) in acc.iter_mut().enumerate() {
            let mut b = self.range.start;
            while b < self.range.end {
                let e = (b + BLOCK).min(self.range.end);
                *a += block_dist(s, &self.x, i, self.z, b..e, &mut check);
                b = e;
            }
        }
        (acc, s.check_any(check))
    }
}

/// One task of [`combine`]: coordinates `start..start + out.len()`.
struct CombineTask<'a> {
    x: Scaled<'a>,
    k: Coeffs<'a>,
    start: usize,
    out: &'a mut [f32],
    dists: bool,
}

impl Kernel for CombineTask<'_> {
    type Output = (Vec<f64>, bool);

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> Self::Output {
        let CombineTask {
            x,
            k,
            start,
            out,
            dists,
        } = self;
        let len = out.len();
        // Views of this task's coordinates only.
        let rows: Vec<&[f32]> = x.rows.iter().map(|r| &r[start..start + len]).collect();
        let x = Scaled {
            rows: &rows,
            scales: x.scales,
        };
        let center = k.center.map(|v| &v[start..start + len]);
        let div = s.splat64(k.divisor);
        if !dists
            && center.is_none()
            && k.c.iter().chain(&[1.0]).all(|&c| c == 1.0)
            && x.scales.iter().all(|&sc| sc == 1.0)
        {
            return (Vec::new(), plain_sum(s, &rows, div, out));
        }
        let mut acc = vec![0.0f64; if dists { x.n() } else { 0 }];
        let mut check = s.check_none();
        let mut b = 0;
        while b < len {
            let e = (b + BLOCK).min(len);
            let mut g = b;
            while g < e {
                let r = g..(g + L).min(e);
                let v = center.map(|v| s.widen(s.load_part(v, r.clone())));
                let mut sum = s.splat64(0.0);
                for (i, &c) in k.c.iter().enumerate() {
                    s.prefetch(x.rows[i], r.start + AHEAD / 2);
                    let xv = load_scaled(s, &x, i, r.clone());
                    check = s.check(check, xv);
                    let mut w = s.widen(xv);
                    if let Some(v) = v {
                        w = s.sub64(w, v);
                    }
                    sum = s.add64(sum, s.mul64(s.splat64(c), w));
                }
                let mut y = s.div64(sum, div);
                if let Some(v) = v {
                    y = s.add64(v, y);
                }
                s.store_part(s.narrow(y), &mut out[r.clone()]);
                g = r.end;
            }
            // The block's rows are still in cache: measure them against it.
            for (i, a) in acc.iter_mut().enumerate() {
                *a += block_dist(s, &x, i, Some(&*out), b..e, &mut check);
            }
            b = e;
        }
        (acc, s.check_any(check))
    }
}

/// The plain mean's kernel, `out = (sum_i x_i) / D` with unit coefficients
/// and scales: the same operations as the general kernel minus its
/// multiplications by one, which are exact. Returns whether a value was not
/// finite.
#[inline(always)]
fn plain_sum<S: Simd>(s: S, rows: &[&[f32]], div: S::F64, out: &mut [f32]) -> bool {
    let len = out.len();
    let mut check = s.check_none();
    let mut g = 0;
    while g < len {
        let r = g..(g + L).min(len);
        let mut sum = s.splat64(0.0);
        for row in rows {
            s.prefetch(row, r.start + AHEAD / 2);
            let xv = s.load_part(row, r.clone());
            check = s.check(check, xv);
            sum = s.add64(sum, s.widen(xv));
        }
        s.store_part(s.narrow(s.div64(sum, div)), &mut out[r.clone()]);
        g = r.end;
    }
    s.check_any(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::SimdLevel;

    fn data(n: usize, d: usize) -> Vec<Vec<f32>> {
        let mut s = 12345u64 + n as u64;
        (0..n)
            .map(|_| {
                (0..d)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((s >> 33) as i32 % 10_000) as f32 * 1.3e-3
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn combination_and_distances_match_the_formula() {
        let (n, d) = (5, TASK + 3 * BLOCK + 21);
        let rows = data(n, d);
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let scales = [1.0, 0.5, 2.0, 1.0, 0.25];
        let c = [1.0, 2.0, 0.0, 0.5, 3.0];
        let center: Vec<f32> = (0..d).map(|j| (j % 7) as f32 * 0.1).collect();
        let x = Scaled {
            rows: &refs,
            scales: &scales,
        };
        for with_center in [false, true] {
            let k = Coeffs {
                c: &c,
                divisor: 6.5,
                center: with_center.then_some(&center[..]),
            };
            let want: Vec<f32> = (0..d)
                .map(|j| {
                    let v = if with_center { center[j] as f64 } else { 0.0 };
                    let mut s = 0.0f64;
                    for i in 0..n {
                        s += c[i] * ((rows[i][j] * scales[i]) as f64 - v);
                    }
                    if with_center {
                        (v + s / 6.5) as f32
                    } else {
                        (s / 6.5) as f32
                    }
                })
                .collect();
            let mut first: Option<Vec<f64>> = None;
            for level in [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512] {
                for exec in [Exec::sequential(), Exec::with_threads(3).unwrap()] {
                    let exec = exec.with_simd(level);
                    let mut out = vec![0.0; d];
                    let pass = combine(x, k, &mut out, true, &exec);
                    assert!(!pass.bad);
                    assert_eq!(out, want);
                    // distances: close to a plain sum, identical across runs
                    for i in 0..n {
                        let plain: f64 = (0..d)
                            .map(|j| ((rows[i][j] * scales[i]) as f64 - out[j] as f64).powi(2))
                            .sum();
                        assert!((pass.dist2[i] - plain).abs() <= 1e-9 * plain);
                    }
                    match &first {
                        None => first = Some(pass.dist2),
                        Some(f) => assert_eq!(
                            f.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                            pass.dist2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                        ),
                    }
                    let again = distances(x, Some(&out), &exec);
                    assert_eq!(again.dist2, *first.as_ref().unwrap());
                }
            }
        }
    }

    #[test]
    fn flags_non_finite_inputs() {
        let mut rows = data(3, 100);
        rows[2][99] = f32::INFINITY;
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let x = Scaled {
            rows: &refs,
            scales: &[1.0; 3],
        };
        let mut out = vec![0.0; 100];
        let k = Coeffs {
            c: &[1.0; 3],
            divisor: 3.0,
            center: None,
        };
        assert!(combine(x, k, &mut out, false, &Exec::sequential()).bad);
        assert!(distances(x, None, &Exec::sequential()).bad);
    }
}
