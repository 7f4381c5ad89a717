//! The transformer engine: every kernel and both whole models against
//! central finite differences, both models against PyTorch / Hugging Face
//! (`tests/reference/*.json`, made by `tests/reference/transformer_reference.py`),
//! and bit-identical results at one and two threads.

use funetun_ml::engine::kernels::{self, Heads, Rope};
use funetun_ml::engine::transformer::Transformer;
use funetun_ml::engine::{Compute, Par};
use funetun_ml::rng::Rng;
use funetun_ml::{Architecture as _, Model, ModelKind, TransformerConfig};

const SERIAL: Par = Par::SERIAL;

/// The system allocator, counting allocations made by each thread, so a
/// test can see that a training step allocates nothing.
struct Counting;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: every call forwards to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations this thread made while running `f`.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(|n| n.get());
    f();
    ALLOCATIONS.with(|n| n.get()) - before
}

fn normal(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| scale * rng.normal()).collect()
}

/// `Σ out·r` in f64: the scalar whose gradient a backward pass given
/// `dout = r` computes.
fn weighted(out: &[f32], r: &[f32]) -> f64 {
    out.iter()
        .zip(r)
        .map(|(&o, &r)| f64::from(o) * f64::from(r))
        .sum()
}

/// Checks `analytic` against central differences of `loss` on every
/// coordinate of `x`, within `tol` of the largest analytic value.
fn check_all(
    what: &str,
    x: &[f32],
    analytic: &[f32],
    h: f32,
    tol: f64,
    loss: impl Fn(&[f32]) -> f64,
) {
    assert_eq!(x.len(), analytic.len(), "{what}: one gradient per input");
    let scale = analytic
        .iter()
        .fold(0f64, |m, &g| m.max(f64::from(g).abs()));
    assert!(scale > 1e-3, "{what}: gradient too small to test ({scale})");
    let mut x = x.to_vec();
    let mut worst = 0f64;
    for i in 0..x.len() {
        let orig = x[i];
        x[i] = orig + h;
        let up = loss(&x);
        x[i] = orig - h;
        let down = loss(&x);
        x[i] = orig;
        let numeric = (up - down) / (2.0 * f64::from(h));
        let err = (numeric - f64::from(analytic[i])).abs();
        worst = worst.max(err);
        assert!(
            err <= tol * scale,
            "{what}[{i}]: analytic {} vs numeric {numeric} (scale {scale})",
            analytic[i]
        );
    }
    eprintln!("{what}: max |Δ| {worst:.2e} at gradient scale {scale:.3}");
}

#[test]
fn exp_tanh_and_sigmoid_are_within_a_few_ulp() {
    let mut worst = [0f64; 3];
    for i in 0..=20_000 {
        let x = -80.0 + 160.0 * i as f32 / 20_000.0;
        let xd = f64::from(x);
        let rel = |got: f32, want: f64| ((f64::from(got) - want) / want.abs().max(1e-30)).abs();
        if x < 88.0 {
            worst[0] = worst[0].max(rel(kernels::exp(x), xd.exp()));
        }
        worst[1] = worst[1].max((f64::from(kernels::tanh(x)) - xd.tanh()).abs());
        worst[2] = worst[2].max((f64::from(kernels::sigmoid(x)) - 1.0 / (1.0 + (-xd).exp())).abs());
    }
    assert!(worst[0] < 3e-7, "exp: relative error {}", worst[0]);
    assert!(worst[1] < 2e-7, "tanh: absolute error {}", worst[1]);
    assert!(worst[2] < 2e-7, "sigmoid: absolute error {}", worst[2]);
    // Clamped, never zero or infinite.
    assert!(kernels::exp(-1000.0) > 0.0 && kernels::exp(1000.0).is_finite());
    assert_eq!(kernels::tanh(-3.0), -kernels::tanh(3.0));
}

#[test]
fn sums_do_not_depend_on_how_they_are_called() {
    let mut rng = Rng::new(1);
    let x = normal(&mut rng, 37, 1.0);
    let exact: f64 = x.iter().map(|&v| f64::from(v)).sum();
    assert!((f64::from(kernels::sum(&x)) - exact).abs() < 1e-5);
    let d: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    assert!((f64::from(kernels::dot(&x, &x)) - d).abs() < 1e-4);
}

