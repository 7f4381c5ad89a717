//! The signed-request format: how a participant proves which address sent an
//! HTTP request to the orchestrator.
//!
//! The signer builds a message from the request —
//!
//! ```text
//! funetun-request-v1
//! {METHOD}
//! {path and query}
//! {keccak256(body) as 0x-hex}
//! {timestamp, unix seconds}
//! {nonce}
//! ```
//!
//! — and signs it with EIP-191 `personal_sign` (the `"\x19Ethereum Signed
//! Message:\n" + len` prefix, so a request signature can never be replayed as
//! a transaction). Four headers carry the claim: [`HEADER_ADDRESS`],
//! [`HEADER_TIMESTAMP`], [`HEADER_NONCE`], [`HEADER_SIGNATURE`]. The server
//! recomputes the message from what it received, recovers the address and
//! compares it with the claimed one; freshness (timestamp window) and nonce
//! reuse are the server's business.

use alloy_primitives::{Address, Signature, eip191_hash_message};
use alloy_signer_local::PrivateKeySigner;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, Secp256k1, SecretKey, SignOnly, VerifyOnly};

use crate::hash::{Hash, keccak256};

/// Header naming the address that signed the request.
pub const HEADER_ADDRESS: &str = "x-funetun-address";
/// Header with the request's unix time in seconds.
pub const HEADER_TIMESTAMP: &str = "x-funetun-timestamp";
/// Header with a fresh random nonce (8 to 64 characters of `[0-9a-zA-Z_-]`).
pub const HEADER_NONCE: &str = "x-funetun-nonce";
/// Header with the 65-byte signature as 0x-hex.
pub const HEADER_SIGNATURE: &str = "x-funetun-signature";

/// First line of every signed message; a new format gets a new tag.
pub const DOMAIN_TAG: &str = "funetun-request-v1";

/// Why a request's signature headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A header is absent.
    #[error("missing header `{0}`: sign the request (see docs/api.md)")]
    Missing(&'static str),
    /// A header is present but not in the expected form.
    #[error("malformed header `{header}`: {detail}")]
    Malformed {
        /// Which header.
        header: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The signature is valid but by another key than the claimed address.
    #[error("signature was made by {recovered}, not by the claimed {claimed}")]
    WrongSigner {
        /// The address in [`HEADER_ADDRESS`].
        claimed: Address,
        /// The address the signature recovers to.
        recovered: Address,
    },
}

/// The four signature headers of one request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAuth {
    /// The claimed signer.
    pub address: Address,
    /// Unix seconds at signing.
    pub timestamp: u64,
    /// Single-use nonce.
    pub nonce: String,
    /// The EIP-191 signature of [`signing_message`].
    pub signature: Signature,
}

impl RequestAuth {
    /// The headers as (name, value) pairs, ready to attach to a request.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (HEADER_ADDRESS, self.address.to_checksum(None)),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (
                HEADER_SIGNATURE,
                format!("0x{}", hex::encode(self.signature.as_bytes())),
            ),
        ]
    }

    /// Parses the four headers; `get` looks a header up by lower-case name.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, AuthError> {
        let need = |name: &'static str| get(name).ok_or(AuthError::Missing(name));
        let malformed =
            |header: &'static str, detail: String| AuthError::Malformed { header, detail };
        let address = need(HEADER_ADDRESS)?
            .trim()
            .parse::<Address>()
            .map_err(|e| malformed(HEADER_ADDRESS, format!("not an address: {e}")))?;
        let timestamp = need(HEADER_TIMESTAMP)?
            .trim()
            .parse::<u64>()
            .map_err(|e| malformed(HEADER_TIMESTAMP, format!("not unix seconds: {e}")))?;
        let nonce = need(HEADER_NONCE)?.trim().to_string();
        if !valid_nonce(&nonce) {
            return Err(malformed(
                HEADER_NONCE,
                "must be 8 to 64 characters of [0-9a-zA-Z_-]".into(),
            ));
        }
        let sig_hex = need(HEADER_SIGNATURE)?.trim();
        let bytes = hex::decode(sig_hex.strip_prefix("0x").unwrap_or(sig_hex))
            .map_err(|e| malformed(HEADER_SIGNATURE, format!("not hex: {e}")))?;
        let signature = Signature::try_from(bytes.as_slice())
            .map_err(|e| malformed(HEADER_SIGNATURE, format!("not a 65-byte signature: {e}")))?;
        Ok(Self {
            address,
            timestamp,
            nonce,
            signature,
        })
    }

    /// Checks that the signature covers this request and was made by
    /// `self.address`.
    pub fn verify(&self, method: &str, path_and_query: &str, body: &[u8]) -> Result<(), AuthError> {
        self.verify_hashed(method, path_and_query, keccak256(body))
    }

    /// [`verify`](Self::verify) for a body known by its keccak256 (a
    /// streamed upload whose hash is checked once it has arrived).
    pub fn verify_hashed(
        &self,
        method: &str,
        path_and_query: &str,
        body_hash: Hash,
    ) -> Result<(), AuthError> {
        let message = hashed_signing_message(
            method,
            path_and_query,
            body_hash,
            self.timestamp,
            &self.nonce,
        );
        let recovered = recover_address(&self.signature, &eip191_hash_message(message.as_bytes()))
            .map_err(|detail| AuthError::Malformed {
                header: HEADER_SIGNATURE,
                detail: format!("does not recover to an address: {detail}"),
            })?;
        if recovered != self.address {
            return Err(AuthError::WrongSigner {
                claimed: self.address,
                recovered,
            });
        }
        Ok(())
    }
}

