//! The orchestrator's HTTP API as types: every request and response body of
//! `/v1`, shared by the server and its clients so the two cannot drift.
//! The routes and their refusals are described in `docs/api.md`.
//!
//! Conventions: hashes and addresses are 0x-hex strings; amounts are decimal
//! strings of wei ([`crate::amount::wei`]); times are unix seconds; an update
//! index (`round << 160 | trainer`) is a 0x-hex U256.

use alloy_primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use crate::amount::wei;
use crate::protocol::{
    DatasetName, JobStatus, ModelKind, NodeKind, Role, RoundStatus, UpdateStatus, ValidationMode,
};
use crate::spec::JobSpec;
use crate::sync::SyncPolicy;

/// Version prefix of every API route.
pub const API_PREFIX: &str = "/v1";

/// The body of every 4xx/5xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `bad_signature`, `unknown_job`.
    pub error: String,
    /// What went wrong and what to do, for people.
    pub detail: String,
}

/// A trainer's declared size: bigger nodes get more local steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Capacity {
    /// Half the job's steps.
    S,
    /// The job's steps.
    #[default]
    M,
    /// Twice the job's steps.
    L,
}

impl std::str::FromStr for Capacity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "S" => Ok(Self::S),
            "M" => Ok(Self::M),
            "L" => Ok(Self::L),
            other => Err(format!("capacity `{other}` is not one of S, M, L")),
        }
    }
}

impl std::fmt::Display for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::S => "S",
            Self::M => "M",
            Self::L => "L",
        })
    }
}

/// `POST /v1/tasks` (alias `POST /get_task`): lease a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// The job to work on.
    pub job_id: u64,
    /// The trainer's size class.
    #[serde(default)]
    pub capacity: Capacity,
    /// The trainer's platform class (`funetun_ml::platform::platform_class`),
    /// recorded so replays go to like machines.
    #[serde(default)]
    pub platform: Option<String>,
    /// A `stale:S` job: the task whose update this trainer has trained and
    /// is still submitting (waiting for a round it may submit in). Its lease
    /// is not handed back; the trainer gets its next task meanwhile, so
    /// compute does not wait on the round. Ignored under `sync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding: Option<u64>,
}

/// A leased task: everything a trainer needs to compute its delta, and
/// everything a validator needs to replay it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The lease's id.
    pub task_id: u64,
    /// The job.
    pub job_id: u64,
    /// The round; the base checkpoint is checkpoint `round`.
    pub round: u64,
    /// keccak256 of the base checkpoint blob.
    pub base_hash: B256,
    /// The network.
    pub model: ModelKind,
    /// A transformer's numbers (`gpt`, `llama`); absent for image models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformer: Option<crate::model::TransformerConfig>,
    /// The data set.
    pub dataset: DatasetName,
    /// Which shard of the training split.
    pub shard: u32,
    /// The task's slot in its round, which names its update on-chain
    /// (`round << 192 | slot << 160 | trainer`): the shard itself in a
    /// `sync` job; a `stale:S` round's slots run on past `shards`.
    pub slot: u32,
    /// How many shards.
    pub shards: u32,
    /// Local optimizer steps.
    pub steps: u32,
    /// Samples per step.
    pub batch: u32,
    /// Inner learning rate.
    pub lr: f32,
    /// Inner optimizer.
    pub optimizer: String,
    /// Learning-rate schedule over the job's global step (`constant`,
    /// `cosine:WARMUP,TOTAL,MIN_LR`).
    #[serde(default = "constant_schedule")]
    pub lr_schedule: String,
    /// The job's global step at the task's first step (`round × steps`).
    #[serde(default)]
    pub global_step: u64,
    /// Largest global gradient norm (0: no clipping).
    #[serde(default)]
    pub grad_clip: f32,
    /// Seed of the task's data order.
    pub seed: u64,
    /// Unix seconds when the lease lapses and the task may go to another.
    pub lease_expires_at: u64,
    /// A LoRA job's adapters (`[lora]` of the spec): the base checkpoint
    /// is then adapters, trained on the frozen model [`Self::frozen_hash`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<crate::lora::LoraConfig>,
    /// keccak256 of a LoRA job's frozen model (its spec's `init`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen_hash: Option<B256>,
    /// The job's sync policy: under `stale:S` the update is submitted in
    /// the round open when it is done, at most S rounds after `round`
    /// (docs/sync.md).
    #[serde(default, skip_serializing_if = "SyncPolicy::is_sync")]
    pub sync: SyncPolicy,
}

