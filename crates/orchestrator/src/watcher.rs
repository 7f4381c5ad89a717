//! The chain watcher: applies the contract's events to the store, from the
//! block after the last one processed, in one transaction per batch that
//! also stores the new last block, so a restart neither misses nor
//! double-applies an event.
//!
//! Jobs whose leader is another address are ignored. Account events
//! (registrations, withdrawals) are recorded for everyone.

use std::collections::BTreeSet;

use alloy_primitives::{Address, B256, U256};
use funetun_chain::JobManager::JobManagerEvents as E;
use funetun_chain::LoggedEvent;
use funetun_core::protocol::NodeKind;
use rand_core::{OsRng, TryRngCore};

use crate::error::{Error, Result};
use crate::graph::Node;
use crate::state::AppState;
use crate::store::StoreTx;
use crate::store::jobs::NewJob;
use crate::store::meta::LAST_BLOCK;
use crate::store::participants::ROLE_OWNER;
use crate::util::now_secs;

/// Blocks per batch.
const BATCH: u64 = 5_000;

/// The last processed block, if any.
pub async fn last_block(state: &AppState) -> Result<Option<u64>> {
    state.store.last_block().await
}

/// Applies every confirmed event not yet applied; returns how many.
pub async fn poll(state: &AppState) -> Result<usize> {
    let head = match state.ledger.block_number().await {
        Ok(head) => {
            state.chain_seen.ok(head);
            head
        }
        Err(e) => {
            state.chain_seen.failed(&e);
            return Err(e.into());
        }
    };
    let head = head.saturating_sub(state.config.confirmations.max(1) - 1);
    let mut applied = 0;
    loop {
        let from = match last_block(state).await? {
            Some(b) => b + 1,
            None => state.config.start_block,
        };
        if from > head {
            return Ok(applied);
        }
        let to = head.min(from + BATCH - 1);
        let events = state.ledger.events(from, Some(to)).await?;
        applied += events.len();
        apply_batch(state, &events, to).await?;
    }
}

/// What a batch touched, and what links a trainer's `Slashed` to the
/// rejected update it pays for: the contract emits the slash before the
/// verdict (`_reject`), so a slash waits in `slashes` for a verdict of the
/// same transaction and trainer; one that comes after a verdict finds it in
/// `last_decided`.
#[derive(Default)]
struct Touched {
    accounts: BTreeSet<Address>,
    jobs: BTreeSet<u64>,
    last_decided: Option<(B256, u64, U256, Address)>,
    slashes: Vec<(B256, Address, U256)>,
}

async fn apply_batch(state: &AppState, events: &[LoggedEvent], to: u64) -> Result<()> {
    let mut tx = state.store.begin().await?;
    let mut touched = Touched::default();
    let now = now_secs();
    for logged in events {
        apply(state, &mut tx, logged, now, &mut touched).await?;
    }
    tx.set_meta(LAST_BLOCK, &to.to_string()).await?;
    tx.commit().await?;
    for account in touched.accounts {
        state.roles.invalidate(account);
    }
    // Totals the events do not carry (remaining deposit, slashes credited to
    // the job) are read from the contract; they are display values.
    for job in touched.jobs {
        if let Ok(view) = state.ledger.job(U256::from(job)).await {
            state
                .store
                .set_job_totals(job, view.remaining, view.slashedIn)
                .await?;
        }
    }
    if !events.is_empty() {
        state.wake.notify_one();
    }
    Ok(())
}

/// The job id and base reward of a job led here, `None` for someone else's.
async fn ours(tx: &mut StoreTx, job: U256) -> Result<Option<(u64, U256)>> {
    let job: u64 = job.saturating_to();
    Ok(tx.job_reward(job).await?.map(|reward| (job, reward)))
}

