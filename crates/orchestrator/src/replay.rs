//! Which updates validators check.
//!
//! The draw is made after the update's hash is on-chain, from randomness the
//! trainer could not know when it committed: `u = keccak256(secret ‖ hash of
//! the block that included the submission ‖ update index)`, read as a number
//! in [0, 1); the update is checked iff `u < p`. The secret is random per
//! job, kept in the orchestrator's database and never served, so neither the
//! trainer nor a block producer alone can predict or steer the draw.
//!
//! `p` comes from [`replay_probability`] alone, so adaptive replication
//! (lower `p` for trainers with a clean record, down to the spec's
//! `replay_floor`) changes one function.

use alloy_primitives::{B256, U256};
use funetun_core::JobSpec;

/// What is known of a trainer's record when its update is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrainerRecord {
    /// Its accepted updates (all jobs).
    pub accepted: u64,
    /// Its rejected updates (all jobs).
    pub rejected: u64,
}

/// The probability that an update of a trainer with `record` is checked.
/// For now the spec's `replay_prob` for everyone.
pub fn replay_probability(spec: &JobSpec, record: &TrainerRecord) -> f64 {
    let _ = record;
    spec.validation.replay_prob.clamp(0.0, 1.0)
}

/// The draw `u ∈ [0, 1)` of an update.
pub fn draw(secret: &[u8], block_hash: B256, index: U256) -> f64 {
    let mut msg = Vec::with_capacity(secret.len() + 64);
    msg.extend_from_slice(secret);
    msg.extend_from_slice(block_hash.as_slice());
    msg.extend_from_slice(&index.to_be_bytes::<32>());
    let h = funetun_core::keccak256(&msg);
    let top = u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) >> 11;
    top as f64 / (1u64 << 53) as f64
}

/// Whether the update is checked.
pub fn drawn(secret: &[u8], block_hash: B256, index: U256, p: f64) -> bool {
    p >= 1.0 || draw(secret, block_hash, index) < p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_uniform_enough_and_respect_the_bounds() {
        let secret = [7u8; 32];
        let n = 4000;
        let hits = (0..n)
            .filter(|i| drawn(&secret, B256::repeat_byte(1), U256::from(*i as u64), 0.25))
            .count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert!(!drawn(&secret, B256::ZERO, U256::ZERO, 0.0));
        assert!(drawn(&secret, B256::ZERO, U256::ZERO, 1.0));
        let u = draw(&secret, B256::ZERO, U256::from(3u64));
        assert!((0.0..1.0).contains(&u));
        assert_eq!(u, draw(&secret, B256::ZERO, U256::from(3u64)));
        assert_ne!(u, draw(&[8u8; 32], B256::ZERO, U256::from(3u64)));
    }

    #[test]
    fn the_probability_is_the_specs_for_now() {
        let spec = JobSpec::default();
        assert_eq!(
            replay_probability(&spec, &TrainerRecord::default()),
            spec.validation.replay_prob
        );
    }
}
