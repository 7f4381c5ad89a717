//! Shards and the seeded order in which a task visits its shard.
//!
//! Shard `i` of `k` holds the training samples whose index is `i` modulo
//! `k`: balanced, stable, and needing no seed. A task's batches come from
//! an endless stream of seeded permutations of its shard (one per pass),
//! cut into consecutive batches of the same size, so every batch is full
//! and the order depends only on (shard, seed).

use crate::error::{Error, Result};
use crate::rng::Rng;

/// The sample indices of shard `shard` of `shards` over `n` samples.
pub fn shard_indices(n: usize, shard: usize, shards: usize) -> Result<Vec<u32>> {
    if shards == 0 || shard >= shards {
        return Err(Error::invalid(
            "shard",
            format!("shard {shard} of {shards}: the shard must be in 0..{shards} and shards ≥ 1"),
        ));
    }
    if shards > n {
        return Err(Error::invalid(
            "shards",
            format!("{shards} shards over {n} samples would leave empty shards"),
        ));
    }
    Ok((shard..n).step_by(shards).map(|i| i as u32).collect())
}

/// Yields batches of indices from seeded permutations of a pool.
pub struct BatchSampler {
    pool: Vec<u32>,
    order: Vec<u32>,
    at: usize,
    rng: Rng,
}

impl BatchSampler {
    /// A sampler over `pool` whose order is fixed by `seed`.
    pub fn new(pool: Vec<u32>, seed: u64) -> Self {
        Self {
            order: Vec::with_capacity(pool.len()),
            at: 0,
            pool,
            rng: Rng::derived(seed, "batch-order"),
        }
    }

    /// Fills `batch` with the next indices, starting a new permutation of
    /// the pool whenever the current one runs out.
    pub fn next_batch(&mut self, batch: &mut [u32]) {
        for slot in batch.iter_mut() {
            if self.at == self.order.len() {
                self.order.clear();
                self.order.extend_from_slice(&self.pool);
                self.rng.shuffle(&mut self.order);
                self.at = 0;
            }
            *slot = self.order[self.at];
            self.at += 1;
        }
    }
}

/// A deterministic evaluation sample of at most `max` indices from `pool`.
pub fn eval_sample(pool: &[u32], max: usize, seed: u64) -> Vec<u32> {
    if pool.len() <= max {
        return pool.to_vec();
    }
    let mut order = pool.to_vec();
    Rng::derived(seed, "eval-sample").shuffle(&mut order);
    order.truncate(max);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_samples() {
        let mut all: Vec<u32> = (0..4)
            .flat_map(|i| shard_indices(10, i, 4).unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(shard_indices(10, 1, 4).unwrap(), vec![1, 5, 9]);
        assert!(shard_indices(10, 4, 4).is_err());
        assert!(shard_indices(10, 0, 0).is_err());
        assert!(shard_indices(3, 0, 4).is_err());
    }

    #[test]
    fn batches_cover_each_pass_once_and_repeat_by_seed() {
        let pool: Vec<u32> = (100..110).collect();
        let mut s = BatchSampler::new(pool.clone(), 5);
        let mut seen = Vec::new();
        let mut b = [0u32; 5];
        for _ in 0..2 {
            s.next_batch(&mut b);
            seen.extend_from_slice(&b);
        }
        seen.sort_unstable();
        assert_eq!(seen, pool);
        let take = |seed| {
            let mut s = BatchSampler::new(pool.clone(), seed);
            let mut b = [0u32; 7];
            (0..3)
                .flat_map(|_| {
                    s.next_batch(&mut b);
                    b
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(take(1), take(1));
        assert_ne!(take(1), take(2));
    }
}
