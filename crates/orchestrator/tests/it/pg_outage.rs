//! PostgreSQL stopped for 20 s under a running job served by two replicas:
//! every request that needs the database is answered 503
//! `database_unavailable` in the API's JSON shape by either replica (a
//! client given both tries both), `/healthz` names the database, and when
//! the server comes back on its data directory the replicas recover without
//! a restart, one of them leads again, the job goes on and nothing stored
//! before the outage is lost.
//!
//! The test runs its own throw-away cluster (`scripts/services.sh`), since
//! it stops it; the test command's PostgreSQL pass runs it.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use funetun_client::{Client, ClientError};
use funetun_orchestrator::store::fresh_postgres_database;

use crate::common::{
    Env, Services, services, synthetic, tiny_spec, train_until_leased, wait_first_round_closed,
};

const OUTAGE: Duration = Duration::from_secs(20);
const GUARD: Duration = Duration::from_secs(90);

async fn status_and_body(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops a PostgreSQL server of its own: the test command's PostgreSQL pass runs it"]
async fn a_postgres_outage_is_answered_503_and_the_job_goes_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    // As root the server runs as `postgres`, which must reach its directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let svc = dir.path().join("services");
    let lines = services("up", &svc, "postgres");
    let cluster = Services(svc.clone());
    let server = lines
        .lines()
        .find_map(|l| l.strip_prefix("FUNETUN_DB="))
        .unwrap_or_else(|| panic!("no FUNETUN_DB line in {lines:?}"))
        .to_string();

    let env = Env::new().await;
    let mut config = env.config();
    config.db_url = fresh_postgres_database(&server, "outage").await.unwrap();
    let mut replicas = Vec::new();
    for name in ["a", "b"] {
        let mut config = config.clone();
        config.replica = name.into();
        replicas.push(funetun_orchestrator::start(config).await.unwrap());
    }
    let urls: Vec<String> = replicas.iter().map(|o| o.url()).collect();
    let url = urls[0].clone();
    let owner = Client::new(&url, Some(env.keys[0].clone()));
    owner
        .put_spec(tiny_spec(0.0).to_toml().into_bytes())
        .await
        .unwrap();
    let job = env.create_job(&tiny_spec(0.0)).await;
    env.register_trainer(2).await;
    env.register_trainer(3).await;
    let data = synthetic();
    let deadline = tokio::time::Instant::now() + GUARD;
    let first = Client::new(&url, Some(env.keys[2].clone()));
    let trained = train_until_leased(&first, &env.ledger(2), job, &data, deadline).await;

    // The server stops: reads, signed writes and health all say so.
    services("down", &svc, "");
    let stopped = tokio::time::Instant::now();
    for url in &urls {
        let (status, body) = status_and_body(&format!("{url}/v1/jobs")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("database_unavailable")),
            "{url}: {body}"
        );
    }
    // A trainer that knows both replicas tries both, and is told why.
    let second = Client::new(&urls.join(","), Some(env.keys[3].clone()));
    match second.lease_task(&crate::common::lease_request(job)).await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (503, "database_unavailable"));
        }
        other => panic!("a lease during the outage: {other:?}"),
    }
    let (status, health) = status_and_body(&format!("{url}/healthz")).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["database"]["ok"], false, "{health}");
    tokio::time::sleep(OUTAGE.saturating_sub(stopped.elapsed())).await;

    // It comes back on its data directory and port.
    services("up", &svc, "postgres");
    for url in &urls {
        loop {
            let (status, health) = status_and_body(&format!("{url}/healthz")).await;
            if status == 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline + OUTAGE,
                "{url}: health never recovered: {health}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // What was stored before is there; the job takes the second update and
    // closes its first round.
    let updates = owner.updates(job).await.unwrap();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].task_id, trained.task_id);
    let deadline = tokio::time::Instant::now() + GUARD;
    train_until_leased(&second, &env.ledger(3), job, &data, deadline).await;
    wait_first_round_closed(&owner, job, deadline).await;
    // The round was closed by a leader elected after the outage; one leads.
    let mut leading = 0;
    for url in &urls {
        let (_, health) = status_and_body(&format!("{url}/healthz")).await;
        leading += usize::from(health["leading"] == true);
    }
    assert_eq!(leading, 1, "one replica leads after the outage");
    for replica in replicas {
        replica.shutdown().await.unwrap();
    }
    drop(cluster);
}
