//! `funetun eval` on Hugging Face model directories: the engine's loss as
//! one JSON line, and clear refusals of bad input. (Agreement with
//! `transformers` itself is tested in funetun-ml's `tests/it/hf.rs`.)

use std::path::Path;
use std::process::Output;

use funetun_ml::data::{Tokenizer, Vocab};
use funetun_ml::{Architecture as _, Compute, Model, ModelKind, TransformerConfig, hf};

use crate::{funetun, json_of};

const TEXT: &str = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n\
All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n\
All:\nResolved. resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n";

/// A tiny engine-initialised gpt exported with its char vocabulary, and
/// the text as a file.
fn exported(dir: &Path) -> (Model, Vocab) {
    let vocab = Vocab::build(Tokenizer::Char, TEXT.as_bytes(), "text").unwrap();
    let config = TransformerConfig::preset("tiny", vocab.size()).unwrap();
    let model = Model::new(ModelKind::Gpt, Some(config)).unwrap();
    let json = vocab.to_hf_json().unwrap();
    hf::save_dir(&dir.join("model"), model, &model.init(7), Some(&json)).unwrap();
    std::fs::write(dir.join("text.txt"), TEXT).unwrap();
    (model, vocab)
}

fn eval(dir: &Path, model_dir: &str, data: &str, extra: &[&str]) -> Output {
    funetun()
        .arg("eval")
        .arg("--model-dir")
        .arg(dir.join(model_dir))
        .arg("--data")
        .arg(dir.join(data))
        .args(extra)
        .output()
        .expect("the funetun binary runs")
}

#[test]
fn eval_reports_the_engines_mean_loss_as_one_json_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (model, vocab) = exported(dir);
    let mut cmd = funetun();
    cmd.arg("eval")
        .arg("--model-dir")
        .arg(dir.join("model"))
        .arg("--data")
        .arg(dir.join("text.txt"))
        .args(["--json", "--threads", "2"]);
    let report = json_of(&mut cmd);

    let loaded = hf::load_dir(&dir.join("model")).unwrap();
    let compute = Compute::new(1).unwrap();
    let expected = hf::evaluate_text(&loaded, TEXT.as_bytes(), "text", 0, &compute).unwrap();
    let windows = (TEXT.chars().count() - 1) / 32;
    assert_eq!(report["windows"].as_u64().unwrap() as usize, windows);
    assert_eq!(report["tokens"].as_u64().unwrap() as usize, windows * 32);
    assert_eq!(report["model"].as_str().unwrap(), model.to_string());
    let loss = report["loss"].as_f64().unwrap();
    assert_eq!(loss, expected.loss, "the same at 1 and 2 threads");
    // θ₀ predicts about uniformly over the characters.
    let uniform = (vocab.size() as f64).ln();
    assert!(
        (loss - uniform).abs() < 0.1,
        "{loss} vs ln {}",
        vocab.size()
    );

    let mut cmd = funetun();
    cmd.arg("eval")
        .arg("--model-dir")
        .arg(dir.join("model"))
        .arg("--data")
        .arg(dir.join("text.txt"))
        .args(["--json", "--windows", "2"]);
    let two = json_of(&mut cmd);
    assert_eq!(
        (two["windows"].as_u64(), two["tokens"].as_u64()),
        (Some(2), Some(64))
    );
}

/// Runs eval expecting failure, and returns stderr.
fn refused(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "eval succeeded: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn eval_refuses_bad_input_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    exported(dir);

    let e = refused(eval(dir, "absent", "text.txt", &[]));
    assert!(e.contains("no such directory"), "{e}");

    let e = refused(eval(dir, "model", "absent.txt", &[]));
    assert!(e.contains("reading the text"), "{e}");

    std::fs::write(dir.join("short.txt"), "First Citizen").unwrap();
    let e = refused(eval(dir, "model", "short.txt", &[]));
    assert!(e.contains("shorter than one context window"), "{e}");

    std::fs::write(dir.join("odd.txt"), "Zebras quarrel ".repeat(10)).unwrap();
    let e = refused(eval(dir, "model", "odd.txt", &["--json"]));
    assert!(e.contains("'Z'") || e.contains("'q'"), "{e}");

    let config = dir.join("model/config.json");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, original.replace("\"gelu_new\"", "\"relu\"")).unwrap();
    let e = refused(eval(dir, "model", "text.txt", &[]));
    assert!(e.contains("`activation_function` is \"relu\""), "{e}");
    std::fs::write(&config, "{\"model_type\": \"bert\"}").unwrap();
    let e = refused(eval(dir, "model", "text.txt", &[]));
    assert!(e.contains("`model_type` is \"bert\""), "{e}");
    std::fs::write(&config, original).unwrap();

    std::fs::remove_file(dir.join("model/tokenizer.json")).unwrap();
    let e = refused(eval(dir, "model", "text.txt", &[]));
    assert!(e.contains("no tokenizer.json"), "{e}");
}
