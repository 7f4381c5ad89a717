//! The market on PostgreSQL: the same demo job run with the orchestrator on
//! SQLite and on PostgreSQL ends on the same final checkpoint, which is the
//! one committed on-chain.

use serde_json::Value;

use crate::{dataset, funetun, json_of};

/// `funetun demo --json` into `out`, on `db` when given; its summary.
fn demo(out: &std::path::Path, db: Option<&str>) -> Value {
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
    json_of(&mut cmd)
}

#[test]
#[ignore = "needs FUNETUN_TEST_POSTGRES: the test command's PostgreSQL pass runs it"]
fn the_demo_on_postgres_ends_on_the_same_checkpoint_as_on_sqlite() {
    let server = std::env::var("FUNETUN_TEST_POSTGRES")
        .expect("FUNETUN_TEST_POSTGRES names a PostgreSQL server (scripts/services.sh up DIR)");
    let dir = tempfile::tempdir().unwrap();
    let lite = demo(&dir.path().join("sqlite"), None);
    let pg = demo(&dir.path().join("postgres"), Some(&server));
    assert_eq!(lite["database"], "sqlite");
    assert_eq!(pg["database"], "postgres");
    assert!(
        !dir.path().join("postgres/orchestrator.db").exists(),
        "no SQLite file when the database is PostgreSQL"
    );
    assert_eq!(pg["final_hash"], pg["onchain_final_hash"], "{pg}");
    assert_eq!(
        pg["final_hash"], lite["final_hash"],
        "the same job on either database"
    );
    for field in ["accuracy_per_round", "paid_wei", "slashed_wei"] {
        assert_eq!(pg[field], lite[field], "{field}");
    }
}