/// The context of every recovery: verification tables only, built once.
static VERIFIER: std::sync::LazyLock<Secp256k1<VerifyOnly>> =
    std::sync::LazyLock::new(Secp256k1::verification_only);

/// The address whose key made `signature` over `prehash`.
///
/// The same answer as [`Signature::recover_address_from_prehash`] (the
/// signature's `s` normalised to the lower half first, as there), computed
/// by libsecp256k1, several times faster than the pure-Rust curve: it is
/// the largest single cost of a signed request.
pub fn recover_address(signature: &Signature, prehash: &Hash) -> Result<Address, String> {
    let signature = signature.normalized_s();
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&signature.r().to_be_bytes::<32>());
    compact[32..].copy_from_slice(&signature.s().to_be_bytes::<32>());
    let parity = if signature.v() {
        RecoveryId::One
    } else {
        RecoveryId::Zero
    };
    let recoverable =
        RecoverableSignature::from_compact(&compact, parity).map_err(|e| e.to_string())?;
    let key = VERIFIER
        .recover_ecdsa(Message::from_digest(prehash.0), &recoverable)
        .map_err(|e| e.to_string())?;
    Ok(Address::from_raw_public_key(
        &key.serialize_uncompressed()[1..],
    ))
}

/// The context of every signature: signing tables only, built once.
static SIGNER: std::sync::LazyLock<Secp256k1<SignOnly>> =
    std::sync::LazyLock::new(Secp256k1::signing_only);

/// `signer`'s signature of `prehash` made by libsecp256k1: the very bytes
/// alloy's pure-Rust signer makes (RFC 6979 nonces, low `s`), in a fraction
/// of the time.
fn sign_prehash(signer: &PrivateKeySigner, prehash: &Hash) -> Signature {
    // A signer's key is a valid secp256k1 scalar, which is all this checks.
    let key = SecretKey::from_byte_array(signer.to_bytes().0)
        .expect("a local secp256k1 key is a valid secret key");
    let signature = SIGNER.sign_ecdsa_recoverable(Message::from_digest(prehash.0), &key);
    let (parity, compact) = signature.serialize_compact();
    Signature::new(
        alloy_primitives::U256::from_be_slice(&compact[..32]),
        alloy_primitives::U256::from_be_slice(&compact[32..]),
        parity == RecoveryId::One,
    )
}

