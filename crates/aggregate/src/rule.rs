//! Aggregation rules: how they are named, checked and run.
//!
//! A rule is selected by a string (in a job spec, on the command line) that
//! parses into a [`Rule`] and prints back to the same rule:
//!
//! | string | rule |
//! |---|---|
//! | `mean` | coordinate-wise mean |
//! | `weighted-mean` | mean weighted by [`Options::weights`] (samples trained) |
//! | `median` | coordinate-wise median; mean of the two middle values for even `n` |
//! | `trimmed-mean:Q` | drop the `Q` largest and `Q` smallest per coordinate, average the rest (`2Q < n`) |
//! | `krum:F` | the input with the lowest Krum score, `F` Byzantine (`n >= 2F + 3`) |
//! | `multi-krum:F,M` | mean of the `M` inputs with the lowest Krum scores (`1 <= M <= n - F`) |
//! | `geometric-median[:MAX_ITER,TOL]` | Weiszfeld's algorithm (defaults 100 and 1e-6) |
//! | `centered-clip:TAU[,ITERS]` | centered clipping with radius `TAU` (default 3 iterations) |
//! | `norm-clip:C[/RULE]` | scale every input to L2 norm at most `C`, then apply `RULE` (default `mean`) |

use std::fmt;
use std::str::FromStr;

use crate::combine::{Coeffs, Scaled, combine};
use crate::error::{Error, Result};
use crate::exec::Exec;
use crate::guard;
use crate::iterative;
use crate::krum;
use crate::order::{Stat, order_stat};

/// The accepted rule strings, for error messages.
pub const RULES: &str = "mean, weighted-mean, median, trimmed-mean:Q, krum:F, multi-krum:F,M, \
    geometric-median[:MAX_ITER,TOL], centered-clip:TAU[,ITERS], norm-clip:C[/RULE]";

/// The most inputs any rule takes (the sorting networks index wires with
/// 16 bits).
pub const MAX_INPUTS: usize = 1 << 16;
/// The most inputs Krum and Multi-Krum take: they keep `n (n - 1) / 2`
/// distances per thread and do `O(n^2 d)` work.
pub const MAX_KRUM_INPUTS: usize = 4096;

/// Default iteration cap of the geometric median.
pub const GEOMED_MAX_ITER: usize = 100;
/// Default relative tolerance of the geometric median.
pub const GEOMED_TOL: f64 = 1e-6;
/// Default iterations of centered clipping.
pub const CCLIP_ITERS: usize = 3;

/// An aggregation rule over `n` vectors of length `d`.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Coordinate-wise mean: `sum_i x_i / n` in `f64`, in input order.
    Mean,
    /// `sum_i w_i x_i / sum_i w_i` in `f64`, in input order, with the weights
    /// of [`Options::weights`].
    WeightedMean,
    /// Coordinate-wise median.
    Median,
    /// Coordinate-wise trimmed mean.
    TrimmedMean {
        /// Values dropped at each end of every coordinate.
        q: usize,
    },
    /// Krum: the single input with the lowest score.
    Krum {
        /// Number of Byzantine inputs tolerated.
        f: usize,
    },
    /// Multi-Krum: the mean of the `m` inputs with the lowest scores.
    MultiKrum {
        /// Number of Byzantine inputs tolerated.
        f: usize,
        /// Number of inputs averaged.
        m: usize,
    },
    /// Geometric median by Weiszfeld's algorithm.
    GeometricMedian {
        /// Iteration cap (at least 1).
        max_iter: usize,
        /// Stop when an iteration lowers the objective by at most this
        /// fraction of it.
        tol: f64,
    },
    /// Centered clipping.
    CenteredClip {
        /// Clipping radius (positive).
        tau: f64,
        /// Iterations (at least 1).
        iters: usize,
    },
    /// Scale each input down to L2 norm at most `c`, then apply `inner`.
    NormClip {
        /// Largest norm kept (positive).
        c: f64,
        /// The rule applied to the clipped inputs (not itself a norm clip).
        inner: Box<Rule>,
    },
}

