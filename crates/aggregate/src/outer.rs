//! Outer optimizers: how the aggregated delta moves the model.
//!
//! The aggregate `Δ` of a round is treated as a step direction (the negative
//! of DiLoCo's outer gradient `g = θ_old - θ_avg = -Δ`):
//!
//! | string | update |
//! |---|---|
//! | `sgd[:LR]` | `θ ← θ + lr·Δ` (default `lr = 1`: the plain sum `θ + Δ`) |
//! | `nesterov:LR,MOMENTUM` | `m ← μ·m + Δ`, `θ ← θ + lr·(Δ + μ·m)` (DiLoCo's outer step) |
//! | `adam:LR,BETA1,BETA2,EPS` | FedAdam (Reddi et al., 2021) with bias correction |
//!
//! Each is `torch.optim.SGD(nesterov=True)` or `torch.optim.Adam` applied to
//! the gradient `-Δ`, written in terms of `Δ` (with the first moment `m`
//! stored as the negative of PyTorch's): Adam keeps `m ← β1·m + (1-β1)·Δ`,
//! `v ← β2·v + (1-β2)·Δ²`, and steps
//! `θ ← θ + lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)`.
//!
//! All arithmetic is element-wise in `f32` in the order written (no fused
//! multiply-add), with the scalar factors computed in `f64` and rounded once,
//! so the result is the same on every machine and at every thread count.
//! The state is a step count and flat `f32` buffers named by
//! [`Outer::slot_names`], which the caller stores beside the checkpoint (as
//! tensors of shape `[d]`) and hands back next round.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::rule::{Params, num, positive};

/// The accepted optimizer strings, for error messages.
pub const OUTERS: &str = "sgd[:LR], nesterov:LR,MOMENTUM, adam:LR,BETA1,BETA2,EPS";

/// An outer optimizer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outer {
    /// `θ ← θ + lr·Δ`.
    Sgd {
        /// Step size.
        lr: f64,
    },
    /// Nesterov momentum (DiLoCo).
    Nesterov {
        /// Step size.
        lr: f64,
        /// Momentum, in `[0, 1)`.
        momentum: f64,
    },
    /// Adam on the pseudo-gradient `-Δ` (FedAdam).
    Adam {
        /// Step size.
        lr: f64,
        /// First-moment decay, in `[0, 1)`.
        beta1: f64,
        /// Second-moment decay, in `[0, 1)`.
        beta2: f64,
        /// Added to the denominator, positive.
        eps: f64,
    },
}

/// The state an outer optimizer carries from round to round.
#[derive(Debug, Clone, PartialEq)]
pub struct OuterState {
    /// Steps taken so far.
    pub step: u64,
    /// Named flat buffers, in the order of [`Outer::slot_names`], each as
    /// long as the model.
    pub slots: Vec<(String, Vec<f32>)>,
}

fn fmt_f64(x: f64) -> String {
    let plain = x.to_string();
    let exp = format!("{x:e}");
    if exp.len() < plain.len() { exp } else { plain }
}

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outer::Sgd { lr } => write!(f, "sgd:{}", fmt_f64(*lr)),
            Outer::Nesterov { lr, momentum } => {
                write!(f, "nesterov:{},{}", fmt_f64(*lr), fmt_f64(*momentum))
            }
            Outer::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => write!(
                f,
                "adam:{},{},{},{}",
                fmt_f64(*lr),
                fmt_f64(*beta1),
                fmt_f64(*beta2),
                fmt_f64(*eps)
            ),
        }
    }
}

fn decay(s: &str, what: &str) -> std::result::Result<f64, String> {
    let x = num(s, what)?;
    if (0.0..1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{what} must be in [0, 1), got `{s}`"))
    }
}

fn parse_outer(s: &str) -> std::result::Result<Outer, String> {
    let p = Params::split(s);
    let v = &p.params;
    Ok(match p.name {
        "sgd" => {
            p.count(&[0, 1], "sgd[:LR]")?;
            Outer::Sgd {
                lr: match v.first() {
                    Some(lr) => positive(lr, "LR")?,
                    None => 1.0,
                },
            }
        }
        "nesterov" => {
            p.count(&[2], "nesterov:LR,MOMENTUM")?;
            Outer::Nesterov {
                lr: positive(v[0], "LR")?,
                momentum: decay(v[1], "MOMENTUM")?,
            }
        }
        "adam" => {
            p.count(&[4], "adam:LR,BETA1,BETA2,EPS")?;
            Outer::Adam {
                lr: positive(v[0], "LR")?,
                beta1: decay(v[1], "BETA1")?,
                beta2: decay(v[2], "BETA2")?,
                eps: positive(v[3], "EPS")?,
            }
        }
        "" => return Err("empty optimizer".into()),
        other => return Err(format!("unknown optimizer `{other}`")),
    })
}

