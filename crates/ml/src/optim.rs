//! Inner optimizers on flat parameter buffers, matching PyTorch's update
//! rules (`torch.optim.SGD` with momentum and dampening 0, `AdamW`).
//!
//! A task starts with fresh optimizer state: trainers are stateless between
//! tasks, so a replay needs nothing but the task itself.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Which update rule to use, with its hyper-parameters (not the learning rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// `θ ← θ − lr·g`.
    Sgd,
    /// `v ← μ·v + g; θ ← θ − lr·v`.
    Momentum {
        /// μ, default 0.9.
        momentum: f32,
    },
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    AdamW {
        /// β₁, default 0.9.
        beta1: f32,
        /// β₂, default 0.999.
        beta2: f32,
        /// ε, default 1e-8.
        eps: f32,
        /// Decoupled weight decay, default 0.
        weight_decay: f32,
    },
}

impl OptimizerKind {
    /// AdamW with its usual defaults and no weight decay (i.e. Adam).
    pub const ADAM: Self = Self::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
}

impl FromStr for OptimizerKind {
    type Err = Error;

    /// `sgd`, `momentum[:μ]`, `adamw[:weight_decay[,β₂]]` or `adam`.
    fn from_str(s: &str) -> Result<Self> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let num = |a: Option<&str>, default: f32, what: &str| -> Result<f32> {
            match a {
                None => Ok(default),
                Some(a) => a
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        Error::invalid(
                            "optimizer",
                            format!("`{s}`: {what} must be a non-negative number"),
                        )
                    }),
            }
        };
        match name {
            "sgd" if arg.is_none() => Ok(Self::Sgd),
            "momentum" | "sgd-momentum" => {
                let momentum = num(arg, 0.9, "momentum")?;
                if momentum >= 1.0 {
                    return Err(Error::invalid(
                        "optimizer",
                        format!("`{s}`: momentum must be below 1"),
                    ));
                }
                Ok(Self::Momentum { momentum })
            }
            "adam" if arg.is_none() => Ok(Self::ADAM),
            "adamw" => {
                let (wd, beta2) = match arg.and_then(|a| a.split_once(',')) {
                    Some((wd, b2)) => (Some(wd), Some(b2)),
                    None => (arg, None),
                };
                let beta2 = num(beta2, 0.999, "β₂")?;
                if beta2 >= 1.0 {
                    return Err(Error::invalid(
                        "optimizer",
                        format!("`{s}`: β₂ must be below 1"),
                    ));
                }
                Ok(Self::AdamW {
                    beta1: 0.9,
                    beta2,
                    eps: 1e-8,
                    weight_decay: num(wd, 0.0, "weight decay")?,
                })
            }
            _ => Err(Error::invalid(
                "optimizer",
                format!("`{s}`; choose sgd, momentum[:MU], adam or adamw[:WEIGHT_DECAY[,BETA2]]"),
            )),
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sgd => f.write_str("sgd"),
            Self::Momentum { momentum } => write!(f, "momentum:{momentum}"),
            Self::AdamW {
                weight_decay,
                beta2,
                ..
            } if *beta2 != 0.999 => write!(f, "adamw:{weight_decay},{beta2}"),
            Self::AdamW { weight_decay, .. } if *weight_decay == 0.0 => f.write_str("adam"),
            Self::AdamW { weight_decay, .. } => write!(f, "adamw:{weight_decay}"),
        }
    }
}

/// The learning rate over a job's global step: constant, or nanoGPT's
/// linear warm-up then cosine decay to a floor. A task's steps sit at
/// global steps `step0 + i`, so the schedule is part of the deterministic
/// task and every trainer of a round sees the same rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The task's learning rate at every step.
    Constant,
    /// Linear warm-up over `warmup` steps, then cosine decay from the peak
    /// to `min_lr` at step `total`, then `min_lr`.
    Cosine {
        /// Warm-up steps.
        warmup: u64,
        /// Step at which the decay reaches `min_lr`.
        total: u64,
        /// The floor.
        min_lr: f32,
    },
}

