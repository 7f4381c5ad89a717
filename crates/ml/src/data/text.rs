//! Text corpora as token streams: the tokenizers, the train/validation
//! split, and the windows a task trains on.
//!
//! - `char`: one token per Unicode scalar of the corpus; the vocabulary is
//!   the corpus's distinct characters in code-point order (65 for
//!   tiny-shakespeare), a pure function of the corpus bytes, so every
//!   participant that verified the corpus's checksum holds the same one.
//! - `byte`: one token per byte, vocabulary 256; any bytes are text.
//! - a Hugging Face tokenizer ([`Vocab::from_hf_json`]): any
//!   `tokenizer.json`, run by the `tokenizers` crate (the library behind
//!   `transformers`' fast tokenizers), without special tokens: a corpus is
//!   one stream, and no window starts with a BOS token.
//!
//! [`Vocab::to_hf_json`] writes the `char` and `byte` vocabularies as a
//! `tokenizer.json` that `transformers` reads, so a model trained here can
//! be used there with the same ids.
//!
//! The first 90 % of the tokens are the training split and the rest the
//! validation split (nanoGPT's rule). A sample is a window: sample `i` of a
//! split is the `context` tokens starting at token `i`, and its targets are
//! the same window shifted by one.

use std::sync::Arc;

use funetun_core::protocol::Tokenizer;

use super::hf_tokenizer::{HfTokenizer, bpe_json};
use crate::error::{Error, Result};

/// Share of a corpus's tokens in the training split.
pub const TRAIN_FRACTION: f64 = 0.9;

/// A tokenizer with its vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Byte,
    /// The token of each character is its index here.
    Char(Vec<char>),
    Hf(Arc<HfTokenizer>),
}

impl Vocab {
    /// The vocabulary `tokenizer` builds from `corpus` (bytes).
    pub fn build(tokenizer: Tokenizer, corpus: &[u8], name: &str) -> Result<Self> {
        let kind = match tokenizer {
            Tokenizer::Byte => Kind::Byte,
            Tokenizer::Char => {
                let text = std::str::from_utf8(corpus).map_err(|e| {
                    Error::invalid(
                        "data set",
                        format!(
                            "{name} is not UTF-8 text (at byte {}), so it has no characters; \
                             use the byte tokenizer (`{name}:byte`) or fix the file",
                            e.valid_up_to()
                        ),
                    )
                })?;
                let mut chars: Vec<char> = text.chars().collect();
                chars.sort_unstable();
                chars.dedup();
                Kind::Char(chars)
            }
        };
        Ok(Self { kind })
    }

    /// A Hugging Face tokenizer from the bytes of its `tokenizer.json`.
    /// Its size is one more than its largest id, counting added tokens
    /// (the vocabulary size with added tokens when the ids are
    /// contiguous, as they are in every tokenizer `transformers` saves).
    pub fn from_hf_json(json: &[u8]) -> Result<Self> {
        Ok(Self {
            kind: Kind::Hf(Arc::new(HfTokenizer::parse(json)?)),
        })
    }

    /// A `tokenizer.json` for this vocabulary, which `transformers`'
    /// `PreTrainedTokenizerFast(tokenizer_file=…)` and [`Self::from_hf_json`]
    /// read into a tokenizer giving the same ids as [`Self::encode`]:
    ///
    /// - `char`: a BPE model whose tokens are the characters (id = index
    ///   in code-point order) with no merges, no normaliser and no
    ///   pre-tokeniser, and a decoder that joins tokens without spaces;
    /// - `byte`: GPT-2's byte-level pre-tokeniser (without its splitting
    ///   regex or a prefix space) over a BPE model whose 256 tokens are
    ///   the bytes' characters in that mapping (id = byte value), no
    ///   merges, and the byte-level decoder;
    /// - a Hugging Face tokenizer: its own JSON.
    pub fn to_hf_json(&self) -> Result<Vec<u8>> {
        let tokens: Vec<String> = match &self.kind {
            Kind::Hf(hf) => return Ok(hf.json().as_bytes().to_vec()),
            Kind::Char(chars) => chars.iter().map(char::to_string).collect(),
            Kind::Byte => (0..=255u8).map(|b| byte_char(b).to_string()).collect(),
        };
        bpe_json(tokens, matches!(self.kind, Kind::Byte))
    }

