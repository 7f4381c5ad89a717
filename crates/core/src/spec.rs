//! The job spec: what an owner asks for, written as TOML
//! (`examples/mnist-mlp.toml`), stored content-addressed as a blob and named
//! on-chain by its keccak256.
//!
//! This module checks what it can without knowing models or rules (ranges,
//! amounts, probabilities); the crates that own the names (`ml` for models,
//! data sets and optimizers, `aggregate` for rules) check those.

use alloy_primitives::U256;
use serde::{Deserialize, Serialize};

use crate::amount::parse_amount;
use crate::hash::Hash;
use crate::lora::LoraConfig;
use crate::model::{Model, TransformerConfig};
use crate::protocol::{DatasetName, ModelKind, TextTokenizer, Tokenizer, ValidationMode};
use crate::sync::SyncPolicy;

/// α of the staleness weight unless the spec says otherwise: 1, a
/// one-round-old update counts half (docs/sync.md measures 0.5 and 1).
pub const DEFAULT_STALENESS_ALPHA: f32 = 1.0;

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn is_default_alpha(v: &f32) -> bool {
    v.to_bits() == DEFAULT_STALENESS_ALPHA.to_bits()
}

/// Paid to each deciding validator unless the spec says otherwise: half the
/// default base reward (docs/contract.md explains the choice).
pub const DEFAULT_VALIDATION_REWARD: &str = "0.0005eth";

/// Largest spec file accepted, in bytes.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;

/// A training job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSpec {
    /// A name for people; not used by the protocol.
    pub name: String,
    /// Seed of θ₀, of every task's data order and of the replay draws' salt.
    pub seed: u64,
    /// `mlp`, `cnn`, `gpt` or `llama`.
    pub model: ModelKind,
    /// A transformer's numbers (`[transformer]`, for `gpt` and `llama`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transformer: Option<TransformerSpec>,
    /// `mnist`, `fashion-mnist`, `tinyshakespeare[:byte]`, `synthetic[:SEED]`,
    /// or an uploaded blob: `text:0xHASH[:byte|:0xTOKENIZER]`, `idx:0xHASH`.
    pub dataset: DatasetName,
    /// The owner's initial checkpoint: keccak256 of a canonical tensor blob
    /// in the model's layout (`funetun job create --init PATH` uploads it
    /// and fills this in). Round 0 starts from it instead of θ₀ drawn from
    /// `seed`, and its hash is checkpoint 0 on-chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<Hash>,
    /// Low-rank adapters (`[lora]`: rank, alpha, targets): trainers train
    /// only adapters on the frozen `init` checkpoint, and every checkpoint
    /// after it is adapters (docs/lora.md). Needs `init`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    /// Number of rounds (checkpoints after θ₀).
    pub rounds: u32,
    /// Shards of the training split; one task per shard per round.
    pub shards: u32,
    /// Local steps of a task for a capacity-M trainer (S: half, L: double).
    pub steps: u32,
    /// Samples per local step.
    pub batch: u32,
    /// Inner learning rate.
    pub lr: f32,
    /// Inner optimizer: `sgd`, `momentum[:μ]`, `adam`, `adamw[:wd[,β₂]]`.
    pub optimizer: String,
    /// Learning rate over the job's global step (`round × steps + i`):
    /// `constant` or `cosine:WARMUP,TOTAL,MIN_LR`.
    pub lr_schedule: String,
    /// Largest global gradient norm of a local step (0: no clipping).
    pub grad_clip: f32,
    /// Robust aggregation rule, e.g. `mean`, `median`, `trimmed-mean:0.1`.
    pub aggregation: String,
    /// Outer optimizer applied to the aggregate, e.g. `sgd`, `nesterov:0.7,0.9`.
    pub outer_optimizer: String,
    /// A round closes early when every shard has an accepted update; at
    /// `round_timeout_secs` it closes with at least this many.
    pub min_updates: u32,
    /// Seconds after a round opens before it closes with what it has.
    pub round_timeout_secs: u64,
    /// Seconds a trainer holds a task lease before it is handed to another.
    pub lease_secs: u64,
    /// How rounds synchronise: `sync` (a round waits for every shard) or
    /// `stale:S` (no trainer waits; updates up to S rounds behind count,
    /// docs/sync.md).
    #[serde(skip_serializing_if = "SyncPolicy::is_sync")]
    pub sync: SyncPolicy,
    /// `stale:S`: accepted updates that close a round (0: `shards`).
    #[serde(skip_serializing_if = "is_zero")]
    pub buffer: u32,
    /// `stale:S`: an update `s` rounds behind is scaled by (1 + s)^−α
    /// before aggregation.
    #[serde(skip_serializing_if = "is_default_alpha")]
    pub staleness_alpha: f32,
    /// Test samples evaluated per checkpoint (0: the whole test split).
    pub eval_samples: u32,
    /// How updates are checked.
    pub validation: ValidationPolicy,
    /// What is paid.
    pub rewards: Rewards,
}

