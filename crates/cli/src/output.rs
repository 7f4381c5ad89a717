//! Shared output helpers: every reporting command can end with one JSON line.

use serde::Serialize;

/// Prints `value` as one compact JSON object on its own stdout line.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
