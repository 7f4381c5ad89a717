//! A model as the protocol names it: a [`ModelKind`] word and, for the
//! transformers, the numbers that shape them.
//!
//! ```
//! use funetun_core::model::{Model, TransformerConfig};
//! use funetun_core::ModelKind;
//!
//! let baby = TransformerConfig::preset("baby", 65).unwrap();
//! assert_eq!((baby.n_layer, baby.d_model, baby.context), (4, 128, 64));
//! let model = Model::new(ModelKind::Gpt, Some(baby)).unwrap();
//! assert_eq!(model.kind(), ModelKind::Gpt);
//! assert!(Model::new(ModelKind::Gpt, None).is_err());
//! ```
//!
//! The layouts, kernels and initialisation live in `funetun_ml`; this
//! module only checks that the numbers describe a model that can exist.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::protocol::ModelKind;

/// Largest vocabulary a transformer may have.
pub const MAX_VOCAB: usize = 1 << 18;
/// Largest context window, in tokens.
pub const MAX_CONTEXT: usize = 1 << 14;
/// Largest width (`d_model`, `d_ff`).
pub const MAX_WIDTH: usize = 1 << 15;
/// Largest number of layers.
pub const MAX_LAYERS: usize = 256;
/// Largest number of parameters of any model a job may name.
pub const MAX_PARAMS: usize = 4_000_000_000;

/// The numbers of a decoder-only transformer, in Hugging Face's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Tokens the embedding knows (at least the tokenizer's vocabulary).
    pub vocab: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Query heads per block.
    pub n_head: usize,
    /// Key/value heads per block (grouped-query attention when below
    /// `n_head`; `gpt` needs it equal).
    pub n_kv_head: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Hidden width of the feed-forward block.
    pub d_ff: usize,
    /// Longest sequence, in tokens.
    pub context: usize,
}

/// Named configurations, usable by `train`, `bench train`, the demo
/// preset and job specs (`[transformer] config = "baby"`).
pub const PRESETS: &[&str] = &["baby", "tiny", "llama-100m"];

/// Numbers that cannot make a model, naming the field and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {detail}")]
pub struct ConfigError {
    /// The offending number's name, e.g. `d_model`.
    pub field: &'static str,
    /// What is wrong and what would be right.
    pub detail: String,
}

fn bad(field: &'static str, detail: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        detail: detail.into(),
    }
}

impl TransformerConfig {
    /// A named configuration for a tokenizer of `vocab` tokens:
    /// - `baby`: nanoGPT's CPU configuration for character-level
    ///   tiny-shakespeare (4 layers, 4 heads, 128 wide, feed-forward 512,
    ///   context 64);
    /// - `tiny`: 2 layers, 2 heads, 32 wide, context 32, for tests;
    /// - `llama-100m`: 12 layers, 12 query and 4 key/value heads, 768
    ///   wide, feed-forward 2048, context 256 (about 100M parameters at a
    ///   32,000-token vocabulary).
    pub fn preset(name: &str, vocab: usize) -> Result<Self, ConfigError> {
        let (n_layer, n_head, n_kv_head, d_model, d_ff, context) = match name {
            "baby" => (4, 4, 4, 128, 512, 64),
            "tiny" => (2, 2, 2, 32, 64, 32),
            "llama-100m" => (12, 12, 4, 768, 2048, 256),
            _ => {
                return Err(bad(
                    "config",
                    format!(
                        "`{name}` is not a named configuration; choose {}",
                        PRESETS.join(", ")
                    ),
                ));
            }
        };
        Ok(Self {
            vocab,
            n_layer,
            n_head,
            n_kv_head,
            d_model,
            d_ff,
            context,
        })
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_head.max(1)
    }