/// A transformer's numbers as a spec writes them: a named configuration
/// (`config = "baby"`) and any numbers that override it; `vocab` defaults
/// to the data set's tokenizer's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerSpec {
    /// A named configuration (`baby`, `tiny`, `llama-100m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Vocabulary size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocab: Option<usize>,
    /// Blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_layer: Option<usize>,
    /// Query heads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_head: Option<usize>,
    /// Key/value heads (default: `n_head`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_kv_head: Option<usize>,
    /// Residual width.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d_model: Option<usize>,
    /// Feed-forward width (default: 4 × `d_model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d_ff: Option<usize>,
    /// Context window in tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<usize>,
}

impl TransformerSpec {
    /// The numbers: the named configuration overridden by the given
    /// numbers; `vocab` falls back to `default_vocab` (the tokenizer's).
    pub fn resolve(&self, default_vocab: Option<usize>) -> Result<TransformerConfig, SpecError> {
        let field = |f: &str| format!("transformer.{f}");
        let vocab = match (self.vocab, default_vocab) {
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => {
                return Err(err(
                    &field("vocab"),
                    "is missing and the data set has no built-in vocabulary; set vocab",
                ));
            }
        };
        let base = match &self.config {
            Some(name) => TransformerConfig::preset(name, vocab)
                .map_err(|e| err(&field(e.field), e.detail))?,
            None => {
                let need = |v: Option<usize>, f: &str| {
                    v.ok_or_else(|| {
                        err(
                            &field(f),
                            "is missing; give it, or name a configuration (config = \"baby\")",
                        )
                    })
                };
                let n_head = need(self.n_head, "n_head")?;
                let d_model = need(self.d_model, "d_model")?;
                TransformerConfig {
                    vocab,
                    n_layer: need(self.n_layer, "n_layer")?,
                    n_head,
                    n_kv_head: n_head,
                    d_model,
                    d_ff: 4 * d_model,
                    context: need(self.context, "context")?,
                }
            }
        };
        Ok(TransformerConfig {
            vocab,
            n_layer: self.n_layer.unwrap_or(base.n_layer),
            n_head: self.n_head.unwrap_or(base.n_head),
            n_kv_head: self
                .n_kv_head
                .or(self.n_head.filter(|_| self.config.is_none()))
                .unwrap_or(base.n_kv_head),
            d_model: self.d_model.unwrap_or(base.d_model),
            d_ff: self.d_ff.unwrap_or(base.d_ff),
            context: self.context.unwrap_or(base.context),
        })
    }
}

/// The vocabulary size of a built-in text corpus's tokenizer (the
/// distinct characters of the checksummed file, or 256 bytes).
pub fn builtin_vocab(dataset: &DatasetName) -> Option<usize> {
    match dataset {
        DatasetName::TinyShakespeare(Tokenizer::Char) => Some(65),
        DatasetName::TinyShakespeare(Tokenizer::Byte) => Some(256),
        DatasetName::Text {
            tokenizer: TextTokenizer::Builtin(Tokenizer::Byte),
            ..
        } => Some(256),
        _ => None,
    }
}

/// How updates are checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationPolicy {
    /// `replay` (bit-exact re-run) or `spot-check` (loss on a held-out sample).
    pub mode: ValidationMode,
    /// Probability that an update is checked by validators once its
    /// trainer has one clean (accepted) update since joining or since its
    /// last rejection. 0 turns replay off (challengers and guards remain).
    pub replay_prob: f64,
    /// Lowest replay probability adaptive replication may reach.
    pub replay_floor: f64,
    /// Adaptive replication (docs/security.md): a trainer on probation (no
    /// accepted update yet, or rejected since its last accepted one) is
    /// replayed with probability 1, and every further clean update halves
    /// `replay_prob`, down to `replay_floor`. `false`: `replay_prob` for
    /// everyone.
    pub adaptive: bool,
    /// Votes that decide an update (`quorum` on-chain).
    pub quorum: u8,
    /// Seconds after submission during which an update can be challenged.
    pub challenge_window_secs: u32,
    /// Spot-check: relative excess of the measured loss over the reported one
    /// that still counts as honest.
    pub spot_check_tolerance: f64,
}