impl Schedule {
    /// The learning rate at global step `step` (0-based) for peak `lr`,
    /// computed in f64 so every platform rounds it alike.
    pub fn lr_at(&self, lr: f32, step: u64) -> f32 {
        match *self {
            Self::Constant => lr,
            Self::Cosine {
                warmup,
                total,
                min_lr,
            } => {
                let (lr, min_lr) = (f64::from(lr), f64::from(min_lr));
                if step < warmup {
                    return (lr * (step + 1) as f64 / (warmup + 1) as f64) as f32;
                }
                if step >= total {
                    return min_lr as f32;
                }
                let ratio = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
                (min_lr + coeff * (lr - min_lr)) as f32
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;

    /// `constant` or `cosine:WARMUP,TOTAL,MIN_LR`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "lr_schedule",
                format!(
                    "`{s}`; choose constant or cosine:WARMUP,TOTAL,MIN_LR (e.g. cosine:100,2000,1e-4)"
                ),
            )
        };
        if s == "constant" {
            return Ok(Self::Constant);
        }
        let args = s.strip_prefix("cosine:").ok_or_else(bad)?;
        let parts: Vec<&str> = args.split(',').collect();
        let [warmup, total, min_lr] = parts[..] else {
            return Err(bad());
        };
        let warmup: u64 = warmup.trim().parse().map_err(|_| bad())?;
        let total: u64 = total.trim().parse().map_err(|_| bad())?;
        let min_lr: f32 = min_lr.trim().parse().map_err(|_| bad())?;
        if !(min_lr.is_finite() && min_lr >= 0.0) || total < warmup {
            return Err(Error::invalid(
                "lr_schedule",
                format!("`{s}`: need MIN_LR ≥ 0 and TOTAL ≥ WARMUP"),
            ));
        }
        Ok(Self::Cosine {
            warmup,
            total,
            min_lr,
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Constant => f.write_str("constant"),
            Self::Cosine {
                warmup,
                total,
                min_lr,
            } => write!(f, "cosine:{warmup},{total},{min_lr}"),
        }
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm` (0: no
/// clipping); returns the norm before clipping. The sum of squares runs
/// over fixed chunks in a fixed order, so the result is the same at any
/// thread count.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f32, parallel: bool) -> f32 {
    use rayon::prelude::*;
    let sq = |c: &[f32]| c.iter().map(|&g| f64::from(g) * f64::from(g)).sum::<f64>();
    let total: f64 = if parallel {
        let parts: Vec<f64> = grads.par_chunks(CHUNK).map(sq).collect();
        parts.iter().sum()
    } else {
        grads.chunks(CHUNK).map(sq).sum()
    };
    let norm = total.sqrt() as f32;
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        if parallel {
            grads.par_iter_mut().for_each(|g| *g *= scale);
        } else {
            grads.iter_mut().for_each(|g| *g *= scale);
        }
    }
    norm
}

/// An optimizer with its state for one parameter buffer.
pub struct Optimizer {
    kind: OptimizerKind,
    lr: f32,
    /// Flat ranges exempt from weight decay (norm gains and biases of a
    /// transformer), sorted.
    no_decay: Vec<std::ops::Range<usize>>,
    /// First moment (momentum buffer or Adam's m); zero for plain SGD.
    m: Vec<f32>,
    /// Second moment (Adam's v); zero for the other rules.
    v: Vec<f32>,
    t: i32,
}

/// One chunk of an update: ((parameters, gradients), first moment), second moment.
type Chunk<'a> = (((&'a mut [f32], &'a [f32]), &'a mut [f32]), &'a mut [f32]);

/// Elements per parallel chunk of an update.
const CHUNK: usize = 1 << 14;

impl Optimizer {
    /// A fresh optimizer for `len` parameters.
    pub fn new(kind: OptimizerKind, lr: f32, len: usize) -> Self {
        // State a rule does not use stays zero; keeping it allocated lets
        // every rule walk the same chunks with no per-step allocation.
        let (m, v) = (vec![0.0; len], vec![0.0; len]);
        Self {
            kind,
            lr,
            no_decay: Vec::new(),
            m,
            v,
            t: 0,
        }
    }

    /// Exempts these flat ranges (sorted, disjoint) from weight decay.
    pub fn without_decay(mut self, ranges: Vec<std::ops::Range<usize>>) -> Self {
        self.no_decay = ranges;
        self
    }

    /// Sets the learning rate of the next steps (a schedule's value).
    pub fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// Applies one update to `params` given `grads`, spread over the
    /// current rayon pool when `parallel` is set. Every element's update is
    /// independent of the others, so the result is the same either way.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], parallel: bool) {
        use rayon::prelude::*;
        self.t += 1;
        let (kind, lr, t) = (self.kind, self.lr, self.t);
        let (m, v, no_decay) = (&mut self.m, &mut self.v, &self.no_decay);
        let run = |(i, (((p, g), m), v)): (usize, Chunk<'_>)| {
            // Split the chunk where decay switches on or off.
            let start = i * CHUNK;
            let mut at = 0;
            while at < p.len() {
                let here = start + at;
                let (decays, until) = match no_decay.iter().find(|r| r.end > here) {
                    Some(r) if r.start <= here => (false, r.end),
                    Some(r) => (true, r.start),
                    None => (true, usize::MAX),
                };
                let end = (until - start).min(p.len());
                update(
                    kind,
                    lr,
                    t,
                    decays,
                    &mut p[at..end],
                    &g[at..end],
                    &mut m[at..end],
                    &mut v[at..end],
                );
                at = end;
            }
        };
        if parallel {
            params
                .par_chunks_mut(CHUNK)
                .zip(grads.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .enumerate()
                .for_each(run);
        } else {
            params
                .chunks_mut(CHUNK)
                .zip(grads.chunks(CHUNK))
                .zip(m.chunks_mut(CHUNK))
                .zip(v.chunks_mut(CHUNK))
                .enumerate()
                .for_each(run);
        }
    }
}

/// The update rule on one slice of parameters, gradients and state.
#[allow(clippy::too_many_arguments)]
fn update(
    kind: OptimizerKind,
    lr: f32,
    t: i32,
    decays: bool,
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    match kind {
        OptimizerKind::Sgd => {
            for (p, g) in params.iter_mut().zip(grads) {
                *p -= lr * g;
            }
        }
        OptimizerKind::Momentum { momentum } => {
            for ((p, g), b) in params.iter_mut().zip(grads).zip(m.iter_mut()) {
                // PyTorch seeds the buffer with the first gradient.
                *b = if t == 1 { *g } else { momentum * *b + g };
                *p -= lr * *b;
            }
        }
        OptimizerKind::AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            let bc1 = 1.0 - beta1.powi(t);
            let bc2 = 1.0 - beta2.powi(t);
            let step = lr / bc1;
            let bc2_sqrt = bc2.sqrt();
            let decay = if decays { 1.0 - lr * weight_decay } else { 1.0 };
            for (((p, g), m), v) in params
                .iter_mut()
                .zip(grads)
                .zip(m.iter_mut())
                .zip(v.iter_mut())
            {
                *p *= decay;
                *m = beta1 * *m + (1.0 - beta1) * g;
                *v = beta2 * *v + (1.0 - beta2) * g * g;
                *p -= step * *m / (v.sqrt() / bc2_sqrt + eps);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for s in [
            "sgd",
            "momentum:0.9",
            "adam",
            "adamw:0.01",
            "adamw:0.1,0.99",
        ] {
            assert_eq!(s.parse::<OptimizerKind>().unwrap().to_string(), s);
        }
        assert_eq!(
            "momentum".parse::<OptimizerKind>().unwrap(),
            OptimizerKind::Momentum { momentum: 0.9 }
        );
        for bad in [
            "rmsprop",
            "momentum:1.5",
            "adamw:-1",
            "sgd:3",
            "momentum:x",
            "adamw:0.1,1.5",
        ] {
            assert!(bad.parse::<OptimizerKind>().is_err(), "{bad}");
        }
    }

    #[test]
    fn updates_match_hand_computed_values() {
        let mut p = [1.0f32];
        let mut sgd = Optimizer::new(OptimizerKind::Sgd, 0.1, 1);
        sgd.step(&mut p, &[2.0], false);
        assert!((p[0] - 0.8).abs() < 1e-7);

        let mut p = [0.0f32];
        let mut mom = Optimizer::new(OptimizerKind::Momentum { momentum: 0.5 }, 1.0, 1);
        mom.step(&mut p, &[1.0], false); // v = 1
        mom.step(&mut p, &[1.0], true); // v = 1.5
        assert!((p[0] + 2.5).abs() < 1e-7);

        // Adam's first step moves each weight by lr·sign(g) (up to ε).
        let mut p = [0.5f32, -0.5];
        let mut adam = Optimizer::new(OptimizerKind::ADAM, 0.01, 2);
        adam.step(&mut p, &[3.0, -0.001], false);
        assert!(
            (p[0] - 0.49).abs() < 1e-6 && (p[1] + 0.49).abs() < 1e-5,
            "{p:?}"
        );
    }

    #[test]
    fn schedules_warm_up_then_decay_like_nanogpt() {
        let s: Schedule = "cosine:100,2000,1e-4".parse().unwrap();
        assert_eq!(s.to_string(), "cosine:100,2000,0.0001");
        assert!((s.lr_at(1e-3, 0) - 1e-3 / 101.0).abs() < 1e-9);
        assert!((s.lr_at(1e-3, 100) - 1e-3).abs() < 1e-9);
        assert!((s.lr_at(1e-3, 1050) - 5.5e-4).abs() < 1e-7);
        assert_eq!(s.lr_at(1e-3, 5000), 1e-4);
        assert_eq!(Schedule::Constant.lr_at(0.5, 9), 0.5);
        for bad in ["cosine", "cosine:1,2", "cosine:10,5,0", "linear:1,2,3"] {
            let e = bad.parse::<Schedule>().unwrap_err().to_string();
            assert!(e.contains("lr_schedule"), "{e}");
        }
    }

    #[test]
    fn clipping_bounds_the_norm_and_decay_skips_exempt_ranges() {
        let mut g = vec![3.0f32, 4.0];
        assert_eq!(clip_grad_norm(&mut g, 1.0, false), 5.0);
        assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5);
        let mut g = vec![0.3f32, 0.4];
        clip_grad_norm(&mut g, 1.0, true);
        assert_eq!(g, vec![0.3, 0.4]);

        let kind: OptimizerKind = "adamw:0.5".parse().unwrap();
        let exempt: Vec<std::ops::Range<usize>> = std::iter::once(1..2).collect();
        let mut opt = Optimizer::new(kind, 0.1, 3).without_decay(exempt);
        let mut p = [1.0f32, 1.0, 1.0];
        opt.step(&mut p, &[0.0, 0.0, 0.0], false);
        assert_eq!(p, [0.95, 1.0, 0.95]);
    }
}
