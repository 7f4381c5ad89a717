//! Which updates validators check.
//!
//! The draw is made after the update's hash is on-chain, from randomness the
//! trainer could not know when it committed: `u = keccak256(secret ‖ hash of
//! the block that included the submission ‖ update index)`, read as a number
//! in [0, 1); the update is checked iff `u < p`. The secret is random per
//! job, kept in the orchestrator's database and never served, so neither the
//! trainer nor a block producer alone can predict or steer the draw.
//!
//! `p` comes from [`replay_probability`]: adaptive replication. A trainer
//! on probation — no accepted update yet, or rejected since its last
//! accepted one — is replayed with probability 1; each clean update after
//! that halves the job's `replay_prob`, never below `replay_floor`:
//! `p = max(floor, replay_prob · ½^(clean − 1))`. The same record sizes
//! tasks ([`task_steps`]): a trainer rejected since its last accepted update
//! gets a quarter task, a new one at most the spec's M task, and L tasks
//! need a reputation of [`L_REPUTATION_TASKS`] full tasks.

use alloy_primitives::{B256, U256};
use funetun_core::JobSpec;
use funetun_core::api::Capacity;

/// Full tasks' worth of reputation a trainer needs for an L task.
pub const L_REPUTATION_TASKS: f64 = 4.0;

/// What is known of a trainer's record when its update is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TrainerRecord {
    /// Its accepted updates (all jobs).
    pub accepted: u64,
    /// Its rejected updates (all jobs).
    pub rejected: u64,
    /// Accepted updates since its last rejection (or since it joined).
    pub clean: u64,
    /// Its reputation now (effective compute points).
    pub reputation: f64,
}

impl TrainerRecord {
    /// Rejected since its last accepted update.
    pub fn slashed_recently(&self) -> bool {
        self.rejected > 0 && self.clean == 0
    }
}

/// The probability that an update of a trainer with `record` is checked.
pub fn replay_probability(spec: &JobSpec, record: &TrainerRecord) -> f64 {
    let v = &spec.validation;
    let base = v.replay_prob.clamp(0.0, 1.0);
    if base == 0.0 || !v.adaptive {
        return base;
    }
    if record.clean == 0 {
        return 1.0;
    }
    let halvings = (record.clean - 1).min(64) as i32;
    (base * 0.5f64.powi(halvings)).max(v.replay_floor.clamp(0.0, base))
}

/// Local steps of a task for a trainer of `capacity` with `record`.
pub fn task_steps(spec: &JobSpec, capacity: Capacity, record: &TrainerRecord) -> u32 {
    if !spec.validation.adaptive {
        return spec.steps_for(capacity);
    }
    if record.slashed_recently() {
        return spec.steps.div_ceil(4).max(1);
    }
    let task = f64::from(spec.steps) * crate::reputation::step_ut(spec);
    let proven = record.reputation >= L_REPUTATION_TASKS * task;
    let capacity = match capacity {
        Capacity::L if !proven => Capacity::M,
        c => c,
    };
    spec.steps_for(capacity)
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

    fn record(accepted: u64, rejected: u64, clean: u64) -> TrainerRecord {
        TrainerRecord {
            accepted,
            rejected,
            clean,
            reputation: 0.0,
        }
    }

    #[test]
    fn probation_replays_everything_and_a_clean_record_halves_down_to_the_floor() {
        let spec = JobSpec::default();
        let p = |clean| replay_probability(&spec, &record(clean, 0, clean));
        assert_eq!(p(0), 1.0);
        assert_eq!(p(1), 0.25);
        assert_eq!(p(2), 0.125);
        assert_eq!(p(3), 0.0625);
        assert_eq!(p(4), 0.05);
        assert_eq!(p(1000), 0.05);
        // A rejection resets the record to probation.
        assert_eq!(replay_probability(&spec, &record(9, 1, 0)), 1.0);
    }

    #[test]
    fn zero_replay_and_fixed_policies_ignore_the_record() {
        let mut spec = JobSpec::default();
        spec.validation.adaptive = false;
        assert_eq!(replay_probability(&spec, &record(0, 0, 0)), 0.25);
        spec.validation.adaptive = true;
        spec.validation.replay_prob = 0.0;
        spec.validation.replay_floor = 0.0;
        assert_eq!(replay_probability(&spec, &record(0, 3, 0)), 0.0);
    }

    #[test]
    fn tasks_shrink_after_a_rejection_and_grow_with_reputation() {
        let spec = JobSpec::default();
        let steps = spec.steps;
        assert_eq!(task_steps(&spec, Capacity::M, &record(0, 0, 0)), steps);
        assert_eq!(task_steps(&spec, Capacity::L, &record(0, 0, 0)), steps);
        assert_eq!(
            task_steps(&spec, Capacity::S, &record(0, 0, 0)),
            steps.div_ceil(2)
        );
        assert_eq!(
            task_steps(&spec, Capacity::M, &record(3, 1, 0)),
            steps.div_ceil(4)
        );
        let mut proven = record(10, 0, 10);
        proven.reputation = 4.0 * f64::from(steps) * crate::reputation::step_ut(&spec);
        assert_eq!(task_steps(&spec, Capacity::L, &proven), 2 * steps);
    }
}
