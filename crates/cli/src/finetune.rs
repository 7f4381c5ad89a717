//! `funetun demo --preset finetune`: two jobs through the market. The
//! first trains a character-level `gpt` (`baby`) on tiny-shakespeare
//! without one character's speeches; the second fine-tunes that model
//! with LoRA on those speeches, which the first never saw, and reports
//! the validation loss on the held-out tenth of them before and after.
//!
//! The split is deterministic: the corpus is cut into speeches at blank
//! lines, and every speech whose first line is [`SPEAKER`] goes to the
//! slice, in order; the rest stays in order. Both jobs upload their text
//! as owner's data (`--data`); the second names the first one's final
//! checkpoint as `init` (its frozen model) and the first one's character
//! vocabulary as its `tokenizer.json`, so the models agree token for
//! token. `--init FILE` skips the first job and fine-tunes `FILE` (e.g. a
//! previous run's `base/final.safetensors`) instead.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use funetun_core::Tokenizer;
use funetun_ml::data::Vocab;
use funetun_ml::{DatasetName, LoadOptions};
use serde::Serialize;

use crate::demo::{DemoArgs, DemoSummary, run_demo};
use crate::output::print_json;

/// Whose speeches are held out for the fine-tune (the corpus's most
/// talkative character: 40 kB of 1.1 MB).
pub const SPEAKER: &str = "GLOUCESTER:";

/// The pretraining job: the shakespeare preset's recipe on the rest.
const BASE_SPEC: &str = r#"
name = "finetune-base"
model = "gpt"
rounds = 12
shards = 4
steps = 25
batch = 12
lr = 0.002
optimizer = "adamw:0.1,0.99"
lr_schedule = "cosine:15,300,1e-4"
grad_clip = 1.0
outer_optimizer = "nesterov:0.7,0.9"
min_updates = 4
round_timeout_secs = 600
lease_secs = 300

[transformer]
config = "baby"

[validation]
challenge_window_secs = 1
"#;

/// The fine-tune: rank-16 adapters on every projection, the base frozen
/// (docs/fine-tuning.md has the configurations tried).
const LORA_SPEC: &str = r#"
name = "finetune-lora"
model = "gpt"
rounds = 6
shards = 4
steps = 50
batch = 12
lr = 0.01
optimizer = "adamw:0.0,0.99"
lr_schedule = "cosine:10,300,1e-3"
grad_clip = 1.0
outer_optimizer = "nesterov:0.7,0.9"
min_updates = 4
round_timeout_secs = 600
lease_secs = 300

[transformer]
config = "baby"

[lora]
rank = 16
alpha = 32
targets = ["c_attn", "c_proj", "c_fc"]

[validation]
challenge_window_secs = 1
"#;

/// The corpus cut in two: [`SPEAKER`]'s speeches and everything else.
#[derive(Debug, PartialEq)]
pub struct Split {
    /// Every other speech, in order.
    pub rest: String,
    /// The speaker's speeches, in order.
    pub slice: String,
}

/// Cuts `corpus` into speeches at blank lines and sends those that start
/// with `speaker` to the slice.
pub fn split_corpus(corpus: &str, speaker: &str) -> Split {
    let (mut rest, mut slice) = (Vec::new(), Vec::new());
    for speech in corpus.split("\n\n") {
        if speech.lines().next() == Some(speaker) {
            slice.push(speech);
        } else {
            rest.push(speech);
        }
    }
    Split {
        rest: rest.join("\n\n"),
        slice: slice.join("\n\n") + "\n",
    }
}

/// The JSON line of the preset.
#[derive(Debug, Serialize)]
pub struct FinetuneSummary {
    /// Whose speeches the fine-tune trained on.
    pub speaker: String,
    /// Characters of the held-out speeches, and of the rest.
    pub slice_chars: usize,
    /// Characters the first job trained on.
    pub rest_chars: usize,
    /// The frozen model's validation loss on the slice's held-out tenth.
    pub val_loss_before: f64,
    /// The fine-tuned model's, on the same windows.
    pub val_loss_after: f64,
    /// 1 − after / before.
    pub relative_drop: f64,
    /// Bytes of one LoRA update.
    pub update_bytes: u64,
    /// Bytes of a dense update of the same model.
    pub full_update_bytes: u64,
    /// What the frozen model writes after a newline.
    pub sample_before: Option<String>,
    /// What the fine-tuned model writes.
    pub sample_after: Option<String>,
    /// Where the merged model and its adapters were written.
    pub hf_dir: PathBuf,
    /// The first job (absent with `--init`).
    pub base: Option<DemoSummary>,
    /// The fine-tuning job.
    pub finetune: DemoSummary,
}

/// Runs the preset.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = crate::chain::runtime()?;
    let summary = runtime.block_on(run_finetune(&args))?;
    eprintln!();
    eprintln!(
        "fine-tune on {SPEAKER} {} held-out characters: val loss {:.4} → {:.4} ({:.1}% lower); \
         an update weighs {} bytes with LoRA, {} without ({:.1}x); merged model and adapters in {}",
        summary.slice_chars / 10,
        summary.val_loss_before,
        summary.val_loss_after,
        summary.relative_drop * 100.0,
        summary.update_bytes,
        summary.full_update_bytes,
        summary.full_update_bytes as f64 / summary.update_bytes.max(1) as f64,
        summary.hf_dir.display()
    );
    if args.json {
        print_json(&summary)?;
    }
    Ok(())
}

