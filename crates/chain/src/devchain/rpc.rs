//! Ethereum JSON-RPC over HTTP for the dev chain: request parsing (single and batch),
//! method dispatch, and the JSON shapes of blocks, transactions, receipts and logs (built
//! from alloy's RPC types, so standard clients parse them unchanged).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use alloy::consensus::Transaction as _;
use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, Bytes, U64, U256};
use alloy::rpc::types::{
    Block, BlockTransactions, FeeHistory, Filter, FilterBlockOption, Header as RpcHeader,
    Log as RpcLog, Transaction as RpcTransaction, TransactionReceipt, TransactionRequest,
};
use axum::Router;
use axum::body::Bytes as Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::engine::{BlockEntry, Engine, RpcFailure, decode_raw, receipt_envelope};
use crate::keys::DevAccount;

/// Most blocks one `eth_getLogs` may scan.
const MAX_LOG_RANGE: u64 = 100_000;
/// Most entries of one batch request.
const MAX_BATCH: usize = 1_000;

enum FilterKind {
    Logs(Box<Filter>),
    Blocks,
}

struct InstalledFilter {
    kind: FilterKind,
    next_block: u64,
}

/// Shared state of the RPC server.
pub(crate) struct Node {
    pub engine: Mutex<Engine>,
    pub accounts: Vec<DevAccount>,
    filters: Mutex<(u64, HashMap<u64, InstalledFilter>)>,
}

type RpcResult = Result<Value, RpcFailure>;

impl Node {
    pub(crate) fn new(engine: Engine, accounts: Vec<DevAccount>) -> Self {
        Node {
            engine: Mutex::new(engine),
            accounts,
            filters: Mutex::new((1, HashMap::new())),
        }
    }

