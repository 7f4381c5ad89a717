//! How a job's rounds synchronise, and what every committed checkpoint was
//! built from (docs/sync.md).
//!
//! - [`SyncPolicy`]: `sync` (a round waits for every shard) or `stale:S`
//!   (trainers never wait: a round closes once `buffer` accepted updates
//!   are in, and an update trained on a checkpoint up to `S` rounds old
//!   still counts, scaled by [`staleness_weight`]).
//! - [`Manifest`]: the parent checkpoint, the accepted updates with their
//!   staleness and weights, the rule and the outer optimizer's states, in
//!   canonical JSON. Its keccak256 goes on-chain with the checkpoint, so
//!   anyone holding the blobs can rebuild the checkpoint and compare.
//!
//! ```
//! use funetun_core::sync::{SyncPolicy, staleness_weight};
//!
//! let policy: SyncPolicy = "stale:2".parse().unwrap();
//! assert_eq!(policy, SyncPolicy::Stale { max: 2 });
//! assert_eq!(policy.to_string(), "stale:2");
//! assert_eq!(staleness_weight(0, 0.5), 1.0);
//! assert_eq!(staleness_weight(3, 0.5), 0.5);
//! assert!("stale".parse::<SyncPolicy>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use alloy_primitives::{Address, U256};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{Hash, keccak256};
use crate::protocol::WordError;

/// Largest staleness bound a spec may ask for.
pub const MAX_STALENESS: u32 = 64;

/// How a job's rounds synchronise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// A round closes when every shard has an accepted update (or at its
    /// deadline); every update is trained on the round's own checkpoint.
    #[default]
    Sync,
    /// A round closes when the job's `buffer` accepted updates are in; an
    /// update trained on a checkpoint up to `max` rounds older than the
    /// open round is still taken, weighted by [`staleness_weight`].
    Stale {
        /// The staleness bound S.
        max: u32,
    },
}

impl SyncPolicy {
    /// Whether this is the synchronous default.
    pub fn is_sync(&self) -> bool {
        *self == SyncPolicy::Sync
    }

    /// The staleness bound: 0 for `sync`.
    pub fn max_staleness(&self) -> u32 {
        match self {
            SyncPolicy::Sync => 0,
            SyncPolicy::Stale { max } => *max,
        }
    }
}

impl FromStr for SyncPolicy {
    type Err = WordError;

    fn from_str(s: &str) -> Result<Self, WordError> {
        let bad = |detail: String| WordError {
            what: "sync policy",
            detail,
        };
        if s == "sync" {
            return Ok(SyncPolicy::Sync);
        }
        let Some(max) = s.strip_prefix("stale:") else {
            return Err(bad(format!(
                "`{s}`; choose sync or stale:S (S from 1 to {MAX_STALENESS})"
            )));
        };
        match max.parse::<u32>() {
            Ok(max @ 1..=MAX_STALENESS) => Ok(SyncPolicy::Stale { max }),
            _ => Err(bad(format!(
                "`{s}`: S must be a whole number from 1 to {MAX_STALENESS} (stale:0 is sync)"
            ))),
        }
    }
}

impl fmt::Display for SyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncPolicy::Sync => f.pad("sync"),
            SyncPolicy::Stale { max } => f.pad(&format!("stale:{max}")),
        }
    }
}

impl Serialize for SyncPolicy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SyncPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = std::borrow::Cow::<'de, str>::deserialize(d)?;
        word.parse().map_err(serde::de::Error::custom)
    }
}

/// The factor an update trained `staleness` rounds behind is scaled by
/// before aggregation: (1 + s)^−α, computed in f64 and rounded once to
/// f32 so every machine gets the same bits. 1 for a fresh update.
pub fn staleness_weight(staleness: u64, alpha: f32) -> f32 {
    if staleness == 0 || alpha == 0.0 {
        return 1.0;
    }
    (1.0 + staleness as f64).powf(-f64::from(alpha)) as f32
}

