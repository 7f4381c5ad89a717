//! `funetun task run`, `train` and `bench train` through the real binary.

use crate::{dataset, funetun, json_of};
use funetun_ml::Architecture as _;

fn task(
    dir: &std::path::Path,
    name: &str,
    threads: usize,
    base: Option<&std::path::Path>,
) -> std::process::Command {
    let mut cmd = funetun();
    cmd.args([
        "task",
        "run",
        "--model",
        "mlp",
        "--dataset",
        dataset(),
        "--offline",
    ]);
    match base {
        Some(path) => cmd.arg("--base").arg(path),
        None => cmd.args(["--init-seed", "3"]),
    };
    cmd.args([
        "--shard", "2", "--shards", "4", "--steps", "50", "--batch", "64",
    ])
    .args([
        "--lr",
        "0.1",
        "--optimizer",
        "momentum",
        "--seed",
        "17",
        "--json",
    ])
    .arg("--threads")
    .arg(threads.to_string())
    .env("RAYON_NUM_THREADS", threads.to_string())
    .arg("--out")
    .arg(dir.join(name));
    cmd
}

#[test]
fn task_run_gives_the_same_delta_in_separate_processes_at_1_and_2_threads() {
    let dir = tempfile::tempdir().unwrap();
    let one = json_of(&mut task(dir.path(), "one.safetensors", 1, None));
    let two = json_of(&mut task(dir.path(), "two.safetensors", 2, None));
    assert_eq!(one["delta_hash"], two["delta_hash"]);
    assert_eq!(one["base_hash"], two["base_hash"]);
    assert!(one["loss_after"].as_f64().unwrap() < one["loss_before"].as_f64().unwrap());
    let a = std::fs::read(dir.path().join("one.safetensors")).unwrap();
    assert_eq!(
        a,
        std::fs::read(dir.path().join("two.safetensors")).unwrap()
    );
    assert_eq!(
        format!("{}", funetun_core::keccak256(&a)),
        one["delta_hash"].as_str().unwrap()
    );
}

#[test]
fn task_run_continues_from_a_base_checkpoint_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.safetensors");
    std::fs::write(&base, funetun_core::encode(&funetun_ml::Model::Mlp.init(3))).unwrap();
    let from_seed = json_of(&mut task(dir.path(), "a.safetensors", 1, None));
    let from_file = json_of(&mut task(dir.path(), "b.safetensors", 1, Some(&base)));
    assert_eq!(from_seed["base_hash"], from_file["base_hash"]);
    assert_eq!(from_seed["delta_hash"], from_file["delta_hash"]);

    std::fs::write(&base, b"definitely not safetensors").unwrap();
    let out = funetun()
        .args([
            "task",
            "run",
            "--dataset",
            "synthetic",
            "--steps",
            "1",
            "--base",
        ])
        .arg(&base)
        .arg("--out")
        .arg(dir.path().join("c.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a mlp checkpoint"), "{err}");
    assert!(
        !dir.path().join("c.safetensors").exists(),
        "nothing is written on failure"
    );
}

#[test]
fn bad_flags_get_clear_errors() {
    let out = funetun()
        .args(["task", "run", "--optimizer", "rmsprop", "--out", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("choose sgd, momentum"));
    let out = funetun()
        .args([
            "task",
            "run",
            "--dataset",
            "synthetic",
            "--shard",
            "4",
            "--shards",
            "4",
            "--out",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard 4 of 4"));
}

#[test]
fn train_reports_accuracy_and_a_hash() {
    let report = json_of(funetun().args([
        "train",
        "--dataset",
        "synthetic",
        "--epochs",
        "1",
        "--threads",
        "2",
        "--json",
    ]));
    assert!(report["test_accuracy"].as_f64().unwrap() > 0.9, "{report}");
    assert!(report["samples_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(report["final_hash"].as_str().unwrap().len(), 66);
}

#[test]
fn bench_train_measures_both_engines() {
    let report = json_of(funetun().args([
        "bench",
        "train",
        "--model",
        "cnn",
        "--seconds",
        "0.2",
        "--json",
    ]));
    assert!(report["samples_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["candle_samples_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["ratio_vs_candle"].as_f64().unwrap() > 0.0);
}

/// `demo --dataset X` with X nowhere to be found stops before anything runs,
/// naming the fixes, instead of training synthetic data and exiting 0.
#[test]
fn a_demo_data_set_that_cannot_be_found_is_an_error_unless_synthetic_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let out = funetun()
        .args(["demo", "--dataset", "fashion-mnist", "--offline", "--out"])
        .arg(dir.path().join("demo-out"))
        .env_remove("FUNETUN_DATA_DIR")
        .env("XDG_CACHE_HOME", dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--dataset fashion-mnist is neither on this machine")
            && err.contains("FUNETUN_DATA_DIR")
            && err.contains("--allow-synthetic"),
        "{err}"
    );
    assert!(!err.contains("SYNTHETIC"), "{err}");
    assert!(!dir.path().join("demo-out").exists());
}
