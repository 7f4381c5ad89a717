//! The networks learn real data.

use funetun_ml::Architecture as _;
use funetun_ml::optim::Schedule;
use funetun_ml::train::{LocalTrainer, evaluate};
use funetun_ml::{Compute, Dataset, Model, OptimizerKind, TaskSpec};

/// A trainer over the whole training split, `steps` steps taken.
fn trained(
    data: &Dataset,
    compute: &Compute,
    model: Model,
    (batch, lr, optimizer): (usize, f32, OptimizerKind),
    seed: u64,
    steps: usize,
) -> LocalTrainer {
    let pool = (0..data.train.len() as u32).collect();
    let spec = TaskSpec {
        model,
        shard: 0,
        shards: 1,
        steps: steps.max(1),
        batch,
        lr,
        optimizer,
        schedule: Schedule::Constant,
        step0: 0,
        grad_clip: 0.0,
        seed,
        lora: None,
    };
    let mut t = LocalTrainer::new(&spec, &model.init(seed), pool).unwrap();
    for _ in 0..steps {
        t.step(data, compute).unwrap();
    }
    t
}

const MOMENTUM: (usize, f32, OptimizerKind) = (64, 0.01, OptimizerKind::Momentum { momentum: 0.9 });

#[test]
fn mlp_learns_mnist_in_a_few_hundred_steps() {
    let data = crate::mnist_or_synthetic();
    let compute = Compute::new(2).unwrap();
    let init = Model::Mlp.init(0).to_flat();
    let before = evaluate(Model::Mlp, &init, &data, &data.test, None, &compute).unwrap();
    let t = trained(&data, &compute, Model::Mlp, MOMENTUM, 0, 400);
    let after = evaluate(Model::Mlp, t.params(), &data, &data.test, None, &compute).unwrap();
    eprintln!(
        "{}: accuracy {:.4} → {:.4}",
        data.name, before.accuracy, after.accuracy
    );
    assert!(before.accuracy < 0.3);
    assert!(
        after.accuracy > 0.92,
        "test accuracy {} after 400 steps",
        after.accuracy
    );
}

#[test]
fn the_synthetic_set_is_learnable_past_90_percent() {
    let data = funetun_ml::data::synthetic::generate(0, 12_000, 2_000).unwrap();
    let compute = Compute::new(1).unwrap();
    let t = trained(&data, &compute, Model::Mlp, MOMENTUM, 1, 300);
    let eval = evaluate(Model::Mlp, t.params(), &data, &data.test, None, &compute).unwrap();
    assert!(eval.accuracy > 0.9, "synthetic accuracy {}", eval.accuracy);
}

#[test]
fn cnn_learns_in_a_few_steps() {
    let data = crate::mnist_or_synthetic();
    let compute = Compute::new(2).unwrap();
    let t = trained(
        &data,
        &compute,
        Model::Cnn,
        (32, 0.001, OptimizerKind::ADAM),
        0,
        60,
    );
    let sample: Vec<u32> = (0..1000).collect();
    let eval = evaluate(
        Model::Cnn,
        t.params(),
        &data,
        &data.test,
        Some(&sample),
        &compute,
    )
    .unwrap();
    assert!(
        eval.accuracy > 0.8,
        "CNN test accuracy {} after 60 steps",
        eval.accuracy
    );
}
