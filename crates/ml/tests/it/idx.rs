//! IDX parsing of the real files and of crafted bad ones.

use std::io::Write;
use std::path::Path;

use funetun_ml::data::idx::{self, IdxImages};
use funetun_ml::{Dataset, DatasetName, Error, LoadOptions};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn small_images(count: usize) -> IdxImages {
    IdxImages {
        count,
        rows: 28,
        cols: 28,
        pixels: (0..count * 784).map(|i| (i % 251) as u8).collect(),
    }
}

/// Writes a complete little IDX data set directory.
fn write_set(dir: &Path, compress: bool) {
    let files = [
        (
            "train-images-idx3-ubyte",
            idx::images_to_bytes(&small_images(20)),
        ),
        ("train-labels-idx1-ubyte", idx::labels_to_bytes(&[3; 20])),
        (
            "t10k-images-idx3-ubyte",
            idx::images_to_bytes(&small_images(5)),
        ),
        ("t10k-labels-idx1-ubyte", idx::labels_to_bytes(&[9; 5])),
    ];
    for (name, bytes) in files {
        if compress {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

fn problem(err: Error) -> String {
    match err {
        Error::BadDataFile { path, problem } => format!("{} {problem}", path.display()),
        other => panic!("expected BadDataFile, got {other}"),
    }
}

#[test]
fn real_mnist_and_fashion_parse_with_the_published_shapes() {
    let Some(mnist) = crate::mnist() else {
        eprintln!("skipped: FUNETUN_DATA_DIR is not set");
        return;
    };
    assert_eq!(
        (mnist.train.len(), mnist.test.len(), mnist.input_size()),
        (60_000, 10_000, 28 * 28)
    );
    // The first training label of MNIST is a 5, the first test label a 7.
    assert_eq!((mnist.train.labels()[0], mnist.test.labels()[0]), (5, 7));
    let mut counts = [0usize; 10];
    for &l in mnist.train.labels() {
        counts[l as usize] += 1;
    }
    assert_eq!(counts[1], 6742, "MNIST has 6742 ones in its training split");
    // The normalisation matches MNIST's well-known mean 0.1307 / std 0.3081.
    let funetun_ml::data::Form::Images { normalize, .. } = &mnist.form else {
        panic!("MNIST is images");
    };
    let zero = normalize[0];
    assert!((zero + 0.1307 / 0.3081).abs() < 1e-3, "{zero}");

    let fashion = Dataset::load(
        &DatasetName::FashionMnist,
        &LoadOptions {
            download: false,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!((fashion.train.len(), fashion.test.len()), (60_000, 10_000));
    assert!(fashion.train.labels().iter().all(|&l| l < 10));
}

#[test]
fn gzip_and_raw_directories_load_alike() {
    for compress in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), compress);
        let d = Dataset::load(
            &DatasetName::Path(dir.path().to_path_buf()),
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!((d.train.len(), d.test.len()), (20, 5));
        assert_eq!(d.train.images(), small_images(20).pixels);
    }
}

#[test]
fn wrong_magic_is_named() {
    let p = Path::new("labels-as-images");
    let msg = problem(idx::parse_images(&idx::labels_to_bytes(&[1, 2]), p).unwrap_err());
    assert!(
        msg.contains("labels-as-images") && msg.contains("label file"),
        "{msg}"
    );
    let msg =
        problem(idx::parse_labels(&idx::images_to_bytes(&small_images(1)), p, 10).unwrap_err());
    assert!(msg.contains("image file"), "{msg}");
}

#[test]
fn truncated_and_oversized_payloads_are_refused() {
    let p = Path::new("f");
    let bytes = idx::images_to_bytes(&small_images(3));
    let msg = problem(idx::parse_images(&bytes[..bytes.len() - 1], p).unwrap_err());
    assert!(msg.contains("truncated"), "{msg}");
    let mut long = bytes.clone();
    long.push(0);
    assert!(problem(idx::parse_images(&long, p).unwrap_err()).contains("3 images"));
    assert!(problem(idx::parse_images(&bytes[..10], p).unwrap_err()).contains("too short"));
    let labels = idx::labels_to_bytes(&[1, 2, 3]);
    assert!(problem(idx::parse_labels(&labels[..9], p, 10).unwrap_err()).contains("truncated"));
}

#[test]
fn bad_dimensions_and_labels_are_refused() {
    let p = Path::new("f");
    let mut bytes = idx::images_to_bytes(&small_images(1));
    bytes[8..12].copy_from_slice(&0u32.to_be_bytes());
    assert!(problem(idx::parse_images(&bytes, p).unwrap_err()).contains("implausible"));
    let msg = problem(idx::parse_labels(&idx::labels_to_bytes(&[1, 10, 2]), p, 10).unwrap_err());
    assert!(msg.contains("label 10 at index 1"), "{msg}");
}

#[test]
fn corrupt_gzip_and_mismatched_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), true);
    let f = dir.path().join("train-images-idx3-ubyte.gz");
    let good = std::fs::read(&f).unwrap();
    std::fs::write(&f, &good[..good.len() / 2]).unwrap();
    let name = DatasetName::Path(dir.path().to_path_buf());
    let msg = problem(Dataset::load(&name, &LoadOptions::default()).unwrap_err());
    assert!(
        msg.contains("train-images-idx3-ubyte.gz") && msg.contains("gzip"),
        "{msg}"
    );

    write_set(dir.path(), true);
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte.gz"),
        gz(&idx::labels_to_bytes(&[1; 19])),
    )
    .unwrap();
    let msg = problem(Dataset::load(&name, &LoadOptions::default()).unwrap_err());
    assert!(msg.contains("differ in count"), "{msg}");

    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let err = Dataset::load(&name, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing t10k-labels-idx1-ubyte"), "{err}");
}

