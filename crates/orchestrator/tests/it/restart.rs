//! A job interrupted mid-round (the orchestrator dropped, as in a crash) and
//! resumed on the same database and blob directory ends on the same final
//! checkpoint as a run that never stopped.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{B256, U256};
use funetun_client::Client;
use funetun_core::protocol::JobStatus;
use funetun_core::sync::Manifest;
use funetun_ml::Dataset;

use crate::common::{Env, synthetic, tiny_spec, trainer_turn, wait_status};

/// Trains until the job is finished; updates are finalized after their window.
async fn drive(env: &Env, url: &str, job: u64, data: &Dataset) {
    let owner = Client::new(url, None);
    let trainers = [
        (Client::new(url, Some(env.keys[2].clone())), env.ledger(2)),
        (Client::new(url, Some(env.keys[3].clone())), env.ledger(3)),
    ];
    for _ in 0..1200 {
        let jobs = owner.jobs().await.unwrap();
        if jobs
            .iter()
            .any(|j| j.job_id == job && j.status == JobStatus::Finished)
        {
            return;
        }
        for (client, ledger) in &trainers {
            trainer_turn(client, ledger, job, data).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} did not finish");
}

async fn setup(env: &Env, url: &str, spec: &funetun_core::JobSpec) -> u64 {
    Client::new(url, Some(env.keys[0].clone()))
        .put_spec(spec.to_toml().into_bytes())
        .await
        .unwrap();
    let job = env.create_job(spec).await;
    env.register_trainer(2).await;
    env.register_trainer(3).await;
    wait_status(&Client::new(url, None), job, JobStatus::Active).await;
    job
}

async fn final_hash(env: &Env, job: u64) -> B256 {
    env.owner.checkpoint(U256::from(job), 2).await.unwrap()
}

/// Every checkpoint after θ₀ is what its committed manifest builds from
/// its parent, with blobs the orchestrator serves.
async fn assert_aggregations_rebuild(env: &Env, url: &str, job: u64) {
    let id = U256::from(job);
    let client = Client::new(url, None);
    let manifests = env.owner.checkpoint_manifests(id, 0).await.unwrap();
    let rounds = client.rounds(job).await.unwrap();
    assert_eq!(manifests.len(), rounds.len() + 1);
    let mut prev_outer = None;
    for r in &rounds {
        let committed = manifests[&(r.round + 1)];
        assert_eq!(r.manifest_hash, Some(committed), "round {}", r.round);
        let m = Manifest::from_bytes(&client.get_blob(committed).await.unwrap()).unwrap();
        assert_eq!(m.parent, env.owner.checkpoint(id, r.round).await.unwrap());
        assert_eq!(m.outer_state_in, prev_outer);
        let parent = client.get_blob(m.parent).await.unwrap();
        let mut deltas = Vec::new();
        for input in &m.inputs {
            assert!(input.staleness <= u64::from(m.sync.max_staleness()) + 1);
            deltas.push(client.get_blob(input.update).await.unwrap());
        }
        let outer = match m.outer_state_in {
            Some(h) => Some(client.get_blob(h).await.unwrap()),
            None => None,
        };
        let built = funetun_orchestrator::rounds::rebuild(
            &m,
            &parent,
            &deltas,
            outer.as_deref(),
            &funetun_aggregate::Exec::sequential(),
        )
        .unwrap();
        assert_eq!(
            built.manifest.checkpoint,
            env.owner.checkpoint(id, r.round + 1).await.unwrap()
        );
        assert_eq!(built.manifest, m);
        prev_outer = m.outer_state_out;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_orchestrator_ends_on_the_same_checkpoint() {
    restarted_mid_round(tiny_spec(0.0)).await;
}

/// The same under `stale:2` with a buffer of two: rounds close on the
/// buffer, and every checkpoint still rebuilds from its manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_stale_orchestrator_ends_on_the_same_checkpoint() {
    let mut spec = tiny_spec(0.0);
    spec.sync = "stale:2".parse().unwrap();
    spec.buffer = 2;
    // Momentum is refused under `stale:S`; a Nesterov step without it still
    // keeps an outer state, carried through the restart.
    spec.outer_optimizer = "nesterov:0.7,0".into();
    restarted_mid_round(spec).await;
}

async fn restarted_mid_round(spec: funetun_core::JobSpec) {
    let data: Arc<Dataset> = synthetic();

    // Uninterrupted.
    let env = Env::new().await;
    let orch = funetun_orchestrator::start(env.config()).await.unwrap();
    let job = setup(&env, &orch.url(), &spec).await;
    drive(&env, &orch.url(), job, &data).await;
    let expected = final_hash(&env, job).await;
    assert_ne!(expected, B256::ZERO);
    orch.shutdown().await.unwrap();

    // Interrupted: one trainer submits in round 0, then the orchestrator dies.
    let env = Env::new().await;
    let orch = funetun_orchestrator::start(env.config()).await.unwrap();
    let url = orch.url();
    let job = setup(&env, &url, &spec).await;
    let first = Client::new(&url, Some(env.keys[2].clone()));
    assert_eq!(
        trainer_turn(&first, &env.ledger(2), job, &data).await,
        Some(0)
    );
    let second = Client::new(&url, Some(env.keys[3].clone()));
    let leased = second
        .lease_task(&crate::common::lease_request(job))
        .await
        .unwrap()
        .expect("a task for the second trainer");
    drop(orch);

    let orch = funetun_orchestrator::start(env.config()).await.unwrap();
    // The lease survived the restart: the same task comes back.
    let again = Client::new(&orch.url(), Some(env.keys[3].clone()))
        .lease_task(&crate::common::lease_request(job))
        .await
        .unwrap()
        .expect("the same task");
    assert_eq!(again.task_id, leased.task_id);
    drive(&env, &orch.url(), job, &data).await;
    assert_eq!(final_hash(&env, job).await, expected);
    let rounds = Client::new(&orch.url(), None).rounds(job).await.unwrap();
    assert_eq!(rounds.len(), 2);
    assert!(rounds.iter().all(|r| r.accepted == 2));
    assert_aggregations_rebuild(&env, &orch.url(), job).await;
    // Every update was merged, and the API says where and how stale.
    let updates = Client::new(&orch.url(), None).updates(job).await.unwrap();
    assert_eq!(updates.len(), 4);
    for u in &updates {
        let merged = u.merged_round.expect("every accepted update is merged");
        assert!(
            merged >= u.base_round && merged - u.base_round <= 2,
            "{u:?}"
        );
    }
    orch.shutdown().await.unwrap();
}
