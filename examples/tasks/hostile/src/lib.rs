//! A hostile task, for drills and the demo: `{"attack": "loop"}` spins
//! forever, `"memory"` hoards memory until the host refuses more, `"output"`
//! answers with 2 MiB. Each ends as a failure result within the sandbox's
//! limits (`fuel`, `memory`, `output_size`); nothing reaches the worker's
//! machine beyond the fuel and memory it granted.

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Input {
    attack: String,
}

fn hostile(input: Input) -> Result<Value, String> {
    match input.attack.as_str() {
        "loop" => {
            let mut spins = 0u64;
            loop {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Asked for, not written: the memory grows at little fuel.
                hoard.push(Vec::with_capacity(16 << 20));
                std::hint::black_box(&hoard);
            }
        }
        "output" => Ok(Value::String("x".repeat(2 << 20))),
        other => Err(format!(
            "unknown attack `{other}`: use loop, memory or output"
        )),
    }
}

funetun_guest::task!(hostile);
