//! Generic verified compute as wire types: a WebAssembly task (module and
//! JSON input) submitted by an owner, its replicas run by workers, and the
//! canonical result a quorum agreed on. The sandbox and the quorum rule
//! live in `funetun-compute`; `docs/tasks.md` tells the whole story.
//!
//! A task is known by its persistent id, a 0x-hex keccak256 the
//! orchestrator hands back at submission: any machine can ask for its
//! status and result with the id alone.

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// How many replicas a task takes (BOINC's work-unit fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redundancy {
    /// Agreeing results needed for a canonical one.
    pub min_quorum: u32,
    /// Replicas issued at first.
    pub target_nresults: u32,
    /// Failures (error results) tolerated before the task is given up,
    /// unless they form a quorum.
    pub max_error_results: u32,
    /// Most replicas ever issued.
    pub max_total_results: u32,
    /// Adaptive replication (BOINC's): a task whose first replica goes to
    /// a worker with a clean record (docs/tasks.md) is run once, except
    /// for random spot checks; new workers' replicas are always checked.
    #[serde(default)]
    pub adaptive: bool,
}

impl Default for Redundancy {
    /// Two agreeing results of two issued, up to six in all.
    fn default() -> Self {
        Redundancy {
            min_quorum: 2,
            target_nresults: 2,
            max_error_results: 3,
            max_total_results: 6,
            adaptive: false,
        }
    }
}

impl Redundancy {
    /// Checks the settings can be met; the message names the field and
    /// the fix.
    pub fn check(&self) -> Result<(), String> {
        if self.min_quorum == 0 {
            return Err("min_quorum must be at least 1".into());
        }
        if self.target_nresults < self.min_quorum {
            return Err(format!(
                "target_nresults ({}) is below min_quorum ({}): a quorum needs that many replicas; \
                 raise target_nresults",
                self.target_nresults, self.min_quorum
            ));
        }
        if self.max_total_results < self.target_nresults {
            return Err(format!(
                "max_total_results ({}) is below target_nresults ({}); raise max_total_results",
                self.max_total_results, self.target_nresults
            ));
        }
        if self.max_total_results > 64 {
            return Err(format!(
                "max_total_results ({}) is over 64; a task runs at most 64 replicas",
                self.max_total_results
            ));
        }
        Ok(())
    }
}

/// `POST /v1/compute/tasks`: an owner submits a task. The module (and the
/// validator module, if any) are blobs uploaded first (`PUT
/// /v1/blobs/{hash}?kind=data`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSubmission {
    /// keccak256 of the task's WebAssembly module.
    pub module: B256,
    /// The input, UTF-8 JSON text (at most 1 MiB).
    pub input: String,
    /// keccak256 of a module exporting `init_valid` and/or
    /// `compare_valid`; none compares results byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<B256>,
    /// How many replicas, and how many must agree.
    #[serde(default)]
    pub redundancy: Redundancy,
    /// Fuel per replica; none takes the orchestrator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// The on-chain task batch whose deposit pays the task's results
    /// (`createTaskBatch`: its owner must be the submitter, its leader this
    /// orchestrator); none runs the task unpaid, and nobody is slashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
}

/// The answer to a submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSubmitted {
    /// The persistent id.
    pub task_id: B256,
}

/// Most tasks in one bulk submission, and most reports or leases in one
/// exchange.
pub const MAX_BATCH: usize = 256;

/// `POST /v1/compute/tasks/bulk`: an owner submits many tasks at once, all
/// or none (each checked as one submission).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskBulk {
    /// The tasks, at most [`MAX_BATCH`].
    pub tasks: Vec<TaskSubmission>,
}

/// The answer to a bulk submission: the persistent ids, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TasksSubmitted {
    /// One id per submitted task.
    pub task_ids: Vec<B256>,
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeStatus {
    /// Replicas are being run.
    Open,
    /// A quorum agreed: the result is canonical.
    Done,
    /// No quorum could be had within the redundancy limits.
    Failed,
}

impl ComputeStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ComputeStatus::Open => "open",
            ComputeStatus::Done => "done",
            ComputeStatus::Failed => "failed",
        }
    }

    /// Parses [`ComputeStatus::as_str`]'s form.
    pub fn parse(s: &str) -> Option<ComputeStatus> {
        [
            ComputeStatus::Open,
            ComputeStatus::Done,
            ComputeStatus::Failed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// One run's result as a worker reports it and the orchestrator keeps it:
/// the output's exact bytes (UTF-8 JSON text), or a failure class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// The output, exactly as the module wrote it; none for a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The failure class (`trap`, `fuel`, `memory`, `output_size`,
    /// `bad_output`, `invalid_module`); none for an output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What failed, for people (not compared between replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Fuel burned.
    pub fuel_used: u64,
}

/// What a replica became.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaStatus {
    /// Leased to a worker, not reported yet.
    Leased,
    /// Reported; the task is not decided yet.
    Reported,
    /// The lease ran out before a report.
    Lapsed,
    /// In the canonical class.
    Valid,
    /// Outside the canonical class, once a quorum decided.
    Invalid,
    /// Reported, but the task failed without a quorum.
    Undecided,
}

