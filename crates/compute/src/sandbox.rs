//! The sandbox a generic task runs in: a WebAssembly module, JSON in, JSON
//! out, under wasmtime with fuel metering and a memory cap, and nothing from
//! the host.
//!
//! # The task ABI
//!
//! A task module imports nothing and exports:
//!
//! - `memory`: its linear memory;
//! - `funetun_alloc(len: i32) -> i32`: the address of `len` bytes the host
//!   may write the input into;
//! - `run(ptr: i32, len: i32) -> i64`: reads the input (UTF-8 JSON) at
//!   `ptr..ptr + len` and returns where its output (UTF-8 JSON) lies, as
//!   `(out_ptr << 32) | out_len`.
//!
//! An owner's validator module exports `memory`, `funetun_alloc` and either
//! or both of `init_valid(ptr, len) -> i32` and `compare_valid(a_ptr, a_len,
//! b_ptr, b_len) -> i32` (non-zero: valid, equivalent). See
//! [`crate::validator`].
//!
//! # Determinism
//!
//! The same module and input give the same bits on any machine: NaNs are
//! canonicalised, threads and relaxed SIMD are refused at validation, the
//! host gives no clock, randomness, file or socket (a module that imports
//! anything is refused), and fuel (about one unit per WebAssembly
//! instruction) is counted the same everywhere, so running out of it is
//! itself a deterministic result. The one limit that depends on the
//! machine's code is the native stack (`max_wasm_stack`): a recursion deep
//! enough to overflow it traps, and how deep that is could differ between
//! processor architectures (never between two x86-64 machines running the
//! same build).
//!
//! # Errors are results
//!
//! A trap, running out of fuel, asking for more memory than the cap, an
//! output over the size cap, an output that is not UTF-8 JSON and a module
//! that does not validate or breaks the ABI each end the run with a
//! [`Failure`] of one [`FailureClass`]. Failures of the same class are the
//! same result when replicas are compared ([`Outcome::digest`]); the
//! human-readable detail is not part of it.

use std::fmt;

use funetun_core::{Hash, keccak256};
use serde::{Deserialize, Serialize};
use wasmtime::{
    Config, Engine, Instance, Linker, Memory, Module, ResourceLimiter, Store, Trap, TypedFunc,
};

/// Limits of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Fuel: about one unit per WebAssembly instruction executed.
    pub fuel: u64,
    /// Most bytes of linear memory the module may have.
    pub memory_bytes: usize,
    /// Most bytes of output.
    pub output_bytes: usize,
}

impl Limits {
    /// A task's defaults: 10^10 fuel (seconds of work), 256 MiB of memory,
    /// 1 MiB of output.
    pub const TASK: Limits = Limits {
        fuel: 10_000_000_000,
        memory_bytes: 256 << 20,
        output_bytes: 1 << 20,
    };

    /// An owner's validator function's defaults: 10^8 fuel, 64 MiB, a
    /// 4-byte answer.
    pub const VALIDATOR: Limits = Limits {
        fuel: 100_000_000,
        memory_bytes: 64 << 20,
        output_bytes: 4,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::TASK
    }
}

/// Most bytes of input a task takes.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Why a run ended without an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The module does not validate, imports something, or lacks an export
    /// of the ABI.
    InvalidModule,
    /// The module trapped: `unreachable`, an out-of-bounds access, a
    /// division by zero, a stack overflow, a bad pointer in the ABI.
    Trap,
    /// The run used up its fuel.
    Fuel,
    /// The module asked for more memory than the cap.
    Memory,
    /// The output is longer than the cap.
    OutputSize,
    /// The output is not UTF-8 JSON.
    BadOutput,
}

impl FailureClass {
    /// Every class.
    pub const ALL: [FailureClass; 6] = [
        FailureClass::InvalidModule,
        FailureClass::Trap,
        FailureClass::Fuel,
        FailureClass::Memory,
        FailureClass::OutputSize,
        FailureClass::BadOutput,
    ];

    /// The word used in JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::InvalidModule => "invalid_module",
            FailureClass::Trap => "trap",
            FailureClass::Fuel => "fuel",
            FailureClass::Memory => "memory",
            FailureClass::OutputSize => "output_size",
            FailureClass::BadOutput => "bad_output",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run that ended without an output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Its class: what replicas are compared by.
    pub class: FailureClass,
    /// What happened, for people.
    pub detail: String,
}

impl Failure {
    fn new(class: FailureClass, detail: impl Into<String>) -> Failure {
        Failure {
            class,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.detail)
    }
}

impl std::error::Error for Failure {}

