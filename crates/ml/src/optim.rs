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

    /// `sgd`, `momentum[:μ]`, `adamw[:weight_decay]` or `adam`.
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
            "adamw" => Ok(Self::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: num(arg, 0.0, "weight decay")?,
            }),
            _ => Err(Error::invalid(
                "optimizer",
                format!("`{s}`; choose sgd, momentum[:MU], adam or adamw[:WEIGHT_DECAY]"),
            )),
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sgd => f.write_str("sgd"),
            Self::Momentum { momentum } => write!(f, "momentum:{momentum}"),
            Self::AdamW { weight_decay, .. } if *weight_decay == 0.0 => f.write_str("adam"),
            Self::AdamW { weight_decay, .. } => write!(f, "adamw:{weight_decay}"),
        }
    }
}

/// An optimizer with its state for one parameter buffer.
pub struct Optimizer {
    kind: OptimizerKind,
    lr: f32,
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
            m,
            v,
            t: 0,
        }
    }

    /// Applies one update to `params` given `grads`, spread over the
    /// current rayon pool when `parallel` is set. Every element's update is
    /// independent of the others, so the result is the same either way.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], parallel: bool) {
        use rayon::prelude::*;
        self.t += 1;
        let (kind, lr, t) = (self.kind, self.lr, self.t);
        let (m, v) = (&mut self.m, &mut self.v);
        let run = |(((p, g), m), v): Chunk<'_>| update(kind, lr, t, p, g, m, v);
        if parallel {
            params
                .par_chunks_mut(CHUNK)
                .zip(grads.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(run);
        } else {
            params
                .chunks_mut(CHUNK)
                .zip(grads.chunks(CHUNK))
                .zip(m.chunks_mut(CHUNK))
                .zip(v.chunks_mut(CHUNK))
                .for_each(run);
        }
    }
}

/// The update rule on one slice of parameters, gradients and state.
fn update(
    kind: OptimizerKind,
    lr: f32,
    t: i32,
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
            let decay = 1.0 - lr * weight_decay;
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
        for s in ["sgd", "momentum:0.9", "adam", "adamw:0.01"] {
            assert_eq!(s.parse::<OptimizerKind>().unwrap().to_string(), s);
        }
        assert_eq!(
            "momentum".parse::<OptimizerKind>().unwrap(),
            OptimizerKind::Momentum { momentum: 0.9 }
        );
        for bad in ["rmsprop", "momentum:1.5", "adamw:-1", "sgd:3", "momentum:x"] {
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
}
