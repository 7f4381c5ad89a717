//! `funetun tasks example` and `funetun tasks run-local`: the shipped
//! examples run in the worker's sandbox; failures are classes with exit 2;
//! bad input is refused before anything runs.

use std::path::Path;

use crate::{funetun, last_json};

fn example(dir: &Path, name: &str) -> std::path::PathBuf {
    let out = dir.join(format!("{name}.wasm"));
    let done = funetun()
        .args(["tasks", "example", name, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    out
}

fn run_local(wasm: &Path, input: &str, extra: &[&str]) -> std::process::Output {
    funetun()
        .args(["tasks", "run-local", "--json", "--wasm"])
        .arg(wasm)
        .args(["--input", input])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_pi_example_runs_and_gives_the_same_digest_twice() {
    let dir = tempfile::tempdir().unwrap();
    let pi = example(dir.path(), "pi");
    let input = r#"{"samples": 100000, "seed": 7}"#;
    let first = run_local(&pi, input, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first = last_json(&first);
    let estimate = first["output"]["pi"].as_f64().expect("an output with pi");
    assert!((estimate - std::f64::consts::PI).abs() < 0.05, "{first}");
    let again = last_json(&run_local(&pi, input, &[]));
    assert_eq!(first["result_digest"], again["result_digest"]);
    assert_eq!(first["fuel_used"], again["fuel_used"]);

    // An existing file is left alone.
    let twice = funetun()
        .args(["tasks", "example", "pi", "--out"])
        .arg(&pi)
        .output()
        .unwrap();
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("left alone"));
}

#[test]
fn failures_are_classes_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let pi = example(dir.path(), "pi");
    let starved = run_local(
        &pi,
        r#"{"samples": 100000000, "seed": 1}"#,
        &["--fuel", "100000"],
    );
    assert_eq!(starved.status.code(), Some(2));
    assert_eq!(last_json(&starved)["error"], "fuel");

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not a module").unwrap();
    let invalid = run_local(&junk, "{}", &[]);
    assert_eq!(invalid.status.code(), Some(2));
    assert_eq!(last_json(&invalid)["error"], "invalid_module");
}

#[test]
fn bad_input_is_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let pi = example(dir.path(), "pi");
    let not_json = run_local(&pi, "{samples: 3", &[]);
    assert_eq!(not_json.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_json.stderr).contains("JSON"));
    assert!(not_json.stdout.is_empty());

    let unknown = funetun()
        .args(["tasks", "example", "nope"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("pi"));
}

#[test]
fn the_rounding_validator_judges_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let rounding = example(dir.path(), "rounding");
    let validator = example(dir.path(), "rounding-valid");
    let done = run_local(
        &rounding,
        r#"{"values": 1000, "seed": 3, "order": "backward"}"#,
        &["--validator-wasm", validator.to_str().unwrap()],
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(last_json(&done)["valid"], true);
}
