//! Reputation: effective compute points per participant (docs/reputation.md).
//!
//! Two kinds of points: training points T (local steps of accepted updates)
//! and drilling points D (steps a validator replayed). Every point decays
//! exponentially with a half-life (a week by default), so reputation tracks
//! recent work. A participant's reputation is `0.4·D + 0.6·T`, both decayed
//! to the moment asked.
//!
//! A decayed sum needs no history: each kind is stored as (value, time of
//! value); adding `p` points at `now` stores `value·2^(−(now−t)/h) + p` at
//! `now`.

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
