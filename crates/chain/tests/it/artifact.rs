//! The committed artifact must match the contract source.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../..")
}

#[test]
fn artifact_embeds_the_current_source() {
    let source = std::fs::read_to_string(root().join("contracts/JobManager.sol")).unwrap();
    let artifact: serde_json::Value =
        serde_json::from_str(funetun_chain::bindings::ARTIFACT_JSON).unwrap();
    assert_eq!(
        artifact["source"].as_str().unwrap(),
        source,
        "contracts/out/JobManager.json is stale: run `node contracts/compile.js`"
    );
    assert_eq!(artifact["compiler"]["settings"]["evmVersion"], "prague");
}

#[test]
fn artifact_matches_a_fresh_compile() {
    let solc = root().join("contracts/node_modules/solc");
    if !solc.exists() || Command::new("node").arg("--version").output().is_err() {
        eprintln!(
            "\n!!!!! SKIPPING the artifact recompile check: solc-js is not installed; run scripts/setup.sh !!!!!\n"
        );
        return;
    }
    let out = Command::new("node")
        .arg(root().join("contracts/compile.js"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "contracts/out is stale against the source (run `node contracts/compile.js`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
