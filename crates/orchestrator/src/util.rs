//! Small conversions between chain types and their stored text forms.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256, U256};

use crate::error::{Error, Result};

/// Unix seconds now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An address as stored: lower-case 0x-hex.
pub fn addr_text(a: Address) -> String {
    format!("0x{}", hex::encode(a))
}

/// A hash as stored: lower-case 0x-hex.
pub fn hash_text(h: B256) -> String {
    format!("0x{}", hex::encode(h))
}

/// An update index as stored: 0x-hex of the U256.
pub fn index_text(i: U256) -> String {
    format!("{i:#x}")
}

/// Parses a stored address.
pub fn parse_addr(s: &str) -> Result<Address> {
    Address::from_str(s).map_err(|e| Error::Inconsistent(format!("stored address `{s}`: {e}")))
}

/// Parses a stored hash.
pub fn parse_hash(s: &str) -> Result<B256> {
    B256::from_str(s).map_err(|e| Error::Inconsistent(format!("stored hash `{s}`: {e}")))
}

/// Parses a stored update index.
pub fn parse_index(s: &str) -> Result<U256> {
    U256::from_str(s).map_err(|e| Error::Inconsistent(format!("stored index `{s}`: {e}")))
}

/// Parses a stored protocol word (a status, a mode).
pub fn parse_word<T: FromStr<Err = funetun_core::WordError>>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|e: funetun_core::WordError| Error::Inconsistent(format!("stored word: {e}")))
}

/// Parses a stored decimal amount of wei (garbage reads as zero).
pub fn parse_wei(s: &str) -> U256 {
    U256::from_str_radix(s, 10).unwrap_or_default()
}

/// `a + b` of two stored decimal amounts.
pub fn add_wei(a: &str, b: U256) -> String {
    parse_wei(a).saturating_add(b).to_string()
}

/// `a − b` of stored decimal amounts, floored at zero.
pub fn sub_wei(a: &str, b: U256) -> String {
    parse_wei(a).saturating_sub(b).to_string()
}

/// A u64 stored in SQLite's signed 64-bit integer (bit pattern kept).
pub fn u64_to_db(v: u64) -> i64 {
    v as i64
}

/// The u64 back from its stored bit pattern.
pub fn u64_from_db(v: i64) -> u64 {
    v as u64
}

/// A short label for an address: `0x1234…abcd`.
pub fn short(a: Address) -> String {
    let t = addr_text(a);
    format!("{}…{}", &t[..6], &t[t.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_forms_round_trip() {
        let a = Address::repeat_byte(0xab);
        assert_eq!(parse_addr(&addr_text(a)).unwrap(), a);
        let h = B256::repeat_byte(0xcd);
        assert_eq!(parse_hash(&hash_text(h)).unwrap(), h);
        let i = (U256::from(3u64) << 160) | U256::from(5u64);
        assert_eq!(parse_index(&index_text(i)).unwrap(), i);
        assert_eq!(add_wei("5", U256::from(7u64)), "12");
        assert_eq!(sub_wei("5", U256::from(7u64)), "0");
        assert_eq!(u64_from_db(u64_to_db(u64::MAX)), u64::MAX);
        assert_eq!(short(a), "0xabab…abab");
    }
}
