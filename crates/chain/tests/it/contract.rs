//! The contract suite: every function's happy path and every revert, payouts, slashes,
//! challenges and closes with balances checked to the wei. Each scenario runs on the
//! embedded dev chain and on anvil.

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::{SolCall, SolError};
use funetun_chain::JobManager::{self, JobManagerErrors as E, JobManagerEvents as Ev};
use funetun_chain::bindings::{job_status, roles, update_index, update_status};
use funetun_chain::ledger::NewJob;
use funetun_chain::{ContractParams, Ledger, LedgerConfig};

use crate::common::{Env, eth, h, revert};
use crate::on_both_chains;

async fn register_all(env: &Env) {
    for i in 2..=4 {
        env.ledger(i).register_trainer(eth(100)).await.unwrap();
    }
    for i in 5..=7 {
        env.ledger(i).register_validator(eth(100)).await.unwrap();
    }
}

on_both_chains!(
    deploy_and_params,
    create_job_rules,
    stakes_and_leaving,
    submit_validate_accept,
    rejection_slashes_and_shares,
    quorum_and_dissent,
    validation_rewards,
    challenges,
    finalize_after_window,
    second_shard_and_decision_timeout,
    checkpoints_and_final_close,
    exhaustion_and_owner_withdrawal,
    bonuses,
    reentrancy_and_refused_payments,
    gas_per_accepted_update,
    task_batches,
    gas_per_accepted_result,
);

async fn deploy_and_params(env: &Env) {
    assert_eq!(env.ledger(0).params().await.unwrap(), env.params);
    assert_eq!(env.ledger(0).job_count().await.unwrap(), U256::ZERO);
    let bad = ContractParams {
        trainer_slash_bps: 0,
        ..ContractParams::default()
    };
    let err = Ledger::deploy(
        env.provider.clone(),
        funetun_chain::dev_accounts(9)[8].signer(),
        &bad,
        LedgerConfig::default(),
    )
    .await
    .map(|_| ())
    .unwrap_err();
    assert!(
        matches!(err.contract_error(), Some(E::InvalidParameter(_))),
        "{err}"
    );
    let bad = ContractParams {
        validator_share_bps: 10_001,
        ..ContractParams::default()
    };
    let err = Ledger::deploy(
        env.provider.clone(),
        funetun_chain::dev_accounts(9)[8].signer(),
        &bad,
        LedgerConfig::default(),
    )
    .await
    .map(|_| ())
    .unwrap_err();
    assert!(
        matches!(err.contract_error(), Some(E::InvalidParameter(_))),
        "{err}"
    );
}

async fn create_job_rules(env: &Env) {
    let owner = env.ledger(0);
    let good = env.job(1, 10);
    let before = env.balance(owner.address()).await;
    let (id, outcome) = owner.create_job(&good).await.unwrap();
    assert_eq!(id, U256::from(1));
    assert_eq!(
        env.balance(owner.address()).await,
        before - good.deposit - outcome.fee()
    );
    assert!(
        matches!(&outcome.events[0].event, Ev::JobCreated(e) if e.deposit == good.deposit && e.leader == env.addr(1))
    );
    let job = owner.job(id).await.unwrap();
    assert_eq!(job.owner, owner.address());
    assert_eq!(job.leader, env.addr(1));
    assert_eq!(job.specHash, good.spec_hash);
    assert_eq!(job.deposited, good.deposit);
    assert_eq!(job.remaining, good.deposit);
    assert_eq!(job.baseReward, good.base_reward);
    assert_eq!(
        (job.rounds, job.checkpoints, job.quorum, job.challengeWindow),
        (3, 0, 1, 600)
    );
    assert_eq!(job.status, job_status::ACTIVE);
    assert_eq!(env.balance(env.contract).await, good.deposit);
    assert_eq!(
        owner.job(U256::from(99)).await.unwrap().status,
        job_status::NONE
    );

    type Check = fn(&E) -> bool;
    let cases: Vec<(NewJob, Check)> = vec![
        (
            NewJob {
                spec_hash: Default::default(),
                ..good.clone()
            },
            |e| matches!(e, E::ZeroHash(_)),
        ),
        (
            NewJob {
                leader: Address::ZERO,
                ..good.clone()
            },
            |e| matches!(e, E::ZeroAddress(_)),
        ),
        (
            NewJob {
                rounds: 0,
                ..good.clone()
            },
            |e| matches!(e, E::InvalidRounds(_)),
        ),
        (
            NewJob {
                quorum: 0,
                ..good.clone()
            },
            |e| matches!(e, E::InvalidQuorum(q) if q.quorum == 0),
        ),
        (
            NewJob {
                quorum: 16,
                ..good.clone()
            },
            |e| matches!(e, E::InvalidQuorum(q) if q.quorum == 16),
        ),
        (
            NewJob {
                base_reward: U256::ZERO,
                ..good.clone()
            },
            |e| matches!(e, E::InvalidReward(_)),
        ),
        (
            NewJob {
                base_reward: U256::from(1u128 << 80),
                ..good.clone()
            },
            |e| matches!(e, E::InvalidReward(_)),
        ),
        (
            NewJob {
                deposit: eth(1),
                ..good.clone()
            },
            |e| matches!(e, E::DepositTooSmall(_)),
        ),
        (
            NewJob {
                bonus_reward: U256::from(1u128 << 96),
                ..good.clone()
            },
            |e| matches!(e, E::AmountTooLarge(_)),
        ),
    ];
    for (job, check) in cases {
        let err = revert(owner.create_job(&job).await);
        assert!(check(&err), "unexpected revert {err:?} for {job:?}");
    }
}