#[test]
fn layer_norm_normalises_and_its_gradients_match_finite_differences() {
    let (rows, d) = (3, 24);
    let mut rng = Rng::new(2);
    let x = normal(&mut rng, rows * d, 1.5);
    let w: Vec<f32> = (0..d).map(|_| 1.0 + 0.3 * rng.normal()).collect();
    let b = normal(&mut rng, d, 0.3);
    let r = normal(&mut rng, rows * d, 1.0);
    let run = |x: &[f32], w: &[f32], b: &[f32]| {
        let (mut out, mut xhat, mut rstd) =
            (vec![0.0; rows * d], vec![0.0; rows * d], vec![0.0; rows]);
        kernels::layer_norm(&mut out, &mut xhat, &mut rstd, x, w, b, rows, SERIAL);
        (out, xhat, rstd)
    };
    let (_, xhat, rstd) = run(&x, &w, &b);
    for row in xhat.chunks(d) {
        let mean: f32 = row.iter().sum::<f32>() / d as f32;
        let var: f32 = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
    }
    // Accumulating into a gradient that already holds 1s adds exactly that.
    let (mut dx, mut dw, mut db) = (vec![1.0; rows * d], vec![0.0; d], vec![0.0; d]);
    kernels::layer_norm_backward(
        &mut dx,
        &mut dw,
        &mut db,
        &r,
        &xhat,
        &rstd,
        &w,
        rows,
        true,
        Par { threads: 2 },
    );
    let dx: Vec<f32> = dx.iter().map(|v| v - 1.0).collect();
    let h = 1e-2;
    check_all("layer_norm dx", &x, &dx, h, 2e-3, |x| {
        weighted(&run(x, &w, &b).0, &r)
    });
    check_all("layer_norm dw", &w, &dw, h, 2e-3, |w| {
        weighted(&run(&x, w, &b).0, &r)
    });
    check_all("layer_norm db", &b, &db, h, 2e-3, |b| {
        weighted(&run(&x, &w, b).0, &r)
    });
}

#[test]
fn rms_norm_gradients_match_finite_differences() {
    let (rows, d) = (3, 24);
    let mut rng = Rng::new(3);
    let x = normal(&mut rng, rows * d, 1.5);
    let w: Vec<f32> = (0..d).map(|_| 1.0 + 0.3 * rng.normal()).collect();
    let r = normal(&mut rng, rows * d, 1.0);
    let run = |x: &[f32], w: &[f32]| {
        let (mut out, mut xhat, mut rstd) =
            (vec![0.0; rows * d], vec![0.0; rows * d], vec![0.0; rows]);
        kernels::rms_norm(&mut out, &mut xhat, &mut rstd, x, w, rows, SERIAL);
        (out, xhat, rstd)
    };
    let (out, xhat, rstd) = run(&x, &w);
    // x / √(mean(x²) + eps) · w, spelled out.
    for (row, (o, x)) in out.chunks(d).zip(x.chunks(d)).enumerate() {
        let ms: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / d as f64;
        for j in 0..d {
            let want = f64::from(x[j]) / (ms + 1e-5).sqrt() * f64::from(w[j]);
            assert!((f64::from(o[j]) - want).abs() < 1e-5, "row {row} col {j}");
        }
    }
    let (mut dx, mut dw) = (vec![f32::NAN; rows * d], vec![0.0; d]);
    kernels::rms_norm_backward(&mut dx, &mut dw, &r, &xhat, &rstd, &w, rows, false, SERIAL);
    check_all("rms_norm dx", &x, &dx, 1e-2, 2e-3, |x| {
        weighted(&run(x, &w).0, &r)
    });
    check_all("rms_norm dw", &w, &dw, 1e-2, 2e-3, |w| {
        weighted(&run(&x, w).0, &r)
    });
}

#[test]
fn gelu_is_the_tanh_form_and_its_gradient_matches_finite_differences() {
    let (rows, f) = (2, 40);
    let mut rng = Rng::new(4);
    let x = normal(&mut rng, rows * f, 2.0);
    let bias = normal(&mut rng, f, 0.5);
    let r = normal(&mut rng, rows * f, 1.0);
    let run = |x: &[f32]| {
        let (mut out, mut slope, mut pre) = (vec![0.0; rows * f], vec![0.0; rows * f], x.to_vec());
        kernels::gelu(&mut out, &mut slope, &mut pre, &bias, rows, SERIAL);
        (out, slope, pre)
    };
    let (out, slope, pre) = run(&x);
    for (i, (&o, &p)) in out.iter().zip(&pre).enumerate() {
        assert_eq!(p, x[i] + bias[i % f], "the bias is added in place");
        let p = f64::from(p);
        let want = 0.5
            * p
            * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (p + 0.044715 * p.powi(3))).tanh());
        assert!(
            (f64::from(o) - want).abs() < 1e-6,
            "gelu({p}) = {o}, want {want}"
        );
    }
    let mut d = r.clone();
    kernels::gelu_backward(&mut d, &slope, SERIAL);
    check_all("gelu", &x, &d, 1e-3, 2e-3, |x| weighted(&run(x).0, &r));
}

