//! The chain watcher: applies the contract's events to SQLite, from the
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
use sqlx::Row;

use crate::db::{Tx, meta_get, meta_set};
use crate::error::{Error, Result};
use crate::graph::Node;
use crate::state::AppState;
use crate::util::{add_wei, addr_text, hash_text, index_text, now_secs, sub_wei};

/// Meta key of the last processed block.
pub const LAST_BLOCK: &str = "last_block";
/// Blocks per batch.
const BATCH: u64 = 5_000;

/// Owner bit in `participants.roles` (trainer 1 and validator 2 are the chain's).
pub const ROLE_OWNER: i64 = 4;

/// The last processed block, if any.
pub async fn last_block(state: &AppState) -> Result<Option<u64>> {
    Ok(meta_get(&state.db.read, LAST_BLOCK)
        .await?
        .and_then(|v| v.parse().ok()))
}

/// Applies every confirmed event not yet applied; returns how many.
pub async fn poll(state: &AppState) -> Result<usize> {
    let head = state
        .ledger
        .block_number()
        .await?
        .saturating_sub(state.config.confirmations.max(1) - 1);
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

async fn apply_batch(state: &AppState, events: &[LoggedEvent], to: u64) -> Result<()> {
    let mut tx = state.db.begin().await?;
    let mut touched_accounts = BTreeSet::new();
    let mut touched_jobs = BTreeSet::new();
    let mut last_decided: Option<(B256, u64, U256, Address)> = None;
    let now = now_secs();
    for logged in events {
        apply(
            state,
            &mut tx,
            logged,
            now,
            &mut last_decided,
            &mut touched_accounts,
            &mut touched_jobs,
        )
        .await?;
    }
    meta_set(&mut *tx, LAST_BLOCK, &to.to_string()).await?;
    tx.commit().await?;
    for account in touched_accounts {
        state.roles.invalidate(account);
    }
    // Totals the events do not carry (remaining deposit, slashes credited to
    // the job) are read from the contract; they are display values.
    for job in touched_jobs {
        if let Ok(view) = state.ledger.job(U256::from(job)).await {
            sqlx::query("UPDATE jobs SET remaining_wei = ?, slashed_wei = ? WHERE job_id = ?")
                .bind(view.remaining.to_string())
                .bind(view.slashedIn.to_string())
                .bind(job as i64)
                .execute(&state.db.write)
                .await?;
        }
    }
    if !events.is_empty() {
        state.wake.notify_one();
    }
    Ok(())
}

async fn ours(tx: &mut Tx, job: U256) -> Result<Option<(u64, String)>> {
    let job: u64 = job.saturating_to();
    let row = sqlx::query("SELECT base_reward_wei FROM jobs WHERE job_id = ?")
        .bind(job as i64)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|r| (job, r.get(0))))
}

