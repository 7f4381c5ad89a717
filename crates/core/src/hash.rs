//! keccak256, the hash the chain itself uses, for blobs and tensor files.

/// A 32-byte keccak256 digest.
pub type Hash = alloy_primitives::B256;

/// keccak256 of `bytes`.
pub fn keccak256(bytes: impl AsRef<[u8]>) -> Hash {
    alloy_primitives::keccak256(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_of_empty_input_is_the_known_constant() {
        assert_eq!(
            keccak256([]).to_string(),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }
}