#[test]
fn swiglu_gradients_match_finite_differences() {
    let (rows, f) = (3, 10);
    let mut rng = Rng::new(5);
    let gu = normal(&mut rng, rows * 2 * f, 2.0);
    let r = normal(&mut rng, rows * f, 1.0);
    let run = |gu: &[f32]| {
        let (mut out, mut sig) = (vec![0.0; rows * f], vec![0.0; rows * f]);
        kernels::swiglu(&mut out, &mut sig, gu, f, rows, SERIAL);
        (out, sig)
    };
    let (out, sig) = run(&gu);
    let (g, u) = (f64::from(gu[2 * f + 3]), f64::from(gu[3 * f + 3]));
    let want = g / (1.0 + (-g).exp()) * u;
    assert!(
        (f64::from(out[f + 3]) - want).abs() < 1e-6,
        "silu(gate) · up"
    );
    let mut d = vec![0.0; rows * 2 * f];
    kernels::swiglu_backward(&mut d, &r, &gu, &sig, f, rows, SERIAL);
    check_all("swiglu", &gu, &d, 1e-3, 2e-3, |gu| weighted(&run(gu).0, &r));
}

/// GQA heads: four query heads sharing two key/value heads, 4 wide.
const GQA: Heads = Heads {
    n_head: 4,
    n_kv_head: 2,
    head_dim: 4,
};

#[test]
fn rope_turns_pairs_as_hugging_face_and_its_backward_is_the_transpose() {
    let heads = Heads {
        n_head: 2,
        n_kv_head: 1,
        head_dim: 8,
    };
    let (batch, seq) = (2, 5);
    let rows = batch * seq;
    let w = heads.width();
    let mut rng = Rng::new(6);
    let x = normal(&mut rng, rows * w, 1.0);
    let rope = Rope::new(8, 7, 10_000.0);
    let mut y = x.clone();
    rope.forward(&mut y, heads, rows, seq, SERIAL);
    // q' = q·cos + rotate_half(q)·sin, rotate_half(x) = [−x₂, x₁], angle = pos·θ^(−2i/hd).
    for r in 0..rows {
        let pos = (r % seq) as f64;
        for head in 0..3 {
            for i in 0..8 {
                let pair = if i < 4 { i + 4 } else { i - 4 };
                let freq = 10_000f64.powf(-2.0 * (i % 4) as f64 / 8.0);
                let (c, s) = ((pos * freq).cos(), (pos * freq).sin());
                let at = |j: usize| f64::from(x[r * w + head * 8 + j]);
                let rot = if i < 4 { -at(pair) } else { at(pair) };
                let want = at(i) * c + rot * s;
                let got = f64::from(y[r * w + head * 8 + i]);
                assert!(
                    (got - want).abs() < 1e-5,
                    "row {r} head {head} dim {i}: {got} vs {want}"
                );
            }
        }
        // Values are not turned.
        assert_eq!(&y[r * w + 24..(r + 1) * w], &x[r * w + 24..(r + 1) * w]);
    }
    let ry = normal(&mut rng, rows * w, 1.0);
    let mut dx = ry.clone();
    rope.backward(&mut dx, heads, rows, seq, SERIAL);
    check_all("rope", &x, &dx, 1e-2, 1e-3, |x| {
        let mut y = x.to_vec();
        rope.forward(&mut y, heads, rows, seq, SERIAL);
        weighted(&y, &ry)
    });
}

/// Attention spelled out in f64 for one query head: the reference the
/// kernel's forward pass must match.
fn attention_f64(qkv: &[f32], heads: Heads, batch: usize, seq: usize) -> Vec<f64> {
    let (w, d, hd) = (heads.width(), heads.d(), heads.head_dim);
    let mut out = vec![0.0; batch * seq * d];
    let at = |b: usize, t: usize, j: usize| f64::from(qkv[(b * seq + t) * w + j]);
    for b in 0..batch {
        for h in 0..heads.n_head {
            let g = h / (heads.n_head / heads.n_kv_head);
            for i in 0..seq {
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        (0..hd)
                            .map(|c| at(b, i, heads.q(h) + c) * at(b, j, heads.k(g) + c))
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for c in 0..hd {
                    out[(b * seq + i) * d + h * hd + c] = (0..=i)
                        .map(|j| (scores[j] - max).exp() / z * at(b, j, heads.v(g) + c))
                        .sum();
                }
            }
        }
    }
    out
}

