//! Same inputs → same delta bytes, whatever the thread count.

use funetun_core::{encode, keccak256};
use funetun_ml::Architecture as _;
use funetun_ml::{Compute, Model, OptimizerKind, TaskSpec, train_task};

fn delta_hash(
    model: Model,
    optimizer: OptimizerKind,
    steps: usize,
    seed: u64,
    threads: usize,
) -> String {
    let data = funetun_ml::data::synthetic::generate(0, 2_000, 200).unwrap();
    let spec = TaskSpec {
        model,
        shard: 1,
        shards: 4,
        steps,
        batch: 32,
        lr: if matches!(optimizer, OptimizerKind::AdamW { .. }) {
            0.001
        } else {
            0.05
        },
        optimizer,
        schedule: funetun_ml::optim::Schedule::Constant,
        step0: 0,
        grad_clip: 0.0,
        seed,
        lora: None,
    };
    let compute = Compute::new(threads).unwrap();
    let out = train_task(&model.init(9), &data, &spec, &compute, &mut |_| {}).unwrap();
    assert!(
        out.loss_after < out.loss_before,
        "{model}: training did not lower the loss"
    );
    keccak256(encode(&out.delta)).to_string()
}

#[test]
fn mlp_delta_is_identical_at_1_2_and_3_threads() {
    for opt in [
        OptimizerKind::Sgd,
        OptimizerKind::Momentum { momentum: 0.9 },
        OptimizerKind::ADAM,
    ] {
        let one = delta_hash(Model::Mlp, opt, 50, 4, 1);
        assert_eq!(one, delta_hash(Model::Mlp, opt, 50, 4, 2), "{opt}");
        assert_eq!(one, delta_hash(Model::Mlp, opt, 50, 4, 3), "{opt}");
    }
}

#[test]
fn cnn_delta_is_identical_at_1_and_2_threads() {
    let one = delta_hash(Model::Cnn, OptimizerKind::ADAM, 4, 4, 1);
    assert_eq!(one, delta_hash(Model::Cnn, OptimizerKind::ADAM, 4, 4, 2));
}

#[test]
fn the_seed_changes_the_delta() {
    assert_ne!(
        delta_hash(Model::Mlp, OptimizerKind::Sgd, 10, 1, 1),
        delta_hash(Model::Mlp, OptimizerKind::Sgd, 10, 2, 1)
    );
}

#[test]
fn bad_task_parameters_are_refused_with_the_field_named() {
    let data = funetun_ml::data::synthetic::generate(0, 100, 10).unwrap();
    let good = TaskSpec {
        model: Model::Mlp,
        shard: 0,
        shards: 2,
        steps: 1,
        batch: 8,
        lr: 0.1,
        optimizer: OptimizerKind::Sgd,
        schedule: funetun_ml::optim::Schedule::Constant,
        step0: 0,
        grad_clip: 0.0,
        seed: 0,
        lora: None,
    };
    let compute = Compute::new(1).unwrap();
    let base = Model::Mlp.init(0);
    for (spec, field) in [
        (
            TaskSpec {
                steps: 0,
                ..good.clone()
            },
            "steps",
        ),
        (
            TaskSpec {
                batch: 0,
                ..good.clone()
            },
            "batch",
        ),
        (
            TaskSpec {
                lr: f32::NAN,
                ..good.clone()
            },
            "lr",
        ),
        (
            TaskSpec {
                shard: 2,
                ..good.clone()
            },
            "shard",
        ),
    ] {
        let err = train_task(&base, &data, &spec, &compute, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{err}");
    }
    let wrong_model = Model::Cnn.init(0);
    let err = train_task(&wrong_model, &data, &good, &compute, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("names differ"), "{err}");
    let diverging = TaskSpec {
        lr: 10.0,
        steps: 30,
        ..good
    };
    let mut base = base;
    base.get_mut("fc1.weight")
        .unwrap()
        .data
        .iter_mut()
        .for_each(|v| *v *= 1e18);
    assert!(train_task(&base, &data, &diverging, &compute, &mut |_| {}).is_err());
}
