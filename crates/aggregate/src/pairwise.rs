//! Squared L2 distances between every pair of inputs (for Krum).
//!
//! Per block of `SUB` coordinates, the scaled inputs are widened to `f64`
//! into a small scratch buffer (`n x SUB` values, reused), and every pair's
//! squared differences are summed lane-wise from it, so each input value is
//! read from memory once however many pairs use it. Differences are taken in
//! `f64`, where they cannot overflow. Block sums are added in coordinate
//! order within a task and task sums in task order ([`Exec::sum_tasks`]), so
//! the distances do not depend on the thread count. Memory: `n (n - 1) / 2`
//! sums per task in flight.

use std::ops::Range;

use crate::combine::Scaled;
use crate::exec::{Exec, TASK};
use crate::simd::{Kernel, L, Simd, dispatch};

/// Coordinates widened at a time: `n * SUB * 8` bytes of scratch per thread.
const SUB: usize = 256;

/// The index of pair `(i, j)`, `i < j`, in [`pairwise`]'s output.
pub(crate) fn pair_index(n: usize, i: usize, j: usize) -> usize {
    debug_assert!(i < j && j < n);
    i * (2 * n - i - 1) / 2 + (j - i - 1)
}

/// Squared distances of all pairs `i < j`, in the order `(0,1), (0,2), …,
/// (0,n-1), (1,2), …`, and whether an input value was not finite.
pub(crate) fn pairwise(x: Scaled, exec: &Exec) -> (Vec<f64>, bool) {
    let n = x.n();
    let d = x.d();
    let pairs = n * n.saturating_sub(1) / 2;
    let level = exec.simd();
    exec.sum_tasks(d.div_ceil(TASK), pairs, |t| {
        let range = t * TASK..((t + 1) * TASK).min(d);
        dispatch(level, PairTask { x, range })
    })
}

struct PairTask<'a> {
    x: Scaled<'a>,
    range: Range<usize>,
}

impl Kernel for PairTask<'_> {
    type Output = (Vec<f64>, bool);

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> Self::Output {
        let x = self.x;
        let n = x.n();
        let groups = SUB / L;
        let pairs = n * n.saturating_sub(1) / 2;
        let mut total = vec![0.0f64; pairs];
        let mut wide = vec![s.splat64(0.0); n * groups];
        let mut check = s.check_none();
        let mut sb = self.range.start;
        while sb < self.range.end {
            let se = (sb + SUB).min(self.range.end);
            let used = (se - sb).div_ceil(L);
            for i in 0..n {
                for g in 0..used {
                    let r = sb + g * L..(sb + (g + 1) * L).min(se);
                    s.prefetch(x.rows[i], r.start + SUB);
                    let v = s.mul(s.load_part(x.rows[i], r), s.splat(x.scales[i]));
                    check = s.check(check, v);
                    wide[i * groups + g] = s.widen(v);
                }
            }
            let mut p = 0;
            for i in 0..n {
                let wi = &wide[i * groups..i * groups + used];
                for j in i + 1..n {
                    let wj = &wide[j * groups..j * groups + used];
                    let mut a = s.splat64(0.0);
                    for (&u, &v) in wi.iter().zip(wj) {
                        let t = s.sub64(u, v);
                        a = s.add64(a, s.mul64(t, t));
                    }
                    total[p] += s.sum64(a);
                    p += 1;
                }
            }
            sb = se;
        }
        (total, s.check_any(check))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::BLOCK;
    use crate::simd::SimdLevel;

    #[test]
    fn pair_index_enumerates_in_order() {
        let n = 6;
        let mut k = 0;
        for i in 0..n {
            for j in i + 1..n {
                assert_eq!(pair_index(n, i, j), k);
                k += 1;
            }
        }
    }

    #[test]
    fn matches_plain_sums_and_is_stable() {
        let (n, d) = (5, TASK + BLOCK + SUB + 5);
        let rows: Vec<Vec<f32>> = (0..n)
            .map(|i| {
                (0..d)
                    .map(|j| ((i * 31 + j * 17) % 101) as f32 - 50.0)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let scales = [1.0, 1.0, 0.5, 1.0, 2.0];
        let x = Scaled {
            rows: &refs,
            scales: &scales,
        };
        let (want, bad) = pairwise(x, &Exec::sequential().with_simd(SimdLevel::Portable));
        assert!(!bad);
        for i in 0..n {
            for j in i + 1..n {
                // integers: every sum is exact, whatever the order
                let plain: f64 = (0..d)
                    .map(|c| {
                        ((rows[i][c] * scales[i]) as f64 - (rows[j][c] * scales[j]) as f64).powi(2)
                    })
                    .sum();
                assert_eq!(want[pair_index(n, i, j)], plain);
            }
        }
        for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
            let (got, _) = pairwise(x, &Exec::with_threads(2).unwrap().with_simd(level));
            assert_eq!(got, want);
        }
    }
}
