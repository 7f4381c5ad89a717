//! `funetun tasks`: generic WebAssembly tasks. `run-local` runs one in the
//! sandbox a worker uses, on this machine — what a task author tries before
//! paying for replicas; `example` writes a module shipped in the binary.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use funetun_compute::examples::{EXAMPLES, example};
use funetun_compute::{Input, Limits, Sandbox, Validator};

use crate::output::print_json;

/// `funetun tasks …`.
#[derive(Debug, clap::Subcommand)]
pub enum TasksCommand {
    /// Run a task (a WebAssembly module and a JSON input) in the sandbox a
    /// worker uses, here, and print its output or its failure class
    /// (invalid_module, trap, fuel, memory, output_size, bad_output). Exits
    /// 0 with an output, 2 with a failure.
    RunLocal(RunLocalArgs),
    /// Write an example module shipped in this binary (no toolchain
    /// needed); without a name, list them.
    Example(ExampleArgs),
}

/// Arguments of `funetun tasks run-local`.
#[derive(Debug, clap::Args)]
pub struct RunLocalArgs {
    /// The task's module (.wasm).
    #[arg(long)]
    wasm: PathBuf,
    /// The input: JSON text, or @FILE.
    #[arg(long)]
    input: String,
    /// Fuel: about one unit per WebAssembly instruction.
    #[arg(long, default_value_t = Limits::TASK.fuel)]
    fuel: u64,
    /// Memory cap, MiB.
    #[arg(long, default_value_t = (Limits::TASK.memory_bytes >> 20) as u64)]
    memory_mib: u64,
    /// Output cap, KiB.
    #[arg(long, default_value_t = (Limits::TASK.output_bytes >> 10) as u64)]
    output_kib: u64,
    /// Also judge the output with this validator module's `init_valid`.
    #[arg(long)]
    validator_wasm: Option<PathBuf>,
    /// Print one JSON line.
    #[arg(long)]
    json: bool,
}

/// Arguments of `funetun tasks example`.
#[derive(Debug, clap::Args)]
pub struct ExampleArgs {
    /// The example (pi, rounding, rounding-valid); none lists them.
    name: Option<String>,
    /// Where to write the module (default: NAME.wasm here). An existing
    /// file is left alone.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `funetun tasks …`.
pub fn run(cmd: TasksCommand) -> anyhow::Result<()> {
    match cmd {
        TasksCommand::RunLocal(args) => run_local(args),
        TasksCommand::Example(args) => write_example(args),
    }
}

fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("could not read the module {}", path.display()))
}

fn run_local(args: RunLocalArgs) -> anyhow::Result<()> {
    let text = match args.input.strip_prefix('@') {
        Some(file) => {
            std::fs::read(file).with_context(|| format!("could not read the input file {file}"))?
        }
        None => args.input.clone().into_bytes(),
    };
    let input = Input::new(text).context("--input takes JSON text or @FILE holding JSON")?;
    let wasm = read_module(&args.wasm)?;
    let limits = Limits {
        fuel: args.fuel,
        memory_bytes: usize::try_from(args.memory_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        output_bytes: usize::try_from(args.output_kib.saturating_mul(1 << 10))
            .unwrap_or(usize::MAX),
    };
    let sandbox = Sandbox::new().map_err(|e| anyhow::anyhow!("the sandbox did not start: {e}"))?;
    let validator = match &args.validator_wasm {
        Some(path) => Some(
            Validator::from_wasm(&sandbox, &read_module(path)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        ),
        None => None,
    };
    let started = Instant::now();
    let outcome = match sandbox.compile(&wasm) {
        Ok(program) => sandbox.run(&program, &input, &limits),
        Err(failure) => funetun_compute::Outcome {
            result: Err(failure),
            fuel_used: 0,
        },
    };
    let seconds = started.elapsed().as_secs_f64();
    let valid = validator.map(|v| v.init_valid(&sandbox, &outcome));
    if args.json {
        let mut line = outcome.to_json();
        line["module_hash"] = funetun_core::keccak256(&wasm).to_string().into();
        line["result_digest"] = outcome.digest().to_string().into();
        line["seconds"] = seconds.into();
        if let Some(valid) = valid {
            line["valid"] = valid.into();
        }
        print_json(&line)?;
    } else {
        let mut out = std::io::stdout().lock();
        match &outcome.result {
            Ok(output) => writeln!(out, "{}", String::from_utf8_lossy(output))?,
            Err(failure) => writeln!(out, "failed ({}): {}", failure.class, failure.detail)?,
        }
        let judged = match valid {
            Some(true) => ", valid by the validator",
            Some(false) => ", NOT valid by the validator",
            None => "",
        };
        eprintln!(
            "fuel used {}, {seconds:.3} s, result digest {}{judged}",
            outcome.fuel_used,
            outcome.digest()
        );
    }
    if outcome.result.is_err() {
        std::process::exit(2);
    }
    Ok(())
}

fn write_example(args: ExampleArgs) -> anyhow::Result<()> {
    let Some(name) = args.name else {
        for e in &EXAMPLES {
            println!("{:<15} {}", e.name, e.about);
            if !e.input.is_empty() {
                println!("{:<15} try: --input '{}'", "", e.input);
            }
        }
        return Ok(());
    };
    let Some(e) = example(&name) else {
        let names: Vec<_> = EXAMPLES.iter().map(|e| e.name).collect();
        bail!("no example `{name}`; the examples are {}", names.join(", "));
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.wasm", e.name)));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&out)
        .with_context(|| {
            format!(
                "could not create {} (an existing file is left alone; pass another --out)",
                out.display()
            )
        })?;
    file.write_all(e.wasm)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write {}", out.display()))?;
    println!(
        "wrote {} ({} bytes, keccak256 {}); try: funetun tasks run-local --wasm {} --input '{}'",
        out.display(),
        e.wasm.len(),
        funetun_core::keccak256(e.wasm),
        out.display(),
        if e.input.is_empty() { "{}" } else { e.input }
    );
    Ok(())
}
