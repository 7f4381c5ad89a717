//! Iterative rules: the geometric median and centered clipping.
//!
//! Both start from a robust point (the coordinate-wise median, or a center the
//! caller passes for centered clipping) and repeat one fused pass: combine the
//! inputs with per-input coefficients into the next point and, while the
//! block is in cache, measure every input's distance to it. Each iteration
//! therefore reads the inputs once.
//!
//! **Geometric median**, the point `z` minimising `sum_i |x_i - z|`, by
//! Weiszfeld's algorithm `z <- T(z) = sum_i x_i / |x_i - z| / sum_i 1 / |x_i - z|`
//! with the modification of Vardi and Zhang ("The multivariate L1-median and
//! associated data depth", PNAS 2000) for iterates that land on inputs,
//! which plain Weiszfeld cannot leave (the coordinate-wise median often is an
//! input): inputs within `nu` of `z` (`nu = 1e-10` times the mean distance to
//! the start) are left out of `T`; with `m` of them and
//! `r = |sum_{others} (x_i - z) / |x_i - z||`, the step is
//! `z <- (1 - m/r) T(z) + (m/r) z` if `r > m`, and `z` is optimal otherwise.
//! It stops after `max_iter` steps, when `z` is optimal, or when a step
//! lowers the objective by no more than `tol` times its value; if a step
//! raised the objective (rounding), the previous point is kept. `tol` bounds
//! the objective, which is flat at the minimum: the point itself is
//! typically within about `sqrt(tol)` (relative) of the optimum.
//!
//! **Centered clipping** (Karimireddy, He, Jaggi, "Learning from History for
//! Byzantine Robust Optimization", ICML 2021):
//! `v <- v + (1/n) sum_i (x_i - v) min(1, tau / |x_i - v|)`, `iters` times.

use crate::combine::{Coeffs, Scaled, combine, distances};
use crate::exec::Exec;
use crate::order::{Stat, order_stat};

/// What an iterative rule did.
pub(crate) struct Outcome {
    /// Steps taken.
    pub iterations: usize,
    /// Whether an input value was not finite.
    pub bad: bool,
}

impl Outcome {
    /// Stopped before the first step: a non-finite input value was found.
    const NON_FINITE: Outcome = Outcome {
        iterations: 0,
        bad: true,
    };
}

/// Smoothing of the Weiszfeld weights, relative to the mean distance.
const NU: f64 = 1e-10;

/// Writes the geometric median of the scaled inputs into `out`.
pub(crate) fn geometric_median(
    x: Scaled,
    max_iter: usize,
    tol: f64,
    out: &mut [f32],
    exec: &Exec,
) -> Outcome {
    let n = x.n();
    if order_stat(x.rows, x.scales, Stat::Median, out, exec) {
        return Outcome::NON_FINITE;
    }
    let pass = distances(x, Some(out), exec);
    if pass.bad {
        return Outcome::NON_FINITE;
    }
    let mut dist: Vec<f64> = pass.dist2.iter().map(|v| v.sqrt()).collect();
    let mut obj: f64 = dist.iter().sum();
    if obj == 0.0 {
        return Outcome {
            iterations: 0,
            bad: false,
        };
    }
    let nu = NU * obj / n as f64;
    let mut next = vec![0.0f32; out.len()];
    let mut blend = vec![0.0f32; out.len()];
    let mut iterations = 0;
    while iterations < max_iter {
        // Inputs within `nu` of the current point count as on it.
        let beta: Vec<f64> = dist
            .iter()
            .map(|&d| if d <= nu { 0.0 } else { 1.0 / d })
            .collect();
        let on = dist.iter().filter(|&&d| d <= nu).count() as f64;
        let w: f64 = beta.iter().sum();
        if w == 0.0 {
            break; // every input is on the current point
        }
        let k = Coeffs {
            c: &beta,
            divisor: w,
            center: None,
        };
        let pass = combine(x, k, &mut next, true, exec);
        if pass.bad {
            return Outcome {
                iterations,
                bad: true,
            };
        }
        iterations += 1;
        let (cand, cand_dist2): (&[f32], Vec<f64>) = if on > 0.0 {
            // Vardi-Zhang: the pull of the other inputs, r = w |T - z|,
            // against the `on` inputs sitting at z.
            let step = distances(
                Scaled {
                    rows: &[&next],
                    scales: &[1.0],
                },
                Some(out),
                exec,
            );
            let r = w * step.dist2[0].sqrt();
            if r <= on {
                break; // the current point is the geometric median
            }
            let lambda = on / r;
            let k = Coeffs {
                c: &[1.0 - lambda, lambda],
                divisor: 1.0,
                center: None,
            };
            combine(
                Scaled {
                    rows: &[&next, out],
                    scales: &[1.0, 1.0],
                },
                k,
                &mut blend,
                false,
                exec,
            );
            (&blend, distances(x, Some(&blend), exec).dist2)
        } else {
            (&next, pass.dist2)
        };
        let new_dist: Vec<f64> = cand_dist2.iter().map(|v| v.sqrt()).collect();
        let new_obj: f64 = new_dist.iter().sum();
        if new_obj > obj {
            break;
        }
        out.copy_from_slice(cand);
        if obj - new_obj <= tol * obj {
            break;
        }
        obj = new_obj;
        dist = new_dist;
    }
    Outcome {
        iterations,
        bad: false,
    }
}

/// Writes the centered-clipping aggregate of the scaled inputs into `out`,
/// starting from `start` (the coordinate-wise median when `None`).
pub(crate) fn centered_clip(
    x: Scaled,
    tau: f64,
    iters: usize,
    start: Option<&[f32]>,
    out: &mut [f32],
    exec: &Exec,
) -> Outcome {
    let n = x.n();
    match start {
        Some(v) => out.copy_from_slice(v),
        None => {
            if order_stat(x.rows, x.scales, Stat::Median, out, exec) {
                return Outcome::NON_FINITE;
            }
        }
    }
    let pass = distances(x, Some(out), exec);
    if pass.bad {
        return Outcome::NON_FINITE;
    }
    let mut dist2 = pass.dist2;
    let mut next = vec![0.0f32; out.len()];
    for it in 0..iters {
        let alpha: Vec<f64> = dist2
            .iter()
            .map(|&d2| {
                let d = d2.sqrt();
                if d > tau { tau / d } else { 1.0 }
            })
            .collect();
        let k = Coeffs {
            c: &alpha,
            divisor: n as f64,
            center: Some(out),
        };
        let pass = combine(x, k, &mut next, it + 1 < iters, exec);
        if pass.bad {
            return Outcome {
                iterations: it,
                bad: true,
            };
        }
        out.copy_from_slice(&next);
        dist2 = pass.dist2;
    }
    Outcome {
        iterations: iters,
        bad: false,
    }
}
