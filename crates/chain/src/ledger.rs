//! [`Ledger`]: a typed client of one `JobManager` contract for one key, over any alloy
//! provider (the embedded dev chain, anvil, a node, a testnet).
//!
//! Transactions are signed locally with a locally tracked nonce. Every node request is
//! retried with exponential backoff on transport errors; a transaction is never sent again
//! before checking whether the earlier attempt landed (re-broadcasting the same signed bytes
//! is all a retry ever does, so one call can never become two). Reverts are decoded into the
//! contract's custom errors. A receipt counts once it is `confirmations` blocks deep.

use std::future::IntoFuture;
use std::time::Duration;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolConstructor, SolEvent};
use alloy::transports::{RpcError, TransportError};
use futures_util::Stream;
use tokio::sync::Mutex;

use crate::bindings::JobManager::{self, JobManagerErrors};
use crate::deploy::{ContractParams, Deployment};
use crate::error::{ChainError, Result};
use crate::events::{LoggedEvent, decode_logs};

/// Behaviour of a [`Ledger`]: confirmation depth, polling, retries.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Blocks a receipt must be under before a call returns: 1 = included in the latest
    /// block. Event queries and streams also stay this far behind the head.
    pub confirmations: u64,
    /// Pause between receipt and event polls.
    pub poll_interval: Duration,
    /// How long to wait for a receipt before giving up (the transaction may still land).
    pub receipt_timeout: Duration,
    /// Attempts per node request on transport errors.
    pub max_attempts: u32,
    /// First backoff pause; it doubles on each retry.
    pub retry_delay: Duration,
    /// Extra gas added to the node's estimate, in percent.
    pub gas_margin_percent: u64,
    /// Blocks per `eth_getLogs` request.
    pub log_chunk: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            confirmations: 1,
            poll_interval: Duration::from_millis(50),
            receipt_timeout: Duration::from_secs(120),
            max_attempts: 6,
            retry_delay: Duration::from_millis(100),
            gas_margin_percent: 20,
            log_chunk: 10_000,
        }
    }
}

/// A mined, successful transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// Its hash.
    pub tx_hash: B256,
    /// Its block.
    pub block_number: u64,
    /// Gas it used.
    pub gas_used: u64,
    /// Price paid per gas, in wei (fee = `gas_used * effective_gas_price`).
    pub effective_gas_price: u128,
    /// The contract events it emitted.
    pub events: Vec<LoggedEvent>,
}

impl TxOutcome {
    /// The fee paid, in wei.
    pub fn fee(&self) -> U256 {
        U256::from(self.gas_used) * U256::from(self.effective_gas_price)
    }
}

/// Parameters of `createJob`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// keccak256 of the job spec blob.
    pub spec_hash: B256,
    /// The orchestrator that commits checkpoints.
    pub leader: Address,
    /// Paid per accepted update, in wei.
    pub base_reward: U256,
    /// What the leader may award once per accepted update, in wei.
    pub bonus_reward: U256,
    /// Paid to each validator of the quorum that decides an update, in wei.
    pub validation_reward: U256,
    /// Training rounds.
    pub rounds: u32,
    /// Matching votes that decide an update.
    pub quorum: u8,
    /// Seconds during which an update can be challenged.
    pub challenge_window: u32,
    /// The deposit, in wei.
    pub deposit: U256,
}

/// What a transaction named as a trainer's `submitUpdate` turned out to be
/// ([`Ledger::verify_submission`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionCheck {
    /// Mined, succeeded, emitted the expected `UpdateSubmitted`, and is
    /// `confirmations` blocks deep.
    Confirmed {
        /// The block that included it.
        block_number: u64,
        /// That block's hash.
        block_hash: B256,
    },
    /// No receipt (yet).
    NotMined,
    /// Mined but reverted.
    Reverted,
    /// Mined and succeeded, but emitted no matching `UpdateSubmitted` of this contract.
    NoEvent,
    /// The event is there but the block is not yet `confirmations` deep.
    Unconfirmed {
        /// The block that included it.
        block_number: u64,
    },
}

/// Whether the chain holds a validator's vote ([`Ledger::verify_vote`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoteCheck {
    /// The vote is on-chain: in the named transaction's events or among the
    /// update's stored votes.
    pub found: bool,
    /// The named transaction decided the update: `Some(accepted)`.
    pub decided: Option<bool>,
}

