//! Hugging Face interoperability against real `transformers`.
//!
//! `tests/hf/make_models.py` builds tiny random `GPT2LMHeadModel` and
//! `LlamaForCausalLM` checkpoints (with a trained BPE tokenizer, logits,
//! and a loss over a text); the engine must load them and agree. Then
//! [`hf::save_dir`]'s exports, including the `char` and `byte`
//! vocabularies as `tokenizer.json`, go through `tests/hf/check_export.py`
//! (`AutoModelForCausalLM.from_pretrained`, `PreTrainedTokenizerFast`),
//! which must agree again. Checkpoints that disagree with their
//! `config.json` must be refused, naming the tensor.
//!
//! The scripts run in the venv `benches/torch/setup.sh` creates
//! (`$HOME/.cache/funetun/venv-torch`, or `FUNETUN_TORCH_PYTHON`). Without
//! it these tests print a notice and pass, except under `CI=true`, where
//! they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use funetun_core::{Tensor, TensorSet};
use funetun_ml::data::{Tokenizer, Vocab};
use funetun_ml::engine::Par;
use funetun_ml::engine::transformer::Transformer;
use funetun_ml::hf::{self, HfModel};
use funetun_ml::{Architecture as _, Compute, Model, ModelKind, TransformerConfig};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// |a − b| ≤ TOLERANCE · max(1, |b|) for every logit and loss.
const TOLERANCE: f64 = 1e-4;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The venv's python, or `None` (with a notice) when it is missing outside CI.
fn python() -> Option<PathBuf> {
    let python = match std::env::var_os("FUNETUN_TORCH_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => dirs_home().join(".cache/funetun/venv-torch/bin/python"),
    };
    if python.is_file() {
        return Some(python);
    }
    assert!(
        !ci(),
        "{} is missing: the Hugging Face interoperability tests need PyTorch and transformers; \
         run `bash benches/torch/setup.sh`",
        python.display()
    );
    eprintln!(
        "skipped: {} is missing (run `bash benches/torch/setup.sh` to test against transformers)",
        python.display()
    );
    None
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn script(name: &str) -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("tests/hf")
        .join(name)
}

