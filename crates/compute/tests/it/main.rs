//! The compute crate's tests: the sandbox against hostile modules, the
//! example tasks, owners' validators and the quorum rule.

mod hostile;
mod quorum;
mod tasks;

use funetun_compute::{Input, Limits, Outcome, Sandbox};

/// Compiles the WebAssembly text `wat` and runs it on `input`.
pub fn run_wat(wat: &str, input: &str, limits: &Limits) -> Outcome {
    let sandbox = Sandbox::new().unwrap();
    let wasm = wat::parse_str(wat).unwrap();
    match sandbox.compile(&wasm) {
        Ok(program) => sandbox.run(&program, &Input::new(input.into()).unwrap(), limits),
        Err(failure) => Outcome {
            result: Err(failure),
            fuel_used: 0,
        },
    }
}

/// Small limits, so the hostile tests end quickly.
pub const SMALL: Limits = Limits {
    fuel: 20_000_000,
    memory_bytes: 16 << 20,
    output_bytes: 1 << 20,
};