async fn stakes_and_leaving(env: &Env) {
    let t = env.ledger(2);
    let min = env.params.min_stake;
    assert!(
        matches!(revert(t.register_trainer(min - U256::from(1)).await), E::StakeTooLow(s) if s.stake == min - U256::from(1))
    );
    assert!(matches!(
        revert(t.request_leave().await),
        E::NotRegistered(_)
    ));
    assert!(matches!(revert(t.withdraw_stake().await), E::NotLeaving(_)));
    t.register_trainer(min).await.unwrap();
    // A top-up below the minimum is fine once the stake is above it; a second role shares the stake.
    t.register_validator(U256::from(5)).await.unwrap();
    let account = t.account(t.address()).await.unwrap();
    assert_eq!(account.stake, min + U256::from(5));
    assert_eq!(account.roles, roles::TRAINER | roles::VALIDATOR);

    let out = t.request_leave().await.unwrap();
    let unlock = match &out.events[0].event {
        Ev::LeaveRequested(e) => e.unlockAt,
        other => panic!("unexpected event {other:?}"),
    };
    let account = t.account(t.address()).await.unwrap();
    assert_eq!(account.roles, 0);
    assert_eq!(account.unlockAt, unlock);
    assert!(matches!(
        revert(t.register_trainer(min).await),
        E::Leaving(_)
    ));
    assert!(matches!(
        revert(t.request_leave().await),
        E::NotRegistered(_)
    ));
    assert!(
        matches!(revert(t.withdraw_stake().await), E::StakeLocked(s) if s.unlockAt == U256::from(unlock))
    );
    env.warp(env.params.leave_cooldown + 1).await;
    let before = env.balance(t.address()).await;
    let out = t.withdraw_stake().await.unwrap();
    assert_eq!(
        env.balance(t.address()).await,
        before + min + U256::from(5) - out.fee()
    );
    assert_eq!(env.balance(env.contract).await, U256::ZERO);
    let account = t.account(t.address()).await.unwrap();
    assert_eq!((account.stake, account.unlockAt), (U256::ZERO, 0));
    // After withdrawing, the account may register again.
    t.register_trainer(min).await.unwrap();
}

async fn submit_validate_accept(env: &Env) {
    register_all(env).await;
    let job = env.job(1, 10);
    let (id, _) = env.ledger(0).create_job(&job).await.unwrap();
    let (t, v) = (env.ledger(2), env.ledger(5));

    // Before checkpoint 0 there is no round to submit to.
    assert!(matches!(
        revert(t.submit_update(id, 0, 0, h("d")).await),
        E::WrongRound(_)
    ));
    assert!(matches!(
        revert(t.submit_update(U256::from(7), 0, 0, h("d")).await),
        E::JobNotFound(_)
    ));
    env.ledger(1)
        .commit_checkpoint(id, 0, h("theta0"), B256::ZERO)
        .await
        .unwrap();
    assert!(
        matches!(revert(t.submit_update(id, 1, 0, h("d")).await), E::WrongRound(w) if w.expected == U256::ZERO && w.got == U256::from(1))
    );
    assert!(matches!(
        revert(t.submit_update(id, 0, 0, Default::default()).await),
        E::ZeroHash(_)
    ));
    assert!(matches!(
        revert(v.submit_update(id, 0, 0, h("d")).await),
        E::NotTrainer(_)
    ));

    let (index, out) = t.submit_update(id, 0, 0, h("delta")).await.unwrap();
    assert_eq!(index, update_index(0, 0, t.address()));
    assert!(
        matches!(&out.events[0].event, Ev::UpdateSubmitted(e) if e.updateHash == h("delta") && e.trainer == t.address())
    );
    assert!(matches!(
        revert(t.submit_update(id, 0, 0, h("other")).await),
        E::AlreadySubmitted(_)
    ));
    let u = t.update(id, index).await.unwrap();
    assert_eq!(
        (u.trainer, u.round, u.status),
        (t.address(), 0, update_status::PENDING)
    );
    assert!(t.matches_hash(id, index, h("delta")).await.unwrap());
    assert!(!t.matches_hash(id, index, h("other")).await.unwrap());
    assert_eq!(
        t.update_hash(id, 0, 0, t.address(), 0).await.unwrap(),
        Some(h("delta"))
    );
    // The reward is reserved at submission.
    assert_eq!(
        t.job(id).await.unwrap().remaining,
        job.deposit - job.base_reward
    );
    assert_eq!(t.account(t.address()).await.unwrap().pending, 1);
    assert!(matches!(
        revert(t.request_leave().await),
        E::PendingVerdicts(_)
    ));

    assert!(matches!(
        revert(v.validate_update(id, index + U256::from(1), true).await),
        E::UnknownUpdate(_)
    ));
    assert!(matches!(
        revert(env.ledger(3).validate_update(id, index, true).await),
        E::NotValidator(_)
    ));
    t.register_validator(U256::ZERO).await.unwrap();
    assert!(matches!(
        revert(t.validate_update(id, index, true).await),
        E::SelfValidation(_)
    ));

    let out = v.validate_update(id, index, true).await.unwrap();
    assert!(
        matches!(&out.events[0].event, Ev::UpdateDecided(e) if e.accepted && e.decidedBy == v.address())
    );
    assert_eq!(
        t.update(id, index).await.unwrap().status,
        update_status::ACCEPTED
    );
    assert!(matches!(
        revert(env.ledger(6).validate_update(id, index, false).await),
        E::AlreadyDecided(_)
    ));
    let acct = t.account(t.address()).await.unwrap();
    assert_eq!((acct.credit, acct.pending), (job.base_reward, 0));

    // Pull payment, to the wei.
    let before = env.balance(t.address()).await;
    let out = t.withdraw().await.unwrap();
    assert_eq!(
        env.balance(t.address()).await,
        before + job.base_reward - out.fee()
    );
    assert!(matches!(
        revert(t.withdraw().await),
        E::NothingToWithdraw(_)
    ));
    let j = t.job(id).await.unwrap();
    assert_eq!(j.remaining, job.deposit - job.base_reward);
    assert_eq!(
        env.balance(env.contract).await,
        j.remaining + eth(600) + U256::ZERO
    );
}

async fn rejection_slashes_and_shares(env: &Env) {
    register_all(env).await;
    let job = env.job(1, 10);
    let id = env.open_job(&job).await;
    let (t, v) = (env.ledger(2), env.ledger(5));
    let (index, _) = t.submit_update(id, 0, 0, h("forged")).await.unwrap();
    let out = v.validate_update(id, index, false).await.unwrap();
    let stake = eth(100);
    let slash = stake * U256::from(env.params.trainer_slash_bps) / U256::from(10_000);
    let share = slash * U256::from(env.params.validator_share_bps) / U256::from(10_000);
    assert!(out.events.iter().any(
        |e| matches!(&e.event, Ev::Slashed(s) if s.account == t.address() && s.amount == slash)
    ));
    assert!(
        out.events
            .iter()
            .any(|e| matches!(&e.event, Ev::UpdateDecided(d) if !d.accepted))
    );
    assert_eq!(
        t.update(id, index).await.unwrap().status,
        update_status::REJECTED
    );
    let ta = t.account(t.address()).await.unwrap();
    assert_eq!(
        (ta.stake, ta.credit, ta.pending),
        (stake - slash, U256::ZERO, 0)
    );
    assert_eq!(v.account(v.address()).await.unwrap().credit, share);
    let j = t.job(id).await.unwrap();
    // The reserved reward comes back and the rest of the slash goes to the job.
    assert_eq!(j.slashedIn, slash - share);
    assert_eq!(j.remaining, job.deposit + slash - share);
    // Conservation: deposited + slashedIn == paid (0) + reserved (0) + remaining + withdrawn.
    assert_eq!(j.deposited + j.slashedIn, j.remaining + j.withdrawn);
    let before = env.balance(v.address()).await;
    let out = v.withdraw().await.unwrap();
    assert_eq!(env.balance(v.address()).await, before + share - out.fee());
}