fn constant_schedule() -> String {
    "constant".into()
}

/// `POST /v1/updates` (alias `POST /submit_update`): report an update after
/// its on-chain `submitUpdate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// The lease the update answers.
    pub task_id: u64,
    /// keccak256 of the uploaded delta blob.
    pub update_hash: B256,
    /// The `submitUpdate` transaction.
    pub tx_hash: B256,
    /// Loss of the base on the task's evaluation sample.
    pub loss_before: f32,
    /// Loss after training on the same sample.
    pub loss_after: f32,
    /// The trainer's platform class.
    #[serde(default)]
    pub platform: Option<String>,
    /// The round the update was submitted in on-chain: the task's own
    /// unless the job is `stale:S` (then up to S rounds later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u64>,
}

/// The answer to an [`UpdateReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateAck {
    /// The on-chain update index.
    pub update_index: U256,
    /// `pending` until decided, then `accepted` or `rejected`.
    pub status: UpdateStatus,
}

/// Longest reason a [`FailureReport`] may carry, in bytes.
pub const MAX_FAILURE_REASON: usize = 1000;

/// `POST /v1/failures`: a trainer gives up a leased task and says why (a
/// missing data set, a checkpoint that does not decode, …). The lease is
/// released at once, so another trainer can take the shard, and the reason
/// is kept for the job's owner (`GET /v1/jobs/{id}/failures`, `funetun job
/// status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReport {
    /// The leased task that failed.
    pub task_id: u64,
    /// What went wrong, in words (at most [`MAX_FAILURE_REASON`] bytes).
    pub reason: String,
}

/// The answer to a [`FailureReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureAck {
    /// Whether the lease was still live and is now released (false when it
    /// had lapsed, or its round had closed, already).
    pub released: bool,
}

/// One trainer's failures of one kind in a job, as `GET
/// /v1/jobs/{id}/failures` lists them (most recent first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureInfo {
    /// The trainer that reported them.
    pub trainer: Address,
    /// What it said.
    pub reason: String,
    /// How many tasks failed so.
    pub count: u64,
    /// The most recent such task.
    pub last_task_id: u64,
    /// Unix seconds of the first report.
    pub first_at: u64,
    /// Unix seconds of the latest report.
    pub last_at: u64,
}

/// `POST /v1/validations/next`: a validator asks for work.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationRequest {
    /// Only this job, if set.
    #[serde(default)]
    pub job_id: Option<u64>,
    /// The validator's platform class.
    #[serde(default)]
    pub platform: Option<String>,
}

/// An update to check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationAssignment {
    /// The job.
    pub job_id: u64,
    /// The on-chain update index.
    pub update_index: U256,
    /// Who submitted it.
    pub trainer: Address,
    /// The task as the trainer received it.
    pub task: Task,
    /// The committed hash of the delta.
    pub update_hash: B256,
    /// `replay` or `spot-check`.
    pub mode: ValidationMode,
    /// The trainer's reported loss before training.
    pub loss_before: f32,
    /// The trainer's reported loss after training.
    pub loss_after: f32,
    /// Spot-check tolerance from the job's spec.
    pub tolerance: f64,
    /// Why the update is checked (see [`CheckReason`]).
    #[serde(default)]
    pub reason: CheckReason,
    /// With [`CheckReason::KnownHash`]: an earlier update of the job, for
    /// another task, that committed the same hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<U256>,
}

/// Why an update goes to validators (docs/security.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckReason {
    /// Not checked.
    #[default]
    None,
    /// The random draw at the trainer's replay probability.
    Drawn,
    /// Its trainer is on probation (new, or rejected since its last
    /// accepted update): replayed with probability 1.
    Probation,
    /// Its norm is far from the round's honest norms.
    Norm,
    /// It does not lower the loss of a held-out probe batch.
    Loss,
    /// Its hash was already committed for another task (a copied or stale
    /// delta): invalid without any replay.
    KnownHash,
    /// Committed on-chain but never reported with its delta.
    Unreported,
    /// Challenged on-chain.
    Challenged,
}

