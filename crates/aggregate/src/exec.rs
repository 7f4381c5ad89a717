//! Where the work runs: threads, and which vector instructions the kernels use.
//!
//! Work is always split the same way, whatever the thread count: element-wise
//! kernels cut the coordinates into fixed chunks and compute every output
//! coordinate with the same sequential code; reductions (norms, distances) sum
//! fixed-size coordinate blocks in a fixed order. Threads only change which
//! core computes a chunk, never the arithmetic, so the output bits are the same
//! at 1, 2 or 64 threads.
//!
//! The kernels are compiled for several instruction sets and chosen at run
//! time (see [`SimdLevel`]); every level does the same per-lane arithmetic in
//! the same order, so the level changes the speed, not the bits.

use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::simd::SimdLevel;

#[derive(Clone, Debug)]
enum Threads {
    /// On the calling thread only.
    Sequential,
    /// On the rayon pool the caller is running in (the global one by default).
    Current,
    /// On a pool of our own or one the caller handed over.
    Pool(Arc<rayon::ThreadPool>),
}

/// How and where a computation runs: the threads and the SIMD level.
///
/// ```
/// use funetun_aggregate::Exec;
/// let exec = Exec::with_threads(2)?;
/// assert_eq!(exec.threads(), 2);
/// # Ok::<(), funetun_aggregate::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Exec {
    threads: Threads,
    simd: SimdLevel,
}

impl Default for Exec {
    /// The current rayon pool and the best SIMD level of this CPU.
    fn default() -> Self {
        Self::current()
    }
}

impl Exec {
    /// Everything on the calling thread.
    pub fn sequential() -> Self {
        Self {
            threads: Threads::Sequential,
            simd: SimdLevel::detect(),
        }
    }

    /// The rayon pool the caller runs in (rayon's global pool outside any).
    pub fn current() -> Self {
        Self {
            threads: Threads::Current,
            simd: SimdLevel::detect(),
        }
    }

    /// A new pool of `threads` threads; 1 means the calling thread only.
    pub fn with_threads(threads: usize) -> Result<Self> {
        match threads {
            0 => Err(Error::InvalidOption("thread count must be at least 1".into())),
            1 => Ok(Self::sequential()),
            t => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .thread_name(|i| format!("aggregate-{i}"))
                    .build()
                    .map_err(|e| Error::ThreadPool(e.to_string()))?;
                Ok(Self::with_pool(Arc::new(pool)))
            }
        }
    }

    /// A pool the caller owns.
    pub fn with_pool(pool: Arc<rayon::ThreadPool>) -> Self {
        Self {
            threads: Threads::Pool(pool),
            simd: SimdLevel::detect(),
        }
    }

    /// The same threads with the kernels compiled for `level`, or for the best
    /// level the CPU has if it lacks `level`. Results do not depend on it; it
    /// exists to check exactly that and to measure the vector code's gain.
    pub fn with_simd(mut self, level: SimdLevel) -> Self {
        self.simd = level.min(SimdLevel::detect());
        self
    }

    /// The SIMD level in use.
    pub fn simd(&self) -> SimdLevel {
        self.simd
    }

    /// The number of threads work is spread over.
    pub fn threads(&self) -> usize {
        match &self.threads {
            Threads::Sequential => 1,
            Threads::Current => rayon::current_num_threads(),
            Threads::Pool(p) => p.current_num_threads(),
        }
    }

    /// Splits `out` into chunks of `chunk` elements and calls
    /// `f(start, chunk)` on each, in parallel; returns the OR of the results.
    pub(crate) fn chunks_any<T, F>(&self, out: &mut [T], chunk: usize, f: F) -> bool
    where
        T: Send,
        F: Fn(usize, &mut [T]) -> bool + Sync,
    {
        let chunk = chunk.max(1);
        match &self.threads {
            Threads::Sequential => out
                .chunks_mut(chunk)
                .enumerate()
                .fold(false, |acc, (k, c)| f(k * chunk, c) | acc),
            Threads::Current => par_chunks_any(out, chunk, &f),
            Threads::Pool(p) => p.install(|| par_chunks_any(out, chunk, &f)),
        }
    }

    /// `f(0), f(1), …, f(count - 1)`, in parallel, returned in index order.
    pub(crate) fn map<R, F>(&self, count: usize, f: F) -> Vec<R>
    where
        R: Send,
        F: Fn(usize) -> R + Sync,
    {
        match &self.threads {
            Threads::Sequential => (0..count).map(f).collect(),
            Threads::Current => (0..count).into_par_iter().with_max_len(1).map(&f).collect(),
            Threads::Pool(p) => {
                p.install(|| (0..count).into_par_iter().with_max_len(1).map(&f).collect())
            }
        }
    }
}

