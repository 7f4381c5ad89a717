//! Hugging Face checkpoints in and out.
//!
//! A `transformers` model directory — `config.json`, `model.safetensors`
//! and, when there is one, `tokenizer.json` — is read by [`load_dir`] into
//! a [`Model`] and its weights, and written by [`save_dir`] so that
//! `AutoModelForCausalLM.from_pretrained(dir)` builds the same network with
//! the same numbers:
//!
//! - `model_type` `gpt2` is `gpt` (`GPT2LMHeadModel`; a `GPT2Model`
//!   checkpoint, whose names lack the `transformer.` prefix, loads too);
//! - `model_type` `llama` is `llama` (`LlamaForCausalLM`).
//!
//! Parameter names and shapes are Hugging Face's already
//! ([`crate::model::transformer`]), so no tensor is renamed or transposed.
//!
//! # What the engine supports (a deliberate v1 limit)
//!
//! The engine computes one variant of each layout. A `config.json` asking
//! for anything else is refused with an error naming the field, its value
//! and what the engine supports:
//!
//! | `gpt2` field | supported |
//! |---|---|
//! | `n_embd`, `n_layer`, `n_head`, `n_positions`, `vocab_size` | any the engine holds ([`TransformerConfig::check`]) |
//! | `n_inner` | any; `null` or absent is 4·`n_embd` |
//! | `activation_function` | `gelu_new` or `gelu_pytorch_tanh` (GELU's tanh form) |
//! | `layer_norm_epsilon` | 1e-5 (within 1e-9) |
//! | `scale_attn_weights` / `scale_attn_by_inverse_layer_idx` | `true` / `false` |
//! | `add_cross_attention` | `false` |
//! | `tie_word_embeddings` | `true` (the head is the token embedding) |
//!
//! | `llama` field | supported |
//! |---|---|
//! | `hidden_size`, `intermediate_size`, `num_hidden_layers`, `num_attention_heads`, `max_position_embeddings`, `vocab_size` | any the engine holds |
//! | `num_key_value_heads` | any divisor of the heads; `null` or absent is `num_attention_heads` |
//! | `head_dim` | `hidden_size / num_attention_heads` (or absent) |
//! | `hidden_act` | `silu` |
//! | `rms_norm_eps` | 1e-5 (within 1e-9) |
//! | `rope_theta` (top level or in `rope_parameters`) | 10000, `rope_type` `default` |
//! | `rope_scaling` | `null` or absent |
//! | `attention_bias`, `mlp_bias` | `false` or absent |
//! | `pretraining_tp` | 1 or absent |
//! | `tie_word_embeddings` | `false` (`lm_head.weight` is its own tensor) |
//!
//! The context is `n_positions` / `max_position_embeddings`. Dropout
//! probabilities are ignored: evaluation has none, and the engine trains
//! without.
//!
//! # Checkpoints
//!
//! [`load_dir`] reads one `model.safetensors` of F32, F16 or BF16 tensors
//! (widened to f32) that must be exactly the layout `config.json` implies:
//! a missing tensor, an extra one or a wrong shape is refused, naming the
//! tensor, its shape and the shape `config.json` implies; so are NaN and
//! infinities. GPT-2's attention-mask buffers (`*.attn.bias`,
//! `*.attn.masked_bias`) are skipped, and so is a `lm_head.weight` equal to
//! `transformer.wte.weight`. Sharded checkpoints
//! (`model.safetensors.index.json`) and PyTorch pickles
//! (`pytorch_model.bin`) are refused, saying how to re-save the model as
//! one safetensors file.
//!
//! [`save_dir`] writes float32 `model.safetensors` (the model's tensors and
//! nothing else: `gpt` has no `lm_head.weight`, as `save_pretrained`
//! writes it), a `config.json` spelling out every number above, and
//! `tokenizer.json` when one is given, each file atomically.
//!
//! [`evaluate_text`] is `funetun eval`: the mean next-token loss of a
//! model directory on a text.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use funetun_core::model::ConfigError;
use funetun_core::{Tensor, TensorSet};
use safetensors::{Dtype, SafeTensors};
use serde_json::{Map, Value, json};

use crate::data::Vocab;
use crate::engine::Compute;
use crate::error::{Error, Result};
use crate::lora::Lora;
use crate::model::{Architecture as _, Model, ModelKind, TransformerConfig};
use crate::train::{StreamLoss, stream_loss};

/// The model's numbers.
pub const CONFIG_FILE: &str = "config.json";
/// The weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The tokenizer, when the directory has one.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The index of a sharded checkpoint (refused).
pub const SHARD_INDEX_FILE: &str = "model.safetensors.index.json";

