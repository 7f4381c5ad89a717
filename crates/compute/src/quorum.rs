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

use serde::{Deserialize, Serialize};

use crate::sandbox::{Outcome, Sandbox};
use crate::validator::Validator;

/// How many replicas a task takes (BOINC's work-unit fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redundancy {
    /// Agreeing results needed for a canonical one.
    pub min_quorum: u32,
    /// Replicas issued at first.
    pub target_nresults: u32,
    /// Failures (error results) tolerated before the task is given up,
    /// unless they form a quorum.
    pub max_error_results: u32,
    /// Most replicas ever issued.
    pub max_total_results: u32,
}

impl Default for Redundancy {
    /// Two agreeing results of two issued, up to six in all.
    fn default() -> Self {
        Redundancy {
            min_quorum: 2,
            target_nresults: 2,
            max_error_results: 3,
            max_total_results: 6,
        }
    }
}

impl Redundancy {
    /// Checks the settings can be met; the message names the field and
    /// the fix.
    pub fn check(&self) -> Result<(), String> {
        if self.min_quorum == 0 {
            return Err("min_quorum must be at least 1".into());
        }
        if self.target_nresults < self.min_quorum {
            return Err(format!(
                "target_nresults ({}) is below min_quorum ({}): a quorum needs that many replicas; \
                 raise target_nresults",
                self.target_nresults, self.min_quorum
            ));
        }
        if self.max_total_results < self.target_nresults {
            return Err(format!(
                "max_total_results ({}) is below target_nresults ({}); raise max_total_results",
                self.max_total_results, self.target_nresults
            ));
        }
        if self.max_total_results > 64 {
            return Err(format!(
                "max_total_results ({}) is over 64; a task runs at most 64 replicas",
                self.max_total_results
            ));
        }
        Ok(())
    }
}

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
