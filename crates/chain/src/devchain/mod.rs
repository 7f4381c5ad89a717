//! The embedded dev chain: the real `JobManager` bytecode executed by revm (Prague rules),
//! served as Ethereum JSON-RPC over HTTP on loopback.
//!
//! One block per transaction (automine); the accounts of [`crate::keys::DEV_MNEMONIC`] are
//! prefunded; transactions must be signed by the client (`eth_sendRawTransaction`, EIP-1559,
//! EIP-2930 or legacy), and are checked for signature, chain id, nonce, fee and balance.
//! With a data directory, every block is journaled and replayed on the next start, so state,
//! blocks, receipts and logs survive a restart. See `docs/devchain.md`.
//!
//! ```no_run
//! # async fn demo() -> funetun_chain::Result<()> {
//! use funetun_chain::{DevChain, DevChainConfig};
//! let chain = DevChain::start(DevChainConfig::default()).await?;
//! println!("JSON-RPC at {}", chain.rpc_url());
//! chain.stop().await?;
//! # Ok(()) }
//! ```

mod engine;
mod rpc;
mod store;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use alloy::primitives::U256;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{ChainError, Result};
use crate::keys::{DevAccount, dev_accounts};
use engine::Engine;
use rpc::Node;
use store::{Genesis, Store};

/// How to start a dev chain.
#[derive(Debug, Clone)]
pub struct DevChainConfig {
    /// Address to listen on (loopback by default).
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Where state is kept across restarts; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Chain id (31337, like anvil, by default).
    pub chain_id: u64,
    /// How many accounts of the test mnemonic to prefund.
    pub accounts: usize,
    /// Balance of each prefunded account, in wei.
    pub balance: U256,
    /// Constant base fee per gas, in wei.
    pub base_fee: u64,
    /// Block gas limit.
    pub gas_limit: u64,
    /// Timeouts and the connection cap of the JSON-RPC server.
    pub http: funetun_serve::Limits,
}

impl Default for DevChainConfig {
    fn default() -> Self {
        DevChainConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            data_dir: None,
            chain_id: 31337,
            accounts: 10,
            balance: U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64)),
            base_fee: 1_000_000_000,
            gas_limit: 30_000_000,
            http: funetun_serve::Limits::default(),
        }
    }
}

/// What `funetun chain --json` prints once the chain is ready.
#[derive(Debug, Clone, Serialize)]
pub struct ReadyInfo {
    /// The JSON-RPC endpoint.
    pub rpc_url: String,
    /// The chain id.
    pub chain_id: u64,
    /// The prefunded accounts with their keys.
    pub accounts: Vec<DevAccount>,
}

/// A running dev chain. Dropping it stops the server; [`DevChain::stop`] also flushes the
/// journal to disk and waits for the server to end.
pub struct DevChain {
    addr: SocketAddr,
    chain_id: u64,
    accounts: Vec<DevAccount>,
    node: Arc<Node>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl DevChain {
    /// Opens (or creates) the chain and serves JSON-RPC on the current tokio runtime.
    pub async fn start(config: DevChainConfig) -> Result<DevChain> {
        let accounts = dev_accounts(config.accounts);
        let fresh = Genesis {
            chain_id: config.chain_id,
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            gas_limit: config.gas_limit,
            base_fee: config.base_fee,
            alloc: accounts
                .iter()
                .map(|a| (a.address, config.balance))
                .collect(),
        };
        let engine = match &config.data_dir {
            Some(dir) => {
                let dir = dir.clone();
                // Replaying a long journal is CPU work: keep it off the async workers.
                tokio::task::spawn_blocking(move || {
                    let (store, genesis) = Store::open(&dir, fresh)?;
                    Engine::open(genesis, Some(store))
                })
                .await
                .map_err(|e| ChainError::Replay(e.to_string()))??
            }
            None => Engine::open(fresh, None)?,
        };
        let chain_id = engine.chain_id();
        let blocks = engine.latest().header.number;
        let node = Arc::new(Node::new(engine, accounts.clone()));
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::new(config.host, config.port)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = rpc::app(node.clone());
        let limits = config.http.clone();
        let task = tokio::spawn(async move {
            let server = funetun_serve::serve(listener, app, limits, async move {
                let _ = rx.await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "dev chain server failed");
            }
        });
        tracing::info!(%addr, chain_id, blocks, "dev chain ready");
        Ok(DevChain {
            addr,
            chain_id,
            accounts,
            node,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The JSON-RPC endpoint, e.g. `http://127.0.0.1:8545`.
    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The prefunded accounts with their keys.
    pub fn accounts(&self) -> &[DevAccount] {
        &self.accounts
    }

    /// The number of the latest block.
    pub fn block_number(&self) -> u64 {
        self.node.engine().latest().header.number
    }

    /// What `funetun chain --json` prints.
    pub fn ready_info(&self) -> ReadyInfo {
        ReadyInfo {
            rpc_url: self.rpc_url(),
            chain_id: self.chain_id,
            accounts: self.accounts.clone(),
        }
    }

    /// Stops serving, waits for open requests to end and forces the journal to disk.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.node.engine().sync()
    }
}

impl Drop for DevChain {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Err(e) = self.node.engine().sync() {
            tracing::warn!(error = %e, "dev chain journal sync failed");
        }
    }
}

/// Runs a dev chain until `shutdown` resolves; `on_ready` sees it once it serves.
pub async fn run(
    config: DevChainConfig,
    on_ready: impl FnOnce(&DevChain),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let chain = DevChain::start(config).await?;
    on_ready(&chain);
    shutdown.await;
    chain.stop().await
}