#[test]
fn causal_attention_matches_the_formula_and_finite_differences() {
    let (batch, seq) = (2, 5);
    let heads = GQA;
    let (w, d) = (heads.width(), heads.d());
    let mut rng = Rng::new(7);
    let qkv = normal(&mut rng, batch * seq * w, 1.0);
    let r = normal(&mut rng, batch * seq * d, 1.0);
    let run = |qkv: &[f32], par: Par| {
        let (mut out, mut probs) = (vec![0.0; batch * seq * d], vec![0.0; batch * 4 * seq * seq]);
        let mut work = vec![f32::NAN; batch * kernels::attention_work(heads, seq)];
        kernels::attention(&mut out, &mut probs, &mut work, qkv, heads, batch, seq, par);
        (out, probs)
    };
    let (out, probs) = run(&qkv, SERIAL);
    for (i, (&got, want)) in out
        .iter()
        .zip(attention_f64(&qkv, heads, batch, seq))
        .enumerate()
    {
        assert!(
            (f64::from(got) - want).abs() < 1e-5,
            "output {i}: {got} vs {want}"
        );
    }
    // Probabilities: rows sum to one, zero above the diagonal.
    for (i, row) in probs.chunks(seq).enumerate() {
        let t = i % seq;
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(row[t + 1..].iter().all(|&p| p == 0.0));
    }
    // The first position attends to itself only: its output is its value.
    let v = heads.v(heads.kv_of(1));
    assert_eq!(&out[4..8], &qkv[v..v + 4]);
    let mut dqkv = vec![f32::NAN; batch * seq * w];
    let mut work = vec![f32::NAN; batch * kernels::attention_work(heads, seq)];
    kernels::attention_backward(
        &mut dqkv, &mut work, &r, &qkv, &probs, heads, batch, seq, SERIAL,
    );
    check_all("attention", &qkv, &dqkv, 1e-2, 2e-3, |x| {
        weighted(&run(x, SERIAL).0, &r)
    });
    // One work item per sequence: the same bits on two threads.
    let two = Compute::new(2).unwrap();
    let (out2, _) = two.run(|| run(&qkv, Par { threads: 2 }));
    assert_eq!(out, out2);
}

#[test]
fn embedding_gradients_match_finite_differences() {
    let (vocab, d, seq) = (5, 6, 4);
    let tokens = [0, 3, 3, 1, 4, 3, 0, 2];
    let mut rng = Rng::new(8);
    let table = normal(&mut rng, vocab * d, 1.0);
    let pos = normal(&mut rng, seq * d, 1.0);
    let r = normal(&mut rng, tokens.len() * d, 1.0);
    let run = |table: &[f32], pos: &[f32]| {
        let mut x = vec![0.0; tokens.len() * d];
        kernels::embed(&mut x, table, Some(pos), &tokens, d, seq, SERIAL);
        x
    };
    let x = run(&table, &pos);
    assert_eq!(
        x[5 * d + 2],
        table[3 * d + 2] + pos[d + 2],
        "token 3 at position 1"
    );
    let (mut dt, mut dp) = (vec![0.0; vocab * d], vec![0.0; seq * d]);
    kernels::embed_backward(&mut dt, Some(&mut dp), &r, &tokens, d, seq);
    check_all("embedding table", &table, &dt, 1e-2, 1e-3, |t| {
        weighted(&run(t, &pos), &r)
    });
    check_all("position table", &pos, &dp, 1e-2, 1e-3, |p| {
        weighted(&run(&table, p), &r)
    });
    // Without positions the lookup is the bare table row.
    let mut bare = vec![0.0; tokens.len() * d];
    kernels::embed(&mut bare, &table, None, &tokens, d, seq, SERIAL);
    assert_eq!(&bare[..d], &table[..d]);
}

#[test]
fn cross_entropy_is_the_mean_negative_log_likelihood_and_its_gradient_matches() {
    let (rows, vocab) = (6, 7);
    let mut rng = Rng::new(9);
    let logits = normal(&mut rng, rows * vocab, 3.0);
    let targets: Vec<u32> = (0..rows).map(|i| (i * 3 % vocab) as u32).collect();
    let run = |z: &[f32]| {
        let (mut z, mut losses) = (z.to_vec(), vec![0.0; rows]);
        let loss = kernels::cross_entropy(&mut z, &mut losses, &targets, vocab, SERIAL);
        (loss, z)
    };
    let (loss, grad) = run(&logits);
    let want: f64 = logits
        .chunks(vocab)
        .zip(&targets)
        .map(|(z, &t)| {
            let z: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (z.iter().map(|v| (v - max).exp()).sum::<f64>()).ln() + max - z[t as usize]
        })
        .sum::<f64>()
        / rows as f64;
    assert!((f64::from(loss) - want).abs() < 1e-6, "{loss} vs {want}");
    // Huge logits stay finite (stable log-softmax).
    let (big, _) = run(&logits.iter().map(|v| v * 1e4).collect::<Vec<_>>());
    assert!(big.is_finite());
    check_all("cross_entropy", &logits, &grad, 1e-2, 2e-3, |z| {
        f64::from(run(z).0)
    });
}

/// The small configuration of the whole-model tests: two blocks, two
/// query heads (one key/value head for llama), 16 wide, context 8.
fn tiny(kind: ModelKind) -> Model {
    let c = TransformerConfig {
        vocab: 11,
        n_layer: 2,
        n_head: 2,
        n_kv_head: if kind == ModelKind::Llama { 1 } else { 2 },
        d_model: 16,
        d_ff: 32,
        context: 8,
    };
    Model::new(kind, Some(c)).unwrap()
}

/// Parameters in the flat view: N(0, 0.3²) matrices, norm gains 1 + N(0,
/// 0.1²), so every path carries a gradient worth measuring.
fn random_params(model: Model, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut flat = Vec::new();
    for (name, shape) in model.shapes() {
        let n: usize = shape.iter().product();
        let norm = name.ends_with(".weight") && (name.contains("ln_") || name.contains("norm"));
        for _ in 0..n {
            flat.push(if norm {
                1.0 + 0.1 * rng.normal()
            } else {
                0.3 * rng.normal()
            });
        }
    }
    flat
}

