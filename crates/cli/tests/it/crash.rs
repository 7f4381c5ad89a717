//! Crash recovery of the orchestrator process: a job run while the
//! `funetun orchestrator` process is killed with SIGKILL at three moments
//! (a round's first update reported, just after a round closed, mid-way
//! through the last round) and restarted on the same database, blob
//! directory and port ends on the same final checkpoint hash as the same
//! job run without a crash, with one submission per task and nobody paid
//! twice. Everything is real: the chain (in this process), the contract, and
//! the orchestrator and two trainers as `funetun` processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use alloy_primitives::{B256, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::JobManager::JobManagerEvents as E;
use funetun_chain::{DevChain, Ledger};
use funetun_client::Client;
use funetun_core::JobSpec;
use funetun_core::protocol::JobStatus;

use crate::{chain_with_contract, create_job, key_hex, log_of, tiny_mlp_spec};

/// A guard against a wedged run, not a performance assertion.
const HANG_GUARD: Duration = Duration::from_secs(300);

const ROUNDS: u32 = 3;

fn spec() -> JobSpec {
    JobSpec {
        seed: 11,
        rounds: ROUNDS,
        shards: 2,
        outer_optimizer: "nesterov:0.7,0.9".into(),
        // Every round waits for both shards, so its inputs do not depend on timing.
        min_updates: 2,
        ..tiny_mlp_spec("crash")
    }
}

/// One market: the chain, the contract and the state directory.
struct Market {
    _chain: DevChain,
    rpc: String,
    owner: Ledger,
    keys: Vec<PrivateKeySigner>,
    dir: tempfile::TempDir,
    listen: SocketAddr,
}

