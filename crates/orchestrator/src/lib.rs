//! Funetun's orchestrator: the job leader. It follows the `JobManager`
//! contract, turns each job it leads into rounds of training tasks, keeps
//! every blob and verdict, merges accepted deltas into the next checkpoint
//! and commits each checkpoint's hash on-chain. Strangers talk to it over a
//! signed HTTP API, so it authenticates every request and survives bad input
//! and crashes without losing anything (docs/orchestrator.md, docs/api.md).
//!
//! - [`config`]: [`Config`], everything it needs, with defaults.
//! - [`api`]: the HTTP routes ([`app`]), one module of thin handlers per resource.
//! - [`service`]: what the handlers, the driver and the watcher share: leasing,
//!   accepting update reports and votes, the scheduler's view of a job.
//! - [`store`]: every SQL statement, behind [`store::Store`] and [`store::StoreTx`],
//!   one module per table family, typed rows; and the migrations.
//! - [`auth`]: signed requests, nonces, the rate limit, the role cache.
//! - [`scheduler`]: the pure state machine of leases and rounds ([`scheduler::tick`]).
//! - [`driver`]: the async loop applying the scheduler's actions to the store and the chain.
//! - [`leader`]: the election that lets one replica at a time run the driver.
//! - [`watcher`]: contract events into the store, exactly once.
//! - [`rounds`]: θ₀, aggregation with the job's rule and outer optimizer, evaluation.
//! - [`guard`]: the checks on a reported delta (known hash, norm, loss probe).
//! - [`replay`]: which updates are checked (the draw and its probability).
//! - [`reputation`]: decaying training and drilling points.
//! - [`graph`]: who talks to whom (`/graph`).
//! - [`blobs`]: the content-addressed blob store.
//! - [`state`]: [`AppState`], shared by handlers and the driver.
//! - [`bench`]: the load generator behind `funetun bench api`.
//! - [`util`]: conversions between chain types and their stored text.
//! - [`error`]: [`Error`], how each is answered over HTTP, and [`Result`].
//!
//! ```no_run
//! # async fn demo(config: funetun_orchestrator::Config) -> funetun_orchestrator::Result<()> {
//! let orchestrator = funetun_orchestrator::start(config).await?;
//! println!("API at {}", orchestrator.url());
//! orchestrator.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod bench;
pub mod blobs;
pub mod config;
pub mod driver;
pub mod error;
pub mod graph;
pub mod guard;
pub mod health;
pub mod leader;
pub mod replay;
pub mod reputation;
pub mod rounds;
pub mod scheduler;
pub mod service;
pub mod state;
pub mod store;
pub mod util;
pub mod watcher;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use alloy_primitives::Address;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use api::app;
pub use config::{AuthConfig, Config};
pub use error::{Error, Result};
pub use state::AppState;

/// A running orchestrator: the HTTP server and the driver on the current
/// tokio runtime. Dropping it aborts both (like a crash); [`shutdown`]
/// stops them cleanly and flushes.
///
/// [`shutdown`]: Orchestrator::shutdown
pub struct Orchestrator {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    driver: Option<JoinHandle<()>>,
    campaign: Option<JoinHandle<()>>,
}

/// Opens the state, binds the listener and starts the server and driver.
pub async fn start(config: Config) -> Result<Orchestrator> {
    let listen = config.listen;
    let state = AppState::open(config).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (stop, rx) = watch::channel(false);
    let router = app(state.clone());
    let mut server_rx = rx.clone();
    let server = tokio::spawn(funetun_serve::serve(
        listener,
        router,
        state.config.http.clone(),
        async move {
            let _ = server_rx.wait_for(|stop| *stop).await;
        },
    ));
    let campaign = tokio::spawn(leader::campaign(state.clone(), rx.clone()));
    let driver = tokio::spawn(driver::run(state.clone(), rx));
    tracing::info!(%addr, leader = %state.address, contract = %state.config.contract, replica = %state.config.replica, "orchestrator listening");
    Ok(Orchestrator {
        addr,
        state,
        stop,
        server: Some(server),
        driver: Some(driver),
        campaign: Some(campaign),
    })
}

/// Runs until `shutdown` completes, then stops gracefully (what the CLI calls).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let orchestrator = start(config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    orchestrator.shutdown().await
}

impl Orchestrator {
    /// The socket the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The leader address (jobs naming it as leader are run here).
    pub fn address(&self) -> Address {
        self.state.address
    }

    /// Whether this replica leads now (runs the chain watcher and driver).
    pub fn leading(&self) -> bool {
        self.state.leadership.leading()
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Stops accepting requests, lets open ones and the driver's current
    /// step finish, flushes buffered counters and nonces, closes the database.
    pub async fn shutdown(mut self) -> Result<()> {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            server.await??;
        }
        if let Some(driver) = self.driver.take() {
            driver.await?;
        }
        // Gives the lease up once the driver has stopped.
        if let Some(campaign) = self.campaign.take() {
            campaign.await?;
        }
        self.state.flush().await?;
        self.state.store.close().await;
        Ok(())
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
        if let Some(campaign) = self.campaign.take() {
            campaign.abort();
        }
    }
}
