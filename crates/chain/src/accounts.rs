//! A job's money and verdicts, read from the chain alone: what was paid and
//! slashed, to whom, how many updates each trainer had accepted and
//! rejected, and whether the job's books balance.
//!
//! The contract keeps one invariant per job (docs/contract.md):
//!
//! ```text
//! deposited + slashed in = paid + reserved + remaining + withdrawn
//! ```
//!
//! where *paid* is every base reward of an accepted update, every bonus and
//! every validation reward, and *reserved* is one base reward for each update still pending
//! or challenged. [`JobAccounts::balances`] checks it.

use std::collections::BTreeMap;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;

use crate::bindings::JobManager::JobManagerEvents as E;
use crate::bindings::{split_update_index, update_status};
use crate::error::Result;
use crate::events::LoggedEvent;
use crate::ledger::Ledger;

/// One account's part in a job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountTally {
    /// Credited for the job: base rewards, bonuses, challengers' winnings.
    pub paid: U256,
    /// Taken from its stake for the job.
    pub slashed: U256,
    /// Its updates accepted.
    pub accepted: u64,
    /// Its updates rejected.
    pub rejected: u64,
}

/// A job's books, from its on-chain view and its events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobAccounts {
    /// The owner's deposit.
    pub deposited: U256,
    /// Slashed stake credited to the job.
    pub slashed_in: U256,
    /// Base rewards of accepted updates, bonuses and validation rewards.
    pub paid: U256,
    /// The validation rewards (part of `paid`).
    pub validators_paid: U256,
    /// One base reward for each update still pending or challenged.
    pub reserved: U256,
    /// Deposit neither paid, reserved nor withdrawn.
    pub remaining: U256,
    /// Withdrawn by the owner.
    pub withdrawn: U256,
    /// Per account, in address order.
    pub accounts: BTreeMap<Address, AccountTally>,
}

impl JobAccounts {
    /// Whether `deposited + slashed in = paid + reserved + remaining + withdrawn`.
    pub fn balances(&self) -> bool {
        self.deposited + self.slashed_in
            == self.paid + self.reserved + self.remaining + self.withdrawn
    }

    /// Updates accepted, over every trainer.
    pub fn accepted(&self) -> u64 {
        self.accounts.values().map(|a| a.accepted).sum()
    }

    /// Updates rejected, over every trainer.
    pub fn rejected(&self) -> u64 {
        self.accounts.values().map(|a| a.rejected).sum()
    }

    /// The tally of `account` (zero when it took no part).
    pub fn of(&self, account: Address) -> AccountTally {
        self.accounts.get(&account).cloned().unwrap_or_default()
    }
}

/// Tallies `events` for job `job` (events of other jobs are ignored).
/// `reserved`, `deposited`, `remaining`, `withdrawn` and `slashed_in` come
/// from the job's view and are filled in by [`Ledger::job_accounts`].
pub fn tally(job: U256, base_reward: U256, events: &[LoggedEvent]) -> JobAccounts {
    let mut out = JobAccounts::default();
    for e in events {
        match &e.event {
            E::UpdateDecided(d) if d.jobId == job => {
                let trainer = split_update_index(d.index).trainer;
                // Each validator's share comes with its own `Credited` event.
                out.paid += d.validatorsPaid;
                out.validators_paid += d.validatorsPaid;
                let t = out.accounts.entry(trainer).or_default();
                if d.accepted {
                    out.paid += base_reward;
                    t.paid += base_reward;
                    t.accepted += 1;
                } else {
                    t.rejected += 1;
                }
            }
            // The trainer's share of a bonus comes with its own `Credited` event.
            E::BonusAwarded(b) if b.jobId == job => out.paid += b.amount,
            E::Credited(c) if c.jobId == job => {
                out.accounts.entry(c.account).or_default().paid += c.amount;
            }
            E::Slashed(s) if s.jobId == job => {
                out.accounts.entry(s.account).or_default().slashed += s.amount;
            }
            _ => {}
        }
    }
    out
}

impl<P: Provider + Clone> Ledger<P> {
    /// The books of `job` from the events of blocks `from..=to` (which must
    /// cover the job's whole life) and its current on-chain view.
    pub async fn job_accounts(&self, job: U256, from: u64, to: u64) -> Result<JobAccounts> {
        let view = self.job(job).await?;
        let events = self.events(from, Some(to)).await?;
        let mut out = tally(job, view.baseReward, &events);
        for e in &events {
            if let E::UpdateSubmitted(s) = &e.event
                && s.jobId == job
            {
                let status = self.update(job, s.index).await?.status;
                if status == update_status::PENDING || status == update_status::CHALLENGED {
                    out.reserved += view.baseReward;
                }
            }
        }
        out.deposited = view.deposited;
        out.slashed_in = view.slashedIn;
        out.remaining = view.remaining;
        out.withdrawn = view.withdrawn;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::B256;

    use super::*;
    use crate::bindings::{JobManager, update_index};

    fn logged(event: E) -> LoggedEvent {
        LoggedEvent {
            block_number: 1,
            tx_hash: B256::ZERO,
            log_index: 0,
            event,
        }
    }

    #[test]
    fn verdicts_bonuses_and_slashes_are_tallied_per_account() {
        let job = U256::from(1);
        let other = U256::from(2);
        let reward = U256::from(100);
        let (good, bad, challenger) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
        );
        let decided = |job_id, trainer, accepted, validators_paid: u64| {
            logged(E::UpdateDecided(JobManager::UpdateDecided {
                jobId: job_id,
                index: update_index(0, 0, trainer),
                decidedBy: Address::ZERO,
                accepted,
                validatorsPaid: U256::from(validators_paid),
            }))
        };
        let events = vec![
            decided(job, good, true, 0),
            decided(job, bad, false, 8),
            decided(other, good, true, 1000),
            logged(E::BonusAwarded(JobManager::BonusAwarded {
                jobId: job,
                index: update_index(0, 0, good),
                amount: U256::from(7),
            })),
            logged(E::Credited(JobManager::Credited {
                account: challenger,
                jobId: job,
                amount: U256::from(30),
            })),
            logged(E::Slashed(JobManager::Slashed {
                account: bad,
                jobId: job,
                amount: U256::from(50),
            })),
        ];
        let books = tally(job, reward, &events);
        assert_eq!(books.paid, U256::from(115));
        assert_eq!(books.validators_paid, U256::from(8));
        assert_eq!((books.accepted(), books.rejected()), (1, 1));
        assert_eq!(books.of(good).paid, reward);
        assert_eq!(books.of(bad).slashed, U256::from(50));
        assert_eq!(books.of(challenger).paid, U256::from(30));
        assert_eq!(books.of(Address::ZERO), AccountTally::default());
    }

    #[test]
    fn the_books_balance_only_when_nothing_is_missing() {
        let mut books = JobAccounts {
            deposited: U256::from(1000),
            slashed_in: U256::from(50),
            paid: U256::from(300),
            validators_paid: U256::ZERO,
            reserved: U256::from(100),
            remaining: U256::from(600),
            withdrawn: U256::from(50),
            accounts: BTreeMap::new(),
        };
        assert!(books.balances());
        books.remaining -= U256::from(1);
        assert!(!books.balances());
    }
}