async fn participant(tx: &mut Tx, address: Address) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO participants (address) VALUES (?)")
        .bind(addr_text(address))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn apply(
    state: &AppState,
    tx: &mut Tx,
    logged: &LoggedEvent,
    now: u64,
    last_decided: &mut Option<(B256, u64, U256, Address)>,
    accounts: &mut BTreeSet<Address>,
    jobs: &mut BTreeSet<u64>,
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
            sqlx::query(
                "INSERT OR IGNORE INTO jobs (job_id, owner, leader, spec_hash, status, rounds, quorum,
                 challenge_window, deposit_wei, base_reward_wei, bonus_reward_wei, remaining_wei,
                 secret, created_at, created_block)
                 VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(job as i64)
            .bind(addr_text(e.owner))
            .bind(addr_text(e.leader))
            .bind(hash_text(e.specHash))
            .bind(e.rounds as i64)
            .bind(e.quorum as i64)
            .bind(e.challengeWindow as i64)
            .bind(e.deposit.to_string())
            .bind(e.baseReward.to_string())
            .bind(e.bonusReward.to_string())
            .bind(e.deposit.to_string())
            .bind(secret.to_vec())
            .bind(now as i64)
            .bind(logged.block_number as i64)
            .execute(&mut **tx)
            .await?;
            participant(tx, e.owner).await?;
            sqlx::query("UPDATE participants SET roles = roles | ? WHERE address = ?")
                .bind(ROLE_OWNER)
                .bind(addr_text(e.owner))
                .execute(&mut **tx)
                .await?;
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
            let round: u64 = e.round.saturating_to();
            let index = funetun_chain::bindings::update_index(round, e.trainer);
            sqlx::query(
                "INSERT OR IGNORE INTO chain_updates (job_id, update_index, round, trainer, update_hash,
                 submit_tx, submit_block, status, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            )
            .bind(job as i64)
            .bind(index_text(index))
            .bind(round as i64)
            .bind(addr_text(e.trainer))
            .bind(hash_text(e.updateHash))
            .bind(hash_text(logged.tx_hash))
            .bind(logged.block_number as i64)
            .bind(now as i64)
            .execute(&mut **tx)
            .await?;
            participant(tx, e.trainer).await?;
            g.record(
                Node::Peer(e.trainer, NodeKind::Trainer),
                Node::Contract,
                "submitUpdate",
                now,
            );
            jobs.insert(job);
        }
        E::VoteCast(e) => {
            let Some((job, _)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            vote(tx, job, e.index, e.validator, e.valid, logged.tx_hash).await?;
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
            sqlx::query(
                "UPDATE chain_updates SET status = 'challenged' WHERE job_id = ? AND update_index = ? AND status = 'pending'",
            )
            .bind(job as i64)
            .bind(index_text(e.index))
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE updates SET replay = 1, reason = 'challenged' WHERE job_id = ? AND update_index = ?",
            )
                .bind(job as i64)
                .bind(index_text(e.index))
                .execute(&mut **tx)
                .await?;
            participant(tx, e.challenger).await?;
            g.record(
                Node::Peer(e.challenger, NodeKind::Challenger),
                Node::Contract,
                "challenge",
                now,
            );
        }
        E::UpdateDecided(e) => {
            let Some((job, base_reward)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            let (_, trainer) = funetun_chain::bindings::split_update_index(e.index);
            let reward = crate::util::parse_wei(&base_reward);
            let idx = index_text(e.index);
            let decided_by = (e.decidedBy != Address::ZERO).then(|| addr_text(e.decidedBy));
            sqlx::query(
                "UPDATE chain_updates SET status = ?, decided_by = ?, paid_wei = ? WHERE job_id = ? AND update_index = ?",
            )
            .bind(if e.accepted { "accepted" } else { "rejected" })
            .bind(decided_by)
            .bind(if e.accepted { reward.to_string() } else { "0".into() })
            .bind(job as i64)
            .bind(&idx)
            .execute(&mut **tx)
            .await?;
            participant(tx, trainer).await?;
            let t = addr_text(trainer);
            if e.accepted {
                let paid: String = sqlx::query_scalar("SELECT paid_wei FROM jobs WHERE job_id = ?")
                    .bind(job as i64)
                    .fetch_one(&mut **tx)
                    .await?;
                sqlx::query("UPDATE jobs SET paid_wei = ? WHERE job_id = ?")
                    .bind(add_wei(&paid, reward))
                    .bind(job as i64)
                    .execute(&mut **tx)
                    .await?;
                let (earned, credit): (String, String) = sqlx::query_as(
                    "SELECT earned_wei, credit_wei FROM participants WHERE address = ?",
                )
                .bind(&t)
                .fetch_one(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE participants SET earned_wei = ?, credit_wei = ?, accepted = accepted + 1,
                     clean = clean + 1 WHERE address = ?",
                )
                .bind(add_wei(&earned, reward))
                .bind(add_wei(&credit, reward))
                .bind(&t)
                .execute(&mut **tx)
                .await?;
                credit_training(state, tx, job, &idx, now).await?;
            } else {
                sqlx::query(
                    "UPDATE participants SET rejected = rejected + 1, clean = 0 WHERE address = ?",
                )
                .bind(&t)
                .execute(&mut **tx)
                .await?;
            }
            if e.decidedBy != Address::ZERO {
                vote(tx, job, e.index, e.decidedBy, e.accepted, logged.tx_hash).await?;
                g.record(
                    Node::Peer(e.decidedBy, NodeKind::Validator),
                    Node::Contract,
                    "validateUpdate",
                    now,
                );
            } else {
                g.record(Node::Orchestrator, Node::Contract, "finalizeUpdate", now);
            }
            *last_decided = Some((logged.tx_hash, job, e.index, trainer));
            jobs.insert(job);
        }
        E::Slashed(e) => {
            participant(tx, e.account).await?;
            let a = addr_text(e.account);
            let (slashed, stake): (String, String) =
                sqlx::query_as("SELECT slashed_wei, stake_wei FROM participants WHERE address = ?")
                    .bind(&a)
                    .fetch_one(&mut **tx)
                    .await?;
            sqlx::query("UPDATE participants SET slashed_wei = ?, stake_wei = ? WHERE address = ?")
                .bind(add_wei(&slashed, e.amount))
                .bind(sub_wei(&stake, e.amount))
                .bind(&a)
                .execute(&mut **tx)
                .await?;
            if let Some((txh, job, index, trainer)) = last_decided
                && *txh == logged.tx_hash
                && *trainer == e.account
            {
                sqlx::query(
                    "UPDATE chain_updates SET slashed_wei = ? WHERE job_id = ? AND update_index = ?",
                )
                .bind(e.amount.to_string())
                .bind(*job as i64)
                .bind(index_text(*index))
                .execute(&mut **tx)
                .await?;
            }
            accounts.insert(e.account);
            if ours(tx, e.jobId).await?.is_some() {
                jobs.insert(e.jobId.saturating_to());
            }
        }
        E::Credited(e) => {
            participant(tx, e.account).await?;
            let a = addr_text(e.account);
            let (earned, credit): (String, String) =
                sqlx::query_as("SELECT earned_wei, credit_wei FROM participants WHERE address = ?")
                    .bind(&a)
                    .fetch_one(&mut **tx)
                    .await?;
            sqlx::query("UPDATE participants SET earned_wei = ?, credit_wei = ? WHERE address = ?")
                .bind(add_wei(&earned, e.amount))
                .bind(add_wei(&credit, e.amount))
                .bind(&a)
                .execute(&mut **tx)
                .await?;
        }
        E::BonusAwarded(e) => {
            let Some((job, _)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            let paid: String = sqlx::query_scalar("SELECT paid_wei FROM jobs WHERE job_id = ?")
                .bind(job as i64)
                .fetch_one(&mut **tx)
                .await?;
            sqlx::query("UPDATE jobs SET paid_wei = ? WHERE job_id = ?")
                .bind(add_wei(&paid, e.amount))
                .bind(job as i64)
                .execute(&mut **tx)
                .await?;
            let idx = index_text(e.index);
            let upaid: Option<String> = sqlx::query_scalar(
                "SELECT paid_wei FROM chain_updates WHERE job_id = ? AND update_index = ?",
            )
            .bind(job as i64)
            .bind(&idx)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(upaid) = upaid {
                sqlx::query(
                    "UPDATE chain_updates SET paid_wei = ? WHERE job_id = ? AND update_index = ?",
                )
                .bind(add_wei(&upaid, e.amount))
                .bind(job as i64)
                .bind(&idx)
                .execute(&mut **tx)
                .await?;
            }
            jobs.insert(job);
        }
        E::Registered(e) => {
            participant(tx, e.account).await?;
            sqlx::query(
                "UPDATE participants SET roles = roles | ?, stake_wei = ? WHERE address = ?",
            )
            .bind(e.role as i64)
            .bind(e.stake.to_string())
            .bind(addr_text(e.account))
            .execute(&mut **tx)
            .await?;
            accounts.insert(e.account);
        }
        E::LeaveRequested(e) => {
            sqlx::query("UPDATE participants SET roles = roles & ? WHERE address = ?")
                .bind(ROLE_OWNER)
                .bind(addr_text(e.account))
                .execute(&mut **tx)
                .await?;
            accounts.insert(e.account);
        }
        E::StakeWithdrawn(e) => {
            sqlx::query("UPDATE participants SET stake_wei = '0' WHERE address = ?")
                .bind(addr_text(e.account))
                .execute(&mut **tx)
                .await?;
            accounts.insert(e.account);
        }
        E::Withdrawn(e) => {
            let a = addr_text(e.account);
            let credit: Option<String> =
                sqlx::query_scalar("SELECT credit_wei FROM participants WHERE address = ?")
                    .bind(&a)
                    .fetch_optional(&mut **tx)
                    .await?;
            if let Some(credit) = credit {
                sqlx::query("UPDATE participants SET credit_wei = ? WHERE address = ?")
                    .bind(sub_wei(&credit, e.amount))
                    .bind(&a)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        E::JobClosed(e) => {
            let Some((job, _)) = ours(tx, e.jobId).await? else {
                return Ok(());
            };
            // 2 = finished: the leader committed the last checkpoint itself.
            if e.reason != 2 {
                sqlx::query("UPDATE jobs SET chain_closed = 1 WHERE job_id = ?")
                    .bind(job as i64)
                    .execute(&mut **tx)
                    .await?;
                tracing::info!(job, reason = e.reason, "the chain closed the job");
            }
            jobs.insert(job);
        }
        E::FundsWithdrawn(e) => {
            if ours(tx, e.jobId).await?.is_some() {
                g.record(
                    Node::Peer(e.owner, NodeKind::Owner),
                    Node::Contract,
                    "withdrawUnusedFunds",
                    now,
                );
                jobs.insert(e.jobId.saturating_to());
            }
        }
    }
    Ok(())
}

async fn vote(
    tx: &mut Tx,
    job: u64,
    index: U256,
    validator: Address,
    valid: bool,
    tx_hash: B256,
) -> Result<()> {
    participant(tx, validator).await?;
    sqlx::query(
        "INSERT OR IGNORE INTO chain_votes (job_id, update_index, validator, valid, tx_hash) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(job as i64)
    .bind(index_text(index))
    .bind(addr_text(validator))
    .bind(valid as i64)
    .bind(hash_text(tx_hash))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gives the trainer of an accepted, reported update its training points,
/// once (the report and the verdict may arrive in either order).
pub async fn credit_training(
    state: &AppState,
    tx: &mut Tx,
    job: u64,
    index: &str,
    now: u64,
) -> Result<()> {
    let row = sqlx::query(
        "SELECT u.trainer, u.steps FROM updates u JOIN chain_updates c
         ON c.job_id = u.job_id AND c.update_index = u.update_index
         WHERE u.job_id = ? AND u.update_index = ? AND u.credited = 0 AND c.status = 'accepted'",
    )
    .bind(job as i64)
    .bind(index)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let trainer: String = row.get(0);
    let steps: i64 = row.get(1);
    add_points(state, tx, &trainer, "train", steps as f64, now).await?;
    sqlx::query("UPDATE updates SET credited = 1 WHERE job_id = ? AND update_index = ?")
        .bind(job as i64)
        .bind(index)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds decaying reputation points of `kind` (`train` or `drill`).
pub async fn add_points(
    state: &AppState,
    tx: &mut Tx,
    address: &str,
    kind: &str,
    points: f64,
    now: u64,
) -> Result<()> {
    let (value_col, at_col) = match kind {
        "drill" => ("drill_points", "drill_at"),
        _ => ("train_points", "train_at"),
    };
    sqlx::query("INSERT OR IGNORE INTO participants (address) VALUES (?)")
        .bind(address)
        .execute(&mut **tx)
        .await?;
    let (value, at): (f64, i64) = sqlx::query_as(&format!(
        "SELECT {value_col}, {at_col} FROM participants WHERE address = ?"
    ))
    .bind(address)
    .fetch_one(&mut **tx)
    .await?;
    let (value, at) = state.decay.add(value, at as u64, points, now);
    sqlx::query(&format!(
        "UPDATE participants SET {value_col} = ?, {at_col} = ? WHERE address = ?"
    ))
    .bind(value)
    .bind(at as i64)
    .bind(address)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
