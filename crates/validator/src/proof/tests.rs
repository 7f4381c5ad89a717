//! The six checks on an honest federated chain trained on MNIST (the
//! synthetic set when `FUNETUN_DATA_DIR` is unset) and on forged chains,
//! each of which must fail the check made for it.
//!
//! Run with `--nocapture` to see every measured value; the margins in
//! `docs/proof-of-training.md` come from these runs.

use std::sync::OnceLock;

use funetun_core::{Tensor, TensorSet};
use funetun_ml::rng::Rng;
use funetun_ml::{Compute, Dataset, DatasetName, LoadOptions, Model, OptimizerKind};

use super::simulate::{FederatedPlan, federated_chain};
use super::*;

const MODEL: Model = Model::Mlp;
const INIT_SEED: u64 = 7;
const OTHER_SEED: u64 = 8;
/// Test samples per checkpoint: enough for a stable accuracy, cheap in debug.
const EVAL: usize = 2_000;

struct Fixture {
    data: Dataset,
    compute: Compute,
    plan: FederatedPlan,
    honest: Vec<TensorSet>,
    /// Another honest run of the same plan from another θ₀ and data order.
    other: Vec<TensorSet>,
}

fn data() -> Dataset {
    if std::env::var_os("FUNETUN_DATA_DIR").is_some() {
        let options = LoadOptions {
            download: false,
            ..LoadOptions::default()
        };
        match Dataset::load(&DatasetName::Mnist, &options) {
            Ok(d) => return d,
            Err(e) => panic!("FUNETUN_DATA_DIR is set but MNIST does not load from it: {e}"),
        }
    }
    eprintln!("FUNETUN_DATA_DIR not set: using the synthetic data set");
    funetun_ml::data::synthetic::generate(0, 12_000, 2_000).unwrap()
}

/// The demo's spec in miniature: 4 shards, momentum 0.9, lr 0.05, mean of
/// deltas; fewer local steps and rounds so it trains in seconds.
fn plan(seed: u64) -> FederatedPlan {
    FederatedPlan {
        shards: 4,
        rounds: 6,
        steps: 25,
        batch: 64,
        lr: 0.05,
        optimizer: OptimizerKind::Momentum { momentum: 0.9 },
        seed,
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = data();
        let compute = Compute::new(1).unwrap();
        let plan = plan(1);
        let honest = federated_chain(MODEL, MODEL.init(INIT_SEED), &data, &plan, &compute).unwrap();
        let other = federated_chain(
            MODEL,
            MODEL.init(OTHER_SEED),
            &data,
            &self::plan(2),
            &compute,
        )
        .unwrap();
        Fixture {
            data,
            compute,
            plan,
            honest,
            other,
        }
    })
}

fn config() -> ProofConfig {
    ProofConfig {
        eval_samples: EVAL,
        ..ProofConfig::default()
    }
}

fn run(label: &str, checkpoints: Vec<TensorSet>, seed: Option<u64>) -> Report {
    let f = fixture();
    let chain = Chain::new(MODEL, checkpoints).unwrap();
    let report = verify(&chain, seed, &f.data, &f.compute, &config()).unwrap();
    for c in &report.checks {
        eprintln!(
            "{label:<28} {:<29} {:>10.4} {:>9.4} {} | {}",
            c.name,
            c.value,
            c.threshold,
            if c.passed { "PASS" } else { "FAIL" },
            c.detail
        );
    }
    report
}

fn assert_fails(report: &Report, name: &str) {
    let c = report.check(name).unwrap();
    assert!(!c.passed, "{name} should fail: {c:?}");
    assert!(!report.passed);
}

/// Maps every value of every tensor of `set` through `f(name, tensor)`.
fn map_tensors(set: &TensorSet, mut f: impl FnMut(&str, &Tensor) -> Vec<f32>) -> TensorSet {
    let mut out = TensorSet::new();
    for (name, t) in set.iter() {
        out.insert(name, Tensor::new(t.shape.clone(), f(name, t)).unwrap());
    }
    out
}

