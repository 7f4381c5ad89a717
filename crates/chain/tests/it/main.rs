//! Integration tests of the chain crate, in one binary so they link once.

mod artifact;
mod common;
mod contract;
mod devchain;
mod invariant;
mod verify;
