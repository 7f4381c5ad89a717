//! The protocol's former holes, end to end on the dev chain: a freed shard
//! goes to a trainer that already reported (a second task of the round), a
//! submission without a lease is replayed like any other, and a challenge
//! nobody votes on is settled at the contract's decision timeout.

use std::time::Duration;

use alloy_primitives::U256;
use funetun_chain::ContractParams;
use funetun_chain::bindings::{split_update_index, update_status};
use funetun_client::Client;
use funetun_core::api::CheckReason;
use funetun_core::keccak256;
use funetun_core::protocol::{JobStatus, RoundStatus, UpdateStatus};

use crate::common::{
    Env, synthetic, tiny_spec, train_one, trainer_turn, validator_turn, wait_status,
};

/// Polls `check` every 100 ms until it holds, or panics with `what` after a minute.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_shard_goes_to_a_trainer_that_already_reported() {
    let env = Env::new().await;
    // Two shards, and a round that cannot close on one update: it needs both.
    let mut spec = tiny_spec(0.0);
    spec.rounds = 1;
    spec.min_updates = 2;
    spec.lease_secs = 2;
    let (orch, owner, job) = env.start_job(&spec).await;
    env.register_trainer(2).await;
    env.register_trainer(3).await;
    wait_status(&owner, job, JobStatus::Active).await;

    // Trainer 3 takes a shard and vanishes.
    let lost = Client::new(&orch.url(), Some(env.keys[3].clone()));
    let lost_task = lost
        .lease_task(&crate::common::lease_request(job))
        .await
        .unwrap()
        .expect("a shard is free");
    let data = synthetic();
    let me = Client::new(&orch.url(), Some(env.keys[2].clone()));
    let ledger = env.ledger(2);
    let first = train_one(&me, &ledger, job, &data).await.expect("a task");
    assert_ne!(first.shard, lost_task.shard);
    // While trainer 3's lease is live, trainer 2 gets nothing more.
    assert!(
        me.lease_task(&crate::common::lease_request(job))
            .await
            .unwrap()
            .is_none()
    );
    // Once it lapses, trainer 2 gets the freed shard as a second task of round 0.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let second = train_one(&me, &ledger, job, &data)
        .await
        .expect("the freed shard is leased again");
    assert_eq!((second.round, second.shard), (0, lost_task.shard));
    wait_status(&owner, job, JobStatus::Finished).await;
    let rounds = owner.rounds(job).await.unwrap();
    assert_eq!(rounds[0].status, RoundStatus::Closed);
    assert_eq!((rounds[0].submitted, rounds[0].accepted), (2, 2));
    let updates = owner.updates(job).await.unwrap();
    assert!(
        updates
            .iter()
            .all(|u| u.trainer == ledger.address() && u.status == UpdateStatus::Accepted),
        "{updates:?}"
    );
    let shards: Vec<u32> = updates
        .iter()
        .map(|u| split_update_index(u.update_index).shard)
        .collect();
    assert!(shards.contains(&first.shard) && shards.contains(&second.shard));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_without_a_lease_is_replayed_and_rejected() {
    let env = Env::new().await;
    let mut spec = tiny_spec(0.0);
    spec.validation.challenge_window_secs = 30;
    let (orch, owner, job) = env.start_job(&spec).await;
    env.register_trainer(4).await;
    env.register_validator(5).await;
    wait_status(&owner, job, JobStatus::Active).await;

    // Trainer 4 never leases: it commits a made-up hash on shard 1 of round 0.
    let (index, _) = env
        .ledger(4)
        .submit_update(U256::from(job), 0, 1, keccak256(b"no lease, no work"))
        .await
        .unwrap();
    eventually("the lease-less submission sent to validators", || async {
        owner
            .updates(job)
            .await
            .unwrap()
            .iter()
            .any(|u| u.update_index == index && u.replay && u.reason == CheckReason::Unreported)
    })
    .await;
    let updates = owner.updates(job).await.unwrap();
    let u = updates.iter().find(|u| u.update_index == index).unwrap();
    assert_eq!((u.shard, u.round), (1, 0));

    // A validator replays the shard's task and votes it down.
    let validator = Client::new(&orch.url(), Some(env.keys[5].clone()));
    assert_eq!(
        validator_turn(&validator, &env.ledger(5), &synthetic()).await,
        Some(false)
    );
    let view = env.owner.update(U256::from(job), index).await.unwrap();
    assert_eq!(view.status, update_status::REJECTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_nobody_votes_on_is_void_at_the_decision_timeout() {
    let env = Env::with_params(&ContractParams {
        decision_timeout: 3,
        ..ContractParams::default()
    })
    .await;
    let mut spec = tiny_spec(0.0);
    spec.rounds = 1;
    spec.shards = 1;
    spec.validation.challenge_window_secs = 5;
    let (orch, owner, job) = env.start_job(&spec).await;
    env.register_trainer(2).await;
    env.register_trainer(3).await;
    wait_status(&owner, job, JobStatus::Active).await;

    let data = synthetic();
    let t2 = Client::new(&orch.url(), Some(env.keys[2].clone()));
    let task = train_one(&t2, &env.ledger(2), job, &data)
        .await
        .expect("a task");
    let index = funetun_chain::bindings::update_index(0, task.shard, env.keys[2].address());
    // Challenged at once; no validator is registered, so no quorum can form.
    let challenger = env.ledger(6);
    let bond = ContractParams::default().challenge_bond;
    challenger
        .challenge(U256::from(job), index, bond)
        .await
        .unwrap();
    // The orchestrator settles it once the window and the timeout have passed.
    eventually("the challenged update voided", || async {
        owner
            .updates(job)
            .await
            .unwrap()
            .iter()
            .any(|u| u.update_index == index && u.status == UpdateStatus::Void)
    })
    .await;
    let view = env.owner.update(U256::from(job), index).await.unwrap();
    assert_eq!(view.status, update_status::VOID);
    let account = |i: usize| {
        let ledger = env.ledger(i);
        async move { ledger.account(ledger.address()).await.unwrap() }
    };
    assert_eq!(account(6).await.credit, bond, "the bond comes back");
    let trainer = account(2).await;
    assert_eq!(
        (trainer.credit, trainer.stake, trainer.pending),
        (U256::ZERO, ContractParams::default().min_stake, 0),
        "neither paid nor slashed"
    );
    // The shard is free again: another trainer does it and the job finishes.
    let t3 = Client::new(&orch.url(), Some(env.keys[3].clone()));
    let ledger3 = env.ledger(3);
    eventually("trainer 3 trains the freed shard", || {
        let (t3, ledger3, data) = (&t3, &ledger3, &data);
        async move { trainer_turn(t3, ledger3, job, data).await.is_some() }
    })
    .await;
    wait_status(&owner, job, JobStatus::Finished).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_delta_is_deleted_once_its_round_closed() {
    let env = Env::new().await;
    let mut spec = tiny_spec(1.0);
    spec.rounds = 1;
    spec.validation.replay_floor = 1.0;
    let (orch, owner, job) = env.start_job(&spec).await;
    env.register_trainer(2).await;
    env.register_trainer(3).await;
    env.register_validator(5).await;
    wait_status(&owner, job, JobStatus::Active).await;
    let data = synthetic();

    // Trainer 2 is honest.
    let t2 = Client::new(&orch.url(), Some(env.keys[2].clone()));
    let honest = train_one(&t2, &env.ledger(2), job, &data).await.unwrap();
    // Trainer 3 trains one step more than its task says: a valid delta, not the task's.
    let t3 = Client::new(&orch.url(), Some(env.keys[3].clone()));
    let mut task = t3
        .lease_task(&crate::common::lease_request(job))
        .await
        .unwrap()
        .unwrap();
    let base = t3.get_blob(task.base_hash).await.unwrap();
    let lease = task.clone();
    task.steps += 1;
    let (delta, before, after) = crate::common::run_task(&task, &base, &data);
    let forged = t3.put_blob(job, delta).await.unwrap();
    let (_, outcome) = env
        .ledger(3)
        .submit_update(U256::from(job), lease.round, lease.slot, forged)
        .await
        .unwrap();
    t3.report_update(&funetun_core::api::UpdateReport {
        task_id: lease.task_id,
        update_hash: forged,
        tx_hash: outcome.tx_hash,
        loss_before: before,
        loss_after: after,
        platform: Some(funetun_ml::platform::platform_class()),
        round: None,
    })
    .await
    .unwrap();

    // The validator checks both: one valid, one not.
    let validator = Client::new(&orch.url(), Some(env.keys[5].clone()));
    let mut votes = Vec::new();
    while let Some(v) = validator_turn(&validator, &env.ledger(5), &data).await {
        votes.push(v);
    }
    votes.sort();
    assert_eq!(votes, vec![false, true]);
    wait_status(&owner, job, JobStatus::Finished).await;
    // The rejected delta's bytes are gone, its record stays; the accepted one is kept.
    eventually("the rejected delta deleted", || async {
        t3.get_blob(forged).await.is_err()
    })
    .await;
    let accepted = owner
        .updates(job)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.task_id == honest.task_id)
        .unwrap();
    assert!(t2.get_blob(accepted.update_hash).await.is_ok());
    let rejected = owner
        .updates(job)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.update_hash == forged)
        .expect("the rejected update is still listed");
    assert_eq!(rejected.status, UpdateStatus::Rejected);
}
