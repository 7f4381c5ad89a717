//! The Funetun task ABI from inside a module (see the `funetun-compute`
//! crate's `sandbox` module for the host's side).
//!
//! A task is a function from a deserialisable input to a serialisable
//! output; [`task!`] exports it as `run`, with `funetun_alloc`:
//!
//! ```ignore
//! fn square(x: f64) -> Result<f64, String> { Ok(x * x) }
//! funetun_guest::task!(square);
//! ```
//!
//! An `Err` becomes the output `{"error": "…"}`: an answer, compared
//! between replicas like any other.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Leaks `len` bytes of memory and returns their address: where the host
/// writes an input or a validator's argument.
pub fn alloc(len: i32) -> i32 {
    let mut buf = Vec::<u8>::with_capacity(len.max(1) as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as usize as i32
}

/// The bytes the host wrote at `ptr`.
///
/// # Safety
/// `ptr..ptr + len` must be memory from [`alloc`] the host wrote.
pub unsafe fn bytes<'a>(ptr: i32, len: i32) -> &'a [u8] {
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
}

/// Leaks `output` and packs its address and length for the host.
pub fn hand_back(output: Vec<u8>) -> i64 {
    let output = output.into_boxed_slice();
    let len = output.len() as u64;
    let ptr = Box::leak(output).as_ptr() as usize as u64;
    ((ptr << 32) | len) as i64
}

/// Runs `f` on the input at `ptr` and hands back its output as JSON.
pub fn run<I, O>(ptr: i32, len: i32, f: fn(I) -> Result<O, String>) -> i64
where
    I: DeserializeOwned,
    O: Serialize,
{
    // SAFETY: the host wrote the input into memory from `funetun_alloc`.
    let input = unsafe { bytes(ptr, len) };
    let output = match serde_json::from_slice::<I>(input) {
        Ok(input) => match f(input) {
            Ok(output) => serde_json::to_vec(&output),
            Err(e) => serde_json::to_vec(&serde_json::json!({ "error": e })),
        },
        Err(e) => serde_json::to_vec(&serde_json::json!({ "error": format!("bad input: {e}") })),
    };
    hand_back(output.unwrap_or_else(|_| b"{\"error\":\"unserialisable output\"}".to_vec()))
}

/// Exports `funetun_alloc`.
#[macro_export]
macro_rules! abi {
    () => {
        /// Memory for the host to write into.
        #[unsafe(no_mangle)]
        pub extern "C" fn funetun_alloc(len: i32) -> i32 {
            $crate::alloc(len)
        }
    };
}

/// Exports `funetun_alloc` and `run` for the task function `f`.
#[macro_export]
macro_rules! task {
    ($f:path) => {
        $crate::abi!();

        /// The task's entry point.
        #[unsafe(no_mangle)]
        pub extern "C" fn run(ptr: i32, len: i32) -> i64 {
            $crate::run(ptr, len, $f)
        }
    };
}

/// A deterministic generator (SplitMix64): tasks take their randomness
/// from a seed in the input.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in [0, 1), 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