/// Options beside the rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// One weight per input (samples trained). Required by `weighted-mean`,
    /// ignored by the other rules.
    pub weights: Option<&'a [f64]>,
    /// Flag inputs whose L2 norm exceeds this multiple (>= 1) of the median
    /// norm (see [`Report::flagged`]).
    pub outlier_factor: Option<f64>,
    /// Starting point of centered clipping, e.g. the previous round's
    /// aggregate; the coordinate-wise median when `None`. Ignored by the
    /// other rules.
    pub center: Option<&'a [f32]>,
}

/// What happened besides the output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// L2 norms of the inputs, when they were computed (for `norm-clip` or
    /// the outlier flag).
    pub norms: Option<Vec<f64>>,
    /// Inputs whose norm exceeds [`Options::outlier_factor`] times the
    /// median norm, in ascending order. They are still aggregated.
    pub flagged: Vec<usize>,
    /// Inputs scaled down by `norm-clip`, in ascending order.
    pub clipped: Vec<usize>,
    /// Krum scores, one per input.
    pub scores: Option<Vec<f64>>,
    /// Inputs selected by Krum or Multi-Krum, in ascending order.
    pub selected: Option<Vec<usize>>,
    /// Iterations of the geometric median or centered clipping.
    pub iterations: Option<usize>,
}

/// The aggregate and its report.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The aggregated vector, of length `d`.
    pub output: Vec<f32>,
    /// What happened on the way.
    pub report: Report,
}

fn fmt_f64(x: f64) -> String {
    let plain = x.to_string();
    let exp = format!("{x:e}");
    if exp.len() < plain.len() { exp } else { plain }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Mean => write!(f, "mean"),
            Rule::WeightedMean => write!(f, "weighted-mean"),
            Rule::Median => write!(f, "median"),
            Rule::TrimmedMean { q } => write!(f, "trimmed-mean:{q}"),
            Rule::Krum { f: b } => write!(f, "krum:{b}"),
            Rule::MultiKrum { f: b, m } => write!(f, "multi-krum:{b},{m}"),
            Rule::GeometricMedian { max_iter, tol }
                if *max_iter == GEOMED_MAX_ITER && *tol == GEOMED_TOL =>
            {
                write!(f, "geometric-median")
            }
            Rule::GeometricMedian { max_iter, tol } => {
                write!(f, "geometric-median:{max_iter},{}", fmt_f64(*tol))
            }
            Rule::CenteredClip { tau, iters } if *iters == CCLIP_ITERS => {
                write!(f, "centered-clip:{}", fmt_f64(*tau))
            }
            Rule::CenteredClip { tau, iters } => {
                write!(f, "centered-clip:{},{iters}", fmt_f64(*tau))
            }
            Rule::NormClip { c, inner } => write!(f, "norm-clip:{}/{inner}", fmt_f64(*c)),
        }
    }
}

/// Parses the parameters of one rule or optimizer: `NAME[:P1,P2,…]`.
pub(crate) struct Params<'a> {
    pub name: &'a str,
    pub params: Vec<&'a str>,
}

impl<'a> Params<'a> {
    pub fn split(s: &'a str) -> Self {
        match s.split_once(':') {
            Some((name, p)) => Params {
                name: name.trim(),
                params: p.split(',').map(str::trim).collect(),
            },
            None => Params {
                name: s.trim(),
                params: Vec::new(),
            },
        }
    }

    /// Checks the parameter count against the accepted counts.
    pub fn count(&self, allowed: &[usize], form: &str) -> std::result::Result<(), String> {
        if allowed.contains(&self.params.len()) {
            Ok(())
        } else {
            Err(format!("`{}` takes the form `{form}`", self.name))
        }
    }
}

pub(crate) fn int(s: &str, what: &str) -> std::result::Result<usize, String> {
    s.parse()
        .map_err(|_| format!("{what} must be a non-negative integer, got `{s}`"))
}

pub(crate) fn num(s: &str, what: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("{what} must be a finite number, got `{s}`")),
    }
}

