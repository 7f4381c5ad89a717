//! Test environments: a fresh chain (embedded dev chain or a real anvil) with a deployed
//! `JobManager`, funded keys per role, and helpers to move time and read balances.

use std::path::PathBuf;
use std::sync::Arc;

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{DynProvider, Provider};
use funetun_chain::JobManager::JobManagerErrors;
use funetun_chain::ledger::{NewJob, http_provider};
use funetun_chain::{
    ChainError, ContractParams, DevChain, DevChainConfig, Ledger, LedgerConfig, dev_accounts,
};

pub const ETH: u128 = 1_000_000_000_000_000_000;

pub fn eth(milli: u64) -> U256 {
    U256::from(milli) * U256::from(ETH / 1000)
}

/// Which chain a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dev,
    Anvil,
}

/// The anvil binary installed by `scripts/setup.sh`, or `FUNETUN_ANVIL`.
pub fn anvil_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("FUNETUN_ANVIL") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../../contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    p.exists().then_some(p)
}

/// A chain with a deployed contract and one ledger per dev account.
pub struct Env {
    pub kind: Kind,
    pub rpc_url: String,
    pub provider: DynProvider,
    pub params: ContractParams,
    /// Ledgers of dev accounts 0..10 (0 deploys and owns jobs).
    pub ledgers: Vec<Arc<Ledger>>,
    pub contract: Address,
    _dev: Option<DevChain>,
    _anvil: Option<AnvilInstance>,
}

impl Env {
    /// A fresh chain; `None` (after a loud message) only when the anvil binary is missing.
    pub async fn new(kind: Kind) -> Option<Env> {
        Self::with_params(kind, ContractParams::default()).await
    }

    pub async fn with_params(kind: Kind, params: ContractParams) -> Option<Env> {
        let (rpc_url, dev, anvil) = match kind {
            Kind::Dev => {
                let chain = DevChain::start(DevChainConfig::default())
                    .await
                    .expect("dev chain starts");
                (chain.rpc_url(), Some(chain), None)
            }
            Kind::Anvil => {
                let Some(path) = anvil_path() else {
                    eprintln!(
                        "\n!!!!! SKIPPING anvil test: the anvil binary is missing; run scripts/setup.sh \
                         (or set FUNETUN_ANVIL) !!!!!\n"
                    );
                    return None;
                };
                let instance = Anvil::at(path).args(["--hardfork", "prague"]).spawn();
                (instance.endpoint(), None, Some(instance))
            }
        };
        let provider = http_provider(&rpc_url).expect("provider");
        let keys = dev_accounts(10);
        let config = LedgerConfig {
            poll_interval: std::time::Duration::from_millis(5),
            ..LedgerConfig::default()
        };
        let (deployer, _) = Ledger::deploy(provider.clone(), keys[0].signer(), &params, config)
            .await
            .expect("deploys");
        let contract = deployer.contract();
        let deployer = Arc::new(deployer);
        let mut ledgers = vec![deployer.clone()];
        for key in &keys[1..] {
            ledgers.push(Arc::new(deployer.with_signer(key.signer())));
        }
        Some(Env {
            kind,
            rpc_url,
            provider,
            params,
            ledgers,
            contract,
            _dev: dev,
            _anvil: anvil,
        })
    }

    pub fn ledger(&self, i: usize) -> &Ledger {
        &self.ledgers[i]
    }

    pub fn addr(&self, i: usize) -> Address {
        self.ledgers[i].address()
    }

    /// Moves the chain's clock forward and mines a block.
    pub async fn warp(&self, seconds: u64) {
        let _: serde_json::Value = self
            .provider
            .raw_request("evm_increaseTime".into(), (seconds,))
            .await
            .expect("evm_increaseTime");
        let _: serde_json::Value = self
            .provider
            .raw_request("evm_mine".into(), ())
            .await
            .expect("evm_mine");
    }

    pub async fn balance(&self, a: Address) -> U256 {
        self.provider.get_balance(a).await.expect("balance")
    }

    /// A standard job: leader = account 1, reward 1 milli-eth, quorum `quorum`.
    pub fn job(&self, quorum: u8, deposit_milli: u64) -> NewJob {
        NewJob {
            spec_hash: keccak256(b"spec"),
            leader: self.addr(1),
            base_reward: eth(1),
            bonus_reward: U256::ZERO,
            validation_reward: U256::ZERO,
            rounds: 3,
            quorum,
            challenge_window: 600,
            deposit: eth(deposit_milli),
        }
    }

    /// Creates a job (owner: account 0), commits checkpoint 0 (leader: account 1).
    pub async fn open_job(&self, job: &NewJob) -> U256 {
        let (id, _) = self.ledger(0).create_job(job).await.expect("createJob");
        self.ledger(1)
            .commit_checkpoint(id, 0, keccak256(b"theta0"), B256::ZERO)
            .await
            .expect("checkpoint 0");
        id
    }
}

/// The contract error of a failed call, or a panic naming what happened instead.
pub fn revert<T: std::fmt::Debug>(result: Result<T, ChainError>) -> JobManagerErrors {
    match result {
        Err(e) => match e.contract_error() {
            Some(err) => err.clone(),
            None => panic!("expected a contract revert, got {e}"),
        },
        Ok(v) => panic!("expected a revert, got success: {v:?}"),
    }
}

pub fn h(text: &str) -> B256 {
    keccak256(text.as_bytes())
}

/// Declares a test that runs a scenario on the dev chain and on anvil.
#[macro_export]
macro_rules! on_both_chains {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn dev() {
                    if let Some(env) = $crate::common::Env::new($crate::common::Kind::Dev).await {
                        super::$name(&env).await;
                    }
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn anvil() {
                    if let Some(env) = $crate::common::Env::new($crate::common::Kind::Anvil).await {
                        super::$name(&env).await;
                    }
                }
            }
        )*
    };
}
