//! `funetun verify-chain --dir` on honest and forged chains written as
//! `round-NNNN.safetensors`, the way `funetun demo` keeps its checkpoints.

use std::path::Path;
use std::sync::OnceLock;

use funetun_core::TensorSet;
use funetun_ml::{Compute, Dataset, DatasetName, LoadOptions, Model, OptimizerKind};
use funetun_validator::proof::simulate::{FederatedPlan, federated_chain};

use crate::{dataset, funetun, last_json};
use funetun_ml::Architecture as _;

const SEED: u64 = 5;

/// An honest chain and another run of the same plan from another θ₀.
fn chains() -> &'static (Vec<TensorSet>, Vec<TensorSet>) {
    static CHAINS: OnceLock<(Vec<TensorSet>, Vec<TensorSet>)> = OnceLock::new();
    CHAINS.get_or_init(|| {
        let name: DatasetName = dataset().parse().unwrap();
        let options = LoadOptions {
            download: false,
            ..LoadOptions::default()
        };
        let data = Dataset::load(&name, &options).unwrap();
        let compute = Compute::new(1).unwrap();
        let plan = |seed| FederatedPlan {
            shards: 4,
            rounds: 4,
            steps: 20,
            batch: 64,
            lr: 0.05,
            optimizer: OptimizerKind::Momentum { momentum: 0.9 },
            seed,
        };
        let run = |init, seed| {
            federated_chain(
                Model::Mlp,
                Model::Mlp.init(init),
                &data,
                &plan(seed),
                &compute,
            )
            .unwrap()
        };
        (run(SEED, 1), run(SEED + 1, 2))
    })
}

fn write_chain(dir: &Path, chain: &[TensorSet]) {
    for (round, c) in chain.iter().enumerate() {
        std::fs::write(
            dir.join(format!("round-{round:04}.safetensors")),
            funetun_core::encode(c),
        )
        .unwrap();
    }
}

fn verify(dir: &Path, json: bool) -> std::process::Output {
    let mut cmd = funetun();
    cmd.args(["verify-chain", "--dir"])
        .arg(dir)
        .args(["--init-seed", &SEED.to_string(), "--model", "mlp"])
        .args([
            "--dataset",
            dataset(),
            "--offline",
            "--eval-samples",
            "2000",
        ]);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("the funetun binary runs")
}

#[test]
fn verify_chain_passes_an_honest_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), &chains().0);
    std::fs::write(dir.path().join("README.txt"), "other files are ignored").unwrap();

    let out = verify(dir.path(), true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = last_json(&out);
    assert_eq!(report["passed"], true, "{report}");
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "accuracy_monotonic",
            "parameter_continuity",
            "initial_distribution",
            "initial_independence",
            "distance_to_final_decreasing",
            "init_to_final_distance"
        ]
    );
    for c in checks {
        assert_eq!(c["passed"], true, "{c}");
        assert!(
            c["value"].as_f64().unwrap() <= c["threshold"].as_f64().unwrap(),
            "{c}"
        );
    }

    let out = verify(dir.path(), false);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 7, "{table}");
    assert!(
        lines[..6]
            .iter()
            .all(|l| l.contains("PASS") && l.contains("threshold")),
        "{table}"
    );
    assert_eq!(lines[6], "PASS: all 6 checks passed");
}

#[test]
fn verify_chain_fails_a_spliced_directory_with_a_non_zero_exit() {
    let (honest, other) = chains();
    let mut forged = honest.clone();
    forged[2] = other[2].clone();
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), &forged);

    let out = verify(dir.path(), true);
    assert!(!out.status.success());
    let report = last_json(&out);
    assert_eq!(report["passed"], false, "{report}");
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(failed.contains(&"parameter_continuity"), "{failed:?}");
    assert!(
        failed.contains(&"distance_to_final_decreasing"),
        "{failed:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("proof of training failed"), "{err}");

    // The wrong declared seed fails the initial distribution.
    let dir = tempfile::tempdir().unwrap();
    write_chain(dir.path(), honest);
    let out = funetun()
        .args(["verify-chain", "--dir"])
        .arg(dir.path())
        .args([
            "--init-seed",
            "6",
            "--dataset",
            dataset(),
            "--offline",
            "--json",
        ])
        .args(["--eval-samples", "500"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = last_json(&out);
    assert_eq!(report["checks"][2]["name"], "initial_distribution");
    assert_eq!(report["checks"][2]["passed"], false, "{report}");
}

#[test]
fn verify_chain_refuses_unusable_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let err = |args: &[&str]| {
        let out = funetun().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let path = dir.path().to_str().unwrap();
    let e = err(&["verify-chain", "--dir", path, "--dataset", "synthetic"]);
    assert!(e.contains("no checkpoint files"), "{e}");

    let init = funetun_core::encode(&Model::Mlp.init(SEED));
    std::fs::write(dir.path().join("round-0000.safetensors"), &init).unwrap();
    std::fs::write(dir.path().join("round-0002.safetensors"), &init).unwrap();
    let e = err(&["verify-chain", "--dir", path, "--dataset", "synthetic"]);
    assert!(e.contains("expected round 1"), "{e}");

    std::fs::write(
        dir.path().join("round-0001.safetensors"),
        b"not a checkpoint",
    )
    .unwrap();
    let e = err(&["verify-chain", "--dir", path, "--dataset", "synthetic"]);
    assert!(
        e.contains("round-0001.safetensors is not a mlp checkpoint"),
        "{e}"
    );

    let e = err(&[
        "verify-chain",
        "--dir",
        path,
        "--model",
        "cnn",
        "--dataset",
        "synthetic",
    ]);
    assert!(e.contains("round-0000.safetensors"), "{e}");

    let e = err(&["verify-chain", "--job", "1"]);
    assert!(e.contains("--orchestrator"), "{e}");
    let e = err(&["verify-chain"]);
    assert!(e.contains("--dir") && e.contains("--job"), "{e}");
}