/// A typed client of one `JobManager` for one key.
pub struct Ledger<P = DynProvider> {
    provider: P,
    contract: Address,
    signer: PrivateKeySigner,
    chain_id: u64,
    next_nonce: Mutex<Option<u64>>,
    config: LedgerConfig,
}

impl Ledger<DynProvider> {
    /// Connects to `rpc_url` over HTTP and binds the contract at `contract`.
    pub async fn connect(
        rpc_url: &str,
        contract: Address,
        signer: PrivateKeySigner,
        config: LedgerConfig,
    ) -> Result<Self> {
        Ledger::new(http_provider(rpc_url)?, contract, signer, config).await
    }
}

/// A plain HTTP provider (no fillers: the [`Ledger`] fills and signs itself).
pub fn http_provider(rpc_url: &str) -> Result<DynProvider> {
    let url = rpc_url.parse().map_err(|e| ChainError::Rpc {
        code: 0,
        message: format!("invalid RPC URL {rpc_url}: {e}"),
    })?;
    // Idle connections are dropped before a server's keep-alive limit (30 s
    // for Funetun's servers), so a request never races the server's close.
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| ChainError::Rpc {
            code: 0,
            message: format!("cannot build an HTTP client: {e}"),
        })?;
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_reqwest(http, url)
        .erased())
}

/// The chain id the node at `rpc_url` reports (one request, no retries).
pub async fn chain_id(rpc_url: &str) -> Result<u64> {
    http_provider(rpc_url)?
        .get_chain_id()
        .await
        .map_err(node_error)
}

fn is_transient(error: &TransportError) -> bool {
    match error {
        RpcError::Transport(kind) => {
            kind.is_retry_err()
                || !matches!(
                    kind,
                    alloy::transports::TransportErrorKind::MissingBatchResponse(_)
                )
        }
        RpcError::NullResp => true,
        RpcError::ErrorResp(payload) => payload.code == 429 || payload.code == -32005,
        _ => false,
    }
}

/// Turns a node error into a [`ChainError`], decoding revert data into the contract's errors.
fn node_error(error: TransportError) -> ChainError {
    match error {
        RpcError::ErrorResp(payload) => {
            if let Some(decoded) = payload.as_decoded_interface_error::<JobManagerErrors>() {
                ChainError::Revert(decoded)
            } else if let Some(data) = payload.as_revert_data() {
                ChainError::RevertData(data.to_vec())
            } else {
                ChainError::Rpc {
                    code: payload.code,
                    message: payload.message.to_string(),
                }
            }
        }
        other => ChainError::Rpc {
            code: 0,
            message: other.to_string(),
        },
    }
}

impl<P: Provider + Clone> Ledger<P> {
    /// Binds the contract at `contract` for `signer` over `provider`; checks that code is there.
    pub async fn new(
        provider: P,
        contract: Address,
        signer: PrivateKeySigner,
        config: LedgerConfig,
    ) -> Result<Self> {
        let mut ledger = Ledger {
            provider,
            contract,
            signer,
            chain_id: 0,
            next_nonce: Mutex::new(None),
            config,
        };
        ledger.chain_id = ledger.retry(|| ledger.provider.get_chain_id()).await?;
        let code = ledger
            .retry(|| ledger.provider.get_code_at(contract))
            .await?;
        if code.is_empty() {
            return Err(ChainError::NoContract(contract));
        }
        Ok(ledger)
    }

    /// Deploys a new `JobManager` and returns a ledger bound to it.
    pub async fn deploy(
        provider: P,
        signer: PrivateKeySigner,
        params: &ContractParams,
        config: LedgerConfig,
    ) -> Result<(Self, Deployment)> {
        let mut ledger = Ledger {
            provider,
            contract: Address::ZERO,
            signer,
            chain_id: 0,
            next_nonce: Mutex::new(None),
            config,
        };
        ledger.chain_id = ledger.retry(|| ledger.provider.get_chain_id()).await?;
        let args = JobManager::constructorCall {
            minStake: params.min_stake,
            leaveCooldown: U256::from(params.leave_cooldown),
            challengeBond: params.challenge_bond,
            trainerSlashBps: U256::from(params.trainer_slash_bps),
            validatorShareBps: U256::from(params.validator_share_bps),
            validatorPenaltyBps: U256::from(params.validator_penalty_bps),
            decisionTimeout: U256::from(params.decision_timeout),
        }
        .abi_encode();
        let mut code = JobManager::BYTECODE.to_vec();
        code.extend_from_slice(&args);
        let (outcome, receipt) = ledger
            .send_raw(TxKind::Create, code.into(), U256::ZERO)
            .await?;
        let address = receipt.contract_address.ok_or_else(|| {
            ChainError::Unexpected("deployment receipt without a contract address".into())
        })?;
        ledger.contract = address;
        let deployment = Deployment {
            address,
            tx_hash: outcome.tx_hash,
            gas_used: outcome.gas_used,
            block_number: outcome.block_number,
        };
        Ok((ledger, deployment))
    }

