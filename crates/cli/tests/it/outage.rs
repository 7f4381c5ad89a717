//! A participant started while its chain is down waits for it, says so,
//! and stakes once the chain is back (the embedded chain, stopped and
//! restarted from its data directory on the same port).

use std::process::Stdio;
use std::time::{Duration, Instant};

use funetun_chain::ledger::http_provider;
use funetun_chain::{ContractParams, DevChain, DevChainConfig, Ledger, LedgerConfig, dev_accounts};

/// A guard against a wedged process, not a performance assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_trainer_started_before_its_chain_waits_and_then_stakes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = DevChainConfig {
        port: free_port(),
        data_dir: Some(dir.path().join("chain")),
        ..DevChainConfig::default()
    };
    // The contract, deployed and kept in the chain's data directory; then
    // the chain goes down.
    let (rpc, contract) = rt.block_on(async {
        let chain = DevChain::start(config.clone()).await.unwrap();
        let (ledger, _) = Ledger::deploy(
            http_provider(&chain.rpc_url()).unwrap(),
            dev_accounts(1)[0].signer(),
            &ContractParams::default(),
            LedgerConfig::default(),
        )
        .await
        .unwrap();
        (chain.rpc_url(), ledger.contract())
    });
    let trainer = dev_accounts(3)[2].clone();
    let log = dir.path().join("trainer.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_funetun"))
        .args([
            "trainer",
            "--rpc",
            &rpc,
            "--contract",
            &contract.to_string(),
        ])
        .args(["--orchestrator", "http://127.0.0.1:1", "--poll-secs", "0.1"])
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env(
            "FUNETUN_KEY",
            format!(
                "0x{}",
                alloy_primitives::hex::encode(trainer.signer().to_bytes())
            ),
        )
        // The default output (no FUNETUN_LOG): the wait and the ready line.
        .env_remove("FUNETUN_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(&mut child, &log, "cannot reach the chain yet");
    // Still waiting a while later (the ledger's own retries are long over).
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the trainer gave up:\n{}",
        read()
    );

    // The chain comes back with the contract: the trainer stakes.
    let chain = rt.block_on(DevChain::start(config)).unwrap();
    wait_for(&mut child, &log, " ready: stake 0.01 ETH");
    let view = rt.block_on(async {
        Ledger::connect(
            &chain.rpc_url(),
            contract,
            trainer.signer(),
            LedgerConfig::default(),
        )
        .await
        .unwrap()
        .account(trainer.address)
        .await
        .unwrap()
    });
    assert!(view.stake > alloy_primitives::U256::ZERO, "{view:?}");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}:\n{}", read());
}

/// Waits until the log at `log` holds `what`; fails if the process exits.
fn wait_for(child: &mut std::process::Child, log: &std::path::Path, what: &str) {
    let read = || std::fs::read_to_string(log).unwrap_or_default();
    let started = Instant::now();
    while !read().contains(what) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the trainer exited ({status}) waiting for `{what}`:\n{}",
                read()
            );
        }
        assert!(
            started.elapsed() < HANG_GUARD,
            "no `{what}` in:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
