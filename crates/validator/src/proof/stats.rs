//! The statistics behind checks 3 and 4: normal tails and quantiles,
//! Kolmogorov's distribution, the one-sample Kolmogorov–Smirnov test against
//! a uniform distribution, and Pearson correlations.
//!
//! Everything is computed in f64 from closed forms or series; there is no
//! randomness here (the pairings of check 4 are drawn by the caller).

/// `erfc(x)`, with a fractional error below 1.2·10⁻⁷ everywhere
/// (Numerical Recipes' Chebyshev fit).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ans = t * poly.exp();
    if x >= 0.0 { ans } else { 2.0 - ans }
}

/// `P(|Z| > z)` for a standard normal `Z`.
pub fn normal_two_sided_p(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// The `z` with `P(|Z| > z) = p`, for `p` in (0, 1); bisection to 1e-12.
pub fn normal_two_sided_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-300, 1.0);
    bisect_decreasing(normal_two_sided_p, p, 0.0, 40.0)
}

/// Kolmogorov's survival function `Q(λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²}`:
/// the asymptotic probability that `√n·D` exceeds `λ` under the null.
pub fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for k in 1..=100 {
        let k = f64::from(k);
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += sign * term;
        if term < 1e-16 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// The `λ` with `Q(λ) = p`, for `p` in (0, 1).
pub fn kolmogorov_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-300, 1.0);
    bisect_decreasing(kolmogorov_q, p, 0.2, 40.0)
}

/// Solves `f(x) = target` for a decreasing `f` on `[lo, hi]`.
fn bisect_decreasing(f: impl Fn(f64) -> f64, target: f64, mut lo: f64, mut hi: f64) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The outcome of a one-sample Kolmogorov–Smirnov test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KsTest {
    /// Number of samples.
    pub n: usize,
    /// `D = sup |F_n(x) − F(x)|`.
    pub d: f64,
    /// `(√n + 0.12 + 0.11/√n)·D`, Stephens' small-sample correction of
    /// `√n·D`, whose survival function is [`kolmogorov_q`].
    pub lambda: f64,
    /// The p-value `Q(λ)`.
    pub p: f64,
}

/// Kolmogorov–Smirnov test of `values` against Uniform(−bound, bound).
/// `None` for an empty sample or a bound that is not a positive number.
pub fn ks_uniform(values: &[f32], bound: f64) -> Option<KsTest> {
    if !(bound.is_finite() && bound > 0.0) {
        return None;
    }
    ks_against(values, |v| ((v + bound) / (2.0 * bound)).clamp(0.0, 1.0))
}

/// The Kolmogorov–Smirnov test of `values` against Normal(0, `std`).
pub fn ks_normal(values: &[f32], std: f64) -> Option<KsTest> {
    if !(std.is_finite() && std > 0.0) {
        return None;
    }
    ks_against(values, |v| {
        0.5 * erfc(-v / (std * std::f64::consts::SQRT_2))
    })
}

/// The Kolmogorov–Smirnov test of `values` against the distribution `cdf`.
fn ks_against(values: &[f32], cdf: impl Fn(f64) -> f64) -> Option<KsTest> {
    if values.is_empty() {
        return None;
    }
    let mut x: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
    x.sort_unstable_by(f64::total_cmp);
    let n = x.len() as f64;
    let d = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let f = cdf(v);
            (f - i as f64 / n).max((i + 1) as f64 / n - f)
        })
        .fold(0.0, f64::max);
    let sqrt_n = n.sqrt();
    let lambda = (sqrt_n + 0.12 + 0.11 / sqrt_n) * d;
    Some(KsTest {
        n: x.len(),
        d,
        lambda,
        p: kolmogorov_q(lambda),
    })
}

/// Pearson's correlation of the pairs, or `None` with fewer than three
/// pairs or a constant side.
pub fn pearson(pairs: impl Iterator<Item = (f64, f64)>) -> Option<(f64, usize)> {
    // Two passes would need the pairs twice; shifted sums are stable enough
    // for weights of similar magnitude (the shift is the first pair).
    let mut n = 0usize;
    let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut shift = None;
    for (x, y) in pairs {
        let (kx, ky) = *shift.get_or_insert((x, y));
        let (x, y) = (x - kx, y - ky);
        n += 1;
        sx += x;
        sy += y;
        sxx += x * x;
        syy += y * y;
        sxy += x * y;
    }
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let cov = sxy - sx * sy / nf;
    let vx = sxx - sx * sx / nf;
    let vy = syy - sy * sy / nf;
    if vx <= 0.0 || vy <= 0.0 {
        return None;
    }
    Some(((cov / (vx * vy).sqrt()).clamp(-1.0, 1.0), n))
}