    /// The built-in tokenizer (`char` or `byte`); `None` for a Hugging
    /// Face tokenizer.
    pub fn tokenizer(&self) -> Option<Tokenizer> {
        match self.kind {
            Kind::Byte => Some(Tokenizer::Byte),
            Kind::Char(_) => Some(Tokenizer::Char),
            Kind::Hf(_) => None,
        }
    }

    /// What kind of tokenizer this is, for messages: `char`, `byte` or
    /// `Hugging Face`.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Byte => "byte",
            Kind::Char(_) => "char",
            Kind::Hf(_) => "Hugging Face",
        }
    }

    /// Number of distinct tokens.
    pub fn size(&self) -> usize {
        match &self.kind {
            Kind::Byte => 256,
            Kind::Char(chars) => chars.len(),
            Kind::Hf(hf) => hf.size(),
        }
    }

    /// The characters of a `char` vocabulary, in token order (empty for
    /// the others).
    pub fn chars(&self) -> &[char] {
        match &self.kind {
            Kind::Char(chars) => chars,
            Kind::Byte | Kind::Hf(_) => &[],
        }
    }

    /// Tokens of `text`; a character outside a `char` vocabulary is
    /// refused, as is text a Hugging Face tokenizer cannot encode.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.kind {
            Kind::Byte => Ok(text.bytes().map(u32::from).collect()),
            Kind::Char(chars) => text
                .chars()
                .map(|c| {
                    chars.binary_search(&c).map(|i| i as u32).map_err(|_| {
                        Error::invalid(
                            "prompt",
                            format!("the character {c:?} is not in the corpus's vocabulary"),
                        )
                    })
                })
                .collect(),
            Kind::Hf(hf) => hf.encode(text),
        }
    }

    /// Tokens of a corpus `name` for this vocabulary, refusing (with the
    /// fix) bytes it cannot read.
    pub fn encode_corpus_checked(&self, corpus: &[u8], name: &str) -> Result<Vec<u32>> {
        let text = match self.kind {
            Kind::Byte => return Ok(self.encode_corpus(corpus)),
            Kind::Char(_) | Kind::Hf(_) => std::str::from_utf8(corpus).map_err(|e| {
                Error::invalid(
                    "data set",
                    format!(
                        "{name} is not UTF-8 text (at byte {}), and a {} tokenizer reads text; \
                         fix the file or use a byte vocabulary",
                        e.valid_up_to(),
                        self.describe()
                    ),
                )
            })?,
        };
        match &self.kind {
            Kind::Char(chars) => text
                .chars()
                .map(|c| {
                    chars.binary_search(&c).map(|i| i as u32).map_err(|_| {
                        Error::invalid(
                            "data set",
                            format!(
                                "{name} holds the character {c:?}, which is not in the \
                                 vocabulary; remove it, or build the vocabulary from this corpus"
                            ),
                        )
                    })
                })
                .collect(),
            _ => self.encode(text).map_err(|e| match e {
                Error::Invalid { detail, .. } => {
                    Error::invalid("data set", format!("{name}: {detail}"))
                }
                other => other,
            }),
        }
    }

    /// Tokens of corpus bytes already known to be valid for this vocabulary.
    fn encode_corpus(&self, corpus: &[u8]) -> Vec<u32> {
        match &self.kind {
            Kind::Byte => corpus.iter().map(|&b| u32::from(b)).collect(),
            Kind::Char(chars) => String::from_utf8_lossy(corpus)
                .chars()
                .map(|c| chars.binary_search(&c).unwrap_or(0) as u32)
                .collect(),
            Kind::Hf(_) => self
                .encode(&String::from_utf8_lossy(corpus))
                .unwrap_or_default(),
        }
    }

    /// The text of `tokens` (unknown ids and invalid UTF-8 become U+FFFD;
    /// a Hugging Face tokenizer skips ids it does not know).
    pub fn decode(&self, tokens: &[u32]) -> String {
        match &self.kind {
            Kind::Byte => {
                let bytes: Vec<u8> = tokens.iter().map(|&t| t.min(255) as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Kind::Char(chars) => tokens
                .iter()
                .map(|&t| chars.get(t as usize).copied().unwrap_or('\u{fffd}'))
                .collect(),
            Kind::Hf(hf) => hf.decode(tokens),
        }
    }
}

/// GPT-2's printable stand-in for byte `b` (`bytes_to_unicode` in OpenAI's
/// `encoder.py`): printable Latin-1 bytes are themselves, the other 68 map
/// to U+0100 onwards in byte order.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        char::from(b)
    } else {
        let n = (0..b).filter(|&x| !printable(x)).count() as u32;
        char::from_u32(256 + n).unwrap_or('\u{fffd}')
    }
}