async fn quorum_and_dissent(env: &Env) {
    register_all(env).await;
    let job = env.job(2, 10);
    let id = env.open_job(&job).await;
    let t = env.ledger(2);
    let (v1, v2, v3) = (env.ledger(5), env.ledger(6), env.ledger(7));
    let (index, _) = t.submit_update(id, 0, 0, h("honest")).await.unwrap();
    let out = v1.validate_update(id, index, true).await.unwrap();
    assert!(
        matches!(&out.events[0].event, Ev::VoteCast(e) if e.valid && e.validator == v1.address())
    );
    assert!(matches!(
        revert(v1.validate_update(id, index, true).await),
        E::AlreadyVoted(_)
    ));
    v2.validate_update(id, index, false).await.unwrap();
    assert_eq!(v2.account(v2.address()).await.unwrap().pending, 1);
    assert!(matches!(
        revert(v2.request_leave().await),
        E::PendingVerdicts(_)
    ));
    assert!(matches!(
        revert(env.ledger(8).finalize_update(id, index).await),
        E::UnderReview(_)
    ));
    let u = t.update(id, index).await.unwrap();
    assert_eq!(
        (u.validVotes, u.invalidVotes, u.status),
        (1, 1, update_status::PENDING)
    );
    assert_eq!(
        t.votes(id, index).await.unwrap(),
        vec![(v1.address(), true), (v2.address(), false)]
    );
    // The third vote decides: valid. v2 voted against the verdict and loses part of its stake.
    v3.validate_update(id, index, true).await.unwrap();
    let penalty = eth(100) * U256::from(env.params.validator_penalty_bps) / U256::from(10_000);
    let a2 = v2.account(v2.address()).await.unwrap();
    assert_eq!((a2.stake, a2.pending), (eth(100) - penalty, 0));
    assert_eq!(v1.account(v1.address()).await.unwrap().stake, eth(100));
    assert_eq!(
        t.account(t.address()).await.unwrap().credit,
        job.base_reward
    );
    let j = t.job(id).await.unwrap();
    assert_eq!(j.slashedIn, penalty);
    assert_eq!(j.remaining, job.deposit - job.base_reward + penalty);
    v2.request_leave().await.unwrap();

    // Second update rejected 2-of-3: the valid voter is penalized, the two invalid voters share.
    let t2 = env.ledger(3);
    let (index2, _) = t2.submit_update(id, 0, 0, h("forged")).await.unwrap();
    v1.validate_update(id, index2, true).await.unwrap();
    v3.validate_update(id, index2, false).await.unwrap();
    assert!(matches!(
        revert(v2.validate_update(id, index2, false).await),
        E::NotValidator(_)
    ));
    env.ledger(4).register_validator(U256::ZERO).await.unwrap();
    let credit_before = v3.account(v3.address()).await.unwrap().credit;
    env.ledger(4)
        .validate_update(id, index2, false)
        .await
        .unwrap();
    let slash = eth(100) * U256::from(env.params.trainer_slash_bps) / U256::from(10_000);
    let each =
        slash * U256::from(env.params.validator_share_bps) / U256::from(10_000) / U256::from(2);
    assert_eq!(
        v3.account(v3.address()).await.unwrap().credit,
        credit_before + each
    );
    assert_eq!(
        env.ledger(4).account(env.addr(4)).await.unwrap().credit,
        each
    );
    assert_eq!(
        v1.account(v1.address()).await.unwrap().stake,
        eth(100) - penalty
    );
    let j2 = t.job(id).await.unwrap();
    assert_eq!(
        j2.slashedIn,
        j.slashedIn + (slash - each * U256::from(2)) + penalty
    );
    assert_eq!(
        j2.remaining,
        j.remaining + (slash - each * U256::from(2)) + penalty
    );
}

