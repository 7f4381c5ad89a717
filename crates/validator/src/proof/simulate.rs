//! An honest federated run, the reference the thresholds are measured on:
//! every round, each shard trains `steps` local steps from the current
//! checkpoint with [`train_task`], and the mean of the shard deltas is added
//! to it (plain outer step, the job spec's `mean` rule with outer `sgd`).
//! It mirrors what the orchestrator does when every update is accepted.

use funetun_core::TensorSet;
use funetun_ml::{Compute, Dataset, Model, OptimizerKind, TaskSpec, train_task};

use super::Result;

/// How the reference run trains.
#[derive(Clone, Debug, PartialEq)]
pub struct FederatedPlan {
    /// Shards (one task per shard per round).
    pub shards: usize,
    /// Rounds (checkpoints after θ₀).
    pub rounds: usize,
    /// Local steps per task.
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Inner learning rate.
    pub lr: f32,
    /// Inner optimizer.
    pub optimizer: OptimizerKind,
    /// Seed of the tasks' data order.
    pub seed: u64,
}

/// The seed of the task of `shard` in `round`.
pub fn task_seed(plan_seed: u64, round: usize, shard: usize, shards: usize) -> u64 {
    plan_seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add((round * shards + shard) as u64)
}

/// C₀ = `theta0`, then one checkpoint per round: C_{t+1} = C_t + mean of
/// the shards' deltas.
pub fn federated_chain(
    model: Model,
    theta0: TensorSet,
    data: &Dataset,
    plan: &FederatedPlan,
    compute: &Compute,
) -> Result<Vec<TensorSet>> {
    let mut chain = vec![theta0];
    for round in 0..plan.rounds {
        let base = &chain[round];
        let mut sum = vec![0f64; base.num_params()];
        for shard in 0..plan.shards {
            let spec = TaskSpec {
                model,
                shard,
                shards: plan.shards,
                steps: plan.steps,
                batch: plan.batch,
                lr: plan.lr,
                optimizer: plan.optimizer,
                schedule: funetun_ml::optim::Schedule::Constant,
                step0: 0,
                grad_clip: 0.0,
                seed: task_seed(plan.seed, round, shard, plan.shards),
                lora: None,
            };
            let outcome = train_task(base, data, &spec, compute, &mut |_| {})?;
            for (s, d) in sum.iter_mut().zip(outcome.delta.to_flat()) {
                *s += f64::from(d);
            }
        }
        let k = plan.shards.max(1) as f64;
        let next: Vec<f32> = base
            .to_flat()
            .iter()
            .zip(&sum)
            .map(|(&b, &s)| b + (s / k) as f32)
            .collect();
        let next = base
            .from_flat_like(&next)
            .map_err(funetun_ml::Error::from)?;
        chain.push(next);
    }
    Ok(chain)
}
