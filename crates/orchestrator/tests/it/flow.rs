//! Two trainers and one validator drive a job through two rounds over real
//! HTTP, with the embedded chain deciding every update.

use std::time::Duration;

use alloy_primitives::U256;
use funetun_client::Client;
use funetun_core::keccak256;
use funetun_core::protocol::{JobStatus, NodeKind, Role, RoundStatus, UpdateStatus};

use crate::common::{
    Env, evaluated_rounds, synthetic, tiny_spec, trainer_turn, validator_turn, wait_status,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trainers_and_a_validator_finish_two_rounds() {
    let env = Env::new().await;
    let orch = funetun_orchestrator::start(env.config()).await.unwrap();
    assert_eq!(orch.address(), env.leader());
    let spec = tiny_spec(1.0);
    let owner = Client::new(&orch.url(), Some(env.keys[0].clone()));
    owner.put_spec(spec.to_toml().into_bytes()).await.unwrap();
    let job = env.create_job(&spec).await;
    env.register_trainer(2).await;
    env.register_trainer(3).await;
    env.register_validator(4).await;
    wait_status(&owner, job, JobStatus::Active).await;

    let data = synthetic();
    let trainers = [
        (
            Client::new(&orch.url(), Some(env.keys[2].clone())),
            env.ledger(2),
        ),
        (
            Client::new(&orch.url(), Some(env.keys[3].clone())),
            env.ledger(3),
        ),
    ];
    let validator = (
        Client::new(&orch.url(), Some(env.keys[4].clone())),
        env.ledger(4),
    );
    let mut votes = 0;
    for _ in 0..600 {
        let jobs = owner.jobs().await.unwrap();
        if jobs
            .iter()
            .any(|j| j.job_id == job && j.status == JobStatus::Finished)
        {
            break;
        }
        for (client, ledger) in &trainers {
            trainer_turn(client, ledger, job, &data).await;
        }
        while let Some(valid) = validator_turn(&validator.0, &validator.1, &data).await {
            assert!(valid, "an honest replay matches bit for bit");
            votes += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_status(&owner, job, JobStatus::Finished).await;
    assert_eq!(
        votes, 4,
        "every update was drawn (replay_prob = 1) and voted on"
    );

    let detail = owner.job(job).await.unwrap();
    assert_eq!(detail.summary.round, 2);
    assert_eq!(detail.spec, spec);
    let rounds = evaluated_rounds(&owner, job).await;
    assert_eq!(rounds.len(), 2);
    for r in &rounds {
        assert_eq!(r.status, RoundStatus::Closed);
        assert_eq!(
            (r.submitted, r.accepted, r.rejected, r.replayed),
            (2, 2, 0, 2)
        );
        assert!(r.test_accuracy.is_some() && r.test_loss.is_some());
        assert!(r.commit_tx.is_some());
    }
    assert_eq!(rounds[1].base_hash, rounds[0].checkpoint_hash.unwrap());
    let last = rounds[1].checkpoint_hash.unwrap();
    assert_eq!(detail.summary.latest_checkpoint, Some(last));
    assert_eq!(
        env.owner.checkpoint(U256::from(job), 2).await.unwrap(),
        last
    );
    let weights = owner.get_blob(last).await.unwrap();
    assert_eq!(keccak256(&weights), last);

    let updates = owner.updates(job).await.unwrap();
    assert_eq!(updates.len(), 4);
    for u in &updates {
        assert_eq!(u.status, UpdateStatus::Accepted);
        assert!(u.replay);
        assert_eq!(u.votes.len(), 1);
        assert!(u.votes[0].valid);
        assert_eq!(u.paid_wei, spec.base_reward_wei().unwrap());
    }
    let participants = owner.participants().await.unwrap();
    // One step of this job in ut (docs/reputation.md): batch × the model's
    // operations per sample.
    let step = funetun_orchestrator::reputation::step_ut(&spec);
    assert!(step > 0.0);
    for i in [2, 3] {
        let p = participants
            .iter()
            .find(|p| p.address == env.keys[i].address())
            .unwrap();
        assert_eq!(p.accepted, 2);
        assert!(p.roles.contains(&Role::Trainer));
        assert_eq!(
            p.earned_wei,
            spec.base_reward_wei().unwrap() * U256::from(2u64)
        );
        // 2 accepted updates of 3 steps, barely decayed: 0.6 · 6 steps'
        // operations, in ut.
        let expected = 0.6 * 6.0 * step;
        assert!(
            (p.reputation - expected).abs() < 1e-3 * expected,
            "{} ut, expected {expected}",
            p.reputation
        );
    }
    let v = participants
        .iter()
        .find(|p| p.address == env.keys[4].address())
        .unwrap();
    assert_eq!(v.validations, 4);
    // Its four deciding votes were paid the job's validation reward.
    let reward = spec.validation_reward_wei().unwrap();
    assert!(!reward.is_zero());
    assert_eq!(v.earned_wei, reward * U256::from(4u64));
    let detail = owner.job(job).await.unwrap();
    assert_eq!(detail.validation_reward_wei, reward);
    assert_eq!(detail.validators_paid_wei, v.earned_wei);
    // It replayed the four updates' 12 steps.
    let expected = 0.4 * 12.0 * step;
    assert!(
        (v.reputation - expected).abs() < 1e-3 * expected,
        "{} ut, expected {expected}",
        v.reputation
    );

    let graph = owner.graph().await.unwrap();
    for label in [
        "lease",
        "blob",
        "update",
        "validation",
        "submitUpdate",
        "validateUpdate",
        "commitCheckpoint",
        "createJob",
    ] {
        assert!(
            graph.edges.iter().any(|e| e.label == label && e.count > 0),
            "no `{label}` edge in {:?}",
            graph.edges
        );
    }
    assert!(graph.nodes.iter().any(|n| n.kind == NodeKind::Orchestrator));
    assert!(graph.nodes.iter().any(|n| n.kind == NodeKind::Contract));
    orch.shutdown().await.unwrap();
}

/// A trainer that leases a task and vanishes holds its round only until its
/// lease lapses: after that it no longer counts as active, so the round
/// closes once everyone still there has reported, not at its deadline (an
/// hour here), and the next round does not wait for it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_trainer_does_not_hold_rounds_to_their_deadline() {
    let env = Env::new().await;
    let orch = funetun_orchestrator::start(env.config()).await.unwrap();
    let mut spec = tiny_spec(0.0);
    spec.lease_secs = 2;
    let owner = Client::new(&orch.url(), Some(env.keys[0].clone()));
    owner.put_spec(spec.to_toml().into_bytes()).await.unwrap();
    let job = env.create_job(&spec).await;
    env.register_trainer(2).await;
    env.register_trainer(3).await;
    wait_status(&owner, job, JobStatus::Active).await;

    // Trainer 3 takes a shard and is never heard from again.
    let lost = Client::new(&orch.url(), Some(env.keys[3].clone()));
    let task = lost
        .lease_task(&crate::common::lease_request(job))
        .await
        .unwrap()
        .expect("a shard is free");
    assert_eq!(task.round, 0);

    let data = synthetic();
    let survivor = Client::new(&orch.url(), Some(env.keys[2].clone()));
    let ledger = env.ledger(2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let jobs = owner.jobs().await.unwrap();
        if jobs
            .iter()
            .any(|j| j.job_id == job && j.status == JobStatus::Finished)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rounds waited for the lost trainer: {:?}",
            owner.rounds(job).await.unwrap()
        );
        trainer_turn(&survivor, &ledger, job, &data).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rounds = evaluated_rounds(&owner, job).await;
    assert_eq!(rounds.len(), 2);
    for r in &rounds {
        assert_eq!(r.status, RoundStatus::Closed);
        assert_eq!((r.submitted, r.accepted), (1, 1), "{r:?}");
    }
}
