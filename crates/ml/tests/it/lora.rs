//! LoRA on real tiny-shakespeare: adapter gradients against central
//! finite differences of the merged model's loss, the merge against a
//! naive reference, bit-identical adapter deltas at one and two threads,
//! learning, and the bytes an adapter delta saves over a full one.

use std::ops::Range;
use std::sync::OnceLock;

use funetun_core::{Tensor, TensorSet, Tokenizer, encode, keccak256};
use funetun_ml::data::text::gather_windows;
use funetun_ml::engine::transformer::Transformer;
use funetun_ml::engine::{Compute, Par};
use funetun_ml::lora::{LLAMA_TARGETS, Lora, LoraConfig, Orientation};
use funetun_ml::optim::Schedule;
use funetun_ml::rng::Rng;
use funetun_ml::train::{LocalTrainer, shard_pool};
use funetun_ml::{
    Architecture as _, Dataset, DatasetName, LoadOptions, Model, ModelKind, OptimizerKind,
    TaskOutcome, TaskSpec, TransformerConfig, train_task, train_task_lora,
};

const SERIAL: Par = Par::SERIAL;

/// Character-level tiny-shakespeare from `FUNETUN_DATA_DIR`, loaded once.
fn shakespeare() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| {
        let options = LoadOptions {
            download: false,
            ..LoadOptions::default()
        };
        Dataset::load(&DatasetName::TinyShakespeare(Tokenizer::Char), &options).unwrap_or_else(
            |e| {
                panic!(
                    "tiny-shakespeare must load: set FUNETUN_DATA_DIR to a folder holding \
                     tinyshakespeare/input.txt ({e})"
                )
            },
        )
    })
}

/// A named configuration at the corpus's 65 characters; llama with
/// grouped-query attention (half as many key/value heads), so `k_proj`
/// and `v_proj` are not square.
fn model(kind: ModelKind, preset: &str) -> Model {
    let c = TransformerConfig::preset(preset, 65).unwrap();
    let n_kv_head = if kind == ModelKind::Llama {
        c.n_head / 2
    } else {
        c.n_head
    };
    Model::new(kind, Some(TransformerConfig { n_kv_head, ..c })).unwrap()
}

fn config(rank: u32, targets: &[&str]) -> LoraConfig {
    LoraConfig {
        rank,
        alpha: 2.0 * rank as f32,
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

/// Each adapter tensor's range in the adapters' flat view.
fn ranges(lora: &Lora) -> Vec<(String, Range<usize>)> {
    let mut at = 0;
    lora.shapes()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            at += n;
            (name, at - n..at)
        })
        .collect()
}

/// A base whose every path carries a gradient worth measuring: matrices
/// N(0, 0.3²), norm gains 1 + N(0, 0.1²), biases N(0, 0.1²).
fn random_base(model: Model, seed: u64) -> TensorSet {
    let mut rng = Rng::new(seed);
    let mut set = model.zeros();
    for (name, t) in set.iter_mut() {
        let norm = name.ends_with(".weight") && (name.contains("ln_") || name.contains("norm"));
        for v in &mut t.data {
            *v = if norm {
                1.0 + 0.1 * rng.normal()
            } else if name.ends_with(".bias") {
                0.1 * rng.normal()
            } else {
                0.3 * rng.normal()
            };
        }
    }
    set
}

/// Adapters with `B` drawn N(0, std²) instead of zero.
fn with_nonzero_b(lora: &Lora, seed: u64, std: f32) -> TensorSet {
    let mut set = lora.init(seed);
    let mut rng = Rng::new(seed ^ 0xb);
    for (name, t) in set.iter_mut() {
        if name.ends_with(".lora_B.weight") {
            t.data.iter_mut().for_each(|v| *v = std * rng.normal());
        }
    }
    set
}

