//! An owner's files for `funetun job create`: a data set (`--data`) and an
//! initial checkpoint (`--init`), uploaded as content-addressed blobs and
//! named in the spec by hash.
//!
//! Everything is checked here, before anything is uploaded or written
//! on-chain: the data set is loaded exactly as trainers will load it (text
//! tokenized, an IDX pair parsed and split) and must fit the model; the
//! checkpoint must decode in the model's layout. Then the files are
//! streamed to the orchestrator (`PUT /v1/blobs/{hash}?kind=data`).
//!
//! What `--data` accepts:
//! - a UTF-8 text file: the corpus, as is;
//! - a folder: its files (recursively, hidden ones skipped) concatenated in
//!   byte order of their relative paths, each ending with a newline;
//! - `IMAGES,LABELS`: an IDX image file and its label file (raw, not
//!   gzipped), concatenated into one blob.
//!
//! `--init` takes a canonical checkpoint file or a Hugging Face directory;
//! the directory's `config.json` becomes the spec's model (its numbers
//! written out), its weights are converted to the canonical encoding, and
//! its `tokenizer.json` tokenizes `--data` unless `--tokenizer` is given.

use std::io::{BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use funetun_client::Client;
use funetun_core::protocol::TextTokenizer;
use funetun_core::{DatasetName, Hash, JobSpec, Tokenizer};
use funetun_ml::{Architecture as _, Dataset};

/// Largest initial checkpoint read for checking, in bytes.
const MAX_INIT_BYTES: u64 = 8 << 30;

/// What `--data`, `--tokenizer` and `--init` name.
#[derive(Clone, Debug, Default)]
pub struct OwnerFiles {
    /// The data set: a text file, a folder of them, or `IMAGES,LABELS`.
    pub data: Option<PathBuf>,
    /// For text: `char`, `byte`, or a Hugging Face `tokenizer.json`.
    pub tokenizer: Option<String>,
    /// An initial checkpoint: a canonical safetensors file in the model's
    /// layout (as `funetun job download` writes), or a Hugging Face model
    /// directory (`config.json`, `model.safetensors`, `tokenizer.json`),
    /// which also sets the spec's model.
    pub init: Option<PathBuf>,
}

/// What was uploaded.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Uploaded {
    /// The data set's name in the spec.
    pub dataset: Option<String>,
    /// Bytes of the data blob.
    pub data_bytes: Option<u64>,
    /// The initial checkpoint's hash (checkpoint 0).
    pub init: Option<Hash>,
}

/// A data blob prepared on disk: the file to upload and whether it is text.
struct Prepared {
    path: PathBuf,
    images: bool,
    _tmp: Option<tempfile::TempPath>,
}

