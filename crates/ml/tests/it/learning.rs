//! The networks learn real data.

use funetun_ml::train::{LocalTrainer, evaluate};
use funetun_ml::{Compute, ModelKind, OptimizerKind};

#[test]
fn mlp_learns_mnist_in_a_few_hundred_steps() {
    let data = crate::mnist_or_synthetic();
    let compute = Compute::new(2).unwrap();
    let n = data.train.len() as u32;
    let mut t = LocalTrainer::new(
        ModelKind::Mlp,
        &ModelKind::Mlp.init(0),
        (0..n).collect(),
        64,
        0.01,
        OptimizerKind::Momentum { momentum: 0.9 },
        0,
    )
    .unwrap();
    let before = evaluate(
        ModelKind::Mlp,
        t.params(),
        &data,
        &data.test,
        None,
        &compute,
    )
    .unwrap();
    for _ in 0..400 {
        t.step(&data, &compute).unwrap();
    }
    let after = evaluate(
        ModelKind::Mlp,
        t.params(),
        &data,
        &data.test,
        None,
        &compute,
    )
    .unwrap();
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
    let mut t = LocalTrainer::new(
        ModelKind::Mlp,
        &ModelKind::Mlp.init(1),
        (0..data.train.len() as u32).collect(),
        64,
        0.01,
        OptimizerKind::Momentum { momentum: 0.9 },
        1,
    )
    .unwrap();
    for _ in 0..300 {
        t.step(&data, &compute).unwrap();
    }
    let eval = evaluate(
        ModelKind::Mlp,
        t.params(),
        &data,
        &data.test,
        None,
        &compute,
    )
    .unwrap();
    assert!(eval.accuracy > 0.9, "synthetic accuracy {}", eval.accuracy);
}

#[test]
fn cnn_learns_in_a_few_steps() {
    let data = crate::mnist_or_synthetic();
    let compute = Compute::new(2).unwrap();
    let mut t = LocalTrainer::new(
        ModelKind::Cnn,
        &ModelKind::Cnn.init(0),
        (0..data.train.len() as u32).collect(),
        32,
        0.001,
        OptimizerKind::ADAM,
        0,
    )
    .unwrap();
    for _ in 0..60 {
        t.step(&data, &compute).unwrap();
    }
    let sample: Vec<u32> = (0..1000).collect();
    let eval = evaluate(
        ModelKind::Cnn,
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