/// The norms' epsilon the engine computes with
/// ([`crate::engine::kernels::NORM_EPS`]), as `config.json` writes it.
pub const NORM_EPS: f64 = 1e-5;
/// How far a `config.json` epsilon may be from [`NORM_EPS`].
pub const NORM_EPS_TOLERANCE: f64 = 1e-9;
/// RoPE's base θ the engine computes with ([`crate::engine::ROPE_THETA`]).
pub const ROPE_THETA: f64 = 10_000.0;

/// A `config.json` read as the engine's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HfConfig {
    /// `gpt` for `gpt2`, `llama` for `llama`.
    pub kind: ModelKind,
    /// The transformer's numbers.
    pub transformer: TransformerConfig,
}

/// A model directory read by [`load_dir`].
#[derive(Clone, Debug)]
pub struct HfModel {
    /// The network `config.json` describes.
    pub model: Model,
    /// Its weights, in the model's layout, as f32.
    pub weights: TensorSet,
    /// The bytes of `tokenizer.json`, when the directory has one.
    pub tokenizer_json: Option<Vec<u8>>,
}

impl HfModel {
    /// The directory's tokenizer, parsed and checked to fit the model's
    /// vocabulary; `None` when it has no `tokenizer.json`.
    pub fn vocab(&self) -> Result<Option<Vocab>> {
        let Some(json) = &self.tokenizer_json else {
            return Ok(None);
        };
        let config = HfConfig::of_model(self.model)?;
        let vocab = Vocab::from_hf_json(json)?;
        check_tokenizer_fits(&vocab, &config.transformer)?;
        Ok(Some(vocab))
    }
}

/// Refuses a tokenizer with more tokens than the model's vocabulary
/// (its ids would fall outside the embedding), naming both numbers.
pub fn check_tokenizer_fits(vocab: &Vocab, config: &TransformerConfig) -> Result<()> {
    if vocab.size() > config.vocab {
        return Err(Error::invalid(
            "tokenizer",
            format!(
                "the {} tokenizer has {} tokens but the model's vocabulary (`vocab_size`) is {}; \
                 use the tokenizer the model was trained with, or a model with a vocabulary of at least {}",
                vocab.describe(),
                vocab.size(),
                config.vocab,
                vocab.size()
            ),
        ));
    }
    Ok(())
}

