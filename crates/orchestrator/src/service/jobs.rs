//! The scheduler's view of a job, read from the store.

use crate::error::Result;
use crate::scheduler::{JobState, RoundPhase};
use crate::state::{AppState, JobInfo};
use crate::store::jobs::JobStatus;
use crate::store::rounds::RoundStatus;

/// Reads the scheduler's view of a job's open round (`None` when the job is
/// not active or its round is missing).
pub async fn job_state(state: &AppState, info: &JobInfo) -> Result<Option<JobState>> {
    let job = info.job_id;
    let Some(progress) = state.store.job_progress(job).await? else {
        return Ok(None);
    };
    if progress.status()? != JobStatus::Active {
        return Ok(None);
    }
    let round = crate::store::to_u64(progress.round);
    let Some(rs) = state.store.round_state(job, round).await? else {
        return Ok(None);
    };
    let phase = match rs.status {
        RoundStatus::Open => RoundPhase::Open,
        _ => RoundPhase::Closing,
    };
    let leases = state.store.leases(job, round).await?;
    let updates = state.store.round_updates(job, round).await?;
    // Active: leased in this or the previous round, and seen within a
    // lease period (or holding a live lease), or reported in this round. A
    // trainer that died drops out when its lease lapses, so the round need
    // not wait for its deadline.
    let now = crate::util::now_secs();
    let mut active_trainers = state
        .store
        .live_trainers_since(
            job,
            round.saturating_sub(1),
            now,
            now.saturating_sub(info.spec.lease_secs),
        )
        .await?;
    active_trainers.extend(updates.iter().map(|u| u.trainer));
    let carried = match info.spec.sync.is_sync() {
        true => Vec::new(),
        false => state.store.carried_updates(job, round).await?,
    };
    Ok(Some(JobState {
        job_id: job,
        round,
        phase,
        shards: info.spec.shards,
        min_updates: info.spec.min_updates,
        round_timeout_secs: info.spec.round_timeout_secs,
        deadline: rs.deadline,
        chain_closed: progress.chain_closed(),
        leases,
        updates,
        active_trainers,
        sync: info.spec.sync,
        buffer: info.spec.buffer,
        carried,
        decision_timeout: state.decision_timeout,
    }))
}
