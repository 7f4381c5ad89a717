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
            0 => Err(Error::InvalidOption(
                "thread count must be at least 1".into(),
            )),
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

    /// Splits `out` into chunks of `chunk` elements and returns
    /// `f(start, chunk)` of each, computed in parallel, in chunk order.
    pub(crate) fn map_chunks<T, R, F>(&self, out: &mut [T], chunk: usize, f: F) -> Vec<R>
    where
        T: Send,
        R: Send,
        F: Fn(usize, &mut [T]) -> R + Sync,
    {
        let chunk = chunk.max(1);
        let run = |(k, c): (usize, &mut [T])| f(k * chunk, c);
        match &self.threads {
            Threads::Sequential => out.chunks_mut(chunk).enumerate().map(run).collect(),
            Threads::Current => out
                .par_chunks_mut(chunk)
                .with_max_len(1)
                .enumerate()
                .map(run)
                .collect(),
            Threads::Pool(p) => p.install(|| {
                out.par_chunks_mut(chunk)
                    .with_max_len(1)
                    .enumerate()
                    .map(run)
                    .collect()
            }),
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

    /// `f` of every item, computed in parallel, in item order.
    pub(crate) fn map_each<T, R, F>(&self, items: Vec<T>, f: F) -> Vec<R>
    where
        T: Send,
        R: Send,
        F: Fn(T) -> R + Sync,
    {
        match &self.threads {
            Threads::Sequential => items.into_iter().map(f).collect(),
            Threads::Current => items.into_par_iter().with_max_len(1).map(&f).collect(),
            Threads::Pool(p) => {
                p.install(|| items.into_par_iter().with_max_len(1).map(&f).collect())
            }
        }
    }
}

/// Coordinates per task of a reduction. Each task adds the partial sums of
/// its [`BLOCK`]-long blocks in coordinate order; the tasks' sums are then
/// added in task order ([`sum_in_order`]). Both lengths are constants, so the
/// order of every addition is fixed by `d` alone.
pub(crate) const TASK: usize = 64 * 1024;
/// Coordinates per block of a reduction.
pub(crate) const BLOCK: usize = 2048;

/// Tasks whose partial sums are held at once by [`Exec::sum_tasks`].
const WAVE: usize = 16;

impl Exec {
    /// Runs `task(0..tasks)` in parallel and adds their `k` partial sums
    /// element-wise in task order; returns the sums and whether any task
    /// reported `true`. Tasks run in waves of a fixed size, so at most that
    /// many partial vectors exist at once, and the order of the additions
    /// is the same at any thread count.
    pub(crate) fn sum_tasks<F>(&self, tasks: usize, k: usize, task: F) -> (Vec<f64>, bool)
    where
        F: Fn(usize) -> (Vec<f64>, bool) + Sync,
    {
        let mut total = vec![0.0f64; k];
        let mut any = false;
        let mut start = 0;
        while start < tasks {
            let end = (start + WAVE).min(tasks);
            for (p, flag) in self.map(end - start, |t| task(start + t)) {
                for (t, v) in total.iter_mut().zip(p) {
                    *t += v;
                }
                any |= flag;
            }
            start = end;
        }
        (total, any)
    }
}

/// Adds per-task partial sums element-wise, in task order.
pub(crate) fn sum_in_order(partials: impl IntoIterator<Item = Vec<f64>>, k: usize) -> Vec<f64> {
    let mut total = vec![0.0f64; k];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_an_error() {
        assert!(matches!(
            Exec::with_threads(0),
            Err(Error::InvalidOption(_))
        ));
    }

    #[test]
    fn with_simd_never_exceeds_the_cpu() {
        let e = Exec::sequential().with_simd(SimdLevel::Avx512);
        assert!(e.simd() <= SimdLevel::detect());
        let e = Exec::sequential().with_simd(SimdLevel::Portable);
        assert_eq!(e.simd(), SimdLevel::Portable);
    }

    #[test]
    fn chunks_cover_everything_once_in_order() {
        for exec in [Exec::sequential(), Exec::with_threads(3).unwrap()] {
            let mut out = vec![0u32; 1001];
            let starts = exec.map_chunks(&mut out, 64, |start, c| {
                for (i, v) in c.iter_mut().enumerate() {
                    *v += (start + i) as u32;
                }
                start
            });
            assert_eq!(starts, (0..1001).step_by(64).collect::<Vec<_>>());
            assert!(out.iter().enumerate().all(|(i, &v)| v == i as u32));
            assert_eq!(exec.map(5, |i| i * i), vec![0, 1, 4, 9, 16]);
            assert_eq!(
                exec.map_each(vec![3, 1, 2], |i: usize| i + 1),
                vec![4, 2, 3]
            );
        }
    }

    #[test]
    fn sum_tasks_adds_in_task_order_in_waves() {
        for exec in [Exec::sequential(), Exec::with_threads(3).unwrap()] {
            let (sums, any) = exec.sum_tasks(40, 2, |t| (vec![t as f64, 1.0], t == 33));
            assert_eq!(sums, vec![780.0, 40.0]);
            assert!(any);
            let (sums, any) = exec.sum_tasks(0, 1, |_| (vec![1.0], true));
            assert_eq!((sums, any), (vec![0.0], false));
        }
    }

    #[test]
    fn sum_in_order_adds_elementwise() {
        assert_eq!(
            sum_in_order(vec![vec![1.0, 2.0], vec![3.0, 4.0]], 2),
            vec![4.0, 6.0]
        );
        assert_eq!(sum_in_order(Vec::<Vec<f64>>::new(), 1), vec![0.0]);
    }
}