    /// The contract's address.
    pub fn contract(&self) -> Address {
        self.contract
    }

    /// The signing account's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The underlying provider.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// Forgets the locally tracked nonce: the next transaction asks the node
    /// for it. For a key that another process may have used meanwhile (an
    /// orchestrator replica that has just become leader).
    pub async fn forget_nonce(&self) {
        *self.next_nonce.lock().await = None;
    }

    /// The configuration.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// The same contract and provider, signing with another key.
    pub fn with_signer(&self, signer: PrivateKeySigner) -> Ledger<P> {
        Ledger {
            provider: self.provider.clone(),
            contract: self.contract,
            signer,
            chain_id: self.chain_id,
            next_nonce: Mutex::new(None),
            config: self.config.clone(),
        }
    }

    // ------------------------------------------------------------------ writes

    /// `createJob`: locks `job.deposit`; returns the job id.
    pub async fn create_job(&self, job: &NewJob) -> Result<(U256, TxOutcome)> {
        let call = JobManager::createJobCall {
            specHash: job.spec_hash,
            leader: job.leader,
            baseReward: job.base_reward,
            bonusReward: job.bonus_reward,
            validationReward: job.validation_reward,
            rounds: job.rounds,
            quorum: job.quorum,
            challengeWindow: job.challenge_window,
        };
        let outcome = self.send(call.abi_encode(), job.deposit).await?;
        let id = outcome
            .events
            .iter()
            .find_map(|e| match &e.event {
                JobManager::JobManagerEvents::JobCreated(c) => Some(c.jobId),
                _ => None,
            })
            .ok_or_else(|| ChainError::Unexpected("createJob emitted no JobCreated".into()))?;
        Ok((id, outcome))
    }

    /// `registerTrainer`: stakes `stake` (adds to an existing stake).
    pub async fn register_trainer(&self, stake: U256) -> Result<TxOutcome> {
        self.send(JobManager::registerTrainerCall {}.abi_encode(), stake)
            .await
    }

    /// `registerValidator`: stakes `stake` (adds to an existing stake).
    pub async fn register_validator(&self, stake: U256) -> Result<TxOutcome> {
        self.send(JobManager::registerValidatorCall {}.abi_encode(), stake)
            .await
    }

    /// `requestLeave`: gives up every role; the stake unlocks after the cooldown.
    pub async fn request_leave(&self) -> Result<TxOutcome> {
        self.send(JobManager::requestLeaveCall {}.abi_encode(), U256::ZERO)
            .await
    }

    /// `withdrawStake`: takes the whole stake back after the cooldown.
    pub async fn withdraw_stake(&self) -> Result<TxOutcome> {
        self.send(JobManager::withdrawStakeCall {}.abi_encode(), U256::ZERO)
            .await
    }

    /// `withdraw`: takes every credited payout.
    pub async fn withdraw(&self) -> Result<TxOutcome> {
        self.send(JobManager::withdrawCall {}.abi_encode(), U256::ZERO)
            .await
    }

    /// `submitUpdate`: commits the delta hash of the task on `shard` in
    /// `round`; returns the update index.
    pub async fn submit_update(
        &self,
        job_id: U256,
        round: u64,
        shard: u32,
        update_hash: B256,
    ) -> Result<(U256, TxOutcome)> {
        let call = JobManager::submitUpdateCall {
            jobId: job_id,
            round: U256::from(round),
            shard,
            updateHash: update_hash,
        };
        let outcome = self.send(call.abi_encode(), U256::ZERO).await?;
        Ok((
            crate::bindings::update_index(round, shard, self.address()),
            outcome,
        ))
    }

    /// `validateUpdate`: votes on an update.
    pub async fn validate_update(
        &self,
        job_id: U256,
        index: U256,
        valid: bool,
    ) -> Result<TxOutcome> {
        let call = JobManager::validateUpdateCall {
            jobId: job_id,
            index,
            valid,
        };
        self.send(call.abi_encode(), U256::ZERO).await
    }

