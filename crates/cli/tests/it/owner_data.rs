//! An owner's own data and checkpoint through the real binary and market:
//! a corpus uploaded by hash trains a job (replayed updates accepted, a
//! forgery caught), a second job starts from the first one's final
//! checkpoint uploaded by hash, and bad files are refused before anything
//! is written on-chain.
//!
//! They need the tiny-shakespeare corpus (`FUNETUN_DATA_DIR`, as CI sets it):
//! the owner's file is a slice of it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{funetun, json_of};

/// The first 200 kB of tiny-shakespeare, written as an owner's file.
fn slice(dir: &Path) -> Option<PathBuf> {
    let corpus =
        Path::new(&std::env::var_os("FUNETUN_DATA_DIR")?).join("tinyshakespeare/input.txt");
    let bytes = std::fs::read(corpus).ok()?;
    let path = dir.join("mine.txt");
    std::fs::write(&path, &bytes[..200_000]).unwrap();
    Some(path)
}

const SPEC: &str = r#"
name = "owner-data"
seed = 4
model = "gpt"
dataset = "tinyshakespeare:byte"
rounds = 2
shards = 2
steps = 8
batch = 4
lr = 0.003
optimizer = "adamw:0.1,0.99"
grad_clip = 1.0
min_updates = 1
round_timeout_secs = 20
lease_secs = 30
eval_samples = 40

[transformer]
config = "tiny"

[validation]
mode = "replay"
replay_prob = 1.0
replay_floor = 1.0
adaptive = false
challenge_window_secs = 1
"#;

fn demo(dir: &Path, out: &str, extra: &[&str]) -> std::process::Command {
    let spec = dir.join("job.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let mut cmd = funetun();
    cmd.args(["demo", "--spec"])
        .arg(&spec)
        .args(["--trainers", "2", "--validators", "1", "--threads", "1"])
        .args(extra)
        .args(["--json", "--out"])
        .arg(dir.join(out));
    cmd
}

fn spec_in(dir: &Path, out: &str) -> String {
    std::fs::read_to_string(dir.join(out).join("job.toml")).unwrap()
}

#[test]
fn a_job_trains_on_an_uploaded_corpus_then_another_starts_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = slice(dir.path()) else {
        eprintln!("skipped: FUNETUN_DATA_DIR holds no tinyshakespeare/input.txt");
        return;
    };
    let data = data.to_str().unwrap();

    // Job 1: the owner's corpus, by hash; a forger is caught by replay.
    let s: Value = json_of(&mut demo(
        dir.path(),
        "one",
        &["--data", data, "--byzantine", "1", "--attack", "sign-flip"],
    ));
    let corpus = funetun_core::keccak256(std::fs::read(data).unwrap());
    let spec = spec_in(dir.path(), "one");
    assert!(
        spec.contains(&format!("dataset = \"text:{corpus}:byte\"")),
        "{spec}"
    );
    assert!(s["updates_accepted"].as_u64().unwrap() >= 2, "{s:#}");
    let forged = s["forged_submitted"].as_u64().unwrap();
    assert!(forged >= 1, "{s:#}");
    assert_eq!(s["forged_caught"].as_u64().unwrap(), forged, "{s:#}");
    assert_eq!(s["forged_paid"], 0, "{s:#}");
    assert_eq!(s["honest_rejected"], 0, "{s:#}");
    assert_eq!(s["final_hash"], s["onchain_final_hash"], "{s:#}");
    let val_loss = s["val_loss"].as_f64().unwrap();
    assert!(val_loss < 256f64.ln(), "{s:#}");
    assert_eq!(s["init"], Value::Null);

    // Job 2: starts from job 1's final checkpoint, uploaded by hash; its
    // checkpoint 0 on-chain is that checkpoint, and it trains on.
    let init = dir.path().join("one/final.safetensors");
    let t: Value = json_of(&mut demo(
        dir.path(),
        "two",
        &["--data", data, "--init", init.to_str().unwrap()],
    ));
    assert_eq!(t["init"], s["final_hash"], "{t:#}");
    assert_eq!(t["initial_hash"], s["final_hash"], "{t:#}");
    assert!(spec_in(dir.path(), "two").contains(&format!("init = {}", s["final_hash"])));
    assert!(t["updates_accepted"].as_u64().unwrap() >= 2, "{t:#}");
    assert_eq!(t["final_hash"], t["onchain_final_hash"], "{t:#}");
    // It continued from job 1 rather than from a fresh θ₀: its first
    // validation loss is below job 1's first.
    let first = |v: &Value| v["val_loss_per_round"][0].as_f64().unwrap();
    assert!(first(&t) < first(&s), "{} vs {}", first(&t), first(&s));
}

#[test]
fn bad_owner_files_are_refused_before_anything_goes_on_chain() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = slice(dir.path()) else {
        eprintln!("skipped: FUNETUN_DATA_DIR holds no tinyshakespeare/input.txt");
        return;
    };
    let refused = |extra: &[&str]| {
        let out = demo(dir.path(), "bad", extra).output().unwrap();
        assert!(!out.status.success(), "{extra:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        // Nothing was created: the job would be id 1.
        assert!(!err.contains("job 1 created"), "{err}");
        err
    };
    // A checkpoint of another model.
    let mlp = dir.path().join("mlp.safetensors");
    let weights = funetun_ml::Architecture::init(funetun_ml::Model::Mlp, 1);
    std::fs::write(&mlp, funetun_core::encode(&weights)).unwrap();
    let err = refused(&[
        "--data",
        data.to_str().unwrap(),
        "--init",
        mlp.to_str().unwrap(),
    ]);
    assert!(err.contains("not a gpt") && err.contains("layout"), "{err}");
    // Text that is not UTF-8, tokenized by characters.
    let binary = dir.path().join("binary.txt");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00, 0x41].repeat(5000)).unwrap();
    let err = refused(&["--data", binary.to_str().unwrap(), "--tokenizer", "char"]);
    assert!(err.contains("not UTF-8") && err.contains("byte"), "{err}");
    // A corpus shorter than one context window.
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "too short").unwrap();
    let err = refused(&["--data", short.to_str().unwrap()]);
    assert!(err.contains("context") || err.contains("window"), "{err}");
    // A missing file.
    let err = refused(&["--data", "/nonexistent/corpus.txt"]);
    assert!(err.contains("/nonexistent/corpus.txt"), "{err}");
}