/// Checks the owner's files against `spec`, uploads them and names them in
/// `spec` (its `dataset`, `init`, and a transformer's `vocab` when the
/// spec leaves it to the data). `spec` is validated at the end.
pub async fn attach(
    client: &Client,
    spec: &mut JobSpec,
    files: &OwnerFiles,
) -> anyhow::Result<Uploaded> {
    let mut out = Uploaded::default();
    // Every file to upload, with its keccak256 and size (hashed once).
    let mut uploads: Vec<(Hash, u64, PathBuf)> = Vec::new();
    let mut prepared = None;
    // A Hugging Face directory sets the model from its config.json, and its
    // tokenizer.json tokenizes the data unless --tokenizer says otherwise.
    let mut converted: Option<tempfile::TempPath> = None;
    let mut hf_tokenizer: Option<tempfile::TempPath> = None;
    if let Some(dir) = files.init.as_ref().filter(|p| p.is_dir()) {
        let hf = funetun_ml::hf::load_dir(dir)
            .map_err(|e| anyhow::anyhow!("--init {}: {e}", dir.display()))?;
        let c = hf
            .model
            .transformer()
            .expect("a Hugging Face directory holds a transformer");
        spec.model = hf.model.kind();
        spec.transformer = Some(funetun_core::TransformerSpec {
            config: None,
            vocab: Some(c.vocab),
            n_layer: Some(c.n_layer),
            n_head: Some(c.n_head),
            n_kv_head: Some(c.n_kv_head),
            d_model: Some(c.d_model),
            d_ff: Some(c.d_ff),
            context: Some(c.context),
        });
        converted = Some(write_temp(&funetun_core::encode(&hf.weights))?);
        if let Some(json) = &hf.tokenizer_json {
            hf_tokenizer = Some(write_temp(json)?);
        }
        eprintln!(
            "--init {}: a {} of {} parameters from config.json and model.safetensors",
            dir.display(),
            hf.model,
            hf.model.num_params()
        );
    }
    let tokenizer_arg = files.tokenizer.clone().or_else(|| {
        hf_tokenizer
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
    });
    if let Some(data) = &files.data {
        let p = prepare(data)?;
        let (hash, bytes) = {
            let path = p.path.clone();
            tokio::task::spawn_blocking(move || funetun_client::hash_file(&path))
                .await?
                .with_context(|| format!("reading {}", p.path.display()))?
        };
        let name = if p.images {
            anyhow::ensure!(
                files.tokenizer.is_none(),
                "--tokenizer applies to text; {} is an IDX pair",
                data.display()
            );
            DatasetName::Idx(hash)
        } else {
            let tokenizer = tokenizer_of(spec, tokenizer_arg.as_deref(), &mut uploads)?;
            DatasetName::Text {
                corpus: hash,
                tokenizer,
            }
        };
        spec.dataset = name;
        out.dataset = Some(spec.dataset.to_string());
        out.data_bytes = Some(bytes);
        uploads.push((hash, bytes, p.path.clone()));
        prepared = Some(p);
    } else if files.tokenizer.is_some() {
        anyhow::bail!("--tokenizer needs --data (the corpus it tokenizes)");
    }
    // Load the data set exactly as trainers will, from the local files.
    if prepared.is_some() {
        let data = load_local(&spec.dataset, &uploads)?;
        if let (Some(t), Some(vocab)) = (spec.transformer.as_mut(), data.vocab())
            && t.vocab.is_none()
        {
            t.vocab = Some(vocab.size());
        }
        let model = spec
            .model()
            .context("the job spec with the uploaded data")?;
        funetun_ml::train::check_fits(model, &data)
            .with_context(|| format!("--data {}", files.data.as_ref().unwrap().display()))?;
    }
    if let Some(given) = &files.init {
        let init = converted.as_deref().unwrap_or(given);
        let model = spec.model().context("the job spec")?;
        let len = std::fs::metadata(init)
            .with_context(|| format!("--init {}", init.display()))?
            .len();
        anyhow::ensure!(
            len <= MAX_INIT_BYTES,
            "--init {} is {len} bytes; the limit is {MAX_INIT_BYTES}",
            init.display()
        );
        let bytes = std::fs::read(init).with_context(|| format!("reading {}", init.display()))?;
        model.decode(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "--init {} is not a {model} checkpoint in the spec's layout: {e}; \
                 give a checkpoint of this model (as `funetun job download` writes) \
                 or change the spec's model to the checkpoint's",
                init.display()
            )
        })?;
        let hash = funetun_core::keccak256(&bytes);
        spec.init = Some(hash);
        out.init = spec.init;
        uploads.push((hash, len, init.to_path_buf()));
    }
    spec.validate()?;
    crate::job::check_spec_names(spec)?;
    for (hash, bytes, path) in &uploads {
        client
            .put_data_file(path, *hash, *bytes)
            .await
            .with_context(|| format!("uploading {}", path.display()))?;
        tracing::info!(%hash, bytes, file = %path.display(), "uploaded");
    }
    drop((prepared, converted, hf_tokenizer));
    Ok(out)
}

/// Tells the owner what was uploaded and how the spec names it.
pub fn announce(uploaded: &Uploaded) {
    if let Some(name) = &uploaded.dataset {
        eprintln!(
            "uploaded {} bytes of data: dataset = \"{name}\"",
            uploaded.data_bytes.unwrap_or(0)
        );
    }
    if let Some(init) = uploaded.init {
        eprintln!("uploaded the initial checkpoint: init = \"{init}\"");
    }
}