pub(crate) fn positive(s: &str, what: &str) -> std::result::Result<f64, String> {
    let x = num(s, what)?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(format!("{what} must be positive, got `{s}`"))
    }
}

fn parse_rule(s: &str) -> std::result::Result<Rule, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("norm-clip:") {
        let (c, inner) = match rest.split_once('/') {
            Some((c, inner)) => (c, parse_rule(inner)?),
            None => (rest, Rule::Mean),
        };
        if matches!(inner, Rule::NormClip { .. }) {
            return Err("norm-clip cannot wrap another norm-clip".into());
        }
        return Ok(Rule::NormClip {
            c: positive(c.trim(), "the clipping norm C")?,
            inner: Box::new(inner),
        });
    }
    let p = Params::split(s);
    let v = &p.params;
    Ok(match p.name {
        "mean" => {
            p.count(&[0], "mean")?;
            Rule::Mean
        }
        "weighted-mean" => {
            p.count(&[0], "weighted-mean")?;
            Rule::WeightedMean
        }
        "median" => {
            p.count(&[0], "median")?;
            Rule::Median
        }
        "trimmed-mean" => {
            p.count(&[1], "trimmed-mean:Q")?;
            Rule::TrimmedMean { q: int(v[0], "Q")? }
        }
        "krum" => {
            p.count(&[1], "krum:F")?;
            Rule::Krum { f: int(v[0], "F")? }
        }
        "multi-krum" => {
            p.count(&[2], "multi-krum:F,M")?;
            let m = int(v[1], "M")?;
            if m == 0 {
                return Err("M must be at least 1".into());
            }
            Rule::MultiKrum {
                f: int(v[0], "F")?,
                m,
            }
        }
        "geometric-median" => {
            p.count(&[0, 2], "geometric-median[:MAX_ITER,TOL]")?;
            if v.is_empty() {
                Rule::GeometricMedian {
                    max_iter: GEOMED_MAX_ITER,
                    tol: GEOMED_TOL,
                }
            } else {
                let max_iter = int(v[0], "MAX_ITER")?;
                if max_iter == 0 {
                    return Err("MAX_ITER must be at least 1".into());
                }
                let tol = num(v[1], "TOL")?;
                if tol < 0.0 {
                    return Err(format!("TOL must be >= 0, got `{}`", v[1]));
                }
                Rule::GeometricMedian { max_iter, tol }
            }
        }
        "centered-clip" => {
            p.count(&[1, 2], "centered-clip:TAU[,ITERS]")?;
            let iters = match v.get(1) {
                Some(s) => int(s, "ITERS")?,
                None => CCLIP_ITERS,
            };
            if iters == 0 {
                return Err("ITERS must be at least 1".into());
            }
            Rule::CenteredClip {
                tau: positive(v[0], "TAU")?,
                iters,
            }
        }
        "norm-clip" => return Err("`norm-clip` takes the form `norm-clip:C[/RULE]`".into()),
        "" => return Err("empty rule".into()),
        other => return Err(format!("unknown rule `{other}`")),
    })
}

impl FromStr for Rule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Rule> {
        parse_rule(s).map_err(|reason| Error::ParseRule {
            input: s.to_string(),
            reason,
            valid: RULES,
        })
    }
}

impl Rule {
    /// Whether the output depends only on the multiset of inputs (not on
    /// their order), bit for bit.
    pub fn is_order_free(&self) -> bool {
        match self {
            Rule::Median | Rule::TrimmedMean { .. } => true,
            Rule::NormClip { inner, .. } => inner.is_order_free(),
            _ => false,
        }
    }

    /// Whether the rule reads [`Options::weights`].
    pub fn needs_weights(&self) -> bool {
        match self {
            Rule::WeightedMean => true,
            Rule::NormClip { inner, .. } => inner.needs_weights(),
            _ => false,
        }
    }