impl ReplicaStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaStatus::Leased => "leased",
            ReplicaStatus::Reported => "reported",
            ReplicaStatus::Lapsed => "lapsed",
            ReplicaStatus::Valid => "valid",
            ReplicaStatus::Invalid => "invalid",
            ReplicaStatus::Undecided => "undecided",
        }
    }

    /// Parses [`ReplicaStatus::as_str`]'s form.
    pub fn parse(s: &str) -> Option<ReplicaStatus> {
        [
            ReplicaStatus::Leased,
            ReplicaStatus::Reported,
            ReplicaStatus::Lapsed,
            ReplicaStatus::Valid,
            ReplicaStatus::Invalid,
            ReplicaStatus::Undecided,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// One replica of a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    /// 0, 1, … in the order they were issued.
    pub replica: u32,
    /// Who ran it.
    pub worker: Address,
    /// Where it stands.
    pub status: ReplicaStatus,
    /// keccak256 identifying its result among replicas, once reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<B256>,
    /// Its failure class, if its result was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/compute/tasks/{id}`: a task, its replicas and its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComputeTaskInfo {
    /// The persistent id.
    pub task_id: B256,
    /// Who submitted it.
    pub owner: Address,
    /// The module's keccak256.
    pub module: B256,
    /// The validator module's keccak256, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<B256>,
    /// The input.
    pub input: String,
    /// Redundancy settings.
    pub redundancy: Redundancy,
    /// Whether adaptive replication ran this task once (its first worker
    /// had a clean record and no spot check was drawn).
    #[serde(default)]
    pub adapted: bool,
    /// Fuel per replica.
    pub fuel: u64,
    /// Where it stands.
    pub status: ComputeStatus,
    /// The canonical result, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix second of the submission.
    pub created_at: u64,
    /// Unix second of the decision, once decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<u64>,
    /// Its replicas, in issue order.
    pub replicas: Vec<ReplicaInfo>,
    /// The task batch that pays it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// Whether its money is settled on-chain: `settleComputeTask` paid the valid
    /// replicas and slashed the invalid ones, or nothing was owed.
    #[serde(default)]
    pub settled: bool,
    /// The `settleComputeTask` transaction, once sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<B256>,
}

/// `POST /v1/compute/leases`: a worker asks for a replica to run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRequest {}

/// A replica leased to a worker: what to run and under which limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaLease {
    /// The task.
    pub task_id: B256,
    /// Which replica of it.
    pub replica: u32,
    /// The module's keccak256 (`GET /v1/blobs/{hash}`).
    pub module: B256,
    /// The input.
    pub input: String,
    /// Fuel.
    pub fuel: u64,
    /// Most bytes of linear memory.
    pub memory_bytes: u64,
    /// Most bytes of output.
    pub output_bytes: u64,
    /// Unix second after which the replica goes to someone else.
    pub expires_at: u64,
}

/// `POST /v1/compute/results`: a worker reports a replica's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// The task.
    pub task_id: B256,
    /// The replica leased.
    pub replica: u32,
    /// What the run gave.
    pub result: RunResult,
}

/// `POST /v1/compute/exchange`: a worker reports the replicas it finished
/// and asks for more in one request, as a BOINC client's scheduler request
/// does; one transaction on the orchestrator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// Finished replicas (at most [`MAX_BATCH`]).
    #[serde(default)]
    pub reports: Vec<ReplicaReport>,
    /// How many replicas the worker wants to hold after this exchange,
    /// counting the live ones it holds already (at most [`MAX_BATCH`]).
    #[serde(default)]
    pub want: u32,
}

/// The answer to an exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeReply {
    /// One per report, in order.
    pub acks: Vec<ReplicaAck>,
    /// The live replicas the worker holds, up to `want`: those it held
    /// already (again) and new ones.
    pub leases: Vec<ReplicaLease>,
}

/// The answer to a report: where the task stands now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAck {
    /// The task's status after this report.
    pub status: ComputeStatus,
    /// This replica's status after this report.
    pub replica_status: ReplicaStatus,
}