/// Runs a script, requiring success, and returns its stdout.
fn run_script(python: &Path, args: &[&Path]) -> String {
    let out = Command::new(python)
        .args(args)
        .env("TRANSFORMERS_VERBOSITY", "error")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("the venv's python starts");
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        args[0].display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The venv's python and the directory `make_models.py` filled, made once
/// per test binary.
fn models() -> Option<&'static (PathBuf, PathBuf)> {
    static MODELS: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    MODELS
        .get_or_init(|| {
            let python = python()?;
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hf-interop");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            run_script(&python, &[&script("make_models.py"), &dir]);
            Some((python, dir))
        })
        .as_ref()
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The largest |a − b| / max(1, |b|), failing beyond [`TOLERANCE`].
fn max_relative_difference(what: &str, ours: &[f32], theirs: &[f64]) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    let worst = ours
        .iter()
        .zip(theirs)
        .map(|(&a, &b)| (f64::from(a) - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max);
    assert!(
        worst <= TOLERANCE,
        "{what}: relative difference {worst:e} > {TOLERANCE:e}"
    );
    worst
}

/// The engine's logits for `tokens` (equal-length rows).
fn our_logits(model: Model, weights: &TensorSet, tokens: &[Vec<u32>]) -> Vec<f32> {
    let c = model.transformer().unwrap();
    let (batch, seq) = (tokens.len(), tokens[0].len());
    let flat_tokens: Vec<u32> = tokens.concat();
    let mut logits = vec![0.0; batch * seq * c.vocab];
    Transformer::new(model, batch).logits(
        &weights.to_flat(),
        &flat_tokens,
        batch,
        seq,
        &mut logits,
        Par::SERIAL,
    );
    logits
}

fn token_rows(v: &Value) -> Vec<Vec<u32>> {
    v.as_array().unwrap().iter().map(ids).collect()
}

#[test]
fn transformers_checkpoints_load_and_give_the_same_logits_tokens_and_loss() {
    let Some((_, dir)) = models() else { return };
    let compute = Compute::new(1).unwrap();
    for (name, kind) in [("gpt", ModelKind::Gpt), ("llama", ModelKind::Llama)] {
        let model_dir = dir.join(name);
        let loaded = hf::load_dir(&model_dir).unwrap();
        assert_eq!(loaded.model.kind(), kind);
        let c = loaded.model.transformer().unwrap();
        assert_eq!((c.vocab, c.context, c.d_model, c.n_layer), (96, 32, 32, 2));
        let reference = read_json(&model_dir.join("logits.json"));
        let logits = our_logits(
            loaded.model,
            &loaded.weights,
            &token_rows(&reference["tokens"]),
        );
        let worst = max_relative_difference(name, &logits, &floats(&reference["logits"]));
        eprintln!(
            "{name}: max relative logit difference {worst:.3e} against transformers {}",
            reference["transformers_version"]
        );

        let vocab = loaded.vocab().unwrap().expect("tokenizer.json was saved");
        let text = reference["text"].as_str().unwrap();
        assert_eq!(
            vocab.encode(text).unwrap(),
            ids(&reference["text_ids"]),
            "{name}"
        );

        let eval_text = std::fs::read(model_dir.join("eval.txt")).unwrap();
        let loss = hf::evaluate_text(&loaded, &eval_text, "eval.txt", 0, &compute).unwrap();
        let theirs = reference["eval_loss"].as_f64().unwrap();
        assert_eq!(
            loss.windows as u64,
            reference["eval_windows"].as_u64().unwrap()
        );
        assert_eq!(loss.tokens, loss.windows * 32);
        let diff = (loss.loss - theirs).abs() / theirs.abs().max(1.0);
        assert!(diff <= TOLERANCE, "{name}: loss {} vs {theirs}", loss.loss);
        eprintln!("{name}: loss {:.6} against {theirs:.6}", loss.loss);
        let first = hf::evaluate_text(&loaded, &eval_text, "eval.txt", 1, &compute).unwrap();
        assert_eq!((first.windows, first.tokens), (1, 32));
    }
}

#[test]
fn half_precision_and_base_model_checkpoints_load_as_f32() {
    let Some((_, dir)) = models() else { return };
    let gpt = hf::load_dir(&dir.join("gpt")).unwrap();
    let base = hf::load_dir(&dir.join("gpt-base")).unwrap();
    assert_eq!(base.model, gpt.model);
    assert_eq!(base.weights, gpt.weights, "names without `transformer.`");
    assert!(base.tokenizer_json.is_none());
    let round = |set: &TensorSet, f: fn(f32) -> f32| {
        let mut out = set.clone();
        for (_, t) in out.iter_mut() {
            t.data.iter_mut().for_each(|v| *v = f(*v));
        }
        out
    };
    let f16 = hf::load_dir(&dir.join("gpt-f16")).unwrap();
    assert_eq!(
        f16.weights,
        round(&gpt.weights, |v| half::f16::from_f32(v).to_f32())
    );
    let llama = hf::load_dir(&dir.join("llama")).unwrap();
    let bf16 = hf::load_dir(&dir.join("llama-bf16")).unwrap();
    assert_eq!(
        bf16.weights,
        round(&llama.weights, |v| half::bf16::from_f32(v).to_f32())
    );
}

/// A tiny engine-initialised model of `kind` with `vocab` tokens.
fn tiny(kind: ModelKind, vocab: usize) -> Model {
    let c = TransformerConfig::preset("tiny", vocab).unwrap();
    let c = if kind == ModelKind::Llama {
        TransformerConfig {
            n_head: 4,
            n_kv_head: 2,
            ..c
        }
    } else {
        c
    };
    Model::new(kind, Some(c)).unwrap()
}

/// Writes {"tokens": rows, "text": text} for check_export.py.
fn tokens_file(path: &Path, rows: &[Vec<u32>], text: &str) {
    let spec = serde_json::json!({"tokens": rows, "text": text});
    std::fs::write(path, spec.to_string()).unwrap();
}

#[test]
fn exports_load_in_transformers_with_the_same_logits_and_token_ids() {
    let Some((python, dir)) = models() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    // (name, model, weights, tokenizer.json, vocabulary, text)
    let mut cases: Vec<(String, Model, TensorSet, Vec<u8>, Vocab, String)> = Vec::new();
    for name in ["gpt", "llama"] {
        let loaded = hf::load_dir(&dir.join(name)).unwrap();
        let vocab = loaded.vocab().unwrap().unwrap();
        let json = loaded.tokenizer_json.clone().unwrap();
        let text = "Citizens, hear me: we proceed.".to_string();
        cases.push((name.into(), loaded.model, loaded.weights, json, vocab, text));
    }
    let corpus = "First Citizen:\nBefore we proceed any further, hear me speak.\n";
    let chars = Vocab::build(Tokenizer::Char, corpus.as_bytes(), "corpus").unwrap();
    let model = tiny(ModelKind::Gpt, chars.size());
    let text = "Before we speak, hear me:\nproceed further.".to_string();
    cases.push((
        "char-gpt".into(),
        model,
        model.init(3),
        chars.to_hf_json().unwrap(),
        chars,
        text,
    ));
    let bytes = Vocab::build(Tokenizer::Byte, b"", "bytes").unwrap();
    let model = tiny(ModelKind::Llama, 256);
    let text = "Été, naïve café: ünïcödé\n\t~ 100% ✓".to_string();
    cases.push((
        "byte-llama".into(),
        model,
        model.init(4),
        bytes.to_hf_json().unwrap(),
        bytes,
        text,
    ));

    let mut args: Vec<PathBuf> = vec![script("check_export.py")];
    let mut expected = Vec::new();
    for (name, model, weights, json, vocab, text) in &cases {
        let export = out.path().join(name);
        hf::save_dir(&export, *model, weights, Some(json.as_slice())).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&export)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["config.json", "model.safetensors", "tokenizer.json"]
        );
        let again = hf::load_dir(&export).unwrap();
        assert_eq!((again.model, &again.weights), (*model, weights), "{name}");
        let context = model.transformer().unwrap().context;
        let vocab_size = model.transformer().unwrap().vocab as u32;
        let rows: Vec<Vec<u32>> = (0..2)
            .map(|b| {
                (0..context as u32)
                    .map(|t| (11 * b + 7 * t + 5) % vocab_size)
                    .collect()
            })
            .collect();
        let tokens = out.path().join(format!("{name}.json"));
        tokens_file(&tokens, &rows, text);
        args.extend([export, tokens]);
        let text_ids = vocab.encode(text).unwrap();
        assert_eq!(&vocab.decode(&text_ids), text, "{name}: our decoding");
        expected.push((
            name.clone(),
            our_logits(*model, weights, &rows),
            text_ids,
            text.clone(),
        ));
    }
    let arg_refs: Vec<&Path> = args.iter().map(PathBuf::as_path).collect();
    let stdout = run_script(python, &arg_refs);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{stdout}");
    for (line, (name, logits, text_ids, text)) in lines.iter().zip(&expected) {
        let report: Value = serde_json::from_str(line).unwrap();
        let architecture = if name.contains("gpt") {
            "GPT2LMHeadModel"
        } else {
            "LlamaForCausalLM"
        };
        assert_eq!(report["architecture"], architecture, "{name}");
        for (what, keys) in report["loading_info"].as_object().unwrap() {
            assert!(
                keys.as_array().unwrap().is_empty(),
                "{name}: transformers reports {what} {keys}"
            );
        }
        let worst = max_relative_difference(name, logits, &floats(&report["logits"]));
        eprintln!("{name}: exported, max relative logit difference {worst:.3e}");
        assert_eq!(&ids(&report["text_ids"]), text_ids, "{name}: token ids");
        assert_eq!(report["decoded"].as_str().unwrap(), text, "{name}: decoded");
    }
}