impl HfConfig {
    /// Reads the bytes of a `config.json`, refusing anything the engine
    /// does not compute or hold (see the module docs) with an error naming
    /// the field, its value and what is supported.
    pub fn parse(json: &[u8]) -> Result<Self> {
        let value: Value =
            serde_json::from_slice(json).map_err(|e| config_error(format!("is not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(config_error("is not a JSON object".to_string()));
        };
        let f = Fields(&map);
        let config = match f.get("model_type").and_then(Value::as_str) {
            Some("gpt2") => f.gpt2()?,
            Some("llama") => f.llama()?,
            _ => {
                return Err(f.unsupported(
                    "model_type",
                    "\"gpt2\" (GPT2LMHeadModel) and \"llama\" (LlamaForCausalLM)",
                ));
            }
        };
        config.model()?;
        Ok(config)
    }

    /// The numbers of a Funetun transformer, for [`Self::to_json`].
    pub fn of_model(model: Model) -> Result<Self> {
        let transformer = model.transformer().ok_or_else(|| {
            Error::invalid(
                "model",
                format!(
                    "{model} is not a transformer; only gpt and llama have a Hugging Face form"
                ),
            )
        })?;
        Ok(Self {
            kind: model.kind(),
            transformer,
        })
    }

    /// The model these numbers describe, checked; a number the engine
    /// cannot hold is refused under its `config.json` name.
    pub fn model(&self) -> Result<Model> {
        Model::new(self.kind, Some(self.transformer))
            .map_err(|e| config_error(self.describe_config_error(&e)))
    }

    fn describe_config_error(&self, e: &ConfigError) -> String {
        let gpt = self.kind == ModelKind::Gpt;
        let c = &self.transformer;
        let (name, value) = match e.field {
            "vocab" => ("vocab_size", c.vocab),
            "n_layer" if gpt => ("n_layer", c.n_layer),
            "n_layer" => ("num_hidden_layers", c.n_layer),
            "n_head" if gpt => ("n_head", c.n_head),
            "n_head" => ("num_attention_heads", c.n_head),
            "n_kv_head" if gpt => ("n_head", c.n_head),
            "n_kv_head" => ("num_key_value_heads", c.n_kv_head),
            "d_model" if gpt => ("n_embd", c.d_model),
            "d_model" => ("hidden_size", c.d_model),
            "d_ff" if gpt => ("n_inner", c.d_ff),
            "d_ff" => ("intermediate_size", c.d_ff),
            "context" if gpt => ("n_positions", c.context),
            "context" => ("max_position_embeddings", c.context),
            _ => return format!("describes no model the engine can hold: {e}"),
        };
        format!(
            "`{name}` is {value}, which the engine cannot hold (its `{}` {})",
            e.field, e.detail
        )
    }

    /// A `config.json` that `transformers`' `AutoModelForCausalLM` loads
    /// into the same architecture: every number, the engine's epsilon and
    /// RoPE base, float32, no dropout, and no BOS/EOS ids (the tokenizer
    /// knows its own).
    pub fn to_json(&self) -> String {
        let c = &self.transformer;
        let value = match self.kind {
            ModelKind::Llama => json!({
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "vocab_size": c.vocab,
                "hidden_size": c.d_model,
                "intermediate_size": c.d_ff,
                "num_hidden_layers": c.n_layer,
                "num_attention_heads": c.n_head,
                "num_key_value_heads": c.n_kv_head,
                "head_dim": c.head_dim(),
                "max_position_embeddings": c.context,
                "hidden_act": "silu",
                "rms_norm_eps": NORM_EPS,
                "rope_theta": ROPE_THETA,
                "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_THETA},
                "attention_bias": false,
                "mlp_bias": false,
                "attention_dropout": 0.0,
                "pretraining_tp": 1,
                "tie_word_embeddings": false,
                "bos_token_id": null,
                "eos_token_id": null,
                "torch_dtype": "float32",
                "use_cache": true,
            }),
            _ => json!({
                "architectures": ["GPT2LMHeadModel"],
                "model_type": "gpt2",
                "vocab_size": c.vocab,
                "n_embd": c.d_model,
                "n_inner": c.d_ff,
                "n_layer": c.n_layer,
                "n_head": c.n_head,
                "n_positions": c.context,
                "n_ctx": c.context,
                "activation_function": "gelu_new",
                "layer_norm_epsilon": NORM_EPS,
                "scale_attn_weights": true,
                "scale_attn_by_inverse_layer_idx": false,
                "reorder_and_upcast_attn": false,
                "add_cross_attention": false,
                "attn_pdrop": 0.0,
                "embd_pdrop": 0.0,
                "resid_pdrop": 0.0,
                "tie_word_embeddings": true,
                "bos_token_id": null,
                "eos_token_id": null,
                "torch_dtype": "float32",
                "use_cache": true,
            }),
        };
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }
}

fn config_error(detail: String) -> Error {
    Error::invalid("config.json", detail)
}

/// The fields of a `config.json`, read with `transformers`' defaults.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    /// The field's value; `None` when absent or `null`.
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn shown(&self, key: &str) -> String {
        match self.0.get(key) {
            None => "absent".to_string(),
            Some(v) => v.to_string(),
        }
    }

    /// "`key` is VALUE; the engine supports SUPPORTED".
    fn unsupported(&self, key: &str, supported: &str) -> Error {
        config_error(format!(
            "`{key}` is {}; the engine supports {supported} (a limit of Funetun's \
             Hugging Face import, see docs/huggingface.md)",
            self.shown(key)
        ))
    }

    /// A required positive integer.
    fn size(&self, key: &str) -> Result<usize> {
        self.size_or(key, None)
    }

    /// A positive integer, `default` when absent or `null`.
    fn size_or(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match self.get(key) {
            None => default.ok_or_else(|| {
                config_error(format!(
                    "`{key}` is {}; it must be a positive integer",
                    self.shown(key)
                ))
            }),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    config_error(format!("`{key}` is {v}; it must be a positive integer"))
                }),
        }
    }

    /// Requires the field, or its default when absent, to satisfy `ok`.
    fn require<T>(
        &self,
        key: &str,
        read: impl Fn(&Value) -> Option<T>,
        default: Option<T>,
        ok: impl Fn(&T) -> bool,
        supported: &str,
    ) -> Result<()> {
        let value = match self.get(key) {
            None => default,
            Some(v) => read(v),
        };
        match value {
            Some(v) if ok(&v) => Ok(()),
            _ => Err(self.unsupported(key, supported)),
        }
    }

    fn require_bool(&self, key: &str, default: bool, want: bool) -> Result<()> {
        self.require(
            key,
            Value::as_bool,
            Some(default),
            |&b| b == want,
            &format!("`{want}` only"),
        )
    }

    fn require_eps(&self, key: &str, default: Option<f64>) -> Result<()> {
        self.require(
            key,
            Value::as_f64,
            default,
            |&e| (e - NORM_EPS).abs() <= NORM_EPS_TOLERANCE,
            "1e-5 only (the engine's norm epsilon)",
        )
    }

    fn gpt2(&self) -> Result<HfConfig> {
        let d_model = self.size("n_embd")?;
        let n_head = self.size("n_head")?;
        let transformer = TransformerConfig {
            vocab: self.size("vocab_size")?,
            n_layer: self.size("n_layer")?,
            n_head,
            n_kv_head: n_head,
            d_model,
            d_ff: self.size_or("n_inner", Some(4 * d_model))?,
            context: self.size("n_positions")?,
        };
        self.require(
            "activation_function",
            |v| v.as_str().map(str::to_string),
            Some("gelu_new".to_string()),
            |a| a == "gelu_new" || a == "gelu_pytorch_tanh",
            "\"gelu_new\" or \"gelu_pytorch_tanh\" (GELU's tanh form)",
        )?;
        self.require_eps("layer_norm_epsilon", Some(NORM_EPS))?;
        self.require_bool("scale_attn_weights", true, true)?;
        self.require_bool("scale_attn_by_inverse_layer_idx", false, false)?;
        self.require_bool("add_cross_attention", false, false)?;
        self.require_bool("tie_word_embeddings", true, true)?;
        Ok(HfConfig {
            kind: ModelKind::Gpt,
            transformer,
        })
    }

    fn llama(&self) -> Result<HfConfig> {
        let d_model = self.size("hidden_size")?;
        let n_head = self.size("num_attention_heads")?;
        let transformer = TransformerConfig {
            vocab: self.size("vocab_size")?,
            n_layer: self.size("num_hidden_layers")?,
            n_head,
            n_kv_head: self.size_or("num_key_value_heads", Some(n_head))?,
            d_model,
            d_ff: self.size("intermediate_size")?,
            context: self.size("max_position_embeddings")?,
        };
        let head_dim = d_model / n_head;
        self.require(
            "head_dim",
            Value::as_u64,
            Some(head_dim as u64),
            |&h| h == head_dim as u64 && d_model.is_multiple_of(n_head),
            &format!("hidden_size / num_attention_heads = {d_model} / {n_head} only"),
        )?;
        self.require(
            "hidden_act",
            |v| v.as_str().map(str::to_string),
            Some("silu".to_string()),
            |a| a == "silu",
            "\"silu\" only (SwiGLU)",
        )?;
        // transformers' LlamaConfig defaults to 1e-6, which the engine does not compute.
        self.require_eps("rms_norm_eps", Some(1e-6))?;
        let theta_ok = |t: &f64| (t - ROPE_THETA).abs() <= 1e-6 * ROPE_THETA;
        let theta = "10000 only (the engine's RoPE base)";
        self.require(
            "rope_theta",
            Value::as_f64,
            Some(ROPE_THETA),
            theta_ok,
            theta,
        )?;
        if self.get("rope_scaling").is_some() {
            return Err(self.unsupported("rope_scaling", "null only (plain RoPE)"));
        }
        if let Some(p) = self.get("rope_parameters") {
            let Some(p) = p.as_object() else {
                return Err(self.unsupported("rope_parameters", "{\"rope_type\": \"default\"}"));
            };
            let p = Fields(p);
            let plain = "\"default\" only (plain RoPE)";
            // Both spellings of the type's key occur in config files.
            ["rope_type", "type"]
                .into_iter()
                .try_for_each(|key| {
                    p.require(
                        key,
                        |v| v.as_str().map(str::to_string),
                        Some("default".to_string()),
                        |t| t == "default",
                        plain,
                    )
                })
                .and_then(|()| {
                    p.require(
                        "rope_theta",
                        Value::as_f64,
                        Some(ROPE_THETA),
                        theta_ok,
                        theta,
                    )
                })
                .and_then(|()| {
                    p.require(
                        "partial_rotary_factor",
                        Value::as_f64,
                        Some(1.0),
                        |&f| f == 1.0,
                        "1.0 only (every dimension rotates)",
                    )
                })
                .map_err(|e| match e {
                    Error::Invalid { detail, .. } => {
                        config_error(format!("in `rope_parameters`, {detail}"))
                    }
                    other => other,
                })?;
        }
        self.require_bool("attention_bias", false, false)?;
        self.require_bool("mlp_bias", false, false)?;
        self.require(
            "pretraining_tp",
            Value::as_u64,
            Some(1),
            |&t| t == 1,
            "1 only",
        )?;
        self.require_bool("tie_word_embeddings", false, false)?;
        Ok(HfConfig {
            kind: ModelKind::Llama,
            transformer,
        })
    }
}

