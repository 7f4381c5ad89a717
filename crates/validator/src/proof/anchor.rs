//! Anchoring a downloaded chain to the ledger: every checkpoint's bytes must
//! hash (keccak256) to the hash committed on-chain for its round. This runs
//! before any check, so a swapped or corrupted checkpoint is reported as
//! what it is rather than as a failed statistic.

use funetun_core::{Hash, keccak256};
use serde::Serialize;

/// A checkpoint that is not what the ledger committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum AnchorProblem {
    /// The ledger holds no hash for this round (zero).
    NotCommitted {
        /// The round.
        round: u64,
    },
    /// The bytes hash to something else than the committed hash.
    Mismatch {
        /// The round.
        round: u64,
        /// The hash committed on-chain.
        onchain: Hash,
        /// keccak256 of the downloaded bytes.
        downloaded: Hash,
    },
}

impl AnchorProblem {
    /// The round concerned.
    pub fn round(&self) -> u64 {
        match self {
            Self::NotCommitted { round } | Self::Mismatch { round, .. } => *round,
        }
    }
}

impl std::fmt::Display for AnchorProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotCommitted { round } => {
                write!(
                    f,
                    "checkpoint of round {round} has no hash committed on-chain"
                )
            }
            Self::Mismatch {
                round,
                onchain,
                downloaded,
            } => write!(
                f,
                "checkpoint of round {round} does not match the chain: committed {onchain}, \
                 downloaded bytes hash to {downloaded}"
            ),
        }
    }
}

/// Compares each `(round, bytes, on-chain hash)`; returns every problem, in
/// the order given (empty when all match).
pub fn check_anchors<'a>(
    checkpoints: impl IntoIterator<Item = (u64, &'a [u8], Hash)>,
) -> Vec<AnchorProblem> {
    checkpoints
        .into_iter()
        .filter_map(|(round, bytes, onchain)| {
            if onchain == Hash::ZERO {
                return Some(AnchorProblem::NotCommitted { round });
            }
            let downloaded = keccak256(bytes);
            (downloaded != onchain).then_some(AnchorProblem::Mismatch {
                round,
                onchain,
                downloaded,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use funetun_core::encode;
    use funetun_ml::ModelKind;

    #[test]
    fn matching_bytes_pass_and_others_are_named() {
        let c0 = encode(&ModelKind::Mlp.init(1));
        let c1 = encode(&ModelKind::Mlp.init(2));
        let (h0, h1) = (keccak256(&c0), keccak256(&c1));
        assert!(check_anchors([(0, c0.as_slice(), h0), (1, c1.as_slice(), h1)]).is_empty());

        // Round 1's bytes replaced by round 0's, and a flipped byte in round 0.
        let mut flipped = c0.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let problems = check_anchors([
            (0, flipped.as_slice(), h0),
            (1, c0.as_slice(), h1),
            (2, c1.as_slice(), Hash::ZERO),
        ]);
        assert_eq!(
            problems,
            vec![
                AnchorProblem::Mismatch {
                    round: 0,
                    onchain: h0,
                    downloaded: keccak256(&flipped)
                },
                AnchorProblem::Mismatch {
                    round: 1,
                    onchain: h1,
                    downloaded: h0
                },
                AnchorProblem::NotCommitted { round: 2 },
            ]
        );
        let text = problems[1].to_string();
        assert!(
            text.contains("round 1") && text.contains(&h1.to_string()),
            "{text}"
        );
        assert_eq!(problems[2].round(), 2);
    }
}
