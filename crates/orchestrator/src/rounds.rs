//! The blocking work of a round: θ₀ from the spec's seed, the next
//! checkpoint from the accepted deltas (rule, then outer optimizer), and the
//! evaluation on the test split. Pure functions of their inputs, run in
//! `spawn_blocking` by the driver.

use funetun_aggregate::{Exec, Options, Rule, state_file};
use funetun_core::encode;
use funetun_ml::{Compute, Dataset, Evaluation};

use crate::error::Result;
use crate::state::JobInfo;

/// The canonical bytes of checkpoint 0 of a job without an owner's
/// model: θ₀ drawn from the seed, or (LoRA) the adapters' seeded init.
pub fn initial_checkpoint(info: &JobInfo) -> Vec<u8> {
    encode(&info.space.init(info.spec.seed))
}

/// The next checkpoint and the outer optimizer's state after this round.
#[derive(Debug, Clone)]
pub struct Built {
    /// Canonical bytes of θ_{t+1}.
    pub checkpoint: Vec<u8>,
    /// θ_{t+1} flat (a LoRA job: the adapters), for evaluation.
    pub flat: Vec<f32>,
    /// The outer state as an [`state_file`] (none for plain SGD, which
    /// keeps no buffers).
    pub outer_state: Option<Vec<u8>>,
    /// Whether the rule had too few inputs and the mean was used instead.
    pub fell_back_to_mean: bool,
}

/// Builds θ_{t+1} of round `round` from θ_t (`base`), the accepted deltas in
/// their fixed order, and the outer state left by the previous round.
pub fn build_checkpoint(
    info: &JobInfo,
    round: u64,
    base: &[u8],
    deltas: &[Vec<u8>],
    outer_state: Option<&[u8]>,
    exec: &Exec,
) -> Result<Built> {
    let layout = info.space.zeros();
    let base = info.space.decode(base)?;
    let flats: Vec<Vec<f32>> = deltas
        .iter()
        .map(|d| Ok(info.space.decode(d)?.to_flat()))
        .collect::<Result<_>>()?;
    let inputs: Vec<&[f32]> = flats.iter().map(|f| f.as_slice()).collect();
    let (rule, fell_back_to_mean) = match info.rule.check_n(inputs.len()) {
        Ok(()) => (info.rule.clone(), false),
        Err(_) => (Rule::Mean, true),
    };
    let agg = rule.aggregate(&inputs, &Options::default(), exec)?;
    let mut theta = base.to_flat();
    let d = theta.len();
    // The round is the step count: a restart rebuilds the same state.
    let mut state = match outer_state {
        Some(bytes) => state_file::decode_state(bytes, &info.outer, &layout)?,
        None => info.outer.init_state(d),
    };
    state.step = round;
    info.outer.step(&mut theta, &agg.output, &mut state, exec)?;
    let next = base.from_flat_like(&theta)?;
    let outer_state = if state.slots.is_empty() {
        None
    } else {
        Some(state_file::encode_state(&state, &layout)?)
    };
    Ok(Built {
        checkpoint: encode(&next),
        flat: theta,
        outer_state,
        fell_back_to_mean,
    })
}

/// Characters of the sample shown with each text checkpoint.
pub const SAMPLE_TOKENS: usize = 160;

/// What a text checkpoint writes after a newline: [`SAMPLE_TOKENS`]
/// tokens, seeded by the job's seed so a checkpoint's sample never
/// changes; `None` for image models.
pub fn sample(
    info: &JobInfo,
    flat: &[f32],
    data: &Dataset,
    compute: &Compute,
) -> Result<Option<String>> {
    let Some(vocab) = data.vocab().filter(|_| info.model.is_text()) else {
        return Ok(None);
    };
    let prompt = vocab.encode("\n").unwrap_or_else(|_| vec![0]);
    let sampling = funetun_ml::generate::Sampling {
        tokens: SAMPLE_TOKENS,
        seed: info.spec.seed,
        ..Default::default()
    };
    let out = funetun_ml::generate::generate(info.model, flat, &prompt, &sampling, compute)?;
    Ok(Some(vocab.decode(&out)))
}

