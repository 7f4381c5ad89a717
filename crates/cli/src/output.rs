//! Shared output helpers: every reporting command can end with one JSON line.

use serde::Serialize;

/// Prints `value` as one compact JSON object on its own stdout line.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file renamed into place,
/// so readers never see a half-written file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    funetun_core::blobs::write_atomic(&tmp, path, bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