/// Mean next-token cross-entropy in f64 from the engine's logits.
fn loss_f64(net: &mut Transformer, p: &[f32], tokens: &[u32], targets: &[u32], seq: usize) -> f64 {
    let vocab = net.model().transformer().unwrap().vocab;
    let batch = tokens.len() / seq;
    let mut logits = vec![0.0; tokens.len() * vocab];
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

fn adapter_gradients_match_finite_differences(kind: ModelKind, targets: &[&str]) {
    let data = shakespeare();
    let model = model(kind, "tiny");
    let seq = model.transformer().unwrap().context;
    let lora = Lora::new(model, &config(4, targets)).unwrap();
    let base = random_base(model, 3).to_flat();
    let adapters = with_nonzero_b(&lora, 4, 0.05).to_flat();
    // Two windows of real text.
    let starts = [1_000u32, 250_000];
    let (mut tokens, mut next) = (vec![0; 2 * seq], vec![0; 2 * seq]);
    gather_windows(data.train.tokens(), &starts, seq, &mut tokens, &mut next);

    let mut net = Transformer::new(model, 2);
    let mut full = base.clone();
    lora.merge_flat(&base, &adapters, &mut full, SERIAL);
    let mut grads = vec![f32::NAN; full.len()];
    net.loss_and_grad(&full, &tokens, &next, 2, seq, &mut grads, SERIAL);
    let mut analytic = vec![f32::NAN; lora.num_params()];
    lora.adapter_grads(&grads, &adapters, &mut analytic, SERIAL);

    let mut loss_at = |adapters: &[f32]| {
        let mut full = base.clone();
        lora.merge_flat(&base, adapters, &mut full, SERIAL);
        loss_f64(&mut net, &full, &tokens, &next, seq)
    };
    let mut x = adapters.clone();
    let h = 1e-2f32;
    let mut checked = 0;
    for (name, range) in ranges(&lora) {
        let g = &analytic[range.clone()];
        assert!(g.iter().all(|v| v.is_finite()), "{kind} {name}: non-finite");
        assert!(g.iter().any(|&v| v != 0.0), "{kind} {name}: all zero");
        // The largest coordinate, where the check is sharpest, and a seeded one.
        let largest = range
            .clone()
            .max_by(|&a, &b| analytic[a].abs().total_cmp(&analytic[b].abs()))
            .unwrap();
        let any = range.start + Rng::new(range.start as u64).below(range.len() as u64) as usize;
        for i in [largest, any] {
            let orig = x[i];
            x[i] = orig + h;
            let up = loss_at(&x);
            x[i] = orig - h;
            let down = loss_at(&x);
            x[i] = orig;
            let numeric = (up - down) / (2.0 * f64::from(h));
            let a = f64::from(analytic[i]);
            eprintln!(
                "{kind} {name}[{}]: analytic {a:.6} numeric {numeric:.6}",
                i - range.start
            );
            assert!(
                (numeric - a).abs() <= 1e-2 * a.abs() + 5e-5,
                "{kind} {name}[{}]: analytic {a} vs numeric {numeric}",
                i - range.start
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * lora.shapes().len());
}

#[test]
fn gpt_adapter_gradients_match_finite_differences() {
    // Conv1D [in, out]: c_attn (32 → 96), attn.c_proj and mlp.c_proj (64 → 32), c_fc (32 → 64).
    adapter_gradients_match_finite_differences(ModelKind::Gpt, &["c_attn", "c_proj", "c_fc"]);
}

#[test]
fn llama_adapter_gradients_match_finite_differences() {
    // Linear [out, in]: every projection, k and v 32 → 16.
    adapter_gradients_match_finite_differences(ModelKind::Llama, LLAMA_TARGETS);
}

#[test]
fn the_merge_matches_a_naive_reference_and_is_the_base_while_b_is_zero() {
    for (kind, targets) in [
        (ModelKind::Gpt, &["c_attn", "mlp.c_proj"][..]),
        (ModelKind::Llama, &["k_proj", "o_proj", "gate_proj"][..]),
    ] {
        let model = model(kind, "baby");
        let lora = Lora::new(model, &config(8, targets)).unwrap();
        let base = model.init(5);
        // B = 0 at init: the merged model is the base, bit for bit.
        let start = lora.merge(&base, &lora.init(6)).unwrap();
        let bits = |s: &TensorSet| s.to_flat().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&start), bits(&base), "{kind}: B = 0 changed the model");

        let adapters = with_nonzero_b(&lora, 7, 0.05);
        let merged = lora.merge(&base, &adapters).unwrap();
        let s = f64::from(lora.scale());
        let adapted: Vec<&str> = lora.targets().iter().map(|t| t.weight.as_str()).collect();
        for (name, w) in base.iter() {
            let got = &merged.get(name).unwrap().data;
            let Some(t) = lora.targets().iter().find(|t| t.weight == name) else {
                assert_eq!(got, &w.data, "{kind}: {name} is not a target yet changed");
                continue;
            };
            let a = &adapters.get(&t.a).unwrap().data;
            let b = &adapters.get(&t.b).unwrap().data;
            let (i_n, o_n, r) = (t.inputs, t.outputs, 8);
            let mut worst = 0f64;
            for o in 0..o_n {
                for i in 0..i_n {
                    let ba: f64 = (0..r)
                        .map(|k| f64::from(b[o * r + k]) * f64::from(a[k * i_n + i]))
                        .sum();
                    let at = match t.orientation {
                        Orientation::Linear => o * i_n + i,
                        Orientation::Conv1d => i * o_n + o,
                    };
                    let want = f64::from(w.data[at]) + s * ba;
                    let err = (f64::from(got[at]) - want).abs();
                    worst = worst.max(err);
                    assert!(
                        err <= 1e-6 * (want.abs() + 1e-2),
                        "{kind} {name}[{o}, {i}]: {} vs {want}",
                        got[at]
                    );
                }
            }
            assert!(
                got != &w.data,
                "{kind}: {name} is a target and did not change"
            );
            eprintln!("{kind} {name}: max |merged − reference| {worst:.2e}");
        }
        assert_eq!(adapted.len(), lora.targets().len());
        assert_eq!(
            adapted.len(),
            4 * targets.len(),
            "{kind}: one matrix per block and target"
        );
        // Inputs that do not fit are refused, naming what is wrong.
        let other = Lora::new(model, &config(4, targets)).unwrap();
        let e = lora.merge(&base, &other.init(1)).unwrap_err().to_string();
        assert!(e.contains("shape"), "{e}");
        let mut bad = adapters.clone();
        bad.get_mut(&lora.targets()[0].b).unwrap().data[3] = f32::NAN;
        let e = lora.merge(&base, &bad).unwrap_err().to_string();
        assert!(e.contains("non-finite"), "{e}");
        let e = lora.merge(&adapters, &adapters).unwrap_err().to_string();
        assert!(e.contains("names differ"), "{e}");
    }
}

/// A LoRA task on shard 1 of 4 of tiny-shakespeare from `frozen`, with
/// nanoGPT's AdamW (weight decay 0.1), a cosine schedule and clipping.
fn lora_spec(model: Model, lora: LoraConfig, steps: usize, lr: f32, seed: u64) -> TaskSpec {
    TaskSpec {
        model,
        shard: 1,
        shards: 4,
        steps,
        batch: 4,
        lr,
        optimizer: OptimizerKind::AdamW {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        },
        schedule: Schedule::Cosine {
            warmup: 1,
            total: 20,
            min_lr: lr / 10.0,
        },
        step0: 2,
        grad_clip: 1.0,
        seed,
        lora: Some(lora),
    }
}

fn lora_task(
    spec: &TaskSpec,
    frozen: &TensorSet,
    adapters: &TensorSet,
    threads: usize,
) -> TaskOutcome {
    let compute = Compute::new(threads).unwrap();
    train_task_lora(frozen, adapters, shakespeare(), spec, &compute, &mut |_| {}).unwrap()
}

#[test]
fn a_lora_delta_is_identical_at_one_and_two_threads_and_on_every_run() {
    for (kind, targets) in [
        (ModelKind::Gpt, &["c_attn", "c_proj"][..]),
        (ModelKind::Llama, &["q_proj", "v_proj", "down_proj"][..]),
    ] {
        let model = model(kind, "baby");
        let lora_config = config(8, targets);
        let lora = Lora::new(model, &lora_config).unwrap();
        let frozen = model.init(11);
        let adapters = lora.init(11);
        let spec = lora_spec(model, lora_config, 3, 2e-3, 21);
        let hash = |o: &TaskOutcome| keccak256(encode(&o.delta)).to_string();
        let one = lora_task(&spec, &frozen, &adapters, 1);
        let two = lora_task(&spec, &frozen, &adapters, 2);
        let again = lora_task(&spec, &frozen, &adapters, 1);
        assert_eq!(hash(&one), hash(&two), "{kind}: 1 and 2 threads differ");
        assert_eq!(hash(&one), hash(&again), "{kind}: a rerun differs");
        assert_eq!(one.loss_before.to_bits(), two.loss_before.to_bits());
        assert_eq!(one.loss_after.to_bits(), two.loss_after.to_bits());
        // The delta is the adapters', and both A and B moved.
        lora.zeros().check_same_layout(&one.delta).unwrap();
        for (name, t) in one.delta.iter() {
            assert!(
                t.data.iter().any(|&v| v != 0.0),
                "{kind}: {name} did not move"
            );
        }
        // Starting from B = 0, the merged model before training is the base.
        let base_loss = funetun_ml::evaluate(
            model,
            &frozen.to_flat(),
            shakespeare(),
            &shakespeare().train,
            Some(&funetun_ml::train::task_eval_sample(&spec, shakespeare()).unwrap()),
            &Compute::new(1).unwrap(),
        )
        .unwrap();
        assert_eq!(one.loss_before, base_loss.loss as f32, "{kind}");
        // Another data order, another delta.
        let other = lora_task(
            &TaskSpec {
                seed: 22,
                ..spec.clone()
            },
            &frozen,
            &adapters,
            2,
        );
        assert_ne!(hash(&one), hash(&other), "{kind}: the seed changed nothing");
        eprintln!(
            "{kind}: LoRA delta {} ({} → {})",
            hash(&one),
            one.loss_before,
            one.loss_after
        );

        // A trainer's merged weights are its adapters merged into the base.
        let compute = Compute::new(2).unwrap();
        let pool = shard_pool(model, shakespeare(), 1, 4).unwrap();
        let mut trainer = LocalTrainer::new_lora(&spec, &frozen, &adapters, pool).unwrap();
        for _ in 0..2 {
            trainer.step(shakespeare(), &compute).unwrap();
        }
        let merged = trainer.merged_weights().unwrap();
        let trained = trainer.weights().unwrap();
        lora.zeros().check_same_layout(&trained).unwrap();
        assert_eq!(merged, lora.merge(&frozen, &trained).unwrap(), "{kind}");
        assert_eq!(trainer.params(), merged.to_flat().as_slice());
        assert_eq!(
            trainer.lora().unwrap().targets().len(),
            lora.targets().len()
        );
    }
}

#[test]
fn lora_lowers_the_loss_of_a_briefly_trained_baby_gpt_changing_only_its_targets() {
    let data = shakespeare();
    let model = model(ModelKind::Gpt, "baby");
    let compute = Compute::new(2).unwrap();
    // A checkpoint: the whole model briefly trained on text.
    let pretrain = TaskSpec {
        model,
        shard: 0,
        shards: 1,
        steps: 60,
        batch: 12,
        lr: 2e-3,
        optimizer: OptimizerKind::ADAM,
        schedule: Schedule::Constant,
        step0: 0,
        grad_clip: 1.0,
        seed: 1,
        lora: None,
    };
    let init = model.init(1);
    let out = train_task(&init, data, &pretrain, &compute, &mut |_| {}).unwrap();
    assert!(out.loss_after < out.loss_before);
    let base = init.add(&out.delta).unwrap();
    eprintln!(
        "checkpoint: loss {} → {} in 60 steps",
        out.loss_before, out.loss_after
    );

    let lora_config = config(8, &["c_attn", "attn.c_proj"]);
    let lora = Lora::new(model, &lora_config).unwrap();
    let adapters = lora.init(2);
    let spec = TaskSpec {
        batch: 12,
        schedule: Schedule::Constant,
        ..lora_spec(model, lora_config, 30, 3e-3, 3)
    };
    let mut steps = 0;
    let out = train_task_lora(&base, &adapters, data, &spec, &compute, &mut |s| steps = s).unwrap();
    assert_eq!(steps, 30);
    assert_eq!(out.samples, 30 * 12);
    eprintln!(
        "LoRA rank 8 on c_attn, attn.c_proj: loss {} → {} in 30 steps",
        out.loss_before, out.loss_after
    );
    assert!(
        out.loss_after < out.loss_before - 0.02,
        "LoRA did not lower the loss: {} → {}",
        out.loss_before,
        out.loss_after
    );

    // Only the adapted matrices moved.
    let merged = lora
        .merge(&base, &adapters.add(&out.delta).unwrap())
        .unwrap();
    let mut changed = Vec::new();
    for (name, w) in base.iter() {
        if merged.get(name).unwrap().data != w.data {
            changed.push(name.to_string());
        }
    }
    let want: Vec<String> = (0..4)
        .flat_map(|i| {
            [
                format!("transformer.h.{i}.attn.c_attn.weight"),
                format!("transformer.h.{i}.attn.c_proj.weight"),
            ]
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(changed, want);
}

#[test]
fn specs_that_cannot_train_adapters_are_refused_with_the_fix() {
    let data = shakespeare();
    let gpt = model(ModelKind::Gpt, "tiny");
    let compute = Compute::new(1).unwrap();
    let base = gpt.init(1);
    let spec = lora_spec(gpt, config(4, &["c_attn"]), 1, 1e-3, 1);
    let lora = Lora::new(gpt, spec.lora.as_ref().unwrap()).unwrap();
    let adapters = lora.init(1);
    let err = |r: funetun_ml::Result<TaskOutcome>| r.unwrap_err().to_string();

    // A llama projection on a gpt.
    let wrong = TaskSpec {
        lora: Some(config(4, &["q_proj", "c_attn"])),
        ..spec.clone()
    };
    let e = err(train_task_lora(
        &base,
        &adapters,
        data,
        &wrong,
        &compute,
        &mut |_| {},
    ));
    assert!(
        e.contains("`q_proj` matches no projection")
            && e.contains("c_attn, c_proj, attn.c_proj, mlp.c_proj, c_fc"),
        "{e}"
    );
    let e = wrong.validate().unwrap_err().to_string();
    assert!(e.contains("q_proj"), "{e}");
    // Bad numbers name their field.
    let e = err(train_task_lora(
        &base,
        &adapters,
        data,
        &TaskSpec {
            lora: Some(LoraConfig {
                alpha: -1.0,
                ..config(4, &["c_attn"])
            }),
            ..spec.clone()
        },
        &compute,
        &mut |_| {},
    ));
    assert!(e.contains("alpha"), "{e}");
    // Adapters of another layout.
    let e = err(train_task_lora(
        &base,
        &Lora::new(gpt, &config(4, &["c_fc"])).unwrap().init(1),
        data,
        &spec,
        &compute,
        &mut |_| {},
    ));
    assert!(e.contains("names differ"), "{e}");
    // The whole-model entry points refuse a LoRA spec, and the LoRA ones a plain spec.
    let e = err(train_task(&base, data, &spec, &compute, &mut |_| {}));
    assert!(e.contains("train_task_lora"), "{e}");
    let plain = TaskSpec {
        lora: None,
        ..spec.clone()
    };
    let e = err(train_task_lora(
        &base,
        &adapters,
        data,
        &plain,
        &compute,
        &mut |_| {},
    ));
    assert!(e.contains("names no adapters"), "{e}");
    assert!(LocalTrainer::new(&spec, &base, vec![0]).is_err());
    // An image model has no projections to adapt.
    let mlp = TaskSpec {
        model: Model::Mlp,
        ..spec.clone()
    };
    let e = mlp.validate().unwrap_err().to_string();
    assert!(e.contains("not a transformer"), "{e}");
    // The adapters' bytes decode only in their layout.
    assert_eq!(lora.decode(&encode(&adapters)).unwrap(), adapters);
    assert!(lora.decode(&encode(&base)).is_err());
    // And the spec that fits trains.
    let out = train_task_lora(&base, &adapters, data, &spec, &compute, &mut |_| {}).unwrap();
    lora.zeros().check_same_layout(&out.delta).unwrap();
}

/// The canonical encoding's size for tensors of these names and shapes,
/// computed without their values: 8 bytes of header length, the JSON
/// header padded to 8 bytes, then 4 bytes per value (funetun_core's
/// `encoding`; checked against `encode` below).
fn encoded_len(shapes: &[(String, Vec<usize>)]) -> usize {
    let mut sorted: Vec<_> = shapes.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = String::from("{");
    let mut offset = 0;
    for (i, (name, shape)) in sorted.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        let end = offset + 4 * shape.iter().product::<usize>();
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        header.push_str(&format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            dims.join(",")
        ));
        offset = end;
    }
    header.push('}');
    8 + header.len().next_multiple_of(8) + offset
}

fn zeros(shapes: &[(String, Vec<usize>)]) -> TensorSet {
    let mut set = TensorSet::new();
    for (name, shape) in shapes {
        set.insert(name.clone(), Tensor::zeros(shape.clone()));
    }
    set
}

#[test]
fn a_rank_8_adapter_delta_is_a_small_fraction_of_a_full_one() {
    let baby = model(ModelKind::Gpt, "baby");
    let llama = Model::new(
        ModelKind::Llama,
        Some(TransformerConfig::preset("llama-100m", 32_000).unwrap()),
    )
    .unwrap();
    let cases = [
        (baby, "baby gpt", &["c_attn"][..]),
        (baby, "baby gpt", &["c_attn", "c_proj", "c_fc"][..]),
        (llama, "llama-100m", &["q_proj", "v_proj"][..]),
        (llama, "llama-100m", LLAMA_TARGETS),
    ];
    // The size formula is the encoder's: checked on every adapter set and
    // the baby's full model (llama-100m's 125M values are not allocated).
    assert_eq!(encoded_len(&baby.shapes()), encode(&baby.zeros()).len());
    for (model, what, targets) in cases {
        let lora = Lora::new(model, &config(8, targets)).unwrap();
        let adapter_bytes = encode(&lora.zeros()).len();
        assert_eq!(adapter_bytes, encoded_len(&lora.shapes()));
        assert_eq!(adapter_bytes, encode(&zeros(&lora.shapes())).len());
        let full_bytes = encoded_len(&model.shapes());
        let ratio = full_bytes as f64 / adapter_bytes as f64;
        eprintln!(
            "{what}, rank 8 on {}: full delta {full_bytes} bytes ({} values), \
             adapter delta {adapter_bytes} bytes ({} values): {ratio:.1}× smaller",
            targets.join(","),
            model.num_params(),
            lora.num_params()
        );
        assert!(ratio > 1.0);
        if what == "llama-100m" && targets.len() == 2 {
            // 12 blocks × (q: 8·768 + 768·8, v: 8·768 + 256·8).
            assert_eq!(lora.num_params(), 12 * (2 * 8 * 768 + 8 * 768 + 256 * 8));
            assert!(ratio >= 50.0, "only {ratio:.1}× smaller");
        }
    }
}
