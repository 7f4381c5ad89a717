//! Sorting networks that sort `L` coordinates at once.
//!
//! A vector here holds the same [`L`] coordinates of one input. A
//! compare-exchange of two vectors puts the lane-wise minimum in the first and
//! the maximum in the second: one `vminps` and one `vmaxps`.
//! Applying Batcher's odd-even merge sort network to the `n` vectors of a
//! group sorts each of the `L` columns independently, with no branches and no
//! transposition: the `n` input rows are read as `n` streams.
//!
//! For `n <= FIXED_MAX` the network is unrolled at compile time into straight
//! line code over an array that lives in registers; larger `n` run the same
//! network from a table over a scratch buffer.
//!
//! A compare-exchange always outputs a permutation of its inputs (also for
//! NaN, which the callers reject anyway), so a sorted column is the sorted
//! multiset of its values, whatever the order of the inputs; only `-0.0` and
//! `+0.0`, which compare equal, can trade places. The order statistics built
//! on it add `+0.0` to their result so that a zero is always `+0.0`.

use crate::simd::Simd;

/// The largest `n` with a network unrolled at compile time.
pub(crate) const FIXED_MAX: usize = 32;

/// Comparators in the largest unrolled network (Batcher, `n = 32`).
const FIXED_MAX_PAIRS: usize = 191;

/// Writes the comparators of Batcher's odd-even merge sort for `n` wires into
/// `out` (as far as it has room) and returns their count. The network for the
/// next power of two is truncated to the first `n` wires, which is valid since
/// the dropped wires would hold `+inf`.
const fn batcher_into(n: usize, out: &mut [(u16, u16)]) -> usize {
    let mut count = 0;
    let mut p = 1;
    while p < n {
        let mut k = p;
        while k >= 1 {
            let mut j = k % p;
            while j + k < n {
                let mut i = 0;
                while i < k && i + j + k < n {
                    if (i + j) / (p * 2) == (i + j + k) / (p * 2) {
                        if count < out.len() {
                            out[count] = ((i + j) as u16, (i + j + k) as u16);
                        }
                        count += 1;
                    }
                    i += 1;
                }
                j += 2 * k;
            }
            k /= 2;
        }
        p *= 2;
    }
    count
}

/// The network for `n` wires as a table.
pub(crate) fn batcher(n: usize) -> Vec<(u16, u16)> {
    assert!(n <= u16::MAX as usize + 1, "network too large");
    let len = batcher_into(n, &mut []);
    let mut v = vec![(0, 0); len];
    batcher_into(n, &mut v);
    v
}

/// The compile-time network for `N <= FIXED_MAX` wires.
struct Fixed<const N: usize>;

impl<const N: usize> Fixed<N> {
    const PAIRS: [(u16, u16); FIXED_MAX_PAIRS] = {
        assert!(N <= FIXED_MAX);
        let mut out = [(0u16, 0u16); FIXED_MAX_PAIRS];
        let len = batcher_into(N, &mut out);
        assert!(len <= FIXED_MAX_PAIRS);
        out
    };
    const LEN: usize = batcher_into(N, &mut []);
}

/// Lane-wise compare-exchange of vectors `a < b`. `min(x, y)` and
/// `max(y, x)` select with the same comparison `x < y`, so the pair is always
/// a permutation of its inputs.
#[inline(always)]
fn cx<S: Simd>(s: S, x: &mut S::F32, y: &mut S::F32) {
    let (a, b) = (*x, *y);
    *x = s.min(a, b);
    *y = s.max(b, a);
}

/// Sorts each lane of `v` ascending, `N <= FIXED_MAX`, fully unrolled so the
/// vectors stay in registers.
#[inline(always)]
pub(crate) fn sort_fixed<S: Simd, const N: usize>(s: S, v: &mut [S::F32; N]) {
    macro_rules! unroll {
        ($($k:literal)*) => {
            $(
                if $k < Fixed::<N>::LEN {
                    let (a, b) = const { Fixed::<N>::PAIRS[$k] };
                    let (a, b) = (a as usize, b as usize);
                    let (lo, hi) = v.split_at_mut(b);
                    cx(s, &mut lo[a], &mut hi[0]);
                }
            )*
        };
    }
    unroll!(
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29
        30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56
        57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83
        84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107
        108 109 110 111 112 113 114 115 116 117 118 119 120 121 122 123 124 125 126 127
        128 129 130 131 132 133 134 135 136 137 138 139 140 141 142 143 144 145 146 147
        148 149 150 151 152 153 154 155 156 157 158 159 160 161 162 163 164 165 166 167
        168 169 170 171 172 173 174 175 176 177 178 179 180 181 182 183 184 185 186 187
        188 189 190
    );
}

/// Sorts each lane of `v` ascending with the table `net` from [`batcher`].
#[cfg(test)]
#[inline(always)]
pub(crate) fn sort_table<S: Simd>(s: S, v: &mut [S::F32], net: &[(u16, u16)]) {
    for &(a, b) in net {
        let (lo, hi) = v.split_at_mut(b as usize);
        cx(s, &mut lo[a as usize], &mut hi[0]);
    }
}

