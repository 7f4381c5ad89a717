//! Typed contract events: decoding from logs, with their position on the chain.

use alloy::primitives::{Address, B256};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEventInterface;

use crate::bindings::JobManager::JobManagerEvents;

/// Every event of `JobManager` (`JobCreated`, `UpdateSubmitted`, `UpdateDecided`, …).
pub type LedgerEvent = JobManagerEvents;

/// A decoded event and where it was emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Block of the emitting transaction.
    pub block_number: u64,
    /// The emitting transaction.
    pub tx_hash: B256,
    /// Index of the log within its block.
    pub log_index: u64,
    /// The event.
    pub event: LedgerEvent,
}

/// Decodes the logs emitted by `contract`, skipping logs of other contracts and logs that
/// are not `JobManager` events.
pub fn decode_logs(contract: Address, logs: &[Log]) -> Vec<LoggedEvent> {
    logs.iter()
        .filter(|log| log.address() == contract)
        .filter_map(|log| {
            let decoded = JobManagerEvents::decode_log(&log.inner).ok()?;
            Some(LoggedEvent {
                block_number: log.block_number.unwrap_or_default(),
                tx_hash: log.transaction_hash.unwrap_or_default(),
                log_index: log.log_index.unwrap_or_default(),
                event: decoded.data,
            })
        })
        .collect()
}