    /// `challenge`: disputes a pending update with `bond` (must equal `CHALLENGE_BOND`).
    pub async fn challenge(&self, job_id: U256, index: U256, bond: U256) -> Result<TxOutcome> {
        self.send(
            JobManager::challengeCall {
                jobId: job_id,
                index,
            }
            .abi_encode(),
            bond,
        )
        .await
    }

    /// `finalizeUpdate`: accepts an update whose window closed unchallenged and
    /// unvoted (the leader alone until the decision timeout), or settles one
    /// still under review at its decision timeout (accepted or void).
    pub async fn finalize_update(&self, job_id: U256, index: U256) -> Result<TxOutcome> {
        self.send(
            JobManager::finalizeUpdateCall {
                jobId: job_id,
                index,
            }
            .abi_encode(),
            U256::ZERO,
        )
        .await
    }

    /// `commitCheckpoint`: the leader commits a round's checkpoint hash and
    /// the hash of its manifest (zero for checkpoint 0).
    pub async fn commit_checkpoint(
        &self,
        job_id: U256,
        round: u64,
        hash: B256,
        manifest: B256,
    ) -> Result<TxOutcome> {
        let call = JobManager::commitCheckpointCall {
            jobId: job_id,
            round: U256::from(round),
            hash,
            manifest,
        };
        self.send(call.abi_encode(), U256::ZERO).await
    }

    /// `awardBonus`: the leader pays the job's bonus to an accepted update.
    pub async fn award_bonus(&self, job_id: U256, index: U256) -> Result<TxOutcome> {
        self.send(
            JobManager::awardBonusCall {
                jobId: job_id,
                index,
            }
            .abi_encode(),
            U256::ZERO,
        )
        .await
    }

    /// `createTaskBatch`: locks `deposit` to pay `result_reward` per canonical
    /// result of generic compute tasks led by `leader`, until `duration`
    /// seconds from now; returns the batch id.
    pub async fn create_task_batch(
        &self,
        spec_hash: B256,
        leader: Address,
        result_reward: U256,
        duration: u32,
        deposit: U256,
    ) -> Result<(U256, TxOutcome)> {
        let call = JobManager::createTaskBatchCall {
            specHash: spec_hash,
            leader,
            resultReward: result_reward,
            duration,
        };
        let outcome = self.send(call.abi_encode(), deposit).await?;
        let id = outcome
            .events
            .iter()
            .find_map(|e| match &e.event {
                JobManager::JobManagerEvents::TaskBatchCreated(c) => Some(c.batchId),
                _ => None,
            })
            .ok_or_else(|| {
                ChainError::Unexpected("createTaskBatch emitted no TaskBatchCreated".into())
            })?;
        Ok((id, outcome))
    }

    /// `settleComputeTask`: the leader pays the workers of a compute task's
    /// canonical class (`paid`) and slashes those outside it (`slashed`).
    pub async fn settle_compute_task(
        &self,
        batch_id: U256,
        task_id: B256,
        result_hash: B256,
        paid: Vec<Address>,
        slashed: Vec<Address>,
    ) -> Result<TxOutcome> {
        let call = JobManager::settleComputeTaskCall {
            batchId: batch_id,
            taskId: task_id,
            resultHash: result_hash,
            paid,
            slashed,
        };
        self.send(call.abi_encode(), U256::ZERO).await
    }

    /// Whether task `task_id` of batch `batch_id` was settled on-chain.
    pub async fn task_settled(&self, batch_id: U256, task_id: B256) -> Result<bool> {
        self.view(JobManager::taskSettledCall {
            batchId: batch_id,
            taskId: task_id,
        })
        .await
    }

    /// `withdrawUnusedFunds`: the owner closes the job and takes the unreserved deposit.
    pub async fn withdraw_unused_funds(&self, job_id: U256) -> Result<TxOutcome> {
        self.send(
            JobManager::withdrawUnusedFundsCall { jobId: job_id }.abi_encode(),
            U256::ZERO,
        )
        .await
    }

    // ------------------------------------------------------------------- reads

    /// The job (status `NONE` when it does not exist).
    pub async fn job(&self, job_id: U256) -> Result<JobManager::JobView> {
        self.view(JobManager::getJobCall { jobId: job_id }).await
    }

    /// The update at `index` of `job_id` (status `NONE` when there is none).
    pub async fn update(&self, job_id: U256, index: U256) -> Result<JobManager::UpdateView> {
        self.view(JobManager::getUpdateCall {
            jobId: job_id,
            index,
        })
        .await
    }

