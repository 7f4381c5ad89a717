//! Where data set files come from: `--data-dir`, then `FUNETUN_DATA_DIR`,
//! then the per-user cache, and finally a download from the usual public
//! mirrors, checked against the known SHA-256 of every file.

#[cfg(feature = "host")]
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
#[cfg(feature = "host")]
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{DatasetName, find_file};
use crate::error::{Error, Result};

/// Environment variable naming a directory of data sets.
pub const DATA_DIR_ENV: &str = "FUNETUN_DATA_DIR";

/// Reports download progress: file name, bytes so far, total if known.
pub type ProgressFn<'a> = &'a (dyn Fn(&str, u64, Option<u64>) + Sync);

/// How to find data set files.
#[derive(Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// A directory given on the command line; searched first.
    pub data_dir: Option<&'a Path>,
    /// Whether to download missing files into the cache directory.
    pub download: bool,
    /// Called while downloading.
    pub progress: Option<ProgressFn<'a>>,
}

/// The one file of a text corpus in its folder.
pub const TEXT_FILE: &str = "input.txt";

struct Source {
    subdir: &'static str,
    #[cfg_attr(not(feature = "host"), allow(dead_code))]
    mirrors: &'static [&'static str],
    /// Each file as downloaded, with its SHA-256.
    files: &'static [(&'static str, &'static str)],
    /// The SHA-256 of each `.gz` file's uncompressed bytes, for a local copy
    /// kept uncompressed.
    unpacked: &'static [(&'static str, &'static str)],
}

fn source(name: &DatasetName) -> Option<Source> {
    match name {
        DatasetName::Mnist => Some(Source {
            subdir: "mnist",
            mirrors: &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
            ],
            files: &[
                (
                    "train-images-idx3-ubyte.gz",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                ),
            ],
            unpacked: &[
                (
                    "train-images-idx3-ubyte",
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                ),
                (
                    "train-labels-idx1-ubyte",
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                ),
                (
                    "t10k-images-idx3-ubyte",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                ),
                (
                    "t10k-labels-idx1-ubyte",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                ),
            ],
        }),
        DatasetName::FashionMnist => Some(Source {
            subdir: "fashion-mnist",
            mirrors: &[
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            ],
            files: &[
                (
                    "train-images-idx3-ubyte.gz",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                ),
                (
                    "train-labels-idx1-ubyte.gz",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                ),
                (
                    "t10k-images-idx3-ubyte.gz",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                ),
                (
                    "t10k-labels-idx1-ubyte.gz",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                ),
            ],
            unpacked: &[
                (
                    "train-images-idx3-ubyte",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                ),
                (
                    "train-labels-idx1-ubyte",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                ),
                (
                    "t10k-images-idx3-ubyte",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                ),
                (
                    "t10k-labels-idx1-ubyte",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
            ],
        }),
        DatasetName::TinyShakespeare(_) => Some(Source {
            subdir: "tinyshakespeare",
            mirrors: &[
                "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",
            ],
            files: &[(
                TEXT_FILE,
                "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            )],
            unpacked: &[],
        }),
        DatasetName::Synthetic(_)
        | DatasetName::Path(_)
        | DatasetName::Text { .. }
        | DatasetName::Idx(_) => None,
    }
}

/// The per-user cache directory for data sets.
pub fn cache_dir() -> Option<PathBuf> {
    #[cfg(not(feature = "host"))]
    return None;
    #[cfg(feature = "host")]
    dirs::cache_dir().map(|d| d.join("funetun").join("data"))
}

/// The directories searched, in order, for a data set's folder.
pub fn search_dirs(options: &LoadOptions<'_>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = options.data_dir {
        dirs.push(d.to_path_buf());
    }
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    dirs.extend(cache_dir());
    dirs
}

/// Whether `dir` holds every file of `src` (an IDX file also uncompressed).
fn complete(src: &Source, dir: &Path) -> bool {
    src.files
        .iter()
        .all(|(file, _)| match file.strip_suffix(".gz") {
            Some(stem) => find_file(dir, stem).is_some(),
            None => dir.join(file).is_file(),
        })
}

/// Returns the directory holding `name`'s files, downloading them into the
/// cache when allowed and needed. Every file found locally is checked
/// against its published SHA-256 (or, kept uncompressed, that of its
/// uncompressed bytes) once per process and file identity
/// ([`verify_local`]): a corrupted copy would make an honest trainer's
/// updates fail replay.
pub fn locate(name: &DatasetName, options: &LoadOptions<'_>) -> Result<PathBuf> {
    let Some(src) = source(name) else {
        return Err(Error::invalid(
            "data set",
            format!("{name} has no files to locate"),
        ));
    };
    let searched = search_dirs(options);
    for base in &searched {
        for dir in [base.join(src.subdir), base.clone()] {
            if complete(&src, &dir) {
                tracing::debug!(dir = %dir.display(), "found {name}");
                for &(file, sha) in src.files {
                    let (path, sha) = match file.strip_suffix(".gz") {
                        Some(stem) if !dir.join(file).is_file() => {
                            let raw = src.unpacked.iter().find(|(f, _)| *f == stem);
                            (dir.join(stem), raw.map_or(sha, |(_, s)| *s))
                        }
                        _ => (dir.join(file), sha),
                    };
                    verify_local(&path, sha, name)?;
                }
                return Ok(dir);
            }
        }
    }
    let listed = searched
        .iter()
        .map(|d| d.join(src.subdir).display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let how_to = format!(
        "put {} in a folder `{}/` under a directory D and pass `--data-dir D` or set {DATA_DIR_ENV}=D",
        src.files
            .iter()
            .map(|(f, _)| *f)
            .collect::<Vec<_>>()
            .join(", "),
        src.subdir
    );
    if !options.download {
        return Err(Error::DataUnavailable(format!(
            "{name} not found (searched {listed}); {how_to}"
        )));
    }
    let Some(cache) = cache_dir() else {
        return Err(Error::DataUnavailable(format!(
            "{name} not found (searched {listed}) and there is no cache directory to download into; {how_to}"
        )));
    };
    let dir = cache.join(src.subdir);
    download_all(&src, &dir, options).map_err(|e| {
        Error::DataUnavailable(format!(
            "{name} not found (searched {listed}) and the download failed: {e}. \
             If this machine is offline, {how_to}"
        ))
    })?;
    Ok(dir)
}

#[cfg(not(feature = "host"))]
fn download_all(_: &Source, _: &Path, _: &LoadOptions<'_>) -> Result<()> {
    Err(Error::DataUnavailable(
        "this build does not download (the `host` feature of funetun-ml does)".into(),
    ))
}

#[cfg(feature = "host")]
fn download_all(src: &Source, dir: &Path, options: &LoadOptions<'_>) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| Error::DataUnavailable(format!("cannot build an HTTP client: {e}")))?;
    for &(file, sha) in src.files {
        let target = dir.join(file);
        if target.is_file() && sha256_file(&target)? == sha {
            continue;
        }
        let mut last_err = String::new();
        let mut ok = false;
        for mirror in src.mirrors {
            let url = format!("{mirror}{file}");
            tracing::info!(%url, "downloading");
            match fetch_verified(&client, &url, &target, sha, file, options) {
                Ok(()) => {
                    ok = true;
                    break;
                }
                Err(e) => last_err = format!("{url}: {e}"),
            }
        }
        if !ok {
            return Err(Error::DataUnavailable(last_err));
        }
    }
    Ok(())
}

/// Downloads `url` to a temporary file, checks its SHA-256 and renames it
/// into place, so a half-downloaded file is never mistaken for a good one.
#[cfg(feature = "host")]
fn fetch_verified(
    client: &reqwest::blocking::Client,
    url: &str,
    target: &Path,
    sha: &str,
    label: &str,
    options: &LoadOptions<'_>,
) -> std::result::Result<(), String> {
    let mut resp = client
        .get(url)
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?;
    let total = resp.content_length();
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    let mut out = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = resp.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        done += n as u64;
        if let Some(p) = options.progress {
            p(label, done, total);
        }
    }
    out.sync_all().map_err(|e| e.to_string())?;
    let got = hex_lower(&hasher.finalize());
    if got != sha {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "checksum mismatch: expected sha256 {sha}, got {got}"
        ));
    }
    std::fs::rename(&tmp, target).map_err(|e| e.to_string())
}