/// A corpus cut into tokens and split.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The tokenizer and its vocabulary.
    pub vocab: Vocab,
    /// Training tokens.
    pub train: Vec<u32>,
    /// Validation tokens.
    pub validation: Vec<u32>,
}

/// Tokenizes `corpus` and splits it; refuses an empty corpus, one that is
/// not UTF-8 when characters are asked for, and one whose validation
/// split could not hold a window of two tokens.
pub fn tokenize(corpus: &[u8], tokenizer: Tokenizer, name: &str) -> Result<Corpus> {
    check_not_empty(corpus, name)?;
    let vocab = Vocab::build(tokenizer, corpus, name)?;
    let tokens = vocab.encode_corpus(corpus);
    split(tokens, vocab, name)
}

/// Tokenizes `corpus` with a given vocabulary (a Hugging Face tokenizer,
/// or a `char` vocabulary built elsewhere) and splits it, refusing what
/// [`tokenize`] refuses and text the vocabulary cannot encode.
pub fn tokenize_with(corpus: &[u8], vocab: Vocab, name: &str) -> Result<Corpus> {
    check_not_empty(corpus, name)?;
    let tokens = vocab.encode_corpus_checked(corpus, name)?;
    split(tokens, vocab, name)
}

fn check_not_empty(corpus: &[u8], name: &str) -> Result<()> {
    if corpus.is_empty() {
        return Err(Error::invalid(
            "data set",
            format!("{name} is empty; a text corpus needs at least a few context windows of text"),
        ));
    }
    Ok(())
}

fn split(tokens: Vec<u32>, vocab: Vocab, name: &str) -> Result<Corpus> {
    let cut = (tokens.len() as f64 * TRAIN_FRACTION) as usize;
    if cut < 2 || tokens.len() - cut < 2 {
        return Err(Error::invalid(
            "data set",
            format!(
                "{name} has {} tokens, too few to split into training and validation windows",
                tokens.len()
            ),
        ));
    }
    let validation = tokens[cut..].to_vec();
    let mut train = tokens;
    train.truncate(cut);
    Ok(Corpus {
        vocab,
        train,
        validation,
    })
}

/// Number of windows of `context` tokens (plus the target after each) in a
/// stream of `len` tokens.
pub fn windows(len: usize, context: usize) -> usize {
    len.saturating_sub(context)
}

/// Shard `shard` of `shards` of a training stream of `len` tokens: the
/// window starts whose whole window (and targets) stay inside the shard's
/// contiguous token range.
pub fn shard_windows(len: usize, context: usize, shard: usize, shards: usize) -> Result<Vec<u32>> {
    let (start, end) = (len * shard / shards, len * (shard + 1) / shards);
    if end - start < context + 1 {
        return Err(Error::invalid(
            "shards",
            format!(
                "shard {shard} of {shards} holds {} tokens, fewer than one context window ({context}) \
                 plus its target; use fewer shards, a shorter context or a longer corpus",
                end - start
            ),
        ));
    }
    Ok((start as u32..(end - context) as u32).collect())
}

