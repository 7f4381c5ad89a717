//! A `funetun trainer` process killed after its `submitUpdate` and before
//! its report, then restarted on the same `--cache-dir`: it must report the
//! update it already committed instead of submitting a second one, and the
//! job must go on to finish.
//!
//! The crash is made deterministic with a proxy between the trainer and the
//! orchestrator: the proxy forwards everything until the trainer's report
//! (`POST /v1/updates`) arrives, swallows that request, cuts every connection
//! and tells the test, which SIGKILLs the trainer while it waits for the
//! answer. At that instant the delta is uploaded, the submission is mined on
//! the embedded chain and written to the trainer's journal, and the
//! orchestrator has no record of it — the window a crash (or an
//! orchestrator outage) can hit for real. The restarted trainer talks to the
//! orchestrator directly. Two variants: with the journal intact (the
//! trainer reports from it without training again) and with the journal
//! lost (a crash between the transaction and the journal line: the trainer
//! recomputes the deterministic delta and finds its transaction from the
//! `UpdateSubmitted` event).
//!
//! A third test stops a `stale:S` trainer with SIGTERM while it holds a
//! trained update (pipelining): it must submit that update before exiting.
//!
//! Everything is real: the chain, the contract, the orchestrator (in this
//! process, over HTTP) and the trainer binary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::JobManager::JobManagerEvents as E;
use funetun_chain::bindings::{split_update_index, update_index, update_status};
use funetun_chain::{ContractParams, DevChain, Ledger};
use funetun_client::Client;
use funetun_core::JobSpec;
use funetun_core::protocol::{JobStatus, UpdateStatus};
use funetun_orchestrator::Orchestrator;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::log_of;

const ROUNDS: u64 = 2;
const STEPS: u32 = 20;

/// A guard against a wedged process, not a performance assertion.
const HANG_GUARD: Duration = Duration::from_secs(300);

/// The request line of a trainer's report.
const REPORT: &[u8] = b"POST /v1/updates HTTP/1.1\r\n";

/// A TCP proxy that forwards until it sees a report, then forwards nothing
/// ever again.
struct CutProxy {
    url: String,
    cut: Arc<Notify>,
}

impl CutProxy {
    async fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(Notify::new());
        let done = Arc::new(AtomicBool::new(false));
        let notify = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if done.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                tokio::spawn(pump(client, upstream, done.clone(), notify.clone()));
            }
        });
        CutProxy { url, cut }
    }
}

async fn pump(client: TcpStream, upstream: SocketAddr, done: Arc<AtomicBool>, cut: Arc<Notify>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let down = tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
    let mut buf = vec![0u8; 64 * 1024];
    // The tail of what was forwarded, so a request line split across reads is seen.
    let mut window: Vec<u8> = Vec::new();
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        window.extend_from_slice(&buf[..n]);
        if done.load(Ordering::SeqCst) || window.windows(REPORT.len()).any(|w| w == REPORT) {
            done.store(true, Ordering::SeqCst);
            cut.notify_one();
            break;
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            break;
        }
        let keep = window.len().saturating_sub(REPORT.len() - 1);
        window.drain(..keep);
    }
    down.abort();
}

/// The embedded chain, the contract, the orchestrator and one open job.
struct Env {
    _chain: DevChain,
    dir: tempfile::TempDir,
    rpc_url: String,
    owner: Ledger,
    orchestrator: Orchestrator,
    trainer: PrivateKeySigner,
    validator: PrivateKeySigner,
    spec: JobSpec,
}

const JOB: u64 = 1;

fn spec() -> JobSpec {
    // No validators: an unchecked update is accepted when its window closes.
    JobSpec {
        seed: 1,
        rounds: ROUNDS as u32,
        steps: STEPS,
        // The restarted trainer gets its live lease back, the same task.
        lease_secs: 3_600,
        ..crate::tiny_mlp_spec("trainer-restart")
    }
}

