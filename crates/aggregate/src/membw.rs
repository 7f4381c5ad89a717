//! The memory-bandwidth baseline that benchmarks compare the rules with.
//!
//! [`read_once`] reads every input value once, as fast as the machine allows,
//! and returns a checksum so that nothing can be optimised away. Its time is
//! the floor for any rule that must look at every input value; benchmarks
//! report each rule's time as a multiple of it.
//!
//! It reads the way the kernels do, since that is what the memory system
//! serves best here: each thread takes a chunk of coordinates and streams
//! through the `n` rows side by side, 16 values of each row at a time, with
//! the same software prefetch, adding into independent vector accumulators.

use crate::exec::Exec;
use crate::simd::{Kernel, L, Simd, dispatch};

/// Coordinates per task.
const CHUNK: usize = 16 * 1024;
/// Independent accumulators, to hide the latency of the adds.
const ACC: usize = 4;
/// How far ahead (in values) each stream is prefetched.
const AHEAD: usize = 512;

/// Reads every value of `rows` (all of the same length) once on `exec`'s
/// threads; returns their sum (in an unspecified order, only so that the
/// reads cannot be skipped).
pub fn read_once(rows: &[&[f32]], exec: &Exec) -> f32 {
    let level = exec.simd();
    let d = rows.iter().map(|r| r.len()).min().unwrap_or(0);
    let sums = exec.map(d.div_ceil(CHUNK), |t| {
        let range = t * CHUNK..((t + 1) * CHUNK).min(d);
        dispatch(level, SumChunk { rows, range })
    });
    sums.iter().sum()
}

/// Sums coordinates `range` of every row.
struct SumChunk<'a> {
    rows: &'a [&'a [f32]],
    range: std::ops::Range<usize>,
}

impl Kernel for SumChunk<'_> {
    type Output = f32;

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> f32 {
        let mut acc = [s.splat(0.0); ACC];
        let rows: Vec<&[f32]> = self.rows.iter().map(|r| &r[self.range.clone()]).collect();
        let len = self.range.len();
        let full = len / L * L;
        let mut g = 0;
        while g < full {
            for (i, row) in rows.iter().enumerate() {
                s.prefetch(row, g + AHEAD);
                let v = s.load(row[g..g + L].try_into().unwrap());
                acc[i % ACC] = s.add(acc[i % ACC], v);
            }
            g += L;
        }
        let mut total: f32 = rows.iter().map(|r| r[full..].iter().sum::<f32>()).sum();
        for a in acc {
            let mut o = [0.0; L];
            s.store(a, &mut o);
            total += o.iter().sum::<f32>();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_everything() {
        let rows: Vec<Vec<f32>> = (0..3).map(|_| vec![1.0; 100_003]).collect();
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        assert_eq!(read_once(&refs, &Exec::sequential()), 300_009.0);
        assert_eq!(read_once(&refs, &Exec::with_threads(2).unwrap()), 300_009.0);
        assert_eq!(read_once(&[], &Exec::sequential()), 0.0);
    }
}
