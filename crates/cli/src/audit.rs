//! The aggregation check of `funetun verify-chain`: every checkpoint after
//! θ₀ is recomputed from its parent and its manifest (the accepted deltas
//! with their weights, the rule, the outer optimizer's state) and must hash
//! to the committed checkpoint. Training is audited by validators replaying
//! updates; this audits the orchestrator's merge of them, which anyone can
//! run with the blobs alone (docs/sync.md).
//!
//! [`audit_round`] checks one round against what the caller knows (the
//! chain's hashes, or a directory's files); the callers add what only they
//! can check (on-chain acceptance of every input, the spec's rule).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use funetun_aggregate::Exec;
use funetun_core::blobs::BlobDir;
use funetun_core::sync::Manifest;
use funetun_core::{Hash, JobSpec, keccak256};
use funetun_orchestrator::rounds::rebuild;
use funetun_validator::proof::CheckResult;

/// The check's name in the report.
pub const AGGREGATION: &str = "aggregation";

/// The manifest file of checkpoint `checkpoint` in a chain directory.
pub fn manifest_file(dir: &Path, checkpoint: u64) -> PathBuf {
    dir.join(format!("round-{checkpoint:04}.manifest.json"))
}

/// Checks that checkpoint `i` (hash `hashes[i]`) is what `manifest`
/// builds from checkpoint `i − 1`: the manifest names the right parent,
/// result and bases, continues the outer state `prev_outer` left by the
/// round before, and carrying it out over the blobs `blob` fetches gives
/// the same bytes. Returns the manifest, or what is wrong.
pub fn audit_round(
    i: u64,
    manifest: &[u8],
    hashes: &[Hash],
    prev_outer: Option<Hash>,
    blob: &mut dyn FnMut(Hash) -> anyhow::Result<Vec<u8>>,
    exec: &Exec,
) -> Result<Manifest, String> {
    let m = Manifest::from_bytes(manifest).map_err(|e| e.to_string())?;
    let at = |r: u64| hashes.get(r as usize).copied();
    if m.round + 1 != i {
        return Err(format!("the manifest is round {}'s", m.round));
    }
    if Some(m.parent) != at(m.round) {
        return Err(format!(
            "the manifest's parent {} is not checkpoint {}",
            m.parent, m.round
        ));
    }
    if Some(m.checkpoint) != at(i) {
        return Err(format!(
            "the manifest names checkpoint {} as its result",
            m.checkpoint
        ));
    }
    if m.outer_state_in != prev_outer {
        return Err(
            "the manifest's outer optimizer state is not the one the round before left".into(),
        );
    }
    for input in &m.inputs {
        if Some(input.base) != at(input.base_round) {
            return Err(format!(
                "update {} claims checkpoint {} ({}) as its base, which is not that checkpoint",
                input.update, input.base_round, input.base
            ));
        }
    }
    let fetch = |h: Hash, what: &str, blob: &mut dyn FnMut(Hash) -> anyhow::Result<Vec<u8>>| {
        blob(h).map_err(|e| format!("{what} {h}: {e:#}"))
    };
    let parent = fetch(m.parent, "parent checkpoint", blob)?;
    let mut deltas = Vec::with_capacity(m.inputs.len());
    for input in &m.inputs {
        deltas.push(fetch(input.update, "delta", blob)?);
    }
    let outer = match m.outer_state_in {
        Some(h) => Some(fetch(h, "outer optimizer state", blob)?),
        None => None,
    };
    let built = rebuild(&m, &parent, &deltas, outer.as_deref(), exec).map_err(|e| e.to_string())?;
    if built.manifest.checkpoint != m.checkpoint {
        return Err(format!(
            "recomputed from its manifest it hashes to {}, not {}",
            built.manifest.checkpoint, m.checkpoint
        ));
    }
    if built.manifest.outer_state_out != m.outer_state_out {
        return Err("the outer optimizer state it leaves is not the manifest's".into());
    }
    Ok(m)
}