fn random_tokens(rng: &mut Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| rng.below(vocab as u64) as u32).collect()
}

/// Mean cross-entropy in f64 from the engine's logits: the loss of the
/// finite-difference check, free of the f32 rounding of the mean.
fn loss_f64(
    net: &mut Transformer,
    p: &[f32],
    tokens: &[u32],
    targets: &[u32],
    batch: usize,
    seq: usize,
    vocab: usize,
) -> f64 {
    let mut logits = vec![0.0; batch * seq * vocab];
    net.logits(p, tokens, batch, seq, &mut logits, SERIAL);
    logits
        .chunks(vocab)
        .zip(targets)
        .map(|(z, &t)| {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let s: f64 = z.iter().map(|&v| f64::from(v - max).exp()).sum();
            s.ln() - f64::from(z[t as usize] - max)
        })
        .sum::<f64>()
        / targets.len() as f64
}

fn whole_model_matches_finite_differences(kind: ModelKind) {
    let model = tiny(kind);
    let (batch, seq) = (2, 7); // shorter than the context
    let mut rng = Rng::new(10);
    let tokens = random_tokens(&mut rng, batch * seq, 11);
    let targets = random_tokens(&mut rng, batch * seq, 11);
    let mut params = random_params(model, 11);
    let mut net = Transformer::new(model, 3);
    let mut grads = vec![f32::NAN; params.len()];
    let loss = net.loss_and_grad(&params, &tokens, &targets, batch, seq, &mut grads, SERIAL);
    let f64_loss = loss_f64(&mut net, &params, &tokens, &targets, batch, seq, 11);
    assert!(
        (f64::from(loss) - f64_loss).abs() < 1e-5,
        "{loss} vs {f64_loss}"
    );
    let layout = model.layout();
    for (name, _) in model.shapes() {
        let range = layout.range(&name);
        let g = &grads[range.clone()];
        assert!(
            g.iter().all(|v| v.is_finite()),
            "{kind} {name}: non-finite gradient"
        );
        assert!(
            g.iter().any(|&v| v != 0.0),
            "{kind} {name}: gradient is all zero"
        );
        // The coordinate with the largest gradient, where the check is sharpest.
        let i = range
            .clone()
            .max_by(|&a, &b| grads[a].abs().total_cmp(&grads[b].abs()))
            .unwrap();
        let h = 1e-2f32;
        let orig = params[i];
        params[i] = orig + h;
        let up = loss_f64(&mut net, &params, &tokens, &targets, batch, seq, 11);
        params[i] = orig - h;
        let down = loss_f64(&mut net, &params, &tokens, &targets, batch, seq, 11);
        params[i] = orig;
        let numeric = (up - down) / (2.0 * f64::from(h));
        let analytic = f64::from(grads[i]);
        eprintln!("{kind} {name}[{i}]: analytic {analytic:.6} numeric {numeric:.6}");
        assert!(
            (numeric - analytic).abs() <= 5e-3 * analytic.abs() + 2e-5,
            "{kind} {name}[{i}]: analytic {analytic} vs numeric {numeric}"
        );
    }
    // Positions past `seq` of gpt's position table get no gradient.
    if kind == ModelKind::Gpt {
        let wpe = &grads[layout.range("transformer.wpe.weight")];
        assert!(wpe[seq * 16..].iter().all(|&v| v == 0.0));
    }
}

#[test]
fn gpt_gradients_match_finite_differences() {
    whole_model_matches_finite_differences(ModelKind::Gpt);
}

#[test]
fn llama_gradients_match_finite_differences() {
    whole_model_matches_finite_differences(ModelKind::Llama);
}

/// Loss and every gradient's bits of one step at `threads` threads.
fn step_bits(
    model: Model,
    params: &[f32],
    tokens: &[u32],
    targets: &[u32],
    batch: usize,
    seq: usize,
    threads: usize,
) -> (u32, Vec<u32>) {
    let compute = Compute::new(threads).unwrap();
    let mut net = Transformer::new(model, batch + 1);
    let mut grads = vec![0.0; params.len()];
    let loss = compute.run(|| {
        net.loss_and_grad(
            params,
            tokens,
            targets,
            batch,
            seq,
            &mut grads,
            Par { threads },
        )
    });
    (loss.to_bits(), grads.iter().map(|v| v.to_bits()).collect())
}

