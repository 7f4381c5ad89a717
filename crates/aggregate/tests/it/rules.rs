//! Every rule equals its naive reference on random inputs: odd and even `n`,
//! `n` on both sides of the unrolled networks' limit (32), `d` below, at and
//! past a 16-lane group.

use funetun_aggregate::{Options, Rule};
use proptest::prelude::*;

use crate::support::{self, bits, execs, views};

/// Finite values with ties, signed zeros, tiny and large magnitudes.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -100.0f32..100.0,
        2 => (-3i32..=3).prop_map(|x| x as f32),
        1 => Just(-0.0f32),
        1 => -1e30f32..1e30,
        1 => -1e-30f32..1e-30,
    ]
}

/// `n` rows of `d` values, `n` in `1..=max_n`.
fn rows(max_n: usize, max_d: usize) -> impl Strategy<Value = Vec<Vec<f32>>> {
    (1..=max_n, 1..=max_d)
        .prop_flat_map(|(n, d)| prop::collection::vec(prop::collection::vec(value(), d), n))
}

/// Small integers: every sum and distance is exact in `f64`, whatever the
/// order, so the Krum scores of the crate and the reference are identical,
/// ties included.
fn int_rows(max_n: usize, max_d: usize) -> impl Strategy<Value = Vec<Vec<f32>>> {
    (1..=max_n, 1..=max_d).prop_flat_map(|(n, d)| {
        prop::collection::vec(
            prop::collection::vec((-4i32..=4).prop_map(|x| x as f32), d),
            n,
        )
    })
}

