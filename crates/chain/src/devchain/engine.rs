//! The dev chain's state machine: revm state, one block per transaction, receipts, logs,
//! per-sender queues for transactions that arrive ahead of their nonce, and the journal.

use std::collections::{BTreeMap, HashMap};

use alloy::consensus::{
    EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH, Eip658Value, Header, Receipt, ReceiptEnvelope,
    ReceiptWithBloom, Transaction as _, TxEnvelope, TxType, proofs, transaction::Recovered,
};
use alloy::eips::Typed2718;
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{Address, B256, Bloom, Bytes, Log, TxKind, U256, keccak256};
use alloy::rpc::types::TransactionRequest;
use revm::DatabaseRef;
use revm::context::result::{EVMError, ExecutionResult, InvalidTransaction};
use revm::context::{BlockEnv, TxEnv};
use revm::database::{CacheDB, EmptyDB};
use revm::handler::{ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainnetContext, MainnetEvm};
use revm::primitives::hardfork::SpecId;
use revm::state::AccountInfo;

use super::store::{BlockRecord, Genesis, Store};
use crate::error::{ChainError, Result};

type Db = CacheDB<EmptyDB>;
type Evm = MainnetEvm<MainnetContext<Db>>;

/// Most transactions a sender may queue ahead of its nonce.
const MAX_QUEUED_PER_SENDER: usize = 1024;

/// A refusal answered to a JSON-RPC client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RpcFailure {
    pub code: i64,
    pub message: String,
    pub data: Option<Bytes>,
}

impl RpcFailure {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        RpcFailure {
            code,
            message: message.into(),
            data: None,
        }
    }
    pub(crate) fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(-32602, message)
    }
    pub(crate) fn server(message: impl Into<String>) -> Self {
        Self::new(-32000, message)
    }
    fn reverted(data: Bytes) -> Self {
        RpcFailure {
            code: 3,
            message: "execution reverted".into(),
            data: Some(data),
        }
    }
}

/// A mined transaction with its outcome.
#[derive(Debug, Clone)]
pub(crate) struct MinedTx {
    pub tx: Recovered<TxEnvelope>,
    pub hash: B256,
    pub success: bool,
    pub gas_used: u64,
    pub effective_gas_price: u128,
    pub logs: Vec<Log>,
    pub contract_address: Option<Address>,
    pub bloom: Bloom,
}

/// One block: a header and at most one transaction.
#[derive(Debug, Clone)]
pub(crate) struct BlockEntry {
    pub header: Header,
    pub hash: B256,
    pub tx: Option<MinedTx>,
}