/// A local copy of a known data set is checked against its published
/// SHA-256 before use: a corrupted but readable MNIST (one label changed, in
/// an uncompressed copy) is refused, naming the file, instead of training
/// updates that fail replay.
#[test]
fn a_corrupted_but_readable_local_copy_is_refused_by_its_checksum() {
    let Some(shared) = std::env::var_os("FUNETUN_DATA_DIR") else {
        eprintln!("skipped: FUNETUN_DATA_DIR is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mnist");
    std::fs::create_dir_all(&copy).unwrap();
    for stem in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let packed =
            std::fs::read(Path::new(&shared).join("mnist").join(format!("{stem}.gz"))).unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut raw)
            .unwrap();
        std::fs::write(copy.join(stem), raw).unwrap();
    }
    let options = LoadOptions {
        data_dir: Some(dir.path()),
        download: false,
        progress: None,
    };
    // The uncompressed original passes, and is remembered as verified.
    let data = Dataset::load(&DatasetName::Mnist, &options).unwrap();
    assert_eq!(data.train.len(), 60_000);
    let labels = copy.join("train-labels-idx1-ubyte");
    assert!(funetun_ml::data::locate::is_verified(&labels));

    // One label changed to another valid label: the file still parses.
    let mut bytes = std::fs::read(&labels).unwrap();
    bytes[8 + 100] = (bytes[8 + 100] + 1) % 10;
    std::fs::write(&labels, &bytes).unwrap();
    assert!(!funetun_ml::data::locate::is_verified(&labels));
    let msg = problem(Dataset::load(&DatasetName::Mnist, &options).unwrap_err());
    assert!(
        msg.contains("train-labels-idx1-ubyte")
            && msg.contains("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "{msg}"
    );
}

#[test]
fn a_missing_data_set_offline_says_how_to_point_at_files() {
    let dir = tempfile::tempdir().unwrap();
    let options = LoadOptions {
        data_dir: Some(dir.path()),
        download: false,
        progress: None,
    };
    // Only meaningful when nothing else provides Fashion-MNIST.
    if std::env::var_os("FUNETUN_DATA_DIR").is_some() {
        return;
    }
    let err = Dataset::load(&DatasetName::FashionMnist, &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--data-dir") && err.contains("FUNETUN_DATA_DIR"),
        "{err}"
    );
}

#[test]
fn data_set_names_parse() {
    assert_eq!("mnist".parse::<DatasetName>().unwrap(), DatasetName::Mnist);
    assert_eq!(
        "synthetic:7".parse::<DatasetName>().unwrap(),
        DatasetName::Synthetic(7)
    );
    let err = "imagenet".parse::<DatasetName>().unwrap_err().to_string();
    assert!(
        err.contains("mnist, fashion-mnist, tinyshakespeare[:byte], synthetic"),
        "{err}"
    );
    assert!("synthetic:x".parse::<DatasetName>().is_err());
}
