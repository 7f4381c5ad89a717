//! Dishonest validators: votes cast without checking anything, for tests
//! of the quorum (`funetun validator --attack KIND`). Such a validator
//! loses `VALIDATOR_PENALTY_BPS` of its stake whenever its stored vote
//! loses. Compiled only with the `byzantine` feature.

use alloy_primitives::{Address, U256};
use funetun_core::api::ValidationAssignment;
use funetun_participant::Workbench;

use crate::check::Verdict;
use crate::voter::{Judgement, Voter};

/// How a dishonest validator votes: without checking anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidatorAttack {
    /// Every update valid.
    AlwaysValid,
    /// Every update invalid.
    AlwaysInvalid,
    /// A coin flip per update.
    Random,
}

impl std::str::FromStr for ValidatorAttack {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "always-valid" => Ok(Self::AlwaysValid),
            "always-invalid" => Ok(Self::AlwaysInvalid),
            "random" => Ok(Self::Random),
            _ => Err(format!(
                "unknown validator attack `{s}`; use always-valid, always-invalid or random"
            )),
        }
    }
}

impl std::fmt::Display for ValidatorAttack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AlwaysValid => "always-valid",
            Self::AlwaysInvalid => "always-invalid",
            Self::Random => "random",
        })
    }
}

impl ValidatorAttack {
    /// The vote on update `index` (the coin of `random` is keccak256 of
    /// the validator and the index, so a rerun votes the same).
    pub fn vote(self, validator: Address, index: U256) -> bool {
        match self {
            Self::AlwaysValid => true,
            Self::AlwaysInvalid => false,
            Self::Random => {
                let mut msg = validator.to_vec();
                msg.extend_from_slice(&index.to_be_bytes::<32>());
                funetun_core::keccak256(&msg)[0] & 1 == 1
            }
        }
    }
}

impl Voter for ValidatorAttack {
    fn judge<'a>(
        &'a self,
        bench: &'a Workbench,
        assignment: &'a ValidationAssignment,
    ) -> Judgement<'a> {
        let verdict = Verdict {
            valid: self.vote(bench.address(), assignment.update_index),
            detail: format!("not checked ({self})"),
            steps: 0,
        };
        Box::pin(async move { Ok(verdict) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_print_back_and_vote_as_named() {
        for word in ["always-valid", "always-invalid", "random"] {
            assert_eq!(word.parse::<ValidatorAttack>().unwrap().to_string(), word);
        }
        assert!("sometimes".parse::<ValidatorAttack>().is_err());
        let me = Address::repeat_byte(9);
        assert!(ValidatorAttack::AlwaysValid.vote(me, U256::from(1u64)));
        assert!(!ValidatorAttack::AlwaysInvalid.vote(me, U256::from(1u64)));
        let votes: Vec<bool> = (0..64u64)
            .map(|i| ValidatorAttack::Random.vote(me, U256::from(i)))
            .collect();
        assert!(votes.iter().any(|v| *v) && votes.iter().any(|v| !*v));
        assert_eq!(votes[3], ValidatorAttack::Random.vote(me, U256::from(3u64)));
    }
}
