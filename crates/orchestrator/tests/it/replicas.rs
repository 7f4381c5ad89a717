//! Replicas on one database: the lease row elects one leader, a new term
//! fences the old one's writes out, nonces are shared, and when the leader
//! dies another replica takes over and the job finishes.

use std::time::{Duration, Instant};

use funetun_client::Client;
use funetun_core::protocol::JobStatus;
use funetun_orchestrator::Error;
use funetun_orchestrator::store::{Store, fenced, jobs::JobStatus as StoredStatus};

use crate::common::{
    Env, POSTGRES_VAR, db_url, lease_request, synthetic, tiny_spec, trainer_turn,
    wait_first_round_closed, wait_status,
};

#[tokio::test]
async fn one_holder_at_a_time_and_a_new_term_fences_the_old_one_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_url(dir.path()).await).await.unwrap();
    assert_eq!(store.campaign("a/1", 60_000, false).await.unwrap(), Some(1));
    // Renewing keeps the term; another replica is refused while it lasts.
    assert_eq!(store.campaign("a/1", 60_000, false).await.unwrap(), Some(1));
    assert_eq!(store.campaign("b/2", 60_000, false).await.unwrap(), None);
    // `a` is paused past its lease: it lapses and `b` starts term 2.
    assert_eq!(store.campaign("a/1", 0, false).await.unwrap(), Some(1));
    assert_eq!(store.campaign("b/2", 60_000, false).await.unwrap(), Some(2));
    assert_eq!(store.lease().await.unwrap().unwrap().holder, "b/2");

    // `a` wakes up: every write of its term is refused, through a
    // transaction or a single statement, and nothing it wrote lands.
    let err = fenced(1, store.begin()).await.unwrap_err();
    assert!(matches!(err, Error::Deposed(_)), "{err}");
    let err = fenced(1, store.set_job_status(7, StoredStatus::Finished))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Deposed(_)), "{err}");
    assert!(
        store
            .campaign("a/1", 60_000, false)
            .await
            .unwrap()
            .is_none()
    );
    // The current term writes.
    let tx = fenced(2, store.begin()).await.unwrap();
    tx.rollback().await.unwrap();

    // A clean stop hands over at once; seizing (a SQLite orchestrator's
    // start) takes the lease whoever holds it, in a new term.
    store.resign("b/2").await.unwrap();
    assert_eq!(store.campaign("c/3", 60_000, false).await.unwrap(), Some(3));
    assert_eq!(store.campaign("d/4", 60_000, true).await.unwrap(), Some(4));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: the test command's PostgreSQL pass runs it"]