    /// Checks that the rule can aggregate `n` inputs.
    pub fn check_n(&self, n: usize) -> Result<()> {
        let fail = |needed: String| {
            Err(Error::TooFewInputs {
                rule: self.to_string(),
                needed,
                n,
            })
        };
        if n == 0 {
            return Err(Error::NoInputs);
        }
        self.check_params()?;
        let max = match self {
            Rule::Krum { .. } | Rule::MultiKrum { .. } => MAX_KRUM_INPUTS,
            Rule::NormClip { inner, .. }
                if matches!(**inner, Rule::Krum { .. } | Rule::MultiKrum { .. }) =>
            {
                MAX_KRUM_INPUTS
            }
            _ => MAX_INPUTS,
        };
        if n > max {
            return Err(Error::TooManyInputs {
                rule: self.to_string(),
                max,
                n,
            });
        }
        match *self {
            Rule::TrimmedMean { q } if 2 * q >= n => fail(format!("n > 2Q = {}", 2 * q)),
            Rule::Krum { f } | Rule::MultiKrum { f, .. } if n < 2 * f + 3 => {
                fail(format!("n >= 2F + 3 = {}", 2 * f + 3))
            }
            Rule::MultiKrum { f, m } if m > n - f => fail(format!("n >= M + F = {}", m + f)),
            Rule::NormClip { ref inner, .. } => inner.check_n(n),
            _ => Ok(()),
        }
    }

