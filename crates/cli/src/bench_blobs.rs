//! `funetun bench blobs`: an owner's large blob uploaded to and downloaded
//! from an orchestrator, with its blobs in a local directory (the baseline)
//! and in an S3 bucket, in the same run; throughput of each, and the
//! orchestrator's peak memory while it moves a small and a large blob.
//!
//! The orchestrator runs as a child process (`funetun orchestrator`), so its
//! peak resident memory (`VmHWM` in `/proc/PID/status`, reset before each
//! transfer through `/proc/PID/clear_refs`) is its own and not the client's.
//! The client streams the upload from a file and hashes the download as it
//! arrives.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use alloy_primitives::{B256, Keccak256};
use anyhow::Context as _;
use funetun_chain::{ContractParams, DevChain, DevChainConfig, Ledger, LedgerConfig};
use funetun_client::Client;
use futures_util::StreamExt as _;
use serde::Serialize;

use crate::chain::runtime;
use crate::output::print_json;

/// Arguments of `funetun bench blobs`.
#[derive(Debug, clap::Args)]
pub struct BlobBenchArgs {
    /// The large blob's size in MiB (the small one is a quarter of it; at
    /// 64 MiB and more, both fill the four 8 MiB parts an S3 upload keeps
    /// in flight, so their peaks compare like for like).
    #[arg(long, default_value_t = 256)]
    pub mib: u64,
    /// The bucket to measure against the local directory:
    /// `s3://bucket/prefix`, reached through the `--s3-*` flags or the
    /// `AWS_*` variables (`scripts/services.sh up DIR garage` starts one).
    /// Without it only the directory is measured.
    #[arg(long)]
    pub s3: Option<String>,
    /// How to reach the bucket.
    #[command(flatten)]
    pub s3_args: crate::orchestrator::S3Args,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    pub json: bool,
}

/// One blob moved through one store.
#[derive(Debug, Serialize)]
pub struct Transfer {
    /// Its size in MiB.
    pub mib: u64,
    /// Upload throughput, MiB/s.
    pub upload_mib_s: f64,
    /// Download throughput, MiB/s (through the orchestrator).
    pub download_mib_s: f64,
    /// The orchestrator's peak resident memory during the upload, MiB.
    pub upload_peak_rss_mib: f64,
    /// … and during the download.
    pub download_peak_rss_mib: f64,
}

/// The report: both stores, and S3 against the directory.
#[derive(Debug, Serialize)]
pub struct BlobBench {
    /// Blobs in a local directory (the baseline).
    pub dir: Vec<Transfer>,
    /// Blobs in the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<Vec<Transfer>>,
    /// S3 upload throughput of the large blob over the directory's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_ratio: Option<f64>,
    /// S3 download throughput of the large blob over the directory's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_ratio: Option<f64>,
    /// The orchestrator's peak memory moving the large blob through S3
    /// over moving the small one (about 1 when it does not grow with size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_rss_growth: Option<f64>,
}

/// Runs `funetun bench blobs`.
pub fn run(args: BlobBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.mib >= 8, "--mib must be at least 8");
    let report = runtime()?.block_on(measure(&args))?;
    let line = |name: &str, t: &[Transfer]| {
        for t in t {
            eprintln!(
                "{name:>9} {:>5} MiB: upload {:>7.1} MiB/s (peak RSS {:>6.1} MiB), download {:>7.1} MiB/s (peak RSS {:>6.1} MiB)",
                t.mib,
                t.upload_mib_s,
                t.upload_peak_rss_mib,
                t.download_mib_s,
                t.download_peak_rss_mib
            );
        }
    };
    line("directory", &report.dir);
    if let Some(s3) = &report.s3 {
        line("s3", s3);
        eprintln!(
            "s3 / directory: upload ×{:.2}, download ×{:.2}; s3 peak RSS, large / small blob: ×{:.2}",
            report.upload_ratio.unwrap_or(f64::NAN),
            report.download_ratio.unwrap_or(f64::NAN),
            report.s3_rss_growth.unwrap_or(f64::NAN),
        );
    }
    if args.json {
        print_json(&report)?;
    }
    Ok(())
}

