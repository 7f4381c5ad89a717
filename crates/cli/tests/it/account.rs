//! A participant's account from the command line, against a real chain (the
//! embedded dev chain and anvil): `funetun account`, `leave`, `unstake` and
//! `withdraw`, keys from a file (hex or an encrypted keystore), the warning
//! for a key typed on the command line, and the contract's refusals in
//! words (`job withdraw` twice).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use alloy_primitives::{Address, U256, keccak256};
use funetun_chain::ledger::NewJob;
use funetun_chain::{DevChain, DevChainConfig, Ledger, LedgerConfig, dev_accounts};
use serde_json::Value;

use crate::demo::Anvil;
use crate::{funetun, last_json};

/// Seconds between `leave` and the stake unlocking, in the test's contract.
const COOLDOWN: u64 = 4;

/// A stake of 0.01 ETH, in wei.
fn stake() -> U256 {
    U256::from(10_000_000_000_000_000u64)
}

fn run<S: AsRef<std::ffi::OsStr>>(args: &[S], key_file: &Path) -> Output {
    funetun()
        .args(args)
        .arg("--key-file")
        .arg(key_file)
        .env_remove("FUNETUN_KEY")
        .output()
        .expect("the funetun binary runs")
}

fn ok(out: Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    last_json(&out)
}

/// The stderr of a command that must fail.
fn refused(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "succeeded: {stderr}");
    stderr
}

/// The whole lifecycle on the chain at `rpc`.
fn lifecycle(rpc: &str) {
    let dir = tempfile::tempdir().unwrap();
    let deployed = ok(funetun()
        .args(["deploy", "--rpc", rpc])
        .args(["--leave-cooldown", &COOLDOWN.to_string()])
        .env_remove("FUNETUN_KEY")
        .output()
        .unwrap());
    let contract: Address = deployed["address"].as_str().unwrap().parse().unwrap();
    let c = contract.to_string();
    let account = dev_accounts(4)[3].clone();
    let key_file = dir.path().join("key.hex");
    std::fs::write(
        &key_file,
        format!(
            "0x{}\n",
            alloy_primitives::hex::encode(account.signer().to_bytes())
        ),
    )
    .unwrap();
    let on = |cmd: &'static str| -> Vec<String> {
        [cmd, "--rpc", rpc, "--contract", &c, "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let show = || ok(run(&on("account"), &key_file));

    // A fresh account: money, no role, nothing to leave.
    let fresh = show();
    assert_eq!(fresh["address"], account.address.to_string().to_lowercase());
    assert_eq!(fresh["stake_wei"], "0", "{fresh}");
    assert_eq!(fresh["roles"], serde_json::json!([]), "{fresh}");
    assert!(fresh["balance_wei"].as_str().unwrap().len() > 18, "{fresh}");
    let nothing = refused(run(&on("leave"), &key_file));
    assert!(
        nothing.contains("NotRegistered") && nothing.contains("nothing to leave"),
        "{nothing}"
    );

    // Staked as a trainer (what `funetun trainer` does when it starts).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ledger = Ledger::connect(rpc, contract, account.signer(), LedgerConfig::default())
            .await
            .unwrap();
        ledger.register_trainer(stake()).await.unwrap();
    });
    let staked = show();
    assert_eq!(staked["stake_wei"], stake().to_string(), "{staked}");
    assert_eq!(staked["roles"], serde_json::json!(["trainer"]), "{staked}");
    assert_eq!(staked["unlock_at"], Value::Null, "{staked}");

    // The stake comes back only after leave and the cooldown.
    let early = refused(run(&on("unstake"), &key_file));
    assert!(
        early.contains("has not asked to leave") && early.contains("funetun leave"),
        "{early}"
    );
    let leave_out = run(&on("leave"), &key_file);
    let leave_err = String::from_utf8_lossy(&leave_out.stderr).to_string();
    let left = ok(leave_out);
    assert!(left["unlock_at"].as_u64().unwrap() > 0, "{left}");
    assert!(leave_err.contains("funetun unstake"), "{leave_err}");
    let leaving = show();
    assert_eq!(leaving["roles"], serde_json::json!([]), "{leaving}");
    assert_eq!(leaving["unlock_at"], left["unlock_at"], "{leaving}");
    assert_eq!(leaving["stake_wei"], stake().to_string(), "{leaving}");
    let locked = refused(run(&on("unstake"), &key_file));
    assert!(
        locked.contains("StakeLocked") && locked.contains("still locked"),
        "{locked}"
    );
    std::thread::sleep(Duration::from_secs(COOLDOWN + 1));
    let unstaked = ok(run(&on("unstake"), &key_file));
    assert_eq!(unstaked["amount_wei"], stake().to_string(), "{unstaked}");
    let after = show();
    assert_eq!(after["stake_wei"], "0", "{after}");
    assert_eq!(after["unlock_at"], Value::Null, "{after}");
    let gained = |a: &Value, b: &Value| {
        let n = |v: &Value| v["balance_wei"].as_str().unwrap().parse::<U256>().unwrap();
        n(b).saturating_sub(n(a))
    };
    // The stake is back, less the gas of two transactions.
    assert!(
        gained(&leaving, &after) > stake() * U256::from(9u64) / U256::from(10u64),
        "{leaving} → {after}"
    );

    // No credits: said in words.
    let none = refused(run(&on("withdraw"), &key_file));
    assert!(
        none.contains("has no credits to withdraw") && none.contains("funetun account"),
        "{none}"
    );

    // A job's owner withdraws its unused deposit once; the second time the
    // contract's refusal reads as words, not as a raw error name.
    let job = rt.block_on(async {
        let ledger = Ledger::connect(rpc, contract, account.signer(), LedgerConfig::default())
            .await
            .unwrap();
        let (id, _) = ledger
            .create_job(&NewJob {
                spec_hash: keccak256(b"account test"),
                leader: dev_accounts(2)[1].address,
                base_reward: U256::from(1_000_000_000_000_000u64),
                bonus_reward: U256::ZERO,
                validation_reward: U256::ZERO,
                rounds: 1,
                quorum: 1,
                challenge_window: 60,
                deposit: stake(),
            })
            .await
            .unwrap();
        id.to_string()
    });
    let withdraw_job = || {
        run(
            &["job", "withdraw", &job, "--rpc", rpc, "--contract", &c],
            &key_file,
        )
    };
    let first = withdraw_job();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = refused(withdraw_job());
    assert!(
        second.contains("nothing to withdraw") && second.contains("withdrawn already"),
        "{second}"
    );
    assert!(
        !second.contains("NothingToWithdraw(NothingToWithdraw"),
        "{second}"
    );

    // A typed --key on a dev chain is not warned about.
    let typed = funetun()
        .args(["account", "--rpc", rpc, "--contract", &c])
        .args(["--key", &account_hex(&account)])
        .env_remove("FUNETUN_KEY")
        .output()
        .unwrap();
    assert!(typed.status.success());
    assert!(
        !String::from_utf8_lossy(&typed.stderr).contains("visible to every user"),
        "{}",
        String::from_utf8_lossy(&typed.stderr)
    );
}