/// `bytes` in a temporary file (removed when the path is dropped).
fn write_temp(bytes: &[u8]) -> anyhow::Result<tempfile::TempPath> {
    let mut tmp = tempfile::NamedTempFile::new().context("creating a temporary file")?;
    tmp.write_all(bytes)?;
    tmp.flush()?;
    Ok(tmp.into_temp_path())
}

/// The tokenizer of an uploaded corpus: `--tokenizer`, else the spec's
/// text data set's, else characters. A `tokenizer.json` is queued for
/// upload.
fn tokenizer_of(
    spec: &JobSpec,
    arg: Option<&str>,
    uploads: &mut Vec<(Hash, u64, PathBuf)>,
) -> anyhow::Result<TextTokenizer> {
    match arg {
        None => Ok(match &spec.dataset {
            DatasetName::TinyShakespeare(t) => TextTokenizer::Builtin(*t),
            DatasetName::Text { tokenizer, .. } => *tokenizer,
            _ => TextTokenizer::Builtin(Tokenizer::Char),
        }),
        Some(word @ ("char" | "byte")) => Ok(TextTokenizer::Builtin(word.parse()?)),
        Some(file) => {
            let path = PathBuf::from(file);
            anyhow::ensure!(
                path.is_file(),
                "--tokenizer `{file}` is neither char, byte nor a tokenizer.json file"
            );
            let (hash, len) = funetun_client::hash_file(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            uploads.push((hash, len, path));
            Ok(TextTokenizer::Hf(hash))
        }
    }
}

/// The data set `name` built from the local files about to be uploaded.
fn load_local(name: &DatasetName, uploads: &[(Hash, u64, PathBuf)]) -> anyhow::Result<Dataset> {
    Dataset::from_blobs(name, |hash| {
        let (_, _, path) = uploads
            .iter()
            .find(|(h, _, _)| *h == hash)
            .expect("every blob of the name is a local file");
        std::fs::read(path).map_err(|source| funetun_ml::Error::Io {
            path: path.clone(),
            source,
        })
    })
    .map_err(|e| anyhow::anyhow!("the data set does not load as trainers would load it: {e}"))
}

/// The file to upload for `--data`: itself, or a temporary concatenation.
fn prepare(data: &Path) -> anyhow::Result<Prepared> {
    let text = data.to_string_lossy();
    if let Some((images, labels)) = text.split_once(',') {
        let tmp = concatenate(&[PathBuf::from(images), PathBuf::from(labels)], false)?;
        return Ok(Prepared {
            path: tmp.to_path_buf(),
            images: true,
            _tmp: Some(tmp),
        });
    }
    let meta = std::fs::metadata(data).with_context(|| {
        format!(
            "--data {}: give a text file, a folder of text files, or IMAGES,LABELS",
            data.display()
        )
    })?;
    if meta.is_file() {
        return Ok(Prepared {
            path: data.to_path_buf(),
            images: false,
            _tmp: None,
        });
    }
    let mut files = Vec::new();
    collect_files(data, &mut files)?;
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "--data {} is a folder without files",
        data.display()
    );
    let tmp = concatenate(&files, true)?;
    Ok(Prepared {
        path: tmp.to_path_buf(),
        images: false,
        _tmp: Some(tmp),
    })
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// Streams `files` into one temporary file (a newline after each file that
/// does not end with one, when `lines`).
fn concatenate(files: &[PathBuf], lines: bool) -> anyhow::Result<tempfile::TempPath> {
    let tmp = tempfile::NamedTempFile::new().context("creating a temporary file")?;
    let (file, path) = tmp.into_parts();
    let mut out = BufWriter::new(file);
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        let mut input =
            std::fs::File::open(f).with_context(|| format!("reading {}", f.display()))?;
        let mut last = b'\n';
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            last = buf[n - 1];
            out.write_all(&buf[..n])?;
        }
        if lines && last != b'\n' {
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(path)
}