    /// Checks the parameters of a rule built in code (parsing checks them
    /// already): positive finite `C` and `TAU`, `TOL >= 0`, at least one
    /// iteration, `M >= 1`, no norm-clip inside a norm-clip.
    pub fn check_params(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidOption(format!("rule `{self}`: {what}")));
        match self {
            Rule::MultiKrum { m: 0, .. } => bad("M must be at least 1"),
            Rule::GeometricMedian { max_iter, tol } => {
                if *max_iter == 0 {
                    bad("MAX_ITER must be at least 1")
                } else if !(tol.is_finite() && *tol >= 0.0) {
                    bad("TOL must be a finite number >= 0")
                } else {
                    Ok(())
                }
            }
            Rule::CenteredClip { tau, iters } => {
                if *iters == 0 {
                    bad("ITERS must be at least 1")
                } else if !(tau.is_finite() && *tau > 0.0) {
                    bad("TAU must be a positive finite number")
                } else {
                    Ok(())
                }
            }
            Rule::NormClip { c, inner } => {
                if !(c.is_finite() && *c > 0.0) {
                    bad("C must be a positive finite number")
                } else if matches!(**inner, Rule::NormClip { .. }) {
                    bad("norm-clip cannot wrap another norm-clip")
                } else {
                    inner.check_params()
                }
            }
            _ => Ok(()),
        }
    }

    /// Aggregates `inputs` (all of the same length `d`) into a new vector.
    pub fn aggregate(&self, inputs: &[&[f32]], opts: &Options, exec: &Exec) -> Result<Aggregate> {
        let d = guard::check_lengths(inputs)?;
        let mut output = vec![0.0f32; d];
        let report = self.aggregate_into(inputs, opts, exec, &mut output)?;
        Ok(Aggregate { output, report })
    }

    /// Aggregates `inputs` into `out` (of the inputs' length). On error `out`
    /// holds unspecified values.
    pub fn aggregate_into(
        &self,
        inputs: &[&[f32]],
        opts: &Options,
        exec: &Exec,
        out: &mut [f32],
    ) -> Result<Report> {
        let d = guard::check_lengths(inputs)?;
        let n = inputs.len();
        if out.len() != d {
            return Err(Error::LengthMismatch {
                what: "the output".into(),
                found: out.len(),
                expected: d,
            });
        }
        if let Some(c) = opts.center {
            if c.len() != d {
                return Err(Error::LengthMismatch {
                    what: "the center".into(),
                    found: c.len(),
                    expected: d,
                });
            }
            if let Some(j) = c.iter().position(|v| !v.is_finite()) {
                return Err(Error::InvalidOption(format!(
                    "the center holds a non-finite value at coordinate {j}"
                )));
            }
        }
        self.check_n(n)?;
        let weight_sum = if self.needs_weights() {
            Some(guard::check_weights(opts.weights, n)?)
        } else {
            None
        };
        if let Some(factor) = opts.outlier_factor {
            guard::check_factor(factor)?;
        }

        let mut report = Report::default();
        let (rule, clip) = match self {
            Rule::NormClip { c, inner } => (inner.as_ref(), Some(*c)),
            r => (r, None),
        };
        let mut scales = vec![1.0f32; n];
        if clip.is_some() || opts.outlier_factor.is_some() {
            let norms = guard::norms(inputs, exec)?;
            if let Some(factor) = opts.outlier_factor {
                report.flagged = guard::flag_outliers(&norms, factor)?;
            }
            if let Some(c) = clip {
                for (i, &norm) in norms.iter().enumerate() {
                    if norm > c {
                        scales[i] = (c / norm) as f32;
                        report.clipped.push(i);
                    }
                }
            }
            report.norms = Some(norms);
        }
        let x = Scaled {
            rows: inputs,
            scales: &scales,
        };
        let bad = match *rule {
            Rule::Mean | Rule::WeightedMean => {
                let ones;
                let (c, divisor) = match (rule, weight_sum) {
                    (Rule::WeightedMean, Some(total)) => (opts.weights.unwrap_or_default(), total),
                    _ => {
                        ones = vec![1.0f64; n];
                        (&ones[..], n as f64)
                    }
                };
                let k = Coeffs {
                    c,
                    divisor,
                    center: None,
                };
                combine(x, k, out, false, exec).bad
            }
            Rule::Median => order_stat(inputs, &scales, Stat::Median, out, exec),
            Rule::TrimmedMean { q } => order_stat(inputs, &scales, Stat::Trimmed(q), out, exec),
            Rule::Krum { f } | Rule::MultiKrum { f, .. } => {
                let m = match *rule {
                    Rule::MultiKrum { m, .. } => m,
                    _ => 1,
                };
                let (scores, bad) = krum::scores(x, f, exec);
                if bad {
                    return Err(guard::non_finite(inputs));
                }
                let chosen = krum::select(&scores, m);
                let bad = krum::mean_of(x, &chosen, out, exec);
                report.scores = Some(scores);
                report.selected = Some(chosen);
                bad
            }
            Rule::GeometricMedian { max_iter, tol } => {
                let o = iterative::geometric_median(x, max_iter, tol, out, exec);
                report.iterations = Some(o.iterations);
                o.bad
            }
            Rule::CenteredClip { tau, iters } => {
                let o = iterative::centered_clip(x, tau, iters, opts.center, out, exec);
                report.iterations = Some(o.iterations);
                o.bad
            }
            Rule::NormClip { .. } => {
                return Err(Error::InvalidOption(
                    "norm-clip cannot wrap another norm-clip".into(),
                ));
            }
        };
        if bad {
            return Err(guard::non_finite(inputs));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for s in [
            "mean",
            "weighted-mean",
            "median",
            "trimmed-mean:2",
            "krum:1",
            "multi-krum:2,5",
            "geometric-median",
            "geometric-median:20,1e-8",
            "geometric-median:20,0.5",
            "centered-clip:0.25",
            "centered-clip:10,5",
            "norm-clip:1.5/median",
            "norm-clip:100/trimmed-mean:1",
            "norm-clip:1e-20/geometric-median:3,0",
        ] {
            let r: Rule = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
            assert_eq!(r.to_string().parse::<Rule>().unwrap(), r);
        }
    }

    #[test]
    fn shorthands_parse_to_their_full_form() {
        assert_eq!(
            "norm-clip:2".parse::<Rule>().unwrap().to_string(),
            "norm-clip:2/mean"
        );
        assert_eq!(
            " geometric-median:100, 0.000001 ".parse::<Rule>().unwrap(),
            Rule::GeometricMedian {
                max_iter: 100,
                tol: 1e-6
            }
        );
        assert_eq!(
            "centered-clip:1,3".parse::<Rule>().unwrap().to_string(),
            "centered-clip:1"
        );
    }

    #[test]
    fn bad_strings_name_the_valid_rules() {
        for s in [
            "",
            "avg",
            "mean:1",
            "median:",
            "trimmed-mean",
            "trimmed-mean:-1",
            "trimmed-mean:1.5",
            "krum:x",
            "multi-krum:1",
            "multi-krum:1,0",
            "geometric-median:10",
            "geometric-median:0,1e-6",
            "geometric-median:10,-1",
            "geometric-median:10,nan",
            "centered-clip",
            "centered-clip:0",
            "centered-clip:inf",
            "centered-clip:1,0",
            "norm-clip",
            "norm-clip:",
            "norm-clip:-1/mean",
            "norm-clip:1/norm-clip:2/mean",
            "norm-clip:1/bogus",
        ] {
            match s.parse::<Rule>() {
                Err(Error::ParseRule { input, valid, .. }) => {
                    assert_eq!(input, s);
                    assert_eq!(valid, RULES);
                }
                other => panic!("`{s}` gave {other:?}"),
            }
        }
        let msg = "avg".parse::<Rule>().unwrap_err().to_string();
        assert!(
            msg.contains("unknown rule `avg`") && msg.contains("trimmed-mean:Q"),
            "{msg}"
        );
    }

    #[test]
    fn input_count_checks() {
        let too_few = |r: &str, n: usize| {
            matches!(
                r.parse::<Rule>().unwrap().check_n(n),
                Err(Error::TooFewInputs { .. })
            )
        };
        assert!(too_few("trimmed-mean:2", 4));
        assert!(!too_few("trimmed-mean:2", 5));
        assert!(too_few("krum:1", 4));
        assert!(!too_few("krum:1", 5));
        assert!(too_few("multi-krum:1,5", 5));
        assert!(!too_few("multi-krum:1,4", 5));
        assert!(too_few("norm-clip:1/krum:2", 6));
        assert_eq!(Rule::Mean.check_n(0), Err(Error::NoInputs));
        let too_many = |r: &str, n: usize| {
            matches!(
                r.parse::<Rule>().unwrap().check_n(n),
                Err(Error::TooManyInputs { .. })
            )
        };
        assert!(too_many("median", MAX_INPUTS + 1));
        assert!(!too_many("median", MAX_INPUTS));
        assert!(too_many("krum:1", MAX_KRUM_INPUTS + 1));
        assert!(too_many("norm-clip:1/multi-krum:1,2", MAX_KRUM_INPUTS + 1));
        assert!(!too_many("krum:1", MAX_KRUM_INPUTS));
    }

    #[test]
    fn rules_built_in_code_are_checked() {
        let nested = Rule::NormClip {
            c: 1.0,
            inner: Box::new(Rule::NormClip {
                c: 1.0,
                inner: Box::new(Rule::Mean),
            }),
        };
        for r in [
            Rule::MultiKrum { f: 0, m: 0 },
            Rule::GeometricMedian {
                max_iter: 0,
                tol: 0.0,
            },
            Rule::GeometricMedian {
                max_iter: 1,
                tol: f64::NAN,
            },
            Rule::CenteredClip { tau: 0.0, iters: 1 },
            Rule::CenteredClip { tau: 1.0, iters: 0 },
            Rule::NormClip {
                c: f64::INFINITY,
                inner: Box::new(Rule::Mean),
            },
            nested,
        ] {
            assert!(
                matches!(r.check_n(10), Err(Error::InvalidOption(_))),
                "{r:?}"
            );
        }
    }

    #[test]
    fn order_freedom_and_weights() {
        assert!(Rule::Median.is_order_free());
        assert!(
            "norm-clip:1/trimmed-mean:1"
                .parse::<Rule>()
                .unwrap()
                .is_order_free()
        );
        assert!(!Rule::Mean.is_order_free());
        assert!(
            "norm-clip:1/weighted-mean"
                .parse::<Rule>()
                .unwrap()
                .needs_weights()
        );
        assert!(!Rule::Median.needs_weights());
    }
}