/// Reads a Hugging Face model directory: `config.json` (see the module
/// docs for what it may say), `model.safetensors` in exactly the layout it
/// implies, and `tokenizer.json` when present (kept as bytes; see
/// [`HfModel::vocab`]).
pub fn load_dir(dir: &Path) -> Result<HfModel> {
    if !dir.is_dir() {
        return Err(Error::DataUnavailable(format!(
            "{}: no such directory; pass a Hugging Face model directory \
             (config.json and model.safetensors, as `save_pretrained` writes them)",
            dir.display()
        )));
    }
    let config_path = dir.join(CONFIG_FILE);
    let config_bytes = read_required(&config_path)?;
    let model = HfConfig::parse(&config_bytes)
        .and_then(|c| c.model())
        .map_err(|e| at(&config_path, e))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    if !weights_path.is_file() {
        let why = if dir.join(SHARD_INDEX_FILE).is_file() {
            "the checkpoint is sharded (model.safetensors.index.json), which is not supported yet; \
             re-save it as one file: `model.save_pretrained(dir, max_shard_size=\"1000GB\")`"
        } else if dir.join("pytorch_model.bin").is_file() {
            "the weights are a PyTorch pickle (pytorch_model.bin), which is never read; \
             re-save them as safetensors: `model.save_pretrained(dir, safe_serialization=True)`"
        } else {
            "a Hugging Face model directory holds config.json and model.safetensors \
             (`model.save_pretrained(dir)` writes both)"
        };
        return Err(Error::BadDataFile {
            path: weights_path,
            problem: format!("missing; {why}"),
        });
    }
    let bytes = read_required(&weights_path)?;
    let weights =
        weights_from_safetensors(model, &bytes).map_err(|problem| Error::BadDataFile {
            path: weights_path.clone(),
            problem,
        })?;
    let tokenizer_path = dir.join(TOKENIZER_FILE);
    let tokenizer_json = match std::fs::read(&tokenizer_path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(Error::Io {
                path: tokenizer_path,
                source,
            });
        }
    };
    Ok(HfModel {
        model,
        weights,
        tokenizer_json,
    })
}

