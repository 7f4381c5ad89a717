//! The drilling kernel (docs/tasks.md, "Drilling"): a calibrated amount
//! of floating-point work whose result is the same bits on every machine.
//! `{"n": N, "rounds": R, "seed": S}` → `{"ops": 2·N³·R, "checksum": C}`:
//! R products of N×N f32 matrices, each result scaled back into [-1, 1],
//! folded by a chaotic map and fed to the next round; `ops` counts one
//! multiply and one add per term (the FLOP count of the products),
//! `checksum` folds the final matrix's bits.

use funetun_guest::SplitMix64;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    n: u32,
    rounds: u32,
    seed: u64,
}

#[derive(Serialize)]
struct Output {
    ops: u64,
    checksum: String,
}

fn drill(input: Input) -> Result<Output, String> {
    let (n, rounds) = (input.n as usize, input.rounds as u64);
    if !(1..=512).contains(&n) || !(1..=1_000_000).contains(&rounds) {
        return Err("n must be 1 to 512 and rounds 1 to 1000000".into());
    }
    let mut rng = SplitMix64::new(input.seed);
    let mut random = || (rng.next_f64() * 2.0 - 1.0) as f32;
    let mut a: Vec<f32> = (0..n * n).map(|_| random()).collect();
    let b: Vec<f32> = (0..n * n).map(|_| random()).collect();
    let mut c = vec![0f32; n * n];
    for _ in 0..rounds {
        for i in 0..n {
            let row = &mut c[i * n..(i + 1) * n];
            row.fill(0.0);
            for k in 0..n {
                let aik = a[i * n + k];
                for (out, bkj) in row.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                    *out += aik * bkj;
                }
            }
        }
        // Back into [-1, 1], then through the chaotic map x ↦ 2x² − 1, so
        // the rounds never settle into a fixed point a shortcut could
        // guess: every round's bits depend on the one before.
        let largest = c.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if largest > 0.0 { 1.0 / largest } else { 1.0 };
        for (next, value) in a.iter_mut().zip(&c) {
            let x = value * scale;
            *next = 2.0 * x * x - 1.0;
        }
    }
    let checksum = a.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ u64::from(x.to_bits())).wrapping_mul(0x0100_0000_01b3)
    });
    Ok(Output {
        ops: 2 * (n as u64).pow(3) * rounds,
        checksum: format!("{checksum:016x}"),
    })
}

funetun_guest::task!(drill);
