//! Ether amounts as people write them (`1.5eth`, `20gwei`, `1000wei`) and as
//! JSON carries them (decimal strings of wei: JSON numbers cannot hold a
//! U256 exactly).

use alloy_primitives::U256;

/// Parses `"<number><unit>"` with unit `eth`, `gwei` or `wei` (a bare
/// integer is wei) into wei. Fractions finer than one wei are refused.
pub fn parse_amount(text: &str) -> Result<U256, String> {
    let t = text.trim().to_ascii_lowercase();
    let (number, decimals) = if let Some(n) = t.strip_suffix("gwei") {
        (n, 9)
    } else if let Some(n) = t.strip_suffix("wei") {
        (n, 0)
    } else if let Some(n) = t.strip_suffix("eth").or_else(|| t.strip_suffix("ether")) {
        (n, 18)
    } else {
        (t.as_str(), 0)
    };
    let number = number.trim();
    let bad = || format!("`{text}` is not an amount: write e.g. `1.5eth`, `20gwei` or `1000wei`");
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > decimals {
        return Err(format!("`{text}` has more decimals than one wei"));
    }
    let digits = format!("{int}{frac}{}", "0".repeat(decimals - frac.len()));
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(digits, 10).map_err(|_| format!("`{text}` is too large"))
}

/// Formats wei as ether with up to 6 decimals, e.g. `1.25 ETH`.
pub fn format_eth(wei: U256) -> String {
    let unit = U256::from(10u64).pow(U256::from(18));
    let whole = wei / unit;
    let micro = (wei % unit) / U256::from(1_000_000_000_000u64);
    let micro = format!("{micro:0>6}");
    let micro = micro.trim_end_matches('0');
    if micro.is_empty() {
        format!("{whole} ETH")
    } else {
        format!("{whole}.{micro} ETH")
    }
}

/// Serde for a U256 as a decimal string of wei (`"1500000000000000000"`);
/// reading also accepts a JSON integer.
pub mod wei {
    use alloy_primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes the decimal string.
    pub fn serialize<S: Serializer>(value: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    /// Reads a decimal string or a JSON integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Text(String),
            Int(u64),
        }
        match Wire::deserialize(d)? {
            Wire::Int(v) => Ok(U256::from(v)),
            Wire::Text(t) => U256::from_str_radix(t.trim(), 10)
                .map_err(|_| D::Error::custom(format!("`{t}` is not a decimal amount of wei"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_in_every_unit() {
        let eth = U256::from(10u64).pow(U256::from(18));
        assert_eq!(
            parse_amount("1.5eth").unwrap(),
            eth * U256::from(3) / U256::from(2)
        );
        assert_eq!(parse_amount(" 2 ETH ").unwrap(), eth * U256::from(2));
        assert_eq!(
            parse_amount("20gwei").unwrap(),
            U256::from(20_000_000_000u64)
        );
        assert_eq!(parse_amount("1000wei").unwrap(), U256::from(1000));
        assert_eq!(parse_amount("1000").unwrap(), U256::from(1000));
        assert_eq!(
            parse_amount("0.001eth").unwrap(),
            U256::from(1_000_000_000_000_000u64)
        );
        assert_eq!(parse_amount("0eth").unwrap(), U256::ZERO);
        for bad in ["", "eth", "1.2.3eth", "-1eth", "1e18", "0.5wei", "abc"] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn eth_formats_with_trimmed_decimals() {
        assert_eq!(format_eth(parse_amount("1.25eth").unwrap()), "1.25 ETH");
        assert_eq!(format_eth(U256::ZERO), "0 ETH");
        assert_eq!(format_eth(parse_amount("3eth").unwrap()), "3 ETH");
    }
}
