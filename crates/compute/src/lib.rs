//! Generic verified compute: sandboxed WebAssembly tasks and their
//! validation by redundancy.
//!
//! - [`sandbox`]: the runtime (wasmtime: fuel, a memory cap, canonical
//!   NaNs, nothing from the host) and the task ABI, JSON in and JSON out;
//!   failures are results of their own [`FailureClass`].
//! - [`validator`]: the owner's optional `init_valid` / `compare_valid`,
//!   run in the same sandbox.
//! - [`quorum`]: BOINC's redundancy rule, choosing the canonical result.
//! - [`examples`]: the example tasks shipped inside the binary.

pub mod examples;
pub mod quorum;
pub mod sandbox;
pub mod validator;

pub use quorum::{Redundancy, Verdict, decide};
pub use sandbox::{Failure, FailureClass, Input, Limits, Outcome, Program, Sandbox};
pub use validator::Validator;
