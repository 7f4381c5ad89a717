//! Low-rank adapters (LoRA) as a job names them: the rank, the scaling
//! `alpha` and which projections to adapt.
//!
//! A spec writes them as a `[lora]` table:
//!
//! ```
//! use funetun_core::lora::LoraConfig;
//!
//! let lora: LoraConfig = toml::from_str(
//!     r#"
//!     rank = 8
//!     alpha = 16
//!     targets = ["q_proj", "v_proj"]
//!     "#,
//! )
//! .unwrap();
//! lora.check().unwrap();
//! assert_eq!(lora.scale(), 2.0);
//! ```
//!
//! What a target may be, the adapters' tensors and the training step live
//! in `funetun_ml::lora`; this module only checks that the numbers and
//! names can describe adapters at all.

use serde::{Deserialize, Serialize};

use crate::model::ConfigError;

/// Largest accepted rank.
pub const MAX_RANK: u32 = 1024;
/// Largest number of targets.
pub const MAX_TARGETS: usize = 64;
/// Longest accepted target name, in bytes.
pub const MAX_TARGET_LEN: usize = 128;

/// Which projections get low-rank adapters, and how they are scaled.
///
/// Each adapted matrix `W` gets `A` (`rank × in`) and `B` (`out × rank`);
/// the model computes with `W + scale()·B·A`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// The adapters' rank `r` (PEFT's `r`).
    pub rank: u32,
    /// The scaling numerator (PEFT's `lora_alpha`): the update is
    /// multiplied by `alpha / rank`.
    pub alpha: f32,
    /// Projections to adapt, by short name (`q_proj`, `c_attn`, …), each
    /// matched as a suffix of a weight matrix's name.
    pub targets: Vec<String>,
}

fn bad(field: &'static str, detail: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        detail: detail.into(),
    }
}

impl LoraConfig {
    /// Checks the numbers and names, naming the first field that is wrong
    /// and what would be right. Whether each target exists in a model is
    /// checked where the model is known.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_RANK).contains(&self.rank) {
            return Err(bad(
                "rank",
                format!(
                    "is {}; it must be in 1..={MAX_RANK} (8 or 16 are usual)",
                    self.rank
                ),
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(bad(
                "alpha",
                format!(
                    "is {}; it must be a finite number above 0 (commonly twice the rank)",
                    self.alpha
                ),
            ));
        }
        if self.targets.is_empty() {
            return Err(bad(
                "targets",
                "is empty; name at least one projection, e.g. [\"q_proj\", \"v_proj\"] (llama) or [\"c_attn\"] (gpt)",
            ));
        }
        if self.targets.len() > MAX_TARGETS {
            return Err(bad(
                "targets",
                format!(
                    "names {} projections; at most {MAX_TARGETS} are accepted",
                    self.targets.len()
                ),
            ));
        }
        for (i, t) in self.targets.iter().enumerate() {
            let well_formed = !t.is_empty()
                && t.len() <= MAX_TARGET_LEN
                && t.split('.').all(|part| {
                    !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
            if !well_formed {
                return Err(bad(
                    "targets",
                    format!(
                        "entry {i} ({t:?}) is not a projection name; use letters, digits and `_`, \
                         optionally dotted (`q_proj`, `attn.c_proj`), at most {MAX_TARGET_LEN} bytes"
                    ),
                ));
            }
            if self.targets[..i].contains(t) {
                return Err(bad(
                    "targets",
                    format!("names `{t}` twice; list each projection once"),
                ));
            }
        }
        Ok(())
    }

    /// The factor `alpha / rank` that multiplies `B·A`.
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank.max(1) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> LoraConfig {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            targets: vec!["q_proj".into(), "v_proj".into()],
        }
    }

    #[test]
    fn a_spec_table_reads_and_writes_back() {
        let text = "rank = 8\nalpha = 16\ntargets = [\"q_proj\", \"v_proj\"]\n";
        let c: LoraConfig = toml::from_str(text).unwrap();
        assert_eq!(c, good());
        assert_eq!(c.scale(), 2.0);
        let again: LoraConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        // A fractional alpha reads too.
        let c: LoraConfig =
            toml::from_str("rank = 4\nalpha = 1.5\ntargets = [\"c_attn\"]\n").unwrap();
        assert_eq!(c.scale(), 0.375);
    }

    #[test]
    fn unknown_and_missing_fields_are_refused() {
        let e = toml::from_str::<LoraConfig>(
            "rank = 8\nalpha = 16\ntargets = [\"q_proj\"]\ndropout = 0.1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("dropout"), "{e}");
        let e = toml::from_str::<LoraConfig>("rank = 8\ntargets = [\"q_proj\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("alpha"), "{e}");
        assert!(toml::from_str::<LoraConfig>("rank = -1\nalpha = 1\ntargets = [\"x\"]\n").is_err());
    }

    #[test]
    fn bad_values_name_their_field_and_the_fix() {
        good().check().unwrap();
        let cases = [
            (LoraConfig { rank: 0, ..good() }, "rank", "1..=1024"),
            (
                LoraConfig {
                    rank: 1025,
                    ..good()
                },
                "rank",
                "1..=1024",
            ),
            (
                LoraConfig {
                    alpha: 0.0,
                    ..good()
                },
                "alpha",
                "above 0",
            ),
            (
                LoraConfig {
                    alpha: -2.0,
                    ..good()
                },
                "alpha",
                "above 0",
            ),
            (
                LoraConfig {
                    alpha: f32::NAN,
                    ..good()
                },
                "alpha",
                "finite",
            ),
            (
                LoraConfig {
                    alpha: f32::INFINITY,
                    ..good()
                },
                "alpha",
                "finite",
            ),
            (
                LoraConfig {
                    targets: vec![],
                    ..good()
                },
                "targets",
                "at least one",
            ),
            (
                LoraConfig {
                    targets: vec!["q_proj".into(), "k_proj".into(), "q_proj".into()],
                    ..good()
                },
                "targets",
                "`q_proj` twice",
            ),
            (
                LoraConfig {
                    targets: vec!["".into()],
                    ..good()
                },
                "targets",
                "not a projection name",
            ),
            (
                LoraConfig {
                    targets: vec!["attn..c_proj".into()],
                    ..good()
                },
                "targets",
                "not a projection name",
            ),
            (
                LoraConfig {
                    targets: vec!["q proj".into()],
                    ..good()
                },
                "targets",
                "not a projection name",
            ),
            (
                LoraConfig {
                    targets: (0..65).map(|i| format!("t{i}")).collect(),
                    ..good()
                },
                "targets",
                "at most 64",
            ),
        ];
        for (config, field, fix) in cases {
            let e = config.check().unwrap_err();
            assert_eq!(e.field, field, "{config:?}: {e}");
            assert!(e.to_string().contains(fix), "{config:?}: {e}");
        }
        // Dotted names are projection names.
        LoraConfig {
            targets: vec!["attn.c_proj".into(), "mlp.c_fc".into()],
            ..good()
        }
        .check()
        .unwrap();
    }
}
