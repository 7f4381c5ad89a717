//! Attack modes: how a dishonest trainer forges its update. They exist to
//! test the defences (docs/security.md) and to show them in `funetun demo
//! --byzantine K --attack KIND`; an honest trainer runs with none.
//!
//! | kind | what the trainer submits |
//! |---|---|
//! | `sign-flip` | −Δ |
//! | `scale:x` | x·Δ |
//! | `noise` | a random vector with the norm of the honest Δ |
//! | `nan` | Δ with NaN values (the orchestrator refuses to store it) |
//! | `zero` | a zero delta, no training (free rider) |
//! | `stale` | its own delta of an earlier round, again |
//! | `copy` | another trainer's delta, for its own task |
//! | `lazy` | trains a quarter of the assigned steps |
//! | `wrong-shard` | trains honestly on the next shard instead of its own |
//!
//! [`Forger`] is the [`DeltaSource`] of a trainer built with an attack.
//! Compiled only with the `byzantine` feature.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use funetun_core::TensorSet;
use funetun_core::api::Task;
use funetun_core::protocol::UpdateStatus;
use funetun_participant::Workbench;
use tracing::info;

use crate::error::{Error, Result};
use crate::source::{DeltaSource, Produce, Produced, Work, train};

/// How a dishonest trainer forges its updates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Attack {
    /// Submits −Δ.
    SignFlip,
    /// Submits x·Δ.
    Scale(f32),
    /// Submits Gaussian noise with the honest delta's norm.
    Noise,
    /// Submits Δ with NaN values.
    Nan,
    /// Submits zeros without training.
    Zero,
    /// Re-submits its delta of an earlier round.
    Stale,
    /// Submits another trainer's delta.
    Copy,
    /// Trains a quarter of the assigned steps.
    Lazy,
    /// Trains on the next shard.
    WrongShard,
}

/// The words `--attack` takes.
pub const ATTACK_KINDS: &str =
    "sign-flip, scale:X, noise, nan, zero, stale, copy, lazy, wrong-shard";

impl FromStr for Attack {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "sign-flip" => Attack::SignFlip,
            "noise" => Attack::Noise,
            "nan" => Attack::Nan,
            "zero" => Attack::Zero,
            "stale" => Attack::Stale,
            "copy" => Attack::Copy,
            "lazy" => Attack::Lazy,
            "wrong-shard" => Attack::WrongShard,
            _ => match s.strip_prefix("scale:").map(str::parse::<f32>) {
                Some(Ok(x)) if x.is_finite() && x != 1.0 => Attack::Scale(x),
                Some(_) => {
                    return Err(format!(
                        "`{s}`: scale:X needs a finite factor other than 1, e.g. scale:10"
                    ));
                }
                None => return Err(format!("unknown attack `{s}`; use one of {ATTACK_KINDS}")),
            },
        })
    }
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attack::SignFlip => f.write_str("sign-flip"),
            Attack::Scale(x) => write!(f, "scale:{x}"),
            Attack::Noise => f.write_str("noise"),
            Attack::Nan => f.write_str("nan"),
            Attack::Zero => f.write_str("zero"),
            Attack::Stale => f.write_str("stale"),
            Attack::Copy => f.write_str("copy"),
            Attack::Lazy => f.write_str("lazy"),
            Attack::WrongShard => f.write_str("wrong-shard"),
        }
    }
}

impl Attack {
    /// Steps actually trained for a task of `steps`.
    pub fn steps(self, steps: usize) -> usize {
        match self {
            Attack::Lazy => (steps / 4).max(1),
            _ => steps,
        }
    }

    /// The shard actually trained on.
    pub fn shard(self, shard: usize, shards: usize) -> usize {
        match self {
            Attack::WrongShard if shards > 1 => (shard + 1) % shards,
            _ => shard,
        }
    }

    /// Whether the attack trains at all (`zero`, `stale` and `copy` submit
    /// something that exists already).
    pub fn trains(self) -> bool {
        !matches!(self, Attack::Zero | Attack::Stale | Attack::Copy)
    }

