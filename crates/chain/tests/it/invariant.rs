//! Property test: random sequences of contract actions on both chains, on a training job and a
//! task batch side by side; after every action each one's books balance (deposited + slashed-in
//! == paid + reserved + remaining + withdrawn) and the contract holds exactly the Ether it owes
//! (stakes + credits + job and batch funds + bonds).

use alloy::primitives::{Address, U256};
use funetun_chain::JobManager::JobManagerEvents as Ev;
use funetun_chain::bindings::{update_index, update_status};
use funetun_chain::ledger::NewJob;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::{Env, Kind, eth, h};

#[derive(Debug, Clone)]
enum Action {
    Submit(usize),
    Vote(usize, usize, bool),
    Challenge(usize),
    /// By the leader (`true`) or someone else.
    Finalize(usize, bool),
    /// Past the challenge window, or (`true`) past the decision timeout too.
    Warp(bool),
    Checkpoint,
    Withdraw(usize),
    WithdrawUnused,
    Bonus(usize),
    Leave(usize),
    /// The leader settles task `.0` of the batch, paying the trainers in mask `.1` and
    /// slashing those in mask `.2`.
    Settle(u8, u8, u8),
    WithdrawBatch,
}

const TRAINERS: [usize; 3] = [2, 3, 4];
const VALIDATORS: [usize; 3] = [5, 6, 7];
const EVERYONE: [usize; 8] = [0, 2, 3, 4, 5, 6, 7, 8];

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..3usize).prop_map(Action::Submit),
        5 => (0..3usize, 0..3usize, any::<bool>()).prop_map(|(v, t, ok)| Action::Vote(v, t, ok)),
        1 => (0..3usize).prop_map(Action::Challenge),
        1 => (0..3usize, any::<bool>()).prop_map(|(t, leader)| Action::Finalize(t, leader)),
        1 => any::<bool>().prop_map(Action::Warp),
        1 => Just(Action::Checkpoint),
        2 => (0..8usize).prop_map(Action::Withdraw),
        1 => Just(Action::WithdrawUnused),
        1 => (0..3usize).prop_map(Action::Bonus),
        1 => (0..8usize).prop_map(Action::Leave),
        3 => (0..4u8, 0..8u8, 0..8u8).prop_map(|(t, p, s)| Action::Settle(t, p, s)),
        1 => Just(Action::WithdrawBatch),
    ]
}

struct Model {
    job: U256,
    round: u64,
    reward: U256,
    paid: U256,
    submitted: Vec<U256>,
    batch: U256,
    batch_paid: U256,
}

async fn check(env: &Env, m: &Model) -> Result<(), TestCaseError> {
    let l = env.ledger(0);
    let job = l.job(m.job).await.unwrap();
    let mut reserved = U256::ZERO;
    let mut bonds = U256::ZERO;
    for index in &m.submitted {
        let u = l.update(m.job, *index).await.unwrap();
        if u.status == update_status::PENDING || u.status == update_status::CHALLENGED {
            reserved += m.reward;
        }
        if u.status == update_status::CHALLENGED {
            bonds += env.params.challenge_bond;
        }
    }
    prop_assert_eq!(
        job.deposited + job.slashedIn,
        m.paid + reserved + job.remaining + job.withdrawn
    );
    let batch = l.job(m.batch).await.unwrap();
    prop_assert_eq!(
        batch.deposited + batch.slashedIn,
        m.batch_paid + batch.remaining + batch.withdrawn
    );
    let mut owed = job.remaining + reserved + bonds + batch.remaining;
    for i in EVERYONE {
        let a = l.account(env.addr(i)).await.unwrap();
        owed += a.stake + a.credit;
    }
    prop_assert_eq!(env.balance(env.contract).await, owed);
    Ok(())
}