fn par_chunks_any<T, F>(out: &mut [T], chunk: usize, f: &F) -> bool
where
    T: Send,
    F: Fn(usize, &mut [T]) -> bool + Sync,
{
    out.par_chunks_mut(chunk)
        .with_max_len(1)
        .enumerate()
        .map(|(k, c)| f(k * chunk, c))
        .reduce(|| false, |a, b| a | b)
}

/// Length of the coordinate blocks whose partial sums a reduction combines.
pub(crate) const REDUCE_BLOCK: usize = 2048;
/// Blocks per task of a reduction: each task sums its blocks in order, then
/// the tasks' sums are added in order.
pub(crate) const REDUCE_BLOCKS_PER_TASK: usize = 32;

impl Exec {
    /// Sums `k` quantities over the coordinates `0..d` deterministically.
    ///
    /// `block(range, acc)` adds the partial sums of the coordinates in `range`
    /// (at most [`REDUCE_BLOCK`] long, always starting at a multiple of it)
    /// into `acc[0..k]`. Blocks are added in coordinate order within a task of
    /// [`REDUCE_BLOCKS_PER_TASK`] blocks, and task sums in task order, so the
    /// result does not depend on the thread count.
    pub(crate) fn reduce<F>(&self, d: usize, k: usize, block: F) -> Vec<f64>
    where
        F: Fn(std::ops::Range<usize>, &mut [f64]) + Sync,
    {
        let task_len = REDUCE_BLOCK * REDUCE_BLOCKS_PER_TASK;
        let tasks = d.div_ceil(task_len);
        let partials = self.map(tasks, |t| {
            let mut acc = vec![0.0f64; k];
            let start = t * task_len;
            let end = (start + task_len).min(d);
            let mut b = start;
            while b < end {
                let e = (b + REDUCE_BLOCK).min(end);
                block(b..e, &mut acc);
                b = e;
            }
            acc
        });
        let mut total = vec![0.0f64; k];
        for p in partials {
            for (t, v) in total.iter_mut().zip(p) {
                *t += v;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_an_error() {
        assert!(matches!(Exec::with_threads(0), Err(Error::InvalidOption(_))));
    }

    #[test]
    fn with_simd_never_exceeds_the_cpu() {
        let e = Exec::sequential().with_simd(SimdLevel::Avx512);
        assert!(e.simd() <= SimdLevel::detect());
        let e = Exec::sequential().with_simd(SimdLevel::Portable);
        assert_eq!(e.simd(), SimdLevel::Portable);
    }

    #[test]
    fn chunks_cover_everything_once_and_report_any() {
        for exec in [Exec::sequential(), Exec::with_threads(3).unwrap()] {
            let mut out = vec![0u32; 1001];
            let any = exec.chunks_any(&mut out, 64, |start, c| {
                for (i, v) in c.iter_mut().enumerate() {
                    *v += (start + i) as u32;
                }
                start == 960
            });
            assert!(any);
            assert!(out.iter().enumerate().all(|(i, &v)| v == i as u32));
        }
    }

    #[test]
    fn reduce_is_the_same_at_any_thread_count() {
        let d = REDUCE_BLOCK * REDUCE_BLOCKS_PER_TASK * 3 + 777;
        let x: Vec<f64> = (0..d).map(|i| ((i * 7919) % 1013) as f64 * 1e-3 + 1e-9).collect();
        let run = |exec: &Exec| {
            exec.reduce(d, 2, |r, acc| {
                let mut s = 0.0;
                for v in &x[r.clone()] {
                    s += v;
                }
                acc[0] += s;
                acc[1] += r.len() as f64;
            })
        };
        let a = run(&Exec::sequential());
        let b = run(&Exec::with_threads(2).unwrap());
        let c = run(&Exec::with_threads(3).unwrap());
        assert_eq!(a[1], d as f64);
        assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), c.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }
}
