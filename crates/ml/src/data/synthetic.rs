//! A built-in, learnable 10-class data set of 28×28 images, generated
//! deterministically from a seed: no files, no network.
//!
//! Each class has a prototype made of three Gaussian blobs at random places;
//! a sample is its class prototype shifted by up to two pixels, scaled in
//! brightness and covered in noise. The MLP learns it past 90% within a
//! few hundred steps, which makes it a fast stand-in for MNIST in tests.

use super::{Dataset, DatasetName, NUM_CLASSES, Split};
use crate::error::Result;
use crate::rng::Rng;

/// Training samples of the built-in set.
pub const DEFAULT_TRAIN: usize = 12_000;
/// Test samples of the built-in set.
pub const DEFAULT_TEST: usize = 2_000;
const SIDE: usize = 28;

/// Generates the synthetic set for `seed` with the given split sizes.
pub fn generate(seed: u64, train: usize, test: usize) -> Result<Dataset> {
    let mut rng = Rng::derived(seed, "synthetic-prototypes");
    let mut prototypes = vec![[0f32; SIDE * SIDE]; NUM_CLASSES];
    for proto in &mut prototypes {
        for _ in 0..3 {
            let (cy, cx) = (rng.uniform(7.0, 21.0), rng.uniform(7.0, 21.0));
            let sigma = rng.uniform(1.5, 3.5);
            let amp = rng.uniform(0.6, 1.0);
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let d2 = (y as f32 - cy).powi(2) + (x as f32 - cx).powi(2);
                    proto[y * SIDE + x] += amp * (-d2 / (2.0 * sigma * sigma)).exp();
                }
            }
        }
    }
    let make = |n: usize, purpose: &str| {
        let mut rng = Rng::derived(seed, purpose);
        let mut images = vec![0u8; n * SIDE * SIDE];
        let mut labels = vec![0u8; n];
        for (i, label) in labels.iter_mut().enumerate() {
            let class = rng.below(NUM_CLASSES as u64) as usize;
            *label = class as u8;
            let dy = rng.below(5) as isize - 2;
            let dx = rng.below(5) as isize - 2;
            let gain = rng.uniform(0.7, 1.3);
            let img = &mut images[i * SIDE * SIDE..(i + 1) * SIDE * SIDE];
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let (sy, sx) = (y as isize - dy, x as isize - dx);
                    let base =
                        if (0..SIDE as isize).contains(&sy) && (0..SIDE as isize).contains(&sx) {
                            prototypes[class][sy as usize * SIDE + sx as usize]
                        } else {
                            0.0
                        };
                    // Triangular noise in [-0.35, 0.35]: cheap and bounded.
                    let noise = 0.35 * (rng.unit_f32() - rng.unit_f32());
                    img[y * SIDE + x] =
                        ((gain * base + noise).clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
        Split::Images { images, labels }
    };
    let train_split = make(train, "synthetic-train");
    let test_split = make(test, "synthetic-test");
    Dataset::from_parts(
        DatasetName::Synthetic(seed),
        SIDE,
        SIDE,
        train_split,
        test_split,
    )
}