/// One tensor of a safetensors file, owned.
struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// Copies the model directory `src` to `dst`, passing its tensors through
/// `edit` and its config.json through `config`.
fn altered(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut Vec<Entry>),
    config: impl FnOnce(&mut Value),
) {
    std::fs::create_dir_all(dst).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut entries: Vec<Entry> = file
        .iter()
        .map(|(name, v)| Entry {
            name: name.to_string(),
            dtype: v.dtype(),
            shape: v.shape().to_vec(),
            data: v.data().to_vec(),
        })
        .collect();
    edit(&mut entries);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = entries
        .iter()
        .map(|e| {
            let view =
                safetensors::tensor::TensorView::new(e.dtype, e.shape.clone(), &e.data).unwrap();
            (e.name.clone(), view)
        })
        .collect();
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(dst.join("model.safetensors"), out).unwrap();
    let mut json = read_json(&src.join("config.json"));
    config(&mut json);
    std::fs::write(dst.join("config.json"), json.to_string()).unwrap();
}

fn f32_entry(name: &str, shape: Vec<usize>, value: f32) -> Entry {
    let n: usize = shape.iter().product();
    Entry {
        name: name.into(),
        dtype: Dtype::F32,
        shape,
        data: value.to_le_bytes().repeat(n),
    }
}