    /// Checks that the numbers make a `kind` transformer this engine can
    /// hold, naming the first field that does not.
    pub fn check(&self, kind: ModelKind) -> Result<(), ConfigError> {
        for (field, value, max) in [
            ("vocab", self.vocab, MAX_VOCAB),
            ("n_layer", self.n_layer, MAX_LAYERS),
            ("n_head", self.n_head, MAX_WIDTH),
            ("n_kv_head", self.n_kv_head, MAX_WIDTH),
            ("d_model", self.d_model, MAX_WIDTH),
            ("d_ff", self.d_ff, MAX_WIDTH),
            ("context", self.context, MAX_CONTEXT),
        ] {
            if value == 0 || value > max {
                return Err(bad(field, format!("is {value}; it must be in 1..={max}")));
            }
        }
        if !self.d_model.is_multiple_of(self.n_head) {
            return Err(bad(
                "d_model",
                format!(
                    "{} is not divisible by n_head = {}; pick a width that is a multiple of the head count",
                    self.d_model, self.n_head
                ),
            ));
        }
        if !self.n_head.is_multiple_of(self.n_kv_head) {
            return Err(bad(
                "n_kv_head",
                format!(
                    "{} does not divide n_head = {}; each key/value head serves a whole group of query heads",
                    self.n_kv_head, self.n_head
                ),
            ));
        }
        match kind {
            ModelKind::Gpt if self.n_kv_head != self.n_head => {
                return Err(bad(
                    "n_kv_head",
                    format!(
                        "{} differs from n_head = {}; the gpt layout has no grouped-query attention (use llama, or set them equal)",
                        self.n_kv_head, self.n_head
                    ),
                ));
            }
            ModelKind::Llama if !self.head_dim().is_multiple_of(2) => {
                return Err(bad(
                    "d_model",
                    format!(
                        "gives heads {} wide; rotary embeddings need an even head width",
                        self.head_dim()
                    ),
                ));
            }
            ModelKind::Mlp | ModelKind::Cnn => {
                return Err(bad(
                    "model",
                    format!("{kind} is not a transformer and takes no transformer numbers"),
                ));
            }
            _ => {}
        }
        let params = self.param_estimate();
        if params > MAX_PARAMS as u128 {
            return Err(bad(
                "d_model",
                format!("these numbers make about {params} parameters; the limit is {MAX_PARAMS}"),
            ));
        }
        Ok(())
    }

    /// An upper bound on the parameter count (both layouts), computed
    /// without overflow for any numbers.
    fn param_estimate(&self) -> u128 {
        let [v, l, d, f, c] = [
            self.vocab,
            self.n_layer,
            self.d_model,
            self.d_ff,
            self.context,
        ]
        .map(|x| x as u128);
        2 * v * d + c * d + l * (4 * d * d + 3 * d * f + 8 * d + 2 * f)
    }
}

/// A model: which network, and for transformers its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Model {
    /// 784-256-10 multilayer perceptron on 28×28 images.
    Mlp,
    /// The small convolutional network on 28×28 images.
    Cnn,
    /// GPT-2 layout: learned positions, LayerNorm, GELU, tied embeddings, biases.
    Gpt(TransformerConfig),
    /// Llama layout: RoPE, RMSNorm, SwiGLU, grouped-query attention, no biases.
    Llama(TransformerConfig),
}

impl Model {
    /// The model of `kind`, with `transformer` numbers exactly when it is a
    /// transformer; the numbers are checked.
    pub fn new(
        kind: ModelKind,
        transformer: Option<TransformerConfig>,
    ) -> Result<Self, ConfigError> {
        match (kind, transformer) {
            (ModelKind::Mlp, None) => Ok(Self::Mlp),
            (ModelKind::Cnn, None) => Ok(Self::Cnn),
            (ModelKind::Gpt | ModelKind::Llama, Some(c)) => {
                c.check(kind)?;
                Ok(if kind == ModelKind::Gpt {
                    Self::Gpt(c)
                } else {
                    Self::Llama(c)
                })
            }
            (ModelKind::Gpt | ModelKind::Llama, None) => Err(bad(
                "transformer",
                format!(
                    "a {kind} model needs its numbers: a [transformer] table, e.g. config = \"baby\""
                ),
            )),
            (_, Some(_)) => Err(bad(
                "transformer",
                format!("{kind} is not a transformer; remove the [transformer] table"),
            )),
        }
    }

