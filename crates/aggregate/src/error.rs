//! Errors of the aggregation crate.

/// Everything that can go wrong while parsing, aggregating or stepping.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A rule string does not name a known rule or has bad parameters.
    #[error("invalid aggregation rule `{input}`: {reason}; valid rules: {valid}")]
    ParseRule {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: String,
        /// The accepted forms.
        valid: &'static str,
    },
    /// An outer optimizer string does not name a known optimizer or has bad
    /// parameters.
    #[error("invalid outer optimizer `{input}`: {reason}; valid optimizers: {valid}")]
    ParseOuter {
        /// The string as given.
        input: String,
        /// What is wrong with it.
        reason: String,
        /// The accepted forms.
        valid: &'static str,
    },
    /// An outer optimizer state file does not fit the optimizer or model.
    #[error("outer optimizer state: {0}")]
    StateFile(String),
    /// No input vectors were given.
    #[error("no inputs to aggregate")]
    NoInputs,
    /// Input vectors (or an output buffer, parameter vector or optimizer state)
    /// do not all have the same length.
    #[error("length mismatch: {what} has length {found}, expected {expected}")]
    LengthMismatch {
        /// Which buffer is off, e.g. `input 3`.
        what: String,
        /// Its length.
        found: usize,
        /// The length of the first input.
        expected: usize,
    },
    /// An input holds NaN or an infinity.
    #[error("input {input} holds a non-finite value ({value}) at coordinate {coordinate}")]
    NonFinite {
        /// Index of the offending input, in the order given.
        input: usize,
        /// Index of its first non-finite coordinate.
        coordinate: usize,
        /// The value found there, as text (`NaN`, `inf`, `-inf`).
        value: String,
    },
    /// The rule needs more inputs than were given (e.g. trimmed mean with
    /// `2q >= n`, Krum with `n < 2f + 3`).
    #[error("rule `{rule}` needs {needed}, but got n = {n} inputs")]
    TooFewInputs {
        /// The rule, as its canonical string.
        rule: String,
        /// The condition on `n` that failed.
        needed: String,
        /// The number of inputs given.
        n: usize,
    },
    /// More inputs than the rule handles.
    #[error("rule `{rule}` takes at most {max} inputs, got n = {n}")]
    TooManyInputs {
        /// The rule, as its canonical string.
        rule: String,
        /// The largest `n` it takes.
        max: usize,
        /// The number of inputs given.
        n: usize,
    },
    /// Weights are missing, have the wrong count, or are not finite and
    /// non-negative with a positive sum.
    #[error("invalid weights: {0}")]
    Weights(String),
    /// A numeric option (outlier factor, thread count, …) is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// Optimizer state does not belong to this optimizer or model.
    #[error("invalid optimizer state: {0}")]
    State(String),
    /// An optimizer step produced a NaN or infinite parameter.
    #[error("the step diverged: {0}")]
    Diverged(String),
    /// A thread pool could not be built.
    #[error("cannot build thread pool: {0}")]
    ThreadPool(String),
}

/// Result alias for the aggregation crate.
pub type Result<T> = std::result::Result<T, Error>;
