//! Keys: the dev accounts of the standard test mnemonic (the same accounts anvil and
//! hardhat prefund) and fresh random keys.

use alloy::primitives::{Address, B256};
use alloy::signers::local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};
use serde::Serialize;

use crate::error::{ChainError, Result};

/// The standard test mnemonic. Its keys are public: never hold real funds with them.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// A prefunded dev account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevAccount {
    /// The account's address.
    pub address: Address,
    /// Its private key.
    pub private_key: B256,
}

impl DevAccount {
    /// A signer for this account.
    pub fn signer(&self) -> PrivateKeySigner {
        // A key derived from the mnemonic is always a valid secp256k1 scalar.
        PrivateKeySigner::from_bytes(&self.private_key).expect("derived key is valid")
    }
}

/// The first `count` accounts of [`DEV_MNEMONIC`] (path `m/44'/60'/0'/0/i`).
pub fn dev_accounts(count: usize) -> Vec<DevAccount> {
    (0..count)
        .map(|i| {
            let signer = MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(i as u32)
                .expect("index is a valid derivation step")
                .build()
                .expect("the test mnemonic derives");
            DevAccount {
                address: signer.address(),
                private_key: signer.to_bytes(),
            }
        })
        .collect()
}

/// A fresh random key.
pub fn new_key() -> PrivateKeySigner {
    PrivateKeySigner::random()
}

/// Parses a hex private key (with or without `0x`).
pub fn parse_key(text: &str) -> Result<PrivateKeySigner> {
    text.trim()
        .parse::<PrivateKeySigner>()
        .map_err(|e| ChainError::InvalidKey(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_dev_account_is_the_well_known_one() {
        let accounts = dev_accounts(2);
        assert_eq!(
            accounts[0].address,
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
                .parse::<Address>()
                .unwrap()
        );
        assert_eq!(
            accounts[1].address,
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse::<Address>()
                .unwrap()
        );
        assert_eq!(accounts[0].signer().address(), accounts[0].address);
    }

    #[test]
    fn parse_key_rejects_garbage() {
        assert!(parse_key("0x1234").is_err());
        let key = new_key();
        let text = format!("0x{}", hex::encode(key.to_bytes()));
        assert_eq!(parse_key(&text).unwrap().address(), key.address());
    }
}