    /// The engine, even if a panicking request poisoned the lock (state changes are applied
    /// whole by revm's commit, so the state is still consistent).
    pub(crate) fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn filters(&self) -> MutexGuard<'_, (u64, HashMap<u64, InstalledFilter>)> {
        self.filters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one JSON-RPC request object.
    pub(crate) fn handle_value(&self, request: &Value) -> Value {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let Some(object) = request.as_object() else {
            return error_response(id, &RpcFailure::new(-32600, "Invalid Request"));
        };
        let Some(method) = object.get("method").and_then(Value::as_str) else {
            return error_response(
                id,
                &RpcFailure::new(-32600, "Invalid Request: missing method"),
            );
        };
        let params = match object.get("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => {
                return error_response(id, &RpcFailure::new(-32602, "params must be an array"));
            }
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.dispatch(method, &params)
        }))
        .unwrap_or_else(|_| Err(RpcFailure::new(-32603, "internal error")));
        match result {
            Ok(value) => json!({ "jsonrpc": "2.0", "id": id, "result": value }),
            Err(e) => error_response(id, &e),
        }
    }

    fn dispatch(&self, method: &str, params: &[Value]) -> RpcResult {
        match method {
            "eth_chainId" => Ok(json!(U64::from(self.engine().chain_id()))),
            "net_version" => Ok(json!(self.engine().chain_id().to_string())),
            "net_listening" => Ok(json!(true)),
            "web3_clientVersion" => Ok(json!(concat!(
                "funetun-devchain/",
                env!("CARGO_PKG_VERSION")
            ))),
            "eth_syncing" => Ok(json!(false)),
            "eth_mining" => Ok(json!(true)),
            "eth_blockNumber" => Ok(json!(U64::from(self.engine().latest().header.number))),
            "eth_accounts" => Ok(json!(
                self.accounts.iter().map(|a| a.address).collect::<Vec<_>>()
            )),
            "eth_gasPrice" => {
                let engine = self.engine();
                Ok(json!(
                    U256::from(engine.base_fee()) + U256::from(suggested_tip(&engine))
                ))
            }
            "eth_maxPriorityFeePerGas" => Ok(json!(U256::from(suggested_tip(&self.engine())))),
            "eth_feeHistory" => self.fee_history(params),
            "eth_getBalance" => {
                let address: Address = param(params, 0)?;
                self.check_latest(params.get(1))?;
                Ok(json!(self.engine().account(address).balance))
            }
            "eth_getTransactionCount" => {
                let address: Address = param(params, 0)?;
                let engine = self.engine();
                let pending = matches!(params.get(1).and_then(Value::as_str), Some("pending"));
                drop(engine);
                self.check_latest(params.get(1))?;
                let engine = self.engine();
                let nonce = if pending {
                    engine.pending_nonce(address)
                } else {
                    engine.account(address).nonce
                };
                Ok(json!(U64::from(nonce)))
            }
            "eth_getCode" => {
                let address: Address = param(params, 0)?;
                self.check_latest(params.get(1))?;
                Ok(json!(self.engine().code(address)))
            }
            "eth_getStorageAt" => {
                let address: Address = param(params, 0)?;
                let slot: U256 = param(params, 1)?;
                self.check_latest(params.get(2))?;
                Ok(json!(B256::from(self.engine().storage(address, slot))))
            }
            "eth_call" => {
                let request: TransactionRequest = param(params, 0)?;
                self.check_latest(params.get(1))?;
                Ok(json!(self.engine().eth_call(&request)?))
            }
            "eth_estimateGas" => {
                let request: TransactionRequest = param(params, 0)?;
                self.check_latest(params.get(1))?;
                Ok(json!(U64::from(self.engine().estimate_gas(&request)?)))
            }
            "eth_sendRawTransaction" => {
                let raw: Bytes = param(params, 0)?;
                // Signature recovery runs outside the lock.
                let tx = decode_raw(&raw)?;
                let hash = self.engine().submit(tx, raw)?;
                Ok(json!(hash))
            }
            "eth_sendTransaction" => Err(RpcFailure::new(
                -32601,
                "eth_sendTransaction is not supported: sign locally and use eth_sendRawTransaction",
            )),
            "eth_getTransactionByHash" => {
                let hash: B256 = param(params, 0)?;
                let engine = self.engine();
                Ok(engine
                    .tx_block(&hash)
                    .map(rpc_transaction)
                    .map(|t| json!(t))
                    .unwrap_or(Value::Null))
            }
            "eth_getTransactionReceipt" => {
                let hash: B256 = param(params, 0)?;
                let engine = self.engine();
                Ok(engine
                    .tx_block(&hash)
                    .map(rpc_receipt)
                    .map(|r| json!(r))
                    .unwrap_or(Value::Null))
            }
            "eth_getBlockByNumber" => {
                let tag: BlockNumberOrTag = param(params, 0)?;
                let full: bool = optional_param(params, 1)?.unwrap_or(false);
                let engine = self.engine();
                let number = resolve(&engine, tag);
                Ok(engine
                    .block(number)
                    .map(|b| json!(rpc_block(b, full)))
                    .unwrap_or(Value::Null))
            }
            "eth_getBlockByHash" => {
                let hash: B256 = param(params, 0)?;
                let full: bool = optional_param(params, 1)?.unwrap_or(false);
                let engine = self.engine();
                Ok(engine
                    .block_by_hash(&hash)
                    .map(|b| json!(rpc_block(b, full)))
                    .unwrap_or(Value::Null))
            }
            "eth_getBlockReceipts" => {
                let tag: BlockNumberOrTag = param(params, 0)?;
                let engine = self.engine();
                let number = resolve(&engine, tag);
                Ok(match engine.block(number) {
                    Some(block) => json!(
                        block
                            .tx
                            .iter()
                            .map(|_| rpc_receipt(block))
                            .collect::<Vec<_>>()
                    ),
                    None => Value::Null,
                })
            }
            "eth_getBlockTransactionCountByNumber" => {
                let tag: BlockNumberOrTag = param(params, 0)?;
                let engine = self.engine();
                let number = resolve(&engine, tag);
                Ok(engine
                    .block(number)
                    .map(|b| json!(U64::from(b.tx.is_some() as u64)))
                    .unwrap_or(Value::Null))
            }
            "eth_getLogs" => {
                let filter: Filter = param(params, 0)?;
                Ok(json!(self.logs(&filter)?))
            }
            "eth_newFilter" => {
                let filter: Filter = param(params, 0)?;
                let next = match filter.block_option.get_from_block() {
                    Some(tag) => resolve(&self.engine(), *tag),
                    None => self.engine().latest().header.number + 1,
                };
                Ok(self.install(FilterKind::Logs(Box::new(filter)), next))
            }
            "eth_newBlockFilter" => {
                let next = self.engine().latest().header.number + 1;
                Ok(self.install(FilterKind::Blocks, next))
            }
            "eth_getFilterChanges" => self.filter_changes(param::<U256>(params, 0)?),
            "eth_getFilterLogs" => {
                let id = filter_id(param::<U256>(params, 0)?)?;
                let filter = match self.filters().1.get(&id).map(|f| &f.kind) {
                    Some(FilterKind::Logs(filter)) => filter.clone(),
                    Some(FilterKind::Blocks) => {
                        return Err(RpcFailure::invalid_params("not a log filter"));
                    }
                    None => return Err(RpcFailure::server("filter not found")),
                };
                Ok(json!(self.logs(&filter)?))
            }
            "eth_uninstallFilter" => {
                let id = filter_id(param::<U256>(params, 0)?)?;
                Ok(json!(self.filters().1.remove(&id).is_some()))
            }
            "evm_increaseTime" => {
                let seconds: U256 = param(params, 0)?;
                let seconds = u64::try_from(seconds)
                    .map_err(|_| RpcFailure::invalid_params("seconds too large"))?;
                Ok(json!(self.engine().increase_time(seconds)))
            }
            "evm_setNextBlockTimestamp" => {
                let ts: U256 = param(params, 0)?;
                let ts = u64::try_from(ts)
                    .map_err(|_| RpcFailure::invalid_params("timestamp too large"))?;
                self.engine().set_next_timestamp(ts)?;
                Ok(Value::Null)
            }
            "evm_mine" => {
                self.engine()
                    .mine_empty()
                    .map_err(|e| RpcFailure::server(e.to_string()))?;
                Ok(json!("0x0"))
            }
            _ => Err(RpcFailure::new(
                -32601,
                format!("the method {method} does not exist/is not available"),
            )),
        }
    }

    /// Accepts only "latest"-like block tags or the latest number: the dev chain keeps no
    /// historical state.
    fn check_latest(&self, tag: Option<&Value>) -> Result<(), RpcFailure> {
        let Some(value) = tag else { return Ok(()) };
        if value.is_object() {
            // EIP-1898 block hash / number object: only the latest block is served.
            let latest = self.engine().latest().hash;
            if let Some(hash) = value.get("blockHash") {
                let hash: B256 = serde_json::from_value(hash.clone())
                    .map_err(|e| RpcFailure::invalid_params(format!("invalid block hash: {e}")))?;
                return if hash == latest {
                    Ok(())
                } else {
                    Err(RpcFailure::server("historical state is not available"))
                };
            }
        }
        let tag: BlockNumberOrTag = serde_json::from_value(value.clone())
            .map_err(|e| RpcFailure::invalid_params(format!("invalid block tag: {e}")))?;
        match tag {
            BlockNumberOrTag::Number(n) if n < self.engine().latest().header.number => {
                Err(RpcFailure::server("historical state is not available"))
            }
            BlockNumberOrTag::Earliest if self.engine().latest().header.number > 0 => {
                Err(RpcFailure::server("historical state is not available"))
            }
            _ => Ok(()),
        }
    }

    fn fee_history(&self, params: &[Value]) -> RpcResult {
        let count: U64 = param(params, 0)?;
        let newest: BlockNumberOrTag = param(params, 1)?;
        let percentiles: Option<Vec<f64>> = optional_param(params, 2)?;
        let engine = self.engine();
        let newest = resolve(&engine, newest).min(engine.latest().header.number);
        let count = count.to::<u64>().clamp(1, 1024).min(newest + 1);
        let oldest = newest + 1 - count;
        let base = u128::from(engine.base_fee());
        let mut history = FeeHistory {
            oldest_block: oldest,
            base_fee_per_gas: vec![base; count as usize + 1],
            gas_used_ratio: Vec::new(),
            base_fee_per_blob_gas: vec![1; count as usize + 1],
            blob_gas_used_ratio: vec![0.0; count as usize],
            reward: None,
        };
        let mut rewards = Vec::new();
        for number in oldest..=newest {
            let Some(block) = engine.block(number) else {
                continue;
            };
            history
                .gas_used_ratio
                .push(block.header.gas_used as f64 / block.header.gas_limit as f64);
            let tip = block
                .tx
                .as_ref()
                .map(|t| t.effective_gas_price.saturating_sub(base))
                .unwrap_or(0);
            if let Some(p) = &percentiles {
                rewards.push(vec![tip; p.len()]);
            }
        }
        if percentiles.is_some() {
            history.reward = Some(rewards);
        }
        Ok(json!(history))
    }

    fn logs(&self, filter: &Filter) -> Result<Vec<RpcLog>, RpcFailure> {
        let engine = self.engine();
        let (from, to) = match filter.block_option {
            FilterBlockOption::AtBlockHash(hash) => match engine.block_by_hash(&hash) {
                Some(block) => (block.header.number, block.header.number),
                None => return Err(RpcFailure::server("unknown block hash")),
            },
            FilterBlockOption::Range {
                from_block,
                to_block,
            } => {
                let latest = engine.latest().header.number;
                let from = from_block.map(|t| resolve(&engine, t)).unwrap_or(latest);
                let to = to_block
                    .map(|t| resolve(&engine, t))
                    .unwrap_or(latest)
                    .min(latest);
                (from, to)
            }
        };
        if to >= from && to - from > MAX_LOG_RANGE {
            return Err(RpcFailure::new(
                -32005,
                format!("block range too large: at most {MAX_LOG_RANGE}"),
            ));
        }
        Ok(collect_logs(engine.blocks(), from, to, filter))
    }

    fn install(&self, kind: FilterKind, next_block: u64) -> Value {
        let mut filters = self.filters();
        let id = filters.0;
        filters.0 += 1;
        filters.1.insert(id, InstalledFilter { kind, next_block });
        json!(U256::from(id))
    }

    fn filter_changes(&self, id: U256) -> RpcResult {
        let id = filter_id(id)?;
        let engine = self.engine();
        let latest = engine.latest().header.number;
        let mut filters = self.filters();
        let Some(installed) = filters.1.get_mut(&id) else {
            return Err(RpcFailure::server("filter not found"));
        };
        let from = installed.next_block;
        installed.next_block = latest + 1;
        if from > latest {
            return Ok(json!([]));
        }
        Ok(match &installed.kind {
            FilterKind::Blocks => {
                json!(
                    (from..=latest)
                        .filter_map(|n| engine.block(n).map(|b| b.hash))
                        .collect::<Vec<_>>()
                )
            }
            FilterKind::Logs(filter) => {
                let to = filter
                    .block_option
                    .get_to_block()
                    .map(|t| resolve(&engine, *t))
                    .unwrap_or(latest);
                json!(collect_logs(engine.blocks(), from, to.min(latest), filter))
            }
        })
    }
}

