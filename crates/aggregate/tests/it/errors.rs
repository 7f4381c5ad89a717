//! Every error path of the public API, and that errors name what to fix.

use funetun_aggregate::{Error, Exec, Options, Outer, Rule, flag_outliers, norms};

use crate::support::{execs, views};

fn all_rules() -> Vec<Rule> {
    [
        "mean",
        "weighted-mean",
        "median",
        "trimmed-mean:1",
        "krum:1",
        "multi-krum:1,2",
        "geometric-median",
        "centered-clip:1",
        "norm-clip:1/median",
        "norm-clip:1/krum:1",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

fn rows(n: usize, d: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| (0..d).map(|j| (i * d + j) as f32 * 0.01).collect())
        .collect()
}

const W: [f64; 40] = [1.0; 40];

fn opts() -> Options<'static> {
    Options {
        weights: Some(&W[..5]),
        ..Options::default()
    }
}

#[test]
fn no_inputs() {
    for r in all_rules() {
        assert_eq!(
            r.aggregate(&[], &opts(), &execs()[0]),
            Err(Error::NoInputs),
            "{r}"
        );
    }
}

#[test]
fn unequal_lengths_name_the_input() {
    let mut x = rows(5, 10);
    x[3].pop();
    for r in all_rules() {
        let e = r.aggregate(&views(&x), &opts(), &execs()[0]).unwrap_err();
        assert_eq!(
            e,
            Error::LengthMismatch {
                what: "input 3".into(),
                found: 9,
                expected: 10
            }
        );
        assert!(
            e.to_string().contains("input 3 has length 9, expected 10"),
            "{e}"
        );
    }
    let x = rows(5, 10);
    let mut out = vec![0.0; 11];
    let e = Rule::Mean
        .aggregate_into(&views(&x), &opts(), &execs()[0], &mut out)
        .unwrap_err();
    assert!(matches!(e, Error::LengthMismatch { found: 11, .. }));
    let short = [0.0f32; 3];
    let o = Options {
        center: Some(&short),
        ..Options::default()
    };
    let e = Rule::CenteredClip { tau: 1.0, iters: 1 }.aggregate(&views(&x), &o, &execs()[0]);
    assert!(matches!(e, Err(Error::LengthMismatch { found: 3, .. })));
}

#[test]
fn non_finite_values_name_the_input_and_coordinate() {
    // In the first and second chunk, first, middle and last input, each rule,
    // each thread count, with and without the outlier check.
    let d = 20_000;
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for (input, coordinate) in [(0, 0), (2, 17_000), (4, d - 1)] {
            let mut x = rows(5, d);
            x[input][coordinate] = bad;
            for r in all_rules() {
                for (t, exec) in execs().iter().enumerate() {
                    let o = Options {
                        outlier_factor: (t == 1).then_some(2.0),
                        ..opts()
                    };
                    let e = r.aggregate(&views(&x), &o, exec).unwrap_err();
                    assert_eq!(
                        e,
                        Error::NonFinite {
                            input,
                            coordinate,
                            value: bad.to_string()
                        },
                        "{r}"
                    );
                }
            }
        }
    }
    let e = norms(&[&[1.0], &[f32::NAN]], &Exec::sequential()).unwrap_err();
    assert!(
        e.to_string()
            .contains("input 1 holds a non-finite value (NaN) at coordinate 0"),
        "{e}"
    );
}

#[test]
fn too_few_inputs_say_what_the_rule_needs() {
    let x = rows(4, 3);
    for (rule, need) in [
        ("trimmed-mean:2", "n > 2Q = 4"),
        ("krum:1", "n >= 2F + 3 = 5"),
        ("multi-krum:0,4", ""),
        ("multi-krum:0,5", "n >= M + F = 5"),
        ("norm-clip:1/trimmed-mean:2", "n > 2Q = 4"),
    ] {
        let r: Rule = rule.parse().unwrap();
        let got = r.aggregate(&views(&x), &Options::default(), &execs()[0]);
        if need.is_empty() {
            assert!(got.is_ok(), "{rule}");
            continue;
        }
        let e = got.unwrap_err();
        assert!(
            matches!(e, Error::TooFewInputs { n: 4, .. }),
            "{rule}: {e:?}"
        );
        assert!(e.to_string().contains(need), "{e}");
    }
}

#[test]
fn weights_are_checked() {
    let x = rows(3, 4);
    let r = Rule::WeightedMean;
    let run = |w: Option<&[f64]>| {
        r.aggregate(
            &views(&x),
            &Options {
                weights: w,
                ..Options::default()
            },
            &execs()[0],
        )
    };
    for w in [
        None,
        Some(&[1.0, 1.0][..]),
        Some(&[1.0, -1.0, 1.0][..]),
        Some(&[1.0, f64::NAN, 1.0][..]),
        Some(&[0.0, 0.0, 0.0][..]),
        Some(&[f64::MAX, f64::MAX, 1.0][..]),
    ] {
        assert!(matches!(run(w), Err(Error::Weights(_))), "{w:?}");
    }
    assert!(run(Some(&[0.0, 2.0, 0.0])).is_ok());
    // Other rules ignore the weights.
    let o = Options {
        weights: Some(&[1.0]),
        ..Options::default()
    };
    assert!(Rule::Mean.aggregate(&views(&x), &o, &execs()[0]).is_ok());
}

#[test]
fn options_are_checked() {
    let x = rows(3, 4);
    for f in [0.5, f64::NAN, f64::INFINITY] {
        let o = Options {
            outlier_factor: Some(f),
            ..Options::default()
        };
        assert!(matches!(
            Rule::Median.aggregate(&views(&x), &o, &execs()[0]),
            Err(Error::InvalidOption(_))
        ));
        assert!(matches!(
            flag_outliers(&[1.0], f),
            Err(Error::InvalidOption(_))
        ));
    }
    let c = [0.0, f32::NAN, 0.0, 0.0];
    let o = Options {
        center: Some(&c),
        ..Options::default()
    };
    assert!(matches!(
        Rule::CenteredClip { tau: 1.0, iters: 1 }.aggregate(&views(&x), &o, &execs()[0]),
        Err(Error::InvalidOption(_))
    ));
    let bad = Rule::NormClip {
        c: -1.0,
        inner: Box::new(Rule::Mean),
    };
    assert!(matches!(
        bad.aggregate(&views(&x), &o, &execs()[0]),
        Err(Error::InvalidOption(_))
    ));
    assert!(matches!(
        Exec::with_threads(0),
        Err(Error::InvalidOption(_))
    ));
}

#[test]
fn parse_errors_list_the_valid_choices() {
    let e = "medain".parse::<Rule>().unwrap_err().to_string();
    assert!(e.contains("unknown rule `medain`"), "{e}");
    for name in [
        "mean",
        "weighted-mean",
        "median",
        "trimmed-mean:Q",
        "krum:F",
        "multi-krum:F,M",
    ] {
        assert!(e.contains(name), "{e}");
    }
    let e = "trimmed-mean:x".parse::<Rule>().unwrap_err().to_string();
    assert!(
        e.contains("Q must be a non-negative integer, got `x`"),
        "{e}"
    );
    let e = "adamw:1".parse::<Outer>().unwrap_err().to_string();
    assert!(
        e.contains("unknown optimizer `adamw`") && e.contains("nesterov:LR,MOMENTUM"),
        "{e}"
    );
}