async fn run_finetune(args: &DemoArgs) -> anyhow::Result<FinetuneSummary> {
    anyhow::ensure!(
        args.spec.is_none()
            && args.data.is_none()
            && args.model.is_none()
            && args.dataset.is_none(),
        "--preset finetune brings its own specs and data; leave out --spec, --data, --model and --dataset"
    );
    let corpus = read_corpus(args)?;
    let split = split_corpus(&corpus, SPEAKER);
    let files = tempfile::tempdir().context("creating a temporary directory")?;
    let write = |name: &str, text: &[u8]| -> anyhow::Result<PathBuf> {
        let path = files.path().join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    let rest = write("rest.txt", split.rest.as_bytes())?;
    let slice = write("slice.txt", split.slice.as_bytes())?;
    // The first job's tokenizer: the characters of the text it trains on.
    let vocab = Vocab::build(
        Tokenizer::Char,
        split.rest.as_bytes(),
        "the rest of the corpus",
    )?;
    let tokenizer = write("tokenizer.json", &vocab.to_hf_json()?)?;

    // One demo job of the preset: its spec, data and starting model.
    let job = |spec_file: &str, spec: &str, data: PathBuf, init: Option<PathBuf>, out: PathBuf| {
        anyhow::Ok(DemoArgs {
            preset: None,
            spec: Some(write(
                spec_file,
                spec_with_seed(spec, args.seed).as_bytes(),
            )?),
            data: Some(data),
            tokenizer: Some(tokenizer.display().to_string()),
            init,
            out,
            json: false,
            serve: false,
            ..args.clone()
        })
    };
    let base_out = sibling(&args.out, "base");
    let (base, init) = match &args.init {
        Some(init) => (None, init.clone()),
        None => {
            eprintln!(
                "job 1 of 2: a character-level gpt on tiny-shakespeare without {SPEAKER}'s speeches ({} characters)",
                split.rest.len()
            );
            let base_args = job("base.toml", BASE_SPEC, rest, None, base_out.clone())?;
            let summary = Box::pin(run_demo(&base_args)).await?;
            (Some(summary), base_out.join("final.safetensors"))
        }
    };
    eprintln!(
        "job {}: LoRA on the frozen model, trained on {SPEAKER}'s speeches ({} characters)",
        if base.is_some() { "2 of 2" } else { "1 of 1" },
        split.slice.len()
    );
    let lora_args = job("lora.toml", LORA_SPEC, slice, Some(init), args.out.clone())?;
    let finetune = Box::pin(run_demo(&lora_args)).await?;
    if base.is_some() {
        let kept = args.out.join("base");
        std::fs::rename(&base_out, &kept)
            .with_context(|| format!("moving {} to {}", base_out.display(), kept.display()))?;
    }
    let before = finetune
        .val_loss_before
        .context("a text job reports its starting validation loss")?;
    let after = finetune
        .val_loss
        .context("a text job reports its final validation loss")?;
    Ok(FinetuneSummary {
        speaker: SPEAKER.trim_end_matches(':').to_string(),
        slice_chars: split.slice.len(),
        rest_chars: split.rest.len(),
        val_loss_before: before,
        val_loss_after: after,
        relative_drop: 1.0 - after / before,
        update_bytes: finetune.update_bytes,
        full_update_bytes: finetune
            .full_update_bytes
            .context("a LoRA job reports the dense update's size")?,
        sample_before: finetune.sample_before.clone(),
        sample_after: finetune.sample.clone(),
        hf_dir: args.out.join("hf"),
        base,
        finetune,
    })
}

/// `spec` with the job's seed set.
fn spec_with_seed(spec: &str, seed: u64) -> String {
    format!("seed = {seed}\n{spec}")
}

/// `out` with `.suffix` appended to its last component: a directory beside
/// it, so that the second job's replacing `out` leaves the first alone.
fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    out.with_file_name(name)
}

/// tiny-shakespeare's text, found (or downloaded) as the built-in data set is.
fn read_corpus(args: &DemoArgs) -> anyhow::Result<String> {
    let options = LoadOptions {
        data_dir: args.data_dir.as_deref(),
        download: !args.offline,
        progress: None,
    };
    let name = DatasetName::TinyShakespeare(Tokenizer::Char);
    let dir = funetun_ml::data::locate::locate(&name, &options)
        .context("the fine-tuning demo needs the tiny-shakespeare corpus")?;
    let path = dir.join(funetun_ml::data::locate::TEXT_FILE);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_sends_one_speakers_speeches_to_the_slice_in_order() {
        let corpus = "A:\nhi\n\nGLOUCESTER:\none\ntwo\n\nB:\nyo\n\nGLOUCESTER:\nthree";
        let s = split_corpus(corpus, SPEAKER);
        assert_eq!(s.slice, "GLOUCESTER:\none\ntwo\n\nGLOUCESTER:\nthree\n");
        assert_eq!(s.rest, "A:\nhi\n\nB:\nyo");
        // A speaker whose name only starts the same way stays in the rest.
        let s = split_corpus("GLOUCESTERSHIRE:\nx", SPEAKER);
        assert_eq!(s.slice, "\n");
    }

    #[test]
    fn both_specs_parse_and_the_fine_tune_is_a_lora_job() {
        let base = funetun_core::JobSpec::parse_toml(&spec_with_seed(BASE_SPEC, 3)).unwrap();
        assert_eq!(base.seed, 3);
        assert!(base.lora.is_none());
        let lora = funetun_core::JobSpec::parse_toml(&spec_with_seed(LORA_SPEC, 3)).unwrap();
        assert_eq!(lora.lora.as_ref().unwrap().rank, 16);
        assert_eq!(
            sibling(Path::new("x/demo-out"), "base"),
            Path::new("x/demo-out.base")
        );
    }
}