fn read_required(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::BadDataFile {
                path: path.to_path_buf(),
                problem: "missing; a Hugging Face model directory holds config.json and \
                          model.safetensors (`model.save_pretrained(dir)` writes both)"
                    .to_string(),
            }
        } else {
            Error::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Places an error about a file's content at that file.
fn at(path: &Path, e: Error) -> Error {
    match e {
        Error::Invalid { detail, .. } => Error::BadDataFile {
            path: path.to_path_buf(),
            problem: detail,
        },
        other => other,
    }
}

/// At most this many disagreements are listed in one error.
const MAX_LISTED: usize = 8;

/// `model`'s weights from safetensors bytes, or what is wrong with them.
fn weights_from_safetensors(model: Model, bytes: &[u8]) -> std::result::Result<TensorSet, String> {
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    let expected: BTreeMap<String, Vec<usize>> = model.shapes().into_iter().collect();
    let gpt = model.kind() == ModelKind::Gpt;
    let mut names: Vec<&str> = file.names();
    names.sort_unstable();
    let mut found = TensorSet::new();
    let mut lm_head: Option<Tensor> = None;
    let mut problems = Vec::new();
    for raw in names {
        let view = file.tensor(raw).map_err(|e| format!("`{raw}`: {e}"))?;
        let name = if gpt && !raw.starts_with("transformer.") && raw != "lm_head.weight" {
            format!("transformer.{raw}")
        } else {
            raw.to_string()
        };
        if gpt && is_gpt_buffer(&name) {
            continue;
        }
        let shape = view.shape().to_vec();
        let want = if gpt && name == "lm_head.weight" {
            expected.get("transformer.wte.weight")
        } else {
            expected.get(&name)
        };
        let Some(want) = want else {
            problems.push(format!(
                "`{raw}` {shape:?} is not a tensor of this {} model",
                model.kind()
            ));
            continue;
        };
        if &shape != want {
            problems.push(format!(
                "`{raw}` is {shape:?}, config.json implies {want:?}"
            ));
            continue;
        }
        let data = to_f32(view.dtype(), view.data()).map_err(|e| format!("`{raw}` {e}"))?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "`{raw}` holds {} at element {i}; a checkpoint must be finite",
                data[i]
            ));
        }
        let tensor = Tensor { shape, data };
        if gpt && name == "lm_head.weight" {
            lm_head = Some(tensor);
        } else if found.get(&name).is_some() {
            problems.push(format!(
                "`{name}` appears twice (with and without the `transformer.` prefix)"
            ));
        } else {
            found.insert(name, tensor);
        }
    }
    for (name, shape) in &expected {
        if found.get(name).is_none() {
            problems.push(format!(
                "`{name}` is missing, config.json implies {shape:?}"
            ));
        }
    }
    if let (Some(head), Some(wte)) = (&lm_head, found.get("transformer.wte.weight"))
        && head != wte
    {
        problems.push(
            "`lm_head.weight` differs from `transformer.wte.weight`, and the gpt engine ties its \
             output head to the token embedding (tie_word_embeddings true)"
                .to_string(),
        );
    }
    if !problems.is_empty() {
        let more = problems.len().saturating_sub(MAX_LISTED);
        problems.truncate(MAX_LISTED);
        let mut listed = problems.join("; ");
        if more > 0 {
            listed.push_str(&format!("; and {more} more"));
        }
        return Err(format!(
            "the tensors disagree with config.json, which describes {model}: {listed}"
        ));
    }
    Ok(found)
}

