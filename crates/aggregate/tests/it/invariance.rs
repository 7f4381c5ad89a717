//! Order freedom where the math has it, and the same bits at any thread count
//! and on any instruction set.

use funetun_aggregate::{Exec, Options, Rule, SimdLevel};
use proptest::prelude::*;

use crate::support::{bits, execs, views};

fn rows(max_n: usize, max_d: usize) -> impl Strategy<Value = Vec<Vec<f32>>> {
    (1..=max_n, 1..=max_d).prop_flat_map(|(n, d)| {
        prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    -10.0f32..10.0,
                    (-2i32..=2).prop_map(|x| x as f32),
                    Just(-0.0f32),
                ],
                d,
            ),
            n,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn order_free_rules_ignore_the_input_order(
        (rows, perm) in rows(40, 40).prop_flat_map(|r| {
            let n = r.len();
            (Just(r), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        }),
        t in 0usize..3,
    ) {
        let n = rows.len();
        let shuffled: Vec<Vec<f32>> = perm.iter().map(|&i| rows[i].clone()).collect();
        let q = (n - 1) / 2;
        for rule in ["median".to_string(), format!("trimmed-mean:{q}"), "norm-clip:5/median".into(), "trimmed-mean:0".into()] {
            let rule: Rule = rule.parse().unwrap();
            prop_assert!(rule.is_order_free());
            let a = rule.aggregate(&views(&rows), &Options::default(), &execs()[t]).unwrap();
            let b = rule.aggregate(&views(&shuffled), &Options::default(), &execs()[(t + 1) % 3]).unwrap();
            prop_assert_eq!(bits(&a.output), bits(&b.output), "{}", rule);
        }
    }

    #[test]
    fn krum_selects_the_same_vectors_in_any_order(
        (rows, perm) in (5usize..=20, 1usize..=20).prop_flat_map(|(n, d)| {
            (
                prop::collection::vec(prop::collection::vec(-10.0f32..10.0, d), n),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            )
        }),
    ) {
        let n = rows.len();
        let shuffled: Vec<Vec<f32>> = perm.iter().map(|&i| rows[i].clone()).collect();
        let rule: Rule = format!("multi-krum:1,{}", n / 2).parse().unwrap();
        let a = rule.aggregate(&views(&rows), &Options::default(), &execs()[0]).unwrap();
        let b = rule.aggregate(&views(&shuffled), &Options::default(), &execs()[2]).unwrap();
        let sa = a.report.scores.unwrap();
        let sb = b.report.scores.unwrap();
        // Distances are symmetric and scores add sorted values: the same bits.
        for (k, &i) in perm.iter().enumerate() {
            prop_assert_eq!(sa[i].to_bits(), sb[k].to_bits());
        }
        let mut mapped: Vec<usize> = b.report.selected.unwrap().iter().map(|&k| perm[k]).collect();
        mapped.sort();
        prop_assert_eq!(a.report.selected.unwrap(), mapped);
    }
}

/// Inputs long enough to span several parallel chunks, reduction tasks and
/// blocks, with a ragged end.
fn big(n: usize, d: usize) -> Vec<Vec<f32>> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64 ^ n as u64;
    (0..n)
        .map(|i| {
            (0..d)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * (1.0 + i as f32)
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_rule_gives_the_same_bits_at_1_2_3_threads_and_every_simd_level() {
    let d = 2 * 65_536 + 3 * 2048 + 37;
    let weights: Vec<f64> = (0..40).map(|i| 1.0 + (i % 7) as f64).collect();
    for n in [5usize, 16, 33] {
        let rows = big(n, d);
        let inputs = views(&rows);
        let center = vec![0.01f32; d];
        let opts = Options {
            weights: Some(&weights[..n]),
            outlier_factor: Some(1.5),
            center: None,
        };
        let mut rules = vec![
            "mean".to_string(),
            "weighted-mean".into(),
            "median".into(),
            format!("trimmed-mean:{}", (n - 1) / 2),
            "geometric-median:4,0".into(),
            "centered-clip:0.5,2".into(),
            "norm-clip:100/median".into(),
            "norm-clip:100/weighted-mean".into(),
        ];
        if n <= 16 {
            rules.push("krum:1".into());
            rules.push("multi-krum:1,3".into());
        }
        for rule in rules {
            let rule: Rule = rule.parse().unwrap();
            let want = rule.aggregate(&inputs, &opts, &execs()[0]).unwrap();
            for exec in &execs()[1..] {
                let got = rule.aggregate(&inputs, &opts, exec).unwrap();
                assert_eq!(
                    bits(&got.output),
                    bits(&want.output),
                    "{rule}, n = {n}, {exec:?}"
                );
                assert_eq!(got.report, want.report, "{rule}, n = {n}");
            }
            for level in [SimdLevel::Portable, SimdLevel::Avx2] {
                let exec = Exec::with_threads(2).unwrap().with_simd(level);
                let got = rule.aggregate(&inputs, &opts, &exec).unwrap();
                assert_eq!(
                    bits(&got.output),
                    bits(&want.output),
                    "{rule}, n = {n}, {level:?}"
                );
                assert_eq!(got.report, want.report, "{rule}, n = {n}, {level:?}");
            }
        }
        // centered clipping from a given center, too
        let rule: Rule = "centered-clip:0.5,2".parse().unwrap();
        let o = Options {
            center: Some(&center),
            ..Options::default()
        };
        let a = rule.aggregate(&inputs, &o, &execs()[0]).unwrap();
        let b = rule.aggregate(&inputs, &o, &execs()[2]).unwrap();
        assert_eq!(bits(&a.output), bits(&b.output));
    }
}

#[test]
fn a_caller_owned_pool_gives_the_same_bits() {
    let rows = big(9, 70_001);
    let inputs = views(&rows);
    let pool = std::sync::Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    );
    let mine = Exec::with_pool(pool);
    assert_eq!(mine.threads(), 2);
    for rule in ["median", "mean", "krum:2"] {
        let rule: Rule = rule.parse().unwrap();
        let a = rule.aggregate(&inputs, &Options::default(), &mine).unwrap();
        let b = rule
            .aggregate(&inputs, &Options::default(), &Exec::current())
            .unwrap();
        assert_eq!(bits(&a.output), bits(&b.output));
    }
}
