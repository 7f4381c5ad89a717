//! Validation by redundancy, with BOINC's knobs: a task is run by several
//! participants (replicas), and a result becomes canonical when
//! `min_quorum` of them agree.
//!
//! [`decide`] is the whole rule, a pure function of the results in hand:
//!
//! 1. Results the owner's `init_valid` refuses are invalid at once.
//! 2. A valid result that agrees (`compare_valid`) with at least
//!    `min_quorum − 1` others is canonical (the earliest such, by
//!    arrival); every result that agrees with it is valid, every other
//!    one invalid. A quorum that agrees on a failure class (say every
//!    replica ran out of fuel) is a canonical result too: the task's answer
//!    is that failure, and the participants who computed it are paid.
//! 3. Without a quorum: wait while replicas are out; else stop with an error
//!    when more than `max_error_results` results are failures or
//!    `max_total_results` replicas were issued; else issue as many more as
//!    the largest agreeing group lacks (at least one).

pub use funetun_core::compute::Redundancy;

use crate::sandbox::{Outcome, Sandbox};
use crate::validator::Validator;

/// What to do with a task now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A canonical result: `results[canonical]`; `valid` agree with it
    /// (paid), `invalid` do not (slashed). Indices into the results given.
    Canonical {
        /// The canonical result.
        canonical: usize,
        /// Results equivalent to it, the canonical one included.
        valid: Vec<usize>,
        /// The rest.
        invalid: Vec<usize>,
    },
    /// Replicas are still out: wait for them.
    Wait,
    /// Issue this many more replicas.
    More(u32),
    /// No canonical result can be had within the limits; nobody is paid or
    /// slashed for this task.
    GiveUp(String),
}

/// Decides a task from the `results` in hand (in arrival order), with
/// `outstanding` replicas still leased and `issued` replicas created in
/// all (lapsed ones included).
pub fn decide(
    redundancy: &Redundancy,
    results: &[Outcome],
    outstanding: u32,
    issued: u32,
    sandbox: &Sandbox,
    validator: &Validator,
) -> Verdict {
    let valid: Vec<bool> = results
        .iter()
        .map(|r| validator.init_valid(sandbox, r))
        .collect();
    let mut largest = 0u32;
    for (i, a) in results.iter().enumerate() {
        if !valid[i] {
            continue;
        }
        let group: Vec<usize> = (0..results.len())
            .filter(|&j| valid[j] && (j == i || validator.compare_valid(sandbox, a, &results[j])))
            .collect();
        largest = largest.max(group.len() as u32);
        if group.len() as u32 >= redundancy.min_quorum {
            let invalid = (0..results.len()).filter(|j| !group.contains(j)).collect();
            return Verdict::Canonical {
                canonical: i,
                valid: group,
                invalid,
            };
        }
    }
    if issued == 0 {
        return Verdict::More(redundancy.target_nresults);
    }
    if outstanding > 0 {
        return Verdict::Wait;
    }
    let failures = results.iter().filter(|r| r.result.is_err()).count() as u32;
    if failures > redundancy.max_error_results {
        return Verdict::GiveUp(format!(
            "{failures} results were failures without a quorum (max_error_results is {})",
            redundancy.max_error_results
        ));
    }
    if issued >= redundancy.max_total_results {
        return Verdict::GiveUp(format!(
            "no {} results agreed among the {issued} replicas max_total_results allows",
            redundancy.min_quorum
        ));
    }
    let lacking = redundancy.min_quorum.saturating_sub(largest).max(1);
    Verdict::More(lacking.min(redundancy.max_total_results - issued))
}
