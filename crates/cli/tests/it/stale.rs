//! Stale-synchronous rounds end to end (docs/sync.md): `funetun demo
//! --sync stale:2` with a straggler and a fast cheater, on the embedded
//! chain with real participant processes. The job finishes without waiting
//! for the straggler, no forged update is paid or merged, and every
//! checkpoint recomputes from its manifest.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::{dataset, funetun, json_of, last_json};

#[test]
fn a_stale_job_with_a_straggler_and_a_cheater_merges_only_accepted_updates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let s = json_of(
        funetun()
            .arg("demo")
            .args(["--rounds", "4", "--steps", "100", "--seed", "0"])
            .args(["--trainers", "4", "--threads", "1"])
            .args(["--sync", "stale:2", "--slow", "1", "--slowdown", "3"])
            .args(["--byzantine", "1", "--attack", "sign-flip"])
            .args(["--dataset", dataset(), "--json", "--out"])
            .arg(&out),
    );
    assert_eq!(s["sync"], "stale:2", "{s:#}");
    assert_eq!(s["rounds"], 4);
    // The cheater: caught, slashed, never paid. Its last update may still
    // be under replay when the job ends (trainers never stop leasing under
    // `stale:S`): undecided, so neither caught nor paid.
    let forged = s["forged_submitted"].as_u64().unwrap();
    assert!(forged >= 1, "nothing was forged: {s:#}");
    assert_eq!(s["forged_paid"], 0, "{s:#}");
    let caught = s["forged_caught"].as_u64().unwrap();
    assert!(caught >= 1 && caught <= forged, "{s:#}");
    assert_eq!(s["honest_rejected"], 0, "{s:#}");
    assert_eq!(s["conservation_holds"], true, "{s:#}");

    let trainers: Vec<&Value> = s["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "trainer")
        .collect();
    let cheater = trainers
        .iter()
        .find(|p| !p["attack"].is_null())
        .map(|p| p["address"].as_str().unwrap().to_lowercase())
        .expect("a cheating trainer");
    assert_eq!(trainers.iter().filter(|p| p["slow"] == true).count(), 1);
    for p in &trainers {
        assert!(p["busy_seconds"].as_f64().unwrap() > 0.0, "{p:#}");
        let u = p["utilization"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&u), "{p:#}");
    }

    // Every manifest merges only accepted updates of honest trainers, and
    // trainers that leased again at once merged one-round-old updates.
    let manifests = manifests(&out.join("checkpoints"));
    assert_eq!(manifests.len(), 4);
    let mut staleness = BTreeSet::new();
    for m in &manifests {
        assert_eq!(m["sync"], "stale:2");
        for input in m["inputs"].as_array().unwrap() {
            let trainer = input["trainer"].as_str().unwrap().to_lowercase();
            assert_ne!(trainer, cheater, "a forged update was merged: {m}");
            staleness.insert(input["staleness"].as_u64().unwrap());
        }
    }
    assert!(
        staleness.iter().any(|&s| s > 0),
        "no stale update was merged: {staleness:?}"
    );

    // Offline, every checkpoint recomputes from its parent and manifest.
    let out_v = funetun()
        .args(["verify-chain", "--dir"])
        .arg(out.join("checkpoints"))
        .args(["--dataset", dataset(), "--offline", "--json"])
        .output()
        .unwrap();
    let report = last_json(&out_v);
    let aggregation = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "aggregation")
        .cloned()
        .unwrap_or_else(|| panic!("no aggregation check: {report}"));
    assert_eq!(aggregation["passed"], true, "{report}");
}

fn manifests(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// A `stale:S` spec with outer momentum is refused before anything is sent,
/// naming the field and the fix.
#[test]
fn outer_momentum_under_stale_rounds_is_refused_before_anything_is_sent() {
    for outer in ["nesterov:0.7,0.9", "adam:1e-3,0.9,0.99,1e-8"] {
        let err = crate::text::create_with(&format!(
            "sync = \"stale:2\"\nbuffer = 2\nouter_optimizer = \"{outer}\"\n"
        ));
        assert!(
            err.contains("outer_optimizer") && err.contains("outer_optimizer = \"sgd\""),
            "{outer}: {err}"
        );
    }
}