    /// The account of `account`: stake, credit, unlock time, pending count, roles.
    pub async fn account(&self, account: Address) -> Result<JobManager::AccountView> {
        self.view(JobManager::getAccountCall { account }).await
    }

    /// The votes stored on an update before its verdict.
    pub async fn votes(&self, job_id: U256, index: U256) -> Result<Vec<(Address, bool)>> {
        let r = self
            .view(JobManager::getVotesCall {
                jobId: job_id,
                index,
            })
            .await?;
        Ok(r.voters.into_iter().zip(r.valid).collect())
    }

    /// Whether `update_hash` is the hash committed for the update.
    pub async fn matches_hash(&self, job_id: U256, index: U256, update_hash: B256) -> Result<bool> {
        self.view(JobManager::matchesHashCall {
            jobId: job_id,
            index,
            updateHash: update_hash,
        })
        .await
    }

    /// The checkpoint hash of `round` (zero when not committed).
    pub async fn checkpoint(&self, job_id: U256, round: u64) -> Result<B256> {
        self.view(JobManager::checkpointHashCall {
            _0: job_id,
            _1: U256::from(round),
        })
        .await
    }

    /// The number of jobs created.
    pub async fn job_count(&self) -> Result<U256> {
        self.view(JobManager::jobCountCall {}).await
    }

    /// The contract's constructor parameters.
    pub async fn params(&self) -> Result<ContractParams> {
        let bps = |v: U256| v.saturating_to::<u16>();
        Ok(ContractParams {
            min_stake: self.view(JobManager::MIN_STAKECall {}).await?,
            leave_cooldown: self
                .view(JobManager::LEAVE_COOLDOWNCall {})
                .await?
                .saturating_to(),
            challenge_bond: self.view(JobManager::CHALLENGE_BONDCall {}).await?,
            trainer_slash_bps: bps(self.view(JobManager::TRAINER_SLASH_BPSCall {}).await?),
            validator_share_bps: bps(self.view(JobManager::VALIDATOR_SHARE_BPSCall {}).await?),
            validator_penalty_bps: bps(self.view(JobManager::VALIDATOR_PENALTY_BPSCall {}).await?),
            decision_timeout: self
                .view(JobManager::DECISION_TIMEOUTCall {})
                .await?
                .saturating_to(),
        })
    }

    /// The Ether balance of `account`.
    pub async fn balance(&self, account: Address) -> Result<U256> {
        self.retry(|| self.provider.get_balance(account)).await
    }

    /// The latest block number.
    pub async fn block_number(&self) -> Result<u64> {
        self.retry(|| self.provider.get_block_number()).await
    }

    /// The full 32-byte hash committed for `trainer`'s update on `shard` of
    /// `round`, from its `UpdateSubmitted` event at or after `from_block`,
    /// checked against the stored prefix.
    pub async fn update_hash(
        &self,
        job_id: U256,
        round: u64,
        shard: u32,
        trainer: Address,
        from_block: u64,
    ) -> Result<Option<B256>> {
        Ok(self
            .update_submission(job_id, round, shard, trainer, from_block)
            .await?
            .map(|(hash, _)| hash))
    }

    /// The full hash and the transaction of `trainer`'s `submitUpdate` on `shard` of `round`, from
    /// its `UpdateSubmitted` event at or after `from_block`, checked against the stored
    /// prefix. A restarted trainer uses it to report a submission it did not record.
    pub async fn update_submission(
        &self,
        job_id: U256,
        round: u64,
        shard: u32,
        trainer: Address,
        from_block: u64,
    ) -> Result<Option<(B256, B256)>> {
        let filter = Filter::new()
            .address(self.contract)
            .event_signature(JobManager::UpdateSubmitted::SIGNATURE_HASH)
            .topic1(job_id)
            .topic2(trainer.into_word())
            .from_block(from_block);
        let logs = self.retry(|| self.provider.get_logs(&filter)).await?;
        for event in decode_logs(self.contract, &logs) {
            if let JobManager::JobManagerEvents::UpdateSubmitted(e) = event.event
                && e.index == crate::bindings::update_index(round, shard, trainer)
            {
                let index = e.index;
                return Ok(self
                    .matches_hash(job_id, index, e.updateHash)
                    .await?
                    .then_some((e.updateHash, event.tx_hash)));
            }
        }
        Ok(None)
    }

