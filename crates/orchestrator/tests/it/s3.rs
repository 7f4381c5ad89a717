//! Blobs in a real S3-compatible bucket (Garage, from `scripts/services.sh`):
//! streamed multipart uploads that store nothing unless the bytes hash to
//! their name, downloads checked on the way out, presigned redirects, an
//! altered object refused on read, and the bucket going away under a
//! running job.
//!
//! They need a bucket (`common::S3_VAR` and the `AWS_*` variables), so they
//! are ignored by a plain `cargo test`; the test command's second pass
//! starts Garage and runs them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::B256;
use funetun_client::{Client, ClientError};
use funetun_core::keccak256;
use funetun_orchestrator::blobs::{BlobLocation, Secret};
use object_store::ObjectStoreExt as _;
use object_store::aws::AmazonS3Builder;

use crate::common::{
    Env, S3_VAR, Services, s3_location, services, synthetic, tiny_spec, train_until_leased,
    wait_first_round_closed,
};

const GUARD: Duration = Duration::from_secs(90);

/// A fresh folder in the bucket the test command started.
fn bucket() -> BlobLocation {
    let raw = std::env::var(S3_VAR).unwrap_or_else(|_| {
        panic!("{S3_VAR} is unset: run these through the test command, which starts Garage")
    });
    s3_location(&raw)
}

/// A client of the same bucket that bypasses the orchestrator.
fn raw_bucket(location: &BlobLocation) -> (object_store::aws::AmazonS3, String) {
    let BlobLocation::S3(s3) = location else {
        panic!("not a bucket: {location}");
    };
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(&s3.bucket)
        .with_allow_http(true)
        .build()
        .unwrap();
    (store, s3.prefix.clone())
}

fn key(prefix: &str, hash: B256) -> object_store::path::Path {
    let hex = hex::encode(hash);
    object_store::path::Path::from(format!("{prefix}/{}/{hex}.bin", &hex[..2]))
}

/// Pseudo-random bytes (no two 8 MiB parts alike).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 bucket: the test command's second pass runs it"]
async fn a_large_upload_goes_in_parts_and_a_refused_one_leaves_nothing() {
    let env = Env::new().await;
    let mut config = env.config();
    config.blobs = bucket();
    config.auth.max_data_bytes = 24 << 20;
    let (raw, prefix) = raw_bucket(&config.blobs);
    let orchestrator = funetun_orchestrator::start(config).await.unwrap();
    let owner = Client::new(&orchestrator.url(), Some(env.keys[0].clone()));

    // 20 MiB: three parts of the multipart upload.
    let bytes = noise(20 << 20, 7);
    let hash = keccak256(&bytes);
    let file = write_file(env.dir.path(), "data.bin", &bytes);
    owner
        .put_data_file(&file, hash, bytes.len() as u64)
        .await
        .unwrap();
    assert_eq!(owner.get_blob(hash).await.unwrap(), bytes);
    let stored = raw.head(&key(&prefix, hash)).await.unwrap();
    assert_eq!(stored.size, bytes.len() as u64);

    // Bytes that hash to another name: refused, and no object appears.
    let other = noise(9 << 20, 8);
    let wrong = write_file(env.dir.path(), "other.bin", &other);
    let named = keccak256(b"not these bytes");
    match owner.put_data_file(&wrong, named, other.len() as u64).await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (400, "hash_mismatch"));
        }
        other => panic!("a mislabelled upload: {other:?}"),
    }
    assert!(matches!(
        raw.head(&key(&prefix, named)).await,
        Err(object_store::Error::NotFound { .. })
    ));
    match owner.get_blob(named).await {
        Err(ClientError::Api { status, .. }) => assert_eq!(status, 404),
        other => panic!("a refused blob was served: {other:?}"),
    }

    // Over the limit: refused from its declared length, nothing stored. The
    // server answers 413 and closes the connection at once, so a client
    // still writing the body may see the broken pipe before the answer.
    let big = noise(25 << 20, 9);
    let big_hash = keccak256(&big);
    let big_file = write_file(env.dir.path(), "big.bin", &big);
    match owner
        .put_data_file(&big_file, big_hash, big.len() as u64)
        .await
    {
        Err(ClientError::Api { status, .. }) => assert_eq!(status, 413),
        Err(ClientError::Transport { .. }) => {}
        other => panic!("an upload over the limit: {other:?}"),
    }
    assert!(matches!(
        raw.head(&key(&prefix, big_hash)).await,
        Err(object_store::Error::NotFound { .. })
    ));
    orchestrator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 bucket: the test command's second pass runs it"]