async fn run_case(kind: Kind, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let Some(env) = Env::new(kind).await else {
        return Ok(());
    };
    for t in TRAINERS {
        env.ledger(t).register_trainer(eth(100)).await.unwrap();
    }
    for v in VALIDATORS {
        env.ledger(v).register_validator(eth(100)).await.unwrap();
    }
    let spec = NewJob {
        bonus_reward: eth(1),
        // Large enough that the validators' pay can run the deposit down.
        validation_reward: eth(1) / U256::from(2),
        quorum: 2,
        ..env.job(2, 9)
    };
    let job = env.open_job(&spec).await;
    // A batch that pays 1 milli-eth per result and expires after six warps.
    let (batch, _) = env
        .ledger(0)
        .create_task_batch(h("batch"), env.addr(1), eth(1), 3_600, eth(5))
        .await
        .unwrap();
    let mut m = Model {
        batch,
        batch_paid: U256::ZERO,
        job,
        round: 0,
        reward: spec.base_reward,
        paid: U256::ZERO,
        submitted: Vec::new(),
    };
    check(&env, &m).await?;
    for action in actions {
        let index_of = |t: usize, round: u64| update_index(round, 0, env.addr(TRAINERS[t]));
        let result = match &action {
            Action::Submit(t) => env
                .ledger(TRAINERS[*t])
                .submit_update(job, m.round, 0, h(&format!("{t}/{}", m.round)))
                .await
                .map(|(i, o)| {
                    m.submitted.push(i);
                    o
                }),
            Action::Vote(v, t, ok) => {
                env.ledger(VALIDATORS[*v])
                    .validate_update(job, index_of(*t, m.round), *ok)
                    .await
            }
            Action::Challenge(t) => {
                env.ledger(8)
                    .challenge(job, index_of(*t, m.round), env.params.challenge_bond)
                    .await
            }
            Action::Finalize(t, leader) => {
                env.ledger(if *leader { 1 } else { 8 })
                    .finalize_update(job, index_of(*t, m.round))
                    .await
            }
            Action::Warp(past_timeout) => {
                let timeout = if *past_timeout {
                    env.params.decision_timeout
                } else {
                    0
                };
                env.warp(601 + timeout).await;
                continue;
            }
            Action::Checkpoint => env
                .ledger(1)
                .commit_checkpoint(
                    job,
                    m.round + 1,
                    h(&format!("c{}", m.round + 1)),
                    h("manifest"),
                )
                .await
                .inspect(|_| m.round += 1),
            Action::Withdraw(i) => env.ledger(EVERYONE[*i]).withdraw().await,
            Action::WithdrawUnused => env.ledger(0).withdraw_unused_funds(job).await,
            Action::Bonus(t) => env.ledger(1).award_bonus(job, index_of(*t, m.round)).await,
            Action::Leave(i) => env.ledger(EVERYONE[*i]).request_leave().await,
            Action::Settle(task, paid, slashed) => {
                let pick = |mask: u8| {
                    (0..3)
                        .filter(|b| mask >> b & 1 == 1)
                        .map(|b| env.addr(TRAINERS[b]))
                        .collect::<Vec<_>>()
                };
                env.ledger(1)
                    .settle_compute_task(
                        batch,
                        h(&format!("task {task}")),
                        h("result"),
                        pick(*paid),
                        pick(*slashed),
                    )
                    .await
            }
            Action::WithdrawBatch => env.ledger(0).withdraw_unused_funds(batch).await,
        };
        match result {
            Ok(outcome) => {
                for e in &outcome.events {
                    match &e.event {
                        Ev::UpdateDecided(d) => {
                            m.paid += d.validatorsPaid;
                            if d.accepted {
                                m.paid += m.reward;
                            }
                        }
                        Ev::BonusAwarded(b) => m.paid += b.amount,
                        Ev::TaskSettled(t) => m.batch_paid += t.paid * eth(1),
                        _ => {}
                    }
                }
            }
            Err(e) => prop_assert!(
                e.contract_error().is_some(),
                "{action:?} failed outside the contract: {e}"
            ),
        }
        check(&env, &m)
            .await
            .map_err(|e| TestCaseError::fail(format!("after {action:?}: {e}")))?;
    }
    let _ = Address::ZERO;
    Ok(())
}

fn run(kind: Kind, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(action(), 8..30), |actions| {
            rt.block_on(run_case(kind, actions))
        })
        .unwrap();
}

#[test]
fn books_balance_after_every_action_dev() {
    run(Kind::Dev, 24);
}

#[test]
fn books_balance_after_every_action_anvil() {
    run(Kind::Anvil, 8);
}
