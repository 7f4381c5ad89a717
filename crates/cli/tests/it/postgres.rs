//! The market on PostgreSQL and an S3 bucket: the same demo job run with
//! the orchestrator on SQLite and a blob directory, and on PostgreSQL and
//! Garage (participants downloading through presigned URLs), ends on the
//! same final checkpoint, which is the one committed on-chain.

use serde_json::Value;

use crate::{dataset, funetun, json_of};

/// `funetun demo --json` into `out`, on `db` and `blobs` when given; its
/// summary.
fn demo(out: &std::path::Path, db: Option<&str>, blobs: Option<&str>) -> Value {
    let mut cmd = funetun();
    cmd.args(["demo", "--json", "--offline", "--dataset", dataset()])
        .args(["--rounds", "2", "--steps", "100", "--seed", "7"])
        .args(["--trainers", "2", "--validators", "1"])
        .arg("--out")
        .arg(out)
        .env_remove("FUNETUN_RPC")
        .stdin(std::process::Stdio::null());
    if let Some(db) = db {
        cmd.args(["--db", db]);
    }
    if let Some(blobs) = blobs {
        // Participants fetch checkpoints from the bucket through presigned
        // URLs, not through the orchestrator.
        cmd.args(["--blobs", blobs, "--s3-redirect"]);
    }
    json_of(&mut cmd)
}

#[test]
#[ignore = "needs FUNETUN_TEST_POSTGRES and FUNETUN_TEST_BLOBS: the test command's second pass runs it"]
fn the_demo_on_postgres_and_s3_ends_on_the_same_checkpoint_as_on_sqlite() {
    let server = std::env::var("FUNETUN_TEST_POSTGRES")
        .expect("FUNETUN_TEST_POSTGRES names a PostgreSQL server (scripts/services.sh up DIR)");
    let bucket = std::env::var("FUNETUN_TEST_BLOBS").expect(
        "FUNETUN_TEST_BLOBS names an S3 bucket, reached through the AWS_* variables \
         (scripts/services.sh up DIR)",
    );
    let dir = tempfile::tempdir().unwrap();
    let lite = demo(&dir.path().join("sqlite"), None, None);
    let pg = demo(&dir.path().join("postgres"), Some(&server), Some(&bucket));
    assert_eq!(lite["database"], "sqlite");
    assert_eq!(pg["database"], "postgres");
    assert!(
        lite["blobs"].as_str().unwrap().ends_with("blobs"),
        "{}",
        lite["blobs"]
    );
    let blobs = pg["blobs"].as_str().unwrap();
    assert!(
        blobs.starts_with(&format!("{bucket}/demo-")),
        "a folder of its own in the bucket: {blobs}"
    );
    for local in ["orchestrator.db", "blobs"] {
        assert!(
            !dir.path().join("postgres").join(local).exists(),
            "no {local} in the output directory on PostgreSQL and S3"
        );
    }
    assert_eq!(pg["final_hash"], pg["onchain_final_hash"], "{pg}");
    assert_eq!(
        pg["final_hash"], lite["final_hash"],
        "the same job on either database and blob store"
    );
    // Training pays the same; how many updates a validator replays (and
    // is paid for) depends on timing (a trainer's record when it reports).
    for field in [
        "accuracy_per_round",
        "updates_accepted",
        "updates_rejected",
        "slashed_wei",
    ] {
        assert_eq!(pg[field], lite[field], "{field}");
    }
    let trainers_paid = |s: &Value| -> Vec<Value> {
        s["participants"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["role"] == "trainer")
            .map(|p| p["paid_wei"].clone())
            .collect()
    };
    assert_eq!(trainers_paid(&pg), trainers_paid(&lite));
    for s in [&pg, &lite] {
        assert_eq!(s["conservation_holds"], true, "{s}");
    }
}