impl Env {
    async fn new(spec: JobSpec) -> Env {
        let (chain, keys, owner) = crate::chain_with_contract().await;
        let rpc_url = chain.rpc_url();
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            funetun_orchestrator::Config::new(rpc_url.clone(), owner.contract(), keys[1].clone());
        config.db_url = format!("sqlite://{}", dir.path().join("orchestrator.db").display());
        config.blobs = funetun_orchestrator::blobs::BlobLocation::Dir(dir.path().join("blobs"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.poll_interval = Duration::from_millis(50);
        config.offline = true;
        let orchestrator = funetun_orchestrator::start(config).await.unwrap();

        let bytes = spec.to_toml().into_bytes();
        let spec_hash = Client::new(&orchestrator.url(), Some(keys[0].clone()))
            .put_spec(bytes)
            .await
            .unwrap();
        let id =
            crate::create_job(&owner, &spec, spec_hash, orchestrator.address(), U256::ZERO).await;
        assert_eq!(id, U256::from(JOB));
        Env {
            _chain: chain,
            dir,
            rpc_url,
            owner,
            orchestrator,
            trainer: keys[2].clone(),
            validator: keys[5].clone(),
            spec,
        }
    }

    fn cache_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("trainer-cache")
    }

    fn journal(&self) -> std::path::PathBuf {
        self.cache_dir()
            .join(format!("journal-{}.jsonl", self.trainer.address()))
    }

    /// `funetun trainer` for the job against `orchestrator`, logging to `log`.
    fn trainer(&self, orchestrator: &str, log: &Path) -> tokio::process::Command {
        let log = std::fs::File::create(log).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_funetun"));
        cmd.arg("trainer")
            .args(["--orchestrator", orchestrator, "--rpc", &self.rpc_url])
            .args(["--contract", &self.owner.contract().to_string()])
            .args(["--job", &JOB.to_string(), "--exit-when-done"])
            .args([
                "--threads",
                "1",
                "--poll-secs",
                "0.05",
                "--offline",
                "--json",
            ])
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .env("FUNETUN_KEY", crate::key_hex(&self.trainer))
            .env("FUNETUN_LOG", "info")
            .env_remove("FUNETUN_JSON")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        cmd
    }

    /// The (round, shard) of each of the job's submissions, in order.
    async fn submitted_tasks(&self) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        for e in self.owner.events(0, None).await.unwrap() {
            if let E::UpdateSubmitted(u) = &e.event
                && u.jobId == U256::from(JOB)
            {
                let parts = split_update_index(u.index);
                out.push((parts.round, parts.shard));
            }
        }
        out
    }

    /// The job's `UpdateSubmitted` transactions by (round, trainer).
    async fn submissions(&self) -> BTreeMap<(u64, Address), Vec<B256>> {
        let mut out: BTreeMap<(u64, Address), Vec<B256>> = BTreeMap::new();
        for e in self.owner.events(0, None).await.unwrap() {
            if let E::UpdateSubmitted(u) = &e.event
                && u.jobId == U256::from(JOB)
            {
                out.entry((split_update_index(u.index).round, u.trainer))
                    .or_default()
                    .push(e.tx_hash);
            }
        }
        out
    }
}