/// Sorts `G` independent sets of vectors with the table `net`, applying each
/// comparator to all of them in turn: the `G` compare-exchanges are
/// independent, which hides the latency of going through memory.
#[inline(always)]
pub(crate) fn sort_table_many<S: Simd, const G: usize>(
    s: S,
    v: &mut [Vec<S::F32>; G],
    net: &[(u16, u16)],
) {
    for &(a, b) in net {
        for vq in v.iter_mut() {
            let (lo, hi) = vq.split_at_mut(b as usize);
            cx(s, &mut lo[a as usize], &mut hi[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `net` to all 2^n 0-1 inputs at once (bit-sliced) and checks
    /// that every output is sorted: by the 0-1 principle, it sorts anything.
    fn sorts_all_zero_one_inputs(n: usize, net: &[(u16, u16)]) -> bool {
        let patterns = 1usize << n;
        let words = patterns.div_ceil(64);
        // wire[w][k] bit b = bit w of pattern 64 k + b
        let mut wire = vec![vec![0u64; words]; n];
        for p in 0..patterns {
            for (w, wv) in wire.iter_mut().enumerate() {
                if p >> w & 1 == 1 {
                    wv[p / 64] |= 1 << (p % 64);
                }
            }
        }
        for &(a, b) in net {
            let (a, b) = (a as usize, b as usize);
            let (lo, hi) = wire.split_at_mut(b);
            for (x, y) in lo[a].iter_mut().zip(hi[0].iter_mut()) {
                (*x, *y) = (*x & *y, *x | *y);
            }
        }
        // sorted ascending: a 1 on wire w implies a 1 on wire w + 1
        (0..n.saturating_sub(1)).all(|w| (0..words).all(|k| wire[w][k] & !wire[w + 1][k] == 0))
    }

    #[test]
    fn batcher_sorts_every_size_up_to_20() {
        for n in 0..=20 {
            let net = batcher(n);
            assert!(sorts_all_zero_one_inputs(n, &net), "n = {n}");
            assert!(net.iter().all(|&(a, b)| a < b && (b as usize) < n));
        }
    }

    #[test]
    fn known_sizes() {
        // Batcher's odd-even merge sort: 19 comparators for 8 wires, 63 for 16,
        // 191 for 32.
        assert_eq!(batcher(8).len(), 19);
        assert_eq!(batcher(16).len(), 63);
        assert_eq!(batcher(32).len(), FIXED_MAX_PAIRS);
        assert!((1..=FIXED_MAX).all(|n| batcher(n).len() <= FIXED_MAX_PAIRS));
    }

    use crate::simd::{Kernel, L, SimdLevel, dispatch};

    fn fill(n: usize, seed: u64) -> Vec<[f32; L]> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                std::array::from_fn(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 40) % 7) as f32 - 3.0
                })
            })
            .collect()
    }

    /// Sorts `rows` lane-wise with the unrolled network (`fixed`) or the table.
    struct Sort<const N: usize> {
        rows: Vec<[f32; L]>,
        fixed: bool,
    }

    impl<const N: usize> Kernel for Sort<N> {
        type Output = Vec<[f32; L]>;
        #[inline(always)]
        fn run<S: Simd>(self, s: S) -> Self::Output {
            let mut v: Vec<S::F32> = self.rows.iter().map(|r| s.load(r)).collect();
            if self.fixed {
                let a: &mut [S::F32; N] = v.as_mut_slice().try_into().unwrap();
                sort_fixed::<S, N>(s, a);
            } else {
                sort_table(s, &mut v, &batcher(self.rows.len()));
            }
            v.into_iter()
                .map(|x| {
                    let mut o = [0.0; L];
                    s.store(x, &mut o);
                    o
                })
                .collect()
        }
    }

    fn lanes_sorted(v: &[[f32; L]]) -> bool {
        (1..v.len()).all(|i| (0..L).all(|l| v[i - 1][l] <= v[i][l]))
    }

    fn check_fixed<const N: usize>() {
        for seed in 0..10 {
            let rows = fill(N, seed);
            let want = dispatch(
                SimdLevel::Portable,
                Sort::<N> {
                    rows: rows.clone(),
                    fixed: false,
                },
            );
            assert!(lanes_sorted(&want), "N = {N}");
            for level in [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512] {
                for fixed in [false, true] {
                    let got = dispatch(
                        level,
                        Sort::<N> {
                            rows: rows.clone(),
                            fixed,
                        },
                    );
                    assert_eq!(got, want, "N = {N}, {level:?}, fixed = {fixed}");
                }
            }
        }
    }

    #[test]
    fn fixed_networks_sort_and_match_the_table() {
        check_fixed::<1>();
        check_fixed::<2>();
        check_fixed::<3>();
        check_fixed::<7>();
        check_fixed::<16>();
        check_fixed::<17>();
        check_fixed::<31>();
        check_fixed::<32>();
    }

    #[test]
    fn large_table_networks_sort() {
        for n in [33, 50, 64, 100] {
            let got = dispatch(
                SimdLevel::detect(),
                Sort::<0> {
                    rows: fill(n, n as u64),
                    fixed: false,
                },
            );
            assert!(lanes_sorted(&got), "n = {n}");
        }
    }
}