/// The honest trajectory moved onto another θ₀: `C'_i = C_i − C₀ + θ₀'`,
/// what a forger gets by replaying the real deltas from a forged init.
fn moved_onto(theta0: &TensorSet) -> Vec<TensorSet> {
    let honest = &fixture().honest;
    honest
        .iter()
        .map(|c| c.sub(&honest[0]).unwrap().add(theta0).unwrap())
        .collect()
}

/// Trains the fixture's plan (fewer rounds) from a forged θ₀.
fn trained_from(theta0: TensorSet) -> Vec<TensorSet> {
    let f = fixture();
    let plan = FederatedPlan {
        rounds: 3,
        ..f.plan.clone()
    };
    federated_chain(MODEL, theta0, &f.data, &plan, &f.compute).unwrap()
}

#[test]
fn honest_chain_passes_all_six_with_and_without_the_seed() {
    let f = fixture();
    let report = run("honest", f.honest.clone(), Some(INIT_SEED));
    assert!(report.passed, "{report:#?}");
    assert_eq!(report.checks.len(), 6);
    let acc = report.check(ACCURACY_MONOTONIC).unwrap();
    assert!(acc.detail.contains("accuracy by round"), "{}", acc.detail);
    let report = run("honest, no seed", f.honest.clone(), None);
    assert!(report.passed, "{report:#?}");
    let report = run("other honest run", f.other.clone(), Some(OTHER_SEED));
    assert!(report.passed, "{report:#?}");
}

#[test]
fn honest_chain_learns() {
    let f = fixture();
    let chain = Chain::new(MODEL, f.honest.clone()).unwrap();
    let acc = checks::test_accuracies(&chain, &f.data, &f.compute, EVAL).unwrap();
    assert!(acc[0] < 0.3 && acc[acc.len() - 1] > 0.8, "{acc:?}");
}

#[test]
fn spliced_checkpoint_from_another_run_fails_continuity_and_distance() {
    let f = fixture();
    let mut forged = f.honest.clone();
    forged[3] = f.other[3].clone();
    let report = run("spliced from another run", forged, Some(INIT_SEED));
    assert_fails(&report, PARAMETER_CONTINUITY);
    assert_fails(&report, DISTANCE_TO_FINAL);
}

#[test]
fn init_from_the_wrong_distribution_fails_the_initial_distribution() {
    // Same variance as the declared Uniform(±b) (σ = b/√3), normal shape.
    let mut rng = Rng::new(11);
    let normal = map_tensors(&MODEL.zeros(), |name, t| {
        let sigma = 1.0 / (MODEL.fan_in(name) as f32).sqrt() / 3f32.sqrt();
        (0..t.len()).map(|_| sigma * rng.normal()).collect()
    });
    // Uniform, but with twice the declared bound (e.g. a fan_in/4 mix-up).
    let wide = map_tensors(&MODEL.init(INIT_SEED), |_, t| {
        t.data.iter().map(|v| 2.0 * v).collect()
    });
    for (label, theta0) in [("normal init", normal), ("2x wide uniform init", wide)] {
        let trained = trained_from(theta0.clone());
        let report = run(&format!("{label}, trained"), trained, Some(INIT_SEED));
        assert_fails(&report, INITIAL_DISTRIBUTION);
        let report = run(&format!("{label}, no seed"), moved_onto(&theta0), None);
        assert_fails(&report, INITIAL_DISTRIBUTION);
    }
}

