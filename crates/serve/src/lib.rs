//! Serving an axum router over HTTP/1.1 so that slow or stalled clients
//! cannot exhaust the server.
//!
//! `axum::serve` keeps a connection open for as long as its client likes:
//! a client that sends half a request head, stops in the middle of a body,
//! or never reads its response holds a file descriptor and memory forever,
//! and a graceful shutdown waits for it. [`serve`] bounds each of these:
//!
//! - **Request heads** must arrive within [`Limits::header_read`]; the same
//!   bound closes a keep-alive connection that stays idle between requests.
//! - **Request bodies** may pause at most [`Limits::body_idle`] between
//!   chunks (a slow upload that keeps moving is fine).
//! - **Responses**: a write the client does not take within
//!   [`Limits::write_stall`] closes the connection.
//! - **Connections** past [`Limits::max_connections`] get an immediate
//!   `503` with a JSON reason and are closed, so the ones already open, and
//!   the health check of a client that retries, keep working.
//! - **Shutdown** stops accepting, asks open connections to finish their
//!   request in flight, and closes whatever is still open after
//!   [`Limits::shutdown_grace`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
//! funetun_serve::serve(listener, app, funetun_serve::Limits::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// The bounds [`serve`] puts on every connection.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest time a client may take to send a request head, counted from
    /// when the connection opens or its previous response was sent (so it
    /// is also how long an idle keep-alive connection is kept).
    pub header_read: Duration,
    /// Longest pause between two chunks of a request body.
    pub body_idle: Duration,
    /// Longest time a response write may wait for the client to read.
    pub write_stall: Duration,
    /// Most connections open at once; one more is answered `503` and closed.
    pub max_connections: usize,
    /// How long a shutdown waits for open connections before closing them.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    /// 30 s for a head or an idle keep-alive, 30 s of silence in a body or
    /// a write, 1,024 connections, 5 s of grace at shutdown.
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(30),
            body_idle: Duration::from_secs(30),
            write_stall: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The JSON body of the refusal past [`Limits::max_connections`], in the
/// `{"error", "detail"}` shape of every Funetun API error.
pub const TOO_MANY_CONNECTIONS: &str = r#"{"error":"too_many_connections","detail":"the server has as many connections open as it allows; retry in a second, and reuse one connection for many requests"}"#;

/// Most refusals answered at once; connections past the cap beyond these
/// are closed without an answer.
const REFUSERS: usize = 64;

/// Serves `router` on `listener` within `limits` until `shutdown`
/// completes, then stops as described in the crate documentation.
///
/// Errors only if the listener itself fails for good; errors of single
/// connections (resets, timeouts, malformed requests) end that connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusers = Arc::new(Semaphore::new(REFUSERS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refusals = Refusals::default();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    refusals.note(peer, limits.max_connections);
                    // Answering takes a moment; under a flood, past
                    // REFUSERS answers in flight, just close.
                    if let Ok(refuser) = refusers.clone().try_acquire_owned() {
                        connections.spawn(async move {
                            refuse(stream).await;
                            drop(refuser);
                        });
                    }
                    continue;
                };
                let router = router.clone();
                let limits = limits.clone();
                let stop = stop_rx.clone();
                connections.spawn(async move {
                    connection(stream, peer, router, &limits, stop).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = connections.len();
    if open > 0 {
        let drained = tokio::time::timeout(limits.shutdown_grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                open = connections.len(),
                grace = ?limits.shutdown_grace,
                "connections still open after the shutdown grace; closing them"
            );
            connections.shutdown().await;
        }
    }
    Ok(())
}

/// Serves one connection until the client closes it, a limit ends it, or
/// a shutdown asks it to finish.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(WriteDeadline::new(stream, limits.write_stall));
    let body_idle = limits.body_idle;
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request =
            request.map(|body| axum::body::Body::new(TimeoutBody::new(body_idle, body)));
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let stopping = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Answers a connection past the cap with a `503` and closes it.
///
/// The client's request head is read first (HTTP clients do not expect an
/// answer before they have asked), then the connection is drained briefly
/// so closing it does not reset the answer away. All of it within 2 s.
async fn refuse(mut stream: TcpStream) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{}",
        TOO_MANY_CONNECTIONS.len(),
        TOO_MANY_CONNECTIONS
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        while stream.read(&mut buf).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// What to do after `accept` fails. Per-connection errors (the client gave
/// up before we took it) are ignored; anything else, such as running out of
/// file descriptors, is logged and waited out briefly so the loop does not
/// spin.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Logs refused connections at most once a second, with how many there were
/// (owned by the accept loop, so plain fields).
#[derive(Default)]
struct Refusals {
    since_log: u64,
    last_log: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, peer: SocketAddr, cap: usize) {
        self.since_log += 1;
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(
                %peer,
                refused = self.since_log,
                cap,
                "connection cap reached; refusing new connections with 503"
            );
            self.last_log = Some(Instant::now());
            self.since_log = 0;
        }
    }
}

/// A stream whose writes fail with `TimedOut` once they have waited
/// `stall` for the peer to read.
struct WriteDeadline<S> {
    inner: S,
    stall: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, stall: Duration) -> Self {
        WriteDeadline {
            inner,
            stall,
            timer: None,
        }
    }

    /// Called when a write is pending: starts the clock, or fails once it
    /// has run out.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let stall = self.stall;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the response in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Pending => self.pending(cx),
            ready => {
                self.timer = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}
