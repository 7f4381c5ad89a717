//! End-to-end tests of the `funetun` binary, in one test binary.

mod account;
mod adversarial;
mod browser_e2e;
mod crash;
mod demo;
mod fairness;
mod hf;
mod ml;
mod outage;
mod owner_data;
mod postgres;
mod readme;
mod stale;
mod tasks;
mod text;
mod trainer_restart;
mod verify;

use std::process::{Command, Output};
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::ledger::{NewJob, http_provider};
use funetun_chain::{ContractParams, DevChain, DevChainConfig, Ledger, LedgerConfig};
use funetun_core::JobSpec;

/// The binary under test.
pub fn funetun() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_funetun"));
    cmd.env("FUNETUN_LOG", "warn");
    cmd
}

/// The data set tests train on: MNIST when `FUNETUN_DATA_DIR` is set, else synthetic.
pub fn dataset() -> &'static str {
    if std::env::var_os("FUNETUN_DATA_DIR").is_some() {
        "mnist"
    } else {
        "synthetic"
    }
}

/// A key as `FUNETUN_KEY` takes it: 0x-hex.
pub fn key_hex(key: &alloy_signer_local::PrivateKeySigner) -> String {
    format!("0x{}", alloy_primitives::hex::encode(key.to_bytes()))
}

/// A process's log file so far (empty while it does not exist).
pub fn log_of(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A job small enough to run in seconds: an MLP on [`dataset`], one shard,
/// 20 SGD steps of 32 samples a task, every update accepted when its 1 s
/// window closes (no replay). Tests change what they need.
pub fn tiny_mlp_spec(name: &str) -> funetun_core::JobSpec {
    let mut spec = funetun_core::JobSpec {
        name: name.into(),
        model: funetun_core::ModelKind::Mlp,
        dataset: dataset().parse().unwrap(),
        rounds: 1,
        shards: 1,
        steps: 20,
        batch: 32,
        lr: 0.05,
        optimizer: "sgd".into(),
        aggregation: "mean".into(),
        outer_optimizer: "sgd".into(),
        min_updates: 1,
        round_timeout_secs: 3_600,
        lease_secs: 600,
        eval_samples: 200,
        ..funetun_core::JobSpec::default()
    };
    spec.validation.replay_prob = 0.0;
    spec.validation.replay_floor = 0.0;
    spec.validation.challenge_window_secs = 1;
    spec
}

/// Runs a command, requiring success, and parses its last stdout line as JSON.
pub fn json_of(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("the funetun binary runs");
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    last_json(&out)
}

/// The last stdout line of `out`, parsed as JSON.
pub fn last_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("last stdout line `{line}` is not JSON: {e}"))
}

/// A fresh embedded chain with the contract deployed by dev account 0 (its
/// ledger polling every 5 ms): the chain, the funded dev keys and the
/// owner's ledger.
pub async fn chain_with_contract() -> (DevChain, Vec<PrivateKeySigner>, Ledger) {
    let chain = DevChain::start(DevChainConfig::default()).await.unwrap();
    let keys: Vec<PrivateKeySigner> = chain.accounts().iter().map(|a| a.signer()).collect();
    let (owner, _) = Ledger::deploy(
        http_provider(&chain.rpc_url()).unwrap(),
        keys[0].clone(),
        &ContractParams::default(),
        LedgerConfig {
            poll_interval: Duration::from_millis(5),
            ..LedgerConfig::default()
        },
    )
    .await
    .unwrap();
    (chain, keys, owner)
}

/// `createJob` for `spec` (stored under `spec_hash`), led by `leader`, with
/// 1 ETH deposited and `validation_reward` per deciding validator; the id.
pub async fn create_job(
    owner: &Ledger,
    spec: &JobSpec,
    spec_hash: B256,
    leader: Address,
    validation_reward: U256,
) -> U256 {
    let (id, _) = owner
        .create_job(&NewJob {
            spec_hash,
            leader,
            base_reward: spec.base_reward_wei().unwrap(),
            bonus_reward: U256::ZERO,
            validation_reward,
            rounds: spec.rounds,
            quorum: spec.validation.quorum,
            challenge_window: spec.validation.challenge_window_secs,
            deposit: U256::from(10u64).pow(U256::from(18)),
        })
        .await
        .unwrap();
    id
}