#[test]
fn correlated_init_fails_the_independence_check() {
    let honest0 = MODEL.init(INIT_SEED);
    // Every row shares a column pattern: w_ij = (u_ij + v_j)/√2 (ρ = ½).
    let other0 = MODEL.init(99);
    let shared = map_tensors(&honest0, |name, t| {
        let cols = *t.shape.last().unwrap();
        let pattern = &other0.get(name).unwrap().data[..cols];
        t.data
            .iter()
            .enumerate()
            .map(|(k, &u)| (u + pattern[k % cols]) / 2f32.sqrt())
            .collect()
    });
    // Each row a copy of the one above it, every other row: the marginal
    // stays exactly Uniform(±1/√fan_in), so only the correlations show it.
    let twins = map_tensors(&honest0, |_, t| {
        let cols = if t.shape.len() >= 2 {
            t.len() / t.shape[0]
        } else {
            2
        };
        let mut data = t.data.clone();
        for (k, v) in data.iter_mut().enumerate() {
            if (k / cols) % 2 == 1 {
                *v = t.data[k - cols];
            }
        }
        data
    });
    // Rows sorted: same multiset of values per row, perfectly ordered.
    let sorted = map_tensors(&honest0, |_, t| {
        let cols = if t.shape.len() >= 2 {
            t.len() / t.shape[0]
        } else {
            t.len()
        };
        let mut data = t.data.clone();
        for row in data.chunks_mut(cols) {
            row.sort_by(f32::total_cmp);
        }
        data
    });
    let trained = trained_from(shared.clone());
    assert_fails(
        &run("shared-pattern init, trained", trained, None),
        INITIAL_INDEPENDENCE,
    );
    for (label, theta0) in [("twin-row init", twins), ("sorted-row init", sorted)] {
        let report = run(label, moved_onto(&theta0), None);
        assert_fails(&report, INITIAL_INDEPENDENCE);
        // The marginal is untouched, so only check 4 catches these.
        assert!(
            report.check(INITIAL_DISTRIBUTION).unwrap().passed,
            "{label}"
        );
    }
}

#[test]
fn final_model_trained_from_another_init_fails_the_init_to_final_distance() {
    let f = fixture();
    // θ₀ is the declared one, the rest is another run.
    let mut forged = f.other.clone();
    forged[0] = f.honest[0].clone();
    let report = run("final from another init", forged, Some(INIT_SEED));
    assert_fails(&report, INIT_TO_FINAL);
    // The same final reached by small, even steps from the declared θ₀:
    // continuity and monotone distance hold, the ratio does not.
    let fin = f.other.last().unwrap();
    let steps = 12;
    let interpolated: Vec<TensorSet> = (0..=steps)
        .map(|i| {
            let t = i as f32 / steps as f32;
            let flat: Vec<f32> = f.honest[0]
                .to_flat()
                .iter()
                .zip(fin.to_flat())
                .map(|(&a, b)| a + t * (b - a))
                .collect();
            f.honest[0].from_flat_like(&flat).unwrap()
        })
        .collect();
    let report = run(
        "interpolated to foreign final",
        interpolated,
        Some(INIT_SEED),
    );
    assert_fails(&report, INIT_TO_FINAL);
    assert!(report.check(DISTANCE_TO_FINAL).unwrap().passed);
}

#[test]
fn untrained_checkpoint_inserted_fails_accuracy_monotonic() {
    let f = fixture();
    for (label, untrained) in [
        ("θ₀ re-inserted", f.honest[0].clone()),
        ("fresh init inserted", MODEL.init(1234)),
    ] {
        let mut forged = f.honest.clone();
        forged.insert(4, untrained);
        let report = run(label, forged, Some(INIT_SEED));
        assert_fails(&report, ACCURACY_MONOTONIC);
    }
}

#[test]
fn statistical_checks_accept_honest_inits_of_many_seeds() {
    // Checks 3 (without a seed) and 4 are tests with a family-wise false
    // alarm rate of `alpha`; on honest draws they must pass.
    let config = ProofConfig::default();
    for model in [Model::Mlp, Model::Cnn] {
        let mut worst = (0.0f64, 0.0f64);
        for seed in 0..12 {
            let theta0 = model.init(seed);
            let fit = checks::initial_distribution(model, &theta0, None, &config);
            let ind = checks::initial_independence(model, &theta0, &config);
            assert!(
                fit.passed && ind.passed,
                "{model} seed {seed}: {fit:?} {ind:?}"
            );
            let exact = checks::initial_distribution(model, &theta0, Some(seed), &config);
            assert!(exact.passed && exact.value == 0.0, "{exact:?}");
            worst = (
                worst.0.max(fit.value / fit.threshold),
                worst.1.max(ind.value / ind.threshold),
            );
        }
        eprintln!(
            "{model}: largest value/threshold over 12 seeds: KS {:.2}, independence {:.2}",
            worst.0, worst.1
        );
    }
}