/// The spec's side of a manifest: its rule (or the mean when the rule
/// needs more inputs), outer optimizer, sync policy and α.
pub fn check_against_spec(m: &Manifest, spec: &JobSpec) -> Result<(), String> {
    let rule: funetun_aggregate::Rule = spec
        .aggregation
        .parse()
        .map_err(|e| format!("the spec's rule: {e}"))?;
    let fell_back = rule.check_n(m.inputs.len()).is_err();
    let expected_rule = if fell_back {
        "mean"
    } else {
        spec.aggregation.as_str()
    };
    let mismatch = |what: &str, got: &str, want: &str| {
        Err(format!(
            "the manifest's {what} is `{got}`, the job's `{want}`"
        ))
    };
    if m.rule != expected_rule {
        return mismatch("rule", &m.rule, expected_rule);
    }
    if m.outer_optimizer != spec.outer_optimizer {
        return mismatch("outer optimizer", &m.outer_optimizer, &spec.outer_optimizer);
    }
    if m.sync != spec.sync {
        return mismatch("sync policy", &m.sync.to_string(), &spec.sync.to_string());
    }
    if m.staleness_alpha.to_bits() != spec.staleness_alpha.to_bits() {
        return mismatch(
            "staleness α",
            &m.staleness_alpha.to_string(),
            &spec.staleness_alpha.to_string(),
        );
    }
    Ok(())
}

/// Turns per-round failures into the report's check.
pub fn check_result(rounds: usize, failures: &[(u64, String)]) -> CheckResult {
    let detail = match failures.first() {
        None => {
            format!("all {rounds} checkpoints after θ₀ recomputed bit for bit from their manifests")
        }
        Some((i, why)) if failures.len() == 1 => format!("round {} (checkpoint {i}): {why}", i - 1),
        Some((i, why)) => format!(
            "round {} (checkpoint {i}): {why} (and {} more: checkpoints {})",
            i - 1,
            failures.len() - 1,
            failures[1..]
                .iter()
                .map(|(i, _)| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    CheckResult {
        name: AGGREGATION,
        passed: failures.is_empty(),
        value: failures.len() as f64,
        threshold: 0.0,
        detail,
    }
}

/// The aggregation check of a chain directory whose files hash to
/// `hashes`, with manifests `round-NNNN.manifest.json` beside them and the
/// deltas and outer states in the blob directory `blobs`. `None` when the
/// directory has no manifests at all (written before manifests existed).
pub fn audit_dir(
    dir: &Path,
    files: &[PathBuf],
    hashes: &[Hash],
    blobs: Option<&Path>,
) -> anyhow::Result<Option<CheckResult>> {
    let n = hashes.len() as u64;
    if !(1..n).any(|i| manifest_file(dir, i).exists()) {
        return Ok(None);
    }
    let by_hash: BTreeMap<Hash, &PathBuf> = hashes.iter().copied().zip(files).collect();
    let mut blob = |h: Hash| -> anyhow::Result<Vec<u8>> {
        let path = match by_hash.get(&h) {
            Some(p) => (*p).clone(),
            None => {
                let root = blobs.context(
                    "no blob directory: pass --blobs DIR (the demo's is demo-out/blobs)",
                )?;
                BlobDir::path_in(root, h)
            }
        };
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(
            keccak256(&bytes) == h,
            "{} does not hash to its name",
            path.display()
        );
        Ok(bytes)
    };
    let exec = Exec::sequential();
    let mut failures = Vec::new();
    let mut prev_outer = None;
    for i in 1..n {
        let path = manifest_file(dir, i);
        let outcome = std::fs::read(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))
            .and_then(|bytes| audit_round(i, &bytes, hashes, prev_outer, &mut blob, &exec));
        match outcome {
            Ok(m) => prev_outer = m.outer_state_out,
            Err(why) => failures.push((i, why)),
        }
    }
    Ok(Some(check_result(n as usize - 1, &failures)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_their_checkpoints() {
        let ok = check_result(3, &[]);
        assert!(ok.passed && ok.detail.contains("all 3"), "{ok:?}");
        let one = check_result(3, &[(2, "bad".into())]);
        assert!(!one.passed);
        assert_eq!(one.detail, "round 1 (checkpoint 2): bad");
        let two = check_result(3, &[(1, "x".into()), (3, "y".into())]);
        assert_eq!(two.value, 2.0);
        assert!(two.detail.contains("checkpoints 3"), "{}", two.detail);
    }
}