impl CheckReason {
    /// The word used in the API and the dashboard.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckReason::None => "none",
            CheckReason::Drawn => "drawn",
            CheckReason::Probation => "probation",
            CheckReason::Norm => "norm",
            CheckReason::Loss => "loss",
            CheckReason::KnownHash => "known-hash",
            CheckReason::Unreported => "unreported",
            CheckReason::Challenged => "challenged",
        }
    }

    /// Parses [`CheckReason::as_str`]'s words (anything else is `None`).
    pub fn parse(s: &str) -> Self {
        match s {
            "drawn" => CheckReason::Drawn,
            "probation" => CheckReason::Probation,
            "norm" => CheckReason::Norm,
            "loss" => CheckReason::Loss,
            "known-hash" => CheckReason::KnownHash,
            "unreported" => CheckReason::Unreported,
            "challenged" => CheckReason::Challenged,
            _ => CheckReason::None,
        }
    }

    /// Whether a guard (not the draw) sent it to validators.
    pub fn is_guard(self) -> bool {
        matches!(
            self,
            CheckReason::Norm
                | CheckReason::Loss
                | CheckReason::KnownHash
                | CheckReason::Unreported
        )
    }
}

impl std::fmt::Display for CheckReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v1/validations` (alias `POST /submit_validation`): report a vote
/// after the on-chain `validateUpdate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The job.
    pub job_id: u64,
    /// The on-chain update index.
    pub update_index: U256,
    /// The vote.
    pub valid: bool,
    /// The `validateUpdate` transaction.
    pub tx_hash: B256,
    /// What the validator measured (e.g. replay hash, losses).
    pub detail: String,
}

/// Acknowledges a [`ValidationReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationAck {
    /// The update's status after the vote.
    pub status: UpdateStatus,
}

/// A job as listed by `GET /v1/jobs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// On-chain id.
    pub job_id: u64,
    /// Name from the spec.
    pub name: String,
    /// Who paid.
    pub owner: Address,
    /// The orchestrator named as leader.
    pub leader: Address,
    /// keccak256 of the spec blob.
    pub spec_hash: B256,
    /// `active`, `finished`, `closed`.
    pub status: JobStatus,
    /// The round now being trained (= checkpoints committed − 1).
    pub round: u64,
    /// Rounds in the spec.
    pub rounds: u64,
    /// Deposited by the owner.
    #[serde(with = "wei")]
    pub deposit_wei: U256,
    /// Credited to trainers (base rewards and bonuses).
    #[serde(with = "wei")]
    pub paid_wei: U256,
    /// Slashed stake credited to this job.
    #[serde(with = "wei")]
    pub slashed_wei: U256,
    /// Deposit not yet paid, reserved or withdrawn.
    #[serde(with = "wei")]
    pub remaining_wei: U256,
    /// Hash of the latest committed checkpoint.
    pub latest_checkpoint: Option<B256>,
    /// Test accuracy of the latest evaluated checkpoint.
    pub test_accuracy: Option<f64>,
    /// Unix seconds when the orchestrator saw `JobCreated`.
    pub created_at: u64,
}

/// `GET /v1/jobs/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: JobSummary,
    /// The full spec.
    pub spec: JobSpec,
    /// Base reward in wei.
    #[serde(with = "wei")]
    pub base_reward_wei: U256,
    /// Paid to each validator of the quorum that decides an update, in wei.
    #[serde(with = "wei")]
    pub validation_reward_wei: U256,
    /// Paid to validators so far (part of `paid_wei`), in wei.
    #[serde(with = "wei")]
    pub validators_paid_wei: U256,
}

