//! Generic WebAssembly tasks through the orchestrator over real HTTP:
//! owners submit, registered trainers run replicas in the sandbox, and the
//! redundancy rule picks the canonical result.

use funetun_client::{Client, ClientError};
use funetun_compute::examples::example;
use funetun_compute::{Input, Limits, Outcome, Sandbox};
use funetun_core::compute::{
    ComputeStatus, Exchange, Redundancy, ReplicaLease, ReplicaReport, ReplicaStatus, RunResult,
    TaskSubmission,
};

use crate::common::Env;

/// What an honest worker does with a lease.
fn run_honestly(sandbox: &Sandbox, wasm: &[u8], lease: &ReplicaLease) -> Outcome {
    let limits = Limits {
        fuel: lease.fuel,
        memory_bytes: lease.memory_bytes as usize,
        output_bytes: lease.output_bytes as usize,
    };
    let input = Input::new(lease.input.as_bytes().to_vec()).unwrap();
    match sandbox.compile(wasm) {
        Ok(p) => sandbox.run(&p, &input, &limits),
        Err(f) => Outcome {
            result: Err(f),
            fuel_used: 0,
        },
    }
}

async fn honest_turn(
    worker: &Client,
    sandbox: &Sandbox,
    wasm: &[u8],
) -> (ReplicaLease, ReplicaStatus) {
    let lease = worker
        .lease_replica()
        .await
        .unwrap()
        .expect("a replica to run");
    // The module comes from the orchestrator, checked against its hash.
    let fetched = worker.get_blob(lease.module).await.unwrap();
    assert_eq!(fetched, wasm);
    let outcome = run_honestly(sandbox, &fetched, &lease);
    let ack = worker
        .report_replica(&ReplicaReport {
            task_id: lease.task_id,
            replica: lease.replica,
            result: outcome.to_run_result(),
        })
        .await
        .unwrap();
    (lease, ack.replica_status)
}