    /// The manifest hash committed with each checkpoint of a job, by round,
    /// from its `CheckpointCommitted` events at or after `from_block`
    /// (checkpoint 0's is zero).
    pub async fn checkpoint_manifests(
        &self,
        job_id: U256,
        from_block: u64,
    ) -> Result<std::collections::BTreeMap<u64, B256>> {
        let filter = Filter::new()
            .address(self.contract)
            .event_signature(JobManager::CheckpointCommitted::SIGNATURE_HASH)
            .topic1(job_id)
            .from_block(from_block);
        let logs = self.retry(|| self.provider.get_logs(&filter)).await?;
        let mut out = std::collections::BTreeMap::new();
        for event in decode_logs(self.contract, &logs) {
            if let JobManager::JobManagerEvents::CheckpointCommitted(e) = event.event {
                out.insert(e.round.saturating_to::<u64>(), e.manifestHash);
            }
        }
        Ok(out)
    }

    /// Gas used by every transaction in blocks `from..=to` (block headers' `gasUsed`).
    pub async fn gas_used(&self, from: u64, to: u64) -> Result<u64> {
        let mut total = 0u64;
        for number in from..=to {
            let block = self
                .retry(|| self.provider.get_block_by_number(number.into()))
                .await?
                .ok_or_else(|| ChainError::Unexpected(format!("block {number} is missing")))?;
            total = total.saturating_add(block.header.gas_used);
        }
        Ok(total)
    }

    /// Every contract event in blocks `from..=to` (`to` defaults to the confirmed head).
    pub async fn events(&self, from: u64, to: Option<u64>) -> Result<Vec<LoggedEvent>> {
        let to = match to {
            Some(to) => to,
            None => self.confirmed_head().await?,
        };
        let mut out = Vec::new();
        let mut start = from;
        while start <= to {
            let end = to.min(start.saturating_add(self.config.log_chunk.max(1) - 1));
            let filter = Filter::new()
                .address(self.contract)
                .from_block(start)
                .to_block(end);
            let logs = self.retry(|| self.provider.get_logs(&filter)).await?;
            out.extend(decode_logs(self.contract, &logs));
            start = end + 1;
        }
        Ok(out)
    }