/// Payments, as amounts with units (`0.001eth`, `5gwei`, `1000wei`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rewards {
    /// Paid for each accepted update.
    pub base_reward: String,
    /// Paid on top by the leader for exceptional updates (may be 0).
    pub bonus_reward: String,
    /// Paid from the deposit to each validator whose vote is part of the quorum
    /// that decides an update (may be 0; at most 2^64 − 1 wei, about 18.4 ETH).
    pub validation_reward: String,
}

impl Default for JobSpec {
    fn default() -> Self {
        Self {
            name: "job".into(),
            seed: 0,
            model: ModelKind::Mlp,
            transformer: None,
            dataset: DatasetName::Mnist,
            init: None,
            lora: None,
            rounds: 10,
            shards: 4,
            steps: 100,
            batch: 64,
            lr: 0.05,
            optimizer: "momentum:0.9".into(),
            lr_schedule: "constant".into(),
            grad_clip: 0.0,
            aggregation: "mean".into(),
            outer_optimizer: "sgd".into(),
            min_updates: 1,
            round_timeout_secs: 120,
            lease_secs: 60,
            sync: SyncPolicy::Sync,
            buffer: 0,
            staleness_alpha: DEFAULT_STALENESS_ALPHA,
            eval_samples: 0,
            validation: ValidationPolicy::default(),
            rewards: Rewards::default(),
        }
    }
}

impl Default for ValidationPolicy {
    fn default() -> Self {
        Self {
            mode: ValidationMode::Replay,
            replay_prob: 0.25,
            replay_floor: 0.05,
            adaptive: true,
            quorum: 1,
            challenge_window_secs: 2,
            spot_check_tolerance: 0.05,
        }
    }
}

impl Default for Rewards {
    fn default() -> Self {
        Self {
            base_reward: "0.001eth".into(),
            bonus_reward: "0eth".into(),
            validation_reward: DEFAULT_VALIDATION_REWARD.into(),
        }
    }
}

/// A spec that cannot be used, naming the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job spec: `{field}` {detail}")]
pub struct SpecError {
    /// Dotted path of the field, e.g. `validation.replay_prob`.
    pub field: String,
    /// What is wrong and what would be right.
    pub detail: String,
}

fn err(field: &str, detail: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        detail: detail.into(),
    }
}

impl JobSpec {
    /// Parses TOML and checks every range this crate can judge.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        let spec = Self::parse_toml(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parses TOML, checking words and types but not how the fields fit
    /// together: for a spec that is still to be completed (`funetun job
    /// create --data` fills in the data set). Call [`validate`](Self::validate)
    /// before using it.
    pub fn parse_toml(text: &str) -> Result<Self, SpecError> {
        if text.len() > MAX_SPEC_BYTES {
            return Err(err(
                "(file)",
                format!("is {} bytes; the limit is {MAX_SPEC_BYTES}", text.len()),
            ));
        }
        let not_toml = |e: toml::de::Error, field: &str| {
            // Where, as an editor shows it.
            let span = e
                .span()
                .map(|s| {
                    let before = text.get(..s.start).unwrap_or(text);
                    let line = before.matches('\n').count() + 1;
                    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                    let column = before[line_start..].chars().count() + 1;
                    format!(" (line {line}, column {column})")
                })
                .unwrap_or_default();
            err(
                field,
                format!("is not a valid job spec{span}: {}", e.message()),
            )
        };
        let document = toml::de::Deserializer::parse(text).map_err(|e| not_toml(e, "(file)"))?;
        // The path names the field whose word or number is wrong.
        let spec: JobSpec = serde_path_to_error::deserialize(document).map_err(|e| {
            let path = e.path().to_string();
            let field = if path.is_empty() || path == "." {
                "(file)".to_string()
            } else {
                path
            };
            not_toml(e.into_inner(), &field)
        })?;
        Ok(spec)
    }

