//! Slow and stalled clients against `funetun_serve::serve`, over real
//! sockets. Every wait is bounded by `GUARD`, so a server that never closes
//! a connection fails the test instead of hanging it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use axum::Router;
use axum::routing::{get, post};
use funetun_serve::{Limits, TOO_MANY_CONNECTIONS, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest any single wait in these tests may take.
const GUARD: Duration = Duration::from_secs(20);

/// A short bound, for the limit a test exercises.
const SHORT: Duration = Duration::from_millis(300);

/// A long bound, for the limits a test does not exercise.
const LONG: Duration = Duration::from_secs(600);

fn limits() -> Limits {
    Limits {
        header_read: LONG,
        body_idle: LONG,
        write_stall: LONG,
        max_connections: 64,
        shutdown_grace: LONG,
    }
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }))
        .route("/big", get(|| async { vec![b'x'; 64 << 20] }))
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(limits: Limits) -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app(), limits, async {
            let _ = stopped.await;
        }));
        Ok(Server {
            addr,
            stop: Some(stop),
            task,
        })
    }

    async fn connect(&self) -> Result<TcpStream> {
        Ok(TcpStream::connect(self.addr).await?)
    }

    /// Stops the server and waits (bounded) for `serve` to return.
    async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(GUARD, &mut self.task)
            .await
            .context("serve did not return after shutdown")???;
        Ok(())
    }
}

/// Reads until the server closes the connection (or resets it); returns
/// what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Result<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(GUARD, stream.read_to_end(&mut out))
        .await
        .context("the server kept the connection open")?;
    if let Err(e) = read {
        ensure!(
            e.kind() == std::io::ErrorKind::ConnectionReset,
            "unexpected read error: {e}"
        );
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// One `GET /` on a fresh connection; returns the status line.
async fn get_status(server: &Server) -> Result<String> {
    let mut s = server.connect().await?;
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await?;
    let response = read_to_close(&mut s).await?;
    Ok(response.lines().next().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_request_head_that_never_finishes_is_closed() -> Result<()> {
    let server = Server::start(Limits {
        header_read: SHORT,
        ..limits()
    })
    .await?;
    let mut slow = server.connect().await?;
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await?;
    let said = read_to_close(&mut slow).await?;
    ensure!(
        !said.contains("200 OK"),
        "a partial head was answered: {said}"
    );
    // A connection that sends nothing at all is closed too.
    let mut silent = server.connect().await?;
    read_to_close(&mut silent).await?;
    ensure!(get_status(&server).await?.contains("200"));
    server.stop().await
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() -> Result<()> {
    let server = Server::start(Limits {
        header_read: SHORT,
        ..limits()
    })
    .await?;
    let mut s = server.connect().await?;
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await?;
    let said = read_to_close(&mut s).await?;
    ensure!(said.starts_with("HTTP/1.1 200"), "{said}");
    ensure!(said.ends_with("ok"), "{said}");
    server.stop().await
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_cut_off() -> Result<()> {
    let server = Server::start(Limits {
        body_idle: SHORT,
        ..limits()
    })
    .await?;
    let mut s = server.connect().await?;
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
        .await?;
    let said = read_to_close(&mut s).await?;
    ensure!(
        !said.contains("200 OK"),
        "a cut-off body was answered 200: {said}"
    );
    // A body that arrives slowly but keeps moving is fine.
    let mut s = server.connect().await?;
    s.write_all(
        b"POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 20\r\n\r\n",
    )
    .await?;
    for chunk in [b"0123456789", b"abcdefghij"] {
        tokio::time::sleep(SHORT / 2).await;
        s.write_all(chunk).await?;
    }
    let said = read_to_close(&mut s).await?;
    ensure!(said.starts_with("HTTP/1.1 200"), "{said}");
    ensure!(said.ends_with("0123456789abcdefghij"), "{said}");
    server.stop().await
}

#[tokio::test]
async fn connections_past_the_cap_get_a_503_and_the_server_recovers() -> Result<()> {
    let cap = 4;
    let server = Server::start(Limits {
        header_read: Duration::from_secs(2),
        max_connections: cap,
        ..limits()
    })
    .await?;
    let mut slow = Vec::new();
    for _ in 0..cap {
        let mut s = server.connect().await?;
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await?;
        slow.push(s);
    }
    // Give the accept loop time to take all four before the fifth comes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = server.connect().await?;
    extra
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await?;
    let said = read_to_close(&mut extra).await?;
    ensure!(said.starts_with("HTTP/1.1 503"), "past the cap: {said}");
    ensure!(said.ends_with(TOO_MANY_CONNECTIONS), "{said}");
    ensure!(said.contains("retry-after: 1"), "{said}");
    // Once the slow heads time out, their slots are free again.
    for s in &mut slow {
        read_to_close(s).await?;
    }
    ensure!(get_status(&server).await?.contains("200"));
    server.stop().await
}

#[tokio::test]
async fn a_client_that_never_reads_its_response_is_dropped() -> Result<()> {
    let server = Server::start(Limits {
        write_stall: SHORT,
        max_connections: 1,
        ..limits()
    })
    .await?;
    // 64 MiB fill every socket buffer; the client reads none of it.
    let mut hog = server.connect().await?;
    hog.write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        .await?;
    // The one slot frees once the stalled write is given up.
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let status = get_status(&server).await?;
        if status.contains("200") {
            break;
        }
        ensure!(status.contains("503"), "{status}");
        if tokio::time::Instant::now() > deadline {
            bail!("the stalled response still holds the only connection slot");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(hog);
    server.stop().await
}

#[tokio::test]
async fn shutdown_does_not_wait_for_stalled_clients() -> Result<()> {
    let server = Server::start(Limits {
        shutdown_grace: SHORT,
        ..limits()
    })
    .await?;
    // One client stalls mid-body, one mid-head, one idles between requests.
    let mut body = server.connect().await?;
    body.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n01234")
        .await?;
    let mut head = server.connect().await?;
    head.write_all(b"GET / HTTP/1.1\r\n").await?;
    let mut idle = server.connect().await?;
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await?;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(GUARD, idle.read(&mut buf)).await??;
    ensure!(buf[..n].starts_with(b"HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop().await?;
    for s in [&mut body, &mut head, &mut idle] {
        read_to_close(s).await?;
    }
    Ok(())
}
