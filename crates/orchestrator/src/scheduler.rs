//! The round scheduler as a pure state machine: [`tick`] takes a job's
//! state, the events since that state was read, the time and a seed, and
//! returns what to do. It never sleeps, reads a clock or touches storage;
//! the driver (`driver.rs`) reads the state from SQLite, calls [`tick`] and
//! applies the [`Action`]s in transactions, and the lease handler calls it
//! with a [`Event::LeaseRequested`].
//!
//! Rules (docs/orchestrator.md):
//!
//! - a lease goes to a shard of the open round with no accepted or undecided
//!   update and no live lease; a trainer holding a live lease gets it back; a
//!   trainer that already reported an update for the round gets nothing;
//! - updates not drawn for checking are finalized once their challenge
//!   window has passed;
//! - a round closes when every shard has an accepted update; or when nothing
//!   is in flight, every trainer active in the job has reported, and at least
//!   `min_updates` were accepted; or at its deadline with at least
//!   `min_updates` accepted (otherwise the deadline moves on by
//!   `round_timeout_secs`);
//! - once the chain closed the job (owner withdrew, deposit exhausted), the
//!   open round closes with whatever was accepted when nothing is in flight,
//!   and the job ends there.
//!
//! A `stale:S` job (docs/sync.md) changes two rules: a trainer that
//! reported still gets a new lease (a new slot of the open round, or a
//! lapsed or rejected one re-issued), and a round closes as soon as
//! `buffer` accepted updates are in, counting accepted updates of earlier
//! rounds that no aggregate took yet; nobody waits for the slowest.

use std::collections::BTreeSet;

use alloy_primitives::{Address, B256, U256};
use funetun_core::api::Capacity;
use funetun_core::sync::SyncPolicy;

/// Whether the open round still takes leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundPhase {
    /// Leasing and collecting updates.
    Open,
    /// Inputs fixed; the checkpoint is being built and committed.
    Closing,
}

/// A lease of the open round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The lease id.
    pub task_id: u64,
    /// Who holds it.
    pub trainer: Address,
    /// The shard.
    pub shard: u32,
    /// When it lapses.
    pub expires_at: u64,
    /// Whether its update was reported.
    pub submitted: bool,
}

impl Lease {
    /// Whether the lease still binds its shard at `now`.
    pub fn live(&self, now: u64) -> bool {
        !self.submitted && self.expires_at > now
    }
}

/// Where an update stands on-chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateStatus {
    /// Submitted, undecided.
    Pending,
    /// Challenged: only a quorum decides it.
    Challenged,
    /// Accepted (paid).
    Accepted,
    /// Rejected (slashed).
    Rejected,
    /// No quorum by the decision timeout: neither paid nor slashed.
    Void,
}

impl UpdateStatus {
    /// Not yet decided.
    pub fn undecided(self) -> bool {
        matches!(self, UpdateStatus::Pending | UpdateStatus::Challenged)
    }

    /// Decided and not accepted (rejected or void): its shard is free again.
    pub fn failed(self) -> bool {
        matches!(self, UpdateStatus::Rejected | UpdateStatus::Void)
    }

    /// The API's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::Pending => "pending",
            UpdateStatus::Challenged => "challenged",
            UpdateStatus::Accepted => "accepted",
            UpdateStatus::Rejected => "rejected",
            UpdateStatus::Void => "void",
        }
    }

    /// The API's word: a challenged update is still pending to readers.
    pub fn api(self) -> funetun_core::protocol::UpdateStatus {
        use funetun_core::protocol::UpdateStatus as Api;
        match self {
            UpdateStatus::Pending | UpdateStatus::Challenged => Api::Pending,
            UpdateStatus::Accepted => Api::Accepted,
            UpdateStatus::Rejected => Api::Rejected,
            UpdateStatus::Void => Api::Void,
        }
    }

    /// The contract's `UpdateStatus` code (a bonused update is accepted;
    /// no update, or one not yet decided, is pending).
    pub fn from_chain(code: u8) -> Self {
        use funetun_chain::bindings::update_status;
        match code {
            update_status::ACCEPTED | update_status::BONUSED => UpdateStatus::Accepted,
            update_status::REJECTED => UpdateStatus::Rejected,
            update_status::VOID => UpdateStatus::Void,
            update_status::CHALLENGED => UpdateStatus::Challenged,
            _ => UpdateStatus::Pending,
        }
    }

    /// Parses the stored word (unknown words count as pending).
    pub fn parse(s: &str) -> Self {
        match s {
            "challenged" => UpdateStatus::Challenged,
            "accepted" => UpdateStatus::Accepted,
            "rejected" => UpdateStatus::Rejected,
            "void" => UpdateStatus::Void,
            _ => UpdateStatus::Pending,
        }
    }
}

