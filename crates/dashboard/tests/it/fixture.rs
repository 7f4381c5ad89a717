//! A stand-in orchestrator: the dashboard's router plus the JSON API routes
//! the page reads, answering from a [`World`] built from `funetun_core::api`
//! types that tests change while the page is open. It can be stopped and
//! started again on the same port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use alloy_primitives::{Address, B256, U256};
use anyhow::{Context, Result};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use funetun_core::JobSpec;
use funetun_core::api::{
    ErrorBody, Graph, GraphEdge, GraphNode, JobDetail, JobSummary, ParticipantInfo, RoundInfo,
    UpdateInfo, VoteInfo,
};
use funetun_core::protocol::{JobStatus, NodeKind, Role, RoundStatus, UpdateStatus};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One ether in wei.
pub fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

fn addr(n: u8) -> Address {
    Address::repeat_byte(n)
}

fn hash(tag: u8, n: u64) -> B256 {
    let mut b = [tag; 32];
    b[24..].copy_from_slice(&n.to_be_bytes());
    B256::from(b)
}

/// Everything the stand-in orchestrator answers with.
#[derive(Clone, Debug)]
pub struct World {
    /// Jobs by id.
    pub jobs: BTreeMap<u64, JobDetail>,
    /// Rounds by job.
    pub rounds: BTreeMap<u64, Vec<RoundInfo>>,
    /// Updates by job.
    pub updates: BTreeMap<u64, Vec<UpdateInfo>>,
    /// Participants.
    pub participants: Vec<ParticipantInfo>,
    /// The network graph.
    pub graph: Graph,
    /// "Now", unix seconds, as the world's timestamps see it.
    pub now: u64,
}

/// What the sample job pays each validator of a deciding quorum: 0.01 ETH.
pub const VALIDATION_REWARD: U256 = U256::from_limbs([10_000_000_000_000_000, 0, 0, 0]);

/// The owner, trainers and validators of the sample world.
pub const OWNER: u8 = 0x0a;
/// Trainer key bytes; the last one has been idle for a long time.
pub const TRAINERS: [u8; 3] = [0x11, 0x12, 0x13];
/// Validator key bytes.
pub const VALIDATORS: [u8; 2] = [0x21, 0x22];

