//! Outages of the orchestrator's dependencies: while the chain is down a
//! request that needs it is answered 503 `chain_unavailable` (not 500
//! `internal`), `/healthz` answers 503 and says which dependency is down and
//! since when, and both recover when the chain comes back on its data
//! directory. A closed database pool reads as `database_unavailable`.

use std::time::Duration;

use funetun_chain::ledger::http_provider;
use funetun_chain::{ContractParams, DevChain, DevChainConfig, Ledger};
use funetun_client::{Client, ClientError};
use funetun_core::api::Health;
use funetun_orchestrator::Config;

use crate::common::{lease_request, ledger_config};

/// Longest any wait here may take.
const GUARD: Duration = Duration::from_secs(60);

/// `GET /healthz`: the status and the report.
async fn health(url: &str) -> (u16, Health) {
    let r = reqwest::get(format!("{url}/healthz")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Polls `/healthz` until it answers `status`; returns that report.
async fn health_until(url: &str, status: u16) -> Health {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let (s, h) = health(url).await;
        if s == status {
            return h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "healthz never answered {status}: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_are_503s_with_a_reason_and_health_names_the_dependency() {
    let dir = tempfile::tempdir().unwrap();
    let chain_config = DevChainConfig {
        data_dir: Some(dir.path().join("chain")),
        ..DevChainConfig::default()
    };
    let chain = DevChain::start(chain_config.clone()).await.unwrap();
    let chain_config = DevChainConfig {
        port: chain.local_addr().port(),
        ..chain_config
    };
    let keys: Vec<_> = chain.accounts().iter().map(|a| a.signer()).collect();
    let (owner, _) = Ledger::deploy(
        http_provider(&chain.rpc_url()).unwrap(),
        keys[0].clone(),
        &ContractParams::default(),
        ledger_config(),
    )
    .await
    .unwrap();
    let mut config = Config::new(chain.rpc_url(), owner.contract(), keys[1].clone());
    config.db_url = crate::common::db_url(dir.path()).await;
    config.blobs = funetun_orchestrator::blobs::BlobLocation::Dir(dir.path().join("blobs"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.poll_interval = Duration::from_millis(50);
    config.offline = true;
    let orchestrator = funetun_orchestrator::start(config).await.unwrap();
    let url = orchestrator.url();

    let (status, h) = health(&url).await;
    assert_eq!(status, 200, "{h:?}");
    assert!(h.ok && h.chain.ok && h.database.ok, "{h:?}");
    assert!(h.chain.head.is_some() && h.chain.seen_secs_ago.is_some());
    assert_eq!(h.contract, owner.contract());

    chain.stop().await.unwrap();

    // A signed request from an address the orchestrator has not seen needs
    // the chain (its role): 503 with a reason, not 500.
    let stranger = Client::new(&url, Some(keys[5].clone()));
    let err = stranger.lease_task(&lease_request(1)).await.unwrap_err();
    match &err {
        ClientError::Api { status, code, .. } => {
            assert_eq!(
                (*status, code.as_str()),
                (503, "chain_unavailable"),
                "{err}"
            );
        }
        other => panic!("expected a 503, got {other}"),
    }
    assert!(err.is_transient());

    let h = health_until(&url, 503).await;
    assert!(!h.ok && !h.chain.ok, "{h:?}");
    assert!(h.chain.error.is_some(), "{h:?}");
    assert!(
        h.chain.seen_secs_ago.is_some(),
        "the last good read is kept: {h:?}"
    );
    assert!(h.database.ok, "{h:?}");

    // The chain comes back on its data directory and port: so does health.
    let chain = DevChain::start(chain_config).await.unwrap();
    let h = health_until(&url, 200).await;
    assert!(h.ok && h.chain.ok && h.chain.error.is_none(), "{h:?}");

    // The database goes away: reads are 503 `database_unavailable`.
    orchestrator.state().store.close().await;
    let r = reqwest::get(format!("{url}/v1/jobs")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "database_unavailable", "{body}");
    let (status, h) = health(&url).await;
    assert_eq!(status, 503);
    assert!(
        h.chain.ok && !h.database.ok && h.database.error.is_some(),
        "{h:?}"
    );
    drop(orchestrator);
    chain.stop().await.unwrap();
}