/// The priority fee suggested to clients (1 gwei, like anvil).
fn suggested_tip(_engine: &Engine) -> u128 {
    1_000_000_000
}

fn filter_id(id: U256) -> Result<u64, RpcFailure> {
    u64::try_from(id).map_err(|_| RpcFailure::server("filter not found"))
}

fn resolve(engine: &Engine, tag: BlockNumberOrTag) -> u64 {
    match tag {
        BlockNumberOrTag::Number(n) => n,
        BlockNumberOrTag::Earliest => 0,
        _ => engine.latest().header.number,
    }
}

fn param<T: serde::de::DeserializeOwned>(params: &[Value], index: usize) -> Result<T, RpcFailure> {
    let value = params
        .get(index)
        .ok_or_else(|| RpcFailure::invalid_params(format!("missing parameter {index}")))?;
    serde_json::from_value(value.clone())
        .map_err(|e| RpcFailure::invalid_params(format!("invalid parameter {index}: {e}")))
}

fn optional_param<T: serde::de::DeserializeOwned>(
    params: &[Value],
    index: usize,
) -> Result<Option<T>, RpcFailure> {
    match params.get(index) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => param(params, index).map(Some),
    }
}

fn collect_logs(blocks: &[BlockEntry], from: u64, to: u64, filter: &Filter) -> Vec<RpcLog> {
    let mut out = Vec::new();
    if from > to {
        return out;
    }
    let end = (to as usize).min(blocks.len().saturating_sub(1));
    for block in blocks.get(from as usize..=end).unwrap_or(&[]) {
        let Some(tx) = &block.tx else { continue };
        if !filter.matches_bloom(block.header.logs_bloom) {
            continue;
        }
        for (i, log) in tx.logs.iter().enumerate() {
            if filter.matches(log) {
                out.push(rpc_log(block, i));
            }
        }
    }
    out
}