    /// Contract events from block `from` on, in order, as they reach the confirmation depth.
    /// The stream never ends; a request that fails after every retry yields an error and the
    /// stream carries on from the same block.
    pub fn event_stream(&self, from: u64) -> impl Stream<Item = Result<LoggedEvent>> + '_ {
        let state = (from, std::collections::VecDeque::<LoggedEvent>::new());
        futures_util::stream::unfold(state, move |(mut next, mut buffer)| async move {
            loop {
                if let Some(event) = buffer.pop_front() {
                    return Some((Ok(event), (next, buffer)));
                }
                let head = match self.confirmed_head().await {
                    Ok(head) => head,
                    Err(e) => return Some((Err(e), (next, buffer))),
                };
                if head < next {
                    tokio::time::sleep(self.config.poll_interval).await;
                    continue;
                }
                let to = head.min(next.saturating_add(self.config.log_chunk.max(1) - 1));
                match self.events(next, Some(to)).await {
                    Ok(events) => {
                        buffer.extend(events);
                        next = to + 1;
                    }
                    Err(e) => return Some((Err(e), (next, buffer))),
                }
            }
        })
    }

    async fn confirmed_head(&self) -> Result<u64> {
        let head = self.block_number().await?;
        Ok(head.saturating_sub(self.config.confirmations.saturating_sub(1)))
    }

    // --------------------------------------------------------- verification

    /// The receipt of `tx_hash`, `None` while it is not mined.
    pub async fn receipt(&self, tx_hash: B256) -> Result<Option<TransactionReceipt>> {
        self.retry(|| self.provider.get_transaction_receipt(tx_hash))
            .await
    }

    /// Checks that `tx_hash` is `trainer`'s `submitUpdate` of `update_hash` for
    /// `shard` in `round` of `job_id` on this contract: mined, succeeded, emitted the matching
    /// `UpdateSubmitted`, and at the confirmation depth. Only node failures are errors;
    /// every way the transaction can fall short is a [`SubmissionCheck`].
    pub async fn verify_submission(
        &self,
        tx_hash: B256,
        job_id: U256,
        round: u64,
        shard: u32,
        trainer: Address,
        update_hash: B256,
    ) -> Result<SubmissionCheck> {
        let Some(receipt) = self.receipt(tx_hash).await? else {
            return Ok(SubmissionCheck::NotMined);
        };
        if !receipt.status() {
            return Ok(SubmissionCheck::Reverted);
        }
        let emitted = decode_logs(self.contract, receipt.inner.logs())
            .into_iter()
            .any(|l| {
                matches!(&l.event, JobManager::JobManagerEvents::UpdateSubmitted(e)
                    if e.jobId == job_id
                        && e.trainer == trainer
                        && e.index == crate::bindings::update_index(round, shard, trainer)
                        && e.updateHash == update_hash)
            });
        if !emitted {
            return Ok(SubmissionCheck::NoEvent);
        }
        let block_number = receipt.block_number.unwrap_or_default();
        if !self.is_confirmed(block_number).await? {
            return Ok(SubmissionCheck::Unconfirmed { block_number });
        }
        Ok(SubmissionCheck::Confirmed {
            block_number,
            block_hash: receipt.block_hash.unwrap_or_default(),
        })
    }

    /// Checks that the chain holds `validator`'s vote `valid` on update `index` of
    /// `job_id`: the transaction `tx_hash`, once mined, succeeded and at the
    /// confirmation depth, emitted `VoteCast(job, index, validator, valid)` or
    /// `UpdateDecided(job, index, decidedBy = validator, accepted = valid)`; or else the
    /// update's stored votes (`getVotes`) contain it. `decided` carries the verdict when
    /// that transaction decided the update.
    pub async fn verify_vote(
        &self,
        tx_hash: B256,
        job_id: U256,
        index: U256,
        validator: Address,
        valid: bool,
    ) -> Result<VoteCheck> {
        let mut check = VoteCheck::default();
        if let Some(receipt) = self.receipt(tx_hash).await?
            && receipt.status()
            && self
                .is_confirmed(receipt.block_number.unwrap_or_default())
                .await?
        {
            for l in decode_logs(self.contract, receipt.inner.logs()) {
                match &l.event {
                    JobManager::JobManagerEvents::VoteCast(e)
                        if e.jobId == job_id
                            && e.index == index
                            && e.validator == validator
                            && e.valid == valid =>
                    {
                        check.found = true
                    }
                    JobManager::JobManagerEvents::UpdateDecided(e)
                        if e.jobId == job_id && e.index == index =>
                    {
                        check.decided = Some(e.accepted);
                        if e.decidedBy == validator && e.accepted == valid {
                            check.found = true;
                        }
                    }
                    _ => {}
                }
            }
        }
        if !check.found {
            check.found = self
                .votes(job_id, index)
                .await?
                .contains(&(validator, valid));
        }
        Ok(check)
    }

    /// Whether block `block_number` is `confirmations` deep.
    async fn is_confirmed(&self, block_number: u64) -> Result<bool> {
        let head = self.block_number().await?;
        Ok(block_number + self.config.confirmations.max(1) - 1 <= head)
    }

    // --------------------------------------------------------------- machinery

    /// Runs a view call and decodes its return.
    pub async fn view<C: SolCall>(&self, call: C) -> Result<C::Return> {
        let request = TransactionRequest::default()
            .to(self.contract)
            .input(Bytes::from(call.abi_encode()).into());
        let output = self.retry(|| self.provider.call(request.clone())).await?;
        C::abi_decode_returns(&output)
            .map_err(|e| ChainError::Unexpected(format!("cannot decode the return: {e}")))
    }

    /// Retries `f` with exponential backoff while it fails with transport errors.
    async fn retry<T, F, Fut>(&self, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: IntoFuture<Output = Result<T, TransportError>>,
    {
        let mut delay = self.config.retry_delay;
        let attempts = self.config.max_attempts.max(1);
        for attempt in 1..=attempts {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) && attempt < attempts => {
                    tracing::debug!(attempt, error = %e, "node request failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                Err(e) if is_transient(&e) => {
                    return Err(ChainError::Transport {
                        attempts,
                        message: e.to_string(),
                    });
                }
                Err(e) => return Err(node_error(e)),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    async fn send(&self, data: Vec<u8>, value: U256) -> Result<TxOutcome> {
        Ok(self
            .send_raw(TxKind::Call(self.contract), data.into(), value)
            .await?
            .0)
    }

    /// Estimates, signs with the next local nonce, broadcasts, waits for the receipt at the
    /// confirmation depth.
    async fn send_raw(
        &self,
        to: TxKind,
        data: Bytes,
        value: U256,
    ) -> Result<(TxOutcome, TransactionReceipt)> {
        let from = self.address();
        let (raw, hash, request) = {
            let mut next_nonce = self.next_nonce.lock().await;
            let nonce = match *next_nonce {
                Some(n) => n,
                None => {
                    self.retry(|| self.provider.get_transaction_count(from).pending())
                        .await?
                }
            };
            let mut request = TransactionRequest::default()
                .from(from)
                .input(data.clone().into())
                .value(value)
                .nonce(nonce);
            request.to = Some(to);
            let estimate = self
                .retry(|| self.provider.estimate_gas(request.clone()))
                .await?;
            let gas_limit =
                estimate.saturating_add(estimate * self.config.gas_margin_percent / 100);
            let tip = self
                .retry(|| self.provider.get_max_priority_fee_per_gas())
                .await?;
            let base = match self
                .retry(|| self.provider.get_block_by_number(Default::default()))
                .await?
            {
                Some(block) => u128::from(block.header.base_fee_per_gas.unwrap_or(1_000_000_000)),
                None => 1_000_000_000,
            };
            let mut tx = TxEip1559 {
                chain_id: self.chain_id,
                nonce,
                gas_limit,
                max_fee_per_gas: base.saturating_mul(2).saturating_add(tip),
                max_priority_fee_per_gas: tip,
                to,
                value,
                input: data,
                access_list: Default::default(),
            };
            let signature = self
                .signer
                .sign_transaction_sync(&mut tx)
                .map_err(|e| ChainError::InvalidKey(e.to_string()))?;
            let envelope: TxEnvelope = tx.into_signed(signature).into();
            let hash = *envelope.tx_hash();
            let raw = envelope.encoded_2718();
            match self.broadcast(&raw, hash).await {
                Ok(()) => *next_nonce = Some(nonce + 1),
                Err(e) => {
                    // The nonce was not consumed (or we cannot tell): ask the node next time.
                    *next_nonce = None;
                    return Err(e);
                }
            }
            (raw, hash, request)
        };
        let _ = raw;
        let receipt = self.wait_receipt(hash).await?;
        if !receipt.status() {
            // Replay the call to learn why (the state may have moved on since).
            let error = match self.provider.call(request).await {
                Err(e) => node_error(e).contract_error().cloned(),
                Ok(_) => None,
            };
            return Err(ChainError::TxFailed {
                tx_hash: hash,
                error,
            });
        }
        let outcome = TxOutcome {
            tx_hash: hash,
            block_number: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
            effective_gas_price: receipt.effective_gas_price,
            events: decode_logs(self.contract, receipt.inner.logs()),
        };
        Ok((outcome, receipt))
    }

    /// Sends signed bytes. A transport failure is followed by a lookup of `hash` before the
    /// same bytes are sent again; a refusal is checked the same way (an earlier attempt may
    /// have landed and made the node answer "nonce too low" or "already known").
    async fn broadcast(&self, raw: &[u8], hash: B256) -> Result<()> {
        let mut delay = self.config.retry_delay;
        let attempts = self.config.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.provider.send_raw_transaction(raw).await {
                Ok(_) => return Ok(()),
                Err(RpcError::ErrorResp(payload))
                    if !is_transient(&RpcError::ErrorResp(payload.clone())) =>
                {
                    if attempt > 1 && self.tx_known(hash).await {
                        return Ok(());
                    }
                    return Err(node_error(RpcError::ErrorResp(payload)));
                }
                Err(e) => {
                    last = e.to_string();
                    tracing::debug!(attempt, error = %e, %hash, "broadcast failed; checking before resending");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    if self.tx_known(hash).await {
                        return Ok(());
                    }
                }
            }
        }
        Err(ChainError::Transport {
            attempts,
            message: last,
        })
    }

    async fn tx_known(&self, hash: B256) -> bool {
        matches!(
            self.provider.get_transaction_by_hash(hash).await,
            Ok(Some(_))
        )
    }

    async fn wait_receipt(&self, hash: B256) -> Result<TransactionReceipt> {
        let deadline = tokio::time::Instant::now() + self.config.receipt_timeout;
        let receipt = loop {
            match self.provider.get_transaction_receipt(hash).await {
                Ok(Some(receipt)) => break receipt,
                Ok(None) => {}
                Err(e) if is_transient(&e) => tracing::debug!(error = %e, "receipt poll failed"),
                Err(e) => return Err(node_error(e)),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ChainError::ReceiptTimeout(hash));
            }
            tokio::time::sleep(self.config.poll_interval).await;
        };
        let needed =
            receipt.block_number.unwrap_or_default() + self.config.confirmations.saturating_sub(1);
        while self.block_number().await? < needed {
            if tokio::time::Instant::now() >= deadline {
                return Err(ChainError::ReceiptTimeout(hash));
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
        Ok(receipt)
    }
}