/// A reported update of the open round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// On-chain index.
    pub index: U256,
    /// Who submitted it.
    pub trainer: Address,
    /// Its shard.
    pub shard: u32,
    /// The delta's hash.
    pub hash: B256,
    /// Status on-chain.
    pub status: UpdateStatus,
    /// Drawn for checking (validators decide it; never finalized by us).
    pub replay: bool,
    /// End of the challenge window (chain time).
    pub deadline: u64,
    /// Whether a vote was stored on it (then only a quorum decides it).
    pub voted: bool,
    /// The round whose checkpoint it was trained on.
    pub base_round: u64,
}

/// An accepted update a closing round aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputRef {
    /// On-chain index.
    pub index: U256,
    /// The delta's hash.
    pub hash: B256,
    /// The round whose checkpoint it was trained on.
    pub base_round: u64,
}

/// What the scheduler knows of one job's open round.
#[derive(Clone, Debug, PartialEq)]
pub struct JobState {
    /// The job.
    pub job_id: u64,
    /// The open round.
    pub round: u64,
    /// Its phase.
    pub phase: RoundPhase,
    /// Shards per round.
    pub shards: u32,
    /// Accepted updates needed to close at the deadline.
    pub min_updates: u32,
    /// Seconds a round may run before it closes with what it has.
    pub round_timeout_secs: u64,
    /// When the round closes with what it has.
    pub deadline: u64,
    /// The chain closed the job (no more submissions possible).
    pub chain_closed: bool,
    /// Leases of the open round.
    pub leases: Vec<Lease>,
    /// Reported updates of the open round.
    pub updates: Vec<Update>,
    /// Trainers active in the job: leased in this or the previous round and
    /// seen within a lease period (or holding a live lease), or reported in
    /// this round. A trainer that stopped asking is not waited for.
    pub active_trainers: BTreeSet<Address>,
    /// How rounds synchronise.
    pub sync: SyncPolicy,
    /// `stale:S`: accepted updates that close a round.
    pub buffer: u32,
    /// `stale:S`: accepted updates of earlier rounds no aggregate took yet
    /// (decided after their round closed); they join the next one.
    pub carried: Vec<Update>,
    /// The contract's `DECISION_TIMEOUT`: an update still undecided this
    /// many seconds after its window is settled by `finalizeUpdate`
    /// (accepted, or void when it was challenged or objected to).
    pub decision_timeout: u64,
}

/// What happened since the state was read.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A trainer asks for a task.
    LeaseRequested {
        /// Who asks.
        trainer: Address,
        /// Its size class.
        capacity: Capacity,
        /// `stale:S`: a task it finished and is still submitting; that
        /// lease is not handed back.
        holding: Option<u64>,
    },
    /// A lease was issued.
    Leased(Lease),
    /// An update was reported.
    Reported(Update),
    /// The chain decided an update.
    Decided {
        /// The update.
        index: U256,
        /// The verdict.
        accepted: bool,
    },
    /// A vote was stored on an update.
    Voted {
        /// The update.
        index: U256,
    },
    /// Someone challenged an update.
    Challenged {
        /// The update.
        index: U256,
    },
    /// The chain closed the job.
    ChainClosed,
}

/// The answer to a lease request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// The trainer's live lease, handed back.
    Existing {
        /// Its id.
        task_id: u64,
    },
    /// A new lease on this shard.
    New {
        /// The shard.
        shard: u32,
    },
    /// The trainer already reported an update for this round.
    AlreadySubmitted,
    /// Every shard is taken (or the round is closing).
    NoneAvailable,
}

/// What the driver should do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Answer a lease request.
    Lease {
        /// Who asked.
        trainer: Address,
        /// What they get.
        decision: LeaseDecision,
    },
    /// Call `finalizeUpdate`: window over and not drawn nor challenged, or
    /// still undecided at its decision timeout.
    Finalize {
        /// The update.
        index: U256,
    },
    /// Close the round with these updates, in this order.
    CloseRound {
        /// The round.
        round: u64,
        /// The accepted updates, ordered by shard then index.
        inputs: Vec<InputRef>,
    },
    /// Keep the round open until `deadline`.
    ExtendRound {
        /// The round.
        round: u64,
        /// The new deadline.
        deadline: u64,
    },
    /// The chain closed the job and nothing is left to aggregate: stop.
    EndJob,
}