fn rpc_log(block: &BlockEntry, index: usize) -> RpcLog {
    let tx = block.tx.as_ref();
    RpcLog {
        inner: tx.map(|t| t.logs[index].clone()).unwrap_or_default(),
        block_hash: Some(block.hash),
        block_number: Some(block.header.number),
        block_timestamp: Some(block.header.timestamp),
        transaction_hash: tx.map(|t| t.hash),
        transaction_index: Some(0),
        log_index: Some(index as u64),
        removed: false,
    }
}

fn rpc_transaction(block: &BlockEntry) -> RpcTransaction {
    // Only called for blocks found through a transaction hash.
    let tx = block.tx.as_ref().expect("block holds a transaction");
    RpcTransaction {
        inner: tx.tx.clone(),
        block_hash: Some(block.hash),
        block_number: Some(block.header.number),
        transaction_index: Some(0),
        effective_gas_price: Some(tx.effective_gas_price),
        block_timestamp: Some(block.header.timestamp),
    }
}

fn rpc_receipt(block: &BlockEntry) -> TransactionReceipt {
    let tx = block.tx.as_ref().expect("block holds a transaction");
    let envelope = receipt_envelope(tx).map_logs(|_| ());
    let logs: Vec<RpcLog> = (0..tx.logs.len()).map(|i| rpc_log(block, i)).collect();
    let mut logs = logs.into_iter();
    let inner = envelope.map_logs(|_| logs.next().unwrap_or_default());
    TransactionReceipt {
        inner,
        transaction_hash: tx.hash,
        transaction_index: Some(0),
        block_hash: Some(block.hash),
        block_number: Some(block.header.number),
        gas_used: tx.gas_used,
        effective_gas_price: tx.effective_gas_price,
        blob_gas_used: None,
        blob_gas_price: None,
        from: tx.tx.signer(),
        to: tx.tx.to(),
        contract_address: tx.contract_address,
    }
}