#[test]
fn wrong_seed_fails_exact_equality() {
    let config = ProofConfig::default();
    let c = checks::initial_distribution(MODEL, &MODEL.init(3), Some(4), &config);
    assert!(!c.passed && c.value > 0.99, "{c:?}");
    assert!(c.detail.contains("differ"), "{}", c.detail);
}

#[test]
fn chains_that_cannot_be_checked_are_errors() {
    assert!(matches!(
        Chain::new(MODEL, vec![MODEL.init(0)]),
        Err(ProofError::TooShort(1))
    ));
    let err = Chain::new(MODEL, vec![MODEL.init(0), Model::Cnn.init(0)]).unwrap_err();
    assert!(
        matches!(err, ProofError::Checkpoint { index: 1, .. }),
        "{err}"
    );
    let bad = ProofConfig {
        alpha: 0.0,
        ..ProofConfig::default()
    };
    assert!(matches!(
        bad.validate(),
        Err(ProofError::Config { field: "alpha", .. })
    ));
    let bytes = funetun_core::encode(&Model::Cnn.init(0));
    assert!(decode_checkpoint(MODEL, &bytes).is_err());
    let bytes = funetun_core::encode(&MODEL.init(0));
    assert_eq!(decode_checkpoint(MODEL, &bytes).unwrap(), MODEL.init(0));
}

#[test]
fn accuracy_check_measures_drops_below_the_best_so_far() {
    let config = ProofConfig::default();
    let c = checks::accuracy_monotonic(&[0.1, 0.8, 0.79, 0.85, 0.83], &config);
    assert!((c.value - 0.02).abs() < 1e-12 && c.passed, "{c:?}");
    let c = checks::accuracy_monotonic(&[0.1, 0.8, 0.78, 0.76, 0.75], &config);
    assert!((c.value - 0.05).abs() < 1e-12 && !c.passed, "{c:?}");
    assert!(c.detail.contains("round 4"), "{}", c.detail);
}

/// The demo's spec (100 local steps per round) with the default
/// configuration, on 10 and on 30 rounds: the margins the defaults were
/// picked from. Slow in debug; run with
/// `cargo test --release -p funetun-validator -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_demo_sized_chains() {
    let f = fixture();
    let plan = FederatedPlan {
        rounds: 30,
        steps: 100,
        ..f.plan.clone()
    };
    let long = federated_chain(MODEL, MODEL.init(0), &f.data, &plan, &f.compute).unwrap();
    let ten = FederatedPlan {
        rounds: 10,
        seed: 5,
        ..plan.clone()
    };
    let other = federated_chain(MODEL, MODEL.init(INIT_SEED), &f.data, &ten, &f.compute).unwrap();
    for (seed, rounds, chain) in [
        (0, 10, &long),
        (0, 20, &long),
        (0, 30, &long),
        (INIT_SEED, 10, &other),
    ] {
        let chain = Chain::new(MODEL, chain[..=rounds].to_vec()).unwrap();
        let report = verify(
            &chain,
            Some(seed),
            &f.data,
            &f.compute,
            &ProofConfig::default(),
        )
        .unwrap();
        for c in &report.checks {
            eprintln!(
                "demo-sized seed {seed} {rounds:>2} rounds {:<29} {:>10.4} {:>9.4} {} | {}",
                c.name,
                c.value,
                c.threshold,
                if c.passed { "PASS" } else { "FAIL" },
                c.detail
            );
        }
    }
}

/// A text corpus that a tiny transformer learns within a few dozen steps:
/// a handful of lines repeated with seeded variations.
fn small_corpus() -> Dataset {
    let lines = [
        "the quick brown fox jumps over the lazy dog.\n",
        "a stitch in time saves nine.\n",
        "all that glitters is not gold.\n",
        "to be or not to be, that is the question.\n",
    ];
    let mut rng = Rng::new(3);
    let mut text = String::new();
    while text.len() < 40_000 {
        text.push_str(lines[rng.below(lines.len() as u64) as usize]);
    }
    Dataset::from_text(
        DatasetName::Synthetic(0),
        text.as_bytes(),
        funetun_ml::data::Tokenizer::Char,
    )
    .unwrap()
}