fn account_hex(account: &funetun_chain::DevAccount) -> String {
    format!(
        "0x{}",
        alloy_primitives::hex::encode(account.signer().to_bytes())
    )
}

#[test]
fn account_leave_and_unstake_on_the_embedded_chain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let chain = rt
        .block_on(DevChain::start(DevChainConfig::default()))
        .unwrap();
    lifecycle(&chain.rpc_url());
    drop(chain);
}

#[test]
fn account_leave_and_unstake_on_anvil() {
    let Some(anvil) = Anvil::start() else {
        return;
    };
    lifecycle(&anvil.url);
}

/// Keys from an encrypted keystore, and a typed `--key` on a chain that is
/// not a dev chain.
#[test]
fn keystores_and_the_typed_key_warning() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "correct horse battery\n").unwrap();
    let created = ok(funetun()
        .args(["keys", "new", "--keystore"])
        .arg(dir.path().join("keys"))
        .arg("--password-file")
        .arg(&password)
        .output()
        .unwrap());
    let path = created["keystore"].as_str().unwrap().to_string();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\"crypto\""),
        "standard keystore JSON: {text}"
    );
    assert!(!text.contains("private_key"), "{text}");
    let address = ok(funetun()
        .args(["keys", "address", "--key-file", &path])
        .env("FUNETUN_KEY_PASSWORD", "correct horse battery")
        .output()
        .unwrap());
    assert_eq!(address["address"], created["address"]);
    let no_password = refused(
        funetun()
            .args(["keys", "address", "--key-file", &path])
            .env_remove("FUNETUN_KEY_PASSWORD")
            .env_remove("FUNETUN_KEY_PASSWORD_FILE")
            .output()
            .unwrap(),
    );
    assert!(
        no_password.contains("FUNETUN_KEY_PASSWORD"),
        "{no_password}"
    );
    let wrong = refused(
        funetun()
            .args(["keys", "address", "--key-file", &path])
            .env("FUNETUN_KEY_PASSWORD", "wrong")
            .output()
            .unwrap(),
    );
    assert!(wrong.contains("could not decrypt the keystore"), "{wrong}");

    // A chain with another id, as a testnet would have: a typed key is
    // warned about before anything is signed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let chain = rt
        .block_on(DevChain::start(DevChainConfig {
            chain_id: 11_155_111,
            ..DevChainConfig::default()
        }))
        .unwrap();
    let rpc = chain.rpc_url();
    let out = funetun()
        .args(["leave", "--rpc", &rpc, "--contract"])
        .arg(Address::repeat_byte(0x11).to_string())
        .args(["--key", &account_hex(&dev_accounts(1)[0])])
        .env_remove("FUNETUN_KEY")
        .output()
        .unwrap();
    let stderr = refused(out);
    assert!(
        stderr.contains("visible to every user") && stderr.contains("--key-file"),
        "{stderr}"
    );
}

/// `funetun gc` prunes a participant's blob cache: blobs unused for an
/// hour, then down to `--max-mb`; a directory that is no cache is refused.
#[test]
fn gc_prunes_idle_blobs_and_refuses_a_directory_that_is_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = funetun_core::blobs::BlobDir::open(dir.path().join("blobs")).unwrap();
    let now = std::time::SystemTime::now();
    let mut hashes = Vec::new();
    for (i, age_secs) in [7_200u64, 60, 0].into_iter().enumerate() {
        let bytes = vec![i as u8; 1_000];
        let hash = funetun_core::keccak256(&bytes);
        blobs.put(hash, &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(blobs.path(hash))
            .unwrap()
            .set_modified(now - Duration::from_secs(age_secs))
            .unwrap();
        hashes.push(hash);
    }
    let gc = |extra: &[&str]| {
        funetun()
            .arg("gc")
            .arg("--cache-dir")
            .arg(dir.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let out = gc(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pruned = last_json(&out);
    assert_eq!(
        (pruned["removed"].as_u64(), pruned["kept"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(!blobs.contains(hashes[0]) && blobs.contains(hashes[1]));
    let pruned = last_json(&gc(&["--max-mb", "0"]));
    assert_eq!(pruned["removed"].as_u64(), Some(2));
    assert_eq!(pruned["kept_bytes"].as_u64(), Some(0));

    let empty = tempfile::tempdir().unwrap();
    let out = funetun()
        .arg("gc")
        .arg("--cache-dir")
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a participant's blob cache"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