impl World {
    /// Job 1 with `closed` closed rounds and one open round; three trainers
    /// (one long idle), two validators, an owner.
    pub fn sample(closed: u64) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let spec = JobSpec {
            name: "mnist-mlp".into(),
            rounds: 10,
            ..JobSpec::default()
        };
        let summary = JobSummary {
            job_id: 1,
            name: "mnist-mlp".into(),
            owner: addr(OWNER),
            leader: addr(0x0b),
            spec_hash: hash(0x5e, 1),
            status: JobStatus::Active,
            round: 0,
            rounds: 10,
            deposit_wei: eth(10),
            paid_wei: U256::ZERO,
            slashed_wei: U256::ZERO,
            remaining_wei: eth(10),
            latest_checkpoint: Some(hash(0xc0, 0)),
            test_accuracy: None,
            created_at: now - 600,
        };
        let job = JobDetail {
            summary,
            spec,
            base_reward_wei: U256::from(10u64).pow(U256::from(17)),
            validation_reward_wei: VALIDATION_REWARD,
            validators_paid_wei: U256::ZERO,
        };
        let participants = TRAINERS
            .iter()
            .map(|&t| ParticipantInfo {
                address: addr(t),
                roles: vec![Role::Trainer],
                stake_wei: eth(1),
                credit_wei: U256::ZERO,
                earned_wei: U256::ZERO,
                slashed_wei: U256::ZERO,
                accepted: 0,
                rejected: 0,
                validations: 0,
                reputation: 0.0,
                capacity: Some(funetun_core::api::Capacity::M),
                last_seen: now,
            })
            .chain(VALIDATORS.iter().map(|&v| ParticipantInfo {
                address: addr(v),
                roles: vec![Role::Validator],
                stake_wei: eth(2),
                credit_wei: U256::ZERO,
                earned_wei: U256::ZERO,
                slashed_wei: U256::ZERO,
                accepted: 0,
                rejected: 0,
                validations: 0,
                reputation: 0.0,
                capacity: None,
                last_seen: now,
            }))
            .collect();
        let mut nodes = vec![
            GraphNode {
                id: format!("{}", addr(OWNER)),
                label: "owner".into(),
                kind: NodeKind::Owner,
                last_seen: now,
            },
            GraphNode {
                id: "orchestrator".into(),
                label: "orchestrator".into(),
                kind: NodeKind::Orchestrator,
                last_seen: now,
            },
            GraphNode {
                id: "contract".into(),
                label: "JobManager".into(),
                kind: NodeKind::Contract,
                last_seen: now,
            },
        ];
        for (i, &t) in TRAINERS.iter().enumerate() {
            // The last trainer has not been heard from for an hour: idle.
            let seen = if i + 1 == TRAINERS.len() {
                now - 3600
            } else {
                now
            };
            nodes.push(GraphNode {
                id: format!("{}", addr(t)),
                label: format!("trainer {}", i + 1),
                kind: NodeKind::Trainer,
                last_seen: seen,
            });
        }
        for (i, &v) in VALIDATORS.iter().enumerate() {
            nodes.push(GraphNode {
                id: format!("{}", addr(v)),
                label: format!("validator {}", i + 1),
                kind: NodeKind::Validator,
                last_seen: now,
            });
        }
        let mut world = Self {
            jobs: BTreeMap::from([(1, job)]),
            rounds: BTreeMap::from([(1, vec![open_round(0, now)])]),
            updates: BTreeMap::from([(1, Vec::new())]),
            participants,
            graph: Graph {
                nodes,
                edges: Vec::new(),
                updated_at: now,
            },
            now,
        };
        world.bump_edge(&format!("{}", addr(OWNER)), "contract", "createJob", 1);
        for _ in 0..closed {
            world.close_round(1);
        }
        world
    }

    fn bump_edge(&mut self, source: &str, target: &str, label: &str, by: u64) {
        let id = format!("{source}->{target}:{label}");
        let now = self.now;
        match self.graph.edges.iter_mut().find(|e| e.id == id) {
            Some(e) => {
                e.count += by;
                e.last_seen = now;
            }
            None => self.graph.edges.push(GraphEdge {
                id,
                source: source.into(),
                target: target.into(),
                label: label.into(),
                count: by,
                last_seen: now,
            }),
        }
        self.graph.updated_at = now;
    }

    /// Closes the job's open round (two active trainers submit, one update is
    /// replayed by both validators, a quorum of two, who are paid
    /// [`VALIDATION_REWARD`] each; all accepted), opens the next one.
    pub fn close_round(&mut self, job_id: u64) {
        let now = self.now;
        let Some(rounds) = self.rounds.get_mut(&job_id) else {
            return;
        };
        let Some(open) = rounds.iter_mut().find(|r| r.status == RoundStatus::Open) else {
            return;
        };
        let t = open.round;
        let reward = U256::from(10u64).pow(U256::from(17));
        let mut new_updates = Vec::new();
        for (i, &trainer) in TRAINERS[..2].iter().enumerate() {
            let replay = i == 0;
            let votes = if replay {
                VALIDATORS
                    .iter()
                    .enumerate()
                    .map(|(j, &v)| VoteInfo {
                        validator: addr(v),
                        valid: true,
                        tx_hash: hash(0x70 + j as u8, t),
                        detail: "replay hash matches".into(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            new_updates.push(UpdateInfo {
                job_id,
                round: t,
                update_index: (U256::from(t) << 160)
                    | U256::from_be_slice(addr(trainer).as_slice()),
                trainer: addr(trainer),
                task_id: t * 10 + i as u64,
                shard: i as u32,
                steps: 100,
                update_hash: hash(0xd0 + i as u8, t),
                submit_tx: hash(0xe0 + i as u8, t),
                status: UpdateStatus::Accepted,
                replay,
                reason: if replay {
                    funetun_core::api::CheckReason::Drawn
                } else {
                    funetun_core::api::CheckReason::None
                },
                votes,
                loss_before: 2.3 / (t as f32 + 1.0),
                loss_after: 2.0 / (t as f32 + 1.5),
                paid_wei: reward,
                slashed_wei: U256::ZERO,
                // A round every 20 s; the second trainer holds its tasks
                // twice as long and trains on the previous checkpoint.
                submitted_at: now - 300 + 20 * t,
                base_round: t.saturating_sub(i as u64),
                merged_round: Some(t),
                task_seconds: 10 * (i as u64 + 1),
            });
        }
        let accuracy = 0.5 + 0.4 * (1.0 - 1.0 / (t as f64 + 2.0));
        let loss = 2.0 / (t as f64 + 2.0);
        open.status = RoundStatus::Closed;
        open.leased = 3;
        open.submitted = 2;
        open.replayed = 1;
        open.accepted = 2;
        open.test_accuracy = Some(accuracy);
        open.test_loss = Some(loss);
        open.train_loss = Some(loss * 1.1);
        open.checkpoint_hash = Some(hash(0xc0, t + 1));
        open.commit_tx = Some(hash(0xcc, t + 1));
        open.closed_at = Some(now);
        rounds.push(open_round(t + 1, now));

        let to_validators = VALIDATION_REWARD * U256::from(VALIDATORS.len());
        let paid = reward * U256::from(new_updates.len()) + to_validators;
        self.updates.entry(job_id).or_default().extend(new_updates);
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.validators_paid_wei += to_validators;
            let s = &mut job.summary;
            s.round = t + 1;
            s.paid_wei += paid;
            s.remaining_wei = s.deposit_wei.saturating_sub(s.paid_wei + s.slashed_wei);
            s.latest_checkpoint = Some(hash(0xc0, t + 1));
            s.test_accuracy = Some(accuracy);
        }
        for p in &mut self.participants {
            if TRAINERS[..2].iter().any(|&t| p.address == addr(t)) {
                p.accepted += 1;
                p.earned_wei += reward;
                p.credit_wei += reward;
                p.reputation += 1.0;
            } else if VALIDATORS.iter().any(|&v| p.address == addr(v)) {
                p.validations += 1;
                p.earned_wei += VALIDATION_REWARD;
                p.credit_wei += VALIDATION_REWARD;
            }
        }
        for &trainer in &TRAINERS[..2] {
            let id = format!("{}", addr(trainer));
            self.bump_edge(&id, "orchestrator", "lease", 1);
            self.bump_edge(&id, "orchestrator", "update", 1);
            self.bump_edge(&id, "contract", "submitUpdate", 1);
        }
        for &v in &VALIDATORS {
            self.bump_edge(&format!("{}", addr(v)), "contract", "validateUpdate", 1);
        }
        self.bump_edge("orchestrator", "contract", "commitCheckpoint", 1);
    }
}

fn open_round(t: u64, now: u64) -> RoundInfo {
    RoundInfo {
        round: t,
        status: RoundStatus::Open,
        base_hash: hash(0xc0, t),
        checkpoint_hash: None,
        leased: 1,
        submitted: 0,
        replayed: 0,
        accepted: 0,
        rejected: 0,
        test_loss: None,
        test_accuracy: None,
        test_perplexity: None,
        sample: None,
        train_loss: None,
        opened_at: now,
        closed_at: None,
        commit_tx: None,
        manifest_hash: None,
        led_by: None,
    }
}

type Shared = Arc<Mutex<World>>;

fn lock(state: &Shared) -> MutexGuard<'_, World> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unknown_job(id: u64) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody {
            error: "unknown_job".into(),
            detail: format!("no job {id}"),
        }),
    )
        .into_response()
}