/// The factors a round's inputs are multiplied by before its rule, given
/// their staleness: [`staleness_weight`] of each, as FedBuff scales a
/// client's update by 1/√(1 + s) (α = 0.5; the default α is 1, see
/// [`crate::spec::DEFAULT_STALENESS_ALPHA`]). The scale is absolute, not
/// normalised over the round: a round made only of one-round-old deltas
/// takes a shorter step than a fresh one, which is what keeps stale
/// rounds from overshooting (measured in docs/sync.md). A fresh update's
/// factor is exactly 1, so a synchronous round merges as before, bit for
/// bit.
pub fn input_weights(staleness: &[u64], alpha: f32) -> Vec<f32> {
    staleness
        .iter()
        .map(|&s| staleness_weight(s, alpha))
        .collect()
}

/// Version of the manifest format.
pub const MANIFEST_VERSION: u32 = 1;

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// What checkpoint `round + 1` of a job was built from: recomputing it from
/// `parent`, the inputs' deltas (each scaled by its weight), `rule` and the
/// outer optimizer from `outer_state_in` gives `checkpoint` bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The on-chain job id.
    pub job: u64,
    /// The round aggregated: checkpoint `round + 1` is built on checkpoint
    /// `round`.
    pub round: u64,
    /// keccak256 of checkpoint `round`.
    pub parent: Hash,
    /// keccak256 of checkpoint `round + 1`, the result.
    pub checkpoint: Hash,
    /// The aggregation rule, as the spec names it (a rule that needs more
    /// inputs than there are falls back to `mean`, named here).
    pub rule: String,
    /// The outer optimizer, as the spec names it.
    pub outer_optimizer: String,
    /// The outer optimizer's state before this round (left by round − 1);
    /// none when it starts fresh or keeps no state.
    pub outer_state_in: Option<Hash>,
    /// The outer optimizer's state after this round.
    pub outer_state_out: Option<Hash>,
    /// The job's sync policy.
    pub sync: SyncPolicy,
    /// α of the staleness weight.
    pub staleness_alpha: f32,
    /// The accepted updates, in aggregation order.
    pub inputs: Vec<ManifestInput>,
}

/// One accepted update of a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestInput {
    /// Its on-chain index (`round << 160 | trainer`, the round it was
    /// submitted in), as 0x-hex.
    pub index: U256,
    /// Who trained it.
    pub trainer: Address,
    /// keccak256 of the delta.
    pub update: Hash,
    /// The checkpoint it was trained on.
    pub base_round: u64,
    /// keccak256 of that checkpoint.
    pub base: Hash,
    /// `round − base_round`.
    pub staleness: u64,
    /// Its factor among the round's [`input_weights`]: the delta is
    /// multiplied by this before the rule.
    pub weight: f32,
}

impl Manifest {
    /// The canonical bytes (compact JSON, fields in declaration order).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest serializes")
    }

    /// keccak256 of [`Manifest::to_bytes`], the hash committed on-chain.
    pub fn hash(&self) -> Hash {
        keccak256(self.to_bytes())
    }

    /// Parses a manifest and checks it is internally consistent: known
    /// version, at least one input, each input's staleness and weight
    /// what its rounds and α give.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError(format!(
                "{} bytes, more than {MAX_MANIFEST_BYTES}",
                bytes.len()
            )));
        }
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| ManifestError(format!("not a manifest: {e}")))?;
        m.check()?;
        Ok(m)
    }

    /// The consistency checks of [`Manifest::from_bytes`].
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.version != MANIFEST_VERSION {
            return Err(ManifestError(format!(
                "version {} (this build reads {MANIFEST_VERSION})",
                self.version
            )));
        }
        if self.inputs.is_empty() {
            return Err(ManifestError("no inputs".into()));
        }
        for (i, input) in self.inputs.iter().enumerate() {
            let staleness = self.round.checked_sub(input.base_round);
            if staleness != Some(input.staleness) {
                return Err(ManifestError(format!(
                    "input {i}: staleness {} but trained on round {} for round {}",
                    input.staleness, input.base_round, self.round
                )));
            }
        }
        let staleness: Vec<u64> = self.inputs.iter().map(|i| i.staleness).collect();
        let weights = input_weights(&staleness, self.staleness_alpha);
        for (i, (input, weight)) in self.inputs.iter().zip(weights).enumerate() {
            if input.weight.to_bits() != weight.to_bits() {
                return Err(ManifestError(format!(
                    "input {i}: weight {} but the round's staleness weights (α = {}) give it {weight}",
                    input.weight, self.staleness_alpha
                )));
            }
        }
        Ok(())
    }
}