async fn apply(
    state: &AppState,
    tx: &mut StoreTx,
    logged: &LoggedEvent,
    now: u64,
    touched: &mut Touched,
) -> Result<()> {
    let g = &state.graph;
    match &logged.event {
        E::JobCreated(e) => {
            if e.leader != state.address {
                return Ok(());
            }
            let job: u64 = e.jobId.saturating_to();
            let mut secret = [0u8; 32];
            OsRng
                .try_fill_bytes(&mut secret)
                .map_err(|e| Error::Config(format!("no operating-system randomness: {e}")))?;
            tx.insert_job(&NewJob {
                job_id: job,
                owner: e.owner,
                leader: e.leader,
                spec_hash: e.specHash,
                rounds: u64::from(e.rounds),
                quorum: u64::from(e.quorum),
                challenge_window: u64::from(e.challengeWindow),
                deposit: e.deposit,
                base_reward: e.baseReward,
                bonus_reward: e.bonusReward,
                validation_reward: e.validationReward,
                secret: secret.to_vec(),
                created_at: now,
                created_block: logged.block_number,
            })
            .await?;
            tx.add_roles(e.owner, ROLE_OWNER, None).await?;
            g.record(
                Node::Peer(e.owner, NodeKind::Owner),
                Node::Contract,
                "createJob",
                now,
            );
            tracing::info!(job, owner = %e.owner, spec = %e.specHash, "job created with this orchestrator as leader");
        }
        E::CheckpointCommitted(e) => {
            if ours(tx, e.jobId).await?.is_some() {
                g.record(Node::Orchestrator, Node::Contract, "commitCheckpoint", now);
            }
        }
        E::UpdateSubmitted(e) => {
            let Some((job, _)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            let index = e.index;
            let round = funetun_chain::bindings::split_update_index(index).round;
            tx.insert_chain_update(
                job,
                index,
                round,
                e.trainer,
                e.updateHash,
                logged.tx_hash,
                logged.block_number,
                now,
            )
            .await?;
            tx.participant(e.trainer).await?;
            g.record(
                Node::Peer(e.trainer, NodeKind::Trainer),
                Node::Contract,
                "submitUpdate",
                now,
            );
            touched.jobs.insert(job);
        }
        E::VoteCast(e) => {
            let Some((job, _)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            tx.insert_chain_vote(job, e.index, e.validator, e.valid, logged.tx_hash)
                .await?;
            g.record(
                Node::Peer(e.validator, NodeKind::Validator),
                Node::Contract,
                "validateUpdate",
                now,
            );
        }
        E::Challenged(e) => {
            let Some((job, _)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            tx.mark_challenged(job, e.index).await?;
            tx.participant(e.challenger).await?;
            g.record(
                Node::Peer(e.challenger, NodeKind::Challenger),
                Node::Contract,
                "challenge",
                now,
            );
        }
        E::UpdateDecided(e) => {
            let Some((job, reward)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            let trainer = funetun_chain::bindings::split_update_index(e.index).trainer;
            let decided_by = (e.decidedBy != Address::ZERO).then_some(e.decidedBy);
            let paid = if e.accepted { reward } else { U256::ZERO };
            tx.decide_update(job, e.index, e.accepted, decided_by, paid)
                .await?;
            if !e.validatorsPaid.is_zero() {
                // Each validator's own credit comes with its `Credited` event.
                tx.add_validators_paid(job, e.validatorsPaid).await?;
            }
            tx.participant(trainer).await?;
            if e.accepted {
                tx.add_job_paid(job, reward).await?;
                tx.credit(trainer, reward, true).await?;
                tx.credit_training(&state.decay, job, e.index, now).await?;
            } else {
                tx.count_rejection(trainer).await?;
                if let Some(&(_, _, amount)) = touched
                    .slashes
                    .iter()
                    .find(|(txh, account, _)| *txh == logged.tx_hash && *account == trainer)
                {
                    tx.set_update_slashed(job, e.index, amount).await?;
                }
            }
            if let Some(validator) = decided_by {
                tx.insert_chain_vote(job, e.index, validator, e.accepted, logged.tx_hash)
                    .await?;
                g.record(
                    Node::Peer(validator, NodeKind::Validator),
                    Node::Contract,
                    "validateUpdate",
                    now,
                );
            } else {
                g.record(Node::Orchestrator, Node::Contract, "finalizeUpdate", now);
            }
            touched.last_decided = Some((logged.tx_hash, job, e.index, trainer));
            touched.jobs.insert(job);
        }
        E::UpdateVoided(e) => {
            let Some((job, _)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            tx.void_update(job, e.index).await?;
            tracing::warn!(job, index = %crate::util::index_text(e.index), "an update reached no quorum by its decision timeout and is void");
            touched.jobs.insert(job);
        }
        E::Slashed(e) => {
            tx.slash(e.account, e.amount).await?;
            if let Some((txh, job, index, trainer)) = touched.last_decided
                && txh == logged.tx_hash
                && trainer == e.account
            {
                tx.set_update_slashed(job, index, e.amount).await?;
            } else {
                touched.slashes.push((logged.tx_hash, e.account, e.amount));
            }
            touched.accounts.insert(e.account);
            if ours(tx, e.jobId).await?.is_some() {
                touched.jobs.insert(e.jobId.saturating_to());
            }
        }
        E::Credited(e) => {
            tx.credit(e.account, e.amount, false).await?;
        }
        E::TaskBatchCreated(e) => {
            if e.leader == state.address {
                tx.add_roles(e.owner, ROLE_OWNER, None).await?;
                g.record(
                    Node::Peer(e.owner, NodeKind::Owner),
                    Node::Contract,
                    "createTaskBatch",
                    now,
                );
            }
        }
        // A settlement's pay and slashes come with their own `Credited` and
        // `Slashed` events; the task's record is the store's.
        E::TaskSettled(_) => {}
        E::BonusAwarded(e) => {
            let Some((job, _)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            tx.add_job_paid(job, e.amount).await?;
            tx.add_update_paid(job, e.index, e.amount).await?;
            touched.jobs.insert(job);
        }
        E::Registered(e) => {
            tx.add_roles(e.account, i64::from(e.role), Some(e.stake))
                .await?;
            touched.accounts.insert(e.account);
        }
        E::LeaveRequested(e) => {
            tx.drop_chain_roles(e.account).await?;
            touched.accounts.insert(e.account);
        }
        E::StakeWithdrawn(e) => {
            tx.clear_stake(e.account).await?;
            touched.accounts.insert(e.account);
        }
        E::Withdrawn(e) => {
            tx.withdraw_credit(e.account, e.amount).await?;
        }
        E::JobClosed(e) => {
            let Some((job, _)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            // 2 = finished: the leader committed the last checkpoint itself.
            if e.reason != 2 {
                tx.mark_chain_closed(job).await?;
                tracing::info!(job, reason = e.reason, "the chain closed the job");
            }
            touched.jobs.insert(job);
        }
        E::FundsWithdrawn(e) => {
            if ours(tx, e.jobId).await?.is_some() {
                g.record(
                    Node::Peer(e.owner, NodeKind::Owner),
                    Node::Contract,
                    "withdrawUnusedFunds",
                    now,
                );
                touched.jobs.insert(e.jobId.saturating_to());
            }
        }
    }
    Ok(())
}
