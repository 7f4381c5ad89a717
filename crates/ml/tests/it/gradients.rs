//! The hand-written engine against candle's autograd: same weights, same
//! batch, same loss and gradients up to float rounding.

use funetun_ml::Architecture as _;
use funetun_ml::engine::{Par, network};
use funetun_ml::reference::CandleModel;
use funetun_ml::{Model, rng::Rng};

/// Compares on continuous random inputs: real images have flat
/// backgrounds whose equal activations tie inside pooling windows, where
/// the engine (like PyTorch) routes the gradient to the first maximum and
/// candle to every maximum; without ties the two must agree.
fn check(model: Model, batch: usize, threads: usize) {
    let mut weights = model.init(11);
    // Move the weights off the initialisation so ReLUs and pools are mixed.
    let mut rng = Rng::new(5);
    for (_, t) in weights.iter_mut() {
        for v in &mut t.data {
            *v += 0.02 * rng.normal();
        }
    }
    let x: Vec<f32> = (0..batch * 784).map(|_| rng.normal()).collect();
    let y: Vec<u8> = (0..batch).map(|_| rng.below(10) as u8).collect();

    let compute = funetun_ml::Compute::new(threads).unwrap();
    let mut net = network(model, batch).unwrap();
    let params = weights.to_flat();
    let mut grads = vec![0.0; params.len()];
    let loss = compute.run(|| net.loss_and_grad(&params, &x, &y, &mut grads, Par { threads }));

    let (ref_loss, ref_grads) = CandleModel::new(model, &weights)
        .unwrap()
        .loss_and_grad(&x, &y)
        .unwrap();
    assert!(
        (loss - ref_loss).abs() < 1e-5 * ref_loss.abs().max(1.0),
        "{model}: loss {loss} vs candle {ref_loss}"
    );
    let ours = weights.from_flat_like(&grads).unwrap();
    for ((name, a), (_, b)) in ours.iter().zip(ref_grads.iter()) {
        let scale = b.data.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 1e-4 * scale,
            "{model} {name}: max |Δgrad| {worst} vs scale {scale}"
        );
        assert!(
            a.data.iter().any(|v| *v != 0.0),
            "{model} {name}: gradient is all zero"
        );
    }
}

#[test]
fn mlp_gradients_match_candle() {
    check(Model::Mlp, 16, 1);
    check(Model::Mlp, 64, 2);
}

#[test]
fn cnn_gradients_match_candle() {
    check(Model::Cnn, 8, 1);
    check(Model::Cnn, 8, 2);
}

#[test]
fn forward_logits_match_candle() {
    let data = funetun_ml::data::synthetic::generate(2, 64, 16).unwrap();
    for model in [Model::Mlp, Model::Cnn] {
        let weights = model.init(3);
        let idx: Vec<u32> = (0..10).collect();
        let mut x = vec![0.0; 10 * 784];
        let mut y = vec![0; 10];
        data.gather(&data.test, &idx, &mut x, &mut y);
        let mut logits = vec![0.0; 100];
        network(model, 10)
            .unwrap()
            .forward(&weights.to_flat(), &x, 10, &mut logits, Par::SERIAL);
        let reference: Vec<f32> = CandleModel::new(model, &weights)
            .unwrap()
            .forward(&x, 10)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in logits.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-4, "{model}: logit {a} vs candle {b}");
        }
    }
}

/// Central finite differences of the engine's own loss, on a few
/// coordinates of every tensor: independent of any reference library.
#[test]
fn gradients_match_finite_differences() {
    let data = funetun_ml::data::synthetic::generate(1, 256, 16).unwrap();
    for model in [Model::Mlp, Model::Cnn] {
        let weights = model.init(11);
        let batch = 8;
        let idx: Vec<u32> = (0..batch as u32).collect();
        let mut x = vec![0.0; batch * 784];
        let mut y = vec![0; batch];
        data.gather(&data.train, &idx, &mut x, &mut y);
        let mut net = network(model, batch).unwrap();
        let mut params = weights.to_flat();
        let mut grads = vec![0.0; params.len()];
        net.loss_and_grad(&params, &x, &y, &mut grads, Par::SERIAL);
        let mut scratch = vec![0.0; params.len()];
        let layout = model.layout();
        for (name, _) in model.shapes() {
            let range = layout.range(&name);
            // The coordinate with the largest gradient, where the check is sharpest.
            let i = range
                .clone()
                .max_by(|&a, &b| grads[a].abs().total_cmp(&grads[b].abs()))
                .unwrap();
            let h = 1e-2f32;
            let orig = params[i];
            params[i] = orig + h;
            let up = f64::from(net.loss_and_grad(&params, &x, &y, &mut scratch, Par::SERIAL));
            params[i] = orig - h;
            let down = f64::from(net.loss_and_grad(&params, &x, &y, &mut scratch, Par::SERIAL));
            params[i] = orig;
            let numeric = (up - down) / (2.0 * f64::from(h));
            let analytic = f64::from(grads[i]);
            eprintln!("{model} {name}[{i}]: analytic {analytic:.6} numeric {numeric:.6}");
            assert!(
                (numeric - analytic).abs() <= 0.05 * analytic.abs() + 1e-4,
                "{model} {name}[{i}]: analytic {analytic} vs numeric {numeric}"
            );
        }
    }
}
