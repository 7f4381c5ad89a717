//! A sum whose last bits depend on the order of the additions:
//! `{"values": N, "seed": S, "order": "forward" | "backward" | "pairwise"}`
//! → `{"sum": …, "order": …}`, the sum of N seeded numbers spread over
//! twelve orders of magnitude. Each order is honest; their results differ
//! by rounding, so replicas that sum in different orders are compared with
//! a tolerance (the `rounding-valid` validator), not bit for bit.

use funetun_guest::SplitMix64;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    values: u32,
    seed: u64,
    order: String,
}

#[derive(Serialize)]
struct Output {
    sum: f64,
    order: String,
}

fn pairwise(x: &[f64]) -> f64 {
    match x.len() {
        0 => 0.0,
        1 => x[0],
        n => pairwise(&x[..n / 2]) + pairwise(&x[n / 2..]),
    }
}

fn rounding(input: Input) -> Result<Output, String> {
    if input.values == 0 || input.values > 1 << 24 {
        return Err("values must be between 1 and 2^24".into());
    }
    let mut rng = SplitMix64::new(input.seed);
    let x: Vec<f64> = (0..input.values)
        .map(|_| {
            let magnitude = 10f64.powi((rng.next_u64() % 12) as i32 - 6);
            (rng.next_f64() - 0.5) * magnitude
        })
        .collect();
    let sum = match input.order.as_str() {
        "forward" => x.iter().sum(),
        "backward" => x.iter().rev().sum(),
        "pairwise" => pairwise(&x),
        other => return Err(format!("order `{other}` is not forward, backward or pairwise")),
    };
    Ok(Output {
        sum,
        order: input.order,
    })
}

funetun_guest::task!(rounding);
