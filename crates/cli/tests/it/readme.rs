//! The README's worked example ("Every role by hand"), run from its own
//! text: the first `sh` block under that heading, extracted from README.md
//! and run by `bash -e` from the repository root, with this build's binary
//! as `FUNETUN`. So the example cannot rot: a command or flag it uses that
//! stops working fails this test.
//!
//! Real parts throughout: anvil, the orchestrator, two trainers and a
//! validator as processes, MNIST from `FUNETUN_DATA_DIR`.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A guard against a wedged process, not a performance assertion.
const HANG_GUARD: Duration = Duration::from_secs(900);

/// The heading the example sits under.
const HEADING: &str = "## Every role by hand";

fn repo() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../..")
}

/// The first ```sh block after `heading` in `markdown`.
fn first_sh_block(markdown: &str, heading: &str) -> Option<String> {
    let rest = &markdown[markdown.find(heading)?..];
    let start = rest.find("```sh\n")? + "```sh\n".len();
    let body = &rest[start..];
    Some(body[..body.find("\n```")?].to_string() + "\n")
}

/// The example binds fixed ports (8545, 8080): one run at a time.
static PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether the example can run here (anvil installed, MNIST at hand);
/// under CI it must.
fn can_run() -> bool {
    let anvil = repo().join("contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if anvil.exists() && std::env::var_os("FUNETUN_DATA_DIR").is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "under CI the README example needs anvil (scripts/setup.sh) and FUNETUN_DATA_DIR"
    );
    eprintln!(
        "\n!!!!! SKIPPING the README example: it needs anvil (scripts/setup.sh) and \
         FUNETUN_DATA_DIR with MNIST !!!!!\n"
    );
    false
}

/// Runs `script` with `bash -e` from the repository root, this build's
/// binary as `FUNETUN` and `env` on top; its stdout, stderr and a text to
/// show when an assertion fails.
fn run_script(script: &str, env: &[(&str, &std::ffi::OsStr)]) -> (String, String, String) {
    let _one = PORTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut cmd = Command::new("bash");
    cmd.arg("-ec")
        .arg(script)
        .current_dir(repo())
        .env("FUNETUN", env!("CARGO_BIN_EXE_funetun"))
        .env_remove("FUNETUN_KEY")
        .env_remove("FUNETUN_LOG")
        .env_remove("FUNETUN_JSON")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a hang is cleaned up whole.
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("bash runs");
    let pgid = child.id().to_string();
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).ok();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > HANG_GUARD {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Whatever the script left behind (it should have stopped everything).
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status();
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let shown = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    let status = status.unwrap_or_else(|| panic!("the example hangs:\n{shown}"));
    assert!(status.success(), "the example failed ({status}):\n{shown}");
    (stdout, stderr, shown)
}

fn example() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    first_sh_block(&readme, HEADING).expect("the README has the worked example")
}

#[test]
fn the_readme_worked_example_runs_as_written() {
    if !can_run() {
        return;
    }
    let script = example();
    assert!(script.contains("job status 1 --wait"), "{script}");
    let (stdout, stderr, shown) = run_script(&script, &[]);

    // What a reader is told it does, it did.
    for said in [
        "round 3 closed",
        "finished",
        "matches the chain",
        "from job 1",
        "withdrew",
        "stake     0.01 ETH (trainer)",
    ] {
        assert!(stderr.contains(said), "no `{said}`:\n{shown}");
    }
    assert!(
        stdout.contains("7 aggregation") && stdout.contains("PASS: all 7 checks passed"),
        "verify-chain:\n{shown}"
    );
}

/// The same example on a machine without the data set: every process is
/// told where to look (an empty directory) and not to download. The owner's
/// `job status`, a while after the job was created, names the cause.
#[test]
fn the_readme_example_without_its_data_says_why_it_stalls() {
    if !can_run() {
        return;
    }
    let script = example();
    let upto = script
        .find("$FUNETUN job status 1 --wait")
        .expect("the example waits on the job");
    // The example up to the job's creation, then the owner looks after
    // the lease time (30 s) and the stall threshold (30 s).
    let script = format!("{}sleep 65\n$FUNETUN job status 1\n", &script[..upto]);
    let empty = tempfile::tempdir().unwrap();
    let (_, stderr, shown) = run_script(
        &script,
        &[
            ("FUNETUN_DATA_DIR", empty.path().as_os_str()),
            ("XDG_CACHE_HOME", empty.path().as_os_str()),
            ("FUNETUN_OFFLINE", std::ffi::OsStr::new("true")),
        ],
    );
    assert!(stderr.contains("round 0/4"), "{shown}");
    // The trainer reported why it gave its tasks up; job status quotes it.
    assert!(
        stderr.contains("gave up")
            && stderr.contains("mnist not found")
            && stderr.contains("FUNETUN_DATA_DIR"),
        "job status does not name the cause:\n{shown}"
    );
}

#[test]
fn the_example_block_is_found_by_its_heading() {
    let md =
        "# x\n```sh\nno\n```\n## Every role by hand: yes\ntext\n```sh\na\nb\n```\n```sh\nc\n```\n";
    assert_eq!(first_sh_block(md, HEADING).as_deref(), Some("a\nb\n"));
    assert_eq!(first_sh_block("nothing here", HEADING), None);
}
