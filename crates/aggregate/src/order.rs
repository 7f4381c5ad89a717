//! Coordinate-wise order statistics: median and trimmed mean.
//!
//! Each thread takes chunks of coordinates; within a chunk, groups of
//! [`L`] coordinates are loaded from the `n` inputs (one vector per input, read
//! as `n` sequential streams), scaled, sorted lane-wise by a sorting network
//! and reduced to one output vector. Nothing of the `n x d` input is copied;
//! the scratch is the `n` vectors of one group per thread.
//!
//! The result of a coordinate depends only on the multiset of its values:
//!
//! - median: the middle value for odd `n`; for even `n` the mean of the two
//!   middle values, `((a as f64 + b as f64) * 0.5) as f32`, which cannot
//!   overflow;
//! - trimmed mean with `q`: the values of sorted positions `q..n - q` added in
//!   ascending order in `f64`, divided by `n - 2q` in `f64`, rounded to `f32`;
//! - `+0.0` is added to every median, so a zero result is always `+0.0`.

use crate::exec::Exec;
use crate::network::{FIXED_MAX, batcher, sort_fixed, sort_table_many};
use crate::simd::{Kernel, L, Simd, dispatch};

/// Which order statistic to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stat {
    /// Coordinate-wise median.
    Median,
    /// Coordinate-wise mean of the values left after dropping the `q`
    /// smallest and `q` largest (`2q < n`).
    Trimmed(usize),
}

/// How far ahead (in values) each input stream is prefetched.
const AHEAD: usize = 512;

/// Coordinates per parallel task.
const CHUNK: usize = 16 * 1024;

/// Writes `stat` of the scaled inputs `rows[i] * scales[i]` into `out`.
/// Returns `true` if any input value was NaN or infinite (the output is then
/// meaningless). Needs `1 <= n`, equal lengths, `scales.len() == n`, and
/// `2q < n` for a trimmed mean.
pub(crate) fn order_stat(
    rows: &[&[f32]],
    scales: &[f32],
    stat: Stat,
    out: &mut [f32],
    exec: &Exec,
) -> bool {
    let n = rows.len();
    debug_assert!(n >= 1 && scales.len() == n);
    debug_assert!(rows.iter().all(|r| r.len() == out.len()));
    if let Stat::Trimmed(q) = stat {
        debug_assert!(2 * q < n);
    }
    let level = exec.simd();
    macro_rules! fixed {
        ($($n:literal)*) => {
            match n {
                $($n => {
                    return exec
                        .map_chunks(out, CHUNK, |start, out| {
                            dispatch(level, Fixed::<$n> { rows, scales, stat, start, out })
                        })
                        .contains(&true);
                })*
                _ => {}
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32);
    debug_assert!(n > FIXED_MAX);
    let net = batcher(n);
    exec.map_chunks(out, CHUNK, |start, out| {
        dispatch(
            level,
            Table {
                rows,
                scales,
                stat,
                net: &net,
                start,
                out,
            },
        )
    })
    .contains(&true)
}

/// Loads the scaled vectors of coordinates `range` (at most [`L`]) into `v`,
/// padding with zeros, and notes non-finite values in `check`.
#[inline(always)]
fn load<S: Simd>(
    s: S,
    v: &mut [S::F32],
    rows: &[&[f32]],
    scales: &[f32],
    range: std::ops::Range<usize>,
    check: &mut S::Check,
) {
    for ((vi, row), &sc) in v.iter_mut().zip(rows).zip(scales) {
        s.prefetch(row, range.start + AHEAD);
        let x = s.load_part(row, range.clone());
        *check = s.check(*check, x);
        *vi = s.mul(x, s.splat(sc));
    }
}

/// Reduces lane-wise sorted vectors to the statistic, writing `out.len() <= L`
/// lanes.
#[inline(always)]
fn finish<S: Simd>(s: S, v: &[S::F32], stat: Stat, out: &mut [f32]) {
    let n = v.len();
    let zero = s.splat(0.0);
    let r = match stat {
        Stat::Median if n % 2 == 1 => s.add(v[n / 2], zero),
        Stat::Median => {
            let sum = s.add64(s.widen(v[n / 2 - 1]), s.widen(v[n / 2]));
            s.add(s.narrow(s.mul64(sum, s.splat64(0.5))), zero)
        }
        Stat::Trimmed(q) => {
            let mut sum = s.splat64(0.0);
            for &vi in &v[q..n - q] {
                sum = s.add64(sum, s.widen(vi));
            }
            s.narrow(s.div64(sum, s.splat64((n - 2 * q) as f64)))
        }
    };
    s.store_part(r, out);
}

/// One chunk for `N <= FIXED_MAX` inputs, with the network in registers.
struct Fixed<'a, const N: usize> {
    rows: &'a [&'a [f32]],
    scales: &'a [f32],
    stat: Stat,
    start: usize,
    out: &'a mut [f32],
}