async fn validation_rewards(env: &Env) {
    register_all(env).await;
    let reward = eth(1) / U256::from(4);
    let job = NewJob {
        validation_reward: reward,
        ..env.job(2, 10)
    };
    let id = env.open_job(&job).await;
    let (t, t2) = (env.ledger(2), env.ledger(3));
    let (v1, v2, v3) = (env.ledger(5), env.ledger(6), env.ledger(7));
    let credit = |i: usize| async move { env.ledger(i).account(env.addr(i)).await.unwrap().credit };

    // Accepted 2-of-3: the two valid voters are paid, the dissenter is not.
    let (index, _) = t.submit_update(id, 0, 0, h("honest")).await.unwrap();
    v1.validate_update(id, index, true).await.unwrap();
    v2.validate_update(id, index, false).await.unwrap();
    let out = v3.validate_update(id, index, true).await.unwrap();
    assert!(out.events.iter().any(|e| matches!(&e.event,
        Ev::UpdateDecided(d) if d.validatorsPaid == reward * U256::from(2) && d.index == index)));
    assert_eq!(
        (credit(5).await, credit(6).await, credit(7).await),
        (reward, U256::ZERO, reward)
    );
    let penalty = eth(100) * U256::from(env.params.validator_penalty_bps) / U256::from(10_000);
    let j = t.job(id).await.unwrap();
    assert_eq!(j.validationReward, reward);
    assert_eq!(
        j.remaining,
        job.deposit - job.base_reward - reward * U256::from(2) + penalty
    );

    // Rejected 2-of-3: the invalid voters get their share of the slash plus the reward.
    let (index2, _) = t2.submit_update(id, 0, 0, h("forged")).await.unwrap();
    v2.validate_update(id, index2, false).await.unwrap();
    v3.validate_update(id, index2, false).await.unwrap();
    let slash = eth(100) * U256::from(env.params.trainer_slash_bps) / U256::from(10_000);
    let share =
        slash * U256::from(env.params.validator_share_bps) / U256::from(10_000) / U256::from(2);
    assert_eq!(credit(6).await, share + reward);
    assert_eq!(credit(7).await, reward + share + reward);
    let j2 = t.job(id).await.unwrap();
    // The base reward reserved at submission comes back, the rest of the slash comes in, the
    // validators' pay leaves.
    assert_eq!(
        j2.remaining,
        j.remaining + (slash - share * U256::from(2)) - reward * U256::from(2)
    );
    assert_eq!(j2.status, job_status::ACTIVE);

    // An update accepted by finalization pays no validator.
    let (index3, _) = env
        .ledger(4)
        .submit_update(id, 0, 0, h("unchecked"))
        .await
        .unwrap();
    env.warp(601).await;
    let out = env.ledger(1).finalize_update(id, index3).await.unwrap();
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(&e.event, Ev::UpdateDecided(d) if !d.validatorsPaid.is_zero()))
    );

    // A deposit that cannot cover a whole quorum's pay: each gets an equal share of what is
    // left, and the job, unable to reserve another base reward, closes itself.
    let tight = NewJob {
        validation_reward: eth(1),
        deposit: eth(3),
        ..env.job(2, 3)
    };
    let id2 = env.open_job(&tight).await;
    let (index4, _) = t.submit_update(id2, 0, 0, h("honest")).await.unwrap();
    let before = (credit(5).await, credit(6).await);
    v1.validate_update(id2, index4, true).await.unwrap();
    let out = v2.validate_update(id2, index4, true).await.unwrap();
    // 3 deposited − 1 reserved = 2 unreserved: one each, nothing left.
    assert!(out.events.iter().any(|e| matches!(&e.event,
        Ev::JobClosed(c) if c.reason == 1)));
    assert_eq!(credit(5).await, before.0 + eth(1));
    assert_eq!(credit(6).await, before.1 + eth(1));
    let j3 = t.job(id2).await.unwrap();
    assert_eq!((j3.remaining, j3.status), (U256::ZERO, job_status::CLOSED));

    // The contract's limit on the reward.
    assert!(matches!(
        revert(
            env.ledger(0)
                .create_job(&NewJob {
                    validation_reward: U256::from(u64::MAX) + U256::from(1),
                    ..env.job(1, 10)
                })
                .await
        ),
        E::AmountTooLarge(_)
    ));
}

async fn challenges(env: &Env) {
    register_all(env).await;
    let job = env.job(1, 10);
    let id = env.open_job(&job).await;
    let (t, v, c) = (env.ledger(2), env.ledger(5), env.ledger(8));
    let bond = env.params.challenge_bond;
    let (index, _) = t.submit_update(id, 0, 0, h("forged")).await.unwrap();
    assert!(matches!(
        revert(c.challenge(id, index, bond - U256::from(1)).await),
        E::WrongBond(_)
    ));
    assert!(matches!(
        revert(c.challenge(id, index + U256::from(1), bond).await),
        E::UnknownUpdate(_)
    ));
    let out = c.challenge(id, index, bond).await.unwrap();
    assert!(
        matches!(&out.events[0].event, Ev::Challenged(e) if e.challenger == c.address() && e.bond == bond)
    );
    assert!(matches!(
        revert(c.challenge(id, index, bond).await),
        E::AlreadyChallenged(_)
    ));
    let u = t.update(id, index).await.unwrap();
    assert_eq!(
        (u.status, u.challenger),
        (update_status::CHALLENGED, c.address())
    );
    env.warp(601).await;
    assert!(matches!(
        revert(c.finalize_update(id, index).await),
        E::UnderReview(_)
    ));
    // Invalid verdict: the challenger gets the bond back plus the slash less the validators' share.
    v.validate_update(id, index, false).await.unwrap();
    let slash = eth(100) * U256::from(env.params.trainer_slash_bps) / U256::from(10_000);
    let share = slash * U256::from(env.params.validator_share_bps) / U256::from(10_000);
    assert_eq!(
        c.account(c.address()).await.unwrap().credit,
        bond + slash - share
    );
    let j = t.job(id).await.unwrap();
    assert_eq!((j.slashedIn, j.remaining), (U256::ZERO, job.deposit));
    assert!(matches!(
        revert(c.challenge(id, index, bond).await),
        E::AlreadyDecided(_)
    ));
    let before = env.balance(c.address()).await;
    let out = c.withdraw().await.unwrap();
    assert_eq!(
        env.balance(c.address()).await,
        before + bond + slash - share - out.fee()
    );

    // Valid verdict: the bond goes to the trainer with its reward.
    let t2 = env.ledger(3);
    let (index2, _) = t2.submit_update(id, 0, 0, h("honest")).await.unwrap();
    c.challenge(id, index2, bond).await.unwrap();
    v.validate_update(id, index2, true).await.unwrap();
    assert_eq!(
        t2.account(t2.address()).await.unwrap().credit,
        job.base_reward + bond
    );
    assert_eq!(c.account(c.address()).await.unwrap().credit, U256::ZERO);

    // After the window nobody may challenge.
    let t3 = env.ledger(4);
    let (index3, _) = t3.submit_update(id, 0, 0, h("late")).await.unwrap();
    env.warp(601).await;
    assert!(matches!(
        revert(c.challenge(id, index3, bond).await),
        E::WindowClosed(_)
    ));
    let j = t.job(id).await.unwrap();
    let reserved = job.base_reward; // index3 is still pending
    assert_eq!(
        env.balance(env.contract).await,
        j.remaining + reserved + eth(600) - slash
            + t2.account(t2.address()).await.unwrap().credit
            + v.account(v.address()).await.unwrap().credit
    );
}

async fn finalize_after_window(env: &Env) {
    register_all(env).await;
    let job = env.job(1, 10);
    let id = env.open_job(&job).await;
    let t = env.ledger(2);
    let leader = env.ledger(1);
    let anyone = env.ledger(9);
    let (index, _) = t.submit_update(id, 0, 0, h("unreplayed")).await.unwrap();
    assert!(matches!(
        revert(anyone.finalize_update(id, index).await),
        E::WindowOpen(_)
    ));
    assert!(matches!(
        revert(anyone.finalize_update(id, index + U256::from(1)).await),
        E::UnknownUpdate(_)
    ));
    env.warp(601).await;
    // Within the decision timeout only the leader finalizes: a trainer that hid its delta
    // cannot finalize its own update before the leader sent it to validators.
    assert!(matches!(
        revert(anyone.finalize_update(id, index).await),
        E::LeaderGrace(_)
    ));
    assert!(matches!(
        revert(t.finalize_update(id, index).await),
        E::LeaderGrace(_)
    ));
    let out = leader.finalize_update(id, index).await.unwrap();
    assert!(
        matches!(&out.events[0].event, Ev::UpdateDecided(e) if e.accepted && e.decidedBy == Address::ZERO)
    );
    assert_eq!(
        t.account(t.address()).await.unwrap().credit,
        job.base_reward
    );
    assert!(matches!(
        revert(anyone.finalize_update(id, index).await),
        E::AlreadyDecided(_)
    ));
    // After the timeout anyone may (a leader that went away does not lock the reward).
    let t2 = env.ledger(3);
    let (index2, _) = t2.submit_update(id, 0, 0, h("late leader")).await.unwrap();
    env.warp(601 + env.params.decision_timeout).await;
    anyone.finalize_update(id, index2).await.unwrap();
    assert_eq!(
        t2.update(id, index2).await.unwrap().status,
        update_status::ACCEPTED
    );
}