/// The seed of the task on `shard` in `round`: whoever takes the shard trains
/// with the same data order, so honest deltas of a shard are identical.
pub fn task_seed(spec_seed: u64, round: u64, shard: u32) -> u64 {
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(b"funetun-task-seed");
    msg.extend_from_slice(&spec_seed.to_be_bytes());
    msg.extend_from_slice(&round.to_be_bytes());
    msg.extend_from_slice(&shard.to_be_bytes());
    let h = funetun_core::keccak256(&msg);
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

impl JobState {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::LeaseRequested { .. } => {}
            Event::Leased(lease) => {
                self.active_trainers.insert(lease.trainer);
                self.leases.push(lease.clone());
            }
            Event::Reported(update) => {
                for lease in &mut self.leases {
                    if lease.trainer == update.trainer && lease.shard == update.shard {
                        lease.submitted = true;
                    }
                }
                self.updates.retain(|u| u.index != update.index);
                self.updates.push(update.clone());
            }
            Event::Decided { index, accepted } => {
                if let Some(u) = self.updates.iter_mut().find(|u| u.index == *index) {
                    u.status = if *accepted {
                        UpdateStatus::Accepted
                    } else {
                        UpdateStatus::Rejected
                    };
                }
            }
            Event::Voted { index } => {
                if let Some(u) = self.updates.iter_mut().find(|u| u.index == *index) {
                    u.voted = true;
                }
            }
            Event::Challenged { index } => {
                if let Some(u) = self.updates.iter_mut().find(|u| u.index == *index)
                    && u.status == UpdateStatus::Pending
                {
                    u.status = UpdateStatus::Challenged;
                    u.replay = true;
                }
            }
            Event::ChainClosed => self.chain_closed = true,
        }
    }

    /// Decides a lease request by `trainer` at `now`; `seed` picks among the
    /// free shards. A `stale:S` round hands a trainer that reported another
    /// task at once (it trains on the newest checkpoint while its update is
    /// checked), re-issuing the lowest slot whose lease lapsed or whose
    /// update was rejected before opening a new one past `shards`. There,
    /// the lease `holding` names (a task the trainer finished and is still
    /// submitting) is not handed back: the trainer trains its next task
    /// while the finished one waits for a round it may be submitted in.
    pub fn decide_lease(
        &self,
        trainer: Address,
        holding: Option<u64>,
        now: u64,
        seed: u64,
    ) -> LeaseDecision {
        if self.phase != RoundPhase::Open || self.chain_closed {
            return LeaseDecision::NoneAvailable;
        }
        let stale = !self.sync.is_sync();
        if let Some(lease) = self
            .leases
            .iter()
            .filter(|l| l.trainer == trainer && l.live(now))
            .filter(|l| !stale || Some(l.task_id) != holding)
            .max_by_key(|l| l.task_id)
        {
            return LeaseDecision::Existing {
                task_id: lease.task_id,
            };
        }
        let busy: BTreeSet<u32> = self
            .updates
            .iter()
            .filter(|u| !u.status.failed())
            .map(|u| u.shard)
            .chain(self.leases.iter().filter(|l| l.live(now)).map(|l| l.shard))
            .collect();
        if stale {
            let issued = self.leases.iter().map(|l| l.shard + 1).max().unwrap_or(0);
            let shard = (0..issued).find(|s| !busy.contains(s)).unwrap_or(issued);
            return LeaseDecision::New { shard };
        }
        let mut free: Vec<u32> = (0..self.shards).filter(|s| !busy.contains(s)).collect();
        let mine: BTreeSet<u32> = self
            .updates
            .iter()
            .filter(|u| u.trainer == trainer)
            .map(|u| u.shard)
            .collect();
        if !mine.is_empty() {
            // A trainer that reported takes a second task only on a shard
            // this round already handed out and lost (a lapsed lease, a
            // rejected or void update), and never one it submitted on.
            let lost: BTreeSet<u32> = self
                .leases
                .iter()
                .map(|l| l.shard)
                .chain(self.updates.iter().map(|u| u.shard))
                .collect();
            free.retain(|s| lost.contains(s) && !mine.contains(s));
            if free.is_empty() {
                return LeaseDecision::AlreadySubmitted;
            }
        }
        if free.is_empty() {
            return LeaseDecision::NoneAvailable;
        }
        LeaseDecision::New {
            shard: free[(seed % free.len() as u64) as usize],
        }
    }

    /// Accepted updates that close a `stale:S` round.
    pub fn buffer_target(&self) -> usize {
        match self.buffer {
            0 => self.shards.max(1) as usize,
            k => k as usize,
        }
    }

    /// The accepted updates, ordered by shard then index, a repeated delta
    /// hash counted once; a `stale:S` round's carried updates first, oldest
    /// submission first.
    pub fn accepted_inputs(&self) -> Vec<InputRef> {
        let mut carried: Vec<&Update> = self
            .carried
            .iter()
            .filter(|u| !self.sync.is_sync() && u.status == UpdateStatus::Accepted)
            .collect();
        carried.sort_by_key(|u| (u.index >> 160, u.shard, u.index));
        let mut accepted: Vec<&Update> = self
            .updates
            .iter()
            .filter(|u| u.status == UpdateStatus::Accepted)
            .collect();
        accepted.sort_by_key(|u| (u.shard, u.index));
        let accepted: Vec<&Update> = carried.into_iter().chain(accepted).collect();
        let mut seen = BTreeSet::new();
        accepted
            .into_iter()
            .filter(|u| seen.insert(u.hash))
            .map(|u| InputRef {
                index: u.index,
                hash: u.hash,
                base_round: u.base_round,
            })
            .collect()
    }

    fn in_flight(&self, now: u64) -> bool {
        self.leases.iter().any(|l| l.live(now)) || self.updates.iter().any(|u| u.status.undecided())
    }
}