async fn an_object_altered_in_the_bucket_is_refused_on_read() {
    let env = Env::new().await;
    let mut config = env.config();
    config.blobs = bucket();
    let (raw, prefix) = raw_bucket(&config.blobs);
    let orchestrator = funetun_orchestrator::start(config).await.unwrap();
    let owner = Client::new(&orchestrator.url(), Some(env.keys[0].clone()));
    let spec = tiny_spec(0.0).to_toml().into_bytes();
    let hash = owner.put_spec(spec.clone()).await.unwrap();
    assert_eq!(owner.get_blob(hash).await.unwrap(), spec);

    // Someone with access to the bucket changes the object's bytes.
    let mut altered = spec.clone();
    altered[0] ^= 1;
    raw.put(&key(&prefix, hash), altered.into()).await.unwrap();

    // The download breaks off before its last byte (here, a one-chunk
    // blob, before its head), so no client takes the altered bytes for
    // the blob…
    let served = match reqwest::get(format!("{}/v1/blobs/{hash}", orchestrator.url())).await {
        Ok(response) => response.bytes().await.ok(),
        Err(_) => None,
    };
    assert_eq!(served, None, "an altered blob was served whole");
    assert!(owner.get_blob(hash).await.is_err());
    // …and the orchestrator's own reads refuse it, saying what to do.
    let e = orchestrator
        .state()
        .blobs
        .get(hash)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("damaged") && e.contains("Restore"), "{e}");
    // Put back, it reads again.
    raw.put(&key(&prefix, hash), spec.clone().into())
        .await
        .unwrap();
    assert_eq!(owner.get_blob(hash).await.unwrap(), spec);
    orchestrator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 bucket: the test command's second pass runs it"]
async fn with_redirects_downloads_come_from_the_bucket() {
    let env = Env::new().await;
    let mut config = env.config();
    let mut location = bucket();
    if let BlobLocation::S3(s3) = &mut location {
        s3.redirect = true;
    }
    config.blobs = location;
    let orchestrator = funetun_orchestrator::start(config).await.unwrap();
    let owner = Client::new(&orchestrator.url(), Some(env.keys[0].clone()));
    let spec = tiny_spec(0.0).to_toml().into_bytes();
    let hash = owner.put_spec(spec.clone()).await.unwrap();

    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_follow
        .get(format!("{}/v1/blobs/{hash}", orchestrator.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    assert!(
        location.starts_with(&endpoint) && location.contains("X-Amz-Signature"),
        "{location}"
    );
    // The presigned URL serves the blob without the orchestrator, and the
    // client (which follows redirects and checks the hash) gets it.
    let direct = reqwest::get(&location).await.unwrap();
    assert_eq!(direct.status(), 200);
    assert_eq!(direct.bytes().await.unwrap(), spec);
    assert_eq!(owner.get_blob(hash).await.unwrap(), spec);
    // A blob that is not there is still a JSON 404, not a redirect.
    match owner.get_blob(B256::repeat_byte(7)).await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "unknown_blob"));
        }
        other => panic!("a missing blob: {other:?}"),
    }
    orchestrator.shutdown().await.unwrap();
}

fn line<'a>(lines: &'a str, name: &str) -> &'a str {
    lines
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} line in {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops an S3 server of its own (Garage): the test command's second pass runs it"]
async fn an_unreachable_bucket_is_answered_503_and_the_job_goes_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let svc = dir.path().join("services");
    let lines = services("up", &svc, "garage");
    let server = Services(svc.clone());
    let BlobLocation::S3(mut s3) = BlobLocation::parse(line(&lines, "FUNETUN_BLOBS")).unwrap()
    else {
        panic!("not a bucket");
    };
    s3.endpoint = Some(line(&lines, "AWS_ENDPOINT_URL").to_string());
    s3.region = Some(line(&lines, "AWS_REGION").to_string());
    s3.access_key_id = Some(line(&lines, "AWS_ACCESS_KEY_ID").to_string());
    s3.secret_access_key = Some(Secret(line(&lines, "AWS_SECRET_ACCESS_KEY").to_string()));

    let env = Env::new().await;
    let mut config = env.config();
    config.blobs = BlobLocation::S3(s3);
    let orchestrator = funetun_orchestrator::start(config).await.unwrap();
    let url = orchestrator.url();
    let owner = Client::new(&url, Some(env.keys[0].clone()));
    let spec_hash = owner
        .put_spec(tiny_spec(0.0).to_toml().into_bytes())
        .await
        .unwrap();
    let job = env.create_job(&tiny_spec(0.0)).await;
    env.register_trainer(2).await;
    env.register_trainer(3).await;
    let data = synthetic();
    let first = Client::new(&url, Some(env.keys[2].clone()));
    let deadline = tokio::time::Instant::now() + GUARD;
    train_until_leased(&first, &env.ledger(2), job, &data, deadline).await;

    // The server stops: blob reads and uploads say the store is down.
    services("down", &svc, "");
    match owner.get_blob(spec_hash).await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (503, "blob_store_unavailable"));
        }
        other => panic!("a download during the outage: {other:?}"),
    }
    let second = Client::new(&url, Some(env.keys[3].clone()));
    match second.put_blob(job, vec![1, 2, 3]).await {
        Err(ClientError::Api { status, .. }) => assert!(status == 503 || status == 400),
        other => panic!("an upload during the outage: {other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    // It comes back on its data and port; what was stored is there and the
    // job takes the second update and closes its first round.
    services("up", &svc, "garage");
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        match owner.get_blob(spec_hash).await {
            Ok(bytes) => {
                assert_eq!(bytes, tiny_spec(0.0).to_toml().into_bytes());
                break;
            }
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "never back: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    train_until_leased(&second, &env.ledger(3), job, &data, deadline).await;
    wait_first_round_closed(&owner, job, deadline).await;
    orchestrator.shutdown().await.unwrap();
    drop(server);
}