/// The chain: state, history and the journal that persists it.
pub(crate) struct Engine {
    db: Db,
    genesis: Genesis,
    blocks: Vec<BlockEntry>,
    by_hash: HashMap<B256, u64>,
    tx_block: HashMap<B256, u64>,
    queued: HashMap<Address, BTreeMap<u64, (Recovered<TxEnvelope>, Bytes)>>,
    time_offset: i64,
    next_timestamp: Option<u64>,
    store: Option<Store>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Engine {
    /// A chain at genesis, or the chain replayed from `store`'s journal.
    pub(crate) fn open(genesis: Genesis, store: Option<Store>) -> Result<Self> {
        let mut db = Db::new(EmptyDB::default());
        for (address, balance) in &genesis.alloc {
            db.insert_account_info(
                *address,
                AccountInfo {
                    balance: *balance,
                    ..Default::default()
                },
            );
        }
        let header = Header {
            number: 0,
            timestamp: genesis.timestamp,
            gas_limit: genesis.gas_limit,
            base_fee_per_gas: Some(genesis.base_fee),
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            transactions_root: EMPTY_ROOT_HASH,
            receipts_root: EMPTY_ROOT_HASH,
            withdrawals_root: Some(EMPTY_ROOT_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            extra_data: Bytes::from_static(b"funetun dev chain"),
            ..Default::default()
        };
        let hash = header.hash_slow();
        let mut engine = Engine {
            db,
            genesis,
            blocks: vec![BlockEntry {
                header,
                hash,
                tx: None,
            }],
            by_hash: HashMap::from([(hash, 0)]),
            tx_block: HashMap::new(),
            queued: HashMap::new(),
            time_offset: 0,
            next_timestamp: None,
            store: None,
        };
        if let Some(mut store) = store {
            for record in store.read_records()? {
                engine.replay(record)?;
            }
            store.open_for_append()?;
            engine.store = Some(store);
        }
        Ok(engine)
    }

    fn replay(&mut self, record: BlockRecord) -> Result<()> {
        let expected = self.blocks.len() as u64;
        if record.number != expected {
            return Err(ChainError::Replay(format!(
                "block {} out of order (expected {expected})",
                record.number
            )));
        }
        match &record.raw {
            None => {
                self.push_empty_block(record.timestamp);
            }
            Some(raw) => {
                let tx = decode_raw(raw).map_err(|e| {
                    ChainError::Replay(format!("block {}: {}", record.number, e.message))
                })?;
                let mined = self.execute(tx, Some(record.timestamp)).map_err(|e| {
                    ChainError::Replay(format!("block {}: {}", record.number, e.message))
                })?;
                if record.gas_used != Some(mined.gas_used) || record.success != Some(mined.success)
                {
                    return Err(ChainError::Replay(format!(
                        "block {} replays to gas {} / success {}, recorded {:?} / {:?}",
                        record.number,
                        mined.gas_used,
                        mined.success,
                        record.gas_used,
                        record.success
                    )));
                }
            }
        }
        if self.latest().hash != record.hash {
            return Err(ChainError::Replay(format!(
                "block {} hash differs from the recorded one",
                record.number
            )));
        }
        Ok(())
    }

    pub(crate) fn chain_id(&self) -> u64 {
        self.genesis.chain_id
    }

    pub(crate) fn base_fee(&self) -> u64 {
        self.genesis.base_fee
    }

    pub(crate) fn latest(&self) -> &BlockEntry {
        // There is always a genesis block.
        &self.blocks[self.blocks.len() - 1]
    }

    pub(crate) fn block(&self, number: u64) -> Option<&BlockEntry> {
        self.blocks.get(usize::try_from(number).ok()?)
    }

    pub(crate) fn block_by_hash(&self, hash: &B256) -> Option<&BlockEntry> {
        self.by_hash.get(hash).and_then(|n| self.block(*n))
    }

    pub(crate) fn tx_block(&self, hash: &B256) -> Option<&BlockEntry> {
        self.tx_block.get(hash).and_then(|n| self.block(*n))
    }

    pub(crate) fn blocks(&self) -> &[BlockEntry] {
        &self.blocks
    }

    pub(crate) fn account(&self, address: Address) -> AccountInfo {
        self.db()
            .basic_ref(address)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub(crate) fn code(&self, address: Address) -> Bytes {
        let info = self.account(address);
        match info.code {
            Some(code) => code.original_bytes(),
            None => self
                .db()
                .code_by_hash_ref(info.code_hash)
                .map(|c| c.original_bytes())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn storage(&self, address: Address, slot: U256) -> U256 {
        self.db().storage_ref(address, slot).unwrap_or_default()
    }

    /// The nonce a new transaction from `address` needs, counting queued ones.
    pub(crate) fn pending_nonce(&self, address: Address) -> u64 {
        let mut nonce = self.account(address).nonce;
        if let Some(queue) = self.queued.get(&address) {
            while queue.contains_key(&nonce) {
                nonce += 1;
            }
        }
        nonce
    }

    fn db(&self) -> &Db {
        &self.db
    }

    /// Runs `f` on an EVM over the chain's state (Prague rules) for one block environment.
    /// The EVM is built per use: revm's EVM is not `Send`, the state is.
    fn with_evm<R>(
        &mut self,
        block: BlockEnv,
        call_mode: bool,
        f: impl FnOnce(&mut Evm) -> R,
    ) -> R {
        let db = std::mem::replace(&mut self.db, Db::new(EmptyDB::default()));
        let mut ctx = MainnetContext::<Db>::new(db, SpecId::PRAGUE);
        ctx.cfg.chain_id = self.genesis.chain_id;
        ctx.cfg.disable_nonce_check = call_mode;
        ctx.block = block;
        let mut evm: Evm = ctx.build_mainnet();
        let result = f(&mut evm);
        self.db = evm.ctx.journaled_state.database;
        result
    }

    /// Moves the clock of future blocks forward by `seconds`; returns the total offset.
    pub(crate) fn increase_time(&mut self, seconds: u64) -> i64 {
        self.time_offset = self
            .time_offset
            .saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX));
        self.time_offset
    }

    pub(crate) fn set_next_timestamp(
        &mut self,
        timestamp: u64,
    ) -> std::result::Result<(), RpcFailure> {
        if timestamp < self.latest().header.timestamp {
            return Err(RpcFailure::invalid_params(
                "timestamp is before the latest block",
            ));
        }
        self.next_timestamp = Some(timestamp);
        Ok(())
    }

    fn peek_timestamp(&self) -> u64 {
        let clock = (now_secs() as i64).saturating_add(self.time_offset).max(0) as u64;
        let ts = self.next_timestamp.unwrap_or(clock);
        ts.max(self.latest().header.timestamp)
    }

    fn block_env(&self, timestamp: u64, base_fee: u64) -> BlockEnv {
        let number = self.blocks.len() as u64;
        BlockEnv {
            number: U256::from(number),
            beneficiary: Address::ZERO,
            timestamp: U256::from(timestamp),
            gas_limit: self.genesis.gas_limit,
            basefee: base_fee,
            difficulty: U256::ZERO,
            prevrandao: Some(keccak256(number.to_be_bytes())),
            ..Default::default()
        }
    }

    /// Mines an empty block (`evm_mine`).
    pub(crate) fn mine_empty(&mut self) -> Result<()> {
        let ts = self.peek_timestamp();
        self.next_timestamp = None;
        self.push_empty_block(ts);
        self.persist_latest()
    }

    fn push_empty_block(&mut self, timestamp: u64) {
        let parent = self.latest();
        let header = Header {
            parent_hash: parent.hash,
            number: parent.header.number + 1,
            timestamp,
            gas_limit: self.genesis.gas_limit,
            base_fee_per_gas: Some(self.genesis.base_fee),
            mix_hash: keccak256((parent.header.number + 1).to_be_bytes()),
            ..self.blocks[0].header.clone()
        };
        let hash = header.hash_slow();
        self.by_hash.insert(hash, header.number);
        self.blocks.push(BlockEntry {
            header,
            hash,
            tx: None,
        });
    }

    /// Accepts a signed transaction: executes it now (one block) when its nonce is next, or
    /// queues it until the gap closes. Returns its hash.
    pub(crate) fn submit(
        &mut self,
        tx: Recovered<TxEnvelope>,
        raw: Bytes,
    ) -> std::result::Result<B256, RpcFailure> {
        let hash = *tx.tx_hash();
        if self.tx_block.contains_key(&hash) {
            return Err(RpcFailure::server("transaction already imported"));
        }
        let sender = tx.signer();
        let state_nonce = self.account(sender).nonce;
        let nonce = tx.nonce();
        if nonce < state_nonce {
            return Err(RpcFailure::server(format!(
                "nonce too low: next nonce {state_nonce}, tx nonce {nonce}"
            )));
        }
        if nonce > state_nonce {
            check_static(&tx, self.genesis.chain_id)?;
            let queue = self.queued.entry(sender).or_default();
            if queue.contains_key(&nonce) {
                return Err(RpcFailure::server("transaction already imported"));
            }
            if queue.len() >= MAX_QUEUED_PER_SENDER {
                return Err(RpcFailure::server(
                    "too many queued transactions for this sender",
                ));
            }
            queue.insert(nonce, (tx, raw));
            return Ok(hash);
        }
        self.execute(tx, None)?;
        self.persist_latest()
            .map_err(|e| RpcFailure::server(e.to_string()))?;
        // Run what was waiting for this nonce.
        loop {
            let next = self.account(sender).nonce;
            let Some(queue) = self.queued.get_mut(&sender) else {
                break;
            };
            let Some((tx, _raw)) = queue.remove(&next) else {
                break;
            };
            if queue.is_empty() {
                self.queued.remove(&sender);
            }
            match self.execute(tx, None) {
                Ok(_) => self
                    .persist_latest()
                    .map_err(|e| RpcFailure::server(e.to_string()))?,
                Err(e) => {
                    tracing::warn!(%sender, nonce = next, error = %e.message, "queued transaction dropped");
                    break;
                }
            }
        }
        Ok(hash)
    }

    fn persist_latest(&mut self) -> Result<()> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        let block = &self.blocks[self.blocks.len() - 1];
        let record = BlockRecord {
            number: block.header.number,
            timestamp: block.header.timestamp,
            hash: block.hash,
            raw: block
                .tx
                .as_ref()
                .map(|t| t.tx.inner().encoded_2718().into()),
            gas_used: block.tx.as_ref().map(|t| t.gas_used),
            success: block.tx.as_ref().map(|t| t.success),
        };
        store.append(&record)
    }

    /// Flushes the journal to disk.
    pub(crate) fn sync(&mut self) -> Result<()> {
        match self.store.as_mut() {
            Some(store) => store.sync(),
            None => Ok(()),
        }
    }

    /// Executes `tx` as the next block (at `timestamp`, or now) and appends the block.
    fn execute(
        &mut self,
        tx: Recovered<TxEnvelope>,
        timestamp: Option<u64>,
    ) -> std::result::Result<MinedTx, RpcFailure> {
        check_static(&tx, self.genesis.chain_id)?;
        let ts = timestamp.unwrap_or_else(|| self.peek_timestamp());
        let base_fee = self.genesis.base_fee;
        if u128::from(base_fee) > tx.max_fee_per_gas() {
            return Err(RpcFailure::server(format!(
                "max fee per gas {} below the base fee {base_fee}",
                tx.max_fee_per_gas()
            )));
        }
        let env = tx_env(&tx);
        let block = self.block_env(ts, base_fee);
        let result = self
            .with_evm(block, false, |evm| evm.transact_commit(env))
            .map_err(evm_failure)?;
        if timestamp.is_none() {
            self.next_timestamp = None;
        }
        let hash = *tx.tx_hash();
        let effective_gas_price = tx.effective_gas_price(Some(base_fee));
        let success = result.is_success();
        let contract_address = if success {
            result.created_address()
        } else {
            None
        };
        let gas_used = result.tx_gas_used();
        let logs = result.into_logs();
        let mut bloom = Bloom::default();
        for log in &logs {
            bloom.accrue_log(log);
        }
        let mined = MinedTx {
            tx,
            hash,
            success,
            gas_used,
            effective_gas_price,
            logs,
            contract_address,
            bloom,
        };
        let receipt = receipt_envelope(&mined);
        let parent = self.latest();
        let number = parent.header.number + 1;
        let header = Header {
            parent_hash: parent.hash,
            number,
            timestamp: ts,
            gas_limit: self.genesis.gas_limit,
            gas_used,
            base_fee_per_gas: Some(base_fee),
            beneficiary: Address::ZERO,
            logs_bloom: bloom,
            transactions_root: proofs::calculate_transaction_root(std::slice::from_ref(
                mined.tx.inner(),
            )),
            receipts_root: proofs::calculate_receipt_root(std::slice::from_ref(&receipt)),
            mix_hash: keccak256(number.to_be_bytes()),
            ..self.blocks[0].header.clone()
        };
        let block_hash = header.hash_slow();
        self.by_hash.insert(block_hash, number);
        self.tx_block.insert(hash, number);
        self.blocks.push(BlockEntry {
            header,
            hash: block_hash,
            tx: Some(mined.clone()),
        });
        Ok(mined)
    }

    /// Runs a call against the pending block without changing state (no fees, no nonce or
    /// balance checks). Returns (success, gas used, output).
    pub(crate) fn call(
        &mut self,
        request: &TransactionRequest,
        gas_limit: Option<u64>,
    ) -> std::result::Result<(bool, u64, Bytes), RpcFailure> {
        let caller = request.from.unwrap_or_default();
        let gas = gas_limit
            .or(request.gas)
            .unwrap_or(self.genesis.gas_limit)
            .min(self.genesis.gas_limit);
        let nonce = request.nonce.unwrap_or_else(|| self.account(caller).nonce);
        let data = request.input.input().cloned().unwrap_or_default();
        let env = TxEnv {
            tx_type: 2,
            caller,
            gas_limit: gas,
            gas_price: 0,
            gas_priority_fee: Some(0),
            kind: request.to.unwrap_or(TxKind::Create),
            value: request.value.unwrap_or_default(),
            data,
            nonce,
            chain_id: Some(self.genesis.chain_id),
            ..Default::default()
        };
        let ts = self.peek_timestamp();
        let block = self.block_env(ts, 0);
        let result = self
            .with_evm(block, true, |evm| evm.transact(env))
            .map_err(evm_failure)?
            .result;
        Ok(match result {
            ExecutionResult::Success { gas, output, .. } => {
                (true, gas.tx_gas_used(), output.into_data())
            }
            ExecutionResult::Revert { gas, output, .. } => (false, gas.tx_gas_used(), output),
            ExecutionResult::Halt { gas, reason, .. } => {
                tracing::debug!(?reason, "call halted");
                (false, gas.tx_gas_used(), Bytes::new())
            }
        })
    }

    /// `eth_call`: output or a revert failure.
    pub(crate) fn eth_call(
        &mut self,
        request: &TransactionRequest,
    ) -> std::result::Result<Bytes, RpcFailure> {
        match self.call(request, None)? {
            (true, _, output) => Ok(output),
            (false, _, output) if !output.is_empty() => Err(RpcFailure::reverted(output)),
            (false, _, _) => Err(RpcFailure::reverted(Bytes::new())),
        }
    }

    /// `eth_estimateGas`: the smallest gas limit under which the call succeeds.
    pub(crate) fn estimate_gas(
        &mut self,
        request: &TransactionRequest,
    ) -> std::result::Result<u64, RpcFailure> {
        let cap = request
            .gas
            .unwrap_or(self.genesis.gas_limit)
            .min(self.genesis.gas_limit);
        let (ok, used, output) = self.call(request, Some(cap))?;
        if !ok {
            return Err(if output.is_empty() {
                RpcFailure {
                    code: 3,
                    message: "execution reverted or ran out of gas".into(),
                    data: Some(output),
                }
            } else {
                RpcFailure::reverted(output)
            });
        }
        // Refunds and the 63/64 rule can make the limit a call needs exceed what it uses.
        let mut lo = used.saturating_sub(1);
        let mut hi = cap;
        if self.call(request, Some(used))?.0 {
            return Ok(used);
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.call(request, Some(mid))?.0 {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }
}

/// Decodes a raw EIP-2718 (or legacy RLP) transaction and recovers its signer.
pub(crate) fn decode_raw(raw: &[u8]) -> std::result::Result<Recovered<TxEnvelope>, RpcFailure> {
    use alloy::consensus::transaction::SignerRecoverable;
    use alloy::eips::eip2718::Decodable2718;
    let mut buf = raw;
    let envelope = TxEnvelope::decode_2718(&mut buf)
        .map_err(|e| RpcFailure::invalid_params(format!("invalid transaction encoding: {e}")))?;
    if !buf.is_empty() {
        return Err(RpcFailure::invalid_params(
            "trailing bytes after the transaction",
        ));
    }
    let signer = envelope
        .recover_signer()
        .map_err(|_| RpcFailure::invalid_params("invalid transaction signature"))?;
    Ok(Recovered::new_unchecked(envelope, signer))
}

fn check_static(tx: &Recovered<TxEnvelope>, chain_id: u64) -> std::result::Result<(), RpcFailure> {
    match tx.tx_type() {
        TxType::Legacy | TxType::Eip2930 | TxType::Eip1559 => {}
        other => {
            return Err(RpcFailure::invalid_params(format!(
                "unsupported transaction type {other}"
            )));
        }
    }
    if let Some(id) = tx.chain_id()
        && id != chain_id
    {
        return Err(RpcFailure::invalid_params(format!(
            "invalid chain id {id}, expected {chain_id}"
        )));
    }
    Ok(())
}

fn tx_env(tx: &Recovered<TxEnvelope>) -> TxEnv {
    TxEnv {
        tx_type: tx.ty(),
        caller: tx.signer(),
        gas_limit: tx.gas_limit(),
        gas_price: tx.max_fee_per_gas(),
        gas_priority_fee: tx.max_priority_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: tx.chain_id(),
        access_list: tx.access_list().cloned().unwrap_or_default(),
        ..Default::default()
    }
}

fn evm_failure<E: std::fmt::Display>(error: EVMError<E, InvalidTransaction>) -> RpcFailure {
    match error {
        EVMError::Transaction(InvalidTransaction::LackOfFundForMaxFee { fee, balance }) => {
            RpcFailure::server(format!(
                "insufficient funds for gas * price + value: balance {balance}, cost {fee}"
            ))
        }
        EVMError::Transaction(e) => RpcFailure::server(format!("invalid transaction: {e}")),
        EVMError::Header(e) => RpcFailure::server(format!("invalid block: {e}")),
        EVMError::Database(e) => RpcFailure::new(-32603, format!("state error: {e}")),
        EVMError::Custom(e) => RpcFailure::new(-32603, e),
        EVMError::CustomAny(e) => RpcFailure::new(-32603, e.to_string()),
    }
}

/// The consensus receipt of a mined transaction.
pub(crate) fn receipt_envelope(mined: &MinedTx) -> ReceiptEnvelope {
    let receipt = ReceiptWithBloom {
        receipt: Receipt {
            status: Eip658Value::Eip658(mined.success),
            cumulative_gas_used: mined.gas_used,
            logs: mined.logs.clone(),
        },
        logs_bloom: mined.bloom,
    };
    match mined.tx.tx_type() {
        TxType::Legacy => ReceiptEnvelope::Legacy(receipt),
        TxType::Eip2930 => ReceiptEnvelope::Eip2930(receipt),
        _ => ReceiptEnvelope::Eip1559(receipt),
    }
}