/// Applies `events` to `state`, then decides what to do at `now`. `seed`
/// spreads new leases over the free shards.
pub fn tick(state: &mut JobState, events: &[Event], now: u64, seed: u64) -> Vec<Action> {
    let mut actions = Vec::new();
    for event in events {
        state.apply(event);
        if let Event::LeaseRequested {
            trainer, holding, ..
        } = event
        {
            let decision = state.decide_lease(*trainer, *holding, now, seed);
            actions.push(Action::Lease {
                trainer: *trainer,
                decision,
            });
        }
    }
    if state.phase != RoundPhase::Open {
        return actions;
    }
    for u in &state.updates {
        let unchecked = u.status == UpdateStatus::Pending && !u.replay && !u.voted;
        let timed_out = now >= u.deadline.saturating_add(state.decision_timeout);
        if u.status.undecided() && now >= u.deadline && (unchecked || timed_out) {
            actions.push(Action::Finalize { index: u.index });
        }
    }
    let inputs = state.accepted_inputs();
    if !state.sync.is_sync() {
        close_stale(state, inputs, now, &mut actions);
        return actions;
    }
    let accepted_shards: BTreeSet<u32> = state
        .updates
        .iter()
        .filter(|u| u.status == UpdateStatus::Accepted)
        .map(|u| u.shard)
        .collect();
    let enough = inputs.len() >= state.min_updates.max(1) as usize;
    let in_flight = state.in_flight(now);
    let all_shards = (0..state.shards).all(|s| accepted_shards.contains(&s));
    let reported: BTreeSet<Address> = state.updates.iter().map(|u| u.trainer).collect();
    let everyone_reported = !state.active_trainers.is_empty()
        && state.active_trainers.iter().all(|t| reported.contains(t));
    let close = Action::CloseRound {
        round: state.round,
        inputs: inputs.clone(),
    };
    if all_shards || (!in_flight && everyone_reported && enough) {
        actions.push(close);
    } else if state.chain_closed {
        if !in_flight {
            actions.push(if inputs.is_empty() {
                Action::EndJob
            } else {
                close
            });
        }
    } else if now >= state.deadline {
        if enough {
            actions.push(close);
        } else {
            actions.push(Action::ExtendRound {
                round: state.round,
                deadline: now + state.round_timeout_secs.max(1),
            });
        }
    }
    actions
}

/// The closing rules of a `stale:S` round: `buffer` accepted updates close
/// it at once; the chain closing the job, or the deadline, as for `sync`.
fn close_stale(state: &JobState, inputs: Vec<InputRef>, now: u64, actions: &mut Vec<Action>) {
    let enough = inputs.len() >= state.min_updates.max(1) as usize;
    let full = inputs.len() >= state.buffer_target();
    let close = |inputs| Action::CloseRound {
        round: state.round,
        inputs,
    };
    if full {
        actions.push(close(inputs));
    } else if state.chain_closed {
        if !state.in_flight(now) {
            actions.push(if inputs.is_empty() {
                Action::EndJob
            } else {
                close(inputs)
            });
        }
    } else if now >= state.deadline {
        if enough {
            actions.push(close(inputs));
        } else {
            actions.push(Action::ExtendRound {
                round: state.round,
                deadline: now + state.round_timeout_secs.max(1),
            });
        }
    }
}

/// An update waiting for validators, as [`pick_assignment`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Who submitted it (never its own validator).
    pub trainer: Address,
    /// The trainer's platform class.
    pub platform: Option<String>,
    /// Validators that voted on it (on-chain or reported).
    pub voters: BTreeSet<Address>,
    /// Assignments handed out: (validator, expires_at, done).
    pub assigned: Vec<(Address, u64, bool)>,
    /// Votes on the side with more votes so far (a split vote needs more
    /// validators than the quorum).
    pub leading: usize,
    /// Votes that decide it.
    pub quorum: u32,
}

