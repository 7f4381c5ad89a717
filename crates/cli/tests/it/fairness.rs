//! One bad job does not stall the market. Two jobs on one orchestrator: job 1
//! trains on Fashion-MNIST, job 2 (created later) on MNIST. A trainer and a
//! validator whose machine has only MNIST (an offline data directory without
//! Fashion-MNIST) run with no `--job`: they fail on job 1, say why, set it
//! aside and do job 2, which finishes. A second trainer that has both data
//! sets works on job 1 only, so job 1 has updates the validator cannot
//! check. Everything is real: the chain, the contract, the orchestrator (in
//! this process, over HTTP) and the `funetun` binaries.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use alloy_primitives::U256;
use alloy_signer_local::PrivateKeySigner;
use funetun_client::Client;
use funetun_core::JobSpec;
use funetun_core::protocol::JobStatus;

use crate::{chain_with_contract, create_job, key_hex, log_of, tiny_mlp_spec};

/// A guard against a wedged run, not a performance assertion.
const HANG_GUARD: Duration = Duration::from_secs(300);

fn spec(name: &str, dataset: &str) -> JobSpec {
    let mut spec = JobSpec {
        seed: 5,
        dataset: dataset.parse().unwrap(),
        ..tiny_mlp_spec(name)
    };
    // Every update is checked: job 2 needs the validator's vote.
    spec.validation.replay_prob = 1.0;
    spec.validation.replay_floor = 1.0;
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_this_machine_cannot_do_does_not_stall_the_others() {
    let Some(shared) = std::env::var_os("FUNETUN_DATA_DIR") else {
        eprintln!("skipped: FUNETUN_DATA_DIR is not set (MNIST and Fashion-MNIST are needed)");
        return;
    };
    let shared = std::path::PathBuf::from(shared);
    let (chain, keys, owner) = chain_with_contract().await;
    let rpc = chain.rpc_url();
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        funetun_orchestrator::Config::new(rpc.clone(), owner.contract(), keys[1].clone());
    config.db_url = format!("sqlite://{}", dir.path().join("orchestrator.db").display());
    config.blobs = funetun_orchestrator::blobs::BlobLocation::Dir(dir.path().join("blobs"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.poll_interval = Duration::from_millis(50);
    config.offline = true;
    let orchestrator = funetun_orchestrator::start(config).await.unwrap();
    let url = orchestrator.url();
    let client = Client::new(&url, Some(keys[0].clone()));
    for (id, spec) in [
        (1u64, spec("fashion", "fashion-mnist")),
        (2, spec("digits", "mnist")),
    ] {
        let spec_hash = client.put_spec(spec.to_toml().into_bytes()).await.unwrap();
        let job = create_job(
            &owner,
            &spec,
            spec_hash,
            orchestrator.address(),
            spec.validation_reward_wei().unwrap(),
        )
        .await;
        assert_eq!(job, U256::from(id));
    }

    // The machine with MNIST only: its data directory holds nothing else,
    // and it may not download.
    let mnist_only = dir.path().join("mnist-only");
    std::fs::create_dir_all(&mnist_only).unwrap();
    std::os::unix::fs::symlink(shared.join("mnist"), mnist_only.join("mnist")).unwrap();
    let empty_cache = dir.path().join("empty-cache");
    std::fs::create_dir_all(&empty_cache).unwrap();
    let spawn = |role: &str, key: &PrivateKeySigner, data: &Path, extra: &[&str], log: &Path| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_funetun"));
        cmd.arg(role)
            .args(["--orchestrator", &url, "--rpc", &rpc])
            .args(["--contract", &owner.contract().to_string()])
            .args(["--threads", "1", "--poll-secs", "0.05", "--offline"])
            .args(extra)
            .arg("--cache-dir")
            .arg(dir.path().join(format!("cache-{}", key.address())))
            .env("FUNETUN_KEY", key_hex(key))
            .env("FUNETUN_DATA_DIR", data)
            .env("XDG_CACHE_HOME", &empty_cache)
            .env("FUNETUN_LOG", "info")
            .env_remove("FUNETUN_JSON")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .kill_on_drop(true);
        cmd.spawn().unwrap()
    };
    let logs = dir.path();
    let (t_log, v_log, b_log) = (
        logs.join("trainer.log"),
        logs.join("validator.log"),
        logs.join("both.log"),
    );
    // Both jobs started, so each participant meets job 1 as a job with work.
    let reader = Client::new(&url, None);
    let started = std::time::Instant::now();
    while !reader.jobs().await.is_ok_and(|jobs| {
        jobs.iter()
            .filter(|j| j.status == JobStatus::Active)
            .count()
            == 2
    }) {
        assert!(started.elapsed() < HANG_GUARD, "the jobs never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let set_aside = |log: &Path| {
        let text = log_of(log);
        text.contains("work on job 1 failed here") && text.contains("fashion-mnist not found")
    };
    let _trainer = spawn("trainer", &keys[2], &mnist_only, &[], &t_log);
    let _validator = spawn("validator", &keys[5], &mnist_only, &[], &v_log);
    // The trainer with both data sets starts once the MNIST-only one was
    // handed job 1's task and set the job aside (job 1 has one shard: had it
    // leased first, the MNIST-only trainer would never be handed job 1).
    let started = std::time::Instant::now();
    while !set_aside(&t_log) {
        assert!(
            started.elapsed() < HANG_GUARD,
            "the MNIST-only trainer never set job 1 aside:\n{}",
            log_of(&t_log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _both = spawn("trainer", &keys[3], &shared, &["--job", "1"], &b_log);

    // Job 2 finishes, and each MNIST-only participant has met job 1 (the
    // order depends on timing: job 1 may not have started when they first
    // looked, and the validator meets it once the other trainer's update is
    // in) and said why it set it aside.
    let started = std::time::Instant::now();
    loop {
        let jobs = reader.jobs().await.unwrap();
        if jobs
            .iter()
            .any(|j| j.job_id == 2 && j.status == JobStatus::Finished)
            && set_aside(&t_log)
            && set_aside(&v_log)
        {
            break;
        }
        assert!(
            started.elapsed() < HANG_GUARD,
            "job 2 did not finish or job 1 was not set aside: {jobs:?}\n--- trainer\n{}\n--- validator\n{}\n--- both\n{}",
            log_of(&t_log),
            log_of(&v_log),
            log_of(&b_log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Job 2's update came from the MNIST-only trainer, and its vote from the
    // MNIST-only validator.
    let updates = reader.updates(2).await.unwrap();
    assert!(
        updates.iter().any(|u| u.trainer == keys[2].address()
            && u.votes.iter().any(|v| v.validator == keys[5].address())),
        "{updates:?}"
    );
    // The trainer also told the owner why.
    let started = std::time::Instant::now();
    loop {
        let failures = reader.failures(1).await.unwrap();
        if failures
            .iter()
            .any(|f| f.trainer == keys[2].address() && f.reason.contains("fashion-mnist not found"))
        {
            break;
        }
        assert!(started.elapsed() < HANG_GUARD, "{failures:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
