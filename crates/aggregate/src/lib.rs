//! Robust aggregation rules and outer optimizers on flat `f32` buffers, at
//! memory speed.
//!
//! The orchestrator of a Funetun job merges the accepted weight deltas of a
//! round into the next checkpoint. This crate does that merge on plain
//! slices: `n` inputs of `d` values each, borrowed, never copied. It knows
//! nothing of tensors, files, HTTP or chains.
//!
//! ```
//! use funetun_aggregate::{Exec, Options, Rule};
//! let deltas: Vec<Vec<f32>> = vec![vec![1.0, 2.0], vec![1.5, -1.0], vec![100.0, 2.5]];
//! let inputs: Vec<&[f32]> = deltas.iter().map(|d| d.as_slice()).collect();
//! let rule: Rule = "median".parse()?;
//! let agg = rule.aggregate(&inputs, &Options::default(), &Exec::sequential())?;
//! assert_eq!(agg.output, vec![1.5, 2.0]);
//! # Ok::<(), funetun_aggregate::Error>(())
//! ```
//!
//! # Modules
//!
//! - [`rule`]: the rules ([`Rule`]), their strings, options and reports, and
//!   the entry point [`Rule::aggregate`].
//! - [`outer`]: outer optimizers ([`Outer`]: SGD, Nesterov, Adam) and their
//!   state ([`OuterState`]).
//! - [`guard`]: input checks, norms and norm-outlier flags.
//! - [`exec`]: threads ([`Exec`]) and the fixed work split that makes
//!   results independent of the thread count.
//! - [`state_file`] (feature `tensors`): the outer optimizer's state as a
//!   canonical tensor file, shared by the orchestrator and `funetun aggregate`.
//! - [`membw`]: the read-once memory-bandwidth baseline for benchmarks.
//! - [`error`]: the crate's [`Error`] and [`Result`].
//!
//! Inside: `simd` (16-lane vectors for AVX-512, AVX2 and portable code, with
//! identical results), `network` (sorting networks), `order` (median and
//! trimmed mean), `combine` (weighted combinations and distances),
//! `pairwise` (Krum distances), `krum`, `iterative` (geometric median,
//! centered clipping).
//!
//! # Decisions
//!
//! - Even `n`: the median is the mean of the two middle values (not the lower
//!   one, as `torch.median` returns), computed in `f64`.
//! - Sums are `f64` in a fixed order, rounded to `f32` once; a zero median is
//!   `+0.0`. Krum ranks equal scores by input index.
//! - A NaN or infinity in an input is an error naming the input and the
//!   coordinate. An input whose L2 norm exceeds [`Options::outlier_factor`]
//!   times the median norm is *flagged* in the [`Report`], not dropped.
//! - The geometric median starts at the coordinate-wise median, steps by
//!   Weiszfeld with the Vardi–Zhang correction, and stops after `MAX_ITER`
//!   steps or when a step lowers the objective by at most `TOL` of it.
//! - Centered clipping starts at [`Options::center`] or the coordinate-wise
//!   median; `norm-clip` scales inputs as it reads them, never copying them.
//!
//! `docs/aggregation.md` has the full definitions and the measurements.
//!
//! # Determinism
//!
//! The output bits depend only on the inputs, the rule and its options: not
//! on the thread count, not on the SIMD level. Element-wise kernels compute
//! every output coordinate with the same sequential code; sums over
//! coordinates (norms, distances) add fixed-size blocks in a fixed order.
//! Median and trimmed mean depend only on the multiset of inputs
//! ([`Rule::is_order_free`]); the other rules add inputs in input order.
//!
//! # Speed
//!
//! Median and trimmed mean sort 16 coordinates at a time with a sorting
//! network over the `n` input rows, kept in vector registers for `n <= 32`,
//! reading each row as a sequential stream; they run at about the speed of
//! reading the inputs once. Mean and the iterative rules read the inputs once
//! per pass.

pub mod error;
pub mod exec;
pub mod guard;
pub mod membw;
pub mod outer;
pub mod rule;
#[cfg(feature = "tensors")]
pub mod state_file;

mod combine;
mod iterative;
mod krum;
mod network;
mod order;
mod pairwise;
mod simd;

pub use error::{Error, Result};
pub use exec::Exec;
pub use guard::{flag_outliers, norms};
pub use outer::{Outer, OuterState};
pub use rule::{Aggregate, Options, Report, Rule};
pub use simd::SimdLevel;