/// Which candidate `validator` (of `platform`) should check at `now`, and
/// whether it already holds that assignment. A validator gets back a live
/// assignment it has not voted on; otherwise the first candidate (in the
/// given order, platform matches first) that it did not train, did not vote
/// on, and that has fewer than `quorum` votes plus live assignments.
pub fn pick_assignment(
    candidates: &[Candidate],
    validator: Address,
    platform: Option<&str>,
    now: u64,
) -> Option<(usize, bool)> {
    for (i, c) in candidates.iter().enumerate() {
        if !c.voters.contains(&validator)
            && c.assigned
                .iter()
                .any(|(v, exp, done)| *v == validator && !done && *exp > now)
        {
            return Some((i, true));
        }
    }
    let eligible = |c: &Candidate| {
        let live = c
            .assigned
            .iter()
            .filter(|(v, exp, done)| *v != validator && !done && *exp > now)
            .count();
        c.trainer != validator
            && !c.voters.contains(&validator)
            && !c
                .assigned
                .iter()
                .any(|(v, _, done)| *v == validator && *done)
            && live + c.leading < c.quorum.max(1) as usize
    };
    let same_platform = |c: &Candidate| platform.is_some() && c.platform.as_deref() == platform;
    candidates
        .iter()
        .position(|c| eligible(c) && same_platform(c))
        .or_else(|| candidates.iter().position(eligible))
        .map(|i| (i, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    fn state(shards: u32) -> JobState {
        JobState {
            job_id: 1,
            round: 0,
            phase: RoundPhase::Open,
            shards,
            min_updates: 1,
            round_timeout_secs: 100,
            deadline: 1_100,
            chain_closed: false,
            leases: vec![],
            updates: vec![],
            active_trainers: BTreeSet::new(),
            sync: SyncPolicy::Sync,
            buffer: 0,
            carried: vec![],
            decision_timeout: 3_600,
        }
    }

    fn lease(task_id: u64, trainer: u8, shard: u32, expires_at: u64) -> Event {
        Event::Leased(Lease {
            task_id,
            trainer: addr(trainer),
            shard,
            expires_at,
            submitted: false,
        })
    }

    fn report(trainer: u8, shard: u32, replay: bool, deadline: u64) -> Event {
        Event::Reported(Update {
            index: funetun_chain::bindings::update_index(0, shard, addr(trainer)),
            trainer: addr(trainer),
            shard,
            hash: B256::repeat_byte(shard as u8 + 1),
            status: UpdateStatus::Pending,
            replay,
            deadline,
            voted: false,
            base_round: 0,
        })
    }

    /// The index of trainer `t`'s update in round 0: in these tests trainer
    /// `t` reports on shard `t - 1`.
    fn idx(trainer: u8) -> U256 {
        funetun_chain::bindings::update_index(0, u32::from(trainer) - 1, addr(trainer))
    }

    fn ask(trainer: u8) -> Event {
        Event::LeaseRequested {
            trainer: addr(trainer),
            capacity: Capacity::M,
            holding: None,
        }
    }

    fn lease_of(actions: &[Action]) -> LeaseDecision {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Lease { decision, .. } => Some(decision.clone()),
                _ => None,
            })
            .expect("a lease answer")
    }

    #[test]
    fn leases_take_free_shards_and_hand_back_live_ones() {
        let mut s = state(2);
        let a = tick(&mut s, &[ask(1)], 1_000, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 0 });
        let a = tick(&mut s, &[lease(7, 1, 0, 1_060), ask(1)], 1_001, 0);
        assert_eq!(lease_of(&a), LeaseDecision::Existing { task_id: 7 });
        let a = tick(&mut s, &[ask(2)], 1_001, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 1 });
        let a = tick(&mut s, &[lease(8, 2, 1, 1_070), ask(3)], 1_002, 0);
        assert_eq!(lease_of(&a), LeaseDecision::NoneAvailable);
        // Trainer 1's lease lapses: its shard goes to trainer 3.
        let a = tick(&mut s, &[ask(3)], 1_060, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 0 });
    }

    #[test]
    fn a_reporting_trainer_gets_no_second_task_and_a_rejected_shard_is_free_again() {
        let mut s = state(2);
        tick(
            &mut s,
            &[lease(1, 1, 0, 2_000), report(1, 0, true, 1_010)],
            1_000,
            0,
        );
        let a = tick(&mut s, &[ask(1)], 1_001, 0);
        assert_eq!(lease_of(&a), LeaseDecision::AlreadySubmitted);
        let a = tick(&mut s, &[ask(2)], 1_001, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 1 });
        let a = tick(
            &mut s,
            &[
                Event::Decided {
                    index: idx(1),
                    accepted: false,
                },
                ask(3),
            ],
            1_002,
            5,
        );
        // Shards 0 (rejected) and 1 (free) are both open; seed 5 picks index 1.
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 1 });
        let a = tick(&mut s, &[ask(3)], 1_002, 4);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 0 });
    }

    #[test]
    fn a_trainer_that_reported_takes_a_lapsed_shard_of_its_round() {
        // Trainers 1 and 2 lease shards 0 and 1 of 3; trainer 2 vanishes.
        let mut s = state(3);
        tick(
            &mut s,
            &[
                lease(1, 1, 0, 1_100),
                lease(2, 2, 1, 1_050),
                report(1, 0, true, 1_010),
            ],
            1_000,
            0,
        );
        // Shard 2 was never handed out and shard 1 is still leased: nothing for trainer 1.
        let a = tick(&mut s, &[ask(1)], 1_001, 0);
        assert_eq!(lease_of(&a), LeaseDecision::AlreadySubmitted);
        // Trainer 2's lease lapsed: trainer 1 takes its shard as a second task of the round.
        let a = tick(&mut s, &[ask(1)], 1_050, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 1 });
        let a = tick(&mut s, &[lease(3, 1, 1, 1_150), ask(1)], 1_051, 0);
        assert_eq!(lease_of(&a), LeaseDecision::Existing { task_id: 3 });
        // Never again a shard it submitted on, even once that update failed.
        let a = tick(
            &mut s,
            &[
                report(1, 1, true, 1_060),
                Event::Decided {
                    index: funetun_chain::bindings::update_index(0, 1, addr(1)),
                    accepted: false,
                },
                Event::Decided {
                    index: idx(1),
                    accepted: false,
                },
                ask(1),
            ],
            1_070,
            0,
        );
        assert_eq!(lease_of(&a), LeaseDecision::AlreadySubmitted);
    }

    #[test]
    fn the_seed_is_a_pure_function_of_job_round_and_shard() {
        assert_eq!(task_seed(7, 1, 2), task_seed(7, 1, 2));
        assert_ne!(task_seed(7, 1, 2), task_seed(7, 1, 3));
        assert_ne!(task_seed(7, 1, 2), task_seed(7, 2, 2));
        assert_ne!(task_seed(7, 1, 2), task_seed(8, 1, 2));
    }

    #[test]
    fn undrawn_updates_are_finalized_after_their_window_only() {
        let mut s = state(2);
        let ev = [
            lease(1, 1, 0, 2_000),
            report(1, 0, false, 1_010),
            lease(2, 2, 1, 2_000),
            report(2, 1, true, 1_010),
        ];
        let a = tick(&mut s, &ev, 1_009, 0);
        assert!(a.is_empty(), "{a:?}");
        let a = tick(&mut s, &[], 1_010, 0);
        assert_eq!(a, vec![Action::Finalize { index: idx(1) }]);
        let a = tick(&mut s, &[Event::Challenged { index: idx(1) }], 1_011, 0);
        assert!(
            a.is_empty(),
            "a challenged update waits for a quorum: {a:?}"
        );
    }

    #[test]
    fn a_round_closes_when_every_shard_is_accepted() {
        let mut s = state(2);
        let ev = [
            lease(1, 1, 0, 2_000),
            report(1, 0, true, 1_010),
            lease(2, 2, 1, 2_000),
            report(2, 1, true, 1_010),
            Event::Decided {
                index: idx(2),
                accepted: true,
            },
        ];
        assert!(tick(&mut s, &ev, 1_001, 0).is_empty());
        let a = tick(
            &mut s,
            &[Event::Decided {
                index: idx(1),
                accepted: true,
            }],
            1_002,
            0,
        );
        assert_eq!(
            a,
            vec![Action::CloseRound {
                round: 0,
                inputs: vec![
                    InputRef {
                        index: idx(1),
                        hash: B256::repeat_byte(1),
                        base_round: 0
                    },
                    InputRef {
                        index: idx(2),
                        hash: B256::repeat_byte(2),
                        base_round: 0
                    },
                ],
            }]
        );
    }

    #[test]
    fn a_round_closes_early_when_every_active_trainer_reported() {
        let mut s = state(4);
        s.min_updates = 2;
        let ev = [
            lease(1, 1, 0, 2_000),
            report(1, 0, true, 1_010),
            lease(2, 2, 1, 2_000),
            report(2, 1, true, 1_010),
            Event::Decided {
                index: idx(1),
                accepted: true,
            },
        ];
        assert!(tick(&mut s, &ev, 1_001, 0).is_empty());
        // Trainer 2's update is still undecided: in flight.
        let a = tick(
            &mut s,
            &[Event::Decided {
                index: idx(2),
                accepted: false,
            }],
            1_002,
            0,
        );
        // Rejected: only one accepted, below min_updates = 2; wait.
        assert!(a.is_empty(), "{a:?}");
        s.min_updates = 1;
        let a = tick(&mut s, &[], 1_003, 0);
        assert!(matches!(a.as_slice(), [Action::CloseRound { inputs, .. }] if inputs.len() == 1));
    }

    #[test]
    fn a_live_lease_keeps_the_round_open_until_the_deadline() {
        let mut s = state(4);
        let ev = [
            lease(1, 1, 0, 2_000),
            report(1, 0, true, 1_010),
            Event::Decided {
                index: idx(1),
                accepted: true,
            },
            lease(2, 2, 1, 2_000),
        ];
        assert!(tick(&mut s, &ev, 1_001, 0).is_empty());
        let a = tick(&mut s, &[], 1_100, 0);
        assert!(matches!(a.as_slice(), [Action::CloseRound { .. }]), "{a:?}");
    }

    #[test]
    fn at_the_deadline_without_enough_updates_the_round_is_extended() {
        let mut s = state(4);
        s.min_updates = 2;
        let a = tick(&mut s, &[], 1_100, 0);
        assert_eq!(
            a,
            vec![Action::ExtendRound {
                round: 0,
                deadline: 1_200
            }]
        );
    }

    #[test]
    fn a_closed_job_ends_with_what_it_has() {
        let mut s = state(4);
        let a = tick(&mut s, &[Event::ChainClosed], 1_001, 0);
        assert_eq!(a, vec![Action::EndJob]);
        let mut s = state(4);
        let ev = [
            lease(1, 1, 0, 2_000),
            report(1, 0, true, 1_010),
            Event::ChainClosed,
        ];
        assert!(tick(&mut s, &ev, 1_001, 0).is_empty());
        let a = tick(
            &mut s,
            &[
                Event::Decided {
                    index: idx(1),
                    accepted: true,
                },
                ask(2),
            ],
            1_002,
            0,
        );
        assert_eq!(lease_of(&a), LeaseDecision::NoneAvailable);
        assert!(a.iter().any(|a| matches!(a, Action::CloseRound { .. })));
    }

    #[test]
    fn a_closing_round_hands_out_nothing() {
        let mut s = state(2);
        s.phase = RoundPhase::Closing;
        let a = tick(&mut s, &[ask(1)], 1_000, 0);
        assert_eq!(
            a,
            vec![Action::Lease {
                trainer: addr(1),
                decision: LeaseDecision::NoneAvailable
            }]
        );
    }

    fn stale(shards: u32, buffer: u32) -> JobState {
        let mut s = state(shards);
        s.sync = SyncPolicy::Stale { max: 2 };
        s.buffer = buffer;
        s
    }

    fn decided(trainer: u8, accepted: bool) -> Event {
        Event::Decided {
            index: idx(trainer),
            accepted,
        }
    }

    #[test]
    fn a_stale_trainer_that_reported_leases_again_at_once() {
        let mut s = stale(2, 2);
        let a = tick(&mut s, &[ask(1)], 1_000, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 0 });
        let ev = [lease(1, 1, 0, 1_060), report(1, 0, true, 1_010), ask(1)];
        let a = tick(&mut s, &ev, 1_001, 0);
        // Under `sync` this is AlreadySubmitted; here it is the next slot.
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 1 });
        let a = tick(&mut s, &[lease(2, 1, 1, 1_061), ask(1)], 1_002, 0);
        assert_eq!(lease_of(&a), LeaseDecision::Existing { task_id: 2 });
        // Slots go on past `shards`: every trainer always has work.
        let a = tick(&mut s, &[ask(2)], 1_002, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 2 });
        let a = tick(&mut s, &[lease(3, 2, 2, 1_062), ask(3)], 1_003, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 3 });
        // A lapsed slot is re-issued before a new one.
        let a = tick(&mut s, &[ask(3)], 1_061, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 1 });
        // So is a rejected one.
        let a = tick(&mut s, &[decided(1, false), ask(4)], 1_061, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 0 });
    }

    #[test]
    fn a_stale_trainer_holding_a_finished_task_gets_its_next_one() {
        let holding = |trainer: u8, task_id: u64| Event::LeaseRequested {
            trainer: addr(trainer),
            capacity: Capacity::M,
            holding: Some(task_id),
        };
        let mut s = stale(4, 3);
        let a = tick(&mut s, &[lease(1, 1, 0, 1_060), ask(1)], 1_000, 0);
        assert_eq!(lease_of(&a), LeaseDecision::Existing { task_id: 1 });
        // Task 1 is trained and waits for a round: the next slot, at once.
        let a = tick(&mut s, &[holding(1, 1)], 1_001, 0);
        assert_eq!(lease_of(&a), LeaseDecision::New { shard: 1 });
        // One task in hand at a time: the new lease comes back, not a third.
        let a = tick(&mut s, &[lease(2, 1, 1, 1_061), holding(1, 1)], 1_002, 0);
        assert_eq!(lease_of(&a), LeaseDecision::Existing { task_id: 2 });
        // Naming another trainer's lease changes nothing.
        let a = tick(&mut s, &[lease(3, 2, 2, 1_062), holding(2, 1)], 1_003, 0);
        assert_eq!(lease_of(&a), LeaseDecision::Existing { task_id: 3 });
        // Under `sync`, a held lease is handed back as before.
        let mut s = state(4);
        let a = tick(&mut s, &[lease(1, 1, 0, 1_060), holding(1, 1)], 1_000, 0);
        assert_eq!(lease_of(&a), LeaseDecision::Existing { task_id: 1 });
    }

    #[test]
    fn a_stale_round_closes_at_its_buffer_without_waiting_for_a_straggler() {
        let mut s = stale(4, 2);
        let ev = [
            lease(1, 1, 0, 2_000),
            lease(2, 2, 1, 2_000),
            lease(3, 3, 2, 2_000),
            report(1, 0, false, 1_010),
            report(2, 1, true, 1_010),
            decided(1, true),
        ];
        // One accepted, one drawn for replay, one still training: open.
        assert!(tick(&mut s, &ev, 1_011, 0).is_empty());
        // Rejected updates never count towards the buffer.
        assert!(tick(&mut s, &[decided(2, false)], 1_012, 0).is_empty());
        let ev = [
            lease(4, 4, 3, 2_000),
            report(4, 3, false, 1_020),
            decided(4, true),
        ];
        let a = tick(&mut s, &ev, 1_021, 0);
        // Trainer 3's lease is live; the round closes anyway.
        match a.as_slice() {
            [Action::CloseRound { inputs, .. }] => {
                let idx: Vec<U256> = inputs.iter().map(|i| i.index).collect();
                assert_eq!(idx, vec![super::tests::idx(1), super::tests::idx(4)]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepted_updates_of_earlier_rounds_join_the_next_stale_aggregate_first() {
        let mut s = stale(4, 2);
        s.round = 3;
        let late = Update {
            index: funetun_chain::bindings::update_index(2, 5, addr(9)),
            trainer: addr(9),
            shard: 5,
            hash: B256::repeat_byte(9),
            status: UpdateStatus::Accepted,
            replay: true,
            deadline: 900,
            voted: true,
            base_round: 1,
        };
        s.carried = vec![late.clone()];
        let ev = [lease(1, 1, 0, 2_000), report(1, 0, false, 1_010)];
        assert!(tick(&mut s, &ev, 1_001, 0).is_empty());
        let a = tick(&mut s, &[decided(1, true)], 1_011, 0);
        match a.as_slice() {
            [Action::CloseRound { inputs, round: 3 }] => {
                assert_eq!(inputs.len(), 2);
                assert_eq!(inputs[0].index, late.index);
                assert_eq!(inputs[0].base_round, 1);
            }
            other => panic!("{other:?}"),
        }
        // Under `sync` the same late update is only paid, never merged.
        let mut s = state(1);
        s.round = 3;
        s.carried = vec![late];
        let ev = [
            lease(1, 1, 0, 2_000),
            report(1, 0, false, 1_010),
            decided(1, true),
        ];
        match tick(&mut s, &ev, 1_011, 0).as_slice() {
            [Action::CloseRound { inputs, .. }] => assert_eq!(inputs.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    fn cand(trainer: u8, platform: &str, quorum: u32) -> Candidate {
        Candidate {
            trainer: addr(trainer),
            platform: Some(platform.into()),
            voters: BTreeSet::new(),
            assigned: vec![],
            leading: 0,
            quorum,
        }
    }

    #[test]
    fn validators_never_check_their_own_updates_and_prefer_their_platform() {
        let cands = vec![cand(1, "x86", 1), cand(2, "arm", 1)];
        assert_eq!(
            pick_assignment(&cands, addr(1), Some("x86"), 0),
            Some((1, false))
        );
        assert_eq!(
            pick_assignment(&cands, addr(3), Some("arm"), 0),
            Some((1, false))
        );
        assert_eq!(pick_assignment(&cands, addr(3), None, 0), Some((0, false)));
    }

    #[test]
    fn an_assignment_goes_to_at_most_quorum_validators_at_once() {
        let mut c = cand(1, "x86", 2);
        c.assigned = vec![(addr(5), 100, false), (addr(6), 100, false)];
        let cands = vec![c];
        assert_eq!(pick_assignment(&cands, addr(7), None, 50), None);
        // The holders get theirs back; after expiry it is re-issued.
        assert_eq!(pick_assignment(&cands, addr(5), None, 50), Some((0, true)));
        assert_eq!(
            pick_assignment(&cands, addr(7), None, 100),
            Some((0, false))
        );
    }

    #[test]
    fn a_split_vote_goes_to_another_validator() {
        let mut c = cand(1, "x86", 2);
        c.voters = [addr(5), addr(6)].into();
        c.assigned = vec![(addr(5), 100, true), (addr(6), 100, true)];
        c.leading = 1;
        let mut agreed = c.clone();
        agreed.leading = 2;
        assert_eq!(pick_assignment(&[c], addr(7), None, 50), Some((0, false)));
        assert_eq!(pick_assignment(&[agreed], addr(7), None, 50), None);
    }

    #[test]
    fn a_validator_that_voted_gets_nothing_more_on_that_update() {
        let mut c = cand(1, "x86", 3);
        c.voters.insert(addr(5));
        c.assigned = vec![(addr(5), 100, true)];
        let cands = vec![c];
        assert_eq!(pick_assignment(&cands, addr(5), None, 50), None);
        assert_eq!(pick_assignment(&cands, addr(6), None, 50), Some((0, false)));
    }
}
