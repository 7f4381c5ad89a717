//! The example tasks, built from `examples/tasks/` (Rust) to WebAssembly by
//! `scripts/build-tasks.sh` and shipped inside the binary, so `funetun
//! tasks example NAME --out F.wasm` needs no toolchain. The test command
//! checks the shipped bytes are what that source builds to.

/// A shipped example module.
#[derive(Clone, Copy, Debug)]
pub struct Example {
    /// Its name.
    pub name: &'static str,
    /// What it does, and its input.
    pub about: &'static str,
    /// An input to try it with.
    pub input: &'static str,
    /// The module.
    pub wasm: &'static [u8],
}

/// Every shipped example.
pub const EXAMPLES: [Example; 6] = [
    Example {
        name: "pi",
        about: "Monte-Carlo π: {\"samples\": N, \"seed\": S} → {\"samples\", \"inside\", \"pi\"}",
        input: r#"{"samples": 1000000, "seed": 7}"#,
        wasm: include_bytes!("../tasks/pi.wasm"),
    },
    Example {
        name: "rounding",
        about: "a sum whose last bits depend on the order of additions: \
                {\"values\": N, \"seed\": S, \"order\": \"forward\"|\"backward\"|\"pairwise\"} → {\"sum\", \"order\"}",
        input: r#"{"values": 100000, "seed": 7, "order": "pairwise"}"#,
        wasm: include_bytes!("../tasks/rounding.wasm"),
    },
    Example {
        name: "sweep",
        about: "one point of a hyper-parameter sweep: trains the MLP with funetun-ml (compiled \
                to WebAssembly) on the synthetic set, {\"lr\": X, \"optimizer\", \"batch\", \
                \"steps\", \"seed\", \"data_seed\", \"train\", \"test\"} → the settings, \
                \"val_accuracy\", \"val_loss\", \"train_loss_before\", \"train_loss_after\"",
        input: r#"{"lr": 0.05, "optimizer": "momentum", "seed": 1}"#,
        wasm: include_bytes!("../tasks/sweep.wasm"),
    },
    Example {
        name: "drill",
        about: "the drilling kernel: {\"n\": N, \"rounds\": R, \"seed\": S} → {\"ops\": 2·N³·R, \"checksum\"}, \
                R seeded N×N f32 matrix products (docs/tasks.md, \"Drilling\")",
        input: r#"{"n": 64, "rounds": 100, "seed": 7}"#,
        wasm: include_bytes!("../tasks/drill.wasm"),
    },
    Example {
        name: "hostile",
        about: "a hostile task for drills: {\"attack\": \"loop\"|\"memory\"|\"output\"} spins \
                forever, hoards memory or answers 2 MiB; each ends as a failure class",
        input: r#"{"attack": "loop"}"#,
        wasm: include_bytes!("../tasks/hostile.wasm"),
    },
    Example {
        name: "rounding-valid",
        about: "the validator for `rounding`: init_valid (a finite sum) and \
                compare_valid (sums within a relative 1e-9)",
        input: "",
        wasm: include_bytes!("../tasks/rounding_valid.wasm"),
    },
];

/// The example called `name`.
pub fn example(name: &str) -> Option<&'static Example> {
    EXAMPLES.iter().find(|e| e.name == name)
}
