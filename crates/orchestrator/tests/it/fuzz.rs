//! Generated requests against the served OpenAPI document: schemathesis
//! (from PyPI, in the virtual environment `tests/fuzz/setup.sh` makes)
//! sends every operation examples and fuzzed inputs, bounded in time, to a
//! live orchestrator on the dev chain with a job, and fails on any 5xx. The
//! server must still be healthy afterwards.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use funetun_client::Client;
use funetun_core::protocol::JobStatus;

use crate::common::{Env, tiny_spec, wait_status};

/// The schemathesis executable of the fuzz environment, if it was set up.
fn schemathesis() -> Option<PathBuf> {
    let path =
        PathBuf::from(std::env::var_os("HOME")?).join(".cache/funetun/venv-fuzz/bin/schemathesis");
    path.is_file().then_some(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_no_server_error() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis is missing: run `bash tests/fuzz/setup.sh` (scripts/setup.sh does)"
        );
        eprintln!("skipped: no schemathesis; run `bash tests/fuzz/setup.sh`");
        return;
    };
    let env = Env::new().await;
    let orch = funetun_orchestrator::start(env.config()).await.unwrap();
    let spec = tiny_spec(0.0);
    let owner = Client::new(&orch.url(), Some(env.keys[0].clone()));
    owner.put_spec(spec.to_toml().into_bytes()).await.unwrap();
    let job = env.create_job(&spec).await;
    wait_status(&owner, job, JobStatus::Active).await;

    let schema = format!("{}/openapi.json", orch.url());
    let report = env.dir.path().join("fuzz");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .arg("run")
            .arg(&schema)
            .args(["--checks", "not_a_server_error"])
            .args(["--max-time", "60", "--max-examples", "40", "--seed", "1"])
            .args(["--workers", "1", "--request-timeout", "10", "--no-shrink"])
            .args(["--suppress-health-check", "all"])
            .arg("--report-dir")
            .arg(&report)
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    // It did exercise the API (a run that tested nothing would also pass).
    assert!(text.contains("passed"), "{text}");
    // And the server is still fine.
    let health = reqwest::Client::new()
        .get(format!("{}/healthz", orch.url()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
