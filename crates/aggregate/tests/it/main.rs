//! Integration tests of the aggregation crate, through its public API.
//!
//! - `support`: naive reference implementations and shared helpers;
//! - `rules`: every rule equals its reference on random inputs;
//! - `invariance`: permutation invariance and identical bits at any thread
//!   count and SIMD level;
//! - `robustness`: honest ranges under attack, Krum's choice;
//! - `errors`: every error path;
//! - `outer`: the outer optimizers against PyTorch.

mod errors;
mod invariance;
mod outer;
mod robustness;
mod rules;
mod support;
