//! The owner's validator: optional `init_valid(result) -> bool` and
//! `compare_valid(a, b) -> bool`, exported by a WebAssembly module and run
//! in the same sandbox as tasks, each call on a fresh instance under
//! [`Limits::VALIDATOR`].
//!
//! They judge outputs only. A failure (a trap, fuel, …) is a result of its
//! own class: it is always "valid", and two failures are equivalent when
//! their classes are equal. A validator call that itself fails answers
//! "no": a result that makes the owner's `init_valid` trap is not valid,
//! and one that makes `compare_valid` trap matches nothing.

use crate::sandbox::{Call, Failure, FailureClass, Limits, Outcome, Program, RunError, Sandbox};

/// How replicas' results are judged: byte equality, or the owner's module.
#[derive(Clone, Debug, Default)]
pub struct Validator {
    module: Option<Owned>,
}

#[derive(Clone, Debug)]
struct Owned {
    program: Program,
    init: bool,
    compare: bool,
}

impl Validator {
    /// The default: every output is valid, and two are equivalent when
    /// their bytes are equal.
    pub fn exact() -> Validator {
        Validator::default()
    }

    /// Whether this is the default (byte equality, no module to run), so
    /// judging with it costs no sandbox call.
    pub fn is_exact(&self) -> bool {
        self.module.is_none()
    }

    /// The owner's module, compiled and checked: it must export `memory`,
    /// `funetun_alloc` and at least one of `init_valid(i32, i32) -> i32`
    /// and `compare_valid(i32, i32, i32, i32) -> i32`.
    pub fn from_wasm(sandbox: &Sandbox, wasm: &[u8]) -> Result<Validator, Failure> {
        let program = sandbox.compile(wasm)?;
        let init = program.exports_function("init_valid");
        let compare = program.exports_function("compare_valid");
        if !init && !compare {
            return Err(Failure {
                class: FailureClass::InvalidModule,
                detail: "a validator module exports `init_valid(ptr, len) -> i32`, \
                         `compare_valid(a_ptr, a_len, b_ptr, b_len) -> i32` or both; \
                         this one exports neither"
                    .into(),
            });
        }
        if !program.exports_function("funetun_alloc") {
            return Err(Failure {
                class: FailureClass::InvalidModule,
                detail: "a validator module exports `funetun_alloc(len) -> ptr`".into(),
            });
        }
        Ok(Validator {
            module: Some(Owned {
                program,
                init,
                compare,
            }),
        })
    }

    /// The owner's module's hash, if there is one.
    pub fn program_hash(&self) -> Option<funetun_core::Hash> {
        self.module.as_ref().map(|m| m.program.hash())
    }

    /// Whether `outcome` is a valid result: failures always are; an output
    /// is unless the owner's `init_valid` says no (or fails).
    pub fn init_valid(&self, sandbox: &Sandbox, outcome: &Outcome) -> bool {
        let (Some(owned), Ok(output)) = (&self.module, &outcome.result) else {
            return true;
        };
        if !owned.init {
            return true;
        }
        call_bool(sandbox, &owned.program, "init_valid", &[output])
    }

    /// Whether two results are equivalent: failures by class; outputs by the
    /// owner's `compare_valid`, else by their bytes.
    pub fn compare_valid(&self, sandbox: &Sandbox, a: &Outcome, b: &Outcome) -> bool {
        match (&a.result, &b.result) {
            (Err(fa), Err(fb)) => fa.class == fb.class,
            (Ok(oa), Ok(ob)) => match &self.module {
                Some(owned) if owned.compare => {
                    call_bool(sandbox, &owned.program, "compare_valid", &[oa, ob])
                }
                _ => oa == ob,
            },
            _ => false,
        }
    }
}

/// Calls the validator export `name` on fresh memory holding `args`; a
/// failure of any kind answers `false`.
fn call_bool(sandbox: &Sandbox, program: &Program, name: &str, args: &[&Vec<u8>]) -> bool {
    let Ok(mut call) = Call::start(sandbox, program, &Limits::VALIDATOR) else {
        return false;
    };
    let answer = (|| -> Result<i32, RunError> {
        let mut params = Vec::with_capacity(2 * args.len());
        for arg in args {
            let ptr = call.put(arg)?;
            params.push(ptr);
            params.push(arg.len() as i32);
        }
        match params[..] {
            [p, l] => {
                let f = call.func::<(i32, i32), i32>(name)?;
                call.call(&f, (p, l))
            }
            [pa, la, pb, lb] => {
                let f = call.func::<(i32, i32, i32, i32), i32>(name)?;
                call.call(&f, (pa, la, pb, lb))
            }
            _ => Err(RunError::Abi(FailureClass::InvalidModule, name.into())),
        }
    })();
    matches!(answer, Ok(v) if v != 0)
}