    /// Forges the honest delta: `sign-flip`, `scale`, `noise`, `nan` and
    /// `zero` change it; the others leave it as trained. `seed` fixes the
    /// noise.
    pub fn forge(self, honest: &TensorSet, seed: u64) -> funetun_core::Result<TensorSet> {
        let mut flat = honest.to_flat();
        match self {
            Attack::SignFlip => flat.iter_mut().for_each(|v| *v = -*v),
            Attack::Scale(x) => flat.iter_mut().for_each(|v| *v *= x),
            Attack::Zero => flat.iter_mut().for_each(|v| *v = 0.0),
            Attack::Nan => flat.iter_mut().step_by(7).for_each(|v| *v = f32::NAN),
            Attack::Noise => {
                let norm = honest.l2_norm();
                let mut rng = SplitMix(seed);
                let noise: Vec<f64> = (0..flat.len()).map(|_| rng.gaussian()).collect();
                let noise_norm = noise.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                for (v, n) in flat.iter_mut().zip(noise) {
                    *v = (n * norm / noise_norm) as f32;
                }
            }
            Attack::Stale | Attack::Copy | Attack::Lazy | Attack::WrongShard => {}
        }
        honest.from_flat_like(&flat)
    }
}

/// The delta source of a dishonest trainer: forges every update with its
/// [`Attack`] (the first `stale` and a `copy` with nothing to copy yet are
/// honest work).
#[derive(Debug)]
pub struct Forger {
    attack: Attack,
    /// The last delta this run submitted (bytes, hash), for `stale`.
    last_delta: Mutex<Option<(Vec<u8>, B256)>>,
}

impl Forger {
    /// A source that forges with `attack`.
    pub fn new(attack: Attack) -> Self {
        Self {
            attack,
            last_delta: Mutex::new(None),
        }
    }

    /// The last delta submitted (the guard is dropped before any await).
    fn last_delta(&self) -> Option<(Vec<u8>, B256)> {
        self.last_delta.lock().expect("last delta lock").clone()
    }

    async fn forge(&self, work: Work<'_>) -> Result<Produced> {
        let attack = self.attack;
        let Work {
            bench,
            task,
            base,
            data,
            mut spec,
        } = work;
        let existing = match attack {
            Attack::Stale => self.last_delta(),
            Attack::Copy => match copy_source(bench, task).await? {
                Some(hash) => Some((bench.blobs.bytes(&bench.me.client, hash).await?, hash)),
                None => None,
            },
            _ => None,
        };
        if let Some((bytes, hash)) = existing {
            return Ok(Produced {
                bytes,
                hash,
                loss_before: 0.0,
                loss_after: 0.0,
                forged: true,
                steps_trained: 0,
                training_seconds: 0.0,
            });
        }
        if !attack.trains() && attack != Attack::Zero {
            // Nothing to re-submit or copy yet: this one is honest work.
            info!(%attack, "nothing to {attack} yet; training honestly");
            return train(bench, base, data, spec).await;
        }
        spec.steps = attack.steps(spec.steps);
        spec.shard = attack.shard(spec.shard, spec.shards);
        let layout = base.checkpoint.clone();
        let space = spec.space()?;
        let (honest, trained) = if attack.trains() {
            let trained = train(bench, base, data, spec.clone()).await?;
            let delta = space.decode(&trained.bytes).map_err(|source| {
                funetun_participant::Error::Blob {
                    hash: trained.hash.to_string(),
                    source,
                }
            })?;
            (delta, Some(trained))
        } else {
            (
                layout
                    .from_flat_like(&vec![0.0; layout.num_params()])
                    .map_err(forge_error)?,
                None,
            )
        };
        let forged = attack.forge(&honest, task.seed).map_err(forge_error)?;
        let bytes = funetun_core::encode(&forged);
        info!(%attack, "update forged");
        Ok(Produced {
            hash: funetun_core::keccak256(&bytes),
            bytes,
            loss_before: trained.as_ref().map_or(0.0, |t| t.loss_before),
            loss_after: trained.as_ref().map_or(0.0, |t| t.loss_after),
            forged: true,
            steps_trained: trained.as_ref().map_or(0, |t| t.steps_trained),
            training_seconds: trained.as_ref().map_or(0.0, |t| t.training_seconds),
        })
    }
}

