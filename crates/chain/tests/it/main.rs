//! Integration tests of the chain crate, in one binary so they link once.

mod common;
mod contract;