#[test]
fn transformer_chains_are_checked_on_validation_loss() {
    let data = small_corpus();
    let vocab = data.vocab().unwrap().size();
    let config = funetun_core::TransformerConfig::preset("tiny", vocab).unwrap();
    let model = Model::new(funetun_core::ModelKind::Gpt, Some(config)).unwrap();
    let compute = Compute::new(1).unwrap();
    let plan = FederatedPlan {
        shards: 2,
        rounds: 3,
        steps: 30,
        batch: 8,
        lr: 3e-3,
        optimizer: "adamw:0.1,0.99".parse().unwrap(),
        seed: 5,
    };
    let honest = federated_chain(model, model.init(INIT_SEED), &data, &plan, &compute).unwrap();
    let config = ProofConfig {
        eval_samples: 200,
        ..ProofConfig::default()
    };
    let check = |checkpoints: Vec<TensorSet>, seed: Option<u64>| {
        let chain = Chain::new(model, checkpoints).unwrap();
        verify(&chain, seed, &data, &compute, &config).unwrap()
    };
    let report = check(honest.clone(), Some(INIT_SEED));
    for c in &report.checks {
        eprintln!(
            "{:<29} {:>10.4} {:>9.4} {}",
            c.name, c.value, c.threshold, c.detail
        );
    }
    let first = report.check(VAL_LOSS_MONOTONIC).unwrap();
    assert!(first.passed, "{first:?}");
    assert!(report.check(ACCURACY_MONOTONIC).is_none());
    assert!(report.check(INITIAL_DISTRIBUTION).unwrap().passed);
    // Without the seed, θ₀'s weights fit nanoGPT's normal initialiser.
    let unseeded = check(honest.clone(), None);
    assert!(unseeded.check(INITIAL_DISTRIBUTION).unwrap().passed);
    assert!(unseeded.check(INITIAL_INDEPENDENCE).unwrap().passed);
    // An untrained checkpoint put back at the end: the loss rises by more
    // than the tolerance.
    let mut regressed = honest.clone();
    regressed.push(model.init(INIT_SEED + 1));
    assert_fails(&check(regressed, Some(INIT_SEED)), VAL_LOSS_MONOTONIC);
    // A θ₀ drawn twice as wide is not nanoGPT's initialiser.
    let mut wide = honest;
    wide[0] = map_tensors(&wide[0], |_, t| t.data.iter().map(|v| v * 2.0).collect());
    assert_fails(&check(wide, None), INITIAL_DISTRIBUTION);
}

#[test]
fn a_fine_tune_chain_is_held_to_its_committed_initial_checkpoint() {
    let f = fixture();
    // A fine-tune: the honest run continued from one of its trained
    // checkpoints, which the owner committed in the spec.
    let chain = Chain::new(MODEL, f.honest[2..].to_vec()).unwrap();
    let committed = funetun_core::keccak256(funetun_core::encode(&f.honest[2]));
    let report =
        super::verify_fine_tune(&chain, committed, &f.data, &f.compute, &config()).unwrap();
    for c in &report.checks {
        eprintln!(
            "fine-tune {:<29} {:>10.4} {} | {}",
            c.name, c.value, c.passed, c.detail
        );
    }
    assert!(report.passed, "{report:#?}");
    assert!(report.check(super::INITIAL_COMMITTED).unwrap().passed);
    // Neither of the seeded-θ₀ checks is reported for a fine-tune.
    assert!(report.check(super::INITIAL_DISTRIBUTION).is_none());
    assert!(report.check(super::INITIAL_INDEPENDENCE).is_none());

    // A chain whose checkpoint 0 differs from the committed one fails.
    let other = funetun_core::keccak256(funetun_core::encode(&f.honest[1]));
    let report = super::verify_fine_tune(&chain, other, &f.data, &f.compute, &config()).unwrap();
    assert_fails(&report, super::INITIAL_COMMITTED);
    assert!(
        report
            .check(super::INITIAL_COMMITTED)
            .unwrap()
            .detail
            .contains(&other.to_string()),
        "{report:#?}"
    );
}