/// What a lying worker reports for a lease: a made-up π.
fn forged(lease: &ReplicaLease) -> ReplicaReport {
    ReplicaReport {
        task_id: lease.task_id,
        replica: lease.replica,
        result: RunResult {
            output: Some(r#"{"pi":3.0}"#.into()),
            error: None,
            detail: None,
            fuel_used: 1,
        },
    }
}

fn code(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("not an API refusal: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_agrees_a_wrong_worker_is_outvoted_and_hostile_tasks_end_as_results() {
    let env = Env::new().await;
    let orch = funetun_orchestrator::start(env.config()).await.unwrap();
    let owner = Client::new(&orch.url(), Some(env.keys[0].clone()));
    for i in [2, 3, 4] {
        env.register_trainer(i).await;
    }
    let workers: Vec<Client> = [2, 3, 4]
        .iter()
        .map(|&i| Client::new(&orch.url(), Some(env.keys[i].clone())))
        .collect();
    let sandbox = Sandbox::new().unwrap();
    let pi = example("pi").unwrap().wasm;
    let module = owner.put_data(pi.to_vec()).await.unwrap();
    let submit = |input: &str| TaskSubmission {
        module,
        input: input.to_string(),
        validator: None,
        redundancy: Redundancy::default(),
        fuel: None,
        batch: None,
    };

    // Two honest workers agree bit for bit: the task is done, both paid.
    let id = owner
        .submit_compute_task(&submit(r#"{"samples": 20000, "seed": 7}"#))
        .await
        .unwrap()
        .task_id;
    let (first, _) = honest_turn(&workers[0], &sandbox, pi).await;
    assert_eq!(first.task_id, id);
    // A worker never gets two replicas of one task.
    assert_eq!(workers[0].lease_replica().await.unwrap(), None);
    let (_, status) = honest_turn(&workers[1], &sandbox, pi).await;
    assert_eq!(status, ReplicaStatus::Valid);
    let info = owner.compute_task(id).await.unwrap();
    assert_eq!(info.status, ComputeStatus::Done);
    let local = run_honestly(&sandbox, pi, &first).to_run_result();
    assert_eq!(info.result.as_ref().unwrap().output, local.output);
    assert!(
        info.replicas
            .iter()
            .all(|r| r.status == ReplicaStatus::Valid)
    );
    assert_eq!(info.replicas[0].digest, info.replicas[1].digest);

    // A wrong result: no quorum of two, a third replica is issued, and the
    // wrong one is outvoted.
    let id = owner
        .submit_compute_task(&submit(r#"{"samples": 1000, "seed": 1}"#))
        .await
        .unwrap()
        .task_id;
    let wrong = workers[2].lease_replica().await.unwrap().unwrap();
    let ack = workers[2].report_replica(&forged(&wrong)).await.unwrap();
    assert_eq!(ack.status, ComputeStatus::Open);
    honest_turn(&workers[0], &sandbox, pi).await;
    assert_eq!(
        owner.compute_task(id).await.unwrap().status,
        ComputeStatus::Open
    );
    let (_, status) = honest_turn(&workers[1], &sandbox, pi).await;
    assert_eq!(status, ReplicaStatus::Valid);
    let info = owner.compute_task(id).await.unwrap();
    assert_eq!(info.status, ComputeStatus::Done);
    let by_worker = |i: usize| {
        info.replicas
            .iter()
            .find(|r| r.worker == env.keys[i].address())
            .unwrap()
            .status
    };
    assert_eq!(by_worker(4), ReplicaStatus::Invalid);
    assert_eq!(by_worker(2), ReplicaStatus::Valid);
    assert_eq!(by_worker(3), ReplicaStatus::Valid);
    // Reporting twice is refused.
    let again = workers[2]
        .report_replica(&ReplicaReport {
            task_id: wrong.task_id,
            replica: wrong.replica,
            result: local.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(again), (409, "already_reported".into()));

    // A hostile module (an endless loop) ends as a `fuel` result that the
    // quorum agrees on.
    let endless = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "funetun_alloc") (param i32) (result i32) i32.const 0)
             (func (export "run") (param i32 i32) (result i64) (loop br 0) i64.const 0))"#,
    )
    .unwrap();
    let hostile = owner.put_data(endless.clone()).await.unwrap();
    let id = owner
        .submit_compute_task(&TaskSubmission {
            module: hostile,
            fuel: Some(1_000_000),
            ..submit("{}")
        })
        .await
        .unwrap()
        .task_id;
    honest_turn(&workers[0], &sandbox, &endless).await;
    honest_turn(&workers[1], &sandbox, &endless).await;
    let info = owner.compute_task(id).await.unwrap();
    assert_eq!(info.status, ComputeStatus::Done);
    assert_eq!(info.result.unwrap().error.as_deref(), Some("fuel"));

    // Nothing left to run.
    assert_eq!(workers[2].lease_replica().await.unwrap(), None);
    orch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submissions_and_strangers_are_refused() {
    let env = Env::new().await;
    let orch = funetun_orchestrator::start(env.config()).await.unwrap();
    let owner = Client::new(&orch.url(), Some(env.keys[0].clone()));
    let module = owner
        .put_data(example("pi").unwrap().wasm.to_vec())
        .await
        .unwrap();
    let good = TaskSubmission {
        module,
        input: "{}".into(),
        validator: None,
        redundancy: Redundancy::default(),
        fuel: None,
        batch: None,
    };
    let garbage = owner.put_data(b"not a module".to_vec()).await.unwrap();
    let cases = [
        (
            TaskSubmission {
                input: "{not json".into(),
                ..good.clone()
            },
            "bad_input",
        ),
        (
            TaskSubmission {
                module: garbage,
                ..good.clone()
            },
            "invalid_module",
        ),
        (
            TaskSubmission {
                module: funetun_core::keccak256(b"never uploaded"),
                ..good.clone()
            },
            "missing_blob",
        ),
        (
            TaskSubmission {
                redundancy: Redundancy {
                    min_quorum: 3,
                    target_nresults: 2,
                    ..Redundancy::default()
                },
                ..good.clone()
            },
            "bad_redundancy",
        ),
        (
            TaskSubmission {
                validator: Some(module),
                ..good.clone()
            },
            "bad_validator",
        ),
        (
            TaskSubmission {
                fuel: Some(0),
                ..good.clone()
            },
            "bad_fuel",
        ),
    ];
    for (submission, expected) in cases {
        let e = owner.submit_compute_task(&submission).await.unwrap_err();
        assert_eq!(code(e), (400, expected.to_string()));
    }
    // None of them left a task behind for a worker.
    env.register_trainer(2).await;
    let worker = Client::new(&orch.url(), Some(env.keys[2].clone()));
    assert_eq!(worker.lease_replica().await.unwrap(), None);
    // An unregistered address gets no work.
    let stranger = Client::new(&orch.url(), Some(env.keys[5].clone()));
    assert_eq!(code(stranger.lease_replica().await.unwrap_err()).0, 403);
    // An unknown id is a 404 with its own code.
    let e = owner
        .compute_task(funetun_core::keccak256(b"no such task"))
        .await
        .unwrap_err();
    assert_eq!(code(e), (404, "unknown_task".into()));
    orch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_replica_is_issued_again_and_its_late_report_judged() {
    let env = Env::new().await;
    let mut config = env.config();
    // Leases run out on whole seconds: three leave the worker at least two
    // to ask for another replica before the first lapses.
    config.replica_lease = std::time::Duration::from_secs(3);
    let orch = funetun_orchestrator::start(config).await.unwrap();
    let owner = Client::new(&orch.url(), Some(env.keys[0].clone()));
    for i in [2, 3, 4] {
        env.register_trainer(i).await;
    }
    let w = |i: usize| Client::new(&orch.url(), Some(env.keys[i].clone()));
    let sandbox = Sandbox::new().unwrap();
    let pi = example("pi").unwrap().wasm;
    let module = owner.put_data(pi.to_vec()).await.unwrap();
    let id = owner
        .submit_compute_task(&TaskSubmission {
            module,
            input: r#"{"samples": 500, "seed": 2}"#.into(),
            validator: None,
            redundancy: Redundancy::default(),
            fuel: None,
            batch: None,
        })
        .await
        .unwrap()
        .task_id;
    // Worker 2 takes a replica and goes silent; worker 3 reports.
    let silent = w(2).lease_replica().await.unwrap().unwrap();
    honest_turn(&w(3), &sandbox, pi).await;
    assert_eq!(w(4).lease_replica().await.unwrap(), None);
    tokio::time::sleep(std::time::Duration::from_millis(4100)).await;
    // The lapse is noticed, a third replica issued, and the quorum reached.
    let (lease, status) = honest_turn(&w(4), &sandbox, pi).await;
    assert_eq!((lease.task_id, lease.replica), (id, 2));
    assert_eq!(status, ReplicaStatus::Valid);
    let info = owner.compute_task(id).await.unwrap();
    assert_eq!(info.status, ComputeStatus::Done);
    assert_eq!(info.replicas[0].status, ReplicaStatus::Lapsed);
    // The silent worker's late report is still taken, judged against the
    // canonical result.
    let ack = w(2)
        .report_replica(&ReplicaReport {
            task_id: id,
            replica: silent.replica,
            result: run_honestly(&sandbox, pi, &silent).to_run_result(),
        })
        .await
        .unwrap();
    assert_eq!(ack.replica_status, ReplicaStatus::Valid);
    orch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_replication_runs_a_clean_workers_task_once_and_never_a_new_workers() {
    let env = Env::new().await;
    let mut config = env.config();
    config.trust_streak = 3;
    config.spot_check = 0.0;
    let orch = funetun_orchestrator::start(config).await.unwrap();
    let owner = Client::new(&orch.url(), Some(env.keys[0].clone()));
    for i in [2, 3, 4] {
        env.register_trainer(i).await;
    }
    let w = |i: usize| Client::new(&orch.url(), Some(env.keys[i].clone()));
    let sandbox = Sandbox::new().unwrap();
    let pi = example("pi").unwrap().wasm;
    let module = owner.put_data(pi.to_vec()).await.unwrap();
    let submit = |seed: u32, adaptive: bool| {
        let owner = owner.clone();
        async move {
            owner
                .submit_compute_task(&TaskSubmission {
                    module,
                    input: format!(r#"{{"samples": 200, "seed": {seed}}}"#),
                    validator: None,
                    redundancy: Redundancy {
                        adaptive,
                        ..Redundancy::default()
                    },
                    fuel: None,
                    batch: None,
                })
                .await
                .unwrap()
                .task_id
        }
    };
    // Workers 2 and 3 build clean records of three valid results each.
    for seed in 0..3 {
        submit(seed, false).await;
        honest_turn(&w(2), &sandbox, pi).await;
        honest_turn(&w(3), &sandbox, pi).await;
    }
    // A new worker's replica is always checked by a second one.
    let checked = submit(10, true).await;
    honest_turn(&w(4), &sandbox, pi).await;
    assert_eq!(
        owner.compute_task(checked).await.unwrap().status,
        ComputeStatus::Open
    );
    honest_turn(&w(2), &sandbox, pi).await;
    let info = owner.compute_task(checked).await.unwrap();
    assert_eq!(
        (info.status, info.adapted, info.replicas.len()),
        (ComputeStatus::Done, false, 2)
    );
    // A clean worker's task runs once.
    let once = submit(11, true).await;
    let (lease, status) = honest_turn(&w(3), &sandbox, pi).await;
    assert_eq!(lease.task_id, once);
    assert_eq!(status, ReplicaStatus::Valid);
    let info = owner.compute_task(once).await.unwrap();
    assert_eq!(
        (info.status, info.adapted, info.replicas.len()),
        (ComputeStatus::Done, true, 1)
    );
    assert_eq!(w(2).lease_replica().await.unwrap(), None);
    orch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_funded_task_pays_its_canonical_class_and_slashes_the_outvoted_on_chain() {
    use alloy_primitives::U256;
    let env = Env::new().await;
    let orch = funetun_orchestrator::start(env.config()).await.unwrap();
    let owner = Client::new(&orch.url(), Some(env.keys[0].clone()));
    for i in [2, 3, 4] {
        env.register_trainer(i).await;
    }
    let w = |i: usize| Client::new(&orch.url(), Some(env.keys[i].clone()));
    let sandbox = Sandbox::new().unwrap();
    let pi = example("pi").unwrap().wasm;
    let module = owner.put_data(pi.to_vec()).await.unwrap();
    let reward = U256::from(10u64).pow(U256::from(15u64));
    let redundancy = Redundancy::default();
    let per_task = reward * U256::from(redundancy.max_total_results);
    let batch = |owner: usize, leader, secs, deposit| {
        let ledger = env.ledger(owner);
        async move {
            let (id, _) = ledger
                .create_task_batch(
                    funetun_core::keccak256(b"pi batch"),
                    leader,
                    reward,
                    secs,
                    deposit,
                )
                .await
                .unwrap();
            id.saturating_to::<u64>()
        }
    };
    // Room for one task's most results.
    let funded = batch(0, env.leader(), 3_600, per_task).await;
    let submit = |seed: u32, batch: Option<u64>| TaskSubmission {
        module,
        input: format!(r#"{{"samples": 2000, "seed": {seed}}}"#),
        validator: None,
        redundancy,
        fuel: None,
        batch,
    };

    // Batches that cannot fund the task are refused, and nothing is stored.
    let strangers = batch(5, env.leader(), 3_600, per_task).await;
    let elsewhere = batch(0, env.keys[5].address(), 3_600, per_task).await;
    let expiring = batch(0, env.leader(), 60, per_task).await;
    for (batch, expected) in [
        (999, "unknown_batch"),
        (strangers, "not_your_batch"),
        (elsewhere, "not_our_batch"),
        (expiring, "batch_expiring"),
    ] {
        let err = owner
            .submit_compute_task(&submit(1, Some(batch)))
            .await
            .unwrap_err();
        assert_eq!(code(err), (400, expected.to_string()), "batch {batch}");
    }
    let a = owner
        .submit_compute_task(&submit(1, Some(funded)))
        .await
        .unwrap()
        .task_id;
    // The task holds back the whole deposit: a second is refused.
    let err = owner
        .submit_compute_task(&submit(2, Some(funded)))
        .await
        .unwrap_err();
    assert_eq!(code(err), (400, "deposit_exhausted".to_string()));

    // Worker 4 lies first; workers 2 and 3 agree and outvote it.
    let wrong = w(4).lease_replica().await.unwrap().unwrap();
    assert_eq!(wrong.task_id, a);
    w(4).report_replica(&forged(&wrong)).await.unwrap();
    // The liar also takes a replica of an unpaid task, and holds it.
    let b = owner
        .submit_compute_task(&submit(5, None))
        .await
        .unwrap()
        .task_id;
    let held = w(4).lease_replica().await.unwrap().unwrap();
    assert_eq!(held.task_id, b);
    for turn in 0..4 {
        if owner.compute_task(a).await.unwrap().status == ComputeStatus::Done {
            break;
        }
        honest_turn(&w(2 + turn % 2), &sandbox, pi).await;
    }

    // The driver settles the decided task on-chain.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let info = loop {
        let info = owner.compute_task(a).await.unwrap();
        if info.settled {
            break info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled: {info:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(info.status, ComputeStatus::Done);
    assert_eq!(info.batch, Some(funded));
    assert!(info.settlement.is_some());
    let chain = env.ledger(0);
    assert!(chain.task_settled(U256::from(funded), a).await.unwrap());
    let stake = funetun_chain::ContractParams::default().min_stake;
    let slash = stake * U256::from(funetun_chain::ContractParams::default().trainer_slash_bps)
        / U256::from(10_000u64);
    for i in [2, 3] {
        let account = chain.account(env.keys[i].address()).await.unwrap();
        assert_eq!(
            (account.credit, account.stake),
            (reward, stake),
            "worker {i}"
        );
    }
    let liar = chain.account(env.keys[4].address()).await.unwrap();
    assert_eq!((liar.credit, liar.stake), (U256::ZERO, stake - slash));
    let view = chain.job(U256::from(funded)).await.unwrap();
    assert_eq!(view.remaining, per_task - reward * U256::from(2) + slash);
    // The slash left the liar below the minimum stake: its lease of the
    // other task lapsed at once, not after the lease's 10 minutes.
    let info = owner.compute_task(b).await.unwrap();
    let r = info
        .replicas
        .iter()
        .find(|r| r.worker == env.keys[4].address())
        .unwrap();
    assert_eq!(r.status, ReplicaStatus::Lapsed);
    assert!(w(4).lease_replica().await.is_err());
    // An unfunded task owes nothing.
    let free = owner.submit_compute_task(&submit(9, None)).await.unwrap();
    let info = owner.compute_task(free.task_id).await.unwrap();
    assert!(info.settled && info.batch.is_none());
    orch.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_submissions_are_all_or_none_and_exchanges_report_and_lease_together() {
    let env = Env::new().await;
    let orch = funetun_orchestrator::start(env.config()).await.unwrap();
    let owner = Client::new(&orch.url(), Some(env.keys[0].clone()));
    for i in [2, 3] {
        env.register_trainer(i).await;
    }
    let w = |i: usize| Client::new(&orch.url(), Some(env.keys[i].clone()));
    let sandbox = Sandbox::new().unwrap();
    let pi = example("pi").unwrap().wasm;
    let module = owner.put_data(pi.to_vec()).await.unwrap();
    let submit = |seed: u64| TaskSubmission {
        module,
        input: format!(r#"{{"samples": 500, "seed": {seed}}}"#),
        validator: None,
        redundancy: Redundancy::default(),
        fuel: None,
        batch: None,
    };
    let exchange = |reports: Vec<ReplicaReport>, want: u32| Exchange { reports, want };

    // One bad task refuses the whole bulk, naming it; nothing is stored.
    let mut bad = submit(2);
    bad.input = "not json".into();
    let e = owner
        .submit_compute_tasks(&[submit(1), bad, submit(3)])
        .await
        .unwrap_err();
    let ClientError::Api {
        status,
        code: refused,
        detail,
        ..
    } = e
    else {
        panic!("not a refusal")
    };
    assert_eq!((status, refused.as_str()), (400, "bad_input"));
    assert!(detail.starts_with("task 1:"), "{detail}");
    assert!(
        w(2).exchange_replicas(&exchange(vec![], 8))
            .await
            .unwrap()
            .leases
            .is_empty()
    );
    let e = owner.submit_compute_tasks(&[]).await.unwrap_err();
    assert_eq!(code(e), (400, "bad_batch_size".to_string()));

    // Three good ones are stored together, in order.
    let ids = owner
        .submit_compute_tasks(&[submit(1), submit(2), submit(3)])
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    for (id, seed) in ids.iter().zip(1..) {
        let info = owner.compute_task(*id).await.unwrap();
        assert_eq!(info.input, submit(seed).input);
    }

    // A worker asks to hold two: it gets two; asking again gives the same
    // two back, not more.
    let held = w(2).exchange_replicas(&exchange(vec![], 2)).await.unwrap();
    assert_eq!(held.leases.len(), 2);
    let again = w(2).exchange_replicas(&exchange(vec![], 2)).await.unwrap();
    assert_eq!(again.leases, held.leases);
    let other = w(3).exchange_replicas(&exchange(vec![], 8)).await.unwrap();
    assert_eq!(other.leases.len(), 3, "one replica of each task");

    let run = |lease: &ReplicaLease| ReplicaReport {
        task_id: lease.task_id,
        replica: lease.replica,
        result: run_honestly(&sandbox, pi, lease).to_run_result(),
    };
    // Reporting another worker's replica refuses the whole exchange, and
    // the good report in it is not written either.
    let mixed = exchange(vec![run(&held.leases[0]), run(&other.leases[1])], 0);
    let e = w(2).exchange_replicas(&mixed).await.unwrap_err();
    assert_eq!(code(e), (403, "not_your_replica".to_string()));
    let info = owner.compute_task(held.leases[0].task_id).await.unwrap();
    assert!(
        info.replicas
            .iter()
            .all(|r| r.status == ReplicaStatus::Leased)
    );

    // The first worker reports its two and takes the third task.
    let reports: Vec<ReplicaReport> = held.leases.iter().map(run).collect();
    let reply = w(2)
        .exchange_replicas(&exchange(reports.clone(), 1))
        .await
        .unwrap();
    assert!(reply.acks.iter().all(|a| a.status == ComputeStatus::Open
        && a.replica_status == ReplicaStatus::Reported));
    assert_eq!(reply.leases.len(), 1);
    let third = ids
        .iter()
        .find(|id| held.leases.iter().all(|l| l.task_id != **id))
        .unwrap();
    assert_eq!(reply.leases[0].task_id, *third);
    // The second reports all three: two tasks are decided by its reports.
    let reply = w(3)
        .exchange_replicas(&exchange(other.leases.iter().map(run).collect(), 0))
        .await
        .unwrap();
    let done = reply
        .acks
        .iter()
        .filter(|a| a.status == ComputeStatus::Done && a.replica_status == ReplicaStatus::Valid)
        .count();
    assert_eq!(done, 2);
    // A resent exchange is answered with where its replicas stand now.
    let resent = w(2).exchange_replicas(&exchange(reports, 0)).await.unwrap();
    assert!(
        resent
            .acks
            .iter()
            .all(|a| a.status == ComputeStatus::Done && a.replica_status == ReplicaStatus::Valid)
    );
    // The single-report form still refuses a resent report.
    let e = w(2)
        .report_replica(&run(&held.leases[0]))
        .await
        .unwrap_err();
    assert_eq!(code(e), (409, "already_reported".to_string()));
    // The last replica decides the last task.
    let last = w(2)
        .exchange_replicas(&exchange(vec![run(&reply_lease(&w(2)).await)], 0))
        .await
        .unwrap();
    assert_eq!(last.acks[0].status, ComputeStatus::Done);
    for id in ids {
        assert_eq!(
            owner.compute_task(id).await.unwrap().status,
            ComputeStatus::Done
        );
    }
    // Too much at once is refused.
    let e = w(2)
        .exchange_replicas(&exchange(vec![], 10_000))
        .await
        .unwrap_err();
    assert_eq!(code(e), (400, "batch_too_large".to_string()));
    orch.shutdown().await.unwrap();
}

/// The one live replica `worker` holds.
async fn reply_lease(worker: &Client) -> ReplicaLease {
    let mut held = worker
        .exchange_replicas(&Exchange {
            reports: vec![],
            want: 1,
        })
        .await
        .unwrap()
        .leases;
    assert_eq!(held.len(), 1);
    held.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_drill_on_joining_and_agreeing_drills_earn_drilling_points() {
    let env = Env::new().await;
    let mut config = env.config();
    config.drill_every = Some(std::time::Duration::from_secs(3600));
    config.drill_rounds = 5;
    let orch = funetun_orchestrator::start(config).await.unwrap();
    for i in [2, 3, 4] {
        env.register_trainer(i).await;
    }
    let w = |i: usize| Client::new(&orch.url(), Some(env.keys[i].clone()));
    let sandbox = Sandbox::new().unwrap();
    let kernel = example("drill").unwrap().wasm;
    let ask = |i: usize, reports: Vec<ReplicaReport>, want: u32| {
        let worker = w(i);
        async move {
            worker
                .exchange_replicas(&Exchange { reports, want })
                .await
                .unwrap()
        }
    };
    let run = |lease: &ReplicaLease| {
        let outcome = run_honestly(&sandbox, kernel, lease);
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        ReplicaReport {
            task_id: lease.task_id,
            replica: lease.replica,
            result: outcome.to_run_result(),
        }
    };

    // A joining worker's first lease is its own drill: the shipped kernel,
    // stored here for it to fetch.
    let first = ask(2, vec![], 2).await.leases;
    assert_eq!(first.len(), 1, "nothing else to run");
    assert_eq!(first[0].module, funetun_core::keccak256(kernel));
    assert_eq!(w(2).get_blob(first[0].module).await.unwrap(), kernel);
    assert!(
        first[0].input.contains(r#""rounds": 5"#),
        "{}",
        first[0].input
    );
    // The next worker gets its own drill and a second replica of the first.
    let second = ask(3, vec![], 2).await.leases;
    assert_eq!(second.len(), 2);
    assert!(second.iter().any(|l| l.task_id == first[0].task_id));

    // Both report honestly: both drills agree, each worker earns two.
    ask(2, vec![run(&first[0])], 0).await;
    let mine = ask(2, vec![], 2).await.leases;
    assert_eq!(mine.len(), 1, "the other worker's drill, and no new one");
    ask(2, vec![run(&mine[0])], 0).await;
    let reply = ask(3, second.iter().map(run).collect(), 0).await;
    assert!(
        reply
            .acks
            .iter()
            .all(|a| a.status == ComputeStatus::Done && a.replica_status == ReplicaStatus::Valid)
    );
    let drill_ut = funetun_orchestrator::reputation::ut((2 * 64 * 64 * 64 * 5) as f64);
    let reputation = |people: &[funetun_core::api::ParticipantInfo], i: usize| {
        people
            .iter()
            .find(|p| p.address == env.keys[i].address())
            .map_or(0.0, |p| p.reputation)
    };
    let people = w(2).participants().await.unwrap();
    for i in [2, 3] {
        let expected = 0.4 * 2.0 * drill_ut;
        let got = reputation(&people, i);
        assert!(
            (got - expected).abs() < 1e-3 * expected,
            "worker {i}: {got} ut, expected {expected}"
        );
    }
    // Within the period nobody drills again.
    assert!(ask(2, vec![], 4).await.leases.is_empty());

    // A worker whose drill result is wrong is outvoted and earns nothing.
    let liar = ask(4, vec![], 1).await.leases;
    assert_eq!(liar.len(), 1);
    let ack = ask(4, vec![forged(&liar[0])], 0).await.acks;
    assert_eq!(ack[0].status, ComputeStatus::Open);
    let checked = ask(2, vec![], 1).await.leases;
    assert_eq!(checked[0].task_id, liar[0].task_id);
    ask(2, vec![run(&checked[0])], 0).await;
    // One against one: a third replica decides.
    let third = ask(3, vec![], 1).await.leases;
    assert_eq!(third[0].task_id, liar[0].task_id);
    let ack = ask(3, vec![run(&third[0])], 0).await.acks;
    assert_eq!(
        (ack[0].status, ack[0].replica_status),
        (ComputeStatus::Done, ReplicaStatus::Valid)
    );
    let people = w(2).participants().await.unwrap();
    assert_eq!(reputation(&people, 4), 0.0);
    let expected = 0.4 * 3.0 * drill_ut;
    assert!((reputation(&people, 2) - expected).abs() < 1e-3 * expected);
    orch.shutdown().await.unwrap();
}