async fn measure(args: &BlobBenchArgs) -> anyhow::Result<BlobBench> {
    let dir = tempfile::tempdir()?;
    let chain = DevChain::start(DevChainConfig::default()).await?;
    let keys: Vec<_> = chain.accounts().iter().map(|a| a.signer()).collect();
    let (owner, _) = Ledger::deploy(
        funetun_chain::ledger::http_provider(&chain.rpc_url())?,
        keys[0].clone(),
        &ContractParams::default(),
        LedgerConfig::default(),
    )
    .await?;
    let sizes = [args.mib / 4, args.mib];
    let mut files = Vec::new();
    for (i, mib) in sizes.iter().enumerate() {
        let path = dir.path().join(format!("blob-{mib}.bin"));
        let hash = write_noise(&path, mib << 20, i as u64 + 1)?;
        files.push((*mib, path, hash));
    }
    let leader = crate::keys::key_hex(&keys[1]);
    let orchestrator = |name: &str, blobs: String| Child {
        rpc: chain.rpc_url(),
        contract: owner.contract().to_string(),
        leader: leader.clone(),
        db: format!(
            "sqlite://{}",
            dir.path().join(format!("{name}.db")).display()
        ),
        blobs,
        s3: args.s3_args.clone(),
    };
    let local = orchestrator("dir", dir.path().join("blobs").display().to_string());
    let dir_report = local.measure(&keys[0], &files).await?;
    let s3_report = match &args.s3 {
        Some(bucket) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let folder = format!("{}/bench-{nanos}", bucket.trim_end_matches('/'));
            Some(orchestrator("s3", folder).measure(&keys[0], &files).await?)
        }
        None => None,
    };
    chain.stop().await?;
    let large = |t: &[Transfer]| t.last().map(|t| (t.upload_mib_s, t.download_mib_s));
    let (upload_ratio, download_ratio) = match (large(&dir_report), s3_report.as_deref()) {
        (Some((du, dd)), Some(s3)) => {
            let (su, sd) = large(s3).unwrap_or_default();
            (Some(su / du), Some(sd / dd))
        }
        _ => (None, None),
    };
    let s3_rss_growth = s3_report.as_deref().and_then(|t| {
        let peak = |t: &Transfer| t.upload_peak_rss_mib.max(t.download_peak_rss_mib);
        Some(peak(t.last()?) / peak(t.first()?))
    });
    Ok(BlobBench {
        dir: dir_report,
        s3: s3_report,
        upload_ratio,
        download_ratio,
        s3_rss_growth,
    })
}

/// `len` pseudo-random bytes into `path`, written in 1 MiB pieces; their
/// keccak256.
fn write_noise(path: &Path, len: u64, seed: u64) -> anyhow::Result<B256> {
    use std::io::Write as _;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = Keccak256::new();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut piece = vec![0u8; 1 << 20];
    for _ in 0..len >> 20 {
        for word in piece.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        hasher.update(&piece);
        file.write_all(&piece)?;
    }
    file.flush()?;
    Ok(hasher.finalize())
}

/// An orchestrator process to measure.
struct Child {
    rpc: String,
    contract: String,
    leader: String,
    db: String,
    blobs: String,
    s3: crate::orchestrator::S3Args,
}

impl Child {
    /// Starts it, moves each file up and down, stops it.
    async fn measure(
        &self,
        owner: &alloy_signer_local::PrivateKeySigner,
        files: &[(u64, PathBuf, B256)],
    ) -> anyhow::Result<Vec<Transfer>> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let exe = std::env::current_exe().context("locating this binary")?;
        let mut command = tokio::process::Command::new(exe);
        command
            .args([
                "orchestrator",
                "--rpc",
                &self.rpc,
                "--contract",
                &self.contract,
            ])
            .args(["--db", &self.db, "--blobs", &self.blobs])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("FUNETUN_KEY", &self.leader)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for (flag, value) in [
            ("--s3-endpoint", &self.s3.s3_endpoint),
            ("--s3-region", &self.s3.s3_region),
            ("--s3-access-key-id", &self.s3.s3_access_key_id),
        ] {
            if let Some(value) = value {
                command.args([flag, value]);
            }
        }
        let mut child = command.spawn().context("starting the orchestrator")?;
        let pid = child.id().context("the orchestrator exited at once")?;
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{url}/healthz")).await.is_err() {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("the orchestrator ({}) exited: {status}", self.blobs);
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the orchestrator did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let client = Client::new(&url, Some(owner.clone()));
        let mut transfers = Vec::new();
        for (mib, path, hash) in files {
            reset_peak(pid)?;
            let t = Instant::now();
            client
                .put_data_file(path, *hash, mib << 20)
                .await
                .with_context(|| format!("uploading {mib} MiB to {}", self.blobs))?;
            let upload = t.elapsed().as_secs_f64();
            let upload_peak = peak_rss_mib(pid)?;
            reset_peak(pid)?;
            let t = Instant::now();
            download(&url, *hash).await?;
            let download_secs = t.elapsed().as_secs_f64();
            transfers.push(Transfer {
                mib: *mib,
                upload_mib_s: *mib as f64 / upload,
                download_mib_s: *mib as f64 / download_secs,
                upload_peak_rss_mib: upload_peak,
                download_peak_rss_mib: peak_rss_mib(pid)?,
            });
        }
        child.kill().await?;
        Ok(transfers)
    }
}

/// Downloads blob `hash`, hashing it as it arrives; fails unless it checks.
async fn download(url: &str, hash: B256) -> anyhow::Result<()> {
    let response = reqwest::get(format!("{url}/v1/blobs/{hash}")).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "download: {}",
        response.status()
    );
    let mut stream = response.bytes_stream();
    let mut hasher = Keccak256::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    let actual = hasher.finalize();
    anyhow::ensure!(actual == hash, "downloaded {actual}, not {hash}");
    Ok(())
}

/// Resets the process's peak resident memory to its current one.
fn reset_peak(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .context("resetting the orchestrator's peak memory (/proc/PID/clear_refs)")
}

/// The process's peak resident memory since the last reset, MiB.
fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/PID/status")?;
    Ok(kib / 1024.0)
}