impl FromStr for Outer {
    type Err = Error;

    fn from_str(s: &str) -> Result<Outer> {
        parse_outer(s).map_err(|reason| Error::ParseOuter {
            input: s.to_string(),
            reason,
            valid: OUTERS,
        })
    }
}

/// Elements per parallel task.
const CHUNK: usize = 64 * 1024;

impl Outer {
    /// Names of the state buffers, in order.
    pub fn slot_names(&self) -> &'static [&'static str] {
        match self {
            Outer::Sgd { .. } => &[],
            Outer::Nesterov { .. } => &["momentum"],
            Outer::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// The state before the first step, for a model of `d` parameters.
    pub fn init_state(&self, d: usize) -> OuterState {
        OuterState {
            step: 0,
            slots: self
                .slot_names()
                .iter()
                .map(|name| (name.to_string(), vec![0.0; d]))
                .collect(),
        }
    }

    /// Checks the parameters of an optimizer built in code (parsing checks
    /// them already).
    pub fn check_params(&self) -> Result<()> {
        let ok_lr = |lr: f64| lr.is_finite() && lr > 0.0;
        let ok_decay = |b: f64| (0.0..1.0).contains(&b);
        let ok = match *self {
            Outer::Sgd { lr } => ok_lr(lr),
            Outer::Nesterov { lr, momentum } => ok_lr(lr) && ok_decay(momentum),
            Outer::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => ok_lr(lr) && ok_decay(beta1) && ok_decay(beta2) && eps.is_finite() && eps > 0.0,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidOption(format!(
                "optimizer `{self}` has parameters out of range ({OUTERS})"
            )))
        }
    }

    /// Checks that `state` belongs to this optimizer and a model of `d`
    /// parameters.
    pub fn check_state(&self, state: &OuterState, d: usize) -> Result<()> {
        let names: Vec<&str> = state.slots.iter().map(|(n, _)| n.as_str()).collect();
        if names != self.slot_names() {
            return Err(Error::State(format!(
                "optimizer `{self}` keeps {:?}, the state holds {names:?}",
                self.slot_names()
            )));
        }
        for (name, buf) in &state.slots {
            if buf.len() != d {
                return Err(Error::LengthMismatch {
                    what: format!("state buffer `{name}`"),
                    found: buf.len(),
                    expected: d,
                });
            }
            if let Some(j) = buf.iter().position(|v| !v.is_finite()) {
                return Err(Error::State(format!(
                    "state buffer `{name}` holds {} at element {j}",
                    buf[j]
                )));
            }
        }
        Ok(())
    }

    /// Applies one step: moves `theta` along `delta` and updates `state`.
    /// Errors (leaving everything untouched) on mismatched lengths, a foreign
    /// state, or non-finite values in `theta` or `delta`; errors if the step
    /// would produce a non-finite parameter, in which case `theta` and
    /// `state` hold unspecified values.
    pub fn step(
        &self,
        theta: &mut [f32],
        delta: &[f32],
        state: &mut OuterState,
        exec: &Exec,
    ) -> Result<()> {
        self.check_params()?;
        let d = theta.len();
        if delta.len() != d {
            return Err(Error::LengthMismatch {
                what: "the delta".into(),
                found: delta.len(),
                expected: d,
            });
        }
        self.check_state(state, d)?;
        for (what, v) in [("the parameters", &*theta), ("the delta", delta)] {
            if let Some(j) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::InvalidOption(format!(
                    "{what} hold {} at element {j}",
                    v[j]
                )));
            }
        }
        state.step += 1;
        let t = state.step;
        let op = match *self {
            Outer::Sgd { lr } => Op::Sgd { lr: lr as f32 },
            Outer::Nesterov { lr, momentum } => Op::Nesterov {
                lr: lr as f32,
                mu: momentum as f32,
            },
            Outer::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                let bc1 = 1.0 - pow(beta1, t);
                let bc2 = 1.0 - pow(beta2, t);
                Op::Adam {
                    b1: beta1 as f32,
                    one_minus_b1: (1.0 - beta1) as f32,
                    b2: beta2 as f32,
                    one_minus_b2: (1.0 - beta2) as f32,
                    step_size: (lr / bc1) as f32,
                    bc2_sqrt: bc2.sqrt() as f32,
                    eps: eps as f32,
                }
            }
        };
        // Split every buffer into the same chunks and update them in parallel.
        let mut slots = state.slots.iter_mut().map(|(_, b)| b.chunks_mut(CHUNK));
        let mut first = slots.next();
        let mut second = slots.next();
        let mut items = Vec::new();
        for (k, (th, de)) in theta.chunks_mut(CHUNK).zip(delta.chunks(CHUNK)).enumerate() {
            let a = first.as_mut().and_then(|c| c.next());
            let b = second.as_mut().and_then(|c| c.next());
            items.push((k * CHUNK, th, de, a, b));
        }
        let bad = exec.map_each(items, |(start, th, de, a, b)| {
            op.apply(th, de, a, b).map(|j| start + j)
        });
        if let Some(j) = bad.into_iter().flatten().next() {
            return Err(Error::Diverged(format!(
                "optimizer `{self}` produced a non-finite parameter at element {j}"
            )));
        }
        Ok(())
    }
}

