//! Reputation: effective compute per participant, in MatrixAI's unit
//! (docs/reputation.md).
//!
//! Two kinds of points, both in ut (1 ut = 1/200 of a day of a 1 GFLOPS
//! reference machine, [`UT_OPS`] operations): training T (the operations
//! of accepted updates' steps) and drilling D (drills the worker's result
//! agreed on, and steps a validator replayed). Every point decays
//! exponentially with a half-life (a week by default), so reputation
//! tracks recent work. A participant's effective compute is `0.4·D +
//! 0.6·T`, both decayed to the moment asked.
//!
//! A decayed sum needs no history: each kind is stored as (value, time of
//! value); adding `p` points at `now` stores `value·2^(−(now−t)/h) + p` at
//! `now`.

use funetun_core::JobSpec;
use funetun_ml::Architecture as _;

/// Operations in one ut: 1/200 of a day of a machine doing 10⁹ a second.
pub const UT_OPS: f64 = 1e9 * 86_400.0 / 200.0;

/// `ops` operations in ut.
pub fn ut(ops: f64) -> f64 {
    ops / UT_OPS
}

/// One training step of `spec` in ut: its batch's samples times the
/// model's operations per sample (0 for a spec without a model).
pub fn step_ut(spec: &JobSpec) -> f64 {
    spec.model().map_or(0.0, |model| {
        ut(f64::from(spec.batch) * model.training_ops_per_sample())
    })
}

/// Weight of drilling (validation) points in the total.
pub const DRILL_WEIGHT: f64 = 0.4;
/// Weight of training points in the total.
pub const TRAIN_WEIGHT: f64 = 0.6;

/// Exponentially decaying points with a half-life.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decay {
    /// Seconds after which a point counts half.
    pub half_life_secs: f64,
}

impl Decay {
    /// Decay with the given half-life (at least one second).
    pub fn new(half_life: std::time::Duration) -> Self {
        Decay {
            half_life_secs: half_life.as_secs_f64().max(1.0),
        }
    }

    /// `value` recorded at `at`, as worth at `now` (never grows: a time in
    /// the future counts as now).
    pub fn at(&self, value: f64, at: u64, now: u64) -> f64 {
        let elapsed = now.saturating_sub(at) as f64;
        value * (-elapsed / self.half_life_secs).exp2()
    }

    /// Adds `points` at `now` to `value` recorded at `at`; returns the new
    /// (value, time).
    pub fn add(&self, value: f64, at: u64, points: f64, now: u64) -> (f64, u64) {
        (self.at(value, at, now) + points, now.max(at))
    }

    /// The reputation `0.4·D + 0.6·T` at `now`.
    pub fn total(&self, train: (f64, u64), drill: (f64, u64), now: u64) -> f64 {
        DRILL_WEIGHT * self.at(drill.0, drill.1, now)
            + TRAIN_WEIGHT * self.at(train.0, train.1, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_training_step_counts_its_operations_in_ut() {
        // 1 ut is 4.32·10¹¹ operations.
        assert_eq!(UT_OPS, 4.32e11);
        let mut spec = JobSpec {
            batch: 64,
            ..JobSpec::default()
        };
        // The MLP: 784·256 + 256·10 multiply-adds, six operations each.
        let mlp = 64.0 * 6.0 * (784.0 * 256.0 + 2560.0);
        assert!((step_ut(&spec) - mlp / UT_OPS).abs() < 1e-15);
        // The CNN reuses its convolution weights at every position: far
        // more operations than parameters.
        spec.model = funetun_core::protocol::ModelKind::Cnn;
        assert!(step_ut(&spec) > 15.0 * mlp / UT_OPS);
    }

    #[test]
    fn points_halve_after_one_half_life() {
        let d = Decay::new(Duration::from_secs(100));
        assert_eq!(d.at(8.0, 1000, 1000), 8.0);
        assert!((d.at(8.0, 1000, 1100) - 4.0).abs() < 1e-12);
        assert!((d.at(8.0, 1000, 1200) - 2.0).abs() < 1e-12);
        assert_eq!(d.at(8.0, 1000, 900), 8.0);
    }

    #[test]
    fn adding_decays_the_old_value_first() {
        let d = Decay::new(Duration::from_secs(10));
        let (v, t) = d.add(0.0, 0, 100.0, 50);
        assert_eq!((v, t), (100.0, 50));
        let (v, t) = d.add(v, t, 10.0, 60);
        assert!((v - 60.0).abs() < 1e-9);
        assert_eq!(t, 60);
    }

    #[test]
    fn total_weighs_drilling_and_training() {
        let d = Decay::new(Duration::from_secs(10));
        let total = d.total((100.0, 5), (50.0, 5), 5);
        assert!((total - (0.6 * 100.0 + 0.4 * 50.0)).abs() < 1e-12);
    }
}
