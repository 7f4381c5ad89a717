//! The memory-bandwidth baseline that benchmarks compare the rules with.
//!
//! [`read_once`] reads every input value once, as fast as the machine allows
//! (each thread streams through whole rows of a coordinate chunk with
//! independent vector accumulators), and returns a checksum so that nothing
//! can be optimised away. Its time is the floor for any rule that must look at
//! every input value; benchmarks report each rule's time as a multiple of it.

use crate::exec::Exec;
use crate::simd::{Kernel, L, Simd, dispatch};

/// Coordinates of one row read by one task.
const CHUNK: usize = 64 * 1024;
/// Independent accumulators per lane, to hide the latency of the adds.
const ACC: usize = 4;

/// Reads every value of `rows` once on `exec`'s threads; returns their sum
/// (in an unspecified order, only so the reads cannot be skipped).
pub fn read_once(rows: &[&[f32]], exec: &Exec) -> f32 {
    let level = exec.simd();
    let tasks: Vec<(usize, usize)> = rows
        .iter()
        .enumerate()
        .flat_map(|(i, r)| (0..r.len().div_ceil(CHUNK)).map(move |c| (i, c * CHUNK)))
        .collect();
    let sums = exec.map(tasks.len(), |t| {
        let (i, start) = tasks[t];
        let row = &rows[i][start..(start + CHUNK).min(rows[i].len())];
        dispatch(level, SumStream(row))
    });
    sums.iter().sum()
}

/// Sums one row chunk with [`ACC`] independent vector accumulators.
struct SumStream<'a>(&'a [f32]);

impl Kernel for SumStream<'_> {
    type Output = f32;

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> f32 {
        let mut acc = [s.splat(0.0); ACC];
        let mut blocks = self.0.chunks_exact(L * ACC);
        for b in &mut blocks {
            for (k, a) in acc.iter_mut().enumerate() {
                *a = s.add(*a, s.load(b[k * L..(k + 1) * L].try_into().unwrap()));
            }
        }
        let mut total: f32 = blocks.remainder().iter().sum();
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
        let rows: Vec<Vec<f32>> = (0..3).map(|i| vec![1.0; 100_000 + i]).collect();
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        assert_eq!(read_once(&refs, &Exec::sequential()), 300_003.0);
        assert_eq!(read_once(&refs, &Exec::with_threads(2).unwrap()), 300_003.0);
    }
}
