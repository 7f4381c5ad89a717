//! Robust aggregation (WIP).

pub mod error;
pub mod exec;
pub mod membw;
mod network;
mod order;
mod simd;

pub use error::{Error, Result};
pub use exec::Exec;
pub use simd::SimdLevel;

#[cfg(test)]
mod perf {
    use crate::exec::Exec;
    use crate::order::{Stat, order_stat};
    use std::time::Instant;

    #[test]
    #[ignore]
    fn perf_order() {
        let n = 16;
        let d = 10_000_000;
        let exec = Exec::with_threads(2).unwrap();
        let rows: Vec<Vec<f32>> = (0..n).map(|i| {
            let mut s = i as u64 + 1;
            (0..d).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 40) as f32 * 1e-7 - 0.8 }).collect()
        }).collect();
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let scales = vec![1.0; n];
        let mut out = vec![0.0; d];
        for level in [crate::SimdLevel::Avx512, crate::SimdLevel::Avx2, crate::SimdLevel::Portable] {
            let e = exec.clone().with_simd(level);
            for stat in [Stat::Median, Stat::Trimmed(2)] {
                let mut best = f64::MAX;
                for _ in 0..5 {
                    let t = Instant::now();
                    order_stat(&refs, &scales, stat, &mut out, &e);
                    best = best.min(t.elapsed().as_secs_f64());
                }
                let mut base = f64::MAX;
                let mut s = 0.0;
                for _ in 0..5 {
                    let t = Instant::now();
                    s = crate::membw::read_once(&refs, &e);
                    base = base.min(t.elapsed().as_secs_f64());
                }
                eprintln!("{level:?} {stat:?}: {best:.4}s, read-once {base:.4}s ({s})");
            }
        }
    }
}
#[allow(missing_docs)]
pub fn tmp_median(rows: &[&[f32]], out: &mut [f32], exec: &Exec) -> bool {
    order::order_stat(rows, &vec![1.0; rows.len()], order::Stat::Median, out, exec)
}