/// One round, as `GET /v1/jobs/{id}/rounds` lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundInfo {
    /// Round number t (trains from checkpoint t to t+1).
    pub round: u64,
    /// `open` or `closed`.
    pub status: RoundStatus,
    /// Checkpoint t.
    pub base_hash: B256,
    /// Checkpoint t+1 once closed.
    pub checkpoint_hash: Option<B256>,
    /// Leases handed out (including re-issues).
    pub leased: u64,
    /// Updates reported.
    pub submitted: u64,
    /// Updates drawn for replay.
    pub replayed: u64,
    /// Updates accepted.
    pub accepted: u64,
    /// Updates rejected.
    pub rejected: u64,
    /// Test loss of checkpoint t+1.
    pub test_loss: Option<f64>,
    /// Test accuracy of checkpoint t+1 (text: next-token accuracy on the
    /// validation split).
    pub test_accuracy: Option<f64>,
    /// Text jobs: e^test_loss, the validation perplexity of checkpoint t+1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_perplexity: Option<f64>,
    /// Text jobs: a short sample checkpoint t+1 writes (seeded, so the
    /// same checkpoint always writes the same sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
    /// Mean of the trainers' reported loss after training.
    pub train_loss: Option<f64>,
    /// Unix seconds the round opened.
    pub opened_at: u64,
    /// Unix seconds the round closed.
    pub closed_at: Option<u64>,
    /// The `commitCheckpoint` transaction of checkpoint t+1.
    pub commit_tx: Option<B256>,
    /// The manifest of checkpoint t+1 (what it was built from; a blob, and
    /// its hash is on-chain with the checkpoint), once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_hash: Option<B256>,
    /// The orchestrator replica whose term as leader closed the round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub led_by: Option<String>,
}

/// A validator's vote on an update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteInfo {
    /// Who voted.
    pub validator: Address,
    /// The vote.
    pub valid: bool,
    /// The `validateUpdate` transaction.
    pub tx_hash: B256,
    /// What the validator reported.
    pub detail: String,
}

/// One update, as `GET /v1/jobs/{id}/updates` lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateInfo {
    /// The job.
    pub job_id: u64,
    /// The round.
    pub round: u64,
    /// The on-chain update index.
    pub update_index: U256,
    /// Who submitted it.
    pub trainer: Address,
    /// The task it answers.
    pub task_id: u64,
    /// The shard it trained on.
    pub shard: u32,
    /// Local steps of its task, as assigned.
    #[serde(default)]
    pub steps: u32,
    /// The committed hash.
    pub update_hash: B256,
    /// The `submitUpdate` transaction.
    pub submit_tx: B256,
    /// `pending`, `accepted` or `rejected`.
    pub status: UpdateStatus,
    /// Whether it was drawn for checking.
    pub replay: bool,
    /// Why it went to validators (`none` when it did not).
    #[serde(default)]
    pub reason: CheckReason,
    /// Votes reported so far.
    pub votes: Vec<VoteInfo>,
    /// Reported loss before training.
    pub loss_before: f32,
    /// Reported loss after training.
    pub loss_after: f32,
    /// Credited to the trainer for it.
    #[serde(with = "wei")]
    pub paid_wei: U256,
    /// Taken from the trainer's stake for it.
    #[serde(with = "wei")]
    pub slashed_wei: U256,
    /// Unix seconds when it was reported.
    pub submitted_at: u64,
    /// The round whose checkpoint it was trained on (its task's).
    #[serde(default)]
    pub base_round: u64,
    /// The round whose aggregate merged it, once one did (its staleness is
    /// `merged_round − base_round`; docs/sync.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_round: Option<u64>,
    /// Seconds from its lease to its report: the trainer's time on the task.
    #[serde(default)]
    pub task_seconds: u64,
}

/// A participant, as `GET /v1/participants` lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// The address.
    pub address: Address,
    /// `trainer`, `validator`, `owner`, `leader`.
    pub roles: Vec<Role>,
    /// Stake on-chain, as last seen.
    #[serde(with = "wei")]
    pub stake_wei: U256,
    /// Credited and not yet withdrawn, as last seen.
    #[serde(with = "wei")]
    pub credit_wei: U256,
    /// Total credited by decided updates and bonuses.
    #[serde(with = "wei")]
    pub earned_wei: U256,
    /// Total slashed.
    #[serde(with = "wei")]
    pub slashed_wei: U256,
    /// Updates accepted.
    pub accepted: u64,
    /// Updates rejected.
    pub rejected: u64,
    /// Votes reported.
    pub validations: u64,
    /// Effective compute `0.4·D + 0.6·T` in ut (1/200 of a day of a 1
    /// GFLOPS machine), decaying with a weekly half-life; see
    /// docs/reputation.md.
    pub reputation: f64,
    /// Declared capacity of its last lease.
    pub capacity: Option<Capacity>,
    /// Unix seconds of its last request or event.
    pub last_seen: u64,
}