/// A trainer may submit one update per shard of a round (a second task of the round), and an
/// update challenged or objected to that reaches no quorum by its decision timeout is settled:
/// accepted when only valid votes were cast and nobody challenged, void otherwise.
async fn second_shard_and_decision_timeout(env: &Env) {
    register_all(env).await;
    let job = env.job(2, 10);
    let id = env.open_job(&job).await;
    let t = env.ledger(2);
    let (v, c, anyone) = (env.ledger(5), env.ledger(8), env.ledger(9));
    let bond = env.params.challenge_bond;
    let (i0, _) = t.submit_update(id, 0, 0, h("shard 0")).await.unwrap();
    let (i1, out) = t.submit_update(id, 0, 1, h("shard 1")).await.unwrap();
    assert_ne!(i0, i1);
    assert!(
        matches!(&out.events[0].event, Ev::UpdateSubmitted(e) if e.index == i1 && e.trainer == t.address())
    );
    let u1 = t.update(id, i1).await.unwrap();
    assert_eq!((u1.trainer, u1.round, u1.shard), (t.address(), 0, 1));
    assert_eq!(
        t.update_hash(id, 0, 1, t.address(), 0).await.unwrap(),
        Some(h("shard 1"))
    );
    assert!(matches!(
        revert(t.submit_update(id, 0, 1, h("again")).await),
        E::AlreadySubmitted(_)
    ));
    let (i2, _) = t.submit_update(id, 0, 2, h("shard 2")).await.unwrap();
    assert_eq!(t.account(t.address()).await.unwrap().pending, 3);

    // i0: challenged, nobody votes. i1: one invalid vote of a quorum of 2. i2: one valid vote.
    c.challenge(id, i0, bond).await.unwrap();
    v.validate_update(id, i1, false).await.unwrap();
    let w = env.ledger(6);
    w.validate_update(id, i2, true).await.unwrap();
    let stake = t.account(t.address()).await.unwrap().stake;
    let remaining = t.job(id).await.unwrap().remaining;
    env.warp(601).await;
    for i in [i0, i1, i2] {
        assert!(matches!(
            revert(anyone.finalize_update(id, i).await),
            E::UnderReview(_)
        ));
    }
    env.warp(env.params.decision_timeout).await;
    let out = anyone.finalize_update(id, i0).await.unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(&e.event, Ev::UpdateVoided(d) if d.index == i0))
    );
    anyone.finalize_update(id, i1).await.unwrap();
    anyone.finalize_update(id, i2).await.unwrap();
    let status = |i| async move { t.update(id, i).await.unwrap().status };
    assert_eq!(status(i0).await, update_status::VOID);
    assert_eq!(status(i1).await, update_status::VOID);
    assert_eq!(status(i2).await, update_status::ACCEPTED);
    // Void: the trainer is neither paid nor slashed, the challenger has its bond back, the
    // voters are released without penalty or pay, and two rewards return to the deposit.
    let ta = t.account(t.address()).await.unwrap();
    assert_eq!(
        (ta.stake, ta.credit, ta.pending),
        (stake, job.base_reward, 0)
    );
    assert_eq!(c.account(c.address()).await.unwrap().credit, bond);
    let va = v.account(v.address()).await.unwrap();
    assert_eq!((va.stake, va.credit, va.pending), (eth(100), U256::ZERO, 0));
    assert_eq!(w.account(w.address()).await.unwrap().pending, 0);
    assert_eq!(
        t.job(id).await.unwrap().remaining,
        remaining + job.base_reward * U256::from(2)
    );
    assert!(matches!(
        revert(anyone.finalize_update(id, i0).await),
        E::AlreadyDecided(_)
    ));
}

async fn checkpoints_and_final_close(env: &Env) {
    register_all(env).await;
    let job = NewJob {
        rounds: 2,
        ..env.job(1, 10)
    };
    let (id, _) = env.ledger(0).create_job(&job).await.unwrap();
    let leader = env.ledger(1);
    assert!(matches!(
        revert(
            env.ledger(0)
                .commit_checkpoint(id, 0, h("c0"), B256::ZERO)
                .await
        ),
        E::NotLeader(_)
    ));
    assert!(matches!(
        revert(
            leader
                .commit_checkpoint(U256::from(5), 0, h("c0"), B256::ZERO)
                .await
        ),
        E::JobNotFound(_)
    ));
    assert!(matches!(
        revert(
            leader
                .commit_checkpoint(id, 1, h("c1"), h("manifest"))
                .await
        ),
        E::WrongRound(_)
    ));
    assert!(matches!(
        revert(
            leader
                .commit_checkpoint(id, 0, Default::default(), B256::ZERO)
                .await
        ),
        E::ZeroHash(_)
    ));
    let out = leader
        .commit_checkpoint(id, 0, h("c0"), B256::ZERO)
        .await
        .unwrap();
    assert!(
        matches!(&out.events[0].event, Ev::CheckpointCommitted(e) if e.checkpointHash == h("c0"))
    );
    // After θ₀ a checkpoint must name its manifest.
    assert!(matches!(
        revert(leader.commit_checkpoint(id, 1, h("c1"), B256::ZERO).await),
        E::ZeroHash(_)
    ));
    leader
        .commit_checkpoint(id, 1, h("c1"), h("manifest"))
        .await
        .unwrap();
    assert_eq!(leader.checkpoint(id, 1).await.unwrap(), h("c1"));
    let manifests = leader.checkpoint_manifests(id, 0).await.unwrap();
    assert_eq!(
        manifests.into_iter().collect::<Vec<_>>(),
        vec![(0, B256::ZERO), (1, h("manifest"))]
    );
    env.ledger(2).submit_update(id, 1, 0, h("d")).await.unwrap();
    let out = leader
        .commit_checkpoint(id, 2, h("final"), h("manifest"))
        .await
        .unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(&e.event, Ev::JobClosed(c) if c.reason == 2))
    );
    assert!(matches!(
        revert(leader.commit_checkpoint(id, 3, h("x"), h("manifest")).await),
        E::WrongRound(_)
    ));
    let j = leader.job(id).await.unwrap();
    assert_eq!((j.status, j.checkpoints), (job_status::CLOSED, 3));
    assert!(matches!(
        revert(env.ledger(3).submit_update(id, 2, 0, h("d")).await),
        E::JobNotActive(_)
    ));
    assert_eq!(leader.checkpoint(id, 2).await.unwrap(), h("final"));
}