impl<const N: usize> Kernel for Fixed<'_, N> {
    type Output = bool;

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> bool {
        if !S::REGISTERS {
            let net = batcher(N);
            let Fixed {
                rows,
                scales,
                stat,
                start,
                out,
            } = self;
            return Table {
                rows,
                scales,
                stat,
                net: &net,
                start,
                out,
            }
            .run(s);
        }
        let len = self.out.len();
        let start = self.start;
        let rows: [&[f32]; N] = std::array::from_fn(|i| &self.rows[i][start..start + len]);
        let scales: [f32; N] = std::array::from_fn(|i| self.scales[i]);
        let mut check = s.check_none();
        let mut v = [s.splat(0.0); N];
        let mut o = 0;
        while o < len {
            let e = (o + L).min(len);
            load(s, &mut v, &rows, &scales, o..e, &mut check);
            sort_fixed::<S, N>(s, &mut v);
            finish(s, &v, self.stat, &mut self.out[o..e]);
            o = e;
        }
        s.check_any(check)
    }
}

/// Groups of [`L`] coordinates the table network sorts side by side.
const G: usize = 4;

/// One chunk for any `n`, with the network from a table over scratch:
/// [`G`] groups at a time, so that each comparator does `G` independent
/// compare-exchanges.
struct Table<'a> {
    rows: &'a [&'a [f32]],
    scales: &'a [f32],
    stat: Stat,
    net: &'a [(u16, u16)],
    start: usize,
    out: &'a mut [f32],
}

impl Kernel for Table<'_> {
    type Output = bool;

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> bool {
        let len = self.out.len();
        let start = self.start;
        let rows: Vec<&[f32]> = self.rows.iter().map(|r| &r[start..start + len]).collect();
        let mut check = s.check_none();
        let mut v: [Vec<S::F32>; G] = std::array::from_fn(|_| vec![s.splat(0.0); rows.len()]);
        let mut o = 0;
        while o < len {
            let e = (o + G * L).min(len);
            let range = |q: usize| {
                let a = (o + q * L).min(e);
                a..(a + L).min(e)
            };
            for (q, vq) in v.iter_mut().enumerate() {
                load(s, vq, &rows, self.scales, range(q), &mut check);
            }
            sort_table_many(s, &mut v, self.net);
            for (q, vq) in v.iter().enumerate() {
                finish(s, vq, self.stat, &mut self.out[range(q)]);
            }
            o = e;
        }
        s.check_any(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::SimdLevel;

    fn reference(rows: &[Vec<f32>], stat: Stat) -> Vec<f32> {
        let n = rows.len();
        (0..rows[0].len())
            .map(|j| {
                let mut c: Vec<f32> = rows.iter().map(|r| r[j]).collect();
                c.sort_by(f32::total_cmp);
                match stat {
                    Stat::Median if n % 2 == 1 => c[n / 2] + 0.0,
                    Stat::Median => ((c[n / 2 - 1] as f64 + c[n / 2] as f64) * 0.5) as f32 + 0.0,
                    Stat::Trimmed(q) => {
                        let s: f64 = c[q..n - q].iter().fold(0.0, |s, &x| s + x as f64);
                        (s / (n - 2 * q) as f64) as f32
                    }
                }
            })
            .collect()
    }

    fn data(n: usize, d: usize) -> Vec<Vec<f32>> {
        let mut s = (n * 1000 + d) as u64;
        (0..n)
            .map(|_| {
                (0..d)
                    .map(|_| {
                        s = s
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((s >> 33) as i32 % 1000) as f32 * 0.01
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn matches_sorting_each_column() {
        for level in [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512] {
            matches_sorting_each_column_at(&Exec::sequential().with_simd(level));
        }
    }

    fn matches_sorting_each_column_at(exec: &Exec) {
        for n in [1, 2, 3, 4, 5, 8, 15, 16, 17, 32, 33, 40] {
            for d in [1, 15, 16, 17, 100] {
                let rows = data(n, d);
                let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
                let scales = vec![1.0; n];
                let mut stats = vec![Stat::Median, Stat::Trimmed(0)];
                if n >= 3 {
                    stats.push(Stat::Trimmed((n - 1) / 2));
                }
                for stat in stats {
                    let mut out = vec![f32::NAN; d];
                    assert!(!order_stat(&refs, &scales, stat, &mut out, exec));
                    let want = reference(&rows, stat);
                    assert_eq!(
                        out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        "n = {n}, d = {d}, {stat:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn reports_non_finite_values() {
        let exec = Exec::sequential();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for n in [3, 40] {
                let mut rows = data(n, 37);
                rows[n - 1][36] = bad;
                let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
                let mut out = vec![0.0; 37];
                assert!(order_stat(
                    &refs,
                    &vec![1.0; n],
                    Stat::Median,
                    &mut out,
                    &exec
                ));
            }
        }
    }
}