/// GPT-2's attention-mask buffers, which older checkpoints store and the
/// engine computes: `transformer.h.N.attn.bias` and `….attn.masked_bias`.
fn is_gpt_buffer(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("transformer.h.") else {
        return false;
    };
    let Some((layer, what)) = rest.split_once('.') else {
        return false;
    };
    !layer.is_empty()
        && layer.bytes().all(|b| b.is_ascii_digit())
        && (what == "attn.bias" || what == "attn.masked_bias")
}

/// Little-endian F32, F16 or BF16 values widened to f32.
fn to_f32(dtype: Dtype, data: &[u8]) -> std::result::Result<Vec<f32>, String> {
    Ok(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(format!(
                "is {other:?}; the engine reads F32, F16 and BF16 tensors \
                 (convert with `model.to(torch.float32).save_pretrained(dir)`)"
            ));
        }
    })
}

/// Writes `model` with `weights` as a Hugging Face model directory
/// (created if needed): float32 `model.safetensors` with the model's
/// tensors only, `config.json` ([`HfConfig::to_json`]) and, when given,
/// `tokenizer.json` (which must parse and fit the model's vocabulary).
/// Each file is written to a temporary file and renamed into place; other
/// files in `dir` are left alone.
pub fn save_dir(
    dir: &Path,
    model: Model,
    weights: &TensorSet,
    tokenizer_json: Option<&[u8]>,
) -> Result<()> {
    let config = HfConfig::of_model(model)?;
    model.zeros().check_same_layout(weights)?;
    weights.check_finite()?;
    if let Some(json) = tokenizer_json {
        check_tokenizer_fits(&Vocab::from_hf_json(json)?, &config.transformer)?;
    }
    let bytes = float32_safetensors(weights.iter().map(|(name, t)| (name.to_string(), t)))?;
    write_file(dir, WEIGHTS_FILE, &bytes)?;
    write_file(dir, CONFIG_FILE, config.to_json().as_bytes())?;
    if let Some(json) = tokenizer_json {
        write_file(dir, TOKENIZER_FILE, json)?;
    }
    Ok(())
}

/// PEFT's file of a LoRA adapter's tensors.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// PEFT's file of a LoRA adapter's configuration.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// The prefix PEFT's files put before the adapters' names.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// Writes `adapters` of `lora` as a PEFT adapter directory (created if
/// needed): `adapter_model.safetensors` with PEFT's names
/// (`base_model.model.` + the adapter's name) and `adapter_config.json`
/// (`peft_type` `LORA`, `r`, `lora_alpha`, `target_modules`,
/// `fan_in_fan_out` for `gpt`'s `Conv1D`). `PeftModel.from_pretrained`
/// applies it to the job's frozen model (its `init` checkpoint).
pub fn save_adapters(dir: &Path, lora: &Lora, adapters: &TensorSet) -> Result<()> {
    lora.zeros().check_same_layout(adapters)?;
    adapters.check_finite()?;
    let config = lora.config();
    let fan_in_fan_out = matches!(lora.model(), Model::Gpt(_));
    let json = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": fan_in_fan_out,
        "target_modules": config.targets,
        "base_model_name_or_path": null,
        "inference_mode": true,
    });
    let bytes = float32_safetensors(
        adapters
            .iter()
            .map(|(name, t)| (format!("{PEFT_PREFIX}{name}"), t)),
    )?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    write_file(dir, ADAPTER_WEIGHTS_FILE, &bytes)?;
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| Error::invalid("lora", format!("adapter_config.json: {e}")))?;
    write_file(dir, ADAPTER_CONFIG_FILE, text.as_bytes())?;
    Ok(())
}

