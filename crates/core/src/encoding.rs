//! The canonical byte form of a [`TensorSet`]: one safetensors file.
//!
//! Canonical means the same weights always give the same bytes, hence the
//! same keccak256:
//!
//! - an 8-byte little-endian header length, then a JSON header, then the data;
//! - the header lists tensors in byte order of their names, each as
//!   `"name":{"dtype":"F32","shape":[..],"data_offsets":[begin,end]}`, with no
//!   whitespace and no `__metadata__`, padded with spaces to a multiple of 8;
//! - the data is every tensor's f32 values, little-endian, in the same order,
//!   back to back with no gaps.
//!
//! Any safetensors reader loads these files. [`decode`] is strict: it accepts
//! exactly the bytes [`encode`] produces for some finite tensors, and says
//! what is wrong with anything else.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::tensors::{Tensor, TensorSet, element_count};

/// Bounds on what [`decode`] accepts, so a hostile file cannot exhaust memory.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Largest accepted file, in bytes.
    pub max_bytes: usize,
    /// Largest accepted JSON header, in bytes.
    pub max_header_bytes: usize,
}

impl Default for DecodeLimits {
    /// 1 GiB files with headers up to 1 MiB.
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            max_header_bytes: 1 << 20,
        }
    }
}

impl DecodeLimits {
    /// Limits that fit a model of `num_params` f32 parameters in `num_tensors`
    /// tensors, with room for the header.
    pub fn for_model(num_params: usize, num_tensors: usize) -> Self {
        let max_header_bytes = 4096 + 256 * num_tensors;
        Self {
            max_bytes: 8 + max_header_bytes + 4 * num_params,
            max_header_bytes,
        }
    }
}

/// The canonical safetensors bytes of `set`.
pub fn encode(set: &TensorSet) -> Vec<u8> {
    let header = header_json(set);
    let mut out = Vec::with_capacity(8 + header.len() + 4 * set.num_params());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, t) in set.iter() {
        for v in &t.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn header_json(set: &TensorSet) -> String {
    let mut h = String::from("{");
    let mut offset = 0usize;
    for (i, (name, t)) in set.iter().enumerate() {
        if i > 0 {
            h.push(',');
        }
        let end = offset + 4 * t.len();
        let shape = t
            .shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // serde_json never fails on a plain string.
        let key = serde_json::to_string(name).unwrap_or_default();
        let _ = write!(
            h,
            "{key}:{{\"dtype\":\"F32\",\"shape\":[{shape}],\"data_offsets\":[{offset},{end}]}}"
        );
        offset = end;
    }
    h.push('}');
    while !h.len().is_multiple_of(8) {
        h.push(' ');
    }
    h
}

/// Decodes canonical safetensors bytes, rejecting anything else with a
/// message that names the problem.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<TensorSet> {
    let bad = |msg: String| Error::Encoding(msg);
    if bytes.len() > limits.max_bytes {
        return Err(bad(format!(
            "file is {} bytes, more than the limit of {} bytes",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(bad(format!(
            "file is {} bytes, too short for the 8-byte header length",
            bytes.len()
        )));
    };
    let header_len = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8]));
    if header_len > limits.max_header_bytes as u64 {
        return Err(bad(format!(
            "header length {header_len} exceeds the limit of {} bytes",
            limits.max_header_bytes
        )));
    }
    let header_end = 8 + header_len as usize;
    let Some(header) = bytes.get(8..header_end) else {
        return Err(bad(format!(
            "header length {header_len} runs past the end of a {}-byte file (truncated?)",
            bytes.len()
        )));
    };
    let data = &bytes[header_end..];
    let header =
        std::str::from_utf8(header).map_err(|e| bad(format!("header is not UTF-8: {e}")))?;
    let entries: BTreeMap<String, Value> = serde_json::from_str(header.trim_end_matches(' '))
        .map_err(|e| bad(format!("header is not a JSON object of tensors: {e}")))?;

    let mut set = TensorSet::new();
    let mut expected_begin = 0u64;
    for (name, entry) in &entries {
        if name == "__metadata__" {
            return Err(bad("free-form `__metadata__` is not allowed".into()));
        }
        let (shape, begin, end) = parse_entry(name, entry)?;
        if begin != expected_begin {
            return Err(bad(format!(
                "tensor `{name}` data starts at byte {begin}, expected {expected_begin}: \
                 offsets overlap, leave gaps or are out of name order"
            )));
        }
        if end > data.len() as u64 {
            return Err(bad(format!(
                "tensor `{name}` data ends at byte {end}, past the {}-byte data section \
                 (truncated file?)",
                data.len()
            )));
        }
        let count = element_count(&shape)
            .ok_or_else(|| bad(format!("tensor `{name}` shape {shape:?} overflows")))?;
        if (end - begin) != 4 * count as u64 {
            return Err(bad(format!(
                "tensor `{name}` has shape {shape:?} ({count} f32 values) but {} data bytes",
                end - begin
            )));
        }
        let raw = &data[begin as usize..end as usize];
        let values: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                name: name.clone(),
                index,
            });
        }
        set.insert(
            name.clone(),
            Tensor {
                shape,
                data: values,
            },
        );
        expected_begin = end;
    }
    if expected_begin != data.len() as u64 {
        return Err(bad(format!(
            "{} bytes of data follow the last tensor",
            data.len() as u64 - expected_begin
        )));
    }
    if header_json(&set).as_bytes() != &bytes[8..header_end] {
        return Err(bad(
            "header is valid safetensors but not canonical (expected names in byte order, \
             no whitespace, fields dtype/shape/data_offsets, space padding to 8 bytes)"
                .into(),
        ));
    }
    Ok(set)
}