/// What identifies a file's bytes without reading them: where it is, its
/// inode, length and modification time. A rewritten file changes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FileIdentity {
    path: PathBuf,
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileIdentity {
    fn of(path: &Path) -> Result<FileIdentity> {
        let meta = std::fs::metadata(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(FileIdentity {
            path: path.to_path_buf(),
            inode,
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// Files this process verified, by identity and the hash they matched.
static VERIFIED: std::sync::Mutex<Vec<(FileIdentity, &'static str)>> =
    std::sync::Mutex::new(Vec::new());

/// Refuses a local copy of a known file whose bytes differ from the
/// published ones: training on it would make honest updates fail replay.
/// The hash is computed once per process for a file identity (path, inode,
/// length, modification time); a file rewritten since is hashed again.
pub(crate) fn verify_local(path: &Path, sha: &'static str, name: &DatasetName) -> Result<()> {
    let id = FileIdentity::of(path)?;
    let verified = |id: &FileIdentity| {
        VERIFIED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|(v, s)| v == id && *s == sha)
    };
    if verified(&id) {
        return Ok(());
    }
    let got = sha256_file(path)?;
    if got != sha {
        return Err(Error::BadDataFile {
            path: path.to_path_buf(),
            problem: format!(
                "its sha256 is {got}, not {sha} as published for {name}; \
                 replace it with the original file (or delete it to download it again)"
            ),
        });
    }
    tracing::debug!(path = %path.display(), "verified {name}");
    VERIFIED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((id, sha));
    Ok(())
}

/// Whether this process verified the file at `path` as it is now.
pub fn is_verified(path: &Path) -> bool {
    let Ok(id) = FileIdentity::of(path) else {
        return false;
    };
    VERIFIED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .any(|(v, _)| *v == id)
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(hex_lower(&Sha256::digest(&bytes)))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
