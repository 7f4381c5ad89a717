//! From an API [`Task`] to a [`TaskSpec`]: the one place that reads the
//! orchestrator's task fields as a training run, so the trainer, the
//! validator, the challenger and the CLI train (and replay) the same thing.

use funetun_core::api::Task;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::optim::OptimizerKind;
use crate::train::TaskSpec;

/// The training run that `task` asks for, checked. A field that does not
/// parse or is out of range is named in [`Error::BadTask`] (the model and
/// data set are typed words, refused where the task arrives).
pub fn task_spec(task: &Task) -> Result<TaskSpec> {
    let bad = |detail: String| Error::BadTask {
        task_id: task.task_id,
        detail,
    };
    let model = Model::new(task.model, task.transformer).map_err(|e| bad(e.to_string()))?;
    let optimizer: OptimizerKind = task
        .optimizer
        .parse()
        .map_err(|e| bad(format!("optimizer: {e}")))?;
    let spec = TaskSpec {
        model,
        shard: task.shard as usize,
        shards: task.shards as usize,
        steps: task.steps as usize,
        batch: task.batch as usize,
        lr: task.lr,
        optimizer,
        schedule: task
            .lr_schedule
            .parse()
            .map_err(|e| bad(format!("lr_schedule: {e}")))?,
        step0: task.global_step,
        grad_clip: task.grad_clip,
        seed: task.seed,
        lora: task.lora.clone(),
    };
    if spec.lora.is_some() && task.frozen_hash.is_none() {
        return Err(bad(
            "a LoRA task must name its frozen model (frozen_hash)".into()
        ));
    }
    spec.validate().map_err(|e| bad(e.to_string()))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use alloy_primitives::B256;

    use super::*;
    use crate::data::DatasetName;
    use crate::model::Architecture as _;
    use crate::model::ModelKind;

    fn task() -> Task {
        Task {
            task_id: 7,
            job_id: 1,
            round: 0,
            base_hash: B256::ZERO,
            model: ModelKind::Mlp,
            transformer: None,
            dataset: DatasetName::Synthetic(0),
            shard: 1,
            slot: 1,
            shards: 4,
            steps: 3,
            batch: 16,
            lr: 0.05,
            optimizer: "momentum:0.9".into(),
            lr_schedule: "constant".into(),
            global_step: 0,
            grad_clip: 0.0,
            seed: 11,
            lease_expires_at: 0,
            lora: None,
            frozen_hash: None,
            sync: Default::default(),
        }
    }

    #[test]
    fn tasks_map_to_training_specs_and_bad_fields_are_named() {
        let spec = task_spec(&task()).unwrap();
        assert_eq!(spec.shard, 1);
        assert_eq!(spec.optimizer, OptimizerKind::Momentum { momentum: 0.9 });
        for (field, t) in [
            (
                "optimizer",
                Task {
                    optimizer: "lion".into(),
                    ..task()
                },
            ),
            ("shard", Task { shard: 4, ..task() }),
            ("steps", Task { steps: 0, ..task() }),
        ] {
            let e = task_spec(&t).unwrap_err().to_string();
            assert!(e.contains("task 7") && e.contains(field), "{e}");
        }
    }

    #[test]
    fn a_model_decodes_its_own_bytes_and_refuses_another_layout() {
        let weights = Model::Mlp.init(3);
        let bytes = funetun_core::encode(&weights);
        assert_eq!(Model::Mlp.decode(&bytes).unwrap(), weights);
        assert!(Model::Cnn.decode(&bytes).is_err());
        assert!(Model::Mlp.decode(&bytes[..bytes.len() - 4]).is_err());
    }
}
