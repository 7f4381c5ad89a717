//! Monte-Carlo π: `{"samples": N, "seed": S}` → `{"samples": N, "inside":
//! K, "pi": 4K/N}`, where K of N seeded points in the unit square fall in
//! the quarter circle.

use funetun_guest::SplitMix64;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    samples: u64,
    seed: u64,
}

#[derive(Serialize)]
struct Output {
    samples: u64,
    inside: u64,
    pi: f64,
}

fn pi(input: Input) -> Result<Output, String> {
    if input.samples == 0 || input.samples > 1 << 34 {
        return Err("samples must be between 1 and 2^34".into());
    }
    let mut rng = SplitMix64::new(input.seed);
    let mut inside = 0u64;
    for _ in 0..input.samples {
        let (x, y) = (rng.next_f64(), rng.next_f64());
        if x * x + y * y <= 1.0 {
            inside += 1;
        }
    }
    Ok(Output {
        samples: input.samples,
        inside,
        pi: 4.0 * inside as f64 / input.samples as f64,
    })
}

funetun_guest::task!(pi);
