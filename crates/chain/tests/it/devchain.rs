//! Dev-chain behaviour: restart keeps state, malformed JSON-RPC, refused transactions,
//! and a standard alloy client working unchanged.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, Bytes, Signature, TxKind, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use funetun_chain::JobManager;
use funetun_chain::ledger::http_provider;
use funetun_chain::{ContractParams, DevChain, DevChainConfig, Ledger, LedgerConfig, dev_accounts};
use serde_json::{Value, json};

use crate::common::{eth, h};

async fn post(url: &str, body: &str) -> Value {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn signed_1559(
    key: &PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    value: U256,
    max_fee: u128,
) -> TxEnvelope {
    let mut tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(Address::repeat_byte(7)),
        value,
        input: Bytes::new(),
        access_list: Default::default(),
    };
    let sig = key.sign_transaction_sync(&mut tx).unwrap();
    tx.into_signed(sig).into()
}

async fn send_raw(url: &str, tx: &[u8]) -> Value {
    let body = json!({"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":[format!("0x{}", hex::encode(tx))]});
    post(url, &body.to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_state_blocks_receipts_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let config = DevChainConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..DevChainConfig::default()
    };
    let chain = DevChain::start(config.clone()).await.unwrap();
    let keys = dev_accounts(3);
    let lc = LedgerConfig::default();
    let (ledger, deployment) = Ledger::deploy(
        http_provider(&chain.rpc_url()).unwrap(),
        keys[0].signer(),
        &ContractParams::default(),
        lc.clone(),
    )
    .await
    .unwrap();
    let job = funetun_chain::ledger::NewJob {
        spec_hash: h("spec"),
        leader: keys[1].address,
        base_reward: eth(1),
        bonus_reward: U256::ZERO,
        validation_reward: U256::ZERO,
        rounds: 2,
        quorum: 1,
        challenge_window: 60,
        deposit: eth(10),
    };
    let (id, created) = ledger.create_job(&job).await.unwrap();
    let height = chain.block_number();
    let provider = http_provider(&chain.rpc_url()).unwrap();
    let block = provider
        .get_block_by_number(height.into())
        .await
        .unwrap()
        .unwrap();
    chain.stop().await.unwrap();

    let chain = DevChain::start(config).await.unwrap();
    assert_eq!(chain.block_number(), height);
    let provider = http_provider(&chain.rpc_url()).unwrap();
    let again = provider
        .get_block_by_number(height.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.header.hash, block.header.hash);
    let receipt = provider
        .get_transaction_receipt(created.tx_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.contract_address, None);
    let logs = provider
        .get_logs(
            &Filter::new()
                .address(deployment.address)
                .event_signature(JobManager::JobCreated::SIGNATURE_HASH)
                .from_block(0),
        )
        .await
        .unwrap();
    assert_eq!(logs.len(), 1);
    let ledger = Ledger::new(provider.clone(), deployment.address, keys[0].signer(), lc)
        .await
        .unwrap();
    assert_eq!(ledger.job(id).await.unwrap().deposited, eth(10));
    // New transactions continue from the restored nonce and state.
    let (id2, _) = ledger.create_job(&job).await.unwrap();
    assert_eq!(id2, id + U256::from(1));
    chain.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_line_is_dropped_and_corruption_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = DevChainConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..DevChainConfig::default()
    };
    let chain = DevChain::start(config.clone()).await.unwrap();
    let key = dev_accounts(1)[0].signer();
    let provider = http_provider(&chain.rpc_url()).unwrap();
    let tx = signed_1559(&key, 31337, 0, U256::from(5), 2_000_000_000);
    provider
        .send_raw_transaction(&tx.encoded_2718())
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    chain.stop().await.unwrap();
    let journal = dir.path().join("blocks.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{\"number\":2,\"times");
    std::fs::write(&journal, &text).unwrap();
    let chain = DevChain::start(config.clone()).await.unwrap();
    assert_eq!(chain.block_number(), 1);
    chain.stop().await.unwrap();
    // A changed outcome in the middle of the journal is refused, not silently replayed.
    let text = std::fs::read_to_string(&journal)
        .unwrap()
        .replace("\"gas_used\":21000", "\"gas_used\":21001");
    std::fs::write(&journal, text).unwrap();
    assert!(DevChain::start(config).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_standard_errors() {
    let chain = DevChain::start(DevChainConfig::default()).await.unwrap();
    let url = chain.rpc_url();
    let r = post(&url, "{not json").await;
    assert_eq!(r["error"]["code"], -32700);
    let r = post(
        &url,
        r#"{"jsonrpc":"2.0","id":3,"method":"eth_doesNotExist","params":[]}"#,
    )
    .await;
    assert_eq!(
        (r["error"]["code"].clone(), r["id"].clone()),
        (json!(-32601), json!(3))
    );
    let r = post(&url, r#"{"jsonrpc":"2.0","id":4,"params":[]}"#).await;
    assert_eq!(r["error"]["code"], -32600);
    let r = post(
        &url,
        r#"{"jsonrpc":"2.0","id":5,"method":"eth_getBalance","params":{"a":1}}"#,
    )
    .await;
    assert_eq!(r["error"]["code"], -32602);
    let r = post(
        &url,
        r#"{"jsonrpc":"2.0","id":6,"method":"eth_getBalance","params":["0xzz"]}"#,
    )
    .await;
    assert_eq!(r["error"]["code"], -32602);
    let r = post(
        &url,
        r#"{"jsonrpc":"2.0","id":7,"method":"eth_sendRawTransaction","params":["0x1234"]}"#,
    )
    .await;
    assert_eq!(r["error"]["code"], -32602);
    let r = post(&url, "[]").await;
    assert_eq!(r["error"]["code"], -32600);
    let r = post(&url, "42").await;
    assert_eq!(r["error"]["code"], -32600);
    let r = post(
        &url,
        r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"nope"}]"#,
    )
    .await;
    assert_eq!(r[0]["result"], "0x7a69");
    assert_eq!(r[1]["error"]["code"], -32601);
    // Still serving.
    let r = post(
        &url,
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
    )
    .await;
    assert_eq!(r["result"], "0x0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_stale_nonce_low_balance_and_wrong_chain_are_refused() {
    let chain = DevChain::start(DevChainConfig::default()).await.unwrap();
    let url = chain.rpc_url();
    let key = dev_accounts(1)[0].signer();
    let gwei2 = 2_000_000_000;

    // A signature that does not recover.
    let tx = signed_1559(&key, 31337, 0, U256::from(1), gwei2);
    let TxEnvelope::Eip1559(signed) = tx else {
        unreachable!()
    };
    let bad = signed
        .tx()
        .clone()
        .into_signed(Signature::new(U256::ZERO, U256::from(1), false));
    let r = send_raw(&url, &TxEnvelope::from(bad).encoded_2718()).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // A tampered signature recovers another, unfunded address.
    let sig = *signed.signature();
    let tampered =
        signed
            .tx()
            .clone()
            .into_signed(Signature::new(sig.r() + U256::from(1), sig.s(), sig.v()));
    let r = send_raw(&url, &TxEnvelope::from(tampered).encoded_2718()).await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("insufficient funds")
            || r["error"]["code"] == -32602,
        "{r}"
    );

    // The good one lands; sending it again, or another with the same nonce, is refused.
    let r = send_raw(&url, &TxEnvelope::Eip1559(signed.clone()).encoded_2718()).await;
    assert!(r["result"].is_string(), "{r}");
    let r = send_raw(&url, &TxEnvelope::Eip1559(signed).encoded_2718()).await;
    assert!(r["error"].is_object(), "{r}");
    let again = signed_1559(&key, 31337, 0, U256::from(2), gwei2);
    let r = send_raw(&url, &again.encoded_2718()).await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nonce too low"),
        "{r}"
    );

    // Too little balance.
    let poor = PrivateKeySigner::random();
    let r = send_raw(
        &url,
        &signed_1559(&poor, 31337, 0, U256::from(1), gwei2).encoded_2718(),
    )
    .await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("insufficient funds"),
        "{r}"
    );
    let rich_but_not_enough = signed_1559(&key, 31337, 1, U256::MAX / U256::from(2), gwei2);
    let r = send_raw(&url, &rich_but_not_enough.encoded_2718()).await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("insufficient funds"),
        "{r}"
    );

    // Wrong chain id, fee below the base fee.
    let r = send_raw(
        &url,
        &signed_1559(&key, 1, 1, U256::from(1), gwei2).encoded_2718(),
    )
    .await;
    assert!(
        r["error"]["message"].as_str().unwrap().contains("chain id"),
        "{r}"
    );
    let r = send_raw(
        &url,
        &signed_1559(&key, 31337, 1, U256::from(1), 1).encoded_2718(),
    )
    .await;
    assert!(
        r["error"]["message"].as_str().unwrap().contains("base fee"),
        "{r}"
    );

    // Legacy transactions are accepted.
    let mut legacy = TxLegacy {
        chain_id: Some(31337),
        nonce: 1,
        gas_price: gwei2,
        gas_limit: 21_000,
        to: TxKind::Call(Address::repeat_byte(9)),
        value: U256::from(3),
        input: Bytes::new(),
    };
    let sig = key.sign_transaction_sync(&mut legacy).unwrap();
    let r = send_raw(
        &url,
        &TxEnvelope::from(legacy.into_signed(sig)).encoded_2718(),
    )
    .await;
    assert!(r["result"].is_string(), "{r}");
    assert_eq!(chain.block_number(), 2);
    let provider = http_provider(&url).unwrap();
    assert_eq!(
        provider.get_balance(Address::repeat_byte(9)).await.unwrap(),
        U256::from(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_client_works_unchanged() {
    let chain = DevChain::start(DevChainConfig::default()).await.unwrap();
    let key = dev_accounts(1)[0].signer();
    // alloy's recommended fillers: nonce, gas estimate, EIP-1559 fees, chain id; receipt via polling.
    let provider = ProviderBuilder::new()
        .wallet(key)
        .connect_http(chain.rpc_url().parse().unwrap());
    let contract = JobManager::deploy(
        &provider,
        U256::from(1),
        U256::from(60),
        U256::from(1),
        U256::from(10_000),
        U256::ZERO,
        U256::ZERO,
        U256::from(60),
    )
    .await
    .unwrap();
    let receipt = contract
        .registerTrainer()
        .value(U256::from(5))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.logs().len(), 1);
    let account = contract
        .getAccount(dev_accounts(1)[0].address)
        .call()
        .await
        .unwrap();
    assert_eq!(account.stake, U256::from(5));
    let block = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .full()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.transactions.len(), 1);
    let by_hash = provider
        .get_block_by_hash(block.header.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_hash.header.number, block.header.number);
    assert_eq!(provider.get_chain_id().await.unwrap(), 31337);
    assert_eq!(provider.get_accounts().await.unwrap().len(), 10);
    // A reverting call surfaces the contract's error.
    let err = contract.withdrawStake().call().await.unwrap_err();
    assert!(matches!(
        err.as_decoded_interface_error::<JobManager::JobManagerErrors>(),
        Some(JobManager::JobManagerErrors::NotLeaving(_))
    ));
}