/// Reads the adapters of `lora` back from a PEFT adapter directory written
/// by [`save_adapters`] (PEFT's names, float32).
pub fn load_adapters(dir: &Path, lora: &Lora) -> Result<TensorSet> {
    let path = dir.join(ADAPTER_WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::invalid("adapters", format!("{}: {e}", path.display())))?;
    let mut out = lora.zeros();
    for (name, tensor) in out.iter_mut() {
        let key = format!("{PEFT_PREFIX}{name}");
        let view = file.tensor(&key).map_err(|_| {
            Error::invalid(
                "adapters",
                format!("{} has no tensor {key}", path.display()),
            )
        })?;
        if view.dtype() != Dtype::F32 || view.shape() != tensor.shape.as_slice() {
            return Err(Error::invalid(
                "adapters",
                format!(
                    "{key} in {} is {:?} {:?}; expected F32 {:?}",
                    path.display(),
                    view.dtype(),
                    view.shape(),
                    tensor.shape
                ),
            ));
        }
        for (v, b) in tensor.data.iter_mut().zip(view.data().chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    Ok(out)
}

/// Float32 safetensors of named tensors, with PyTorch's `format` metadata.
fn float32_safetensors<'t>(tensors: impl Iterator<Item = (String, &'t Tensor)>) -> Result<Vec<u8>> {
    let data: Vec<(String, &Tensor, Vec<u8>)> = tensors
        .map(|(name, t)| {
            let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, t, bytes)
        })
        .collect();
    let views = data
        .iter()
        .map(|(name, t, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid("weights", format!("cannot be written as safetensors: {e}")))?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::invalid("weights", format!("cannot be written as safetensors: {e}")))
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path: PathBuf = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    funetun_core::blobs::write_atomic(&tmp, &path, bytes)?;
    Ok(())
}

