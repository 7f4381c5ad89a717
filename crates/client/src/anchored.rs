//! A job's checkpoints, downloaded from the orchestrator and anchored to the
//! ledger: every checkpoint's bytes must hash (keccak256) to the hash
//! committed on-chain for its round. Proof of training runs this before any
//! check, so a swapped or corrupted checkpoint is reported as what it is
//! rather than as a failed statistic; `funetun job download` and the demo
//! use it for the checkpoints they write.
//!
//! [`fetch_checkpoints`] downloads what the orchestrator *lists* for each
//! round (the on-chain hash where it lists none) and compares it with what
//! the chain committed, so an orchestrator that serves or lists a wrong
//! checkpoint is named in an [`AnchorProblem`].

use alloy_primitives::U256;
use funetun_chain::Ledger;
use funetun_chain::bindings::job_status;
use funetun_core::api::RoundInfo;
use funetun_core::{Hash, keccak256};
use serde::Serialize;

use crate::{Client, ClientError};

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

/// Which checkpoints of a job to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// θ₀ and every round's result, in round order.
    All,
    /// Only the newest committed checkpoint.
    Latest,
}

/// One checkpoint whose bytes hash to its on-chain hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchored {
    /// Checkpoint number: 0 is θ₀, t+1 is round t's result.
    pub round: u64,
    /// The hash committed on-chain (= keccak256 of `bytes`).
    pub hash: Hash,
    /// The canonical tensor file.
    pub bytes: Vec<u8>,
}

/// Why a job's checkpoints could not be fetched at all.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The job is not on the ledger.
    #[error("job {job} does not exist on the JobManager at {contract}")]
    NoSuchJob {
        /// The job asked for.
        job: u64,
        /// The contract asked.
        contract: alloy_primitives::Address,
    },
    /// The job has committed no checkpoint yet.
    #[error("job {job} has no committed checkpoint yet")]
    NothingCommitted {
        /// The job.
        job: u64,
    },
    /// Reading the ledger failed.
    #[error(transparent)]
    Chain(#[from] funetun_chain::ChainError),
    /// Talking to the orchestrator failed.
    #[error("{context}: {source}")]
    Orchestrator {
        /// What was being fetched.
        context: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
}

/// Downloads the `which` checkpoints of `job` and anchors each to the ledger.
/// `Ok(Err(problems))` when some checkpoint is not what the chain committed;
/// an `Err` when nothing could be compared (no such job, an unreachable
/// orchestrator, a failing RPC).
pub async fn fetch_checkpoints(
    client: &Client,
    ledger: &Ledger,
    job: u64,
    which: Which,
) -> Result<Result<Vec<Anchored>, Vec<AnchorProblem>>, FetchError> {
    let id = U256::from(job);
    let view = ledger.job(id).await?;
    if view.status == job_status::NONE {
        return Err(FetchError::NoSuchJob {
            job,
            contract: ledger.contract(),
        });
    }
    let committed = u64::from(view.checkpoints);
    if committed == 0 {
        return Err(FetchError::NothingCommitted { job });
    }
    let wanted = match which {
        Which::All => 0..committed,
        Which::Latest => committed - 1..committed,
    };
    let rounds = client
        .rounds(job)
        .await
        .map_err(|source| FetchError::Orchestrator {
            context: format!("listing the rounds of job {job}"),
            source,
        })?;
    let listed = listed_hashes(&rounds, committed as usize);

    let mut problems = Vec::new();
    let mut downloads = Vec::new();
    for round in wanted {
        let onchain = ledger.checkpoint(id, round).await?;
        let hash = listed[round as usize].unwrap_or(onchain);
        match client.get_blob(hash).await {
            Ok(bytes) => downloads.push((round, bytes, onchain)),
            Err(ClientError::HashMismatch { actual, .. }) => {
                problems.push(AnchorProblem::Mismatch {
                    round,
                    onchain,
                    downloaded: actual,
                });
            }
            Err(source) => {
                return Err(FetchError::Orchestrator {
                    context: format!("downloading the checkpoint of round {round} ({hash})"),
                    source,
                });
            }
        }
    }
    problems.extend(check_anchors(
        downloads
            .iter()
            .map(|(round, bytes, onchain)| (*round, bytes.as_slice(), *onchain)),
    ));
    if !problems.is_empty() {
        problems.sort_by_key(AnchorProblem::round);
        return Ok(Err(problems));
    }
    Ok(Ok(downloads
        .into_iter()
        .map(|(round, bytes, hash)| Anchored { round, hash, bytes })
        .collect()))
}

/// The hash the orchestrator lists for each checkpoint `0..count`:
/// checkpoint 0 is round 0's base, checkpoint t+1 is round t's result
/// (or round t+1's base); `None` where it lists none.
pub fn listed_hashes(rounds: &[RoundInfo], count: usize) -> Vec<Option<Hash>> {
    let mut listed = vec![None; count];
    for r in rounds {
        let Ok(t) = usize::try_from(r.round) else {
            continue;
        };
        if let Some(slot) = listed.get_mut(t) {
            slot.get_or_insert(r.base_hash);
        }
        if let (Some(hash), Some(slot)) = (r.checkpoint_hash, listed.get_mut(t + 1)) {
            slot.get_or_insert(hash);
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_bytes_pass_and_others_are_named() {
        let c0 = b"the bytes of checkpoint zero".to_vec();
        let c1 = b"the bytes of checkpoint one".to_vec();
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
