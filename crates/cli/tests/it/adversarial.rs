//! The adversarial matrix (docs/security.md): `funetun demo` end to end with
//! cheating trainers, a bad validator and a challenger — the real binary,
//! its participant processes, the embedded chain, real data.
//!
//! Every cell compares with the honest run of the same seed and size, and
//! checks the money from the chain's events: forged updates paid nothing,
//! every attacker slashed, no honest trainer slashed, conservation holds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use crate::{dataset, funetun, json_of};

const ROUNDS: &str = "3";
const STEPS: &str = "100";

/// Largest distance, in accuracy, from the honest run of the same seed.
const ACCURACY_MARGIN: f64 = 0.01;

/// Runs `funetun demo` with `extra` flags on `trainers` trainers; returns
/// its JSON summary.
fn demo(out: &Path, trainers: usize, extra: &[&str]) -> Value {
    let mut cmd = funetun();
    cmd.arg("demo")
        .args(["--rounds", ROUNDS, "--steps", STEPS, "--seed", "0"])
        .args(["--trainers", &trainers.to_string(), "--threads", "1"])
        .args(["--dataset", dataset(), "--json", "--out"])
        .arg(out)
        .args(extra);
    json_of(&mut cmd)
}

/// The honest run's final accuracy with `trainers` trainers (run once).
fn honest_accuracy(trainers: usize) -> f64 {
    static RUNS: OnceLock<Mutex<BTreeMap<usize, f64>>> = OnceLock::new();
    let runs = RUNS.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut runs = runs.lock().unwrap();
    *runs.entry(trainers).or_insert_with(|| {
        let dir = tempfile::tempdir().unwrap();
        let s = demo(&dir.path().join("out"), trainers, &[]);
        assert_eq!(s["forged_submitted"], 0);
        assert_eq!(s["honest_rejected"], 0, "{s:#}");
        s["test_accuracy"].as_f64().unwrap()
    })
}

fn u(v: &Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64().map(u128::from))
        .unwrap_or_else(|| panic!("not an amount: {v}"))
}

/// Runs one cell: `byzantine` of `trainers` trainers cheat with `attack`.
fn cell(attack: &str, byzantine: usize, trainers: usize) {
    let honest = honest_accuracy(trainers);
    let dir = tempfile::tempdir().unwrap();
    let s = demo(
        &dir.path().join("out"),
        trainers,
        &["--byzantine", &byzantine.to_string(), "--attack", attack],
    );
    let accuracy = s["test_accuracy"].as_f64().unwrap();
    assert!(
        (accuracy - honest).abs() <= ACCURACY_MARGIN,
        "{attack}: accuracy {accuracy} is more than {ACCURACY_MARGIN} from the honest {honest}"
    );
    let forged = s["forged_submitted"].as_u64().unwrap();
    assert!(forged >= 1, "{attack}: nothing was forged: {s:#}");
    assert_eq!(
        s["forged_paid"], 0,
        "{attack}: a forged update was paid: {s:#}"
    );
    assert_eq!(
        s["forged_caught"].as_u64().unwrap(),
        forged,
        "{attack}: a forged update escaped: {s:#}"
    );
    assert_eq!(s["honest_rejected"], 0, "{attack}: {s:#}");
    assert_eq!(s["conservation_holds"], true, "{attack}: {s:#}");
    let mut attackers = 0;
    for p in s["participants"].as_array().unwrap() {
        if p["role"] != "trainer" {
            continue;
        }
        let slashed = u(&p["slashed_wei"]);
        // The orchestrator's per-update books agree with the chain's.
        assert_eq!(u(&p["updates_slashed_wei"]), slashed, "{attack}: {p:#}");
        assert_eq!(
            u(&p["updates_paid_wei"]),
            u(&p["paid_wei"]),
            "{attack}: {p:#}"
        );
        if p["attack"].is_null() {
            assert_eq!(slashed, 0, "{attack}: an honest trainer was slashed: {p:#}");
            assert_eq!(p["rejected"], 0, "{attack}: {p:#}");
        } else {
            attackers += 1;
            assert!(slashed > 0, "{attack}: the attacker kept its stake: {p:#}");
            assert!(p["forged"].as_u64().unwrap() >= 1, "{p:#}");
            assert_eq!(p["attack"], attack);
        }
    }
    assert_eq!(attackers, byzantine);
}

#[test]
fn sign_flip_is_caught() {
    cell("sign-flip", 1, 4);
}

