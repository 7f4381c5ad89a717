//! The blocking work of a round: θ₀ from the spec's seed, the next
//! checkpoint from the accepted deltas (rule, then outer optimizer), and the
//! evaluation on the test split. Pure functions of their inputs, run in
//! `spawn_blocking` by the driver.

use alloy_primitives::{Address, B256, U256};
use funetun_aggregate::{Exec, Options, Outer, Rule, state_file};
use funetun_core::sync::{MANIFEST_VERSION, Manifest, ManifestInput, input_weights};
use funetun_core::{DecodeLimits, decode, encode, keccak256};
use funetun_ml::{Compute, Dataset, Evaluation};

use crate::error::{Error, Result};
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
    /// What θ_{t+1} was built from; its hash goes on-chain with it.
    pub manifest: Manifest,
}

/// An accepted update a round aggregates, with the checkpoint it was
/// trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// On-chain index.
    pub index: U256,
    /// Who trained it.
    pub trainer: Address,
    /// keccak256 of the delta.
    pub update: B256,
    /// The round whose checkpoint it was trained on.
    pub base_round: u64,
    /// keccak256 of that checkpoint.
    pub base: B256,
}

/// Builds θ_{t+1} of round `round` from θ_t (`base`, hashing to
/// `parent`), the accepted updates and their deltas in their fixed order,
/// and the outer state left by the previous round (hash and bytes).
#[allow(clippy::too_many_arguments)]
pub fn build_checkpoint(
    info: &JobInfo,
    round: u64,
    parent: B256,
    base: &[u8],
    inputs: &[Input],
    deltas: &[Vec<u8>],
    outer_state: Option<(B256, &[u8])>,
    exec: &Exec,
) -> Result<Built> {
    // θ_t must be in the job's layout; `rebuild` holds every delta to
    // θ_t's layout (deltas were also checked when they were uploaded).
    info.space.decode(base)?;
    let fell_back_to_mean = info.rule.check_n(inputs.len()).is_err();
    let alpha = info.spec.staleness_alpha;
    let mut manifest = Manifest {
        version: MANIFEST_VERSION,
        job: info.job_id,
        round,
        parent,
        checkpoint: B256::ZERO,
        rule: if fell_back_to_mean {
            "mean".into()
        } else {
            info.spec.aggregation.clone()
        },
        outer_optimizer: info.spec.outer_optimizer.clone(),
        outer_state_in: outer_state.map(|(h, _)| h),
        outer_state_out: None,
        sync: info.spec.sync,
        staleness_alpha: alpha,
        inputs: Vec::with_capacity(inputs.len()),
    };
    let mut staleness = Vec::with_capacity(inputs.len());
    for i in inputs {
        staleness.push(round.checked_sub(i.base_round).ok_or_else(|| {
            Error::Inconsistent(format!(
                "update {} of round {round} was trained on later checkpoint {}",
                i.update, i.base_round
            ))
        })?);
    }
    let weights = input_weights(&staleness, alpha);
    for ((i, staleness), weight) in inputs.iter().zip(staleness).zip(weights) {
        manifest.inputs.push(ManifestInput {
            index: i.index,
            trainer: i.trainer,
            update: i.update,
            base_round: i.base_round,
            base: i.base,
            staleness,
            weight,
        });
    }
    let mut built = rebuild(&manifest, base, deltas, outer_state.map(|(_, b)| b), exec)?;
    built.fell_back_to_mean = fell_back_to_mean;
    Ok(built)
}

