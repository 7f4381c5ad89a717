//! Robustness: with `f < n/2` arbitrary (huge, finite) inputs among honest
//! ones, the median and the trimmed mean with `q >= f` stay inside the honest
//! values of every coordinate, and Krum picks an honest input when the
//! attackers are far from the honest cluster.

use funetun_aggregate::{Options, Rule};
use proptest::prelude::*;

use crate::support::{execs, views};

/// Honest rows, attacker rows.
fn attacked(
    max_honest: usize,
    max_d: usize,
) -> impl Strategy<Value = (Vec<Vec<f32>>, Vec<Vec<f32>>)> {
    (1..=max_honest, 1..=max_d).prop_flat_map(|(h, d)| {
        (
            prop::collection::vec(prop::collection::vec(-1.0f32..1.0, d), h),
            prop::collection::vec(
                prop::collection::vec(
                    prop_oneof![
                        Just(f32::MAX),
                        Just(f32::MIN),
                        Just(-3e38f32),
                        any::<f32>().prop_filter("finite", |x| x.is_finite())
                    ],
                    d,
                ),
                0..h,
            ),
        )
    })
}

fn interleave(honest: &[Vec<f32>], bad: &[Vec<f32>], seed: usize) -> Vec<Vec<f32>> {
    let mut all: Vec<Vec<f32>> = honest.to_vec();
    for (k, b) in bad.iter().enumerate() {
        let at = (seed + 7 * k) % (all.len() + 1);
        all.insert(at, b.clone());
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn median_and_trimmed_mean_stay_in_the_honest_range(
        (honest, bad) in attacked(20, 40),
        seed in 0usize..100,
        extra in 0usize..3,
        t in 0usize..3,
    ) {
        let rows = interleave(&honest, &bad, seed);
        let n = rows.len();
        let f = bad.len();
        let q = (f + extra).min((n - 1) / 2);
        prop_assume!(q >= f);
        for rule in ["median".to_string(), format!("trimmed-mean:{q}")] {
            let rule: Rule = rule.parse().unwrap();
            let out = rule.aggregate(&views(&rows), &Options::default(), &execs()[t]).unwrap().output;
            for (j, &v) in out.iter().enumerate() {
                let lo = honest.iter().map(|r| r[j]).fold(f32::INFINITY, f32::min);
                let hi = honest.iter().map(|r| r[j]).fold(f32::NEG_INFINITY, f32::max);
                prop_assert!(lo <= v && v <= hi, "{}: {} not in [{}, {}]", rule, v, lo, hi);
            }
        }
    }

    #[test]
    fn krum_never_picks_an_attacker(
        h in 3usize..20,
        d in 1usize..30,
        center in -5.0f32..5.0,
        noise in prop::collection::vec(-1.0f32..1.0, 20 * 30),
        attack in prop::collection::vec((any::<bool>(), 1e4f32..1e30), 30),
        colluding in any::<bool>(),
        ff in 0.0f64..1.0,
        seed in 0usize..100,
        t in 0usize..3,
    ) {
        // n = h + f >= 2f + 3, i.e. f <= h - 3.
        let f = ((h - 3) as f64 * ff) as usize;
        let honest: Vec<Vec<f32>> =
            (0..h).map(|i| (0..d).map(|j| center + noise[i * d + j]).collect()).collect();
        let bad: Vec<Vec<f32>> = (0..f)
            .map(|k| {
                (0..d)
                    .map(|j| {
                        let (sign, mag) = attack[if colluding { j } else { (k + j) % 30 }];
                        center + if sign { mag } else { -mag }
                    })
                    .collect()
            })
            .collect();
        let rows = interleave(&honest, &bad, seed);
        let n = rows.len();
        let is_bad = |i: usize| bad.iter().any(|b| *b == rows[i]) && !honest.iter().any(|g| *g == rows[i]);
        for m in [1, n - f] {
            let rule: Rule = format!("multi-krum:{f},{m}").parse().unwrap();
            let agg = rule.aggregate(&views(&rows), &Options::default(), &execs()[t]).unwrap();
            for &i in agg.report.selected.as_ref().unwrap() {
                prop_assert!(!is_bad(i), "picked attacker {} of {}", i, n);
            }
        }
    }
}