async fn exhaustion_and_owner_withdrawal(env: &Env) {
    register_all(env).await;
    // 2.5 rewards: two submissions reserve 2, leaving 0.5 < reward, so the job closes itself.
    let job = NewJob {
        deposit: eth(2) + eth(1) / U256::from(2),
        ..env.job(1, 0)
    };
    let id = env.open_job(&job).await;
    env.ledger(2).submit_update(id, 0, 0, h("a")).await.unwrap();
    let (i3, out) = env.ledger(3).submit_update(id, 0, 0, h("b")).await.unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(&e.event, Ev::JobClosed(c) if c.reason == 1))
    );
    assert!(matches!(
        revert(env.ledger(4).submit_update(id, 0, 0, h("c")).await),
        E::JobNotActive(_)
    ));
    let owner = env.ledger(0);
    assert!(matches!(
        revert(env.ledger(1).withdraw_unused_funds(id).await),
        E::NotJobOwner(_)
    ));
    assert!(matches!(
        revert(owner.withdraw_unused_funds(U256::from(9)).await),
        E::JobNotFound(_)
    ));
    let before = env.balance(owner.address()).await;
    let out = owner.withdraw_unused_funds(id).await.unwrap();
    let half = eth(1) / U256::from(2);
    assert_eq!(
        env.balance(owner.address()).await,
        before + half - out.fee()
    );
    assert!(matches!(
        revert(owner.withdraw_unused_funds(id).await),
        E::NothingToWithdraw(_)
    ));
    // Pending updates of a closed job are still decided; a rejection releases its reward.
    env.ledger(5).validate_update(id, i3, false).await.unwrap();
    let slash = eth(100) * U256::from(env.params.trainer_slash_bps) / U256::from(10_000);
    let share = slash * U256::from(env.params.validator_share_bps) / U256::from(10_000);
    let j = owner.job(id).await.unwrap();
    assert_eq!(j.remaining, job.base_reward + slash - share);
    let before = env.balance(owner.address()).await;
    let out = owner.withdraw_unused_funds(id).await.unwrap();
    assert_eq!(
        env.balance(owner.address()).await,
        before + job.base_reward + slash - share - out.fee()
    );
    let j = owner.job(id).await.unwrap();
    // deposited + slashedIn == paid (0 so far) + reserved (1 reward) + remaining + withdrawn
    assert_eq!(
        j.deposited + j.slashedIn,
        job.base_reward + j.remaining + j.withdrawn
    );
    // Closing an active job with a zero balance is allowed once.
    let job2 = env.job(1, 10);
    let (id2, _) = owner.create_job(&job2).await.unwrap();
    let before = env.balance(owner.address()).await;
    let out = owner.withdraw_unused_funds(id2).await.unwrap();
    assert_eq!(
        env.balance(owner.address()).await,
        before + job2.deposit - out.fee()
    );
    assert_eq!(owner.job(id2).await.unwrap().status, job_status::CLOSED);
}

async fn bonuses(env: &Env) {
    register_all(env).await;
    let job = NewJob {
        bonus_reward: eth(2),
        ..env.job(1, 7)
    };
    let id = env.open_job(&job).await;
    let leader = env.ledger(1);
    let (index, _) = env
        .ledger(2)
        .submit_update(id, 0, 0, h("good"))
        .await
        .unwrap();
    assert!(matches!(
        revert(leader.award_bonus(id, index).await),
        E::NotAccepted(_)
    ));
    env.ledger(5)
        .validate_update(id, index, true)
        .await
        .unwrap();
    assert!(matches!(
        revert(env.ledger(0).award_bonus(id, index).await),
        E::NotLeader(_)
    ));
    let out = leader.award_bonus(id, index).await.unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(&e.event, Ev::BonusAwarded(b) if b.amount == eth(2)))
    );
    assert_eq!(
        leader.account(env.addr(2)).await.unwrap().credit,
        job.base_reward + eth(2)
    );
    assert_eq!(
        leader.update(id, index).await.unwrap().status,
        update_status::BONUSED
    );
    assert!(matches!(
        revert(leader.award_bonus(id, index).await),
        E::NotAccepted(_)
    ));
    assert_eq!(
        leader.job(id).await.unwrap().remaining,
        job.deposit - job.base_reward - eth(2)
    );
    // A bonus larger than what is left is refused.
    let (i2, _) = env
        .ledger(3)
        .submit_update(id, 0, 0, h("g2"))
        .await
        .unwrap();
    env.ledger(5).validate_update(id, i2, true).await.unwrap();
    let (i3, _) = env
        .ledger(4)
        .submit_update(id, 0, 0, h("g3"))
        .await
        .unwrap();
    env.ledger(5).validate_update(id, i3, true).await.unwrap();
    // 7 - 3 rewards - 2 bonuses = 0: the second bonus empties the deposit and closes the job.
    let out = leader.award_bonus(id, i2).await.unwrap();
    assert!(
        out.events
            .iter()
            .any(|e| matches!(&e.event, Ev::JobClosed(c) if c.reason == 1))
    );
    assert!(matches!(
        revert(leader.award_bonus(id, i3).await),
        E::InsufficientDeposit(_)
    ));
    // A job without a bonus.
    let id2 = env.open_job(&env.job(1, 10)).await;
    let (i4, _) = env
        .ledger(2)
        .submit_update(id2, 0, 0, h("x"))
        .await
        .unwrap();
    env.ledger(5).validate_update(id2, i4, true).await.unwrap();
    assert!(matches!(
        revert(leader.award_bonus(id2, i4).await),
        E::NoBonus(_)
    ));
}

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    Reenterer,
    "../../contracts/out/Reenterer.json"
);

