//! The protocol's words: statuses, validation modes, model and data set
//! identifiers, roles. Each is an enum parsed once, where it enters (a
//! request body, a spec, a database row, a flag), and written back as the
//! same word, so the wire format is the one `docs/api.md` describes.
//!
//! ```
//! use funetun_core::protocol::{UpdateStatus, ValidationMode};
//!
//! let mode: ValidationMode = "spot-check".parse().unwrap();
//! assert_eq!(mode, ValidationMode::SpotCheck);
//! assert_eq!(serde_json::to_string(&UpdateStatus::Rejected).unwrap(), "\"rejected\"");
//! assert!("guess".parse::<ValidationMode>().is_err());
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::Hash;

/// A word that is not one of its kind's, naming what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {detail}")]
pub struct WordError {
    /// What kind of word it should have been (`model`, `update status`, …).
    pub what: &'static str,
    /// The word given and the words to choose from.
    pub detail: String,
}

/// Defines a closed set of protocol words: the enum, its word table,
/// `as_str`, `FromStr`, `Display` and serde as that word.
macro_rules! words {
    (
        $(#[$meta:meta])*
        $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every word of this kind, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word on the wire and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }
        }

        impl FromStr for $name {
            type Err = WordError;

            fn from_str(s: &str) -> Result<Self, WordError> {
                match s {
                    $( $word => Ok($name::$variant), )+
                    _ => Err(WordError {
                        what: $what,
                        detail: format!("`{s}`; choose {}", choices(&[$($word),+])),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = std::borrow::Cow::<'de, str>::deserialize(d)?;
                word.parse().map_err(|_| {
                    serde::de::Error::unknown_variant(&word, &[$($word),+])
                })
            }
        }
    };
}

/// `a, b or c`.
fn choices(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

words! {
    /// Where an update stands: the contract's `UpdateStatus` as a word.
    UpdateStatus ("update status") {
        /// Submitted, not yet decided.
        Pending = "pending",
        /// Accepted: paid, merged into the next checkpoint.
        Accepted = "accepted",
        /// Rejected: its trainer was slashed.
        Rejected = "rejected",
        /// Void: challenged or objected to, it reached no quorum by its
        /// decision timeout; its trainer was neither paid nor slashed.
        Void = "void",
    }
}

impl JobStatus {
    /// Whether no more work will be handed out for the job.
    pub fn is_over(self) -> bool {
        matches!(self, Self::Finished | Self::Closed | Self::Invalid)
    }
}

impl UpdateStatus {
    /// Whether the update has been decided either way.
    pub fn is_decided(self) -> bool {
        self != Self::Pending
    }
}

words! {
    /// Where a round stands.
    RoundStatus ("round status") {
        /// Tasks are leased and updates come in.
        Open = "open",
        /// Its inputs are fixed and its checkpoint is being built and
        /// committed (the API still shows it `open`).
        Closing = "closing",
        /// Its checkpoint is committed.
        Closed = "closed",
    }
}

words! {
    /// Where a job stands.
    JobStatus ("job status") {
        /// Seen on-chain; its spec is not yet fetched and checked.
        Pending = "pending",
        /// Rounds are being trained.
        Active = "active",
        /// Every round is committed (or the deposit ran out).
        Finished = "finished",
        /// Closed on-chain; the owner may withdraw what is left.
        Closed = "closed",
        /// Its spec cannot be used (unreadable, or names an unknown model):
        /// no round ever opens.
        Invalid = "invalid",
    }
}

words! {
    /// How validators check an update.
    ValidationMode ("validation mode") {
        /// Re-run the task and compare the delta's hash (bit for bit).
        Replay = "replay",
        /// Measure the trained weights' loss on a sample and compare it with
        /// the reported one.
        SpotCheck = "spot-check",
    }
}

words! {
    /// What a participant is to the market (`GET /v1/participants`).
    Role ("role") {
        /// Trains tasks for pay, with a stake.
        Trainer = "trainer",
        /// Checks updates and votes, with a stake.
        Validator = "validator",
        /// Replays updates in their challenge window and disputes false
        /// ones with a bond (no stake, no on-chain role).
        Challenger = "challenger",
        /// Created a job and paid its deposit.
        Owner = "owner",
        /// Leads jobs: the orchestrator's address.
        Leader = "leader",
    }
}

words! {
    /// A node of the `/graph` picture.
    NodeKind ("graph node type") {
        /// A job owner.
        Owner = "owner",
        /// This orchestrator.
        Orchestrator = "orchestrator",
        /// The `JobManager` contract.
        Contract = "contract",
        /// A trainer.
        Trainer = "trainer",
        /// A validator.
        Validator = "validator",
        /// A challenger.
        Challenger = "challenger",
    }
}

words! {
    /// Which network a job trains (its layout and numerics live in
    /// `funetun_ml::model`).
    ModelKind ("model") {
        /// 784-256-10 multilayer perceptron with ReLU.
        Mlp = "mlp",
        /// conv5×5×32, max-pool 2, conv5×5×64, max-pool 2, fc128, fc10, ReLU
        /// after every hidden layer; no padding.
        Cnn = "cnn",
        /// Decoder-only transformer in GPT-2's layout (learned positions,
        /// LayerNorm, GELU, tied embeddings, biases); numbers in
        /// [`crate::model::TransformerConfig`].
        Gpt = "gpt",
        /// Decoder-only transformer in Llama's layout (RoPE, RMSNorm,
        /// SwiGLU, grouped-query attention, no biases).
        Llama = "llama",
    }
}

impl ModelKind {
    /// Whether the model is a transformer over text tokens.
    pub fn is_transformer(self) -> bool {
        matches!(self, Self::Gpt | Self::Llama)
    }
}

words! {
    /// How a text corpus becomes tokens.
    Tokenizer ("tokenizer") {
        /// One token per UTF-8 character of the corpus; the vocabulary is
        /// the corpus's distinct characters in code-point order.
        Char = "char",
        /// One token per byte (vocabulary 256); any bytes.
        Byte = "byte",
    }
}

/// Which data set a job trains on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// Handwritten digits (LeCun et al.).
    Mnist,
    /// Zalando's clothing images in MNIST's format.
    FashionMnist,
    /// Karpathy's tiny-shakespeare text corpus (about 1.1 MB), as tokens of
    /// this kind (`tinyshakespeare` is characters, `tinyshakespeare:byte`
    /// bytes).
    TinyShakespeare(Tokenizer),
    /// The built-in synthetic set, generated from this seed.
    Synthetic(u64),
    /// A directory holding the four IDX files under their MNIST names.
    Path(PathBuf),
    /// An owner's UTF-8 text corpus, uploaded as a blob and named by its
    /// keccak256 (`text:0xCORPUS`, `text:0xCORPUS:byte`, or
    /// `text:0xCORPUS:0xTOKENIZER` for a Hugging Face `tokenizer.json`
    /// blob).
    Text {
        /// The corpus blob.
        corpus: Hash,
        /// How it becomes tokens.
        tokenizer: TextTokenizer,
    },
    /// An owner's labelled images: an IDX image file followed by its IDX
    /// label file, uploaded as one blob (`idx:0xHASH`).
    Idx(Hash),
}

/// How an uploaded corpus becomes tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextTokenizer {
    /// A built-in tokenizer (`char` or `byte`).
    Builtin(Tokenizer),
    /// A Hugging Face `tokenizer.json`, uploaded as a blob.
    Hf(Hash),
}

impl DatasetName {
    /// Whether the data set is a text corpus (trained by transformers)
    /// rather than labelled images.
    pub fn is_text(&self) -> bool {
        matches!(self, Self::TinyShakespeare(_) | Self::Text { .. })
    }

    /// The blobs a participant needs to load the data set (corpus and
    /// tokenizer, or the IDX blob); empty for built-in data sets.
    pub fn blobs(&self) -> Vec<Hash> {
        match self {
            Self::Text {
                corpus,
                tokenizer: TextTokenizer::Hf(t),
            } => vec![*corpus, *t],
            Self::Text { corpus, .. } => vec![*corpus],
            Self::Idx(h) => vec![*h],
            _ => Vec::new(),
        }
    }
}

fn parse_hash(s: &str, whole: &str) -> Result<Hash, WordError> {
    let valid = s.len() == 66 && s.starts_with("0x");
    valid
        .then(|| s.parse::<Hash>().ok())
        .flatten()
        .ok_or_else(|| WordError {
            what: "data set",
            detail: format!(
                "`{whole}`: `{s}` is not a blob hash (0x and 64 hex digits); \
                 upload the data with `funetun job create --data PATH`, which fills it in"
            ),
        })
}

impl FromStr for DatasetName {
    type Err = WordError;

    /// `mnist`, `fashion-mnist` (also `fashion_mnist`, `fashion`),
    /// `synthetic`, `synthetic:SEED`, or a directory path.
    fn from_str(s: &str) -> Result<Self, WordError> {
        let invalid = |detail: String| WordError {
            what: "data set",
            detail,
        };
        match s {
            "mnist" => Ok(Self::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashion" => Ok(Self::FashionMnist),
            "tinyshakespeare" | "tiny-shakespeare" | "shakespeare" => {
                Ok(Self::TinyShakespeare(Tokenizer::Char))
            }
            "synthetic" => Ok(Self::Synthetic(0)),
            _ => {
                if let Some(rest) = s.strip_prefix("text:") {
                    let (corpus, tokenizer) = match rest.split_once(':') {
                        None => (rest, TextTokenizer::Builtin(Tokenizer::Char)),
                        Some((corpus, t)) if t.starts_with("0x") => {
                            (corpus, TextTokenizer::Hf(parse_hash(t, s)?))
                        }
                        Some((corpus, t)) => (corpus, TextTokenizer::Builtin(t.parse()?)),
                    };
                    Ok(Self::Text {
                        corpus: parse_hash(corpus, s)?,
                        tokenizer,
                    })
                } else if let Some(hash) = s.strip_prefix("idx:") {
                    Ok(Self::Idx(parse_hash(hash, s)?))
                } else if let Some(tokens) = s.strip_prefix("tinyshakespeare:") {
                    Ok(Self::TinyShakespeare(tokens.parse()?))
                } else if let Some(seed) = s.strip_prefix("synthetic:") {
                    let seed = seed.parse().map_err(|_| {
                        invalid(format!(
                            "`{s}`: the seed after `synthetic:` must be an integer"
                        ))
                    })?;
                    Ok(Self::Synthetic(seed))
                } else if s.contains('/') || Path::new(s).is_dir() {
                    Ok(Self::Path(PathBuf::from(s)))
                } else {
                    Err(invalid(format!(
                        "`{s}`; choose mnist, fashion-mnist, tinyshakespeare[:byte], synthetic, synthetic:SEED, \
                         text:0xHASH[:byte|:0xTOKENIZER], idx:0xHASH, or a directory path"
                    )))
                }
            }
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mnist => f.write_str("mnist"),
            Self::FashionMnist => f.write_str("fashion-mnist"),
            Self::TinyShakespeare(Tokenizer::Char) => f.write_str("tinyshakespeare"),
            Self::TinyShakespeare(t) => write!(f, "tinyshakespeare:{t}"),
            Self::Synthetic(0) => f.write_str("synthetic"),
            Self::Synthetic(seed) => write!(f, "synthetic:{seed}"),
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Text {
                corpus,
                tokenizer: TextTokenizer::Builtin(Tokenizer::Char),
            } => write!(f, "text:{corpus}"),
            Self::Text {
                corpus,
                tokenizer: TextTokenizer::Builtin(t),
            } => write!(f, "text:{corpus}:{t}"),
            Self::Text {
                corpus,
                tokenizer: TextTokenizer::Hf(t),
            } => write!(f, "text:{corpus}:{t}"),
            Self::Idx(h) => write!(f, "idx:{h}"),
        }
    }
}

impl Serialize for DatasetName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DatasetName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = std::borrow::Cow::<'de, str>::deserialize(d)?;
        word.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_through_json() {
        fn check<T>(all: &[T])
        where
            T: Copy
                + fmt::Display
                + FromStr
                + Serialize
                + for<'a> Deserialize<'a>
                + PartialEq
                + fmt::Debug,
            <T as FromStr>::Err: fmt::Debug,
        {
            for &w in all {
                let json = serde_json::to_string(&w).unwrap();
                assert_eq!(json, format!("\"{w}\""));
                assert_eq!(serde_json::from_str::<T>(&json).unwrap(), w);
                assert_eq!(w.to_string().parse::<T>().unwrap(), w);
            }
        }
        check(UpdateStatus::ALL);
        check(RoundStatus::ALL);
        check(JobStatus::ALL);
        check(ValidationMode::ALL);
        check(Role::ALL);
        check(NodeKind::ALL);
        check(ModelKind::ALL);
    }

    #[test]
    fn unknown_words_name_the_choices() {
        let e = "transformer".parse::<ModelKind>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid model: `transformer`; choose mlp, cnn, gpt or llama"
        );
        let e = "guess".parse::<ValidationMode>().unwrap_err();
        assert!(e.detail.contains("replay or spot-check"), "{e}");
        let e = serde_json::from_str::<UpdateStatus>("\"done\"").unwrap_err();
        assert!(e.to_string().contains("pending"), "{e}");
    }

    #[test]
    fn data_sets_keep_their_words() {
        for word in [
            "mnist",
            "fashion-mnist",
            "synthetic",
            "synthetic:7",
            "tinyshakespeare",
            "tinyshakespeare:byte",
            "data/mine",
            "text:0x1111111111111111111111111111111111111111111111111111111111111111",
            "text:0x1111111111111111111111111111111111111111111111111111111111111111:byte",
            "text:0x1111111111111111111111111111111111111111111111111111111111111111:0x2222222222222222222222222222222222222222222222222222222222222222",
            "idx:0x3333333333333333333333333333333333333333333333333333333333333333",
        ] {
            let name: DatasetName = word.parse().unwrap();
            assert_eq!(name.to_string(), word);
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(serde_json::from_str::<DatasetName>(&json).unwrap(), name);
        }
        assert_eq!(
            "fashion".parse::<DatasetName>().unwrap(),
            DatasetName::FashionMnist
        );
        assert!("synthetic:x".parse::<DatasetName>().is_err());
        assert_eq!(
            "tinyshakespeare:char".parse::<DatasetName>().unwrap(),
            DatasetName::TinyShakespeare(Tokenizer::Char)
        );
        assert!("tinyshakespeare:bpe".parse::<DatasetName>().is_err());
        assert!("imagenet".parse::<DatasetName>().is_err());
        let e = "text:0x12".parse::<DatasetName>().unwrap_err();
        assert!(e.to_string().contains("job create --data"), "{e}");
        assert!(
            "text:0x1111111111111111111111111111111111111111111111111111111111111111:bpe"
                .parse::<DatasetName>()
                .is_err()
        );
        let name: DatasetName =
            "text:0x1111111111111111111111111111111111111111111111111111111111111111:0x2222222222222222222222222222222222222222222222222222222222222222"
                .parse()
                .unwrap();
        assert_eq!(name.blobs().len(), 2);
        assert!(name.is_text());
        assert!(DatasetName::Mnist.blobs().is_empty());
    }
}