fn run(rule: &str, rows: &[Vec<f32>], opts: &Options, t: usize) -> funetun_aggregate::Aggregate {
    let rule: Rule = rule.parse().unwrap();
    rule.aggregate(&views(rows), opts, &execs()[t % 3]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn mean_is_the_f64_sum_over_n(rows in rows(40, 70), t in 0usize..3) {
        let got = run("mean", &rows, &Options::default(), t);
        prop_assert_eq!(bits(&got.output), bits(&support::mean(&rows)));
    }

    #[test]
    fn weighted_mean_weights_each_input(
        rows in rows(40, 70),
        seed in prop::collection::vec(0.0f64..1000.0, 40),
        t in 0usize..3,
    ) {
        let w = &seed[..rows.len()];
        prop_assume!(w.iter().sum::<f64>() > 0.0);
        let opts = Options { weights: Some(w), ..Options::default() };
        let got = run("weighted-mean", &rows, &opts, t);
        prop_assert_eq!(bits(&got.output), bits(&support::weighted_mean(&rows, w)));
    }

    #[test]
    fn median_is_the_middle_of_each_sorted_column(rows in rows(40, 70), t in 0usize..3) {
        let got = run("median", &rows, &Options::default(), t);
        prop_assert_eq!(bits(&got.output), bits(&support::median(&rows)));
    }

    #[test]
    fn trimmed_mean_averages_the_middle_of_each_sorted_column(
        rows in rows(40, 70),
        frac in 0.0f64..1.0,
        t in 0usize..3,
    ) {
        let n = rows.len();
        let q = ((n - 1) / 2) as f64 * frac;
        let q = q as usize;
        let got = run(&format!("trimmed-mean:{q}"), &rows, &Options::default(), t);
        prop_assert_eq!(bits(&got.output), bits(&support::trimmed_mean(&rows, q)));
    }

    #[test]
    fn norm_clip_scales_then_applies_the_inner_rule(
        rows in rows(20, 40),
        c in 0.01f64..1e3,
        inner in prop::sample::select(vec!["mean", "median", "trimmed-mean:0"]),
        t in 0usize..3,
    ) {
        let got = run(&format!("norm-clip:{c}/{inner}"), &rows, &Options::default(), t);
        let norms = got.report.norms.clone().unwrap();
        for (r, &nrm) in rows.iter().zip(&norms) {
            let want = support::norm(r);
            prop_assert!((nrm - want).abs() <= 1e-12 * want, "{} vs {}", nrm, want);
        }
        let clipped_idx: Vec<usize> = (0..rows.len()).filter(|&i| norms[i] > c).collect();
        prop_assert_eq!(&got.report.clipped, &clipped_idx);
        let x = support::clipped(&rows, &norms, c);
        let want = match inner {
            "mean" => support::mean(&x),
            "median" => support::median(&x),
            _ => support::trimmed_mean(&x, 0),
        };
        prop_assert_eq!(bits(&got.output), bits(&want));
    }

    #[test]
    fn krum_and_multi_krum_select_the_lowest_scores(
        rows in int_rows(40, 40),
        ff in 0.0f64..1.0,
        mm in 0.0f64..1.0,
        t in 0usize..3,
    ) {
        let n = rows.len();
        prop_assume!(n >= 3);
        let f = (((n - 3) / 2) as f64 * ff) as usize;
        let m = 1 + (((n - f - 1) as f64) * mm) as usize;
        let scores = support::krum_scores(&rows, f);

        let got = run(&format!("krum:{f}"), &rows, &Options::default(), t);
        let pick = support::krum_select(&scores, 1);
        prop_assert_eq!(got.report.scores.as_ref().unwrap(), &scores);
        prop_assert_eq!(got.report.selected.as_ref().unwrap(), &pick);
        prop_assert_eq!(bits(&got.output), bits(&rows[pick[0]]));

        let got = run(&format!("multi-krum:{f},{m}"), &rows, &Options::default(), t);
        let pick = support::krum_select(&scores, m);
        prop_assert_eq!(got.report.selected.as_ref().unwrap(), &pick);
        prop_assert_eq!(bits(&got.output), bits(&support::mean(&support::subset(&rows, &pick))));
    }

    #[test]
    fn krum_on_real_numbers_picks_a_minimal_score(rows in rows(24, 30), t in 0usize..3) {
        let n = rows.len();
        prop_assume!(n >= 5);
        let f = (n - 3) / 2;
        let got = run(&format!("krum:{f}"), &rows, &Options::default(), t);
        let scores = support::krum_scores(&rows, f);
        let best = scores.iter().cloned().fold(f64::INFINITY, f64::min);
        let chosen = got.report.selected.unwrap()[0];
        prop_assert!(scores[chosen] <= best * (1.0 + 1e-9), "{} vs {}", scores[chosen], best);
    }

    #[test]
    fn geometric_median_reaches_the_minimum_objective(
        rows in (1usize..=12, 1usize..=8).prop_flat_map(|(n, d)| {
            prop::collection::vec(prop::collection::vec(-100.0f32..100.0, d), n)
        }),
        t in 0usize..3,
    ) {
        let got = run("geometric-median:1000,1e-12", &rows, &Options::default(), t);
        // Reference: plain Weiszfeld in f64 from the mean, many iterations.
        let d = rows[0].len();
        let mut z: Vec<f64> = support::mean(&rows).iter().map(|&x| x as f64).collect();
        for _ in 0..20_000 {
            let mut num = vec![0.0; d];
            let mut den = 0.0;
            for r in &rows {
                let dist = r.iter().zip(&z).map(|(&x, &y)| (x as f64 - y).powi(2)).sum::<f64>().sqrt();
                let w = 1.0 / dist.max(1e-12);
                den += w;
                for j in 0..d {
                    num[j] += w * r[j] as f64;
                }
            }
            z = num.iter().map(|v| v / den).collect();
        }
        let zf: Vec<f32> = z.iter().map(|&v| v as f32).collect();
        let best = support::geomed_objective(&rows, &zf).min(
            rows.iter().map(|r| support::geomed_objective(&rows, r)).fold(f64::INFINITY, f64::min),
        );
        let ours = support::geomed_objective(&rows, &got.output);
        prop_assert!(ours <= best * (1.0 + 1e-5) + 1e-3, "{} vs {}", ours, best);
        prop_assert!(got.report.iterations.unwrap() <= 1000);
    }

    #[test]
    fn centered_clip_follows_its_formula(
        rows in (1usize..=12, 1usize..=40).prop_flat_map(|(n, d)| {
            prop::collection::vec(prop::collection::vec(-100.0f32..100.0, d), n)
        }),
        tau in 0.1f64..500.0,
        iters in 1usize..5,
        t in 0usize..3,
    ) {
        let got = run(&format!("centered-clip:{tau},{iters}"), &rows, &Options::default(), t);
        let want = support::centered_clip(&rows, tau, iters);
        for (g, w) in got.output.iter().zip(&want) {
            prop_assert!((*g as f64 - w).abs() <= 1e-4, "{} vs {}", g, w);
        }
        prop_assert_eq!(got.report.iterations, Some(iters));
    }

    #[test]
    fn outlier_flags_compare_norms_with_the_median_norm(
        rows in rows(20, 20),
        factor in 1.0f64..10.0,
        t in 0usize..3,
    ) {
        let opts = Options { outlier_factor: Some(factor), ..Options::default() };
        let got = run("median", &rows, &opts, t);
        let norms: Vec<f64> = rows.iter().map(|r| support::norm(r)).collect();
        let mut sorted = norms.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let med = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        // Norms equal to the limit up to rounding may go either way.
        let limit = factor * med;
        for (i, &norm) in norms.iter().enumerate() {
            if (norm - limit).abs() > 1e-9 * limit {
                prop_assert_eq!(got.report.flagged.contains(&i), norm > limit);
            }
        }
        // Flagged inputs are still aggregated.
        prop_assert_eq!(bits(&got.output), bits(&support::median(&rows)));
    }
}

#[test]
fn centered_clip_starts_from_the_given_center() {
    let rows = vec![vec![0.0f32, 0.0], vec![2.0, 0.0], vec![100.0, 0.0]];
    let center = [1.0f32, 0.0];
    let opts = Options {
        center: Some(&center),
        ..Options::default()
    };
    let got = run("centered-clip:1.5,1", &rows, &opts, 0);
    // From v = (1, 0): distances 1, 1, 99; alphas 1, 1, 1.5/99.
    let want = 1.0 + (-1.0 + 1.0 + 99.0 * 1.5 / 99.0) / 3.0;
    assert!(
        (got.output[0] as f64 - want).abs() < 1e-6,
        "{:?}",
        got.output
    );
    assert_eq!(got.output[1], 0.0);
}

#[test]
fn geometric_median_of_an_equilateral_triangle_is_its_center() {
    // The Fermat point of a triangle with all angles below 120 degrees; for an
    // equilateral one, its centroid. The coordinate-wise median (1, 0), where
    // the iteration starts, is not.
    let h = 3.0f32.sqrt();
    let rows = vec![vec![0.0f32, 0.0], vec![2.0, 0.0], vec![1.0, h]];
    let fermat = [1.0f32, h / 3.0];
    let best = crate::support::geomed_objective(&rows, &fermat);
    // The default tolerance stops on the objective (flat at the minimum)...
    let got = run("geometric-median", &rows, &Options::default(), 0);
    let obj = crate::support::geomed_objective(&rows, &got.output);
    assert!(
        obj <= best * (1.0 + 1e-5),
        "{:?}: {obj} vs {best}",
        got.output
    );
    assert!(got.report.iterations.unwrap() > 1);
    // ...a tight one gets close to the point itself.
    let got = run("geometric-median:1000,1e-14", &rows, &Options::default(), 0);
    assert!((got.output[0] - fermat[0]).abs() < 1e-4, "{:?}", got.output);
    assert!((got.output[1] - fermat[1]).abs() < 1e-4, "{:?}", got.output);
}

#[test]
fn geometric_median_leaves_an_input_it_starts_on_when_that_is_not_optimal() {
    // The coordinate-wise median is the third input, where plain Weiszfeld
    // would stay; the optimum lies elsewhere.
    let rows = vec![
        vec![-53.57074f32, 91.60713],
        vec![69.664635, -30.336868],
        vec![-38.902275, 0.0],
    ];
    let start = crate::support::geomed_objective(&rows, &rows[2]);
    let got = run("geometric-median:1000,1e-12", &rows, &Options::default(), 0);
    let obj = crate::support::geomed_objective(&rows, &got.output);
    assert!(obj < start - 0.2, "{obj} vs {start}");
}

#[test]
fn geometric_median_stays_on_an_input_that_is_optimal() {
    // The angle at (0, 0) exceeds 120 degrees: the Fermat point is that
    // vertex, which is also the coordinate-wise median, where it starts.
    let rows = vec![vec![-10.0f32, 2.0], vec![10.0, -1.0], vec![0.0, 0.0]];
    let got = run("geometric-median", &rows, &Options::default(), 0);
    assert_eq!(got.output, vec![0.0, 0.0]);
    assert_eq!(got.report.iterations, Some(1));
}

#[test]
fn empty_vectors_and_single_inputs() {
    let empty: Vec<Vec<f32>> = vec![Vec::new(); 5];
    for rule in [
        "mean",
        "weighted-mean",
        "median",
        "trimmed-mean:2",
        "krum:1",
        "multi-krum:1,3",
        "geometric-median",
        "centered-clip:1",
        "norm-clip:1/median",
    ] {
        let opts = Options {
            weights: Some(&[1.0; 5]),
            outlier_factor: Some(2.0),
            center: None,
        };
        let got = run(rule, &empty, &opts, 1);
        assert!(got.output.is_empty(), "{rule}");
    }
    let one = vec![vec![1.5f32, -2.0, 3.25]];
    for rule in [
        "mean",
        "median",
        "trimmed-mean:0",
        "geometric-median",
        "centered-clip:1",
        "norm-clip:100/median",
    ] {
        assert_eq!(
            run(rule, &one, &Options::default(), 2).output,
            one[0],
            "{rule}"
        );
    }
}