/// Wilson–Hilferty: the standard normal deviate of a χ² value with `k`
/// degrees of freedom (accurate in the tails even for small `k`).
pub fn chi_square_to_z(chi2: f64, k: usize) -> f64 {
    let k = k as f64;
    let v = 2.0 / (9.0 * k);
    ((chi2 / k).cbrt() - (1.0 - v)) / v.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_and_quantile_match_tables() {
        assert!((normal_two_sided_p(1.959_964) - 0.05).abs() < 1e-6);
        assert!((normal_two_sided_p(0.0) - 1.0).abs() < 1e-6);
        assert!((normal_two_sided_quantile(0.05) - 1.959_964).abs() < 1e-4);
        assert!((normal_two_sided_quantile(1e-4) - 3.890_592).abs() < 1e-3);
        assert!((erfc(-1.0) - 1.842_700_79).abs() < 1e-6);
    }

    #[test]
    fn kolmogorov_distribution_matches_tables() {
        // Classical critical values of √n·D.
        assert!((kolmogorov_q(1.358_1) - 0.05).abs() < 1e-4);
        assert!((kolmogorov_q(1.627_6) - 0.01).abs() < 1e-4);
        assert!((kolmogorov_quantile(0.001) - 1.949_6).abs() < 1e-3);
        assert_eq!(kolmogorov_q(0.1), 1.0);
    }

    #[test]
    fn ks_accepts_a_uniform_grid_and_rejects_a_squeezed_one() {
        let grid: Vec<f32> = (0..1000)
            .map(|i| -1.0 + (2 * i + 1) as f32 / 1000.0)
            .collect();
        let ks = ks_uniform(&grid, 1.0).unwrap();
        assert!(ks.d < 2e-3 && ks.p > 0.99, "{ks:?}");
        let squeezed: Vec<f32> = grid.iter().map(|v| v * 0.8).collect();
        let ks = ks_uniform(&squeezed, 1.0).unwrap();
        assert!((ks.d - 0.1).abs() < 2e-3 && ks.p < 1e-6, "{ks:?}");
        assert!(ks_uniform(&[], 1.0).is_none());
        // Normal quantiles at the grid's midpoints fit N(0, 0.02) and not N(0, 0.03).
        let normal: Vec<f32> = (0..4000)
            .map(|i| {
                let p = (i as f64 + 0.5) / 4000.0;
                // Bisection on the CDF: the quantile of p.
                let (mut lo, mut hi) = (-1.0f64, 1.0f64);
                for _ in 0..60 {
                    let mid = 0.5 * (lo + hi);
                    if 0.5 * erfc(-mid / (0.02 * std::f64::consts::SQRT_2)) < p {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                lo as f32
            })
            .collect();
        assert!(ks_normal(&normal, 0.02).unwrap().p > 0.99);
        assert!(ks_normal(&normal, 0.03).unwrap().p < 1e-6);
        assert!(ks_normal(&normal, 0.0).is_none());
        assert!(ks_uniform(&grid, 0.0).is_none());
    }

    #[test]
    fn pearson_and_chi_square_behave() {
        let xs: Vec<(f64, f64)> = (0..100)
            .map(|i| (f64::from(i), 2.0 * f64::from(i) + 1.0))
            .collect();
        let (r, n) = pearson(xs.iter().copied()).unwrap();
        assert!((r - 1.0).abs() < 1e-12 && n == 100);
        let anti = xs.iter().map(|&(x, y)| (x, -y));
        assert!((pearson(anti).unwrap().0 + 1.0).abs() < 1e-12);
        assert!(pearson([(1.0, 2.0), (1.0, 3.0), (1.0, 4.0)].into_iter()).is_none());
        assert!(pearson([(1.0, 2.0)].into_iter()).is_none());
        // χ²_k has mean k: its deviate is near 0; the 99.9% point of χ²_10 is 29.59.
        assert!(chi_square_to_z(10.0, 10).abs() < 0.2);
        assert!((chi_square_to_z(29.588, 10) - 3.09).abs() < 0.05);
    }
}
