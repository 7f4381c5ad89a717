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

/// The LoRA job of [`a_lora_job_trains_adapters_on_a_frozen_model_and_a_forgery_is_caught`].
const LORA: &str = r#"
[lora]
rank = 2
alpha = 4
targets = ["c_attn"]
"#;

#[test]
fn a_lora_job_trains_adapters_on_a_frozen_model_and_a_forgery_is_caught() {
    use funetun_ml::Architecture as _;
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = slice(dir.path()) else {
        eprintln!("skipped: FUNETUN_DATA_DIR holds no tinyshakespeare/input.txt");
        return;
    };
    let data = data.to_str().unwrap();
    // The model to fine-tune: a short full job on the owner's corpus.
    let s: Value = json_of(&mut demo(dir.path(), "one", &["--data", data]));
    let frozen_file = dir.path().join("one/final.safetensors");

    // The LoRA job: the same spec with adapters and a higher rate.
    let spec = dir.path().join("lora.toml");
    std::fs::write(&spec, SPEC.replace("lr = 0.003", "lr = 0.03") + LORA).unwrap();
    let mut cmd = funetun();
    cmd.args(["demo", "--spec"])
        .arg(&spec)
        .args(["--trainers", "2", "--validators", "1", "--threads", "1"])
        .args(["--data", data, "--init", frozen_file.to_str().unwrap()])
        .args([
            "--byzantine",
            "1",
            "--attack",
            "sign-flip",
            "--json",
            "--out",
        ])
        .arg(dir.path().join("two"));
    let t: Value = json_of(&mut cmd);
    // Replayed honest updates accepted, the forged ones caught and unpaid.
    assert!(t["updates_accepted"].as_u64().unwrap() >= 2, "{t:#}");
    let forged = t["forged_submitted"].as_u64().unwrap();
    assert!(forged >= 1, "{t:#}");
    assert_eq!(t["forged_caught"].as_u64().unwrap(), forged, "{t:#}");
    assert_eq!(t["forged_paid"], 0, "{t:#}");
    assert_eq!(t["honest_rejected"], 0, "{t:#}");
    assert_eq!(t["final_hash"], t["onchain_final_hash"], "{t:#}");
    // The frozen model is the spec's init; checkpoint 0 on-chain is the
    // adapters' seeded init, not the model.
    assert_eq!(t["init"], s["final_hash"], "{t:#}");
    assert_ne!(t["initial_hash"], t["init"], "{t:#}");
    // The adapters learned: the merged model's validation loss fell.
    let before = t["val_loss_before"].as_f64().unwrap();
    let after = t["val_loss"].as_f64().unwrap();
    assert!(after < before, "{before} → {after}");
    // An update is the adapters' change: far smaller than a dense one.
    let (lora_bytes, full_bytes) = (
        t["update_bytes"].as_u64().unwrap(),
        t["full_update_bytes"].as_u64().unwrap(),
    );
    assert!(lora_bytes * 5 < full_bytes, "{lora_bytes} vs {full_bytes}");

    // Out: the merged model, and the adapters in PEFT's layout, which
    // merge into the frozen model to exactly that model.
    let hf = dir.path().join("two/hf");
    let merged = funetun_ml::hf::load_dir(&hf).unwrap();
    let model = merged.model;
    let config = funetun_ml::LoraConfig {
        rank: 2,
        alpha: 4.0,
        targets: vec!["c_attn".into()],
    };
    let lora = funetun_ml::Lora::new(model, &config).unwrap();
    let adapters = funetun_ml::hf::load_adapters(&hf.join("adapter"), &lora).unwrap();
    let final_adapters = lora
        .decode(&std::fs::read(dir.path().join("two/final.safetensors")).unwrap())
        .unwrap();
    assert_eq!(adapters, final_adapters);
    let frozen = model.decode(&std::fs::read(&frozen_file).unwrap()).unwrap();
    assert_eq!(lora.merge(&frozen, &adapters).unwrap(), merged.weights);
    let config: Value =
        serde_json::from_slice(&std::fs::read(hf.join("adapter/adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 2);
    assert_eq!(config["fan_in_fan_out"], true, "gpt's Conv1D");
    // PEFT applies the adapters to the frozen model (job 1's export) and
    // gets the merged model's logits.
    if let Some(python) = torch_python() {
        let script = Path::new(
            &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
        )
        .join("../ml/tests/hf/check_adapter.py");
        let line = python_script(
            &python,
            &[
                script.as_os_str(),
                dir.path().join("one/hf").as_os_str(),
                hf.join("adapter").as_os_str(),
                hf.as_os_str(),
            ],
        );
        let peft: Value = serde_json::from_str(line.lines().last().unwrap_or_default()).unwrap();
        eprintln!("PEFT against the merged export: {peft}");
        assert_eq!(peft["adapted_modules"], 2, "c_attn of both blocks: {peft}");
        let diff = peft["max_abs_diff"].as_f64().unwrap();
        let scale = peft["max_abs_logit"].as_f64().unwrap();
        assert!(diff <= 1e-4 * scale.max(1.0), "{peft}");
        assert!(peft["base_diff"].as_f64().unwrap() > 100.0 * diff, "{peft}");
    }

    // Refused before anything is written on-chain: a target that names no
    // projection of the model, and adapters without a model to adapt.
    let refused = |spec_text: String, init: bool| {
        std::fs::write(&spec, spec_text).unwrap();
        let mut cmd = funetun();
        cmd.args(["demo", "--spec"]).arg(&spec).args([
            "--trainers",
            "1",
            "--validators",
            "1",
            "--data",
            data,
        ]);
        if init {
            cmd.args(["--init", frozen_file.to_str().unwrap()]);
        }
        let out = cmd
            .arg("--out")
            .arg(dir.path().join("bad"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("job 1 created"), "{err}");
        err
    };
    let err = refused(SPEC.to_string() + &LORA.replace("c_attn", "q_proj"), true);
    assert!(err.contains("q_proj") && err.contains("c_attn"), "{err}");
    let err = refused(SPEC.to_string() + LORA, false);
    assert!(err.contains("init"), "{err}");
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

/// The venv's python (`benches/torch/setup.sh`), or `None` outside CI when
/// it is missing; under `CI=true` its absence fails the test.
fn torch_python() -> Option<PathBuf> {
    let python = match std::env::var_os("FUNETUN_TORCH_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/funetun/venv-torch/bin/python"),
    };
    if python.is_file() {
        return Some(python);
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(
        !ci,
        "{} is missing: run `bash benches/torch/setup.sh`",
        python.display()
    );
    eprintln!("skipped: {} is missing", python.display());
    None
}

fn python_script(python: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(python)
        .args(args)
        .env("TRANSFORMERS_VERBOSITY", "error")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_job_starts_from_a_transformers_checkpoint_and_its_result_loads_back_in_transformers() {
    let Some(python) = torch_python() else {
        return;
    };
    let scripts = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../ml/tests/hf");
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    python_script(
        &python,
        &[
            scripts.join("make_models.py").as_os_str(),
            models.as_os_str(),
        ],
    );
    // The owner's corpus: text its BPE tokenizer covers, long enough for
    // two shards of 32-token windows.
    let text = std::fs::read_to_string(models.join("gpt/eval.txt")).unwrap();
    let corpus = dir.path().join("corpus.txt");
    std::fs::write(&corpus, text.repeat(200)).unwrap();
    let spec = dir.path().join("job.toml");
    std::fs::write(
        &spec,
        SPEC.replace("rounds = 2", "rounds = 1")
            .replace("[transformer]\nconfig = \"tiny\"\n", ""),
    )
    .unwrap();
    let gpt = models.join("gpt");
    let mut cmd = funetun();
    cmd.args(["demo", "--spec"])
        .arg(&spec)
        .args(["--trainers", "2", "--validators", "1", "--threads", "1"])
        .arg("--data")
        .arg(&corpus)
        .arg("--init")
        .arg(&gpt)
        .args(["--json", "--out"])
        .arg(dir.path().join("out"));
    let s = json_of(&mut cmd);
    // Checkpoint 0 is the transformers model, converted; the job trained it.
    let imported = funetun_ml::hf::load_dir(&gpt).unwrap();
    let c0 = funetun_core::keccak256(funetun_core::encode(&imported.weights));
    assert_eq!(s["initial_hash"], serde_json::json!(c0), "{s:#}");
    assert!(s["updates_accepted"].as_u64().unwrap() >= 1, "{s:#}");
    let job = std::fs::read_to_string(dir.path().join("out/job.toml")).unwrap();
    let tokenizer = funetun_core::keccak256(std::fs::read(gpt.join("tokenizer.json")).unwrap());
    assert!(job.contains(&format!(":{tokenizer}\"")), "{job}");
    assert!(
        job.contains("n_layer = 2") && job.contains("d_model = 32"),
        "{job}"
    );

    // The exported directory loads in transformers with Funetun's logits.
    let export = dir.path().join("out/hf");
    let ours = funetun_ml::hf::load_dir(&export).unwrap();
    let final_bytes = std::fs::read(dir.path().join("out/final.safetensors")).unwrap();
    assert_eq!(funetun_core::encode(&ours.weights), final_bytes);
    let tokens: Vec<Vec<u32>> = (0..2)
        .map(|b| (0..32).map(|t| ((7 * b + 5 * t + 3) % 96) as u32).collect())
        .collect();
    let tokens_json = dir.path().join("tokens.json");
    std::fs::write(
        &tokens_json,
        serde_json::json!({ "tokens": tokens }).to_string(),
    )
    .unwrap();
    let line = python_script(
        &python,
        &[
            scripts.join("check_export.py").as_os_str(),
            export.as_os_str(),
            tokens_json.as_os_str(),
        ],
    );
    let theirs: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(theirs["architecture"], "GPT2LMHeadModel", "{theirs}");
    let theirs: Vec<f64> = theirs["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let model = ours.model;
    let mut logits = vec![0.0f32; 2 * 32 * 96];
    funetun_ml::engine::transformer::Transformer::new(model, 2).logits(
        &ours.weights.to_flat(),
        &tokens.concat(),
        2,
        32,
        &mut logits,
        funetun_ml::engine::Par::SERIAL,
    );
    assert_eq!(logits.len(), theirs.len());
    let worst = logits
        .iter()
        .zip(&theirs)
        .map(|(&a, &b)| (f64::from(a) - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max);
    eprintln!("exported fine-tune: largest relative logit difference {worst:.2e}");
    assert!(worst <= 1e-4, "{worst}");
}

#[test]
fn a_rank_8_lora_update_of_a_100m_llama_is_over_50_times_smaller() {
    let s = json_of(funetun().args([
        "bench",
        "lora",
        "--model",
        "llama",
        "--config",
        "llama-100m",
        "--vocab",
        "32000",
        "--rank",
        "8",
        "--targets",
        "q_proj,v_proj",
        "--json",
    ]));
    assert!(s["full_params"].as_u64().unwrap() > 100_000_000, "{s}");
    let (lora, full) = (
        s["update_bytes"].as_u64().unwrap(),
        s["full_update_bytes"].as_u64().unwrap(),
    );
    // Four bytes per parameter plus the header.
    assert!(lora > 4 * s["lora_params"].as_u64().unwrap(), "{s}");
    assert!(full >= 50 * lora, "{s}");
}