/// `b^t` by square-and-multiply: a fixed sequence of correctly rounded
/// multiplications, so the same bits on every platform (unlike `powi`, whose
/// rounding is up to the compiler and the math library).
fn pow(b: f64, mut t: u64) -> f64 {
    let (mut acc, mut sq) = (1.0f64, b);
    while t > 0 {
        if t & 1 == 1 {
            acc *= sq;
        }
        sq *= sq;
        t >>= 1;
    }
    acc
}

/// One step's element-wise operation with its scalars in `f32`.
#[derive(Clone, Copy)]
enum Op {
    Sgd {
        lr: f32,
    },
    Nesterov {
        lr: f32,
        mu: f32,
    },
    Adam {
        b1: f32,
        one_minus_b1: f32,
        b2: f32,
        one_minus_b2: f32,
        step_size: f32,
        bc2_sqrt: f32,
        eps: f32,
    },
}

impl Op {
    /// Updates one chunk; returns the first element that became non-finite.
    fn apply(
        self,
        theta: &mut [f32],
        delta: &[f32],
        a: Option<&mut [f32]>,
        b: Option<&mut [f32]>,
    ) -> Option<usize> {
        match (self, a, b) {
            (Op::Sgd { lr }, _, _) => {
                for (t, &g) in theta.iter_mut().zip(delta) {
                    *t += lr * g;
                }
            }
            (Op::Nesterov { lr, mu }, Some(m), _) => {
                for ((t, &g), m) in theta.iter_mut().zip(delta).zip(m.iter_mut()) {
                    *m = mu * *m + g;
                    *t += lr * (g + mu * *m);
                }
            }
            (
                Op::Adam {
                    b1,
                    one_minus_b1,
                    b2,
                    one_minus_b2,
                    step_size,
                    bc2_sqrt,
                    eps,
                },
                Some(m),
                Some(v),
            ) => {
                for (((t, &g), m), v) in theta
                    .iter_mut()
                    .zip(delta)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                {
                    *m = b1 * *m + one_minus_b1 * g;
                    *v = b2 * *v + one_minus_b2 * (g * g);
                    let denom = v.sqrt() / bc2_sqrt + eps;
                    *t += step_size * (*m / denom);
                }
            }
            // `check_state` guarantees the slots; nothing to do otherwise.
            _ => return Some(0),
        }
        theta.iter().position(|t| !t.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for s in [
            "sgd:1",
            "sgd:0.7",
            "nesterov:0.7,0.9",
            "adam:1e-3,0.9,0.999,1e-8",
            "adam:0.5,0,0.5,1",
        ] {
            let o: Outer = s.parse().unwrap();
            assert_eq!(o.to_string(), s);
        }
        assert_eq!("sgd".parse::<Outer>().unwrap(), Outer::Sgd { lr: 1.0 });
    }

    #[test]
    fn bad_strings_name_the_valid_optimizers() {
        for s in [
            "",
            "sgd:0",
            "sgd:-1",
            "sgd:1,2",
            "nesterov:1",
            "nesterov:1,1",
            "nesterov:1,-0.1",
            "adam:1,0.9,0.99",
            "adam:1,0.9,0.99,0",
            "adam:1,1,0.99,1e-8",
            "momentum:1",
            "sgd:nan",
        ] {
            match s.parse::<Outer>() {
                Err(Error::ParseOuter { input, valid, .. }) => {
                    assert_eq!(input, s);
                    assert_eq!(valid, OUTERS);
                }
                other => panic!("`{s}` gave {other:?}"),
            }
        }
    }

    #[test]
    fn pow_multiplies() {
        assert_eq!(pow(0.5, 0), 1.0);
        assert_eq!(pow(0.5, 3), 0.125);
        assert_eq!(pow(3.0, 5), 243.0);
        assert!((pow(0.999, 1000) - 0.999f64.powf(1000.0)).abs() < 1e-12);
    }

    #[test]
    fn sgd_with_lr_one_is_the_plain_sum() {
        let mut theta = vec![1.0f32, 2.0, 1e8, -0.0];
        let delta = vec![0.1f32, -3.0, 1.0, 0.0];
        let want: Vec<f32> = theta.iter().zip(&delta).map(|(a, b)| a + b).collect();
        let o = Outer::Sgd { lr: 1.0 };
        let mut st = o.init_state(4);
        o.step(&mut theta, &delta, &mut st, &Exec::sequential())
            .unwrap();
        assert_eq!(theta, want);
        assert_eq!(st.step, 1);
    }

    #[test]
    fn nesterov_and_adam_follow_their_formulas() {
        let d = 3 * CHUNK + 5;
        let delta: Vec<f32> = (0..d).map(|j| ((j % 13) as f32 - 6.0) * 0.01).collect();
        for o in [
            Outer::Nesterov {
                lr: 0.7,
                momentum: 0.9,
            },
            Outer::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-8,
            },
        ] {
            let mut theta = vec![0.5f32; d];
            let mut st = o.init_state(d);
            let mut theta2 = theta.clone();
            let mut st2 = o.init_state(d);
            for round in 1..=3u64 {
                o.step(&mut theta, &delta, &mut st, &Exec::sequential())
                    .unwrap();
                o.step(
                    &mut theta2,
                    &delta,
                    &mut st2,
                    &Exec::with_threads(3).unwrap(),
                )
                .unwrap();
                assert_eq!(theta, theta2);
                assert_eq!(st, st2);
                assert_eq!(st.step, round);
            }
            // scalar reference, three steps on one element
            let g = delta[1] as f64;
            let mut t = 0.5f64;
            match o {
                Outer::Nesterov { lr, momentum } => {
                    let mut m = 0.0;
                    for _ in 0..3 {
                        m = momentum * m + g;
                        t += lr * (g + momentum * m);
                    }
                }
                Outer::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                } => {
                    let (mut m, mut v) = (0.0, 0.0);
                    for k in 1..=3 {
                        m = beta1 * m + (1.0 - beta1) * g;
                        v = beta2 * v + (1.0 - beta2) * g * g;
                        let denom = v.sqrt() / (1.0 - beta2.powi(k)).sqrt() + eps;
                        t += lr / (1.0 - beta1.powi(k)) * m / denom;
                    }
                }
                Outer::Sgd { .. } => unreachable!(),
            }
            assert!(
                (theta[1] as f64 - t).abs() < 1e-5,
                "{o}: {} vs {t}",
                theta[1]
            );
        }
    }

    #[test]
    fn errors() {
        let o = Outer::Nesterov {
            lr: 1.0,
            momentum: 0.5,
        };
        let ex = Exec::sequential();
        let mut st = o.init_state(2);
        let mut theta = vec![0.0; 2];
        assert!(matches!(
            o.step(&mut theta, &[1.0], &mut st, &ex),
            Err(Error::LengthMismatch { .. })
        ));
        let mut foreign = Outer::Sgd { lr: 1.0 }.init_state(2);
        assert!(matches!(
            o.step(&mut theta, &[1.0, 1.0], &mut foreign, &ex),
            Err(Error::State(_))
        ));
        let mut short = o.init_state(1);
        assert!(matches!(
            o.step(&mut theta, &[1.0, 1.0], &mut short, &ex),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(
            o.step(&mut theta, &[1.0, f32::NAN], &mut st, &ex),
            Err(Error::InvalidOption(_))
        ));
        assert_eq!(st.step, 0);
        let big = Outer::Sgd { lr: 1e30 };
        let mut st = big.init_state(2);
        assert!(matches!(
            big.step(&mut theta, &[1e30, 0.0], &mut st, &ex),
            Err(Error::Diverged(_))
        ));
        assert!(matches!(
            Outer::Sgd { lr: 0.0 }.check_params(),
            Err(Error::InvalidOption(_))
        ));
    }
}
