//! Checks on the inputs: equal lengths, finite values, weights, norm outliers.
//!
//! The kernels note NaN and infinities as they read (at no measurable cost),
//! so a clean input is never read just to be checked. When a kernel saw one,
//! the crate scans the inputs to name the first offending input and
//! coordinate for the error.
//!
//! Norm outliers: an input whose L2 norm exceeds `factor` times the median of
//! the inputs' norms (the mean of the two middle norms for even `n`) is
//! *flagged*: listed in the report, still aggregated. The caller decides what
//! a flag means (log it, withhold payment, re-run without it).

use crate::combine::{Scaled, distances};
use crate::error::{Error, Result};
use crate::exec::Exec;

/// Checks that there is at least one input and all have the same length;
/// returns that length.
pub(crate) fn check_lengths(inputs: &[&[f32]]) -> Result<usize> {
    let first = inputs.first().ok_or(Error::NoInputs)?;
    let d = first.len();
    for (i, x) in inputs.iter().enumerate() {
        if x.len() != d {
            return Err(Error::LengthMismatch {
                what: format!("input {i}"),
                found: x.len(),
                expected: d,
            });
        }
    }
    Ok(d)
}

/// The error for the first non-finite value of `inputs`, in input order.
/// Called when a kernel saw one; if none is found (which would be a bug),
/// the error names input 0.
pub(crate) fn non_finite(inputs: &[&[f32]]) -> Error {
    for (input, x) in inputs.iter().enumerate() {
        if let Some(coordinate) = x.iter().position(|v| !v.is_finite()) {
            return Error::NonFinite {
                input,
                coordinate,
                value: x[coordinate].to_string(),
            };
        }
    }
    Error::NonFinite {
        input: 0,
        coordinate: 0,
        value: "unknown".into(),
    }
}

/// L2 norms of the inputs, computed in `f64` with a fixed summation order.
/// Errors on unequal lengths and on NaN or infinite values.
pub fn norms(inputs: &[&[f32]], exec: &Exec) -> Result<Vec<f64>> {
    check_lengths(inputs)?;
    let ones = vec![1.0f32; inputs.len()];
    let pass = distances(
        Scaled {
            rows: inputs,
            scales: &ones,
        },
        None,
        exec,
    );
    if pass.bad {
        return Err(non_finite(inputs));
    }
    Ok(pass.dist2.into_iter().map(f64::sqrt).collect())
}

/// The median of `values` (the mean of the two middle values for an even
/// count); `0.0` for none.
pub fn median_f64(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Indices of the inputs whose norm exceeds `factor` times the median norm.
pub fn flag_outliers(norms: &[f64], factor: f64) -> Result<Vec<usize>> {
    check_factor(factor)?;
    let limit = factor * median_f64(norms);
    Ok((0..norms.len()).filter(|&i| norms[i] > limit).collect())
}

pub(crate) fn check_factor(factor: f64) -> Result<()> {
    if factor.is_finite() && factor >= 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidOption(format!(
            "the outlier factor must be a finite number >= 1, got {factor}"
        )))
    }
}

/// Checks weights for `n` inputs: finite, non-negative, positive sum.
/// Returns their sum (added in input order).
pub(crate) fn check_weights(weights: Option<&[f64]>, n: usize) -> Result<f64> {
    let w = weights.ok_or_else(|| {
        Error::Weights("weighted-mean needs one weight per input (samples trained)".into())
    })?;
    if w.len() != n {
        return Err(Error::Weights(format!(
            "{} weights for {n} inputs",
            w.len()
        )));
    }
    if let Some(i) = w.iter().position(|x| !x.is_finite() || *x < 0.0) {
        return Err(Error::Weights(format!(
            "weight {i} is {}; weights must be finite and >= 0",
            w[i]
        )));
    }
    let total: f64 = w.iter().sum();
    if total > 0.0 && total.is_finite() {
        Ok(total)
    } else {
        Err(Error::Weights(format!(
            "weights sum to {total}; need a positive finite sum"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(check_lengths(&[]), Err(Error::NoInputs));
        assert_eq!(check_lengths(&[&[1.0, 2.0], &[3.0, 4.0]]), Ok(2));
        assert_eq!(
            check_lengths(&[&[1.0, 2.0], &[3.0, 4.0], &[5.0]]),
            Err(Error::LengthMismatch {
                what: "input 2".into(),
                found: 1,
                expected: 2
            })
        );
    }

    #[test]
    fn names_the_first_non_finite_value() {
        let e = non_finite(&[&[1.0, 2.0], &[3.0, f32::NAN], &[f32::INFINITY, 0.0]]);
        assert_eq!(
            e,
            Error::NonFinite {
                input: 1,
                coordinate: 1,
                value: "NaN".into()
            }
        );
        assert_eq!(
            norms(&[&[1.0], &[f32::NEG_INFINITY]], &Exec::sequential()),
            Err(Error::NonFinite {
                input: 1,
                coordinate: 0,
                value: "-inf".into()
            })
        );
    }

    #[test]
    fn norms_and_outliers() {
        let n = norms(
            &[&[3.0, 4.0], &[0.0, 1.0], &[6.0, 8.0], &[30.0, 40.0]],
            &Exec::sequential(),
        )
        .unwrap();
        assert_eq!(n, vec![5.0, 1.0, 10.0, 50.0]);
        assert_eq!(median_f64(&n), 7.5);
        assert_eq!(median_f64(&[2.0, 1.0, 3.0]), 2.0);
        assert_eq!(median_f64(&[]), 0.0);
        assert_eq!(flag_outliers(&n, 2.0), Ok(vec![3]));
        assert_eq!(flag_outliers(&n, 1.0), Ok(vec![2, 3]));
        assert!(matches!(
            flag_outliers(&n, 0.5),
            Err(Error::InvalidOption(_))
        ));
        assert!(matches!(
            flag_outliers(&n, f64::NAN),
            Err(Error::InvalidOption(_))
        ));
    }

    #[test]
    fn weights() {
        assert_eq!(check_weights(Some(&[1.0, 3.0]), 2), Ok(4.0));
        assert!(matches!(check_weights(None, 2), Err(Error::Weights(_))));
        assert!(matches!(
            check_weights(Some(&[1.0]), 2),
            Err(Error::Weights(_))
        ));
        assert!(matches!(
            check_weights(Some(&[1.0, -1.0]), 2),
            Err(Error::Weights(_))
        ));
        assert!(matches!(
            check_weights(Some(&[1.0, f64::NAN]), 2),
            Err(Error::Weights(_))
        ));
        assert!(matches!(
            check_weights(Some(&[0.0, 0.0]), 2),
            Err(Error::Weights(_))
        ));
        assert!(matches!(
            check_weights(Some(&[f64::MAX, f64::MAX]), 2),
            Err(Error::Weights(_))
        ));
    }
}
