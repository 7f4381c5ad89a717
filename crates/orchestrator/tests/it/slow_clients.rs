//! Slow and stalled clients cannot take the orchestrator down: heads that
//! never finish are closed, connections past the cap are refused with a
//! 503 while `/healthz` recovers, and a shutdown does not wait for a client
//! stalled in the middle of an upload.

use std::time::Duration;

use funetun_serve::{Limits, TOO_MANY_CONNECTIONS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::Env;

/// Longest any single wait here may take; a server that keeps a stalled
/// connection forever fails the test instead of hanging it.
const GUARD: Duration = Duration::from_secs(30);

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(GUARD, stream.read_to_end(&mut out))
        .await
        .expect("the orchestrator closes a stalled connection");
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_timed_out_capped_and_not_waited_for_at_shutdown() {
    let env = Env::new().await;
    let cap = 8;
    let mut config = env.config();
    config.http = Limits {
        header_read: Duration::from_secs(1),
        max_connections: cap,
        shutdown_grace: Duration::from_millis(300),
        ..Limits::default()
    };
    let orchestrator = funetun_orchestrator::start(config).await.unwrap();
    let addr = orchestrator.local_addr();
    let health = format!("{}/healthz", orchestrator.url());
    let http = reqwest::Client::new();

    // Every slot taken by a client that never finishes its request head.
    let mut slow = Vec::new();
    for _ in 0..cap {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // One more is told why, in the API's error shape, and closed.
    let refused = http.get(&health).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    let expected: serde_json::Value = serde_json::from_str(TOO_MANY_CONNECTIONS).unwrap();
    assert_eq!(body, expected);
    assert_eq!(body["error"], "too_many_connections");

    // The slow heads are closed, and health answers again.
    for s in &mut slow {
        let said = read_to_close(s).await;
        assert!(
            !said.contains("200 OK"),
            "a partial head was answered: {said}"
        );
    }
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let r = http.get(&health).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "health never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A client stalled mid-upload does not hold the shutdown.
    let mut upload = TcpStream::connect(addr).await.unwrap();
    upload
        .write_all(
            b"POST /v1/updates HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\
              x-funetun-address: 0x0000000000000000000000000000000000000001\r\n\
              x-funetun-timestamp: 1\r\nx-funetun-nonce: n\r\nx-funetun-signature: 0x00\r\n\r\n\
              {\"task_id\":",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(GUARD, orchestrator.shutdown())
        .await
        .expect("shutdown finishes with a stalled client connected")
        .unwrap();
    read_to_close(&mut upload).await;
}