#[test]
fn results_are_bit_identical_at_one_two_and_three_threads() {
    for kind in [ModelKind::Gpt, ModelKind::Llama] {
        // Wide enough that products, row blocks and attention all split.
        let c = TransformerConfig {
            vocab: 40,
            n_layer: 2,
            n_head: 4,
            n_kv_head: if kind == ModelKind::Llama { 2 } else { 4 },
            d_model: 32,
            d_ff: 96,
            context: 48,
        };
        let model = Model::new(kind, Some(c)).unwrap();
        let params = random_params(model, 12);
        let (batch, seq) = (5, 45);
        let mut rng = Rng::new(13);
        let tokens = random_tokens(&mut rng, batch * seq, 40);
        let targets = random_tokens(&mut rng, batch * seq, 40);
        let one = step_bits(model, &params, &tokens, &targets, batch, seq, 1);
        let two = step_bits(model, &params, &tokens, &targets, batch, seq, 2);
        assert!(one.1.iter().any(|&b| b != 0));
        assert_eq!(one.0, two.0, "{kind}: loss differs between 1 and 2 threads");
        assert!(
            one.1 == two.1,
            "{kind}: gradients differ between 1 and 2 threads"
        );
    }
}

#[test]
fn loss_logits_and_a_reused_network_agree_with_loss_and_grad() {
    for kind in [ModelKind::Gpt, ModelKind::Llama] {
        let model = tiny(kind);
        let params = random_params(model, 14);
        let mut rng = Rng::new(15);
        let (batch, seq) = (3, 8);
        let tokens = random_tokens(&mut rng, batch * seq, 11);
        let targets = random_tokens(&mut rng, batch * seq, 11);
        let mut net = Transformer::new(model, 3);
        let mut grads = vec![f32::NAN; params.len()];
        let loss = net.loss_and_grad(&params, &tokens, &targets, batch, seq, &mut grads, SERIAL);
        assert_eq!(
            loss,
            net.loss(&params, &tokens, &targets, batch, seq, SERIAL)
        );
        // A shorter batch in between, then the same step again: same bits.
        let mut other = vec![0.0; params.len()];
        net.loss_and_grad(
            &params,
            &tokens[..5],
            &targets[..5],
            1,
            5,
            &mut other,
            SERIAL,
        );
        let mut again = vec![1.0; params.len()];
        assert_eq!(
            loss,
            net.loss_and_grad(&params, &tokens, &targets, batch, seq, &mut again, SERIAL)
        );
        assert!(
            grads
                .iter()
                .zip(&again)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        // Sequences are independent: the first sequence alone gives its own logits.
        let mut all = vec![0.0; batch * seq * 11];
        net.logits(&params, &tokens, batch, seq, &mut all, SERIAL);
        let mut first = vec![0.0; seq * 11];
        net.logits(&params, &tokens[..seq], 1, seq, &mut first, SERIAL);
        for (a, b) in all[..seq * 11].iter().zip(&first) {
            assert!((a - b).abs() < 1e-5);
        }
        // Causality: changing the last token changes no earlier logit.
        let mut changed = tokens.clone();
        changed[seq - 1] = (changed[seq - 1] + 1) % 11;
        let mut after = vec![0.0; batch * seq * 11];
        net.logits(&params, &changed, batch, seq, &mut after, SERIAL);
        assert_eq!(&all[..(seq - 1) * 11], &after[..(seq - 1) * 11]);
        assert_ne!(
            &all[(seq - 1) * 11..seq * 11],
            &after[(seq - 1) * 11..seq * 11]
        );
        assert!(net.scratch_bytes() > 0);
    }
}

/// Allocations of one step of `net` at `batch × seq`, after a first
/// step that lets gemm size its workspace.
fn step_allocations(net: &mut Transformer, params: &[f32], batch: usize, seq: usize) -> usize {
    let mut rng = Rng::new(17);
    let tokens = random_tokens(&mut rng, batch * seq, 11);
    let targets = random_tokens(&mut rng, batch * seq, 11);
    let mut grads = vec![0.0; params.len()];
    net.loss_and_grad(params, &tokens, &targets, batch, seq, &mut grads, SERIAL);
    allocations(|| {
        let loss = net.loss_and_grad(params, &tokens, &targets, batch, seq, &mut grads, SERIAL);
        assert!(loss.is_finite());
    })
}

/// The engine's buffers are all sized in `Transformer::new`; the only
/// allocations in a step are gemm's packing workspace, at most two per
/// matrix product, whatever the number of sequences, heads or rows.
#[test]
fn a_training_step_allocates_only_gemms_workspace() {
    for kind in [ModelKind::Gpt, ModelKind::Llama] {
        let model = tiny(kind);
        let params = random_params(model, 16);
        let mut net = Transformer::new(model, 2);
        // Products per step: 4 forward and 8 (llama 11) backward per block,
        // and 3 for the head.
        let products = match kind {
            ModelKind::Gpt => 12 * 2 + 3,
            _ => 15 * 2 + 3,
        };
        let two_short = step_allocations(&mut net, &params, 2, 4);
        let one_long = step_allocations(&mut net, &params, 1, 8);
        let again = step_allocations(&mut net, &params, 2, 4);
        // The same products (8 rows) with twice the sequences and attention
        // work items: the same allocations, so none per sequence or head.
        assert_eq!(
            two_short, one_long,
            "{kind}: allocations depend on the sequences"
        );
        assert_eq!(
            two_short, again,
            "{kind}: allocations grow from step to step"
        );
        assert!(
            two_short <= 2 * products,
            "{kind}: {two_short} allocations for {products} products"
        );
        eprintln!("{kind}: {two_short} allocations for {products} products");
    }
    // The counter does count: a vector is an allocation.
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![0u8; 8]))), 1);
}