impl DeltaSource for Forger {
    fn produce<'a>(&'a self, work: Work<'a>) -> Produce<'a> {
        Box::pin(self.forge(work))
    }

    fn submitted(&self, bytes: &[u8], hash: B256) {
        *self.last_delta.lock().expect("last delta lock") = Some((bytes.to_vec(), hash));
    }
}

fn forge_error(e: funetun_core::Error) -> Error {
    Error::Config(format!("cannot forge the delta: {e}"))
}

/// Another trainer's delta to copy: one of this round once someone
/// reported it (waiting up to 20 s), else the latest of an earlier round.
async fn copy_source(bench: &Workbench, task: &Task) -> Result<Option<B256>> {
    let me = bench.address();
    let started = Instant::now();
    loop {
        let updates = bench.me.client.updates(task.job_id).await?;
        let others = updates
            .iter()
            .filter(|u| u.trainer != me && u.status != UpdateStatus::Rejected);
        let mut earlier = None;
        for u in others {
            if u.round == task.round {
                return Ok(Some(u.update_hash));
            }
            if u.round < task.round {
                earlier = Some(u.update_hash);
            }
        }
        if started.elapsed() > Duration::from_secs(20) {
            return Ok(earlier);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small deterministic generator (SplitMix64) for the noise attack.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box–Muller).
    fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta() -> TensorSet {
        let mut t = TensorSet::new();
        t.insert(
            "w",
            funetun_core::Tensor::new(vec![4], vec![1.0, -2.0, 3.0, 0.5]).unwrap(),
        );
        t
    }

    #[test]
    fn kinds_parse_and_print_back() {
        for word in [
            "sign-flip",
            "scale:10",
            "scale:-0.5",
            "noise",
            "nan",
            "zero",
            "stale",
            "copy",
            "lazy",
            "wrong-shard",
        ] {
            assert_eq!(word.parse::<Attack>().unwrap().to_string(), word);
        }
        for bad in ["scale:1", "scale:x", "scale:inf", "flip", ""] {
            let e = bad.parse::<Attack>().unwrap_err();
            assert!(e.contains("scale:") || e.contains("unknown attack"), "{e}");
        }
    }

    #[test]
    fn forged_deltas_are_what_the_kind_says() {
        let d = delta();
        let flat = |a: Attack| a.forge(&d, 7).unwrap().to_flat();
        assert_eq!(flat(Attack::SignFlip), vec![-1.0, 2.0, -3.0, -0.5]);
        assert_eq!(flat(Attack::Scale(2.0)), vec![2.0, -4.0, 6.0, 1.0]);
        assert_eq!(flat(Attack::Zero), vec![0.0; 4]);
        assert!(flat(Attack::Nan)[0].is_nan());
        let noise = Attack::Noise.forge(&d, 7).unwrap();
        assert!((noise.l2_norm() - d.l2_norm()).abs() < 1e-5);
        assert_ne!(noise.to_flat(), d.to_flat());
        assert_eq!(noise, Attack::Noise.forge(&d, 7).unwrap());
        assert_eq!(flat(Attack::WrongShard), d.to_flat());
    }

    #[test]
    fn lazy_and_wrong_shard_change_the_work() {
        assert_eq!(Attack::Lazy.steps(400), 100);
        assert_eq!(Attack::Lazy.steps(2), 1);
        assert_eq!(Attack::SignFlip.steps(400), 400);
        assert_eq!(Attack::WrongShard.shard(3, 4), 0);
        assert_eq!(Attack::WrongShard.shard(0, 1), 0);
        assert!(!Attack::Copy.trains() && Attack::Noise.trains());
    }
}