/// What one run gave: its output (UTF-8 JSON) or its failure, and the fuel
/// it burned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The output's bytes, or the failure.
    pub result: std::result::Result<Vec<u8>, Failure>,
    /// Fuel used (the same on every machine for the same module and input).
    pub fuel_used: u64,
}

impl Outcome {
    fn failed(class: FailureClass, detail: impl Into<String>, fuel_used: u64) -> Outcome {
        Outcome {
            result: Err(Failure::new(class, detail)),
            fuel_used,
        }
    }

    /// The keccak256 that identifies this result among replicas: of the
    /// output's bytes, or of the failure's class (not its detail).
    pub fn digest(&self) -> Hash {
        let mut bytes = b"funetun-task-result/1\0".to_vec();
        match &self.result {
            Ok(output) => {
                bytes.extend_from_slice(b"ok\0");
                bytes.extend_from_slice(output);
            }
            Err(failure) => {
                bytes.extend_from_slice(b"error\0");
                bytes.extend_from_slice(failure.class.as_str().as_bytes());
            }
        }
        keccak256(&bytes)
    }

    /// The outcome as a worker reports it: the output's exact bytes as
    /// text, or the failure's class and detail.
    pub fn to_run_result(&self) -> funetun_core::compute::RunResult {
        let (output, error, detail) = match &self.result {
            // The sandbox accepts only UTF-8 output.
            Ok(bytes) => (
                Some(String::from_utf8_lossy(bytes).into_owned()),
                None,
                None,
            ),
            Err(f) => (
                None,
                Some(f.class.as_str().to_string()),
                Some(f.detail.clone()),
            ),
        };
        funetun_core::compute::RunResult {
            output,
            error,
            detail,
            fuel_used: self.fuel_used,
        }
    }

    /// A reported result back as an outcome; an error names what is wrong
    /// with the report (both or neither of output and error, an unknown
    /// class, an output over `max_output` bytes or not JSON).
    pub fn from_run_result(
        r: &funetun_core::compute::RunResult,
        max_output: usize,
    ) -> std::result::Result<Outcome, String> {
        let result = match (&r.output, &r.error) {
            (Some(output), None) => {
                if output.len() > max_output {
                    return Err(format!(
                        "the output is {} bytes; the task allows {max_output}",
                        output.len()
                    ));
                }
                serde_json::from_str::<serde::de::IgnoredAny>(output)
                    .map_err(|e| format!("the output is not JSON: {e}"))?;
                Ok(output.as_bytes().to_vec())
            }
            (None, Some(class)) => {
                let class = FailureClass::ALL
                    .into_iter()
                    .find(|c| c.as_str() == class)
                    .ok_or_else(|| {
                        format!(
                            "unknown failure class `{class}`; one of {}",
                            FailureClass::ALL.map(|c| c.as_str()).join(", ")
                        )
                    })?;
                let mut detail = r.detail.clone().unwrap_or_default();
                detail.truncate(detail.floor_char_boundary(1024));
                Err(Failure::new(class, detail))
            }
            _ => return Err("give exactly one of `output` and `error`".into()),
        };
        Ok(Outcome {
            result,
            fuel_used: r.fuel_used,
        })
    }

    /// The outcome as JSON: `{"ok": true, "output": …, "fuel_used": N}` or
    /// `{"ok": false, "error": CLASS, "detail": …, "fuel_used": N}`.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.result {
            Ok(output) => serde_json::json!({
                "ok": true,
                "output": serde_json::from_slice::<serde_json::Value>(output)
                    .unwrap_or(serde_json::Value::Null),
                "fuel_used": self.fuel_used,
            }),
            Err(failure) => serde_json::json!({
                "ok": false,
                "error": failure.class,
                "detail": failure.detail,
                "fuel_used": self.fuel_used,
            }),
        }
    }
}

/// A task's input: checked to be UTF-8 JSON of at most [`MAX_INPUT_BYTES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input(Vec<u8>);

/// Why an input was refused.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Over [`MAX_INPUT_BYTES`].
    #[error("the input is {0} bytes; a task takes at most {MAX_INPUT_BYTES}")]
    TooLarge(usize),
    /// Not JSON.
    #[error("the input is not JSON: {0}")]
    NotJson(serde_json::Error),
}