/// The stand-in orchestrator's routes: the dashboard plus the API it reads.
pub fn app(state: Shared) -> Router {
    funetun_dashboard::router()
        .route(
            "/v1/jobs",
            get(|State(s): State<Shared>| async move {
                Json(
                    lock(&s)
                        .jobs
                        .values()
                        .map(|j| j.summary.clone())
                        .collect::<Vec<_>>(),
                )
            }),
        )
        .route(
            "/v1/jobs/{id}",
            get(|State(s): State<Shared>, Path(id): Path<u64>| async move {
                match lock(&s).jobs.get(&id) {
                    Some(j) => Json(j.clone()).into_response(),
                    None => unknown_job(id),
                }
            }),
        )
        .route(
            "/v1/jobs/{id}/rounds",
            get(|State(s): State<Shared>, Path(id): Path<u64>| async move {
                match lock(&s).rounds.get(&id) {
                    Some(r) => Json(r.clone()).into_response(),
                    None => unknown_job(id),
                }
            }),
        )
        .route(
            "/v1/jobs/{id}/updates",
            get(|State(s): State<Shared>, Path(id): Path<u64>| async move {
                match lock(&s).updates.get(&id) {
                    Some(u) => Json(u.clone()).into_response(),
                    None => unknown_job(id),
                }
            }),
        )
        .route(
            "/v1/jobs/{id}/charts.svg",
            get(|State(s): State<Shared>, Path(id): Path<u64>| async move {
                match lock(&s).rounds.get(&id) {
                    Some(r) => funetun_dashboard::charts::round_charts_response(r),
                    None => unknown_job(id),
                }
            }),
        )
        .route(
            "/v1/participants",
            get(|State(s): State<Shared>| async move { Json(lock(&s).participants.clone()) }),
        )
        .route(
            "/graph",
            get(|State(s): State<Shared>| async move { Json(lock(&s).graph.clone()) }),
        )
        .with_state(state)
}

/// A running stand-in orchestrator on a loopback port.
pub struct Fixture {
    /// The world it answers from; change it and the page follows.
    pub world: Shared,
    addr: SocketAddr,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Fixture {
    /// Serves `world` on `127.0.0.1:0`.
    pub async fn start(world: World) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut f = Self {
            world: Arc::new(Mutex::new(world)),
            addr,
            running: None,
        };
        f.serve(listener);
        Ok(f)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (tx, rx) = oneshot::channel();
        let app = app(self.world.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        self.running = Some((tx, task));
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the world under the lock.
    pub fn change(&self, f: impl FnOnce(&mut World)) {
        f(&mut lock(&self.world));
    }

    /// Stops serving: the port closes and open connections are ended.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some((tx, task)) = self.running.take() {
            let _ = tx.send(());
            tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .context("the fixture server did not stop")??;
        }
        Ok(())
    }

    /// Serves again on the same port.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("binding {} again", self.addr))?;
        self.serve(listener);
        Ok(())
    }
}