impl Market {
    async fn new() -> Market {
        let (chain, keys, owner) = chain_with_contract().await;
        let rpc = chain.rpc_url();
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        Market {
            _chain: chain,
            rpc,
            owner,
            keys,
            dir: tempfile::tempdir().unwrap(),
            listen,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// `funetun orchestrator` on the market's database, blobs and port.
    fn orchestrator(&self, run: u32) -> tokio::process::Child {
        let log = std::fs::File::create(self.log(&format!("orchestrator-{run}"))).unwrap();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_funetun"))
            .arg("orchestrator")
            .args([
                "--rpc",
                &self.rpc,
                "--contract",
                &self.owner.contract().to_string(),
            ])
            .arg("--db")
            .arg(format!(
                "sqlite://{}",
                self.dir.path().join("orchestrator.db").display()
            ))
            .arg("--blobs")
            .arg(self.dir.path().join("blobs"))
            .args([
                "--listen",
                &self.listen.to_string(),
                "--offline",
                "--poll-ms",
                "50",
            ])
            .env("FUNETUN_KEY", key_hex(&self.keys[1]))
            .env("FUNETUN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    fn trainer(&self, i: usize) -> tokio::process::Child {
        let log = std::fs::File::create(self.log(&format!("trainer-{i}"))).unwrap();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_funetun"))
            .arg("trainer")
            .args(["--orchestrator", &self.url(), "--rpc", &self.rpc])
            .args(["--contract", &self.owner.contract().to_string()])
            .args([
                "--job",
                "1",
                "--exit-when-done",
                "--threads",
                "1",
                "--poll-secs",
                "0.05",
            ])
            .arg("--cache-dir")
            .arg(self.dir.path().join(format!("cache-{i}")))
            .env("FUNETUN_KEY", key_hex(&self.keys[i]))
            .env("FUNETUN_LOG", "info")
            .env_remove("FUNETUN_JSON")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                out += &format!("--- {}\n{}\n", path.display(), log_of(&path));
            }
        }
        out
    }

    /// Waits until the orchestrator answers.
    async fn wait_up(&self) {
        let client = Client::new(&self.url(), None);
        let started = std::time::Instant::now();
        while client.jobs().await.is_err() {
            assert!(
                started.elapsed() < HANG_GUARD,
                "the orchestrator never came up:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the job until `moment` holds (on its round and the number of
    /// updates reported in it); false when the job finished first.
    async fn wait_for(&self, what: &str, moment: impl Fn(u64, usize) -> bool) -> bool {
        let client = Client::new(&self.url(), None);
        let started = std::time::Instant::now();
        loop {
            if let (Ok(jobs), Ok(updates)) = (client.jobs().await, client.updates(1).await)
                && let Some(job) = jobs.iter().find(|j| j.job_id == 1)
            {
                let in_round = updates.iter().filter(|u| u.round == job.round).count();
                if job.status == JobStatus::Finished {
                    return false;
                }
                if moment(job.round, in_round) {
                    return true;
                }
            }
            assert!(
                started.elapsed() < HANG_GUARD,
                "never reached: {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// When to kill: on the job's round and the updates reported in it.
type Moment = Box<dyn Fn(u64, usize) -> bool>;

/// Runs the job to its end, killing the orchestrator at the crash points
/// when `crash`; returns the final checkpoint hash and the number of
/// submissions on-chain.
async fn run(crash: bool) -> (B256, usize, Market) {
    let m = Market::new().await;
    let mut orchestrator = m.orchestrator(0);
    m.wait_up().await;
    let spec = spec();
    let spec_hash = Client::new(&m.url(), Some(m.keys[0].clone()))
        .put_spec(spec.to_toml().into_bytes())
        .await
        .unwrap();
    create_job(&m.owner, &spec, spec_hash, m.keys[1].address(), U256::ZERO).await;
    let mut trainers = [m.trainer(2), m.trainer(3)];
    if crash {
        let moments: [(&str, Moment); 3] = [
            (
                "round 0's first update reported",
                Box::new(|r, n| r == 0 && n >= 1),
            ),
            ("round 0 closed", Box::new(|r, _| r >= 1)),
            (
                "an update of the last round reported",
                Box::new(|r, n| r == 2 && n >= 1),
            ),
        ];
        for (run, (what, moment)) in moments.into_iter().enumerate() {
            let before_the_end = m.wait_for(what, moment).await;
            assert!(
                before_the_end,
                "the job finished before {what}:\n{}",
                m.logs()
            );
            orchestrator.start_kill().unwrap(); // SIGKILL
            let status = orchestrator.wait().await.unwrap();
            assert!(!status.success(), "killed, not exited: {status}");
            orchestrator = m.orchestrator(run as u32 + 1);
            m.wait_up().await;
        }
    }
    let client = Client::new(&m.url(), None);
    let started = std::time::Instant::now();
    loop {
        let jobs = client.jobs().await.unwrap_or_default();
        if jobs
            .iter()
            .any(|j| j.job_id == 1 && j.status == JobStatus::Finished)
        {
            break;
        }
        assert!(
            started.elapsed() < HANG_GUARD,
            "the job did not finish:\n{}",
            m.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in &mut trainers {
        let status = tokio::time::timeout(HANG_GUARD, t.wait())
            .await
            .expect("the trainer exits at the job's end")
            .unwrap();
        assert!(status.success(), "trainer: {status}\n{}", m.logs());
    }
    let last = m
        .owner
        .checkpoint(U256::from(1), u64::from(ROUNDS))
        .await
        .unwrap();
    let submissions = m
        .owner
        .events(0, None)
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(&e.event, E::UpdateSubmitted(u) if u.jobId == U256::from(1)))
        .count();
    drop(orchestrator);
    (last, submissions, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_killed_three_times_ends_on_the_same_checkpoint() {
    let (reference, submitted, _) = run(false).await;
    assert_ne!(reference, B256::ZERO);
    assert_eq!(submitted, 2 * ROUNDS as usize);
    let (crashed, submitted, m) = run(true).await;
    assert_eq!(
        crashed,
        reference,
        "the final checkpoint differs:\n{}",
        m.logs()
    );
    // One submission per task, each paid once.
    assert_eq!(submitted, 2 * ROUNDS as usize, "{}", m.logs());
    let books = m
        .owner
        .job_accounts(U256::from(1), 0, m.owner.block_number().await.unwrap())
        .await
        .unwrap();
    let reward = spec().base_reward_wei().unwrap();
    assert_eq!(books.paid, reward * U256::from(2 * ROUNDS), "{books:?}");
    // The restarts happened: three orchestrator logs after the first.
    for run in 1..=3 {
        assert!(m.log(&format!("orchestrator-{run}")).is_file());
    }
}
