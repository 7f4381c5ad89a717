//! End-to-end tests of the `funetun` binary, in one test binary.

mod account;
mod adversarial;
mod browser_e2e;
mod crash;
mod demo;
mod fairness;
mod hf;
mod ml;
mod outage;
mod owner_data;
mod readme;
mod stale;
mod text;
mod trainer_restart;
mod verify;

use std::process::{Command, Output};

/// The binary under test.
pub fn funetun() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_funetun"));
    cmd.env("FUNETUN_LOG", "warn");
    cmd
}

/// The data set tests train on: MNIST when `FUNETUN_DATA_DIR` is set, else synthetic.
pub fn dataset() -> &'static str {
    if std::env::var_os("FUNETUN_DATA_DIR").is_some() {
        "mnist"
    } else {
        "synthetic"
    }
}

/// Runs a command, requiring success, and parses its last stdout line as JSON.
pub fn json_of(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("the funetun binary runs");
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    last_json(&out)
}

/// The last stdout line of `out`, parsed as JSON.
pub fn last_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("last stdout line `{line}` is not JSON: {e}"))
}
