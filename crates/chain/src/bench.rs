//! Measurements behind `funetun bench gas` and `funetun bench chain`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{B256, Bytes, TxKind, U256, keccak256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use serde::Serialize;

use crate::bindings::JobManager;
use crate::deploy::ContractParams;
use crate::devchain::{DevChain, DevChainConfig};
use crate::error::{ChainError, Result};
use crate::keys::dev_accounts;
use crate::ledger::{Ledger, LedgerConfig, NewJob, http_provider};

fn milli(n: u64) -> U256 {
    U256::from(n) * U256::from(1_000_000_000_000_000u64)
}

async fn warp(rpc_url: &str, seconds: u64) -> Result<()> {
    let p = http_provider(rpc_url)?;
    let map = |e: alloy::transports::TransportError| ChainError::Rpc {
        code: 0,
        message: e.to_string(),
    };
    let _: serde_json::Value = p
        .raw_request("evm_increaseTime".into(), (seconds,))
        .await
        .map_err(map)?;
    let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.map_err(map)?;
    Ok(())
}

/// Deploys the contract on a fresh in-memory dev chain, runs every call once and returns
/// the gas each used (receipt `gasUsed`, including the 21,000 base), plus
/// `accepted_update_total` = submitUpdate + deciding validateUpdate with one validator
/// (paid the default validation reward); `accepted_update_total_unpaid_validator` is the same
/// on a job without a validation reward; `accepted_result_total` is half of a compute task's
/// settlement with two agreeing results (`settleComputeTask`).
pub async fn gas_report() -> Result<BTreeMap<String, u64>> {
    let chain = DevChain::start(DevChainConfig::default()).await?;
    let url = chain.rpc_url();
    let keys = dev_accounts(10);
    let config = LedgerConfig {
        poll_interval: Duration::from_millis(2),
        ..LedgerConfig::default()
    };
    let params = ContractParams::default();
    let (owner, deployment) =
        Ledger::deploy(http_provider(&url)?, keys[0].signer(), &params, config).await?;
    let l = |i: usize| owner.with_signer(keys[i].signer());
    let (leader, t1, t2, t3, v1, v2, v3, challenger) =
        (l(1), l(2), l(3), l(4), l(5), l(6), l(7), l(8));
    let mut gas = BTreeMap::new();
    gas.insert("deploy".to_string(), deployment.gas_used);
    gas.insert(
        "registerTrainer".into(),
        t1.register_trainer(milli(100)).await?.gas_used,
    );
    t2.register_trainer(milli(100)).await?;
    t3.register_trainer(milli(100)).await?;
    gas.insert(
        "registerValidator".into(),
        v1.register_validator(milli(100)).await?.gas_used,
    );
    v2.register_validator(milli(100)).await?;
    v3.register_validator(milli(100)).await?;
    let job = NewJob {
        spec_hash: keccak256(b"spec"),
        leader: leader.address(),
        base_reward: milli(1),
        bonus_reward: milli(1),
        // `DEFAULT_VALIDATION_REWARD`, 0.0005 ETH.
        validation_reward: milli(1) / U256::from(2),
        rounds: 10,
        quorum: 1,
        challenge_window: 600,
        deposit: milli(100),
    };
    let (id, out) = owner.create_job(&job).await?;
    gas.insert("createJob".into(), out.gas_used);
    gas.insert(
        "commitCheckpoint".into(),
        leader
            .commit_checkpoint(id, 0, keccak256(b"c0"), B256::ZERO)
            .await?
            .gas_used,
    );

    let (i1, submit) = t1.submit_update(id, 0, 0, keccak256(b"d1")).await?;
    let accept = v1.validate_update(id, i1, true).await?;
    gas.insert("submitUpdate".into(), submit.gas_used);
    gas.insert("validateUpdate_accept".into(), accept.gas_used);
    gas.insert(
        "accepted_update_total".into(),
        submit.gas_used + accept.gas_used,
    );
    gas.insert(
        "awardBonus".into(),
        leader.award_bonus(id, i1).await?.gas_used,
    );

    let (i2, _) = t2.submit_update(id, 0, 0, keccak256(b"d2")).await?;
    gas.insert(
        "validateUpdate_reject".into(),
        v1.validate_update(id, i2, false).await?.gas_used,
    );

    let (i3, _) = t3.submit_update(id, 0, 0, keccak256(b"d3")).await?;
    gas.insert(
        "challenge".into(),
        challenger
            .challenge(id, i3, params.challenge_bond)
            .await?
            .gas_used,
    );
    gas.insert(
        "validateUpdate_reject_challenged".into(),
        v2.validate_update(id, i3, false).await?.gas_used,
    );

    leader
        .commit_checkpoint(id, 1, keccak256(b"c1"), keccak256(b"manifest"))
        .await?;
    let (i4, _) = t1.submit_update(id, 1, 0, keccak256(b"d4")).await?;
    warp(&url, 601).await?;
    gas.insert(
        "finalizeUpdate".into(),
        leader.finalize_update(id, i4).await?.gas_used,
    );
    // A challenge nobody votes on is void at its decision timeout.
    let (i7, _) = t2.submit_update(id, 1, 0, keccak256(b"d7")).await?;
    challenger.challenge(id, i7, params.challenge_bond).await?;
    warp(&url, 601 + params.decision_timeout).await?;
    gas.insert(
        "finalizeUpdate_void".into(),
        challenger.finalize_update(id, i7).await?.gas_used,
    );

    // A quorum-2 job: a stored vote, then the deciding one against it.
    let (id2, _) = owner
        .create_job(&NewJob {
            quorum: 2,
            ..job.clone()
        })
        .await?;
    leader
        .commit_checkpoint(id2, 0, keccak256(b"c0"), B256::ZERO)
        .await?;
    let (i5, _) = t1.submit_update(id2, 0, 0, keccak256(b"d5")).await?;
    gas.insert(
        "validateUpdate_stored_vote".into(),
        v1.validate_update(id2, i5, false).await?.gas_used,
    );
    v2.validate_update(id2, i5, true).await?;
    gas.insert(
        "validateUpdate_quorum2_with_dissent".into(),
        v3.validate_update(id2, i5, true).await?.gas_used,
    );

    // The same accepted update on a job that pays its validators nothing.
    let (id3, _) = owner
        .create_job(&NewJob {
            validation_reward: U256::ZERO,
            ..job.clone()
        })
        .await?;
    leader
        .commit_checkpoint(id3, 0, keccak256(b"c0"), B256::ZERO)
        .await?;
    let (i6, submit) = t2.submit_update(id3, 0, 0, keccak256(b"d6")).await?;
    let accept = v1.validate_update(id3, i6, true).await?;
    gas.insert(
        "accepted_update_total_unpaid_validator".into(),
        submit.gas_used + accept.gas_used,
    );

    // A task batch: a task with two agreeing results settled, then one with
    // a third, outvoted result slashed (the workers' credit words are warm
    // from the training payouts above, as a settled market's are).
    let (batch, out) = owner
        .create_task_batch(
            keccak256(b"batch"),
            leader.address(),
            milli(1),
            3_600,
            milli(20),
        )
        .await?;
    gas.insert("createTaskBatch".into(), out.gas_used);
    let settled = leader
        .settle_compute_task(
            batch,
            keccak256(b"task 1"),
            keccak256(b"result"),
            vec![t1.address(), t2.address()],
            vec![],
        )
        .await?;
    gas.insert("settleComputeTask_quorum2".into(), settled.gas_used);
    gas.insert("accepted_result_total".into(), settled.gas_used / 2);
    gas.insert(
        "settleComputeTask_quorum2_one_slashed".into(),
        leader
            .settle_compute_task(
                batch,
                keccak256(b"task 2"),
                keccak256(b"result"),
                vec![t1.address(), t2.address()],
                vec![t3.address()],
            )
            .await?
            .gas_used,
    );

    gas.insert("withdraw".into(), t1.withdraw().await?.gas_used);
    gas.insert(
        "withdrawUnusedFunds".into(),
        owner.withdraw_unused_funds(id2).await?.gas_used,
    );
    gas.insert("requestLeave".into(), t3.request_leave().await?.gas_used);
    warp(&url, params.leave_cooldown + 1).await?;
    gas.insert("withdrawStake".into(), t3.withdraw_stake().await?.gas_used);
    chain.stop().await?;
    Ok(gas)
}