/// `GET /graph`: who talks to whom.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Participants and services.
    pub nodes: Vec<GraphNode>,
    /// Message flows between them.
    pub edges: Vec<GraphEdge>,
    /// Unix seconds of the latest change.
    pub updated_at: u64,
}

/// A node of the [`Graph`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    /// Stable id: an address, `orchestrator` or `contract`.
    pub id: String,
    /// Short label for display.
    pub label: String,
    /// `owner`, `orchestrator`, `contract`, `trainer`, `validator`, `challenger`.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Unix seconds of its last activity.
    pub last_seen: u64,
}

/// An edge of the [`Graph`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    /// Stable id: `source->target:label`.
    pub id: String,
    /// Node id.
    pub source: String,
    /// Node id.
    pub target: String,
    /// What flows, e.g. `lease`, `update`, `vote`, `submitUpdate`.
    pub label: String,
    /// How many messages.
    pub count: u64,
    /// Unix seconds of the latest one.
    pub last_seen: u64,
}

/// `GET /v1/info`: who this orchestrator is and which contract it serves,
/// so participants need only its URL and the RPC endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// The orchestrator's (leader's) address.
    pub leader: Address,
    /// The `JobManager` contract.
    pub contract: Address,
    /// The chain's id.
    pub chain_id: u64,
    /// The orchestrator's version.
    pub version: String,
}

/// `GET /healthz`: whether the orchestrator can serve, and each of its
/// dependencies' state. Answered 200 when `ok`, 503 otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Every dependency answers.
    pub ok: bool,
    /// The orchestrator's (leader's) address.
    pub leader: Address,
    /// The `JobManager` contract.
    pub contract: Address,
    /// The last chain block whose events are applied.
    pub last_block: Option<u64>,
    /// The chain's JSON-RPC node.
    pub chain: DependencyHealth,
    /// The state database.
    pub database: DependencyHealth,
    /// This replica's name.
    #[serde(default)]
    pub replica: String,
    /// Whether this replica leads (runs the chain watcher and the round
    /// driver) now; the others serve the API.
    #[serde(default)]
    pub leading: bool,
}

/// One dependency in [`Health`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DependencyHealth {
    /// It answered the last probe.
    pub ok: bool,
    /// The chain's head at the last good read (chain only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<u64>,
    /// Seconds since the last good read (chain only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_secs_ago: Option<f64>,
    /// Why the last probe failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DependencyHealth {
    /// A dependency that answered.
    pub fn up() -> Self {
        DependencyHealth {
            ok: true,
            head: None,
            seen_secs_ago: None,
            error: None,
        }
    }

    /// A dependency that failed with `error`.
    pub fn down(error: impl Into<String>) -> Self {
        DependencyHealth {
            ok: false,
            error: Some(error.into()),
            ..Self::up()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_travel_as_decimal_strings() {
        let p = ParticipantInfo {
            address: Address::ZERO,
            roles: vec![Role::Trainer],
            stake_wei: U256::from(10u64).pow(U256::from(20)),
            credit_wei: U256::ZERO,
            earned_wei: U256::ZERO,
            slashed_wei: U256::ZERO,
            accepted: 0,
            rejected: 0,
            validations: 0,
            reputation: 0.0,
            capacity: Some(Capacity::L),
            last_seen: 0,
        };
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["stake_wei"], "100000000000000000000");
        assert_eq!(json["capacity"], "L");
        let back: ParticipantInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn graph_nodes_name_their_type_field_type() {
        let n = GraphNode {
            id: "orchestrator".into(),
            label: "orchestrator".into(),
            kind: NodeKind::Orchestrator,
            last_seen: 1,
        };
        assert_eq!(serde_json::to_value(&n).unwrap()["type"], "orchestrator");
    }
}