/// Writes the windows starting at `starts` into `tokens` and their targets
/// into `targets` (`starts.len()` rows of `context` each).
pub fn gather_windows(
    stream: &[u32],
    starts: &[u32],
    context: usize,
    tokens: &mut [u32],
    targets: &mut [u32],
) {
    for (k, &s) in starts.iter().enumerate() {
        let s = s as usize;
        tokens[k * context..(k + 1) * context].copy_from_slice(&stream[s..s + context]);
        targets[k * context..(k + 1) * context].copy_from_slice(&stream[s + 1..s + context + 1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_vocabularies_are_sorted_and_round_trip() {
        let c = tokenize(b"hello world, hello there", Tokenizer::Char, "t").unwrap();
        assert_eq!(
            c.vocab.chars(),
            &[' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 't', 'w']
        );
        assert_eq!(c.vocab.decode(&c.vocab.encode("hold").unwrap()), "hold");
        assert!(c.vocab.encode("z").unwrap_err().to_string().contains("'z'"));
        assert_eq!(c.train.len() + c.validation.len(), 24);
        let b = tokenize("é!".repeat(10).as_bytes(), Tokenizer::Byte, "t").unwrap();
        assert_eq!(b.vocab.size(), 256);
        assert_eq!(b.train[0], 0xc3);
    }

    #[test]
    fn bad_corpora_are_refused_with_the_fix() {
        let e = tokenize(b"", Tokenizer::Char, "mine")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mine is empty"), "{e}");
        let e = tokenize(&[0xff, 0xfe, 0x41, 0x42], Tokenizer::Char, "mine")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8") && e.contains("mine:byte"), "{e}");
        assert!(tokenize(&[0xff; 40], Tokenizer::Byte, "mine").is_ok());
        let e = tokenize(b"abc", Tokenizer::Char, "mine")
            .unwrap_err()
            .to_string();
        assert!(e.contains("too few"), "{e}");
    }

    #[test]
    fn char_and_byte_vocabularies_survive_a_trip_through_tokenizer_json() {
        let corpus = "To be, or not to be:\nthat is the question. ¿Qué? 日本";
        let chars = Vocab::build(Tokenizer::Char, corpus.as_bytes(), "t").unwrap();
        let hf = Vocab::from_hf_json(&chars.to_hf_json().unwrap()).unwrap();
        assert_eq!(
            (hf.size(), hf.tokenizer(), hf.describe()),
            (chars.size(), None, "Hugging Face")
        );
        let text = "be: not that question?\n日本 ¿Qué";
        let ids = chars.encode(text).unwrap();
        assert_eq!(hf.encode(text).unwrap(), ids);
        assert_eq!(hf.decode(&ids), text);
        assert_eq!(Vocab::from_hf_json(&hf.to_hf_json().unwrap()).unwrap(), hf);
        assert_ne!(hf, chars);
        let e = hf.encode("not a zebra").unwrap_err().to_string();
        assert!(e.contains("'z'") && e.contains("at byte 6"), "{e}");

        let bytes = Vocab::build(Tokenizer::Byte, b"", "t").unwrap();
        let hf = Vocab::from_hf_json(&bytes.to_hf_json().unwrap()).unwrap();
        assert_eq!(hf.size(), 256);
        let all: String = (0..=0x2ffu32).filter_map(char::from_u32).collect();
        let text = format!("{all} ✓ 🦀\r\n\t");
        let ids = bytes.encode(&text).unwrap();
        assert_eq!(hf.encode(&text).unwrap(), ids);
        assert_eq!(hf.decode(&ids), text);
        let distinct: std::collections::BTreeSet<char> = (0..=255).map(byte_char).collect();
        assert_eq!(distinct.len(), 256);
        assert_eq!(
            (byte_char(b'A'), byte_char(0), byte_char(b' ')),
            ('A', 'Ā', 'Ġ')
        );
    }

    #[test]
    fn corpora_tokenize_with_a_given_vocabulary_or_say_why_not() {
        let chars = Vocab::build(Tokenizer::Char, b"abc d", "t").unwrap();
        let c = tokenize_with(b"abba cab dad abc", chars.clone(), "mine").unwrap();
        assert_eq!(c.train.len() + c.validation.len(), 16);
        assert_eq!(c.vocab, chars);
        let e = tokenize_with(b"abcz abcd", chars.clone(), "mine")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mine") && e.contains("'z'") && e.contains("build the vocabulary"),
            "{e}"
        );
        let hf = Vocab::from_hf_json(&chars.to_hf_json().unwrap()).unwrap();
        let e = tokenize_with(&[0x61, 0xff, 0x62, 0x63], hf.clone(), "mine")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8") && e.contains("Hugging Face"), "{e}");
        let c = tokenize_with(b"abba cab dad abc", hf, "mine").unwrap();
        assert_eq!(c.train.len() + c.validation.len(), 16);
        assert!(tokenize_with(b"", chars, "mine").is_err());
        let e = Vocab::from_hf_json(b"{\"version\": 3}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
    }

    #[test]
    fn shards_are_contiguous_and_windows_stay_inside() {
        let a = shard_windows(1000, 64, 0, 4).unwrap();
        let b = shard_windows(1000, 64, 1, 4).unwrap();
        assert_eq!((a[0], *a.last().unwrap()), (0, 250 - 64 - 1));
        assert_eq!(b[0], 250);
        let e = shard_windows(100, 64, 0, 4).unwrap_err().to_string();
        assert!(e.contains("fewer than one context window"), "{e}");
        let stream: Vec<u32> = (0..10).collect();
        let (mut x, mut y) = (vec![0; 6], vec![0; 6]);
        gather_windows(&stream, &[0, 5], 3, &mut x, &mut y);
        assert_eq!((x, y), (vec![0, 1, 2, 5, 6, 7], vec![1, 2, 3, 6, 7, 8]));
    }
}
