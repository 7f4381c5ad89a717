//! The redundancy rule on results made by hand.

use funetun_compute::{
    Failure, FailureClass, Outcome, Redundancy, Sandbox, Validator, Verdict, decide,
};

fn ok(json: &str) -> Outcome {
    Outcome {
        result: Ok(json.as_bytes().to_vec()),
        fuel_used: 10,
    }
}

fn failed(class: FailureClass) -> Outcome {
    Outcome {
        result: Err(Failure {
            class,
            detail: format!("{class} happened"),
        }),
        fuel_used: 10,
    }
}

fn verdict(red: &Redundancy, results: &[Outcome], outstanding: u32, issued: u32) -> Verdict {
    let sandbox = Sandbox::new().unwrap();
    decide(
        red,
        results,
        outstanding,
        issued,
        &sandbox,
        &Validator::exact(),
    )
}

#[test]
fn a_new_task_gets_its_target_replicas() {
    let red = Redundancy {
        min_quorum: 2,
        target_nresults: 3,
        ..Redundancy::default()
    };
    assert_eq!(verdict(&red, &[], 0, 0), Verdict::More(3));
}

#[test]
fn two_agreeing_results_are_canonical() {
    let red = Redundancy::default();
    assert_eq!(
        verdict(&red, &[ok("1"), ok("1")], 0, 2),
        Verdict::Canonical {
            canonical: 0,
            valid: vec![0, 1],
            invalid: vec![],
        }
    );
}

#[test]
fn a_disagreement_issues_more_and_the_odd_one_out_is_invalid() {
    let red = Redundancy::default();
    assert_eq!(verdict(&red, &[ok("1")], 1, 2), Verdict::Wait);
    assert_eq!(verdict(&red, &[ok("1"), ok("2")], 0, 2), Verdict::More(1));
    assert_eq!(
        verdict(&red, &[ok("1"), ok("2"), ok("2")], 0, 3),
        Verdict::Canonical {
            canonical: 1,
            valid: vec![1, 2],
            invalid: vec![0],
        }
    );
}

#[test]
fn agreeing_failures_are_a_canonical_result() {
    let red = Redundancy::default();
    let results = [
        failed(FailureClass::Fuel),
        ok("1"),
        failed(FailureClass::Fuel),
    ];
    assert_eq!(
        verdict(&red, &results, 0, 3),
        Verdict::Canonical {
            canonical: 0,
            valid: vec![0, 2],
            invalid: vec![1],
        }
    );
    // Different classes do not agree.
    let results = [failed(FailureClass::Fuel), failed(FailureClass::Trap)];
    assert_eq!(verdict(&red, &results, 0, 2), Verdict::More(1));
}

#[test]
fn the_limits_end_a_task_without_a_quorum() {
    let red = Redundancy {
        min_quorum: 2,
        target_nresults: 2,
        max_error_results: 1,
        max_total_results: 4,
        adaptive: false,
    };
    let failures = [failed(FailureClass::Fuel), failed(FailureClass::Trap)];
    assert!(matches!(
        verdict(&red, &failures, 0, 2),
        Verdict::GiveUp(why) if why.contains("max_error_results")
    ));
    let split = [ok("1"), ok("2"), ok("3"), ok("4")];
    assert!(matches!(
        verdict(&red, &split, 0, 4),
        Verdict::GiveUp(why) if why.contains("max_total_results")
    ));
    // A lapsed replica counts against the total but gave no result.
    assert_eq!(verdict(&red, &[ok("1")], 0, 3), Verdict::More(1));
}

#[test]
fn settings_that_cannot_be_met_are_refused() {
    let bad = [
        Redundancy {
            min_quorum: 0,
            ..Redundancy::default()
        },
        Redundancy {
            min_quorum: 3,
            target_nresults: 2,
            ..Redundancy::default()
        },
        Redundancy {
            max_total_results: 1,
            ..Redundancy::default()
        },
        Redundancy {
            max_total_results: 65,
            ..Redundancy::default()
        },
    ];
    for red in bad {
        let why = red.check().unwrap_err();
        assert!(
            why.contains("min_quorum") || why.contains("max_total_results"),
            "{why}"
        );
    }
    Redundancy::default().check().unwrap();
}