fn refusal(dir: &Path) -> String {
    hf::load_dir(dir).unwrap_err().to_string()
}

#[test]
fn checkpoints_that_disagree_with_their_config_are_refused_naming_the_tensor() {
    let Some((_, dir)) = models() else { return };
    let (gpt, llama) = (dir.join("gpt"), dir.join("llama"));
    let tmp = tempfile::tempdir().unwrap();
    let case = |name: &str| tmp.path().join(name);

    altered(&gpt, &case("wider"), |_| {}, |c| c["n_embd"] = 48.into());
    let e = refusal(&case("wider"));
    assert!(
        e.contains("the tensors disagree with config.json")
            && e.contains(
                "`transformer.h.0.attn.c_attn.weight` is [32, 96], config.json implies [48, 144]"
            ),
        "{e}"
    );

    let dropped = "transformer.h.1.mlp.c_fc.bias";
    altered(
        &gpt,
        &case("dropped"),
        |t| t.retain(|e| e.name != dropped),
        |_| {},
    );
    let e = refusal(&case("dropped"));
    assert!(
        e.contains(&format!(
            "`{dropped}` is missing, config.json implies [128]"
        )),
        "{e}"
    );

    altered(
        &llama,
        &case("extra"),
        |t| {
            t.push(f32_entry(
                "model.layers.0.self_attn.q_proj.bias",
                vec![32],
                0.0,
            ))
        },
        |_| {},
    );
    let e = refusal(&case("extra"));
    assert!(
        e.contains(
            "`model.layers.0.self_attn.q_proj.bias` [32] is not a tensor of this llama model"
        ),
        "{e}"
    );

    altered(
        &llama,
        &case("gqa"),
        |_| {},
        |c| c["num_key_value_heads"] = 4.into(),
    );
    let e = refusal(&case("gqa"));
    assert!(
        e.contains(
            "`model.layers.0.self_attn.k_proj.weight` is [16, 32], config.json implies [32, 32]"
        ),
        "{e}"
    );

    // Older GPT-2 checkpoints store the causal mask; it is skipped.
    altered(
        &gpt,
        &case("buffers"),
        |t| {
            t.push(f32_entry(
                "transformer.h.0.attn.bias",
                vec![1, 1, 32, 32],
                1.0,
            ));
            t.push(f32_entry("transformer.h.1.attn.masked_bias", vec![], -1e4));
        },
        |_| {},
    );
    let loaded = hf::load_dir(&case("buffers")).unwrap();
    assert_eq!(loaded.weights, hf::load_dir(&gpt).unwrap().weights);

    // A tied head may be stored; an untied one cannot be loaded into gpt.
    let wte = |t: &Vec<Entry>| {
        let e = t
            .iter()
            .find(|e| e.name == "transformer.wte.weight")
            .unwrap();
        (e.shape.clone(), e.data.clone())
    };
    altered(
        &gpt,
        &case("tied"),
        |t| {
            let (shape, data) = wte(t);
            t.push(Entry {
                name: "lm_head.weight".into(),
                dtype: Dtype::F32,
                shape,
                data,
            });
        },
        |_| {},
    );
    assert!(hf::load_dir(&case("tied")).is_ok());
    altered(
        &gpt,
        &case("untied"),
        |t| {
            let (shape, mut data) = wte(t);
            data[0] ^= 1;
            t.push(Entry {
                name: "lm_head.weight".into(),
                dtype: Dtype::F32,
                shape,
                data,
            });
        },
        |_| {},
    );
    let e = refusal(&case("untied"));
    assert!(e.contains("`lm_head.weight` differs"), "{e}");

    altered(
        &llama,
        &case("nan"),
        |t| {
            let e = t
                .iter_mut()
                .find(|e| e.name == "model.norm.weight")
                .unwrap();
            e.data[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        },
        |_| {},
    );
    let e = refusal(&case("nan"));
    assert!(
        e.contains("`model.norm.weight` holds NaN at element 2"),
        "{e}"
    );

    altered(
        &llama,
        &case("theta"),
        |_| {},
        |c| {
            c["rope_parameters"]["rope_theta"] = 500000.0.into();
        },
    );
    let e = refusal(&case("theta"));
    assert!(e.contains("config.json") && e.contains("500000.0"), "{e}");

    std::fs::create_dir_all(case("sharded")).unwrap();
    std::fs::copy(gpt.join("config.json"), case("sharded/config.json")).unwrap();
    std::fs::write(case("sharded/model.safetensors.index.json"), "{}").unwrap();
    let e = refusal(&case("sharded"));
    assert!(e.contains("sharded") && e.contains("max_shard_size"), "{e}");
    let e = refusal(&case("nowhere"));
    assert!(e.contains("no such directory"), "{e}");
}

#[test]
fn a_tokenizer_larger_than_the_model_is_refused() {
    let Some((_, dir)) = models() else { return };
    let loaded: HfModel = hf::load_dir(&dir.join("gpt")).unwrap();
    let json = loaded.tokenizer_json.clone().unwrap();
    let mut tokenizer = tokenizers::Tokenizer::from_bytes(&json).unwrap();
    let extra: Vec<_> = (0..10)
        .map(|i| tokenizers::AddedToken::from(format!("<extra_{i}>"), true))
        .collect();
    assert_eq!(tokenizer.add_special_tokens(extra).unwrap(), 10);
    let big_json = tokenizer.to_string(false).unwrap().into_bytes();
    let big = Vocab::from_hf_json(&big_json).unwrap();
    let small = loaded.vocab().unwrap().unwrap();
    assert_eq!(big.size(), small.size() + 10);
    assert!(
        big.size() > 96,
        "the trained tokenizer has {} tokens",
        small.size()
    );

    let config = loaded.model.transformer().unwrap();
    let e = hf::check_tokenizer_fits(&big, &config)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("{} tokens", big.size())) && e.contains("is 96"),
        "{e}"
    );
    let out = tempfile::tempdir().unwrap();
    let e = hf::save_dir(out.path(), loaded.model, &loaded.weights, Some(&big_json))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("{} tokens", big.size())), "{e}");
    let with_big = HfModel {
        tokenizer_json: Some(big_json),
        ..loaded
    };
    assert!(with_big.vocab().is_err());
}

#[test]
fn exports_refuse_what_is_not_the_model() {
    let model = tiny(ModelKind::Gpt, 20);
    let out = tempfile::tempdir().unwrap();
    let mut weights = model.init(1);
    let e = hf::save_dir(out.path(), Model::Mlp, &Model::Mlp.init(0), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a transformer"), "{e}");
    let other = tiny(ModelKind::Gpt, 21).init(1);
    assert!(hf::save_dir(out.path(), model, &other, None).is_err());
    weights.get_mut("transformer.ln_f.bias").unwrap().data[0] = f32::INFINITY;
    assert!(hf::save_dir(out.path(), model, &weights, None).is_err());
    let e = hf::save_dir(out.path(), model, &model.init(1), Some(b"{not json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());
    let mut set = TensorSet::new();
    set.insert("x", Tensor::zeros(vec![1]));
    assert!(hf::save_dir(out.path(), model, &set, None).is_err());
}
