//! The contract's custom errors in words: what was refused and what to do
//! next. `ChainError`'s messages use these, so every command that touches
//! the chain explains a revert the same way.

use funetun_core::amount::format_eth;

use crate::bindings::JobManager::JobManagerErrors as E;

/// One sentence (or two) for a revert: what the contract refused, why, and
/// the next step where there is one. Starts with the error's name, so logs
/// and tests can still match it.
pub fn explain(error: &E) -> String {
    let (name, words) = words(error);
    format!("{name}: {words}")
}

/// A unix time as `unix time T (in N s)` or `(N s ago)` against this
/// machine's clock.
pub fn when(unix: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if unix > now {
        format!("unix time {unix} (in {} s)", unix - now)
    } else {
        format!("unix time {unix} ({} s ago)", now - unix)
    }
}

fn words(error: &E) -> (&'static str, String) {
    match error {
        E::InvalidParameter(_) => (
            "InvalidParameter",
            "a contract parameter is out of range (a basis-point share above 100% or a cooldown \
             too long)"
                .into(),
        ),
        E::ZeroHash(_) => (
            "ZeroHash",
            "a hash of zero was given where a real keccak256 hash is needed".into(),
        ),
        E::ZeroAddress(_) => (
            "ZeroAddress",
            "the zero address was given where an account is needed".into(),
        ),
        E::InvalidRounds(_) => (
            "InvalidRounds",
            "the job's number of rounds must be at least 1".into(),
        ),
        E::InvalidQuorum(e) => (
            "InvalidQuorum",
            format!(
                "a quorum of {} validators is not allowed; use 1 or more",
                e.quorum
            ),
        ),
        E::InvalidReward(_) => (
            "InvalidReward",
            "the base reward must be more than zero and fit the contract's amounts".into(),
        ),
        E::DepositTooSmall(e) => (
            "DepositTooSmall",
            format!(
                "a deposit of {} does not cover one update's base reward of {}; deposit more",
                format_eth(e.deposit),
                format_eth(e.baseReward)
            ),
        ),
        E::AmountTooLarge(_) => (
            "AmountTooLarge",
            "an amount is larger than the contract can hold (2^96 wei)".into(),
        ),
        E::JobNotFound(e) => (
            "JobNotFound",
            format!(
                "job {} does not exist on this contract; check the job id and --contract",
                e.jobId
            ),
        ),
        E::JobNotActive(e) => (
            "JobNotActive",
            format!(
                "job {} is not active (not started, finished or cancelled); `funetun job status {}` \
                 shows its state",
                e.jobId, e.jobId
            ),
        ),
        E::NotJobOwner(e) => (
            "NotJobOwner",
            format!(
                "only job {}'s owner may do this; use the key that created it",
                e.jobId
            ),
        ),
        E::NotLeader(e) => (
            "NotLeader",
            format!(
                "only job {}'s orchestrator (its leader) may do this",
                e.jobId
            ),
        ),
        E::WrongRound(e) => (
            "WrongRound",
            format!(
                "the job is at round {}, not {}: the round moved on; lease again for the current one",
                e.expected, e.got
            ),
        ),
        E::NotTrainer(e) => (
            "NotTrainer",
            format!(
                "{} holds no trainer stake (never staked, left, or slashed below the minimum); \
                 `funetun trainer` stakes when it starts, `funetun account` shows the stake",
                e.account
            ),
        ),
        E::NotValidator(e) => (
            "NotValidator",
            format!(
                "{} holds no validator stake (never staked, left, or slashed below the minimum); \
                 `funetun validator` stakes when it starts, `funetun account` shows the stake",
                e.account
            ),
        ),
        E::StakeTooLow(e) => (
            "StakeTooLow",
            format!(
                "a stake of {} is below the contract's minimum of {}; pass a --stake of at least \
                 that",
                format_eth(e.stake),
                format_eth(e.minimum)
            ),
        ),
        E::AlreadySubmitted(e) => (
            "AlreadySubmitted",
            format!(
                "this trainer already submitted on this shard in this round of job {} (one update \
                 per trainer, shard and round; update index {})",
                e.jobId, e.index
            ),
        ),
        E::UnknownUpdate(e) => (
            "UnknownUpdate",
            format!("job {} has no update with index {}", e.jobId, e.index),
        ),
        E::AlreadyDecided(e) => (
            "AlreadyDecided",
            format!(
                "update {} of job {} already has its verdict",
                e.index, e.jobId
            ),
        ),
        E::SelfValidation(_) => (
            "SelfValidation",
            "a validator may not vote on its own update".into(),
        ),
        E::AlreadyVoted(e) => (
            "AlreadyVoted",
            format!("{} already voted on this update", e.validator),
        ),
        E::UnderReview(e) => (
            "UnderReview",
            format!(
                "update {} of job {} awaits validators' votes (drawn or challenged); wait for its \
                 verdict, or for its decision timeout to settle it",
                e.index, e.jobId
            ),
        ),
        E::LeaderGrace(e) => (
            "LeaderGrace",
            format!(
                "only job {}'s leader may finalize this update until {} (unix time); anyone may \
                 after that",
                e.jobId, e.until
            ),
        ),
        E::WindowOpen(e) => (
            "WindowOpen",
            format!(
                "the update's challenge window is open until {}; try again after it",
                when(e.deadline.saturating_to())
            ),
        ),
        E::WindowClosed(e) => (
            "WindowClosed",
            format!(
                "the update's challenge window closed at {}",
                when(e.deadline.saturating_to())
            ),
        ),
        E::AlreadyChallenged(e) => (
            "AlreadyChallenged",
            format!(
                "update {} of job {} is already challenged",
                e.index, e.jobId
            ),
        ),
        E::WrongBond(e) => (
            "WrongBond",
            format!(
                "a challenge bond must be exactly {}, not {}",
                format_eth(e.expected),
                format_eth(e.got)
            ),
        ),
        E::PendingVerdicts(e) => (
            "PendingVerdicts",
            format!(
                "{} of this account's updates or votes still await a verdict; leave once they are \
                 decided (`funetun account` shows the count)",
                e.pending
            ),
        ),
        E::TooManyPending(_) => (
            "TooManyPending",
            "too many of this account's updates and votes await verdicts at once; wait for some \
             to be decided"
                .into(),
        ),
        E::NotRegistered(e) => (
            "NotRegistered",
            format!("{} holds no role, so there is nothing to leave", e.account),
        ),
        E::Leaving(e) => (
            "Leaving",
            format!(
                "this account asked to leave; its stake unlocks at {}. Take the stake out with \
                 `funetun unstake` before staking again",
                when(e.unlockAt.saturating_to())
            ),
        ),
        E::NotLeaving(e) => (
            "NotLeaving",
            format!(
                "{} has not asked to leave; run `funetun leave` first, then `funetun unstake` \
                 after the cooldown",
                e.account
            ),
        ),
        E::StakeLocked(e) => (
            "StakeLocked",
            format!(
                "the stake is still locked; it unlocks at {}. Run `funetun unstake` again then",
                when(e.unlockAt.saturating_to())
            ),
        ),
        E::NothingToWithdraw(_) => (
            "NothingToWithdraw",
            "there is nothing to withdraw (no credits, or no unused deposit left): it was \
             withdrawn already, or nothing was earned yet; `funetun account` shows the credits"
                .into(),
        ),
        E::TransferFailed(_) => (
            "TransferFailed",
            "the contract could not send the ether: the recipient refused it".into(),
        ),
        E::Reentrancy(_) => ("Reentrancy", "a reentrant call was refused".into()),
        E::NotAccepted(e) => (
            "NotAccepted",
            format!(
                "update {} of job {} is not accepted, so it cannot get a bonus",
                e.index, e.jobId
            ),
        ),
        E::NoBonus(e) => (
            "NoBonus",
            format!("job {} has no bonus reward to award", e.jobId),
        ),
        E::InsufficientDeposit(e) => (
            "InsufficientDeposit",
            format!(
                "the job's remaining deposit of {} cannot pay {}; it has no more money for updates",
                format_eth(e.remaining),
                format_eth(e.needed)
            ),
        ),
        E::NotTrainingJob(e) => (
            "NotTrainingJob",
            format!(
                "{} is a task batch, not a training job; it has no rounds or checkpoints",
                e.jobId
            ),
        ),
        E::NotTaskBatch(e) => (
            "NotTaskBatch",
            format!(
                "{} is a training job, not a task batch; create a batch with `funetun tasks \
                 submit --deposit …`",
                e.jobId
            ),
        ),
        E::TaskAlreadySettled(e) => (
            "TaskAlreadySettled",
            format!(
                "task {} of batch {} was paid and slashed already",
                e.taskId, e.batchId
            ),
        ),
        E::BatchNotExpired(e) => (
            "BatchNotExpired",
            format!(
                "the batch pays results until {}; its unused deposit can be withdrawn after that",
                when(e.expiresAt.saturating_to())
            ),
        ),
        E::BatchExpired(e) => (
            "BatchExpired",
            format!(
                "the batch expired at {}; it settles no more tasks (submit new ones to a new batch)",
                when(e.expiresAt.saturating_to())
            ),
        ),
        E::BadSettlement(_) => (
            "BadSettlement",
            "a task settlement named a worker twice or more than 32 workers".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::JobManager;
    use alloy::primitives::U256;

    #[test]
    fn reverts_read_as_words_with_the_next_step() {
        let nothing = explain(&E::NothingToWithdraw(JobManager::NothingToWithdraw {}));
        assert!(nothing.starts_with("NothingToWithdraw: "), "{nothing}");
        assert!(nothing.contains("withdrawn already"), "{nothing}");
        assert!(!nothing.contains("NothingToWithdraw(NothingToWithdraw"));

        let low = explain(&E::StakeTooLow(JobManager::StakeTooLow {
            stake: U256::from(10u64).pow(U256::from(15u64)),
            minimum: U256::from(10u64).pow(U256::from(16u64)),
        }));
        assert!(
            low.contains("0.001 ETH") && low.contains("minimum of 0.01 ETH"),
            "{low}"
        );

        let locked = explain(&E::StakeLocked(JobManager::StakeLocked {
            unlockAt: U256::from(u64::MAX / 2),
        }));
        assert!(
            locked.contains("funetun unstake") && locked.contains("(in "),
            "{locked}"
        );

        let job = explain(&E::JobNotFound(JobManager::JobNotFound {
            jobId: U256::from(99u64),
        }));
        assert!(job.contains("job 99 does not exist"), "{job}");
    }
}
