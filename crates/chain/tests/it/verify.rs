//! `Ledger::verify_submission` and `Ledger::verify_vote` on the embedded dev chain: what a
//! named transaction proves, at the confirmation depth.

use alloy::primitives::{Address, B256, U256};
use funetun_chain::{Ledger, LedgerConfig, SubmissionCheck, VoteCheck, dev_accounts};

use crate::common::{Env, Kind, eth, h};

async fn env() -> Env {
    let env = Env::new(Kind::Dev)
        .await
        .expect("the dev chain needs no binary");
    env.ledger(2).register_trainer(eth(100)).await.unwrap();
    for i in 5..=6 {
        env.ledger(i).register_validator(eth(100)).await.unwrap();
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_is_checked_against_its_receipt_and_depth() {
    let env = env().await;
    let id = env.open_job(&env.job(2, 10)).await;
    let t = env.ledger(2);
    let (_, out) = t.submit_update(id, 0, 0, h("delta")).await.unwrap();
    let trainer = t.address();
    let SubmissionCheck::Confirmed {
        block_number,
        block_hash,
    } = check(t, out.tx_hash, id, 0, trainer, h("delta")).await
    else {
        panic!("the submission is confirmed at depth 1");
    };
    assert_eq!(block_number, out.block_number);
    assert_ne!(block_hash, B256::ZERO);
    // Another hash, round, trainer or job: the transaction does not prove it.
    for (job, round, who, hash) in [
        (id, 0, trainer, h("other")),
        (id, 1, trainer, h("delta")),
        (id, 0, env.addr(3), h("delta")),
        (id + U256::from(1), 0, trainer, h("delta")),
    ] {
        assert_eq!(
            check(t, out.tx_hash, job, round, who, hash).await,
            SubmissionCheck::NoEvent
        );
    }
    assert_eq!(
        check(t, h("never sent"), id, 0, trainer, h("delta")).await,
        SubmissionCheck::NotMined
    );

    // A ledger that wants 3 confirmations waits for two more blocks.
    let deep = Ledger::new(
        env.provider.clone(),
        env.contract,
        dev_accounts(10)[1].signer(),
        LedgerConfig {
            confirmations: 3,
            poll_interval: std::time::Duration::from_millis(5),
            ..LedgerConfig::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(deep.block_number().await.unwrap(), out.block_number);
    assert_eq!(
        check(&deep, out.tx_hash, id, 0, trainer, h("delta")).await,
        SubmissionCheck::Unconfirmed {
            block_number: out.block_number
        }
    );
    env.warp(1).await;
    env.warp(1).await;
    assert!(matches!(
        check(&deep, out.tx_hash, id, 0, trainer, h("delta")).await,
        SubmissionCheck::Confirmed { block_number, .. } if block_number == out.block_number
    ));
}

async fn check(
    ledger: &Ledger,
    tx: B256,
    job: U256,
    round: u64,
    trainer: Address,
    hash: B256,
) -> SubmissionCheck {
    ledger
        .verify_submission(tx, job, round, 0, trainer, hash)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_is_found_in_its_receipt_or_among_stored_votes() {
    let env = env().await;
    let id = env.open_job(&env.job(2, 10)).await;
    let (t, v1, v2) = (env.ledger(2), env.ledger(5), env.ledger(6));
    let (index, submitted) = t.submit_update(id, 0, 0, h("delta")).await.unwrap();
    let first = v1.validate_update(id, index, true).await.unwrap();
    assert_eq!(
        v1.verify_vote(first.tx_hash, id, index, v1.address(), true)
            .await
            .unwrap(),
        VoteCheck {
            found: true,
            decided: None
        }
    );
    // The other verdict, another validator, or a transaction without the vote.
    assert!(
        !v1.verify_vote(first.tx_hash, id, index, v1.address(), false)
            .await
            .unwrap()
            .found
    );
    assert!(
        !v1.verify_vote(first.tx_hash, id, index, v2.address(), true)
            .await
            .unwrap()
            .found
    );
    // A transaction that does not carry the vote: the stored votes still do.
    assert_eq!(
        v1.verify_vote(submitted.tx_hash, id, index, v1.address(), true)
            .await
            .unwrap(),
        VoteCheck {
            found: true,
            decided: None
        }
    );
    // The second vote reaches the quorum: its transaction decides the update.
    let second = v2.validate_update(id, index, true).await.unwrap();
    assert_eq!(
        v2.verify_vote(second.tx_hash, id, index, v2.address(), true)
            .await
            .unwrap(),
        VoteCheck {
            found: true,
            decided: Some(true)
        }
    );
    assert_eq!(
        v2.verify_vote(second.tx_hash, id, index, v1.address(), true)
            .await
            .unwrap()
            .decided,
        Some(true)
    );
}