#[test]
#[should_panic(expected = "outside the vocabulary")]
fn an_out_of_range_token_is_refused() {
    let model = tiny(ModelKind::Gpt);
    let params = random_params(model, 1);
    let mut net = Transformer::new(model, 1);
    let mut logits = vec![0.0; 2 * 11];
    net.logits(&params, &[3, 11], 1, 2, &mut logits, SERIAL);
}

mod reference {
    //! The PyTorch / Hugging Face reference values.

    use super::*;

    /// A JSON value: just what the reference files hold.
    #[derive(Debug)]
    pub enum Json {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    impl Json {
        pub fn get(&self, key: &str) -> &Json {
            match self {
                Json::Obj(fields) => {
                    &fields
                        .iter()
                        .find(|(k, _)| k == key)
                        .unwrap_or_else(|| panic!("no field {key}"))
                        .1
                }
                _ => panic!("not an object: looking for {key}"),
            }
        }

        pub fn num(&self) -> f64 {
            match self {
                Json::Num(v) => *v,
                _ => panic!("not a number: {self:?}"),
            }
        }

        pub fn arr(&self) -> &[Json] {
            match self {
                Json::Arr(v) => v,
                _ => panic!("not an array"),
            }
        }

        pub fn str(&self) -> &str {
            match self {
                Json::Str(s) => s,
                _ => panic!("not a string"),
            }
        }

        /// Numbers (possibly nested arrays of them), flattened.
        pub fn floats(&self) -> Vec<f64> {
            match self {
                Json::Num(v) => vec![*v],
                Json::Arr(v) => v.iter().flat_map(Json::floats).collect(),
                _ => panic!("not numbers"),
            }
        }
    }

    /// A small recursive-descent JSON reader (the crate has no JSON dependency).
    pub fn parse(text: &str) -> Json {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing characters");
        v
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }

        fn eat(&mut self, c: u8) {
            self.ws();
            assert_eq!(self.s[self.i], c, "expected {} at {}", c as char, self.i);
            self.i += 1;
        }

        fn value(&mut self) -> Json {
            self.ws();
            match self.s[self.i] {
                b'{' => {
                    self.i += 1;
                    let mut fields = Vec::new();
                    self.ws();
                    if self.s[self.i] == b'}' {
                        self.i += 1;
                        return Json::Obj(fields);
                    }
                    loop {
                        self.ws();
                        let key = self.string();
                        self.eat(b':');
                        fields.push((key, self.value()));
                        self.ws();
                        self.i += 1;
                        if self.s[self.i - 1] == b'}' {
                            return Json::Obj(fields);
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s[self.i] == b']' {
                        self.i += 1;
                        return Json::Arr(items);
                    }
                    loop {
                        items.push(self.value());
                        self.ws();
                        self.i += 1;
                        if self.s[self.i - 1] == b']' {
                            return Json::Arr(items);
                        }
                    }
                }
                b'"' => Json::Str(self.string()),
                b't' => self.word("true", Json::Bool(true)),
                b'f' => self.word("false", Json::Bool(false)),
                b'n' => self.word("null", Json::Null),
                _ => {
                    let start = self.i;
                    while self.i < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.i]) {
                        self.i += 1;
                    }
                    let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                    Json::Num(text.parse().unwrap_or_else(|e| panic!("{text}: {e}")))
                }
            }
        }

        fn word(&mut self, w: &str, v: Json) -> Json {
            assert!(self.s[self.i..].starts_with(w.as_bytes()));
            self.i += w.len();
            v
        }