    /// Parses spec bytes (UTF-8 TOML), as fetched from the blob store.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SpecError> {
        let text = std::str::from_utf8(bytes).map_err(|_| err("(file)", "is not UTF-8 text"))?;
        Self::from_toml(text)
    }

    /// Every blob the job needs besides checkpoints and deltas: the data
    /// set's (corpus, tokenizer, IDX) and the initial checkpoint.
    pub fn blobs(&self) -> Vec<Hash> {
        let mut blobs = self.dataset.blobs();
        blobs.extend(self.init);
        blobs
    }

    /// The canonical TOML of this spec.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a job spec always serializes")
    }

    /// How many accepted updates a round is built from: one per shard for
    /// `sync`, `buffer` (or `shards`) for `stale:S`. An aggregation rule
    /// must work with this many inputs.
    pub fn updates_per_round(&self) -> u32 {
        if self.buffer == 0 {
            self.shards
        } else {
            self.buffer
        }
    }

    /// The model with its numbers checked, and matched against the data
    /// set (a transformer reads text, the image models images).
    pub fn model(&self) -> Result<Model, SpecError> {
        match (self.model.is_transformer(), self.dataset.is_text()) {
            (true, false) => {
                return Err(err(
                    "dataset",
                    format!(
                        "is {}, images; a {} model trains on text (e.g. tinyshakespeare)",
                        self.dataset, self.model
                    ),
                ));
            }
            (false, true) => {
                return Err(err(
                    "dataset",
                    format!(
                        "is {}, text; an {} model trains on images (use gpt or llama)",
                        self.dataset, self.model
                    ),
                ));
            }
            _ => {}
        }
        let config = match (&self.transformer, self.model.is_transformer()) {
            (Some(t), true) => Some(t.resolve(builtin_vocab(&self.dataset))?),
            (None, true) => {
                return Err(err(
                    "transformer",
                    format!(
                        "is missing; a {} model needs its numbers, e.g. [transformer] config = \"baby\"",
                        self.model
                    ),
                ));
            }
            (Some(_), false) => {
                return Err(err(
                    "transformer",
                    format!(
                        "is given but {} is not a transformer; remove the table",
                        self.model
                    ),
                ));
            }
            (None, false) => None,
        };
        let model = Model::new(self.model, config).map_err(|e| {
            let field = match e.field {
                "transformer" | "model" => e.field.to_string(),
                f => format!("transformer.{f}"),
            };
            err(&field, e.detail)
        })?;
        match (model.transformer(), builtin_vocab(&self.dataset)) {
            (Some(c), Some(v)) if c.vocab < v => Err(err(
                "transformer.vocab",
                format!(
                    "is {}, below the {v} tokens of {}'s tokenizer; set vocab ≥ {v} (or leave it out)",
                    c.vocab, self.dataset
                ),
            )),
            _ => Ok(model),
        }
    }

    /// Checks ranges and amounts.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.model()?;
        if let DatasetName::Path(dir) = &self.dataset {
            // A job must not choose which files a volunteer's machine reads.
            return Err(err(
                "dataset",
                format!(
                    "`{}` is a path; a job's data set is a built-in name or an uploaded blob: \
                     upload IDX files with `job create --data IMAGES,LABELS` (or text with \
                     `--data FILE`), which names them by hash",
                    dir.display()
                ),
            ));
        }
        if let Some(lora) = &self.lora {
            lora.check()
                .map_err(|e| err(&format!("lora.{}", e.field), e.detail))?;
            if self.init.is_none() {
                return Err(err(
                    "lora",
                    "adapts a trained model, but the spec names no init checkpoint; \
                     pass the model with `job create --init PATH|HF_DIR`, or remove [lora] to train the whole model",
                ));
            }
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return Err(err(
                "grad_clip",
                format!("is {}; use a number ≥ 0 (0: no clipping)", self.grad_clip),
            ));
        }
        let positive = |field: &str, v: u64, max: u64| {
            if v == 0 || v > max {
                Err(err(field, format!("is {v}; use 1..={max}")))
            } else {
                Ok(())
            }
        };
        positive("rounds", self.rounds.into(), 100_000)?;
        positive("shards", self.shards.into(), 10_000)?;
        positive("steps", self.steps.into(), 100_000)?;
        positive("batch", self.batch.into(), 4096)?;
        positive("round_timeout_secs", self.round_timeout_secs, 86_400 * 7)?;
        positive("lease_secs", self.lease_secs, 86_400)?;
        if self.min_updates == 0 || self.min_updates > self.shards {
            return Err(err(
                "min_updates",
                format!("is {}; use 1..=shards ({})", self.min_updates, self.shards),
            ));
        }
        match self.sync {
            SyncPolicy::Sync => {
                if self.buffer != 0 {
                    return Err(err(
                        "buffer",
                        "closes a round of a `stale:S` job; a `sync` round waits for every shard. \
                         Set sync = \"stale:S\" or remove buffer",
                    ));
                }
                if !is_default_alpha(&self.staleness_alpha) {
                    return Err(err(
                        "staleness_alpha",
                        "weighs late updates of a `stale:S` job; a `sync` job has none. \
                         Set sync = \"stale:S\" or remove staleness_alpha",
                    ));
                }
            }
            SyncPolicy::Stale { .. } => {
                if self.buffer > self.shards {
                    return Err(err(
                        "buffer",
                        format!(
                            "is {}; use 1..=shards ({}), or 0 for shards",
                            self.buffer, self.shards
                        ),
                    ));
                }
                if !(self.staleness_alpha.is_finite()
                    && (0.0..=8.0).contains(&self.staleness_alpha))
                {
                    return Err(err(
                        "staleness_alpha",
                        format!(
                            "is {}; use a number in [0, 8] (0: late updates weigh as much as fresh ones)",
                            self.staleness_alpha
                        ),
                    ));
                }
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 10.0) {
            return Err(err(
                "lr",
                format!("is {}; use a number in (0, 10]", self.lr),
            ));
        }
        for (field, value) in [
            ("optimizer", &self.optimizer),
            ("lr_schedule", &self.lr_schedule),
            ("aggregation", &self.aggregation),
            ("outer_optimizer", &self.outer_optimizer),
        ] {
            if value.trim().is_empty() {
                return Err(err(field, "is empty"));
            }
        }
        let v = &self.validation;
        for (field, p) in [
            ("validation.replay_prob", v.replay_prob),
            ("validation.replay_floor", v.replay_floor),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(err(field, format!("is {p}; use a probability in [0, 1]")));
            }
        }
        if v.replay_floor > v.replay_prob {
            return Err(err(
                "validation.replay_floor",
                format!(
                    "({}) is above replay_prob ({})",
                    v.replay_floor, v.replay_prob
                ),
            ));
        }
        if v.quorum == 0 {
            return Err(err("validation.quorum", "is 0; use at least 1"));
        }
        if !(v.spot_check_tolerance.is_finite() && v.spot_check_tolerance >= 0.0) {
            return Err(err(
                "validation.spot_check_tolerance",
                "must be a number ≥ 0",
            ));
        }
        let base = self.base_reward_wei()?;
        if base.is_zero() {
            return Err(err(
                "rewards.base_reward",
                "is 0; trainers must be paid something",
            ));
        }
        self.bonus_reward_wei()?;
        if self.validation_reward_wei()? > U256::from(u64::MAX) {
            return Err(err(
                "rewards.validation_reward",
                "is above the contract's limit of 2^64 − 1 wei (about 18.4 ETH) per vote",
            ));
        }
        Ok(())
    }

    /// The base reward in wei.
    pub fn base_reward_wei(&self) -> Result<U256, SpecError> {
        parse_amount(&self.rewards.base_reward).map_err(|e| err("rewards.base_reward", e))
    }

    /// The bonus reward in wei.
    pub fn bonus_reward_wei(&self) -> Result<U256, SpecError> {
        parse_amount(&self.rewards.bonus_reward).map_err(|e| err("rewards.bonus_reward", e))
    }

    /// The validation reward in wei, per deciding vote.
    pub fn validation_reward_wei(&self) -> Result<U256, SpecError> {
        parse_amount(&self.rewards.validation_reward)
            .map_err(|e| err("rewards.validation_reward", e))
    }

    /// Local steps for a trainer of the given capacity class.
    pub fn steps_for(&self, capacity: crate::api::Capacity) -> u32 {
        use crate::api::Capacity;
        match capacity {
            Capacity::S => self.steps.div_ceil(2),
            Capacity::M => self.steps,
            Capacity::L => self.steps.saturating_mul(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_field_is_named_with_its_line_and_the_choices() {
        let text = "name = \"x\"\nmodel = \"mlp\"\nlearning_rte = 0.1\n";
        let e = JobSpec::parse_toml(text).unwrap_err().to_string();
        assert!(e.contains("learning_rte"), "{e}");
        assert!(e.contains("line 3, column 1"), "{e}");
        assert!(e.contains("expected"), "the choices: {e}");
        assert!(!e.contains("(file)") && !e.contains("byte"), "{e}");
    }

    #[test]
    fn a_job_cannot_name_a_path_as_its_data_set() {
        for path in ["/etc", "/nonexistent", "./data/mnist"] {
            let spec = JobSpec {
                dataset: path.parse().unwrap(),
                ..JobSpec::default()
            };
            let e = spec.validate().unwrap_err();
            assert_eq!(e.field, "dataset", "{e}");
            assert!(e.detail.contains("--data"), "{e}");
        }
        // Built-in names and blobs stay valid.
        JobSpec::default().validate().unwrap();
    }

    #[test]
    fn the_default_spec_round_trips_through_toml() {
        let spec = JobSpec::default();
        let text = spec.to_toml();
        assert_eq!(JobSpec::from_toml(&text).unwrap(), spec);
    }

    #[test]
    fn a_stale_spec_round_trips_and_a_sync_one_keeps_its_bytes() {
        let spec =
            JobSpec::from_toml("sync = \"stale:2\"\nbuffer = 3\nstaleness_alpha = 0.5").unwrap();
        assert_eq!(spec.sync, SyncPolicy::Stale { max: 2 });
        assert_eq!(JobSpec::from_toml(&spec.to_toml()).unwrap(), spec);
        // The defaults are not written, so specs from before the policy
        // existed keep their bytes and hashes.
        let text = JobSpec::default().to_toml();
        assert!(!text.contains("sync") && !text.contains("buffer") && !text.contains("alpha"));
    }

    #[test]
    fn the_example_spec_parses() {
        let text = include_str!("../../../examples/mnist-mlp.toml");
        let spec = JobSpec::from_toml(text).unwrap();
        assert_eq!(spec.model, ModelKind::Mlp);
        assert_eq!(spec.dataset, DatasetName::Mnist);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("rounds = 0", "rounds"),
            ("lr = -1.0", "lr"),
            ("shards = 2\nmin_updates = 3", "min_updates"),
            ("[validation]\nreplay_prob = 1.5", "validation.replay_prob"),
            ("[validation]\nmode = \"guess\"", "validation.mode"),
            ("[validation]\nquorum = 0", "validation.quorum"),
            ("[rewards]\nbase_reward = \"lots\"", "rewards.base_reward"),
            ("[rewards]\nbase_reward = \"0eth\"", "rewards.base_reward"),
            (
                "[rewards]\nvalidation_reward = \"some\"",
                "rewards.validation_reward",
            ),
            (
                "[rewards]\nvalidation_reward = \"19eth\"",
                "rewards.validation_reward",
            ),
            ("sync = \"stale\"", "sync"),
            ("buffer = 2", "buffer"),
            ("staleness_alpha = 0.5", "staleness_alpha"),
            ("sync = \"stale:2\"\nshards = 4\nbuffer = 5", "buffer"),
            (
                "sync = \"stale:2\"\nstaleness_alpha = -1.0",
                "staleness_alpha",
            ),
        ];
        for (text, field) in cases {
            let e = JobSpec::from_toml(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
        let text = |extra: &str| format!("model = \"gpt\"\ndataset = \"tinyshakespeare\"\n{extra}");
        let cases = [
            (text(""), "transformer"),
            (
                text("[transformer]\nconfig = \"baby\"\nd_model = 130"),
                "transformer.d_model",
            ),
            (
                text("[transformer]\nconfig = \"baby\"\nvocab = 50"),
                "transformer.vocab",
            ),
            (
                text("[transformer]\nconfig = \"huge\""),
                "transformer.config",
            ),
            (text("[transformer]\nn_layer = 2"), "transformer.n_head"),
            (
                "model = \"gpt\"\n[transformer]\nconfig = \"baby\"".into(),
                "dataset",
            ),
            ("dataset = \"tinyshakespeare\"".into(), "dataset"),
            ("[transformer]\nconfig = \"baby\"".into(), "transformer"),
            (
                text("grad_clip = -1.0\n[transformer]\nconfig = \"baby\""),
                "grad_clip",
            ),
        ];
        for (text, field) in cases {
            let e = JobSpec::from_toml(&text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
        let gpt =
            JobSpec::from_toml(&text("[transformer]\nconfig = \"baby\"\nn_layer = 2")).unwrap();
        let c = gpt.model().unwrap().transformer().unwrap();
        assert_eq!((c.vocab, c.n_layer, c.d_model, c.context), (65, 2, 128, 64));
        assert_eq!(JobSpec::from_toml(&gpt.to_toml()).unwrap(), gpt);
        let e = JobSpec::from_toml("learning_rate = 0.1").unwrap_err();
        assert!(e.detail.contains("learning_rate"), "{e}");
    }
}