    /// The model's word.
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Mlp => ModelKind::Mlp,
            Self::Cnn => ModelKind::Cnn,
            Self::Gpt(_) => ModelKind::Gpt,
            Self::Llama(_) => ModelKind::Llama,
        }
    }

    /// The transformer numbers, for `gpt` and `llama`.
    pub fn transformer(&self) -> Option<TransformerConfig> {
        match self {
            Self::Gpt(c) | Self::Llama(c) => Some(*c),
            Self::Mlp | Self::Cnn => None,
        }
    }

    /// Whether it models text (a transformer) rather than images.
    pub fn is_text(&self) -> bool {
        self.transformer().is_some()
    }
}

impl From<ModelKind> for Option<Model> {
    /// The image models need no numbers.
    fn from(kind: ModelKind) -> Self {
        Model::new(kind, None).ok()
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transformer() {
            None => f.pad(self.kind().as_str()),
            Some(c) => write!(
                f,
                "{} ({} layers, {} heads{}, {} wide, ff {}, context {}, vocab {})",
                self.kind(),
                c.n_layer,
                c.n_head,
                if c.n_kv_head == c.n_head {
                    String::new()
                } else {
                    format!(" / {} kv", c.n_kv_head)
                },
                c.d_model,
                c.d_ff,
                c.context,
                c.vocab
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_numbers_name_their_field() {
        let baby = TransformerConfig::preset("baby", 65).unwrap();
        let cases = [
            (
                TransformerConfig {
                    d_model: 130,
                    ..baby
                },
                ModelKind::Gpt,
                "d_model",
            ),
            (
                TransformerConfig {
                    n_kv_head: 3,
                    ..baby
                },
                ModelKind::Llama,
                "n_kv_head",
            ),
            (
                TransformerConfig {
                    n_kv_head: 2,
                    ..baby
                },
                ModelKind::Gpt,
                "n_kv_head",
            ),
            (
                TransformerConfig { vocab: 0, ..baby },
                ModelKind::Gpt,
                "vocab",
            ),
            (
                TransformerConfig {
                    vocab: MAX_VOCAB + 1,
                    ..baby
                },
                ModelKind::Gpt,
                "vocab",
            ),
            (
                TransformerConfig { context: 0, ..baby },
                ModelKind::Llama,
                "context",
            ),
            (
                TransformerConfig {
                    n_head: 8,
                    n_kv_head: 8,
                    d_model: 8 * 3,
                    ..baby
                },
                ModelKind::Llama,
                "d_model",
            ),
        ];
        for (config, kind, field) in cases {
            let e = Model::new(kind, Some(config)).unwrap_err();
            assert_eq!(e.field, field, "{config:?}: {e}");
        }
        assert!(
            Model::new(
                ModelKind::Llama,
                Some(TransformerConfig {
                    n_kv_head: 2,
                    ..baby
                })
            )
            .is_ok()
        );
        assert_eq!(
            Model::new(ModelKind::Mlp, Some(baby)).unwrap_err().field,
            "transformer"
        );
        assert_eq!(
            TransformerConfig::preset("huge", 65).unwrap_err().field,
            "config"
        );
    }

    #[test]
    fn models_print_their_numbers() {
        let c = TransformerConfig::preset("llama-100m", 32000).unwrap();
        let m = Model::new(ModelKind::Llama, Some(c)).unwrap();
        assert_eq!(
            m.to_string(),
            "llama (12 layers, 12 heads / 4 kv, 768 wide, ff 2048, context 256, vocab 32000)"
        );
        assert_eq!(Model::Mlp.to_string(), "mlp");
        assert!(m.is_text() && !Model::Cnn.is_text());
    }
}
