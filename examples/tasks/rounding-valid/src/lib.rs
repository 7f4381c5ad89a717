//! The validator for `rounding`: a result is valid when it carries a finite
//! `sum`; two are equivalent when their sums agree to a relative 1e-9.

use serde::Deserialize;

#[derive(Deserialize)]
struct Output {
    sum: f64,
}

fn sum(bytes: &[u8]) -> Option<f64> {
    serde_json::from_slice::<Output>(bytes)
        .ok()
        .map(|o| o.sum)
        .filter(|s| s.is_finite())
}

funetun_guest::abi!();

/// Valid: a finite `sum`.
#[unsafe(no_mangle)]
pub extern "C" fn init_valid(ptr: i32, len: i32) -> i32 {
    // SAFETY: the host wrote the result into memory from `funetun_alloc`.
    let result = unsafe { funetun_guest::bytes(ptr, len) };
    sum(result).is_some() as i32
}

/// Equivalent: sums within a relative 1e-9 of each other.
#[unsafe(no_mangle)]
pub extern "C" fn compare_valid(a_ptr: i32, a_len: i32, b_ptr: i32, b_len: i32) -> i32 {
    // SAFETY: the host wrote both results into memory from `funetun_alloc`.
    let (a, b) = unsafe { (funetun_guest::bytes(a_ptr, a_len), funetun_guest::bytes(b_ptr, b_len)) };
    match (sum(a), sum(b)) {
        (Some(a), Some(b)) => ((a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)) as i32,
        _ => 0,
    }
}