/// Result of [`chain_throughput`].
#[derive(Debug, Clone, Serialize)]
pub struct ChainBench {
    /// `submitUpdate` transactions sent and confirmed successful.
    pub transactions: usize,
    /// Concurrent senders (one key each).
    pub senders: usize,
    /// Wall time of signing, sending and fetching every receipt.
    pub seconds: f64,
    /// `transactions / seconds`.
    pub tx_per_sec: f64,
    /// Same measure for plain Ether transfers (the chain's own baseline).
    pub transfer_tx_per_sec: f64,
}

/// Sends `count` `submitUpdate` transactions (signed locally, `eth_sendRawTransaction`)
/// from `senders` keys to a dev chain with a data directory, over loopback JSON-RPC, and
/// fetches every receipt; the same for plain transfers as the baseline.
pub async fn chain_throughput(count: usize, senders: usize) -> Result<ChainBench> {
    let senders = senders.clamp(1, 8);
    let dir = std::env::temp_dir().join(format!("funetun-bench-chain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let chain = DevChain::start(DevChainConfig {
        data_dir: Some(dir.clone()),
        ..DevChainConfig::default()
    })
    .await?;
    let url = chain.rpc_url();
    let keys = dev_accounts(senders + 2);
    let config = LedgerConfig {
        poll_interval: Duration::from_millis(1),
        ..LedgerConfig::default()
    };
    let (owner, _) = Ledger::deploy(
        http_provider(&url)?,
        keys[0].signer(),
        &ContractParams::default(),
        config,
    )
    .await?;
    let leader = owner.with_signer(keys[1].signer());
    // One update per (job, round, trainer): spread the updates over enough jobs.
    let per_sender = count.div_ceil(senders);
    let mut jobs = Vec::with_capacity(per_sender);
    for _ in 0..per_sender {
        let job = NewJob {
            spec_hash: keccak256(b"bench"),
            leader: leader.address(),
            base_reward: U256::from(1_000u64),
            bonus_reward: U256::ZERO,
            validation_reward: U256::ZERO,
            rounds: 1,
            quorum: 1,
            challenge_window: 600,
            deposit: U256::from(1_000_000u64),
        };
        let (id, _) = owner.create_job(&job).await?;
        leader
            .commit_checkpoint(id, 0, keccak256(b"c0"), B256::ZERO)
            .await?;
        jobs.push(id);
    }
    for key in &keys[2..] {
        owner
            .with_signer(key.signer())
            .register_trainer(milli(100))
            .await?;
    }
    let contract = owner.contract();
    let chain_id = owner.chain_id();
    let provider = http_provider(&url)?;

    let run = |transfers: bool| {
        let keys = keys.clone();
        let jobs = jobs.clone();
        let provider = provider.clone();
        async move {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for key in &keys[2..] {
                let key = key.clone();
                let provider = provider.clone();
                let jobs = jobs.clone();
                tasks.push(tokio::spawn(async move {
                    let signer = key.signer();
                    let mut nonce = provider
                        .get_transaction_count(signer.address())
                        .pending()
                        .await
                        .map_err(rpc)?;
                    let mut hashes = Vec::with_capacity(jobs.len());
                    for (i, job) in jobs.iter().enumerate() {
                        let (to, input) = if transfers {
                            (
                                TxKind::Call(alloy::primitives::Address::repeat_byte(0x42)),
                                Bytes::new(),
                            )
                        } else {
                            let call = JobManager::submitUpdateCall {
                                jobId: *job,
                                round: U256::ZERO,
                                shard: 0,
                                updateHash: keccak256(format!("{}/{i}", signer.address())),
                            };
                            (TxKind::Call(contract), Bytes::from(call.abi_encode()))
                        };
                        let mut tx = TxEip1559 {
                            chain_id,
                            nonce,
                            gas_limit: 120_000,
                            max_fee_per_gas: 3_000_000_000,
                            max_priority_fee_per_gas: 1_000_000_000,
                            to,
                            value: if transfers { U256::from(1) } else { U256::ZERO },
                            input,
                            access_list: Default::default(),
                        };
                        let sig = signer
                            .sign_transaction_sync(&mut tx)
                            .map_err(|e| ChainError::InvalidKey(e.to_string()))?;
                        let envelope: TxEnvelope = tx.into_signed(sig).into();
                        let raw = envelope.encoded_2718();
                        let _pending = provider.send_raw_transaction(&raw).await.map_err(rpc)?;
                        hashes.push(*envelope.tx_hash());
                        nonce += 1;
                    }
                    let mut ok = 0usize;
                    for hash in hashes {
                        let receipt: Option<_> =
                            provider.get_transaction_receipt(hash).await.map_err(rpc)?;
                        if receipt.map(|r| r.status()).unwrap_or(false) {
                            ok += 1;
                        }
                    }
                    Ok::<usize, ChainError>(ok)
                }));
            }
            let mut ok = 0;
            for task in tasks {
                ok += task
                    .await
                    .map_err(|e| ChainError::Unexpected(e.to_string()))??;
            }
            Ok::<(usize, f64), ChainError>((ok, start.elapsed().as_secs_f64()))
        }
    };
    let (ok, seconds) = run(false).await?;
    if ok != per_sender * senders {
        return Err(ChainError::Unexpected(format!(
            "{ok} of {} submissions succeeded",
            per_sender * senders
        )));
    }
    let (transfers, transfer_seconds) = run(true).await?;
    chain.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ChainBench {
        transactions: ok,
        senders,
        seconds,
        tx_per_sec: ok as f64 / seconds,
        transfer_tx_per_sec: transfers as f64 / transfer_seconds,
    })
}

fn rpc(e: alloy::transports::TransportError) -> ChainError {
    ChainError::Rpc {
        code: 0,
        message: e.to_string(),
    }
}
