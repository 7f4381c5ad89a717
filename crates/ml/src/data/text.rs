//! Text corpora as token streams: the two built-in tokenizers, the
//! train/validation split, and the windows a task trains on.
//!
//! - `char`: one token per Unicode scalar of the corpus; the vocabulary is
//!   the corpus's distinct characters in code-point order (65 for
//!   tiny-shakespeare), a pure function of the corpus bytes, so every
//!   participant that verified the corpus's checksum holds the same one.
//! - `byte`: one token per byte, vocabulary 256; any bytes are text.
//!
//! The first 90 % of the tokens are the training split and the rest the
//! validation split (nanoGPT's rule). A sample is a window: sample `i` of a
//! split is the `context` tokens starting at token `i`, and its targets are
//! the same window shifted by one.

use funetun_core::protocol::Tokenizer;

use crate::error::{Error, Result};

/// Share of a corpus's tokens in the training split.
pub const TRAIN_FRACTION: f64 = 0.9;

/// A tokenizer with its vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    tokenizer: Tokenizer,
    /// `char`: the token of each character is its index here.
    chars: Vec<char>,
}

impl Vocab {
    /// The vocabulary `tokenizer` builds from `corpus` (bytes).
    pub fn build(tokenizer: Tokenizer, corpus: &[u8], name: &str) -> Result<Self> {
        let chars = match tokenizer {
            Tokenizer::Byte => Vec::new(),
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
                chars
            }
        };
        Ok(Self { tokenizer, chars })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> Tokenizer {
        self.tokenizer
    }

    /// Number of distinct tokens.
    pub fn size(&self) -> usize {
        match self.tokenizer {
            Tokenizer::Byte => 256,
            Tokenizer::Char => self.chars.len(),
        }
    }

    /// The characters of a `char` vocabulary, in token order (empty for `byte`).
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Tokens of `text`; a character outside the vocabulary is refused.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self.tokenizer {
            Tokenizer::Byte => Ok(text.bytes().map(u32::from).collect()),
            Tokenizer::Char => text
                .chars()
                .map(|c| {
                    self.chars.binary_search(&c).map(|i| i as u32).map_err(|_| {
                        Error::invalid(
                            "prompt",
                            format!("the character {c:?} is not in the corpus's vocabulary"),
                        )
                    })
                })
                .collect(),
        }
    }

    /// Tokens of corpus bytes already known to be valid for this vocabulary.
    fn encode_corpus(&self, corpus: &[u8]) -> Vec<u32> {
        match self.tokenizer {
            Tokenizer::Byte => corpus.iter().map(|&b| u32::from(b)).collect(),
            Tokenizer::Char => String::from_utf8_lossy(corpus)
                .chars()
                .map(|c| self.chars.binary_search(&c).unwrap_or(0) as u32)
                .collect(),
        }
    }

    /// The text of `tokens` (unknown ids and invalid UTF-8 become U+FFFD).
    pub fn decode(&self, tokens: &[u32]) -> String {
        match self.tokenizer {
            Tokenizer::Byte => {
                let bytes: Vec<u8> = tokens.iter().map(|&t| t.min(255) as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Tokenizer::Char => tokens
                .iter()
                .map(|&t| self.chars.get(t as usize).copied().unwrap_or('\u{fffd}'))
                .collect(),
        }
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
    if corpus.is_empty() {
        return Err(Error::invalid(
            "data set",
            format!("{name} is empty; a text corpus needs at least a few context windows of text"),
        ));
    }
    let vocab = Vocab::build(tokenizer, corpus, name)?;
    let tokens = vocab.encode_corpus(corpus);
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