#[test]
fn scale_is_caught() {
    cell("scale:10", 1, 4);
}

#[test]
fn noise_is_caught() {
    cell("noise", 1, 4);
}

#[test]
fn nan_is_caught() {
    cell("nan", 1, 4);
}

#[test]
fn zero_is_caught() {
    cell("zero", 1, 4);
}

#[test]
fn stale_is_caught() {
    cell("stale", 1, 4);
}

#[test]
fn copy_is_caught() {
    cell("copy", 1, 4);
}

#[test]
fn lazy_is_caught() {
    cell("lazy", 1, 4);
}

#[test]
fn wrong_shard_is_caught() {
    cell("wrong-shard", 1, 4);
}

#[test]
fn two_of_seven_scaling_are_caught() {
    cell("scale:10", 2, 7);
}

#[test]
fn two_of_seven_noisy_are_caught() {
    cell("noise", 2, 7);
}

#[test]
fn one_bad_validator_of_three_changes_no_verdict() {
    for bad in ["always-invalid", "always-valid"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let s = demo(
            &out,
            4,
            &[
                "--validators",
                "3",
                "--quorum",
                "2",
                "--bad-validators",
                "1",
                "--validator-attack",
                bad,
                "--byzantine",
                "1",
                "--attack",
                "sign-flip",
            ],
        );
        // The truth: every update of the cheater rejected, every other
        // trainer's update accepted: one per round, and perhaps a second
        // task of a round on the shard the cheater's rejection freed.
        for p in s["participants"].as_array().unwrap() {
            if p["role"] != "trainer" {
                continue;
            }
            if p["attack"].is_null() {
                assert!(p["accepted"].as_u64().unwrap() >= 3, "{bad}: {p:#}");
                assert_eq!(p["rejected"], 0, "{bad}: {p:#}");
            } else {
                assert_eq!(p["accepted"], 0, "{bad}: {p:#}");
                assert_eq!(p["rejected"], p["forged"], "{bad}: {p:#}");
                assert!(p["forged"].as_u64().unwrap() >= 1, "{bad}: {p:#}");
            }
        }
        assert_eq!(s["forged_paid"], 0, "{s:#}");
        assert_eq!(s["honest_rejected"], 0, "{s:#}");
        assert_eq!(s["conservation_holds"], true, "{s:#}");
        // The honest validators never lose stake; the bad one loses some
        // whenever its vote was stored before the verdict.
        for p in s["participants"].as_array().unwrap() {
            if p["role"] == "validator" && p["attack"].is_null() {
                assert_eq!(u(&p["slashed_wei"]), 0, "{bad}: {p:#}");
            }
        }
    }
}

#[test]
fn a_challenger_wins_a_cheaters_stake_when_nothing_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    // scale:0.5 passes every guard (its norm is half the honest one, it
    // lowers the shard loss); with replay off only the challenger sees it.
    let s = demo(
        &dir.path().join("out"),
        4,
        &[
            "--replay-prob",
            "0",
            "--replay-floor",
            "0",
            "--challengers",
            "1",
            // The challenger must replay every update of a round inside
            // the window; 16 s leaves room when CI runs two demos at once
            // on two cores (8 s once let a forgery through there).
            "--challenge-window",
            "16",
            "--byzantine",
            "1",
            "--attack",
            "scale:0.5",
        ],
    );
    let forged = s["forged_submitted"].as_u64().unwrap();
    assert!(forged >= 1, "{s:#}");
    assert_eq!(s["forged_caught"].as_u64().unwrap(), forged, "{s:#}");
    assert_eq!(s["forged_paid"], 0, "{s:#}");
    assert_eq!(s["honest_rejected"], 0, "{s:#}");
    assert!(s["validator_replay_steps"].as_u64().unwrap() > 0, "{s:#}");
    assert_eq!(s["conservation_holds"], true, "{s:#}");
    let people = s["participants"].as_array().unwrap();
    let challenger = people.iter().find(|p| p["role"] == "challenger").unwrap();
    let cheater = people.iter().find(|p| p["attack"] == "scale:0.5").unwrap();
    let slashed = u(&cheater["slashed_wei"]);
    assert!(slashed > 0, "{cheater:#}");
    // Paid back its bonds plus the slashed stake less the validators' share.
    assert!(u(&challenger["paid_wei"]) > 0, "{challenger:#}");
    assert!(
        challenger["replay_steps"].as_u64().unwrap() > 0,
        "{challenger:#}"
    );
}