        fn string(&mut self) -> String {
            assert_eq!(self.s[self.i], b'"');
            self.i += 1;
            let mut out = String::new();
            while self.s[self.i] != b'"' {
                if self.s[self.i] == b'\\' {
                    self.i += 1;
                    out.push(match self.s[self.i] {
                        b'n' => '\n',
                        b't' => '\t',
                        c => c as char,
                    });
                    self.i += 1;
                } else {
                    let start = self.i;
                    while self.s[self.i] != b'"' && self.s[self.i] != b'\\' {
                        self.i += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.s[start..self.i]).unwrap());
                }
            }
            self.i += 1;
            out
        }
    }

    /// The reference script's weight formula for parameter `k` (sorted
    /// index) of `n` values.
    fn param_value(name: &str, k: usize, n: usize) -> Vec<f32> {
        let norm = name.ends_with(".weight")
            && (name.contains("ln_") || name.contains("layernorm") || name.contains("model.norm"));
        (0..n)
            .map(|j| {
                let x = (0.7 * j as f64 + 1.1 * k as f64 + 0.3).sin();
                let v = if norm {
                    1.0 + 0.1 * x
                } else if name.ends_with(".bias") {
                    0.01 * x
                } else {
                    0.05 * x
                };
                v as f32
            })
            .collect()
    }

    fn check(file: &str, kind: ModelKind) {
        let path = format!(
            "{}/tests/reference/{file}",
            std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let r = parse(&text);
        let cfg = r.get("config");
        let n = |keys: &[&str]| {
            let key = keys
                .iter()
                .find(|k| matches!(cfg, Json::Obj(f) if f.iter().any(|(name, _)| name == *k)))
                .unwrap_or_else(|| panic!("config lacks {keys:?}"));
            cfg.get(key).num() as usize
        };
        let n_head = n(&["n_head", "num_attention_heads"]);
        let c = TransformerConfig {
            vocab: n(&["vocab_size"]),
            n_layer: n(&["n_layer", "num_hidden_layers"]),
            n_head,
            n_kv_head: if kind == ModelKind::Llama {
                n(&["num_key_value_heads"])
            } else {
                n_head
            },
            d_model: n(&["n_embd", "hidden_size"]),
            d_ff: n(&["n_inner", "intermediate_size"]),
            context: n(&["n_positions", "max_position_embeddings"]),
        };
        let model = Model::new(kind, Some(c)).unwrap();
        // Same names in the same order, same shapes.
        let names: Vec<&str> = r.get("names").arr().iter().map(Json::str).collect();
        let shapes = model.shapes();
        assert_eq!(
            names,
            shapes.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
        );
        for (name, shape) in &shapes {
            let want: Vec<usize> = r
                .get("shapes")
                .get(name)
                .floats()
                .iter()
                .map(|&v| v as usize)
                .collect();
            assert_eq!(&want, shape, "{name}");
        }
        let mut params = Vec::new();
        for (k, (name, shape)) in shapes.iter().enumerate() {
            params.extend(param_value(name, k, shape.iter().product()));
        }
        let ids: Vec<u32> = r
            .get("input_ids")
            .floats()
            .iter()
            .map(|&v| v as u32)
            .collect();
        let targets: Vec<u32> = r
            .get("targets")
            .floats()
            .iter()
            .map(|&v| v as u32)
            .collect();
        let batch = r.get("input_ids").arr().len();
        let seq = ids.len() / batch;

        let mut net = Transformer::new(model, batch);
        let mut grads = vec![f32::NAN; params.len()];
        let loss = net.loss_and_grad(&params, &ids, &targets, batch, seq, &mut grads, SERIAL);
        let want_loss = r.get("loss").num();
        assert!(
            (f64::from(loss) - want_loss).abs() <= 1e-5 * want_loss.abs(),
            "{kind}: loss {loss} vs PyTorch {want_loss}"
        );
        let mut logits = vec![0.0; batch * seq * c.vocab];
        net.logits(&params, &ids, batch, seq, &mut logits, SERIAL);
        for (a, b) in logits.iter().zip(r.get("logits_first_row").floats()) {
            assert!(
                (f64::from(*a) - b).abs() < 1e-5,
                "{kind}: logit {a} vs PyTorch {b}"
            );
        }
        let sum: f64 = logits.iter().map(|&v| f64::from(v)).sum();
        assert!(
            (sum - r.get("logits_sum").num()).abs() < 1e-4,
            "{kind}: logits sum {sum}"
        );
        let layout = model.layout();
        let mut worst = 0f64;
        for (name, _) in &shapes {
            let ours = &grads[layout.range(name)];
            let theirs = r.get("grads").get(name).floats();
            assert_eq!(ours.len(), theirs.len(), "{name}");
            let scale = theirs.iter().fold(0f64, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{kind} {name}: PyTorch's gradient is zero");
            for (i, (&a, &b)) in ours.iter().zip(&theirs).enumerate() {
                let err = (f64::from(a) - b).abs();
                worst = worst.max(err);
                assert!(
                    err <= 1e-4 * scale + 1e-6,
                    "{kind} {name}[{i}]: {a} vs PyTorch {b} (scale {scale})"
                );
            }
        }
        eprintln!("{kind}: loss {loss} vs PyTorch {want_loss}; max |Δgrad| {worst:.3e}");
    }

    #[test]
    fn gpt_matches_pytorch() {
        check("gpt_tiny.json", ModelKind::Gpt);
    }

    #[test]
    fn llama_matches_pytorch() {
        check("llama_tiny.json", ModelKind::Llama);
    }

    #[test]
    fn the_json_reader_reads_what_the_files_use() {
        let v = parse(r#"{"a": [1, -2.5e-3, [3]], "b": "x\"y", "c": true, "d": null, "e": {}}"#);
        assert_eq!(v.get("a").floats(), vec![1.0, -2.5e-3, 3.0]);
        assert_eq!(v.get("b").str(), "x\"y");
        assert!(matches!(v.get("c"), Json::Bool(true)));
        assert!(matches!(v.get("d"), Json::Null));
    }
}