async fn reentrancy_and_refused_payments(env: &Env) {
    register_all(env).await;
    let wallet = alloy::providers::ProviderBuilder::new()
        .wallet(funetun_chain::dev_accounts(10)[8].signer())
        .connect_http(env.rpc_url.parse().unwrap());
    let attacker = Reenterer::deploy(&wallet, env.contract).await.unwrap();
    let exec = |data: Vec<u8>, value: U256| {
        let attacker = attacker.clone();
        async move {
            attacker
                .execute(data.into())
                .value(value)
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap()
        }
    };
    // The attacker stakes as a trainer and earns one reward.
    let r = exec(JobManager::registerTrainerCall {}.abi_encode(), eth(100)).await;
    assert!(r.status());
    let job = env.job(1, 10);
    let id = env.open_job(&job).await;
    let r = exec(
        JobManager::submitUpdateCall {
            jobId: id,
            round: U256::ZERO,
            shard: 0,
            updateHash: h("a"),
        }
        .abi_encode(),
        U256::ZERO,
    )
    .await;
    assert!(r.status());
    env.ledger(5)
        .validate_update(id, update_index(0, 0, *attacker.address()), true)
        .await
        .unwrap();
    let withdraw = JobManager::withdrawCall {}.abi_encode();
    attacker
        .setReentry(withdraw.clone().into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let contract_before = env.balance(env.contract).await;
    let r = exec(withdraw.clone(), U256::ZERO).await;
    assert!(r.status());
    assert_eq!(env.balance(*attacker.address()).await, job.base_reward);
    assert_eq!(
        env.balance(env.contract).await,
        contract_before - job.base_reward
    );
    assert_eq!(attacker.attempts().call().await.unwrap(), U256::from(1));
    assert!(!attacker.lastReentrySucceeded().call().await.unwrap());
    let err = attacker.lastReentryError().call().await.unwrap();
    assert_eq!(err.as_ref(), JobManager::Reentrancy::SELECTOR.as_slice());

    // As a job owner, re-entering withdrawUnusedFunds is refused the same way.
    let create = JobManager::createJobCall {
        specHash: h("s"),
        leader: env.addr(1),
        baseReward: eth(1),
        bonusReward: U256::ZERO,
        validationReward: U256::ZERO,
        rounds: 1,
        quorum: 1,
        challengeWindow: 60,
    };
    let r = exec(create.abi_encode(), eth(5)).await;
    assert!(r.status());
    let owned = env.ledger(0).job_count().await.unwrap();
    let drain = JobManager::withdrawUnusedFundsCall { jobId: owned }.abi_encode();
    attacker
        .setReentry(drain.clone().into())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let before = env.balance(*attacker.address()).await;
    assert!(exec(drain, U256::ZERO).await.status());
    assert_eq!(env.balance(*attacker.address()).await, before + eth(5));
    assert_eq!(attacker.attempts().call().await.unwrap(), U256::from(2));
    assert!(!attacker.lastReentrySucceeded().call().await.unwrap());

    // A receiver that refuses Ether keeps its credit: the withdrawal reverts as a whole.
    let (i2, _) = (U256::ZERO, ());
    let _ = i2;
    env.ledger(1)
        .commit_checkpoint(id, 1, h("c1"), h("manifest"))
        .await
        .unwrap();
    let r = exec(
        JobManager::submitUpdateCall {
            jobId: id,
            round: U256::from(1),
            shard: 0,
            updateHash: h("b"),
        }
        .abi_encode(),
        U256::ZERO,
    )
    .await;
    assert!(r.status());
    env.ledger(5)
        .validate_update(id, update_index(1, 0, *attacker.address()), true)
        .await
        .unwrap();
    attacker
        .setRejectPayments(true)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let call = attacker.execute(withdraw.into());
    let err = call.call().await.unwrap_err();
    let decoded = err.as_decoded_interface_error::<funetun_chain::JobManager::JobManagerErrors>();
    assert!(matches!(decoded, Some(E::TransferFailed(_))), "{err}");
    assert_eq!(
        env.ledger(0)
            .account(*attacker.address())
            .await
            .unwrap()
            .credit,
        job.base_reward
    );
}

async fn gas_per_accepted_update(env: &Env) {
    register_all(env).await;
    let id = env.open_job(&env.job(1, 10)).await;
    let (index, submit) = env
        .ledger(2)
        .submit_update(id, 0, 0, h("delta"))
        .await
        .unwrap();
    let vote = env
        .ledger(5)
        .validate_update(id, index, true)
        .await
        .unwrap();
    let total = submit.gas_used + vote.gas_used;
    eprintln!(
        "{:?}: submitUpdate {} + validateUpdate {} = {total}",
        env.kind, submit.gas_used, vote.gas_used
    );
    assert!(total <= 100_000, "gas per accepted update {total} > 100k");

    // With the default validation reward the deciding validator is paid too.
    let paid = NewJob {
        validation_reward: eth(1) / U256::from(2),
        ..env.job(1, 10)
    };
    let id = env.open_job(&paid).await;
    let (index, submit) = env
        .ledger(3)
        .submit_update(id, 0, 0, h("delta"))
        .await
        .unwrap();
    let vote = env
        .ledger(5)
        .validate_update(id, index, true)
        .await
        .unwrap();
    let total = submit.gas_used + vote.gas_used;
    eprintln!(
        "{:?}, validator paid: submitUpdate {} + validateUpdate {} = {total}",
        env.kind, submit.gas_used, vote.gas_used
    );
    assert!(
        total <= 110_000,
        "gas per accepted update with a paid validator {total} > 110k"
    );
}

async fn task_batches(env: &Env) {
    register_all(env).await;
    let (owner, leader) = (env.ledger(0), env.ledger(1));
    let reward = eth(1);
    // Bad batches are refused and nothing is locked.
    assert!(matches!(
        revert(
            owner
                .create_task_batch(B256::ZERO, env.addr(1), reward, 60, eth(5))
                .await
        ),
        E::ZeroHash(_)
    ));
    assert!(matches!(
        revert(
            owner
                .create_task_batch(h("b"), Address::ZERO, reward, 60, eth(5))
                .await
        ),
        E::ZeroAddress(_)
    ));
    assert!(matches!(
        revert(
            owner
                .create_task_batch(h("b"), env.addr(1), U256::ZERO, 60, eth(5))
                .await
        ),
        E::InvalidReward(_)
    ));
    assert!(matches!(
        revert(
            owner
                .create_task_batch(h("b"), env.addr(1), eth(6), 60, eth(5))
                .await
        ),
        E::DepositTooSmall(_)
    ));
    assert_eq!(owner.job_count().await.unwrap(), U256::ZERO);

    let (id, out) = owner
        .create_task_batch(h("batch"), env.addr(1), reward, 600, eth(5))
        .await
        .unwrap();
    assert!(out.events.iter().any(|e| matches!(&e.event,
        Ev::TaskBatchCreated(c) if c.batchId == id && c.resultReward == reward && c.deposit == eth(5))));
    let view = owner.job(id).await.unwrap();
    assert_eq!((view.rounds, view.status), (0, job_status::ACTIVE));
    assert_eq!(view.remaining, eth(5));
    assert!(view.expiresAt > 0);
    // A batch is not a training job, and a training job is not a batch.
    assert!(matches!(
        revert(leader.commit_checkpoint(id, 0, h("c"), B256::ZERO).await),
        E::NotTrainingJob(_)
    ));
    assert!(matches!(
        revert(env.ledger(2).submit_update(id, 0, 0, h("d")).await),
        E::WrongRound(_)
    ));
    let job = env.open_job(&env.job(1, 10)).await;
    assert!(matches!(
        revert(
            leader
                .settle_compute_task(job, h("t"), h("r"), vec![env.addr(2)], vec![])
                .await
        ),
        E::NotTaskBatch(_)
    ));

    // Two agree, one is outvoted: two results paid, the third worker slashed into the deposit.
    let (w2, w3, w4) = (env.addr(2), env.addr(3), env.addr(4));
    assert!(matches!(
        revert(
            env.ledger(2)
                .settle_compute_task(id, h("t1"), h("r"), vec![w2, w3], vec![])
                .await
        ),
        E::NotLeader(_)
    ));
    assert!(matches!(
        revert(
            leader
                .settle_compute_task(id, h("t1"), h("r"), vec![w2, w3], vec![w2])
                .await
        ),
        E::BadSettlement(_)
    ));
    assert!(matches!(
        revert(
            leader
                .settle_compute_task(id, h("t1"), B256::ZERO, vec![w2], vec![])
                .await
        ),
        E::ZeroHash(_)
    ));
    let stake4 = owner.account(w4).await.unwrap().stake;
    let out = leader
        .settle_compute_task(id, h("t1"), h("r"), vec![w2, w3], vec![w4])
        .await
        .unwrap();
    let slash = stake4 * U256::from(env.params.trainer_slash_bps) / U256::from(10_000);
    assert!(out.events.iter().any(|e| matches!(&e.event,
        Ev::TaskSettled(t) if t.taskId == h("t1") && t.paid == U256::from(2) && t.slashedWei == slash)));
    assert_eq!(owner.account(w2).await.unwrap().credit, reward);
    assert_eq!(owner.account(w3).await.unwrap().credit, reward);
    assert_eq!(owner.account(w4).await.unwrap().stake, stake4 - slash);
    assert!(owner.task_settled(id, h("t1")).await.unwrap());
    assert!(!owner.task_settled(id, h("t2")).await.unwrap());
    let view = owner.job(id).await.unwrap();
    assert_eq!(view.remaining, eth(5) - reward * U256::from(2) + slash);
    assert_eq!(view.slashedIn, slash);
    assert!(matches!(
        revert(
            leader
                .settle_compute_task(id, h("t1"), h("r"), vec![w2], vec![])
                .await
        ),
        E::TaskAlreadySettled(_)
    ));
    // A task nobody agreed on settles with nobody paid; one the deposit cannot cover is refused whole.
    leader
        .settle_compute_task(id, h("t2"), B256::ZERO, vec![], vec![])
        .await
        .unwrap();
    let (small, _) = owner
        .create_task_batch(h("small"), env.addr(1), reward, 600, reward)
        .await
        .unwrap();
    let before = owner.job(small).await.unwrap();
    assert!(matches!(
        revert(
            leader
                .settle_compute_task(small, h("t3"), h("r"), vec![w2, w3], vec![])
                .await
        ),
        E::InsufficientDeposit(_)
    ));
    assert_eq!(owner.job(small).await.unwrap(), before);
    assert!(!owner.task_settled(small, h("t3")).await.unwrap());
    let before = owner.job(id).await.unwrap();

    // The owner cannot take the deposit from under the workers before the batch expires.
    assert!(matches!(
        revert(owner.withdraw_unused_funds(id).await),
        E::BatchNotExpired(_)
    ));
    env.warp(601).await;
    assert!(matches!(
        revert(
            leader
                .settle_compute_task(id, h("t4"), h("r"), vec![w2], vec![])
                .await
        ),
        E::BatchExpired(_)
    ));
    let balance = env.balance(owner.address()).await;
    let out = owner.withdraw_unused_funds(id).await.unwrap();
    assert_eq!(
        env.balance(owner.address()).await,
        balance + before.remaining - out.fee()
    );
    let view = owner.job(id).await.unwrap();
    assert_eq!(view.status, job_status::CLOSED);
    // deposited + slashedIn == paid + remaining + withdrawn
    assert_eq!(
        view.deposited + view.slashedIn,
        reward * U256::from(2) + view.remaining + view.withdrawn
    );
    // The workers take their pay out.
    let balance = env.balance(w2).await;
    let out = env.ledger(2).withdraw().await.unwrap();
    assert_eq!(env.balance(w2).await, balance + reward - out.fee());
}

async fn gas_per_accepted_result(env: &Env) {
    register_all(env).await;
    let (id, _) = env
        .ledger(0)
        .create_task_batch(h("batch"), env.addr(1), eth(1), 3_600, eth(50))
        .await
        .unwrap();
    let workers = [env.addr(2), env.addr(3)];
    let mut gas = Vec::new();
    for task in 0..3 {
        let out = env
            .ledger(1)
            .settle_compute_task(
                id,
                h(&format!("task {task}")),
                h("result"),
                workers.to_vec(),
                vec![],
            )
            .await
            .unwrap();
        gas.push(out.gas_used);
    }
    // The first settlement pays the workers' cold credit slots; later ones are the steady state.
    let per_result = gas[2] / 2;
    eprintln!(
        "{:?}: settleComputeTask quorum 2: first {} gas, steady {} gas = {per_result} per accepted result",
        env.kind, gas[0], gas[2]
    );
    assert!(
        per_result <= 42_000,
        "gas per accepted result {per_result} > 42k"
    );
}
