//! The shipped example tasks in the sandbox, and an owner's validator.

use funetun_compute::examples::example;
use funetun_compute::{
    FailureClass, Input, Limits, Outcome, Redundancy, Sandbox, Validator, Verdict, decide,
};

fn run_example(sandbox: &Sandbox, name: &str, input: &str) -> Outcome {
    let program = sandbox.compile(example(name).unwrap().wasm).unwrap();
    sandbox.run(&program, &Input::new(input.into()).unwrap(), &Limits::TASK)
}

#[test]
fn pi_estimates_pi_and_gives_the_same_bits_every_time() {
    let sandbox = Sandbox::new().unwrap();
    let input = r#"{"samples": 200000, "seed": 11}"#;
    let a = run_example(&sandbox, "pi", input);
    let b = run_example(&Sandbox::new().unwrap(), "pi", input);
    assert_eq!(a, b);
    let out: serde_json::Value = serde_json::from_slice(a.result.as_ref().unwrap()).unwrap();
    let pi = out["pi"].as_f64().unwrap();
    assert!((pi - std::f64::consts::PI).abs() < 0.02, "{pi}");
    assert_eq!(out["samples"], 200000);
    // Another seed, another estimate.
    let c = run_example(&sandbox, "pi", r#"{"samples": 200000, "seed": 12}"#);
    assert_ne!(a.digest(), c.digest());
    // The task's own refusal is an answer, not a failure.
    let refused = run_example(&sandbox, "pi", r#"{"samples": 0, "seed": 1}"#);
    let out: serde_json::Value = serde_json::from_slice(&refused.result.unwrap()).unwrap();
    assert!(out["error"].as_str().unwrap().contains("samples"));
}

#[test]
fn pi_with_too_little_fuel_fails_the_same_way_twice() {
    let sandbox = Sandbox::new().unwrap();
    let program = sandbox.compile(example("pi").unwrap().wasm).unwrap();
    let input = Input::new(br#"{"samples": 100000000, "seed": 1}"#.to_vec()).unwrap();
    let limits = Limits {
        fuel: 5_000_000,
        ..Limits::TASK
    };
    let a = sandbox.run(&program, &input, &limits);
    let b = sandbox.run(&program, &input, &limits);
    assert_eq!(a.result.as_ref().unwrap_err().class, FailureClass::Fuel);
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.fuel_used, limits.fuel);
}

#[test]
fn rounding_results_differ_in_bits_and_agree_under_the_owners_validator() {
    let sandbox = Sandbox::new().unwrap();
    let sums: Vec<Outcome> = ["forward", "backward", "pairwise"]
        .iter()
        .map(|order| {
            let input = format!(r#"{{"values": 100000, "seed": 3, "order": "{order}"}}"#);
            let outcome = run_example(&sandbox, "rounding", &input);
            let out: serde_json::Value =
                serde_json::from_slice(outcome.result.as_ref().unwrap()).unwrap();
            // Compare the sums only (the echoed order differs by design).
            Outcome {
                result: Ok(format!(r#"{{"sum":{}}}"#, out["sum"]).into_bytes()),
                ..outcome
            }
        })
        .collect();
    assert!(
        sums.windows(2).any(|w| w[0].result != w[1].result),
        "the orders should round differently: {sums:?}"
    );
    let owner = Validator::from_wasm(&sandbox, example("rounding-valid").unwrap().wasm).unwrap();
    let exact = Validator::exact();
    let red = Redundancy {
        min_quorum: 3,
        target_nresults: 3,
        ..Redundancy::default()
    };
    assert!(matches!(
        decide(&red, &sums, 0, 3, &sandbox, &owner),
        Verdict::Canonical { ref valid, .. } if valid.len() == 3
    ));
    assert!(!matches!(
        decide(&red, &sums, 0, 3, &sandbox, &exact),
        Verdict::Canonical { .. }
    ));
    // A wrong sum is outside the tolerance; a sum that is not finite is not valid.
    let wrong = Outcome {
        result: Ok(br#"{"sum": 1e300}"#.to_vec()),
        fuel_used: 0,
    };
    assert!(!owner.compare_valid(&sandbox, &sums[0], &wrong));
    assert!(owner.init_valid(&sandbox, &sums[0]));
    let missing = Outcome {
        result: Ok(br#"{"total": 1}"#.to_vec()),
        fuel_used: 0,
    };
    assert!(!owner.init_valid(&sandbox, &missing));
}

#[test]
fn a_validator_that_fails_answers_no() {
    let sandbox = Sandbox::new().unwrap();
    let trapping = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "funetun_alloc") (param i32) (result i32) i32.const 0)
             (func (export "init_valid") (param i32 i32) (result i32) unreachable)
             (func (export "compare_valid") (param i32 i32 i32 i32) (result i32) (loop br 0) i32.const 1))"#,
    )
    .unwrap();
    let v = Validator::from_wasm(&sandbox, &trapping).unwrap();
    let out = Outcome {
        result: Ok(b"1".to_vec()),
        fuel_used: 0,
    };
    assert!(!v.init_valid(&sandbox, &out));
    assert!(!v.compare_valid(&sandbox, &out, &out));
    // A module with neither function is refused.
    let neither = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "funetun_alloc") (param i32) (result i32) i32.const 0))"#,
    )
    .unwrap();
    assert!(Validator::from_wasm(&sandbox, &neither).is_err());
}

#[test]
fn sweep_trains_the_mlp_in_the_sandbox_the_same_bits_every_time() {
    let input = example("sweep").unwrap().input;
    let a = run_example(&Sandbox::new().unwrap(), "sweep", input);
    let b = run_example(&Sandbox::new().unwrap(), "sweep", input);
    assert_eq!(a, b);
    assert!(a.fuel_used < Limits::TASK.fuel, "{}", a.fuel_used);
    let out: serde_json::Value = serde_json::from_slice(a.result.as_ref().unwrap()).unwrap();
    // 60 steps of the MLP on the synthetic set: well past chance (0.1).
    let accuracy = out["val_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.8, "{out}");
    assert!(out["train_loss_after"].as_f64().unwrap() < out["train_loss_before"].as_f64().unwrap());
    assert_eq!(out["steps"], 60);
    // Another learning rate is another point of the sweep.
    let sandbox = Sandbox::new().unwrap();
    let c = run_example(
        &sandbox,
        "sweep",
        r#"{"lr": 0.2, "optimizer": "momentum", "seed": 1}"#,
    );
    assert_ne!(a.digest(), c.digest());
    // A setting the engine refuses is the task's answer, naming it.
    let refused = run_example(&sandbox, "sweep", r#"{"lr": 0.1, "optimizer": "rmsprop"}"#);
    let out: serde_json::Value = serde_json::from_slice(&refused.result.unwrap()).unwrap();
    assert!(out["error"].as_str().unwrap().contains("rmsprop"), "{out}");
    let refused = run_example(&sandbox, "sweep", r#"{"lr": 0.1, "steps": 100000}"#);
    let out: serde_json::Value = serde_json::from_slice(&refused.result.unwrap()).unwrap();
    assert!(out["error"].as_str().unwrap().contains("steps"), "{out}");
}
