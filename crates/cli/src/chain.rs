//! `funetun chain` (the embedded dev chain) and `funetun deploy`.

use std::path::PathBuf;

use funetun_chain::devchain::{self, DevChainConfig};
use funetun_chain::{ContractParams, Ledger, LedgerConfig, dev_accounts};

use crate::output::print_json;

/// Arguments of `funetun chain`.
#[derive(Debug, clap::Args)]
pub struct ChainArgs {
    /// Port of the JSON-RPC server (0 picks a free one).
    #[arg(long, env = "FUNETUN_CHAIN_PORT", default_value_t = 8545)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, env = "FUNETUN_CHAIN_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Directory that keeps the chain across restarts.
    #[arg(long, env = "FUNETUN_CHAIN_DATA_DIR", default_value = "funetun-chain")]
    pub data_dir: PathBuf,
    /// Chain id.
    #[arg(long, env = "FUNETUN_CHAIN_ID", default_value_t = 31337)]
    pub chain_id: u64,
    /// Print one JSON line `{rpc_url, chain_id, accounts}` once ready.
    #[arg(long, env = "FUNETUN_JSON")]
    pub json: bool,
}

/// Arguments of `funetun deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, env = "FUNETUN_RPC")]
    pub rpc: String,
    /// The deployer's key (default: the first dev account).
    #[command(flatten)]
    pub key: crate::keys::KeyArgs,
    /// Minimum stake, in wei.
    #[arg(long, env = "FUNETUN_MIN_STAKE")]
    pub min_stake: Option<alloy_primitives::U256>,
    /// Seconds between leaving and the stake unlocking.
    #[arg(long, env = "FUNETUN_LEAVE_COOLDOWN")]
    pub leave_cooldown: Option<u64>,
    /// Challenge bond, in wei.
    #[arg(long, env = "FUNETUN_CHALLENGE_BOND")]
    pub challenge_bond: Option<alloy_primitives::U256>,
    /// Seconds after an update's challenge window during which only the
    /// job's leader may finalize it; a challenged update still without a
    /// quorum after them is void (default 3600).
    #[arg(long, env = "FUNETUN_DECISION_TIMEOUT")]
    pub decision_timeout: Option<u64>,
}

/// A multi-threaded tokio runtime for one subcommand.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Runs `funetun chain` until Ctrl-C or SIGTERM.
pub fn run_chain(args: ChainArgs) -> anyhow::Result<()> {
    let config = DevChainConfig {
        host: args.host,
        port: args.port,
        data_dir: Some(args.data_dir.clone()),
        chain_id: args.chain_id,
        ..DevChainConfig::default()
    };
    let json = args.json;
    runtime()?.block_on(devchain::run(
        config,
        |chain| {
            let info = chain.ready_info();
            if json {
                let _ = print_json(&info);
            } else {
                println!(
                    "Funetun dev chain (chain id {}) at {}",
                    info.chain_id, info.rpc_url
                );
                println!("data dir: {}", args.data_dir.display());
                println!("mnemonic: {}", funetun_chain::DEV_MNEMONIC);
                println!("prefunded accounts (test keys, never use them for real funds):");
                for (i, a) in info.accounts.iter().enumerate() {
                    println!("  ({i}) {} key {}", a.address, a.private_key);
                }
            }
        },
        shutdown_signal(),
    ))?;
    Ok(())
}

/// Runs `funetun deploy`: prints `{"address","tx_hash","gas_used"}`.
pub fn run_deploy(args: DeployArgs) -> anyhow::Result<()> {
    let signer = if args.key.is_given() {
        args.key.signer()?
    } else {
        dev_accounts(1)[0].signer()
    };
    let defaults = ContractParams::default();
    let params = ContractParams {
        min_stake: args.min_stake.unwrap_or(defaults.min_stake),
        leave_cooldown: args.leave_cooldown.unwrap_or(defaults.leave_cooldown),
        challenge_bond: args.challenge_bond.unwrap_or(defaults.challenge_bond),
        decision_timeout: args.decision_timeout.unwrap_or(defaults.decision_timeout),
        ..defaults
    };
    let deployment = runtime()?.block_on(async {
        let provider = funetun_chain::ledger::http_provider(&args.rpc)?;
        let (_, deployment) =
            Ledger::deploy(provider, signer, &params, LedgerConfig::default()).await?;
        Ok::<_, anyhow::Error>(deployment)
    })?;
    print_json(&serde_json::json!({
        "address": deployment.address,
        "tx_hash": deployment.tx_hash,
        "gas_used": deployment.gas_used,
    }))
}