fn rpc_block(block: &BlockEntry, full: bool) -> Block {
    let transactions = match (&block.tx, full) {
        (None, _) => BlockTransactions::Hashes(Vec::new()),
        (Some(tx), false) => BlockTransactions::Hashes(vec![tx.hash]),
        (Some(_), true) => BlockTransactions::Full(vec![rpc_transaction(block)]),
    };
    Block {
        header: RpcHeader {
            hash: block.hash,
            inner: block.header.clone(),
            total_difficulty: Some(U256::ZERO),
            size: Some(U256::from(block.header.size())),
        },
        uncles: Vec::new(),
        transactions,
        withdrawals: Some(Default::default()),
    }
}

fn error_response(id: Value, error: &RpcFailure) -> Value {
    let mut body = json!({ "code": error.code, "message": error.message });
    if let Some(data) = &error.data {
        body["data"] = json!(data);
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": body })
}

/// The JSON-RPC router: `POST /` with a request object or a batch array.
pub(crate) fn app(node: Arc<Node>) -> Router {
    Router::new().route("/", post(handle)).with_state(node)
}

async fn handle(State(node): State<Arc<Node>>, body: Body) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return json_response(error_response(
                Value::Null,
                &RpcFailure::new(-32700, "Parse error"),
            ));
        }
    };
    let reply = match value {
        Value::Array(items) if items.is_empty() => error_response(
            Value::Null,
            &RpcFailure::new(-32600, "Invalid Request: empty batch"),
        ),
        Value::Array(items) if items.len() > MAX_BATCH => error_response(
            Value::Null,
            &RpcFailure::new(-32600, "Invalid Request: batch too large"),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|r| node.handle_value(r)).collect()),
        other => node.handle_value(&other),
    };
    json_response(reply)
}

fn json_response(value: Value) -> Response {
    let body = serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
