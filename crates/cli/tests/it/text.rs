//! Transformers on text through the real binary: `task run` gives the same
//! delta at any thread count and in separate processes, bad specs are
//! refused before anything happens on-chain, and a short text job runs
//! through the whole market (embedded chain, orchestrator, trainer and
//! validator processes) with a replayed update accepted and a forged one
//! rejected.
//!
//! They need the tiny-shakespeare corpus (`FUNETUN_DATA_DIR`, as CI sets it).

use std::path::Path;

use serde_json::Value;

use crate::{funetun, json_of};

/// Whether the corpus is on this machine (every test here needs it).
fn corpus_present() -> bool {
    match std::env::var_os("FUNETUN_DATA_DIR") {
        Some(dir) => Path::new(&dir).join("tinyshakespeare/input.txt").is_file(),
        None => false,
    }
}

fn task(dir: &Path, model: &str, name: &str, threads: usize) -> Value {
    let mut cmd = funetun();
    cmd.args(["task", "run", "--model", model, "--config", "tiny"])
        .args(["--dataset", "tinyshakespeare", "--offline"])
        .args(["--init-seed", "5", "--shard", "1", "--shards", "3"])
        .args([
            "--steps",
            "6",
            "--global-step",
            "4",
            "--seed",
            "9",
            "--json",
        ])
        .args(["--threads", &threads.to_string()])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .arg("--out")
        .arg(dir.join(name));
    json_of(&mut cmd)
}

#[test]
fn text_tasks_give_the_same_delta_in_separate_processes_at_1_and_2_threads() {
    if !corpus_present() {
        eprintln!("skipped: FUNETUN_DATA_DIR holds no tinyshakespeare/input.txt");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for model in ["gpt", "llama"] {
        let one = task(dir.path(), model, &format!("{model}-1.safetensors"), 1);
        let two = task(dir.path(), model, &format!("{model}-2.safetensors"), 2);
        assert_eq!(one["delta_hash"], two["delta_hash"], "{model}");
        assert_eq!(one["base_hash"], two["base_hash"], "{model}");
        let (before, after) = (
            one["loss_before"].as_f64().unwrap(),
            one["loss_after"].as_f64().unwrap(),
        );
        // θ₀ predicts about uniformly over 65 characters.
        assert!((before - 65f64.ln()).abs() < 0.3, "{model}: {before}");
        assert!(after < before, "{model}: {before} → {after}");
    }
}

/// `job create` with `spec`, against an address where nothing listens: a
/// spec error must stop it before any connection is tried.
pub(crate) fn create_with(spec: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.toml");
    std::fs::write(&path, spec).unwrap();
    let out = funetun()
        .args(["job", "create", "--spec"])
        .arg(&path)
        .args([
            "--orchestrator",
            "http://127.0.0.1:9",
            "--rpc",
            "http://127.0.0.1:9",
        ])
        .args(["--deposit", "1eth"])
        .env("FUNETUN_KEY", format!("0x{}", "11".repeat(32)))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{spec} was accepted");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("error sending request"),
        "it tried the network: {err}"
    );
    err
}

#[test]
fn bad_transformer_specs_are_refused_before_anything_is_sent() {
    let text = "model = \"gpt\"\ndataset = \"tinyshakespeare\"\n";
    for (extra, field, fix) in [
        (
            "[transformer]\nconfig = \"baby\"\nd_model = 130\n",
            "transformer.d_model",
            "multiple of the head count",
        ),
        (
            "[transformer]\nconfig = \"baby\"\nvocab = 40\n",
            "transformer.vocab",
            "vocab ≥ 65",
        ),
        ("", "transformer", "config = \"baby\""),
        (
            "[transformer]\nconfig = \"baby\"\nn_kv_head = 2\n",
            "transformer.n_kv_head",
            "use llama",
        ),
    ] {
        let err = create_with(&format!("{text}{extra}"));
        assert!(err.contains(field) && err.contains(fix), "{extra}: {err}");
    }
    let err = create_with("model = \"gpt\"\n[transformer]\nconfig = \"baby\"\n");
    assert!(
        err.contains("`dataset`") && err.contains("trains on text"),
        "{err}"
    );
}

