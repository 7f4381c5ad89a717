//! Hostile and broken modules each end as a failure of their class, within
//! their limits, and never harm the host.

use funetun_compute::{FailureClass, Input, Sandbox};

use super::{SMALL, run_wat};

/// The ABI around a `run` body.
fn module(memory_pages: u32, run_body: &str) -> String {
    format!(
        r#"(module
             (memory (export "memory") {memory_pages})
             (data (i32.const 0) "{{\"ok\":1}}not json")
             (func (export "funetun_alloc") (param i32) (result i32) i32.const 1024)
             (func $deep (param i32) (result i32)
               local.get 0 i32.const 1 i32.add call $deep)
             (func (export "run") (param i32 i32) (result i64) {run_body}))"#
    )
}

fn class(wat: &str) -> FailureClass {
    let outcome = run_wat(wat, "{}", &SMALL);
    outcome.result.expect_err("a failure").class
}

#[test]
fn a_well_behaved_module_answers_its_json() {
    let outcome = run_wat(&module(1, "i64.const 8"), "{}", &SMALL);
    assert_eq!(outcome.result.unwrap(), br#"{"ok":1}"#);
    assert!(outcome.fuel_used > 0);
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let outcome = run_wat(&module(1, "(loop br 0) i64.const 0"), "{}", &SMALL);
    let failure = outcome.result.unwrap_err();
    assert_eq!(failure.class, FailureClass::Fuel);
    assert_eq!(outcome.fuel_used, SMALL.fuel);
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    // Grows by 1 MiB until refused, then traps on the refusal.
    let bomb = "(loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable";
    assert_eq!(class(&module(1, bomb)), FailureClass::Memory);
    // A module whose first memory is already over the cap.
    assert_eq!(class(&module(1024, "i64.const 8")), FailureClass::Memory);
}

#[test]
fn host_functions_are_not_given() {
    let wat = r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "funetun_alloc") (param i32) (result i32) i32.const 0)
        (func (export "run") (param i32 i32) (result i64) i64.const 0))"#;
    let outcome = run_wat(wat, "{}", &SMALL);
    let failure = outcome.result.unwrap_err();
    assert_eq!(failure.class, FailureClass::InvalidModule);
    assert!(failure.detail.contains("fd_write"), "{}", failure.detail);
}

#[test]
fn a_gigabyte_output_is_refused_without_being_read() {
    // Claims 1 GiB at address 0 of a 64 KiB memory.
    let outcome = run_wat(&module(1, "i64.const 1073741824"), "{}", &SMALL);
    assert_eq!(outcome.result.unwrap_err().class, FailureClass::OutputSize);
}

#[test]
fn broken_outputs_and_traps_are_failures() {
    // Bytes 8.. of the data are not JSON.
    let not_json = "i64.const 34359738376"; // (8 << 32) | 8
    assert_eq!(class(&module(1, not_json)), FailureClass::BadOutput);
    // An output past the end of memory.
    let outside = "i64.const 281470681743368"; // (65535 << 32) | 8
    assert_eq!(class(&module(1, outside)), FailureClass::Trap);
    assert_eq!(class(&module(1, "unreachable")), FailureClass::Trap);
    assert_eq!(
        class(&module(1, "i32.const 0 call $deep drop i64.const 8")),
        FailureClass::Trap
    );
}

#[test]
fn bad_modules_are_invalid() {
    let sandbox = Sandbox::new().unwrap();
    let not_wasm = sandbox.compile(b"hello").unwrap_err();
    assert_eq!(not_wasm.class, FailureClass::InvalidModule);
    // Threads (a shared memory) are refused at validation.
    let shared = wat::parse_str(r#"(module (memory (export "memory") 1 1 shared))"#).unwrap();
    assert_eq!(
        sandbox.compile(&shared).unwrap_err().class,
        FailureClass::InvalidModule
    );
    // The ABI's exports are checked.
    let no_run = r#"(module (memory (export "memory") 1)
        (func (export "funetun_alloc") (param i32) (result i32) i32.const 0))"#;
    assert_eq!(class(no_run), FailureClass::InvalidModule);
    let no_memory = r#"(module (func (export "run") (param i32 i32) (result i64) i64.const 0))"#;
    assert_eq!(class(no_memory), FailureClass::InvalidModule);
}

#[test]
fn nans_are_canonical() {
    // 0/0 is a negative NaN on x86 unless canonicalised; the module answers
    // 1 when it sees the canonical positive quiet NaN.
    let wat = r#"(module
        (memory (export "memory") 1)
        (data (i32.const 0) "10")
        (func (export "funetun_alloc") (param i32) (result i32) i32.const 1024)
        (func (export "run") (param i32 i32) (result i64)
          (i64.eq (i64.reinterpret_f64 (f64.div (f64.const 0) (f64.const 0)))
                  (i64.const 0x7ff8000000000000))
          if (result i64) i64.const 1 else i64.const 4294967297 end))"#;
    let outcome = run_wat(wat, "{}", &SMALL);
    assert_eq!(outcome.result.unwrap(), b"1");
}

#[test]
fn inputs_are_json_within_the_cap() {
    assert!(Input::new(b"{\"a\": 1}".to_vec()).is_ok());
    assert!(Input::new(b"{\"a\": ".to_vec()).is_err());
    assert!(Input::new(vec![b' '; funetun_compute::sandbox::MAX_INPUT_BYTES + 1]).is_err());
}

#[test]
fn failures_of_a_class_are_one_result() {
    let a = run_wat(&module(1, "unreachable"), "{}", &SMALL);
    let b = run_wat(
        &module(1, "i32.const 0 call $deep drop i64.const 8"),
        "{}",
        &SMALL,
    );
    assert_ne!(a.result, b.result, "different details");
    assert_eq!(a.digest(), b.digest());
    let fuel = run_wat(&module(1, "(loop br 0) i64.const 0"), "{}", &SMALL);
    assert_ne!(a.digest(), fuel.digest());
}

#[test]
fn the_shipped_hostile_example_ends_in_each_class() {
    let sandbox = Sandbox::new().unwrap();
    let hostile = funetun_compute::examples::example("hostile").unwrap();
    let program = sandbox.compile(hostile.wasm).unwrap();
    let limits = funetun_compute::Limits {
        fuel: 50_000_000,
        memory_bytes: 64 << 20,
        output_bytes: 1 << 20,
    };
    for (attack, expected) in [
        ("loop", FailureClass::Fuel),
        ("memory", FailureClass::Memory),
        ("output", FailureClass::OutputSize),
    ] {
        let input = Input::new(format!(r#"{{"attack": "{attack}"}}"#).into_bytes()).unwrap();
        let outcome = sandbox.run(&program, &input, &limits);
        let failure = outcome.result.expect_err(attack);
        assert_eq!(failure.class, expected, "{attack}: {}", failure.detail);
    }
    let input = Input::new(br#"{"attack": "none"}"#.to_vec()).unwrap();
    let output = sandbox.run(&program, &input, &limits).result.unwrap();
    assert!(
        String::from_utf8(output)
            .unwrap()
            .contains("unknown attack")
    );
}
