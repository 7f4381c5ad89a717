//! A Hugging Face `tokenizer.json`, run by the `tokenizers` crate (the
//! library behind `transformers`' fast tokenizers): the third kind of
//! [`Vocab`](super::Vocab), and the writer of the `tokenizer.json` of the
//! other two.
//!
//! Without the `host` feature (a WebAssembly build) there is no such
//! library: [`HfTokenizer`] is then a type with no values, so a vocabulary
//! can never hold one, and reading or writing a `tokenizer.json` is refused
//! with the reason.

pub(crate) use imp::{HfTokenizer, bpe_json};

#[cfg(feature = "host")]
mod imp {
    use std::fmt;

    use crate::error::{Error, Result};

    /// A parsed `tokenizer.json`, compared by its canonical JSON.
    pub(crate) struct HfTokenizer {
        tokenizer: tokenizers::Tokenizer,
        /// The tokenizer as the `tokenizers` crate writes it back.
        json: String,
        /// One more than the largest id.
        size: usize,
    }

    impl PartialEq for HfTokenizer {
        fn eq(&self, other: &Self) -> bool {
            self.json == other.json
        }
    }

    impl Eq for HfTokenizer {}

    impl fmt::Debug for HfTokenizer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("HfTokenizer")
                .field("size", &self.size)
                .finish_non_exhaustive()
        }
    }

    impl HfTokenizer {
        /// Parses the bytes of a `tokenizer.json`. Its size is one more
        /// than its largest id, counting added tokens.
        pub(crate) fn parse(json: &[u8]) -> Result<Self> {
            let tokenizer = tokenizers::Tokenizer::from_bytes(json).map_err(|e| {
                Error::invalid(
                    "tokenizer.json",
                    format!(
                        "not a tokenizer the `tokenizers` library reads: {e}; \
                         save it with `tokenizer.save_pretrained(dir)` (a fast tokenizer)"
                    ),
                )
            })?;
            let size = tokenizer
                .get_vocab(true)
                .values()
                .map(|&id| id as usize + 1)
                .max()
                .unwrap_or(0)
                .max(tokenizer.get_vocab_size(true));
            if size == 0 {
                return Err(Error::invalid(
                    "tokenizer.json",
                    "the tokenizer has no tokens".to_string(),
                ));
            }
            let json = tokenizer.to_string(false).map_err(|e| {
                Error::invalid("tokenizer.json", format!("cannot be written back: {e}"))
            })?;
            Ok(Self {
                tokenizer,
                json,
                size,
            })
        }

        /// Its canonical JSON.
        pub(crate) fn json(&self) -> &str {
            &self.json
        }

        /// One more than its largest id.
        pub(crate) fn size(&self) -> usize {
            self.size
        }

        /// Tokens of `text`, refusing text the tokenizer cannot encode or
        /// would silently drop characters of.
        pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>> {
            let encoding = self.tokenizer.encode(text, false).map_err(|e| {
                Error::invalid(
                    "text",
                    format!(
                        "the tokenizer cannot encode it: {e}; use the tokenizer the \
                         model was trained with, or remove what it cannot read"
                    ),
                )
            })?;
            if let Some(first_gap) = dropped(text, encoding.get_offsets()) {
                let (at, c) = self.untokenizable(text).unwrap_or(first_gap);
                return Err(Error::invalid(
                    "text",
                    format!(
                        "the tokenizer has no token for the character {c:?} (at byte {at}) \
                         and no unknown token, so it would silently drop it; remove the \
                         character, or use a tokenizer that covers the text"
                    ),
                ));
            }
            Ok(encoding.get_ids().to_vec())
        }

        /// The text of `tokens` (ids it does not know are skipped).
        pub(crate) fn decode(&self, tokens: &[u32]) -> String {
            self.tokenizer
                .decode(tokens, false)
                .unwrap_or_else(|_| "\u{fffd}".to_string())
        }

        /// The first visible character of `text` that the tokenizer turns
        /// into no token at all when alone, with its byte offset. (A dropped
        /// character shifts the offsets after it, so the gap in the offsets
        /// does not say which one it was.)
        fn untokenizable(&self, text: &str) -> Option<(usize, char)> {
            let mut tried = std::collections::HashSet::new();
            text.char_indices().find(|&(_, c)| {
                visible(c)
                    && tried.insert(c)
                    && self
                        .tokenizer
                        .encode(c.encode_utf8(&mut [0; 4]) as &str, false)
                        .map_or(true, |e| e.get_ids().is_empty())
            })
        }
    }

    /// A `tokenizer.json` whose BPE model has `tokens` (id = index) and no
    /// merges: with GPT-2's byte-level pre-tokeniser (no splitting regex,
    /// no prefix space) and decoder when `byte_level`, else no
    /// pre-tokeniser and a decoder that joins tokens without spaces.
    pub(crate) fn bpe_json(tokens: Vec<String>, byte_level: bool) -> Result<Vec<u8>> {
        use tokenizers::decoders::fuse::Fuse;
        use tokenizers::models::bpe::BPE;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;

        let failed = |e: tokenizers::Error| {
            Error::invalid("tokenizer", format!("cannot build the tokenizer.json: {e}"))
        };
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .into_iter()
            .enumerate()
            .map(|(id, t)| (t, id as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, Vec::new())
            .build()
            .map_err(failed)?;
        let mut tokenizer = tokenizers::Tokenizer::new(bpe);
        if byte_level {
            let level = ByteLevel::new(false, false, false);
            tokenizer.with_pre_tokenizer(Some(level));
            tokenizer.with_decoder(Some(level));
        } else {
            tokenizer.with_decoder(Some(Fuse::new()));
        }
        Ok(tokenizer.to_string(true).map_err(failed)?.into_bytes())
    }

    /// The first visible character of `text` that no token's byte `offsets`
    /// cover: one a tokenizer without an unknown token dropped. Whitespace and
    /// control characters are exempt (pre-tokenizers and normalisers may
    /// rightly drop them).
    fn dropped(text: &str, offsets: &[(usize, usize)]) -> Option<(usize, char)> {
        let mut starts = vec![0i64; text.len() + 1];
        for &(start, end) in offsets {
            if start < end && end <= text.len() {
                starts[start] += 1;
                starts[end] -= 1;
            }
        }
        let mut depth = 0;
        let mut covering = Vec::with_capacity(text.len());
        for d in &starts[..text.len()] {
            depth += d;
            covering.push(depth > 0);
        }
        text.char_indices()
            .find(|&(at, c)| visible(c) && !covering[at..at + c.len_utf8()].iter().any(|&b| b))
    }

    /// Neither whitespace nor a control character.
    fn visible(c: char) -> bool {
        !(c.is_whitespace() || c.is_control())
    }
}