/// Test loss and accuracy of flat weights on the first `eval_samples` test
/// samples (all when 0); for text, on the first `eval_samples`
/// non-overlapping context windows of the validation split.
pub fn evaluate(
    info: &JobInfo,
    flat: &[f32],
    data: &Dataset,
    compute: &Compute,
) -> Result<Evaluation> {
    let indices: Vec<u32> = match info.model.transformer() {
        // Text: the first `eval_samples` non-overlapping windows.
        Some(c) => (0..funetun_ml::data::text::windows(data.test.len(), c.context))
            .step_by(c.context)
            .take(match info.spec.eval_samples {
                0 => usize::MAX,
                n => n as usize,
            })
            .map(|s| s as u32)
            .collect(),
        None => {
            let n = match info.spec.eval_samples as usize {
                0 => data.test.len(),
                n => n.min(data.test.len()),
            };
            (0..n as u32).collect()
        }
    };
    Ok(funetun_ml::evaluate(
        info.model,
        flat,
        data,
        &data.test,
        Some(&indices),
        compute,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use funetun_core::JobSpec;
    use funetun_ml::Architecture as _;

    fn info(outer: &str, rule: &str) -> JobInfo {
        let spec = JobSpec {
            outer_optimizer: outer.into(),
            aggregation: rule.into(),
            dataset: funetun_ml::DatasetName::Synthetic(0),
            ..JobSpec::default()
        };
        JobInfo::resolve(1, spec, 1, vec![0; 32]).unwrap()
    }

    fn delta(info: &JobInfo, v: f32) -> Vec<u8> {
        let mut z = info.model.zeros();
        for (_, t) in z.iter_mut() {
            t.data.iter_mut().for_each(|x| *x = v);
        }
        encode(&z)
    }

    #[test]
    fn the_mean_of_deltas_moves_the_base_and_the_result_is_reproducible() {
        let info = info("sgd", "mean");
        let base = initial_checkpoint(&info);
        let deltas = vec![delta(&info, 0.5), delta(&info, 1.5)];
        let exec = Exec::sequential();
        let a = build_checkpoint(&info, 0, &base, &deltas, None, &exec).unwrap();
        let b = build_checkpoint(&info, 0, &base, &deltas, None, &exec).unwrap();
        assert_eq!(a.checkpoint, b.checkpoint);
        assert!(a.outer_state.is_none());
        let base_flat = info.model.init(0).to_flat();
        assert!((a.flat[0] - (base_flat[0] + 1.0)).abs() < 1e-6);
    }

    #[test]
    fn nesterov_state_is_carried_between_rounds() {
        let info = info("nesterov:0.7,0.9", "median");
        let base = initial_checkpoint(&info);
        let exec = Exec::sequential();
        let deltas = vec![delta(&info, 1.0)];
        let r0 = build_checkpoint(&info, 0, &base, &deltas, None, &exec).unwrap();
        assert!(r0.outer_state.is_some());
        let r1 = build_checkpoint(
            &info,
            1,
            &r0.checkpoint,
            &deltas,
            r0.outer_state.as_deref(),
            &exec,
        )
        .unwrap();
        let fresh = build_checkpoint(&info, 1, &r0.checkpoint, &deltas, None, &exec).unwrap();
        assert_ne!(r1.checkpoint, fresh.checkpoint, "momentum must carry over");
    }

    #[test]
    fn too_few_inputs_for_the_rule_fall_back_to_the_mean() {
        let info = info("sgd", "trimmed-mean:1");
        let base = initial_checkpoint(&info);
        let built = build_checkpoint(
            &info,
            0,
            &base,
            &[delta(&info, 1.0)],
            None,
            &Exec::sequential(),
        )
        .unwrap();
        assert!(built.fell_back_to_mean);
    }
}
