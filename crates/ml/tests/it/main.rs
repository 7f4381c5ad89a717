//! Integration tests of the ML crate, in one binary.

mod determinism;
mod gradients;
mod hf;
mod idx;
mod learning;
mod lora;
mod transformer;

use funetun_ml::{Dataset, DatasetName, LoadOptions};

/// MNIST from `FUNETUN_DATA_DIR` when it is set and holds it, else `None`.
pub fn mnist() -> Option<Dataset> {
    std::env::var_os("FUNETUN_DATA_DIR")?;
    let options = LoadOptions {
        download: false,
        ..LoadOptions::default()
    };
    match Dataset::load(&DatasetName::Mnist, &options) {
        Ok(d) => Some(d),
        Err(e) => panic!("FUNETUN_DATA_DIR is set but MNIST does not load from it: {e}"),
    }
}

/// MNIST when available, else the synthetic set (saying so).
pub fn mnist_or_synthetic() -> Dataset {
    mnist().unwrap_or_else(|| {
        eprintln!("FUNETUN_DATA_DIR not set: using the synthetic data set");
        funetun_ml::data::synthetic::generate(0, 12_000, 2_000).unwrap()
    })
}
