//! `funetun tasks example` and `funetun tasks run-local`: the shipped
//! examples run in the worker's sandbox; failures are classes with exit 2;
//! bad input is refused before anything runs.

use std::path::Path;

use crate::{funetun, last_json};

fn example(dir: &Path, name: &str) -> std::path::PathBuf {
    let out = dir.join(format!("{name}.wasm"));
    let done = funetun()
        .args(["tasks", "example", name, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    out
}

fn run_local(wasm: &Path, input: &str, extra: &[&str]) -> std::process::Output {
    funetun()
        .args(["tasks", "run-local", "--json", "--wasm"])
        .arg(wasm)
        .args(["--input", input])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_pi_example_runs_and_gives_the_same_digest_twice() {
    let dir = tempfile::tempdir().unwrap();
    let pi = example(dir.path(), "pi");
    let input = r#"{"samples": 100000, "seed": 7}"#;
    let first = run_local(&pi, input, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first = last_json(&first);
    let estimate = first["output"]["pi"].as_f64().expect("an output with pi");
    assert!((estimate - std::f64::consts::PI).abs() < 0.05, "{first}");
    let again = last_json(&run_local(&pi, input, &[]));
    assert_eq!(first["result_digest"], again["result_digest"]);
    assert_eq!(first["fuel_used"], again["fuel_used"]);

    // An existing file is left alone.
    let twice = funetun()
        .args(["tasks", "example", "pi", "--out"])
        .arg(&pi)
        .output()
        .unwrap();
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("left alone"));
}

#[test]
fn failures_are_classes_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let pi = example(dir.path(), "pi");
    let starved = run_local(
        &pi,
        r#"{"samples": 100000000, "seed": 1}"#,
        &["--fuel", "100000"],
    );
    assert_eq!(starved.status.code(), Some(2));
    assert_eq!(last_json(&starved)["error"], "fuel");

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not a module").unwrap();
    let invalid = run_local(&junk, "{}", &[]);
    assert_eq!(invalid.status.code(), Some(2));
    assert_eq!(last_json(&invalid)["error"], "invalid_module");
}

#[test]
fn bad_input_is_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let pi = example(dir.path(), "pi");
    let not_json = run_local(&pi, "{samples: 3", &[]);
    assert_eq!(not_json.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_json.stderr).contains("JSON"));
    assert!(not_json.stdout.is_empty());

    let unknown = funetun()
        .args(["tasks", "example", "nope"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("pi"));
}

#[test]
fn the_rounding_validator_judges_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let rounding = example(dir.path(), "rounding");
    let validator = example(dir.path(), "rounding-valid");
    let done = run_local(
        &rounding,
        r#"{"values": 1000, "seed": 3, "order": "backward"}"#,
        &["--validator-wasm", validator.to_str().unwrap()],
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(last_json(&done)["valid"], true);
}

/// Submitted from one process, run by two `funetun worker` processes, and
/// read by id from others after the submitter exited: the canonical
/// output is what `run-local` gives on this machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_submitted_by_one_process_is_run_by_workers_and_read_by_id_from_another() {
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let pi = example(dir.path(), "pi");
    let input = r#"{"samples": 50000, "seed": 11}"#;
    // Without drills: each worker runs exactly the one replica it is given.
    let (chain, keys, orchestrator, reader) = market(&dir, false).await;
    let url = orchestrator.url();
    let rpc = chain.rpc_url();
    let cli = |key: Option<usize>| {
        let mut cmd = funetun();
        cmd.env("FUNETUN_ORCHESTRATOR", &url)
            .env("FUNETUN_RPC", &rpc)
            .env_remove("FUNETUN_KEY");
        if let Some(i) = key {
            cmd.env("FUNETUN_KEY", crate::key_hex(&keys[i]));
        }
        cmd
    };

    // Settings that cannot be met are refused before anything is sent.
    let refused = cli(Some(0))
        .args(["tasks", "submit", "--input", input, "--min-quorum", "3"])
        .args(["--target-nresults", "2", "--wasm"])
        .arg(&pi)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("target_nresults"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // A deposit that cannot pay the task's most results is refused before
    // anything is funded.
    let refused = cli(Some(0))
        .args(["tasks", "submit", "--input", input, "--wasm"])
        .arg(&pi)
        .args(["--deposit", "0.001eth", "--reward", "0.001eth"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("cannot pay"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        reader.job_count().await.unwrap(),
        alloy_primitives::U256::ZERO
    );

    // Funded: a batch of 0.012 ETH pays 0.002 ETH per result.
    let submitted = cli(Some(0))
        .args(["tasks", "submit", "--json", "--input", input, "--wasm"])
        .arg(&pi)
        .args(["--deposit", "0.012eth"])
        .output()
        .unwrap();
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let id = last_json(&submitted)["task_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Open until workers run it: `result` without --wait exits 3.
    let open = cli(None).args(["tasks", "result", &id]).output().unwrap();
    assert_eq!(open.status.code(), Some(3));

    let workers: Vec<_> = [2, 3]
        .iter()
        .map(|&i| {
            let mut cmd = tokio::process::Command::from(cli(Some(i)));
            cmd.args(["worker", "--max-tasks", "1", "--poll-secs", "0.05"])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in workers {
        let status = tokio::time::timeout(Duration::from_secs(120), w.wait())
            .await
            .expect("a worker ran one replica and stopped")
            .unwrap();
        assert!(status.success());
    }

    let waited = tokio::task::spawn_blocking({
        let mut cmd = cli(None);
        let id = id.clone();
        move || {
            cmd.args(["tasks", "result", &id, "--wait", "--json"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let result = last_json(&waited);
    assert_eq!(result["status"], "done");
    let local = last_json(&run_local(&pi, input, &[]));
    let output: serde_json::Value =
        serde_json::from_str(result["result"]["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, local["output"]);
    assert_eq!(result["result"]["fuel_used"], local["fuel_used"]);

    let status = cli(None)
        .args(["tasks", "status", &id, "--json"])
        .output()
        .unwrap();
    let status = last_json(&status);
    let replicas = status["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2);
    for r in replicas {
        assert_eq!(r["status"], "valid");
        assert_eq!(r["digest"], local["result_digest"]);
    }
    // The leader pays both workers from the batch.
    let batch = last_json(&submitted)["batch"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = cli(None)
            .args(["tasks", "status", &id, "--json"])
            .output()
            .unwrap();
        let status = last_json(&status);
        if status["settled"] == true {
            assert_eq!(status["batch"], batch);
            assert!(status["settlement"].is_string());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never settled: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reward = alloy_primitives::U256::from(2_000_000_000_000_000u64);
    for i in [2, 3] {
        assert_eq!(
            reader.account(keys[i].address()).await.unwrap().credit,
            reward
        );
    }
    orchestrator.shutdown().await.unwrap();
}

/// A chain, its keys, an orchestrator (drilling its workers when `drills`)
/// and the owner's ledger.
async fn market(
    dir: &tempfile::TempDir,
    drills: bool,
) -> (
    funetun_chain::DevChain,
    Vec<alloy_signer_local::PrivateKeySigner>,
    funetun_orchestrator::Orchestrator,
    funetun_chain::Ledger,
) {
    use std::time::Duration;
    let (chain, keys, owner) = crate::chain_with_contract().await;
    let mut config =
        funetun_orchestrator::Config::new(chain.rpc_url(), owner.contract(), keys[1].clone());
    config.db_url = format!("sqlite://{}", dir.path().join("orchestrator.db").display());
    config.blobs = funetun_orchestrator::blobs::BlobLocation::Dir(dir.path().join("blobs"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.poll_interval = Duration::from_millis(50);
    config.offline = true;
    if !drills {
        config.drill_every = None;
    }
    let orchestrator = funetun_orchestrator::start(config).await.unwrap();
    for i in [2, 3] {
        owner
            .with_signer(keys[i].clone())
            .register_trainer(funetun_chain::ContractParams::default().min_stake)
            .await
            .unwrap();
    }
    (chain, keys, orchestrator, owner)
}

/// The Python client's environment (`python/setup.sh`), if it was set up.
fn client_python() -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from(std::env::var_os("HOME")?)
        .join(".cache/funetun/venv-client/bin/python");
    path.is_file().then_some(path)
}

/// The Python client's pytest suite (python/tests) against this
/// orchestrator and two `funetun worker` processes; the package also
/// builds as a wheel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_passes_its_tests_against_a_real_orchestrator() {
    let Some(python) = client_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the Python client's environment is missing: run `bash python/setup.sh` \
             (scripts/setup.sh does)"
        );
        eprintln!("skipped: no Python client environment; run `bash python/setup.sh`");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for name in ["pi", "rounding", "rounding-valid", "sweep"] {
        example(dir.path(), name);
    }
    let (chain, keys, orchestrator, _owner) = market(&dir, true).await;
    let url = orchestrator.url();
    let workers: Vec<_> = [2, 3]
        .iter()
        .map(|&i| {
            let mut cmd = tokio::process::Command::from(funetun());
            cmd.args(["worker", "--poll-secs", "0.05", "--orchestrator", &url])
                .env("FUNETUN_KEY", crate::key_hex(&keys[i]))
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap()
        })
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let pytest = tokio::process::Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "python/tests",
        ])
        .current_dir(&root)
        .env("PYTHONPATH", root.join("python/src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("FUNETUN_TEST_URL", &url)
        .env("FUNETUN_TEST_KEY", crate::key_hex(&keys[0]))
        .env("FUNETUN_TEST_RPC", chain.rpc_url())
        .env("FUNETUN_TEST_MODULES", dir.path())
        .output()
        .await
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&pytest.stdout),
        String::from_utf8_lossy(&pytest.stderr)
    );
    assert!(pytest.status.success(), "pytest failed:\n{report}");
    assert!(report.contains("6 passed"), "{report}");
    // The worker processes drilled on joining, checked each other's drill
    // and earned effective compute for it (docs/tasks.md, "Drilling").
    let client = funetun_client::Client::new(&url, None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let people = client.participants().await.unwrap();
        let drilled = [2, 3].iter().all(|&i| {
            people
                .iter()
                .any(|p| p.address == keys[i].address() && p.reputation > 0.0)
        });
        if drilled {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the workers earned no drilling points: {people:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(workers);
    orchestrator.shutdown().await.unwrap();

    // pip-installable: the package builds as a wheel (from a copy, since
    // setuptools writes its build files next to the sources).
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(pkg.join("src/funetun")).unwrap();
    for file in [
        "pyproject.toml",
        "README.md",
        "src/funetun/__init__.py",
        "src/funetun/client.py",
    ] {
        std::fs::copy(root.join("python").join(file), pkg.join(file)).unwrap();
    }
    let wheel = std::process::Command::new(&python)
        .args([
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
        ])
        .arg(dir.path().join("wheel"))
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(
        wheel.status.success(),
        "{}",
        String::from_utf8_lossy(&wheel.stderr)
    );
    let built: Vec<_> = std::fs::read_dir(dir.path().join("wheel"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        built
            .iter()
            .any(|n| n.starts_with("funetun-0.1.0") && n.ends_with(".whl")),
        "{built:?}"
    );
}

#[test]
fn the_tasks_demo_pays_the_honest_slashes_the_liar_and_contains_hostile_modules() {
    let dir = tempfile::tempdir().unwrap();
    let out = funetun()
        .args(["demo", "--preset", "tasks", "--json", "--out"])
        .arg(dir.path().join("demo"))
        .env_remove("FUNETUN_JSON")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = last_json(&out);
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    let wei = |v: &serde_json::Value| v.as_str().unwrap().parse::<u128>().unwrap();
    assert_eq!(n("tasks_completed"), n("tasks_submitted"), "{s}");
    assert_eq!(n("tasks_failed"), 0);
    assert!(n("wrong_results_rejected") >= 1, "{s}");
    assert_eq!(n("wrong_results_accepted"), 0);
    assert!(s["hostile_contained"].as_bool().unwrap(), "{s}");
    let classes: Vec<&str> = s["hostile"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["fuel", "memory", "output_size"]);
    // The sweep's points: the MLP trained by funetun-ml inside the sandbox,
    // agreed bit for bit; a good learning rate learns the synthetic set.
    let sweep = s["sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), 3, "{s}");
    let accuracy = |p: &serde_json::Value| p["val_accuracy"].as_f64().unwrap();
    assert!(
        sweep.iter().all(|p| (0.0..=1.0).contains(&accuracy(p))),
        "{s}"
    );
    assert!(sweep.iter().map(accuracy).fold(0.0, f64::max) > 0.8, "{s}");
    // Every agreed result was paid to an honest worker, and only the liar lost stake.
    let workers = s["workers"].as_array().unwrap();
    let paid: u128 = workers.iter().map(|w| wei(&w["credit_wei"])).sum();
    assert_eq!(paid, wei(&s["paid_wei"]));
    assert_eq!(
        paid,
        u128::from(n("results_agreed")) * 1_000_000_000_000_000
    );
    for w in workers {
        let liar = w["wrong_outputs"].as_bool().unwrap();
        assert_eq!(wei(&w["slashed_wei"]) > 0, liar, "{w}");
        assert_eq!(wei(&w["credit_wei"]) == 0, liar, "{w}");
        // Honest drills agreed and earned effective compute; the liar's
        // made-up drill earned nothing.
        let compute = w["effective_compute_ut"].as_f64().unwrap();
        assert_eq!(compute > 0.0, !liar, "{w}");
    }
    assert_eq!(
        workers.iter().map(|w| wei(&w["slashed_wei"])).sum::<u128>(),
        wei(&s["slashed_wei"])
    );
    assert!(n("gas_per_accepted_result") > 0);
}