/// A short gpt job on tiny-shakespeare whose every update is checked by
/// `mode` (`replay` or `spot-check`).
fn text_job(mode: &str) -> String {
    format!(
        r#"
name = "text-e2e"
seed = 4
model = "gpt"
dataset = "tinyshakespeare"
rounds = 2
shards = 2
steps = 8
batch = 4
lr = 0.003
optimizer = "adamw:0.1,0.99"
lr_schedule = "cosine:2,16,1e-4"
grad_clip = 1.0
aggregation = "mean"
outer_optimizer = "sgd"
min_updates = 1
round_timeout_secs = 20
lease_secs = 30
eval_samples = 40

[transformer]
config = "tiny"

[validation]
mode = "{mode}"
replay_prob = 1.0
replay_floor = 1.0
adaptive = false
challenge_window_secs = 1
"#
    )
}

/// Runs `spec` through `funetun demo` with two trainers (one forging by
/// flipping its delta's sign) and one validator; returns the summary.
fn demo_with_a_forger(dir: &Path, spec: &str) -> Value {
    let path = dir.join("text.toml");
    std::fs::write(&path, spec).unwrap();
    let mut cmd = funetun();
    cmd.args(["demo", "--spec"])
        .arg(&path)
        .args(["--trainers", "2", "--validators", "1", "--threads", "1"])
        .args([
            "--byzantine",
            "1",
            "--attack",
            "sign-flip",
            "--json",
            "--out",
        ])
        .arg(dir.join("out"));
    json_of(&mut cmd)
}

#[test]
fn a_spot_checked_text_job_rejects_the_forgery() {
    if !corpus_present() {
        eprintln!("skipped: FUNETUN_DATA_DIR holds no tinyshakespeare/input.txt");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = demo_with_a_forger(dir.path(), &text_job("spot-check"));
    let forged = s["forged_submitted"].as_u64().unwrap();
    assert!(forged >= 1, "{s:#}");
    assert_eq!(s["forged_caught"].as_u64().unwrap(), forged, "{s:#}");
    assert_eq!(s["forged_paid"], 0, "{s:#}");
    assert_eq!(s["honest_rejected"], 0, "{s:#}");
    assert!(s["updates_accepted"].as_u64().unwrap() >= 2, "{s:#}");
    assert_eq!(s["final_hash"], s["onchain_final_hash"], "{s:#}");
}

#[test]
fn a_text_job_runs_through_the_market_and_a_forgery_is_caught() {
    if !corpus_present() {
        eprintln!("skipped: FUNETUN_DATA_DIR holds no tinyshakespeare/input.txt");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = demo_with_a_forger(dir.path(), &text_job("replay"));
    assert_eq!(s["model"], "gpt", "{s:#}");
    assert_eq!(s["rounds"], 2, "{s:#}");
    // Every update was replayed: the honest ones were accepted after a
    // bit-exact replay, the forged ones rejected and never paid.
    assert!(s["updates_accepted"].as_u64().unwrap() >= 2, "{s:#}");
    assert_eq!(
        s["updates_replayed"].as_u64().unwrap(),
        s["updates_accepted"].as_u64().unwrap() + s["updates_rejected"].as_u64().unwrap(),
        "{s:#}"
    );
    let forged = s["forged_submitted"].as_u64().unwrap();
    assert!(forged >= 1, "{s:#}");
    assert_eq!(s["forged_caught"].as_u64().unwrap(), forged, "{s:#}");
    assert_eq!(s["forged_paid"], 0, "{s:#}");
    assert_eq!(s["honest_rejected"], 0, "{s:#}");
    assert_eq!(s["conservation_holds"], true, "{s:#}");
    assert_eq!(s["final_hash"], s["onchain_final_hash"], "{s:#}");
    // The text fields: a validation loss below θ₀'s ln 65, tokens counted,
    // and samples of the corpus's characters.
    let val_loss = s["val_loss"].as_f64().unwrap();
    assert!(val_loss.is_finite() && val_loss < 65f64.ln(), "{s:#}");
    assert_eq!(s["val_loss_per_round"].as_array().unwrap().len(), 2);
    let tokens = s["tokens_trained"].as_u64().unwrap();
    assert_eq!(tokens % (4 * 32), 0, "whole windows of 32 tokens: {tokens}");
    assert!(tokens >= 2 * 8 * 4 * 32, "{tokens}");
    for key in ["sample", "sample_before"] {
        assert_eq!(
            s[key].as_str().unwrap().chars().count(),
            300,
            "{key}: {s:#}"
        );
    }
    // The same checkpoint samples the same text: the final round's sample
    // on the API is the orchestrator's, seeded by the job.
    let curves = std::fs::read_to_string(dir.path().join("out/curves.svg")).unwrap();
    assert!(curves.contains("validation perplexity"), "{curves}");
    assert_eq!(curves.matches("class=\"perplexity-point\"").count(), 2);
}
