//! Data sets: MNIST and Fashion-MNIST from IDX files, a built-in synthetic
//! set, and deterministic sharding and batching.
//!
//! - [`idx`]: the IDX file format.
//! - [`locate`]: where a data set's files are found or downloaded to.
//! - [`synthetic`]: a learnable 10-class data set generated from a seed.
//! - [`sampler`]: shards and the seeded order in which a task sees samples.

pub mod idx;
pub mod locate;
pub mod sampler;
pub mod synthetic;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use locate::LoadOptions;

pub use funetun_core::protocol::DatasetName;

/// Number of classes of every built-in data set.
pub const NUM_CLASSES: usize = 10;

/// One split (train or test) of an image classification data set.
#[derive(Clone, Debug)]
pub struct Split {
    /// u8 pixels, image after image, `rows × cols` each.
    pub images: Vec<u8>,
    /// One label per image, below [`NUM_CLASSES`].
    pub labels: Vec<u8>,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split has no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A loaded data set with its normalisation.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Which data set this is.
    pub name: DatasetName,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Training samples (sharded among trainers).
    pub train: Split,
    /// Test samples (used for evaluation only).
    pub test: Split,
    /// Lookup from pixel value to normalised input `(p/255 − mean)/std`,
    /// with mean and std measured on the training images.
    pub normalize: [f32; 256],
}

impl Dataset {
    /// Builds a data set from its parts, checking shapes and measuring the
    /// normalisation on the training images.
    pub fn from_parts(
        name: DatasetName,
        rows: usize,
        cols: usize,
        train: Split,
        test: Split,
    ) -> Result<Self> {
        for (which, split) in [("train", &train), ("test", &test)] {
            if split.images.len() != split.labels.len() * rows * cols {
                return Err(Error::invalid(
                    "data set",
                    format!(
                        "{name} {which} split: {} labels but {} pixels ({} images of {rows}×{cols})",
                        split.labels.len(),
                        split.images.len(),
                        split.images.len() / (rows * cols).max(1)
                    ),
                ));
            }
        }
        if train.is_empty() || test.is_empty() {
            return Err(Error::invalid(
                "data set",
                format!("{name} has an empty train or test split"),
            ));
        }
        let mut hist = [0u64; 256];
        for &p in &train.images {
            hist[p as usize] += 1;
        }
        let n = train.images.len() as f64;
        let mean = hist
            .iter()
            .enumerate()
            .map(|(v, &c)| v as f64 / 255.0 * c as f64)
            .sum::<f64>()
            / n;
        let var = hist
            .iter()
            .enumerate()
            .map(|(v, &c)| (v as f64 / 255.0 - mean).powi(2) * c as f64)
            .sum::<f64>()
            / n;
        let std = var.sqrt().max(1e-3);
        let mut normalize = [0f32; 256];
        for (v, slot) in normalize.iter_mut().enumerate() {
            *slot = ((v as f64 / 255.0 - mean) / std) as f32;
        }
        Ok(Self {
            name,
            rows,
            cols,
            train,
            test,
            normalize,
        })
    }

    /// Loads a data set: real files located (or downloaded) per `options`,
    /// or the synthetic set generated in memory.
    pub fn load(name: &DatasetName, options: &LoadOptions<'_>) -> Result<Self> {
        match name {
            DatasetName::Synthetic(seed) => {
                synthetic::generate(*seed, synthetic::DEFAULT_TRAIN, synthetic::DEFAULT_TEST)
            }
            DatasetName::Path(dir) => load_idx_dir(name.clone(), dir),
            DatasetName::Mnist | DatasetName::FashionMnist => {
                let dir = locate::locate(name, options)?;
                load_idx_dir(name.clone(), &dir)
            }
        }
    }

    /// Pixels per image.
    pub fn input_size(&self) -> usize {
        self.rows * self.cols
    }

    /// Writes normalised images `indices` of `split` into `out` (row-major,
    /// one image per row) and their labels into `labels`.
    pub fn gather(&self, split: &Split, indices: &[u32], out: &mut [f32], labels: &mut [u8]) {
        let d = self.input_size();
        for (k, &i) in indices.iter().enumerate() {
            let i = i as usize;
            let src = &split.images[i * d..(i + 1) * d];
            for (o, &p) in out[k * d..(k + 1) * d].iter_mut().zip(src) {
                *o = self.normalize[p as usize];
            }
            labels[k] = split.labels[i];
        }
    }
}

/// The four files of an IDX data set directory, by their MNIST names.
pub const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Finds `stem.gz` or `stem` in `dir`.
pub(crate) fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

fn load_idx_dir(name: DatasetName, dir: &Path) -> Result<Dataset> {
    let file = |stem: &str| {
        find_file(dir, stem).ok_or_else(|| {
            Error::DataUnavailable(format!(
                "{}: missing {stem}.gz (or {stem}); a data set directory holds {}",
                dir.display(),
                IDX_FILES.map(|f| format!("{f}.gz")).join(", ")
            ))
        })
    };
    let train_images = idx::read_images(&file(IDX_FILES[0])?)?;
    let train_labels = idx::read_labels(&file(IDX_FILES[1])?, NUM_CLASSES as u8)?;
    let test_images = idx::read_images(&file(IDX_FILES[2])?)?;
    let test_labels = idx::read_labels(&file(IDX_FILES[3])?, NUM_CLASSES as u8)?;
    for (images, labels, which) in [
        (&train_images, &train_labels, "train"),
        (&test_images, &test_labels, "t10k"),
    ] {
        if images.count != labels.len() {
            return Err(Error::BadDataFile {
                path: dir.to_path_buf(),
                problem: format!(
                    "{which} images ({}) and labels ({}) differ in count",
                    images.count,
                    labels.len()
                ),
            });
        }
    }
    if (train_images.rows, train_images.cols) != (test_images.rows, test_images.cols) {
        return Err(Error::BadDataFile {
            path: dir.to_path_buf(),
            problem: format!(
                "train images are {}×{} but test images {}×{}",
                train_images.rows, train_images.cols, test_images.rows, test_images.cols
            ),
        });
    }
    Dataset::from_parts(
        name,
        train_images.rows,
        train_images.cols,
        Split {
            images: train_images.pixels,
            labels: train_labels,
        },
        Split {
            images: test_images.pixels,
            labels: test_labels,
        },
    )
}