async fn restart_after_a_lost_report(lose_journal: bool) {
    let env = Env::new(spec()).await;
    let me = env.trainer.address();
    let client = Client::new(&env.orchestrator.url(), None);
    let proxy = CutProxy::start(env.orchestrator.local_addr()).await;

    // First run: through the proxy, killed when its report goes out.
    let first_log = env.dir.path().join("trainer-1.log");
    let mut first = env.trainer(&proxy.url, &first_log).spawn().unwrap();
    tokio::select! {
        _ = proxy.cut.notified() => {}
        status = first.wait() => panic!(
            "the trainer exited ({status:?}) before reporting:\n{}", log_of(&first_log)
        ),
        _ = tokio::time::sleep(HANG_GUARD) => panic!(
            "the trainer never reported:\n{}", log_of(&first_log)
        ),
    }
    first.kill().await.unwrap(); // SIGKILL
    let status = first.wait().await.unwrap();
    assert!(!status.success(), "killed, not exited: {status}");

    // The crash window: submitted and journaled, unknown to the orchestrator.
    let job = U256::from(JOB);
    let view = env.owner.update(job, update_index(0, 0, me)).await.unwrap();
    assert_eq!(view.status, update_status::PENDING, "{view:?}");
    let before = env.submissions().await;
    assert_eq!(before.len(), 1, "{before:?}");
    let first_tx = before[&(0, me)][0];
    assert!(
        client.updates(JOB).await.unwrap().is_empty(),
        "the report reached the orchestrator"
    );
    let journal = std::fs::read_to_string(env.journal()).unwrap();
    assert_eq!(journal.lines().count(), 1, "{journal}");
    assert!(journal.contains(&first_tx.to_string()), "{journal}");
    if lose_journal {
        std::fs::remove_file(env.journal()).unwrap();
    }

    // Second run: same key, same cache directory, straight to the orchestrator.
    let second_log = env.dir.path().join("trainer-2.log");
    let second = env
        .trainer(&env.orchestrator.url(), &second_log)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(HANG_GUARD, second.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the restarted trainer hangs:\n{}", log_of(&second_log)))
        .unwrap();
    assert!(
        out.status.success(),
        "the restarted trainer failed:\n{}",
        log_of(&second_log)
    );
    let report = crate::last_json(&out);
    assert_eq!(report["address"], me.to_string().to_lowercase(), "{report}");
    assert_eq!(report["resumed"], 1, "round 0 is resumed: {report}");
    assert_eq!(report["submitted"], ROUNDS - 1, "{report}");
    assert_eq!(report["dropped"], 0, "{report}");
    // From the journal the trainer reports without training again; without
    // it, it recomputes round 0's delta.
    let trained_rounds = if lose_journal { ROUNDS } else { ROUNDS - 1 };
    assert_eq!(
        report["steps"],
        trained_rounds * u64::from(STEPS),
        "{report}"
    );

    // Exactly one submission per (round, trainer), round 0's the first one.
    let after = env.submissions().await;
    let expected: BTreeMap<(u64, Address), usize> = (0..ROUNDS).map(|r| ((r, me), 1)).collect();
    let counts: BTreeMap<(u64, Address), usize> =
        after.iter().map(|(k, v)| (*k, v.len())).collect();
    assert_eq!(counts, expected, "{after:?}");
    assert_eq!(after[&(0, me)], vec![first_tx]);

    // The orchestrator recorded every update, with its transaction, and the
    // job went on to finish on-chain.
    let updates = client.updates(JOB).await.unwrap();
    assert_eq!(updates.len() as u64, ROUNDS, "{updates:?}");
    for u in &updates {
        assert_eq!(u.trainer, me);
        assert_eq!(after[&(u.round, me)], vec![u.submit_tx], "{u:?}");
        assert_eq!(u.status, UpdateStatus::Accepted, "{u:?}");
    }
    let detail = client.job(JOB).await.unwrap();
    assert_eq!(
        detail.summary.status,
        JobStatus::Finished,
        "{:?}",
        detail.summary
    );
    let chain_job = env.owner.job(job).await.unwrap();
    assert_eq!(u64::from(chain_job.checkpoints), ROUNDS + 1);
    let base = env.spec.base_reward_wei().unwrap();
    assert_eq!(
        env.owner.account(me).await.unwrap().credit,
        U256::from(ROUNDS) * base,
        "paid once per round"
    );
    let log = log_of(&second_log);
    assert!(!log.contains("task failed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_trainer_reports_its_submission_from_the_journal() {
    restart_after_a_lost_report(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_trainer_without_a_journal_finds_its_submission_on_chain() {
    restart_after_a_lost_report(true).await;
}

/// SIGTERM to a pipelined `stale:2` trainer after its second report, while
/// it trains its next task alongside: it submits the update in hand before
/// it exits, so nothing it trained is lost. Its first update goes through
/// alone (the trainer waits for checkpoint 1 before it leases again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_stale_trainer_submits_the_update_in_hand() {
    let mut spec = spec();
    spec.name = "stale-stop".into();
    spec.rounds = 4;
    spec.sync = "stale:2".parse().unwrap();
    spec.buffer = 1;
    let env = Env::new(spec).await;
    let me = env.trainer.address();
    let log = env.dir.path().join("trainer.log");
    // It asks for L tasks, which a trainer without a record does not get.
    let trainer = env
        .trainer(&env.orchestrator.url(), &log)
        .args(["--capacity", "L"])
        .spawn()
        .unwrap();
    let pid = trainer.id().expect("running").to_string();
    // The second update reported: the third task was leased (naming the
    // second as held) and trained alongside, so it is in hand from now on.
    let started = std::time::Instant::now();
    while log_of(&log).matches("submitted in round").count() < 2 {
        assert!(
            started.elapsed() < HANG_GUARD,
            "the trainer never reported:\n{}",
            log_of(&log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {pid}");
    let out = tokio::time::timeout(HANG_GUARD, trainer.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the stopped trainer hangs:\n{}", log_of(&log)))
        .unwrap();
    let text = log_of(&log);
    assert!(out.status.success(), "exit {}:\n{text}", out.status);
    assert!(
        text.contains("stopping: submitting the update in hand first"),
        "{text}"
    );
    let said = format!("has {STEPS} steps, not the {} of capacity L", 2 * STEPS);
    assert!(
        text.contains(&said) && text.contains("reputation of 4 full tasks"),
        "{text}"
    );
    assert_eq!(text.matches(&said).count(), 1, "said once: {text}");
    // Nothing trained was lost: every task trained went on-chain, the
    // one in hand included (the pipeline may have got past the second
    // report's task before the signal landed).
    let report = crate::last_json(&out);
    let submitted = report["submitted"].as_u64().unwrap();
    assert!(submitted >= 3, "{report}\n{text}");
    assert_eq!(report["dropped"], 0, "{report}");
    assert_eq!(report["steps"], submitted * u64::from(STEPS), "{report}");

    // All on-chain and all reported: the first trained on checkpoint 0 and
    // submitted alone in round 0 (the trainer then waited for checkpoint
    // 1); every later one in the round open when it was done — its base's,
    // or a later one within the bound.
    let submissions = env.submissions().await;
    assert!(submissions.keys().all(|(_, t)| *t == me));
    let on_chain: usize = submissions.values().map(Vec::len).sum();
    assert_eq!(on_chain as u64, submitted, "{submissions:?}");
    assert_eq!(submissions[&(0, me)].len(), 1, "{submissions:?}");
    let client = Client::new(&env.orchestrator.url(), None);
    let mut updates = client.updates(JOB).await.unwrap();
    assert_eq!(updates.len() as u64, submitted, "{updates:?}");
    updates.sort_by_key(|u| u.task_id);
    assert_eq!(
        (updates[0].base_round, updates[0].round),
        (0, 0),
        "{updates:?}"
    );
    for u in &updates[1..] {
        assert!(u.base_round >= 1, "{updates:?}");
        assert!(
            (u.base_round..=u.base_round + 2).contains(&u.round),
            "{updates:?}"
        );
    }
}

/// Runs an honest trainer whose first update a validator rejects (quorum 1,
/// every update drawn). Returns the trainer process, its log and the unix
/// second of the rejection.
async fn first_update_rejected(
    env: &Env,
    extra: &[&str],
) -> (tokio::process::Child, std::path::PathBuf, u64) {
    let validator = env.owner.with_signer(env.validator.clone());
    validator
        .register_validator(ContractParams::default().min_stake)
        .await
        .unwrap();
    let log = env.dir.path().join("trainer.log");
    let trainer = env
        .trainer(&env.orchestrator.url(), &log)
        .args(extra)
        .spawn()
        .unwrap();
    let me = env.trainer.address();
    let started = std::time::Instant::now();
    let index = loop {
        if let Some(&(round, shard)) = env.submitted_tasks().await.first() {
            break update_index(round, shard, me);
        }
        assert!(
            started.elapsed() < HANG_GUARD,
            "the trainer never submitted:\n{}",
            log_of(&log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    validator
        .validate_update(U256::from(JOB), index, false)
        .await
        .unwrap();
    let view = env.owner.update(U256::from(JOB), index).await.unwrap();
    assert_eq!(view.status, update_status::REJECTED);
    (trainer, log, funetun_orchestrator::util::now_secs())
}

fn rejection_spec() -> JobSpec {
    let mut spec = spec();
    spec.name = "rejected".into();
    spec.validation.replay_prob = 1.0;
    spec.validation.replay_floor = 1.0;
    spec
}

/// An honest trainer whose own update was rejected stops working on the job
/// and says why; told to work on that job only, it exits with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trainer_whose_update_was_rejected_stops_and_says_why() {
    let env = Env::new(rejection_spec()).await;
    let (trainer, log, _) = first_update_rejected(&env, &[]).await;
    let out = tokio::time::timeout(HANG_GUARD, trainer.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the trainer kept going:\n{}", log_of(&log)))
        .unwrap();
    let text = log_of(&log);
    assert!(!out.status.success(), "exit {}:\n{text}", out.status);
    assert!(
        text.contains("validators rejected this trainer's update of job 1 round 0")
            && text.contains("--continue-after-rejection"),
        "{text}"
    );
}

/// With `--continue-after-rejection` it goes on asking for work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_continue_after_rejection_the_trainer_keeps_asking() {
    let env = Env::new(rejection_spec()).await;
    let (mut trainer, log, rejected_at) =
        first_update_rejected(&env, &["--continue-after-rejection"]).await;
    let client = Client::new(&env.orchestrator.url(), None);
    let me = env.trainer.address();
    let started = std::time::Instant::now();
    loop {
        let seen = client
            .participants()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.address == me)
            .map(|p| p.last_seen)
            .unwrap_or(0);
        if seen > rejected_at + 1 {
            break;
        }
        assert!(
            trainer.try_wait().unwrap().is_none(),
            "the trainer exited:\n{}",
            log_of(&log)
        );
        assert!(
            started.elapsed() < HANG_GUARD,
            "the trainer stopped asking:\n{}",
            log_of(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !log_of(&log).contains("validators rejected this trainer's update"),
        "{}",
        log_of(&log)
    );
    trainer.kill().await.unwrap();
}