/// Carries out `manifest` (whose `checkpoint` and `outer_state_out` are
/// not read): θ_{t+1} from `parent`'s bytes, the deltas in the manifest's
/// order each scaled by its weight, the manifest's rule, and its outer
/// optimizer from `outer_state` (the blob `outer_state_in` names). Needs
/// no spec, so anyone holding the blobs can audit an aggregation; the
/// returned manifest has the result's hashes filled in.
pub fn rebuild(
    manifest: &Manifest,
    parent: &[u8],
    deltas: &[Vec<u8>],
    outer_state: Option<&[u8]>,
    exec: &Exec,
) -> Result<Built> {
    let bad = |what: String| Error::Manifest(format!("round {}: {what}", manifest.round));
    manifest.check().map_err(|e| bad(e.to_string()))?;
    if deltas.len() != manifest.inputs.len() {
        return Err(bad(format!(
            "{} deltas for {} inputs",
            deltas.len(),
            manifest.inputs.len()
        )));
    }
    if manifest.outer_state_in.is_some() != outer_state.is_some() {
        return Err(bad("the outer state does not match the manifest".into()));
    }
    let rule: Rule = manifest
        .rule
        .parse()
        .map_err(|e| bad(format!("rule: {e}")))?;
    let outer: Outer = manifest
        .outer_optimizer
        .parse()
        .map_err(|e| bad(format!("outer optimizer: {e}")))?;
    let base = decode(parent, &DecodeLimits::default())?;
    // A delta has its parent's layout, so its size.
    let delta_limits = DecodeLimits {
        max_bytes: parent.len(),
        ..DecodeLimits::default()
    };
    let mut flats = Vec::with_capacity(deltas.len());
    for (input, bytes) in manifest.inputs.iter().zip(deltas) {
        if keccak256(bytes) != input.update {
            return Err(bad(format!(
                "the delta of update {} does not hash to it",
                input.update
            )));
        }
        let delta = decode(bytes, &delta_limits)?;
        base.check_same_layout(&delta)
            .map_err(|e| bad(format!("update {}: {e}", input.update)))?;
        let mut flat = delta.to_flat();
        if input.weight != 1.0 {
            flat.iter_mut().for_each(|x| *x *= input.weight);
        }
        flats.push(flat);
    }
    let refs: Vec<&[f32]> = flats.iter().map(|f| f.as_slice()).collect();
    let agg = rule.aggregate(&refs, &Options::default(), exec)?;
    let mut theta = base.to_flat();
    let d = theta.len();
    // The round is the step count: a restart rebuilds the same state.
    let mut state = match outer_state {
        Some(bytes) => state_file::decode_state(bytes, &outer, &base)?,
        None => outer.init_state(d),
    };
    state.step = manifest.round;
    outer.step(&mut theta, &agg.output, &mut state, exec)?;
    let next = base.from_flat_like(&theta)?;
    let outer_state = if state.slots.is_empty() {
        None
    } else {
        Some(state_file::encode_state(&state, &base)?)
    };
    let checkpoint = encode(&next);
    let mut manifest = manifest.clone();
    manifest.checkpoint = keccak256(&checkpoint);
    manifest.outer_state_out = outer_state.as_deref().map(keccak256);
    Ok(Built {
        checkpoint,
        flat: theta,
        outer_state,
        fell_back_to_mean: false,
        manifest,
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

    /// Inputs for `deltas`, trained on the checkpoints of `base_rounds`.
    fn inputs(deltas: &[Vec<u8>], base_rounds: &[u64]) -> Vec<Input> {
        deltas
            .iter()
            .zip(base_rounds)
            .enumerate()
            .map(|(i, (d, &base_round))| Input {
                index: U256::from(i),
                trainer: Address::repeat_byte(i as u8 + 1),
                update: keccak256(d),
                base_round,
                base: B256::repeat_byte(base_round as u8),
            })
            .collect()
    }

    fn build(
        info: &JobInfo,
        round: u64,
        base: &[u8],
        deltas: &[Vec<u8>],
        base_rounds: &[u64],
        outer: Option<&[u8]>,
    ) -> Built {
        let outer = outer.map(|b| (keccak256(b), b));
        build_checkpoint(
            info,
            round,
            keccak256(base),
            base,
            &inputs(deltas, base_rounds),
            deltas,
            outer,
            &Exec::sequential(),
        )
        .unwrap()
    }

    #[test]
    fn the_mean_of_deltas_moves_the_base_and_the_result_is_reproducible() {
        let info = info("sgd", "mean");
        let base = initial_checkpoint(&info);
        let deltas = vec![delta(&info, 0.5), delta(&info, 1.5)];
        let a = build(&info, 0, &base, &deltas, &[0, 0], None);
        let b = build(&info, 0, &base, &deltas, &[0, 0], None);
        assert_eq!(a.checkpoint, b.checkpoint);
        assert!(a.outer_state.is_none());
        let base_flat = info.model.init(0).to_flat();
        assert!((a.flat[0] - (base_flat[0] + 1.0)).abs() < 1e-6);
        assert_eq!(a.manifest.checkpoint, keccak256(&a.checkpoint));
        assert_eq!(a.manifest.parent, keccak256(&base));
        assert!(a.manifest.inputs.iter().all(|i| i.weight == 1.0));
    }

    #[test]
    fn nesterov_state_is_carried_between_rounds() {
        let info = info("nesterov:0.7,0.9", "median");
        let base = initial_checkpoint(&info);
        let deltas = vec![delta(&info, 1.0)];
        let r0 = build(&info, 0, &base, &deltas, &[0], None);
        assert!(r0.outer_state.is_some());
        let r1 = build(
            &info,
            1,
            &r0.checkpoint,
            &deltas,
            &[1],
            r0.outer_state.as_deref(),
        );
        let fresh = build(&info, 1, &r0.checkpoint, &deltas, &[1], None);
        assert_ne!(r1.checkpoint, fresh.checkpoint, "momentum must carry over");
        assert_eq!(r1.manifest.outer_state_in, r0.manifest.outer_state_out);
    }

    #[test]
    fn too_few_inputs_for_the_rule_fall_back_to_the_mean() {
        let info = info("sgd", "trimmed-mean:1");
        let base = initial_checkpoint(&info);
        let built = build(&info, 0, &base, &[delta(&info, 1.0)], &[0], None);
        assert!(built.fell_back_to_mean);
        assert_eq!(built.manifest.rule, "mean");
    }

    #[test]
    fn a_staler_update_weighs_less_than_a_fresher_one() {
        let spec = JobSpec {
            dataset: funetun_ml::DatasetName::Synthetic(0),
            sync: "stale:2".parse().unwrap(),
            staleness_alpha: 1.0,
            aggregation: "mean".into(),
            ..JobSpec::default()
        };
        let info = JobInfo::resolve(1, spec, 1, vec![0; 32]).unwrap();
        let base = initial_checkpoint(&info);
        let deltas = [delta(&info, 1.0), delta(&info, 3.0)];
        // Round 3: one update trained on checkpoint 3, one on checkpoint 2.
        let built = build(&info, 3, &base, &deltas, &[3, 2], None);
        let w: Vec<f32> = built.manifest.inputs.iter().map(|i| i.weight).collect();
        assert_eq!(w, vec![1.0, 0.5]);
        // The mean of 1 · 1 and 0.5 · 3: 1.25 instead of 2.
        let base_flat = info.model.init(0).to_flat();
        assert!((built.flat[0] - (base_flat[0] + 1.25)).abs() < 1e-5);
        // Fresh inputs are not touched.
        let fresh = build(&info, 3, &base, &deltas, &[3, 3], None);
        assert!(fresh.manifest.inputs.iter().all(|i| i.weight == 1.0));
        assert!((fresh.flat[0] - (base_flat[0] + 2.0)).abs() < 1e-5);
    }

    #[test]
    fn a_manifest_rebuilds_its_checkpoint_and_any_change_is_caught() {
        let info = info("nesterov:0.7,0.9", "median");
        let base = initial_checkpoint(&info);
        let deltas = vec![delta(&info, 1.0), delta(&info, 2.0), delta(&info, 4.0)];
        let r0 = build(&info, 0, &base, &deltas, &[0, 0, 0], None);
        let r1 = build(
            &info,
            1,
            &r0.checkpoint,
            &deltas,
            &[1, 1, 1],
            r0.outer_state.as_deref(),
        );
        let exec = Exec::sequential();
        let again = rebuild(
            &r1.manifest,
            &r0.checkpoint,
            &deltas,
            r0.outer_state.as_deref(),
            &exec,
        )
        .unwrap();
        assert_eq!(again.checkpoint, r1.checkpoint);
        assert_eq!(again.manifest, r1.manifest);
        // Another rule gives another checkpoint.
        let mut other = r1.manifest.clone();
        other.rule = "mean".into();
        let built = rebuild(
            &other,
            &r0.checkpoint,
            &deltas,
            r0.outer_state.as_deref(),
            &exec,
        )
        .unwrap();
        assert_ne!(built.manifest.checkpoint, r1.manifest.checkpoint);
        // A swapped delta does not hash to its input.
        let mut swapped = deltas.clone();
        swapped[1] = delta(&info, 3.0);
        let e = rebuild(
            &r1.manifest,
            &r0.checkpoint,
            &swapped,
            r0.outer_state.as_deref(),
            &exec,
        )
        .unwrap_err();
        assert!(e.to_string().contains("round 1"), "{e}");
        // A missing outer state is named.
        let e = rebuild(&r1.manifest, &r0.checkpoint, &deltas, None, &exec).unwrap_err();
        assert!(e.to_string().contains("outer state"), "{e}");
    }
}