/// A manifest that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("manifest: {0}")]
pub struct ManifestError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            job: 1,
            round: 3,
            parent: keccak256(b"c3"),
            checkpoint: keccak256(b"c4"),
            rule: "median".into(),
            outer_optimizer: "nesterov:0.7,0.9".into(),
            outer_state_in: Some(keccak256(b"s2")),
            outer_state_out: Some(keccak256(b"s3")),
            sync: SyncPolicy::Stale { max: 2 },
            staleness_alpha: 0.5,
            inputs: vec![
                ManifestInput {
                    index: U256::from(7),
                    trainer: Address::repeat_byte(1),
                    update: keccak256(b"d1"),
                    base_round: 3,
                    base: keccak256(b"c3"),
                    staleness: 0,
                    weight: input_weights(&[0, 2], 0.5)[0],
                },
                ManifestInput {
                    index: U256::from(8),
                    trainer: Address::repeat_byte(2),
                    update: keccak256(b"d2"),
                    base_round: 1,
                    base: keccak256(b"c1"),
                    staleness: 2,
                    weight: input_weights(&[0, 2], 0.5)[1],
                },
            ],
        }
    }

    #[test]
    fn a_manifest_round_trips_through_its_canonical_bytes() {
        let m = manifest();
        let bytes = m.to_bytes();
        let back = Manifest::from_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.hash(), keccak256(&bytes));
    }

    #[test]
    fn inconsistent_staleness_or_weight_is_refused() {
        let mut m = manifest();
        m.inputs[1].staleness = 1;
        let e = Manifest::from_bytes(&m.to_bytes()).unwrap_err();
        assert!(e.0.contains("input 1: staleness 1"), "{e}");
        let mut m = manifest();
        m.inputs[1].weight = 1.0;
        let e = Manifest::from_bytes(&m.to_bytes()).unwrap_err();
        assert!(e.0.contains("input 1: weight 1 "), "{e}");
        let mut m = manifest();
        m.inputs.clear();
        assert!(Manifest::from_bytes(&m.to_bytes()).is_err());
        assert!(Manifest::from_bytes(b"{}").is_err());
    }

    #[test]
    fn sync_policies_parse_and_print_as_their_words() {
        assert_eq!("sync".parse::<SyncPolicy>().unwrap(), SyncPolicy::Sync);
        assert_eq!(
            "stale:64".parse::<SyncPolicy>().unwrap(),
            SyncPolicy::Stale { max: 64 }
        );
        for bad in ["stale:0", "stale:65", "stale:-1", "async", "stale:x", ""] {
            let e = bad.parse::<SyncPolicy>().unwrap_err();
            assert!(e.to_string().contains("sync policy"), "{bad}: {e}");
        }
        assert_eq!(SyncPolicy::Stale { max: 3 }.to_string(), "stale:3");
        assert_eq!(SyncPolicy::Stale { max: 3 }.max_staleness(), 3);
    }

    #[test]
    fn round_weights_scale_each_input_by_its_own_staleness() {
        assert_eq!(input_weights(&[0, 0], 0.5), vec![1.0; 2]);
        assert_eq!(input_weights(&[0, 3], 0.0), vec![1.0; 2]);
        assert_eq!(input_weights(&[0, 1, 3], 1.0), vec![1.0, 0.5, 0.25]);
    }

    #[test]
    fn staleness_weights_decay_as_documented() {
        assert_eq!(staleness_weight(0, 2.0), 1.0);
        assert_eq!(staleness_weight(5, 0.0), 1.0);
        assert_eq!(staleness_weight(1, 1.0), 0.5);
        assert!((staleness_weight(2, 0.5) - 1.0 / 3f32.sqrt()).abs() < 1e-7);
    }
}