/// Decodes like [`decode`] and checks the result has `layout`'s names and shapes.
pub fn decode_with_layout(
    bytes: &[u8],
    limits: &DecodeLimits,
    layout: &TensorSet,
) -> Result<TensorSet> {
    let set = decode(bytes, limits)?;
    layout.check_same_layout(&set)?;
    Ok(set)
}

fn parse_entry(name: &str, entry: &Value) -> Result<(Vec<usize>, u64, u64)> {
    let bad = |msg: String| Error::Encoding(format!("tensor `{name}`: {msg}"));
    let obj = entry
        .as_object()
        .ok_or_else(|| bad("entry is not a JSON object".into()))?;
    if let Some(extra) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "dtype" | "shape" | "data_offsets"))
    {
        return Err(bad(format!("unexpected field `{extra}`")));
    }
    match obj.get("dtype").and_then(Value::as_str) {
        Some("F32") => {}
        Some(other) => return Err(bad(format!("dtype {other} is not accepted, only F32"))),
        None => return Err(bad("missing string field `dtype`".into())),
    }
    let shape = obj
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing array field `shape`".into()))?
        .iter()
        .map(|d| {
            d.as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or_else(|| bad(format!("shape entry {d} is not a non-negative integer")))
        })
        .collect::<Result<Vec<usize>>>()?;
    let offsets = obj
        .get("data_offsets")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing array field `data_offsets`".into()))?;
    let (begin, end) = match offsets.as_slice() {
        [b, e] => (
            b.as_u64()
                .ok_or_else(|| bad("data_offsets are not integers".into()))?,
            e.as_u64()
                .ok_or_else(|| bad("data_offsets are not integers".into()))?,
        ),
        _ => return Err(bad("data_offsets must hold exactly [begin, end]".into())),
    };
    if begin > end {
        return Err(bad(format!("data_offsets [{begin}, {end}] run backwards")));
    }
    Ok((shape, begin, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TensorSet {
        let mut s = TensorSet::new();
        s.insert(
            "fc2.weight",
            Tensor::new(vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, -0.0, 1e-30]).unwrap(),
        );
        s.insert(
            "fc1.bias",
            Tensor::new(vec![3], vec![0.25, 0.5, 0.75]).unwrap(),
        );
        s.insert("scalar", Tensor::new(vec![], vec![7.0]).unwrap());
        s
    }

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    /// Rebuilds a file from a header string and raw data bytes.
    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn expect_err(bytes: &[u8], needle: &str) {
        match decode(bytes, &limits()) {
            Err(e) => assert!(
                e.to_string().contains(needle),
                "error `{e}` should mention `{needle}`"
            ),
            Ok(_) => panic!("decoding should fail with `{needle}`"),
        }
    }

    #[test]
    fn round_trip_is_exact_and_header_aligned() {
        let s = sample();
        let bytes = encode(&s);
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        let back = decode(&bytes, &limits()).unwrap();
        assert_eq!(back, s);
        assert_eq!(encode(&back), bytes);
        // -0.0 keeps its sign bit through the round trip.
        assert!(back.get("fc2.weight").unwrap().data[4].is_sign_negative());
    }

    #[test]
    fn bytes_match_the_reference_safetensors_writer() {
        let s = sample();
        let raw: Vec<(String, Vec<u8>, Vec<usize>)> = s
            .iter()
            .map(|(n, t)| {
                let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (n.to_string(), b, t.shape.clone())
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = raw
            .iter()
            .map(|(n, b, shape)| {
                let view =
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                        .unwrap();
                (n.clone(), view)
            })
            .collect();
        let reference = safetensors::serialize(views, None).unwrap();
        assert_eq!(encode(&s), reference);
    }

    #[test]
    fn empty_set_round_trips() {
        let bytes = encode(&TensorSet::new());
        assert_eq!(decode(&bytes, &limits()).unwrap(), TensorSet::new());
    }

    #[test]
    fn rejects_short_and_truncated_files() {
        expect_err(&[1, 2, 3], "too short");
        let bytes = encode(&sample());
        expect_err(&bytes[..20], "past the end");
        expect_err(&bytes[..bytes.len() - 4], "past the");
    }

    #[test]
    fn rejects_oversize_files_and_headers() {
        let bytes = encode(&sample());
        let tight = DecodeLimits {
            max_bytes: bytes.len() - 1,
            ..limits()
        };
        assert!(
            decode(&bytes, &tight)
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&(u64::MAX).to_le_bytes());
        expect_err(&huge, "exceeds the limit");
    }

    #[test]
    fn rejects_malformed_headers() {
        expect_err(&file("not json", &[]), "not a JSON object");
        expect_err(&file("[1,2,3] ", &[]), "not a JSON object");
        expect_err(&file("{\"a\":5}", &[]), "not a JSON object");
        expect_err(&file("{\"a\":[1]}  ", &[]), "not a JSON object");
        let mut not_utf8 = 8u64.to_le_bytes().to_vec();
        not_utf8.extend_from_slice(&[0xff; 8]);
        expect_err(&not_utf8, "not UTF-8");
        expect_err(
            &file(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}",
                &[0; 4],
            ),
            "unexpected field",
        );
        expect_err(
            &file(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
                &[0; 4],
            ),
            "non-negative",
        );
        expect_err(
            &file(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
                &[0; 4],
            ),
            "exactly",
        );
    }

    #[test]
    fn rejects_metadata_and_other_dtypes() {
        expect_err(
            &file("{\"__metadata__\":{\"k\":\"v\"}}", &[]),
            "__metadata__",
        );
        expect_err(
            &file(
                "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                &[0; 4],
            ),
            "only F32",
        );
    }

    #[test]
    fn rejects_overlapping_gapped_and_out_of_range_offsets() {
        let two = |a: (u64, u64), b: (u64, u64), data: usize| {
            file(
                &format!(
                    "{{\"a\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[{},{}]}},\
                     \"b\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[{},{}]}}}}",
                    a.0, a.1, b.0, b.1
                ),
                &vec![0; data],
            )
        };
        expect_err(&two((0, 4), (0, 4), 8), "overlap");
        expect_err(&two((0, 4), (8, 12), 12), "overlap");
        expect_err(&two((4, 8), (0, 4), 8), "overlap");
        expect_err(&two((0, 4), (4, 12), 12), "data bytes");
        expect_err(&two((0, 4), (4, 8), 4), "past the");
        expect_err(&two((0, 4), (4, 8), 12), "follow the last tensor");
        expect_err(&two((4, 0), (4, 8), 8), "backwards");
    }

    #[test]
    fn rejects_non_canonical_headers() {
        let s = sample();
        let bytes = encode(&s);
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        // Same content, pretty-printed: valid safetensors, not canonical.
        let pretty = header.trim_end().replacen("{\"", "{ \"", 1);
        let mut padded = pretty.clone();
        while !padded.len().is_multiple_of(8) {
            padded.push(' ');
        }
        expect_err(&file(&padded, &bytes[8 + header_len..]), "not canonical");
    }

    #[test]
    fn rejects_nan_and_infinity() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut s = sample();
            s.get_mut("fc1.bias").unwrap().data[2] = bad;
            match decode(&encode(&s), &limits()) {
                Err(Error::NonFinite { name, index }) => {
                    assert_eq!((name.as_str(), index), ("fc1.bias", 2))
                }
                other => panic!("expected NonFinite, got {other:?}"),
            }
        }
    }

    #[test]
    fn layout_mismatches_are_named() {
        let s = sample();
        let mut other = sample();
        other.insert("fc1.bias", Tensor::zeros(vec![4]));
        let err = decode_with_layout(&encode(&other), &limits(), &s).unwrap_err();
        assert!(err.to_string().contains("fc1.bias"), "{err}");
        assert!(decode_with_layout(&encode(&s), &limits(), &s).is_ok());
    }
}