/// `funetun eval`: the mean next-token loss of a model directory on
/// `text` (named `name` in messages), over its first `max_windows`
/// non-overlapping context windows (all when 0), tokenized with the
/// directory's `tokenizer.json`.
pub fn evaluate_text(
    hf: &HfModel,
    text: &[u8],
    name: &str,
    max_windows: usize,
    compute: &Compute,
) -> Result<StreamLoss> {
    let vocab = hf.vocab()?.ok_or_else(|| {
        Error::invalid(
            "model directory",
            "it has no tokenizer.json, so the text cannot be cut into the model's tokens; \
             copy in the tokenizer.json the model was trained with (`tokenizer.save_pretrained(dir)`), \
             or export a model trained here on a char or byte vocabulary together with its \
             tokenizer (`Vocab::to_hf_json`)",
        )
    })?;
    let tokens = vocab.encode_corpus_checked(text, name)?;
    stream_loss(
        hf.model,
        &hf.weights.to_flat(),
        &tokens,
        max_windows,
        compute,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2_config() -> Value {
        json!({
            "model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2,
            "n_positions": 16, "vocab_size": 50, "n_inner": null,
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        })
    }

    fn llama_config() -> Value {
        json!({
            "model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 16, "vocab_size": 50, "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "hidden_act": "silu", "tie_word_embeddings": false,
        })
    }

    fn parse(v: &Value) -> Result<HfConfig> {
        HfConfig::parse(v.to_string().as_bytes())
    }

    fn refusal(mut v: Value, key: &str, value: Value) -> String {
        v[key] = value;
        parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn engine_constants_are_the_ones_written() {
        assert!((f64::from(crate::engine::kernels::NORM_EPS) - NORM_EPS).abs() < 1e-12);
        assert_eq!(f64::from(crate::engine::ROPE_THETA), ROPE_THETA);
    }

    #[test]
    fn configs_map_to_the_engines_numbers_and_back() {
        let g = parse(&gpt2_config()).unwrap();
        assert_eq!(g.kind, ModelKind::Gpt);
        assert_eq!(
            g.transformer,
            TransformerConfig {
                vocab: 50,
                n_layer: 2,
                n_head: 2,
                n_kv_head: 2,
                d_model: 32,
                d_ff: 128,
                context: 16
            }
        );
        let l = parse(&llama_config()).unwrap();
        assert_eq!(
            (l.kind, l.transformer.n_kv_head, l.transformer.d_ff),
            (ModelKind::Llama, 2, 64)
        );
        for c in [g, l] {
            assert_eq!(HfConfig::parse(c.to_json().as_bytes()).unwrap(), c);
            assert_eq!(HfConfig::of_model(c.model().unwrap()).unwrap(), c);
        }
        let mut v = llama_config();
        v.as_object_mut().unwrap().remove("num_key_value_heads");
        v["rope_theta"] = json!(10000);
        assert_eq!(parse(&v).unwrap().transformer.n_kv_head, 4);
    }

    #[test]
    fn unsupported_values_are_refused_naming_field_value_and_support() {
        let e = refusal(gpt2_config(), "activation_function", json!("relu"));
        assert!(
            e.contains("`activation_function` is \"relu\"") && e.contains("gelu_new"),
            "{e}"
        );
        let e = refusal(gpt2_config(), "layer_norm_epsilon", json!(1e-6));
        assert!(
            e.contains("`layer_norm_epsilon` is 1e-6") && e.contains("1e-5"),
            "{e}"
        );
        assert!(
            parse(&{
                let mut v = gpt2_config();
                v["layer_norm_epsilon"] = json!(1.0000000001e-5);
                v
            })
            .is_ok()
        );
        let e = refusal(gpt2_config(), "tie_word_embeddings", json!(false));
        assert!(e.contains("`tie_word_embeddings` is false"), "{e}");
        let e = refusal(gpt2_config(), "model_type", json!("mistral"));
        assert!(e.contains("\"mistral\"") && e.contains("llama"), "{e}");
        let e = refusal(gpt2_config(), "n_embd", json!(33));
        assert!(e.contains("`n_embd` is 33"), "{e}");
        let e = refusal(gpt2_config(), "n_layer", json!("2"));
        assert!(e.contains("`n_layer` is \"2\""), "{e}");
        let e = refusal(llama_config(), "rms_norm_eps", json!(1e-6));
        assert!(e.contains("`rms_norm_eps` is 1e-6"), "{e}");
        let mut v = llama_config();
        v.as_object_mut().unwrap().remove("rms_norm_eps");
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("`rms_norm_eps` is absent"), "{e}");
        let e = refusal(llama_config(), "rope_theta", json!(500000.0));
        assert!(
            e.contains("`rope_theta` is 500000.0") && e.contains("10000"),
            "{e}"
        );
        let e = refusal(
            llama_config(),
            "rope_parameters",
            json!({"rope_type": "llama3", "rope_theta": 10000.0}),
        );
        assert!(
            e.contains("rope_parameters") && e.contains("\"llama3\""),
            "{e}"
        );
        let e = refusal(
            llama_config(),
            "rope_scaling",
            json!({"type": "linear", "factor": 2.0}),
        );
        assert!(e.contains("`rope_scaling`"), "{e}");
        for (key, value) in [
            ("hidden_act", json!("gelu")),
            ("attention_bias", json!(true)),
            ("mlp_bias", json!(true)),
            ("tie_word_embeddings", json!(true)),
            ("head_dim", json!(16)),
            ("num_key_value_heads", json!(3)),
            ("max_position_embeddings", json!(1 << 20)),
        ] {
            let e = refusal(llama_config(), key, value.clone());
            assert!(e.contains(&format!("`{key}` is {value}")), "{key}: {e}");
        }
        assert!(HfConfig::parse(b"[1]").is_err() && HfConfig::parse(b"{").is_err());
    }

    #[test]
    fn gpt_buffers_are_recognised_exactly() {
        assert!(is_gpt_buffer("transformer.h.0.attn.bias"));
        assert!(is_gpt_buffer("transformer.h.11.attn.masked_bias"));
        assert!(!is_gpt_buffer("transformer.h.0.attn.c_attn.bias"));
        assert!(!is_gpt_buffer("transformer.h..attn.bias"));
        assert!(!is_gpt_buffer("transformer.wte.weight"));
    }

    #[test]
    fn half_precision_widens_exactly() {
        let f16 = half::f16::from_f32(0.1).to_le_bytes();
        let bf16 = half::bf16::from_f32(-2.5).to_le_bytes();
        assert_eq!(
            to_f32(Dtype::F16, &f16).unwrap(),
            [half::f16::from_f32(0.1).to_f32()]
        );
        assert_eq!(to_f32(Dtype::BF16, &bf16).unwrap(), [-2.5]);
        assert!(to_f32(Dtype::I64, &[0; 8]).unwrap_err().contains("I64"));
    }
}