/// Reads until the server closes the connection, bounded so that a server
/// keeping a stalled connection fails instead of hanging.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut out),
    )
    .await
    .expect("the dev chain closes a stalled connection");
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_closed_and_do_not_hold_the_stop() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let chain = DevChain::start(DevChainConfig {
        http: funetun_serve::Limits {
            header_read: Duration::from_millis(500),
            shutdown_grace: Duration::from_millis(300),
            ..funetun_serve::Limits::default()
        },
        ..DevChainConfig::default()
    })
    .await
    .unwrap();
    // A request head that never finishes is closed.
    let mut head = tokio::net::TcpStream::connect(chain.local_addr())
        .await
        .unwrap();
    head.write_all(b"POST / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let said = read_to_close(&mut head).await;
    assert!(!said.contains("200 OK"), "{said}");
    // The chain still answers.
    let r = post(
        &chain.rpc_url(),
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
    )
    .await;
    assert_eq!(r["result"], "0x0");
    // A client stalled in the middle of its body does not hold the stop.
    let mut body = tokio::net::TcpStream::connect(chain.local_addr())
        .await
        .unwrap();
    body.write_all(
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"jsonrpc\":",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(30), chain.stop())
        .await
        .expect("the dev chain stops with a stalled client connected")
        .unwrap();
    read_to_close(&mut body).await;
}