fn valid_nonce(nonce: &str) -> bool {
    (8..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The text that is signed for one request.
pub fn signing_message(
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
) -> String {
    hashed_signing_message(method, path_and_query, keccak256(body), timestamp, nonce)
}

/// The text that is signed for one request whose body hashes to `body_hash`.
pub fn hashed_signing_message(
    method: &str,
    path_and_query: &str,
    body_hash: Hash,
    timestamp: u64,
    nonce: &str,
) -> String {
    format!(
        "{DOMAIN_TAG}\n{}\n{path_and_query}\n{body_hash}\n{timestamp}\n{nonce}",
        method.to_ascii_uppercase(),
    )
}

/// Signs one request with `signer` at `timestamp` with `nonce`.
pub fn sign_request(
    signer: &PrivateKeySigner,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
) -> RequestAuth {
    sign_hashed_request(
        signer,
        method,
        path_and_query,
        keccak256(body),
        timestamp,
        nonce,
    )
}

/// Signs one request whose body hashes to `body_hash` (a streamed upload).
pub fn sign_hashed_request(
    signer: &PrivateKeySigner,
    method: &str,
    path_and_query: &str,
    body_hash: Hash,
    timestamp: u64,
    nonce: &str,
) -> RequestAuth {
    let message = hashed_signing_message(method, path_and_query, body_hash, timestamp, nonce);
    let prehash = eip191_hash_message(message.as_bytes());
    let signature = sign_prehash(signer, &prehash);
    RequestAuth {
        address: signer.address(),
        timestamp,
        nonce: nonce.to_string(),
        signature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer::SignerSync;

    fn key() -> PrivateKeySigner {
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
            .parse()
            .unwrap()
    }

    fn roundtrip(auth: &RequestAuth) -> RequestAuth {
        let headers = auth.headers();
        RequestAuth::from_headers(|name| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        })
        .unwrap()
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let auth = sign_request(
            &key(),
            "POST",
            "/v1/tasks",
            b"{\"job_id\":1}",
            1_700_000_000,
            "abcdef0123",
        );
        let parsed = roundtrip(&auth);
        assert_eq!(parsed, auth);
        parsed
            .verify("post", "/v1/tasks", b"{\"job_id\":1}")
            .unwrap();
        assert!(
            parsed
                .verify("POST", "/v1/tasks", b"{\"job_id\":2}")
                .is_err()
        );
        assert!(
            parsed
                .verify("PUT", "/v1/tasks", b"{\"job_id\":1}")
                .is_err()
        );
        assert!(
            parsed
                .verify("POST", "/v1/updates", b"{\"job_id\":1}")
                .is_err()
        );
        let mut later = parsed.clone();
        later.timestamp += 1;
        assert!(matches!(
            later.verify("POST", "/v1/tasks", b"{\"job_id\":1}"),
            Err(AuthError::WrongSigner { .. }) | Err(AuthError::Malformed { .. })
        ));
    }

    #[test]
    fn signing_and_recovery_agree_with_the_pure_rust_curve() {
        let signer = key();
        for i in 0..32u32 {
            let prehash = keccak256(i.to_be_bytes());
            let signature = signer.sign_hash_sync(&prehash).unwrap();
            // The same signature with s mirrored to the upper half and the
            // parity flipped: one that Ethereum refuses in transactions but
            // that recovers to the same key.
            let n = alloy_primitives::U256::from_be_slice(&[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c,
                0xd0, 0x36, 0x41, 0x41,
            ]);
            let high = Signature::new(signature.r(), n - signature.s(), !signature.v());
            for sig in [signature, high] {
                let expected = sig.recover_address_from_prehash(&prehash).unwrap();
                assert_eq!(expected, signer.address());
                assert_eq!(recover_address(&sig, &prehash).unwrap(), expected);
            }
            // A different message recovers to some other address, on both.
            let other = keccak256((i + 1000).to_be_bytes());
            assert_eq!(
                recover_address(&signature, &other).unwrap(),
                signature.recover_address_from_prehash(&other).unwrap()
            );
        }
        // Signing: the same bytes as alloy's signer, for many messages.
        for i in 0..32u32 {
            let prehash = keccak256(i.to_be_bytes());
            assert_eq!(
                sign_prehash(&signer, &prehash),
                signer.sign_hash_sync(&prehash).unwrap()
            );
        }
        let zero = Signature::new(
            alloy_primitives::U256::ZERO,
            alloy_primitives::U256::ZERO,
            false,
        );
        assert!(recover_address(&zero, &keccak256(b"x")).is_err());
    }

    #[test]
    fn a_claimed_address_that_did_not_sign_is_named() {
        let mut auth = sign_request(&key(), "GET", "/v1/jobs", b"", 5, "nonce-0001");
        auth.address = Address::repeat_byte(7);
        let err = auth.verify("GET", "/v1/jobs", b"").unwrap_err();
        assert!(matches!(err, AuthError::WrongSigner { .. }), "{err}");
    }

    #[test]
    fn malformed_headers_are_refused_with_the_header_name() {
        let auth = sign_request(&key(), "GET", "/", b"", 5, "nonce-0001");
        let headers = auth.headers();
        for (broken, value) in [
            (HEADER_ADDRESS, "0x12"),
            (HEADER_TIMESTAMP, "-1"),
            (HEADER_NONCE, "short"),
            (HEADER_NONCE, "has spaces in it"),
            (HEADER_SIGNATURE, "0xzz"),
            (HEADER_SIGNATURE, "0x1234"),
        ] {
            let err = RequestAuth::from_headers(|name| {
                if name == broken {
                    Some(value)
                } else {
                    headers
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.as_str())
                }
            })
            .unwrap_err();
            assert!(err.to_string().contains(broken), "{err}");
        }
        let err = RequestAuth::from_headers(|_| None).unwrap_err();
        assert_eq!(err, AuthError::Missing(HEADER_ADDRESS));
    }
}