impl Input {
    /// Checks `bytes`: UTF-8 JSON, at most [`MAX_INPUT_BYTES`].
    pub fn new(bytes: Vec<u8>) -> std::result::Result<Input, InputError> {
        if bytes.len() > MAX_INPUT_BYTES {
            return Err(InputError::TooLarge(bytes.len()));
        }
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(InputError::NotJson)?;
        Ok(Input(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A compiled module, known by the keccak256 of its bytes.
#[derive(Clone)]
pub struct Program {
    module: Module,
    hash: Hash,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program").field("hash", &self.hash).finish()
    }
}

impl Program {
    /// The keccak256 of the module's bytes.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Whether the module exports a function named `name`.
    pub fn exports_function(&self, name: &str) -> bool {
        self.module
            .get_export(name)
            .is_some_and(|e| e.func().is_some())
    }
}

/// The engine every task runs on, configured for determinism. Cheap to
/// share; compiling a module is the costly part ([`Sandbox::compile`]).
#[derive(Clone)]
pub struct Sandbox {
    engine: Engine,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

/// The native stack a module may use (wasmtime's default).
const MAX_WASM_STACK: usize = 512 << 10;

impl Sandbox {
    /// The engine: fuel on, NaNs canonical, no relaxed SIMD, and no
    /// threads (wasmtime's `threads` feature is not compiled in, so shared
    /// memories and atomics fail validation).
    pub fn new() -> std::result::Result<Sandbox, Failure> {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .cranelift_nan_canonicalization(true)
            .wasm_relaxed_simd(false)
            .wasm_memory64(false)
            .max_wasm_stack(MAX_WASM_STACK);
        let engine = Engine::new(&config)
            .map_err(|e| Failure::new(FailureClass::InvalidModule, format!("engine: {e}")))?;
        Ok(Sandbox { engine })
    }

    /// Validates and compiles `wasm`. A module that does not validate
    /// (threads and relaxed SIMD included) or imports anything is an
    /// [`FailureClass::InvalidModule`] failure.
    pub fn compile(&self, wasm: &[u8]) -> std::result::Result<Program, Failure> {
        let hash = keccak256(wasm);
        let module = Module::new(&self.engine, wasm).map_err(|e| {
            Failure::new(
                FailureClass::InvalidModule,
                format!("the module does not validate: {e:#}"),
            )
        })?;
        if let Some(import) = module.imports().next() {
            return Err(Failure::new(
                FailureClass::InvalidModule,
                format!(
                    "the module imports `{}.{}`; tasks get nothing from the host \
                     (no WASI, no clock, no randomness: take a seed in the input)",
                    import.module(),
                    import.name()
                ),
            ));
        }
        Ok(Program { module, hash })
    }

    /// Runs a task: writes `input` into the module, calls `run`, reads the
    /// output. Never panics on anything the module does.
    pub fn run(&self, program: &Program, input: &Input, limits: &Limits) -> Outcome {
        let mut call = match Call::start(self, program, limits) {
            Ok(call) => call,
            Err(outcome) => return outcome,
        };
        let result = call.run_task(input.as_bytes(), limits.output_bytes);
        call.finish(result)
    }
}

/// What the store holds: the memory cap, and whether it was hit.
struct Cap {
    memory_bytes: usize,
    hit: bool,
}

impl ResourceLimiter for Cap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.hit = true;
            wasmtime::bail!(
                "the module asked for {desired} bytes of memory; the cap is {}",
                self.memory_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A table element is a pointer or two; bound tables like memory.
        Ok(desired.saturating_mul(16) <= self.memory_bytes)
    }
}

/// One instance, its store and the ABI's exports.
pub(crate) struct Call {
    store: Store<Cap>,
    instance: Instance,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    fuel: u64,
}

impl Call {
    /// Instantiates `program` under `limits` and finds `memory` and
    /// `funetun_alloc`.
    pub(crate) fn start(
        sandbox: &Sandbox,
        program: &Program,
        limits: &Limits,
    ) -> std::result::Result<Call, Outcome> {
        let mut store = Store::new(
            &sandbox.engine,
            Cap {
                memory_bytes: limits.memory_bytes,
                hit: false,
            },
        );
        store.limiter(|cap| cap);
        if let Err(e) = store.set_fuel(limits.fuel) {
            return Err(Outcome::failed(FailureClass::Trap, e.to_string(), 0));
        }
        let linker: Linker<Cap> = Linker::new(&sandbox.engine);
        let instance = match linker.instantiate(&mut store, &program.module) {
            Ok(instance) => instance,
            Err(e) => {
                let used = limits.fuel - store.get_fuel().unwrap_or(0);
                return Err(classify(&store, &e, used));
            }
        };
        let Some(memory) = instance.get_memory(&mut store, "memory") else {
            return Err(Outcome::failed(
                FailureClass::InvalidModule,
                "the module exports no `memory`",
                0,
            ));
        };
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "funetun_alloc")
            .map_err(|e| {
                Outcome::failed(
                    FailureClass::InvalidModule,
                    format!("the module exports no `funetun_alloc(i32) -> i32`: {e}"),
                    0,
                )
            })?;
        Ok(Call {
            store,
            instance,
            memory,
            alloc,
            fuel: limits.fuel,
        })
    }

    fn used(&self) -> u64 {
        self.fuel - self.store.get_fuel().unwrap_or(0)
    }

    /// The outcome of a call that returned `result`.
    pub(crate) fn finish(&self, result: std::result::Result<Vec<u8>, RunError>) -> Outcome {
        let used = self.used();
        match result {
            Ok(output) => Outcome {
                result: Ok(output),
                fuel_used: used,
            },
            Err(RunError::Wasm(e)) => classify(&self.store, &e, used),
            Err(RunError::Abi(class, detail)) => Outcome::failed(class, detail, used),
        }
    }

    /// Copies `bytes` into memory the module allocated; their address.
    pub(crate) fn put(&mut self, bytes: &[u8]) -> std::result::Result<i32, RunError> {
        let len = i32::try_from(bytes.len())
            .map_err(|_| RunError::Abi(FailureClass::Trap, "the input is too long".into()))?;
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .map_err(RunError::Wasm)?;
        let start = ptr as u32 as usize;
        self.memory
            .write(&mut self.store, start, bytes)
            .map_err(|_| {
                RunError::Abi(
                    FailureClass::Trap,
                    format!(
                        "`funetun_alloc({len})` returned {start:#x}, outside the module's memory"
                    ),
                )
            })?;
        Ok(ptr)
    }

    /// `len` bytes at `ptr` of the module's memory.
    pub(crate) fn read(&self, ptr: u32, len: u32) -> std::result::Result<Vec<u8>, RunError> {
        let mut out = vec![0u8; len as usize];
        self.memory
            .read(&self.store, ptr as usize, &mut out)
            .map_err(|_| {
                RunError::Abi(
                    FailureClass::Trap,
                    format!(
                        "the output at {ptr:#x} ({len} bytes) lies outside the module's memory"
                    ),
                )
            })?;
        Ok(out)
    }

    /// The typed export `name`, or an invalid-module error.
    pub(crate) fn func<P, R>(
        &mut self,
        name: &str,
    ) -> std::result::Result<TypedFunc<P, R>, RunError>
    where
        P: wasmtime::WasmParams,
        R: wasmtime::WasmResults,
    {
        self.instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .map_err(|e| {
                RunError::Abi(
                    FailureClass::InvalidModule,
                    format!("the module's export `{name}` is missing or has the wrong type: {e}"),
                )
            })
    }

    /// Calls `f` with `params`.
    pub(crate) fn call<P, R>(
        &mut self,
        f: &TypedFunc<P, R>,
        params: P,
    ) -> std::result::Result<R, RunError>
    where
        P: wasmtime::WasmParams,
        R: wasmtime::WasmResults,
    {
        f.call(&mut self.store, params).map_err(RunError::Wasm)
    }

    fn run_task(
        &mut self,
        input: &[u8],
        output_cap: usize,
    ) -> std::result::Result<Vec<u8>, RunError> {
        let run = self.func::<(i32, i32), i64>("run")?;
        let ptr = self.put(input)?;
        let len = input.len() as i32;
        let packed = self.call(&run, (ptr, len))? as u64;
        let (out_ptr, out_len) = ((packed >> 32) as u32, packed as u32);
        if out_len as usize > output_cap {
            return Err(RunError::Abi(
                FailureClass::OutputSize,
                format!("the output is {out_len} bytes; the cap is {output_cap}"),
            ));
        }
        let output = self.read(out_ptr, out_len)?;
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&output) {
            return Err(RunError::Abi(
                FailureClass::BadOutput,
                format!("the output is not UTF-8 JSON: {e}"),
            ));
        }
        Ok(output)
    }
}

/// Why a call into the module stopped.
pub(crate) enum RunError {
    /// wasmtime stopped it (a trap, fuel, the memory cap).
    Wasm(wasmtime::Error),
    /// The module broke the ABI.
    Abi(FailureClass, String),
}

fn classify(store: &Store<Cap>, e: &wasmtime::Error, used: u64) -> Outcome {
    if store.data().hit {
        return Outcome::failed(FailureClass::Memory, format!("{e:#}"), used);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::failed(
            FailureClass::Fuel,
            format!("used all {used} units of fuel"),
            used,
        ),
        Some(trap) => Outcome::failed(FailureClass::Trap, trap.to_string(), used),
        None => Outcome::failed(FailureClass::Trap, format!("{e:#}"), used),
    }
}