#[cfg(not(feature = "host"))]
mod imp {
    use crate::error::{Error, Result};

    /// Why this build reads and writes no `tokenizer.json`.
    const NO_TOKENIZERS: &str = "this build has no `tokenizers` library (the `host` feature \
                                 of funetun-ml has); use the `char` or `byte` tokenizer";

    /// No Hugging Face tokenizer exists in this build.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum HfTokenizer {}

    impl HfTokenizer {
        /// Refused: there is no `tokenizers` library.
        pub(crate) fn parse(_json: &[u8]) -> Result<Self> {
            Err(Error::invalid("tokenizer.json", NO_TOKENIZERS.to_string()))
        }

        pub(crate) fn json(&self) -> &str {
            match *self {}
        }

        pub(crate) fn size(&self) -> usize {
            match *self {}
        }

        pub(crate) fn encode(&self, _text: &str) -> Result<Vec<u32>> {
            match *self {}
        }

        pub(crate) fn decode(&self, _tokens: &[u32]) -> String {
            match *self {}
        }
    }

    /// Refused: there is no `tokenizers` library.
    pub(crate) fn bpe_json(_tokens: Vec<String>, _byte_level: bool) -> Result<Vec<u8>> {
        Err(Error::invalid("tokenizer", NO_TOKENIZERS.to_string()))
    }
}
