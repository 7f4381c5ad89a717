//! The IDX format of MNIST and Fashion-MNIST, gzip-compressed or raw.
//!
//! Header integers are big-endian u32: magic (`0x0803` for images,
//! `0x0801` for labels), count, then rows and columns for images.

use std::path::Path;

use crate::error::{Error, Result};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;
/// Decompressed files larger than this are refused (MNIST's largest is 47 MB).
#[cfg_attr(not(feature = "host"), allow(dead_code))]
const MAX_FILE_BYTES: u64 = 512 << 20;

/// Images from an IDX file: `count` images of `rows × cols` u8 pixels.
#[derive(Clone, Debug)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// Pixels, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        gunzip(&raw, path)
    } else {
        Ok(raw)
    }
}

/// Unpacks gzip data read from `path`, at most [`MAX_FILE_BYTES`] of it.
#[cfg(feature = "host")]
fn gunzip(raw: &[u8], path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::BadDataFile {
            path: path.to_path_buf(),
            problem: format!("corrupt or truncated gzip data: {e}"),
        })?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::BadDataFile {
            path: path.to_path_buf(),
            problem: format!("decompresses to more than {MAX_FILE_BYTES} bytes"),
        });
    }
    Ok(out)
}

/// Without the `host` feature there is no gzip reader.
#[cfg(not(feature = "host"))]
fn gunzip(_: &[u8], path: &Path) -> Result<Vec<u8>> {
    Err(Error::BadDataFile {
        path: path.to_path_buf(),
        problem: "gzip data, and this build reads plain files only (the `host` feature \
                  of funetun-ml reads gzip); unpack it with `gunzip`"
            .into(),
    })
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses an IDX image file's bytes; `path` only names the file in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages> {
    let bad = |problem: String| Error::BadDataFile {
        path: path.to_path_buf(),
        problem,
    };
    let header = |at| {
        be_u32(bytes, at)
            .ok_or_else(|| bad("file too short for an IDX image header (16 bytes)".into()))
    };
    let magic = header(0)?;
    if magic != IMAGES_MAGIC {
        return Err(bad(format!(
            "magic number {magic:#010x} is not an IDX image file ({IMAGES_MAGIC:#010x}); is this a label file?"
        )));
    }
    let (count, rows, cols) = (
        header(4)? as usize,
        header(8)? as usize,
        header(12)? as usize,
    );
    if rows == 0 || cols == 0 || rows > 4096 || cols > 4096 {
        return Err(bad(format!("implausible image size {rows}×{cols}")));
    }
    let expected = count
        .checked_mul(rows * cols)
        .and_then(|n| n.checked_add(16))
        .ok_or_else(|| bad(format!("count {count} overflows")))?;
    if bytes.len() != expected {
        return Err(bad(format!(
            "header promises {count} images of {rows}×{cols} ({expected} bytes) but the file has {} bytes{}",
            bytes.len(),
            if bytes.len() < expected {
                " (truncated?)"
            } else {
                ""
            }
        )));
    }
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: bytes[16..].to_vec(),
    })
}

/// Parses an IDX label file's bytes, checking every label is below `classes`.
pub fn parse_labels(bytes: &[u8], path: &Path, classes: u8) -> Result<Vec<u8>> {
    let bad = |problem: String| Error::BadDataFile {
        path: path.to_path_buf(),
        problem,
    };
    let header = |at| {
        be_u32(bytes, at)
            .ok_or_else(|| bad("file too short for an IDX label header (8 bytes)".into()))
    };
    let magic = header(0)?;
    if magic != LABELS_MAGIC {
        return Err(bad(format!(
            "magic number {magic:#010x} is not an IDX label file ({LABELS_MAGIC:#010x}); is this an image file?"
        )));
    }
    let count = header(4)? as usize;
    if bytes.len() != 8 + count {
        return Err(bad(format!(
            "header promises {count} labels but the file has {} bytes after the header{}",
            bytes.len() - 8,
            if bytes.len() < 8 + count {
                " (truncated?)"
            } else {
                ""
            }
        )));
    }
    let labels = bytes[8..].to_vec();
    if let Some(i) = labels.iter().position(|&l| l >= classes) {
        return Err(bad(format!(
            "label {} at index {i} is outside 0..{}",
            labels[i],
            classes - 1
        )));
    }
    Ok(labels)
}

/// Reads and parses an image file (gzip or raw).
pub fn read_images(path: &Path) -> Result<IdxImages> {
    parse_images(&read_maybe_gz(path)?, path)
}

/// Reads and parses a label file (gzip or raw).
pub fn read_labels(path: &Path, classes: u8) -> Result<Vec<u8>> {
    parse_labels(&read_maybe_gz(path)?, path, classes)
}

/// The bytes of an IDX image file (used by tests and the synthetic writer).
pub fn images_to_bytes(images: &IdxImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.pixels.len());
    for v in [
        IMAGES_MAGIC,
        images.count as u32,
        images.rows as u32,
        images.cols as u32,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    out
}

/// The bytes of an IDX label file.
pub fn labels_to_bytes(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}