async fn requests_checked_together_get_the_answers_one_at_a_time_would() {
    use funetun_orchestrator::store::nonces::{Admission, Bucket, Check};
    require_postgres();
    let dir = tempfile::tempdir().unwrap();
    let url = db_url(dir.path()).await;
    // Two stores on one database: two replicas' admitters.
    let stores = [
        Store::open(&url).await.unwrap(),
        Store::open(&url).await.unwrap(),
    ];
    let now = funetun_orchestrator::util::now_secs();
    let now_ms = now * 1000;
    let roomy = Bucket {
        rate: 1000.0,
        burst: 1000.0,
    };
    let address = |i: u8| alloy_primitives::Address::repeat_byte(i + 1);

    // 20 addresses, each sending nonce `a` twice (once per replica) and
    // nonce `b` once, all at the same moment: per address exactly one `a`
    // is admitted and the other is a replay, and `b` is admitted.
    let mut calls = Vec::new();
    for i in 0..20u8 {
        for (n, nonce) in ["nonce-a-000", "nonce-a-000", "nonce-b-000"]
            .into_iter()
            .enumerate()
        {
            let store = stores[n % 2].clone();
            calls.push(tokio::spawn(async move {
                let answer = store
                    .admit(Check {
                        address: address(i),
                        nonce,
                        expires_at: now + 60,
                        now,
                        now_ms,
                        bucket: roomy,
                    })
                    .await
                    .unwrap();
                (i, nonce, answer)
            }));
        }
    }
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    for i in 0..20u8 {
        let of = |nonce: &str| {
            answers
                .iter()
                .filter(|(j, n, _)| *j == i && *n == nonce)
                .map(|(_, _, a)| *a)
                .collect::<Vec<_>>()
        };
        let mut a = of("nonce-a-000");
        a.sort_by_key(|x| format!("{x:?}"));
        assert_eq!(a, [Admission::Admitted, Admission::Replayed], "address {i}");
        assert_eq!(of("nonce-b-000"), [Admission::Admitted], "address {i}");
    }

    // A bucket of 3 with next to no refill: of 8 fresh nonces sent at once
    // through both replicas, exactly 3 are admitted, the rest rate-limited.
    let tight = Bucket {
        rate: 0.001,
        burst: 3.0,
    };
    let who = address(100);
    let mut calls = Vec::new();
    for k in 0..8 {
        let store = stores[k % 2].clone();
        calls.push(tokio::spawn(async move {
            store
                .admit(Check {
                    address: who,
                    nonce: &format!("tight-{k:04}"),
                    expires_at: now + 60,
                    now,
                    now_ms,
                    bucket: tight,
                })
                .await
                .unwrap()
        }));
    }
    let mut admitted = 0;
    for call in calls {
        match call.await.unwrap() {
            Admission::Admitted => admitted += 1,
            Admission::RateLimited => {}
            Admission::Replayed => panic!("a fresh nonce was called a replay"),
        }
    }
    assert_eq!(admitted, 3);

    // A closed store refuses, and says the database is out of reach.
    stores[0].close().await;
    let err = stores[0]
        .admit(Check {
            address: who,
            nonce: "after-close-1",
            expires_at: now + 60,
            now,
            now_ms,
            bucket: roomy,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    stores[1].close().await;
}

/// Fails the test, saying what to set, unless a PostgreSQL server is given.
fn require_postgres() {
    assert!(
        std::env::var(POSTGRES_VAR).is_ok(),
        "set {POSTGRES_VAR} to a PostgreSQL server URL (scripts/services.sh up DIR prints one)"
    );
}

/// The leading replica, waiting up to `within` for one to lead.
async fn leader_of(urls: &[&str], within: Duration) -> (usize, Duration) {
    let start = Instant::now();
    loop {
        let mut leading = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            if let Ok(h) = Client::new(url, None).health().await
                && h.leading
            {
                leading.push(i);
            }
        }
        assert!(leading.len() <= 1, "two replicas lead at once: {leading:?}");
        if let [i] = leading[..] {
            return (i, start.elapsed());
        }
        assert!(
            start.elapsed() < within,
            "no replica leads after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request signed once, sent to one replica and then replayed to another.
async fn send_signed(url: &str, headers: &[(String, String)], body: &[u8]) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/v1/tasks"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        req = req.header(name, value);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: the test command's PostgreSQL pass runs it"]
async fn two_replicas_share_nonces_and_the_survivor_finishes_the_job_after_the_leader_dies() {
    require_postgres();
    let env = Env::new().await;
    let mut replicas = Vec::new();
    for name in ["a", "b"] {
        let mut config = env.config();
        config.replica = name.into();
        replicas.push(Some(funetun_orchestrator::start(config).await.unwrap()));
    }
    let urls: Vec<String> = replicas.iter().flatten().map(|o| o.url()).collect();
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let both = urls.join(",");
    let (first, _) = leader_of(&url_refs, Duration::from_secs(10)).await;
    let other = 1 - first;

    // The job, its spec uploaded to the follower.
    let spec = tiny_spec(0.0);
    Client::new(&urls[other], Some(env.keys[0].clone()))
        .put_spec(spec.to_toml().into_bytes())
        .await
        .unwrap();
    let job = env.create_job(&spec).await;
    env.register_trainer(2).await;
    env.register_trainer(3).await;
    wait_status(&Client::new(&urls[other], None), job, JobStatus::Active).await;

    // A nonce used at one replica is spent at every replica.
    let body = serde_json::to_vec(&lease_request(job)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = funetun_core::auth::sign_request(
        &env.keys[2],
        "POST",
        "/v1/tasks",
        &body,
        now,
        "replica-shared-nonce-1",
    );
    let headers: Vec<(String, String)> = signed
        .headers()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let status = send_signed(&urls[first], &headers, &body).await;
    assert!(status == 200 || status == 204, "first use: {status}");
    assert_eq!(send_signed(&urls[other], &headers, &body).await, 401);

    // Trainers know both replicas; round 0 closes under the first leader.
    let data = synthetic();
    let trainers = [
        (Client::new(&both, Some(env.keys[2].clone())), env.ledger(2)),
        (Client::new(&both, Some(env.keys[3].clone())), env.ledger(3)),
    ];
    let owner = Client::new(&both, None);
    let guard = tokio::time::Instant::now() + Duration::from_secs(120);
    let closer = tokio::spawn({
        let owner = owner.clone();
        async move { wait_first_round_closed(&owner, job, guard).await }
    });
    while !closer.is_finished() {
        for (client, ledger) in &trainers {
            trainer_turn(client, ledger, job, &data).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    closer.await.unwrap();

    // The leader dies (dropped: its tasks stop and its connections close,
    // as in a crash, without giving the lease up).
    drop(replicas[first].take());
    let survivor = [url_refs[other]];
    let (_, took) = leader_of(&survivor, Duration::from_secs(10)).await;
    eprintln!("replica {other} took over {took:?} after the leader died");

    for _ in 0..1200 {
        let done = owner
            .jobs()
            .await
            .unwrap()
            .iter()
            .any(|j| j.job_id == job && j.status == JobStatus::Finished);
        if done {
            break;
        }
        for (client, ledger) in &trainers {
            trainer_turn(client, ledger, job, &data).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rounds = owner.rounds(job).await.unwrap();
    assert!(
        rounds.iter().all(|r| r.checkpoint_hash.is_some()),
        "{rounds:?}"
    );
    let names = ["a", "b"];
    assert_eq!(rounds[0].led_by.as_deref(), Some(names[first]));
    assert_eq!(rounds.last().unwrap().led_by.as_deref(), Some(names[other]));
    // Each (round, trainer) reported once, and the chain holds every checkpoint.
    let updates = owner.updates(job).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for u in &updates {
        assert!(seen.insert((u.round, u.trainer)), "twice: {u:?}");
    }
    let last = rounds.last().unwrap();
    assert_eq!(
        env.owner
            .checkpoint(alloy_primitives::U256::from(job), last.round + 1)
            .await
            .unwrap(),
        last.checkpoint_hash.unwrap()
    );
}
