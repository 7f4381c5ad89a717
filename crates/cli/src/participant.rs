//! `funetun trainer`, `funetun validator` and `funetun withdraw`: the
//! participant processes, against any orchestrator and any Ethereum RPC.

use std::path::PathBuf;
use std::time::Duration;

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::Context as _;
use funetun_chain::{Ledger, LedgerConfig};
use funetun_core::amount::{format_eth, parse_amount, wei};
use funetun_core::api::Capacity;
use funetun_participant::{DataConfig, Endpoints};
use serde::Serialize;

use crate::chain::{runtime, shutdown_signal};
use crate::keys::KeyArgs;
use crate::output::print_json;

/// Where a participant connects, and as whom.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Base URL of the orchestrator; the URLs of its replicas separated by
    /// commas to fail over between them.
    #[arg(
        long,
        env = "FUNETUN_ORCHESTRATOR",
        default_value = "http://127.0.0.1:8080"
    )]
    pub orchestrator: String,
    /// Ethereum JSON-RPC endpoint.
    #[arg(long, env = "FUNETUN_RPC", default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// Address of the JobManager contract.
    #[arg(long, env = "FUNETUN_CONTRACT")]
    pub contract: Address,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Blocks a transaction must be under before it counts (1 = included).
    #[arg(long, env = "FUNETUN_CONFIRMATIONS", default_value_t = 1)]
    pub confirmations: u64,
}

impl ConnectArgs {
    /// The endpoints and the parsed key.
    pub fn resolve(&self) -> anyhow::Result<(Endpoints, PrivateKeySigner)> {
        let key = self.key.signer()?;
        runtime()?.block_on(self.key.warn_if_exposed(&self.rpc));
        Ok((
            Endpoints {
                orchestrator: self.orchestrator.clone(),
                rpc_url: self.rpc.clone(),
                contract: self.contract,
                confirmations: self.confirmations,
            },
            key,
        ))
    }
}

/// What a trainer or validator does besides connecting.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkArgs {
    /// Compute threads.
    #[arg(long, env = "FUNETUN_THREADS", default_value_t = 1)]
    pub threads: usize,
    /// Directory holding data sets (searched before FUNETUN_DATA_DIR and the cache).
    #[arg(long, env = "FUNETUN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Never download missing data sets.
    #[arg(long, env = "FUNETUN_OFFLINE")]
    pub offline: bool,
    /// Checkpoint cache (and the trainer's submission journal).
    #[arg(long, env = "FUNETUN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Stake to hold, e.g. `0.05eth` (the contract's minimum if lower).
    #[arg(long, env = "FUNETUN_STAKE", default_value = "0.01eth")]
    pub stake: String,
    /// Work only on this job (default: the oldest active one).
    #[arg(long, env = "FUNETUN_JOB")]
    pub job: Option<u64>,
    /// Exit when the job is over instead of waiting for the next one.
    #[arg(long)]
    pub exit_when_done: bool,
    /// Seconds between polls when there is nothing to do.
    #[arg(long, env = "FUNETUN_POLL_SECS", default_value_t = 0.2)]
    pub poll_secs: f64,
    /// Print one JSON report line when stopping.
    #[arg(long, env = "FUNETUN_JSON")]
    pub json: bool,
}

impl WorkArgs {
    fn data(&self) -> DataConfig {
        DataConfig {
            data_dir: self.data_dir.clone(),
            download: !self.offline,
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }

    fn stake(&self) -> anyhow::Result<U256> {
        parse_amount(&self.stake).map_err(|e| anyhow::anyhow!("--stake: {e}"))
    }

    fn poll(&self) -> anyhow::Result<Duration> {
        anyhow::ensure!(
            self.poll_secs.is_finite() && self.poll_secs > 0.0 && self.poll_secs <= 600.0,
            "--poll-secs must be in (0, 600]"
        );
        Ok(Duration::from_secs_f64(self.poll_secs))
    }
}

/// Where participants cache blobs and their journal by default.
fn default_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("funetun")
        .join("participant")
}

/// Arguments of `funetun trainer`.
#[derive(Debug, clap::Args)]
pub struct TrainerArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    work: WorkArgs,
    /// Declared size: S (half the job's steps), M, L (double).
    #[arg(long, env = "FUNETUN_CAPACITY", default_value = "M")]
    capacity: Capacity,
    /// Stop after this many tasks.
    #[arg(long)]
    max_tasks: Option<u64>,
    /// Run X times slower than this machine can (X ≥ 1): after each task's
    /// training, wait (X − 1) times its training time. The update is the
    /// same; for tests and measurements of stragglers.
    #[arg(long, env = "FUNETUN_SLOWDOWN", default_value_t = 1.0, value_parser = parse_slowdown)]
    slowdown: f64,
    /// Keep taking work for a job after validators rejected one of this
    /// trainer's own updates there (by default it stops working on that
    /// job, since every further update would be slashed too).
    #[arg(long)]
    continue_after_rejection: bool,
    /// Forge every update (tests and demos of the defences): sign-flip,
    /// scale:X, noise, nan, zero, stale, copy, lazy, wrong-shard.
    #[arg(long, env = "FUNETUN_ATTACK")]
    attack: Option<funetun_trainer::attack::Attack>,
}

/// Arguments of `funetun validator`.
#[derive(Debug, clap::Args)]
pub struct ValidatorArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    work: WorkArgs,
    /// Vote without checking (tests of the quorum): always-valid,
    /// always-invalid, random.
    #[arg(long, env = "FUNETUN_VALIDATOR_ATTACK")]
    attack: Option<funetun_validator::validator::ValidatorAttack>,
}

/// `funetun challenger`: replays updates during their challenge windows and
/// challenges mismatches with the contract's bond.
#[derive(Debug, clap::Args)]
pub struct ChallengerArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    work: WorkArgs,
    /// Share of updates to replay, in [0, 1] (1: every update).
    #[arg(long, env = "FUNETUN_CHALLENGE_SAMPLE", default_value_t = 1.0)]
    sample: f64,
}

/// Arguments of `funetun withdraw`, `funetun leave` and `funetun unstake`:
/// the chain, the contract and the account's key.
#[derive(Debug, clap::Args)]
pub struct LedgerArgs {
    /// Ethereum JSON-RPC endpoint.
    #[arg(long, env = "FUNETUN_RPC", default_value = "http://127.0.0.1:8545")]
    rpc: String,
    /// Address of the JobManager contract.
    #[arg(long, env = "FUNETUN_CONTRACT")]
    contract: Address,
    #[command(flatten)]
    key: KeyArgs,
    /// Print one JSON line.
    #[arg(long, env = "FUNETUN_JSON")]
    json: bool,
}

impl LedgerArgs {
    /// The contract, signed for by the key.
    async fn ledger(&self) -> anyhow::Result<Ledger> {
        let key = self.key.signer()?;
        self.key.warn_if_exposed(&self.rpc).await;
        Ok(Ledger::connect(&self.rpc, self.contract, key, LedgerConfig::default()).await?)
    }
}

/// Arguments of `funetun account`.
#[derive(Debug, clap::Args)]
pub struct AccountArgs {
    /// Ethereum JSON-RPC endpoint.
    #[arg(long, env = "FUNETUN_RPC", default_value = "http://127.0.0.1:8545")]
    rpc: String,
    /// Address of the JobManager contract.
    #[arg(long, env = "FUNETUN_CONTRACT")]
    contract: Address,
    /// The account to show (default: the key's).
    #[arg(long)]
    address: Option<Address>,
    #[command(flatten)]
    key: KeyArgs,
    /// Also show the orchestrator's record of the account (effective compute,
    /// accepted and rejected updates, votes).
    #[arg(long, env = "FUNETUN_ORCHESTRATOR")]
    orchestrator: Option<String>,
    /// Print one JSON line.
    #[arg(long, env = "FUNETUN_JSON")]
    json: bool,
}

/// What `funetun account` prints.
#[derive(Debug, Serialize)]
struct AccountReport {
    /// The account.
    address: Address,
    /// Its ether balance.
    #[serde(with = "wei")]
    balance_wei: U256,
    /// Its stake in the contract.
    #[serde(with = "wei")]
    stake_wei: U256,
    /// Payments credited and not yet withdrawn (`funetun withdraw`).
    #[serde(with = "wei")]
    credit_wei: U256,
    /// `trainer`, `validator`.
    roles: Vec<&'static str>,
    /// Unix time its stake unlocks, once it asked to leave.
    unlock_at: Option<u64>,
    /// Its updates and stored votes that await a verdict (it may not leave
    /// while any do).
    pending_verdicts: u16,
    /// This machine's platform class (replays are bit-exact within a class).
    platform: String,
    /// The orchestrator's record, when `--orchestrator` answered.
    orchestrator: Option<funetun_core::api::ParticipantInfo>,
}

/// `--slowdown X`: a finite factor from 1 to 1000./// `--slowdown X`: a finite factor from 1 to 1000.
pub fn parse_slowdown(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && (1.0..=1000.0).contains(&x) => Ok(x),
        _ => Err(format!("`{s}`: give a factor from 1 (full speed) to 1000")),
    }
}

/// Runs `funetun trainer` until Ctrl-C/SIGTERM or, with `--exit-when-done`, the job's end.
pub fn run_trainer(args: TrainerArgs) -> anyhow::Result<()> {
    let (endpoints, key) = args.connect.resolve()?;
    let config = funetun_trainer::TrainerConfig {
        endpoints,
        key,
        capacity: args.capacity,
        threads: args.work.threads,
        data: args.work.data(),
        cache_dir: args.work.cache_dir(),
        stake: args.work.stake()?,
        job_id: args.work.job,
        exit_when_over: args.work.exit_when_done,
        max_tasks: args.max_tasks,
        poll: args.work.poll()?,
        slowdown: args.slowdown,
        continue_after_rejection: args.continue_after_rejection,
        attack: args.attack,
    };
    let report = runtime()?.block_on(funetun_trainer::run(config, shutdown_signal()))?;
    eprintln!(
        "trainer {}: {} submitted ({} forged), {} resumed, {} dropped, {} steps in {:.1}s of training, {:.1}s busy",
        report.address,
        report.submitted,
        report.forged,
        report.resumed,
        report.dropped,
        report.steps,
        report.training_seconds,
        report.busy_seconds
    );
    if args.work.json {
        print_json(&report)?;
    }
    Ok(())
}

/// Runs `funetun validator` until Ctrl-C/SIGTERM or, with `--exit-when-done`, the job's end.
pub fn run_validator(args: ValidatorArgs) -> anyhow::Result<()> {
    let (endpoints, key) = args.connect.resolve()?;
    let config = funetun_validator::ValidatorConfig {
        endpoints,
        key,
        threads: args.work.threads,
        data: args.work.data(),
        cache_dir: args.work.cache_dir(),
        stake: args.work.stake()?,
        job_id: args.work.job,
        exit_when_over: args.work.exit_when_done,
        poll: args.work.poll()?,
        attack: args.attack,
    };
    let report = runtime()?.block_on(funetun_validator::run(config, shutdown_signal()))?;
    eprintln!(
        "validator {}: {} votes ({} invalid), {} skipped, {} replay steps",
        report.address, report.votes, report.invalid_votes, report.skipped, report.replay_steps
    );
    if args.work.json {
        print_json(&report)?;
    }
    Ok(())
}

/// Runs `funetun withdraw`: pays out the caller's credits.
pub fn run_challenger(args: ChallengerArgs) -> anyhow::Result<()> {
    let (endpoints, key) = args.connect.resolve()?;
    let config = funetun_validator::challenger::ChallengerConfig {
        endpoints,
        key,
        threads: args.work.threads,
        data: args.work.data(),
        cache_dir: args.work.cache_dir(),
        job_id: args.work.job,
        sample: args.sample,
        exit_when_over: args.work.exit_when_done,
        poll: args.work.poll()?,
    };
    let report = runtime()?.block_on(funetun_validator::challenger::run(
        config,
        shutdown_signal(),
    ))?;
    eprintln!(
        "challenger {}: {} replayed, {} challenged, {} too late, {} replay steps",
        report.address, report.replayed, report.challenges, report.too_late, report.replay_steps
    );
    if args.work.json {
        print_json(&report)?;
    }
    Ok(())
}

/// Runs `funetun withdraw`: sends the account's credits to it.
pub fn run_withdraw(args: LedgerArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let ledger = args.ledger().await?;
        let credit = ledger.account(ledger.address()).await?.credit;
        anyhow::ensure!(
            !credit.is_zero(),
            "{} has no credits to withdraw: it was withdrawn already, or nothing was earned yet \
             (`funetun account` shows the credits)",
            ledger.address()
        );
        let outcome = ledger.withdraw().await?;
        eprintln!(
            "withdrew {} to {} (tx {})",
            format_eth(credit),
            ledger.address(),
            outcome.tx_hash
        );
        if args.json {
            print_json(&serde_json::json!({
                "address": ledger.address(),
                "amount_wei": credit.to_string(),
                "tx_hash": outcome.tx_hash,
            }))?;
        }
        Ok(())
    })
}

/// Runs `funetun account`: the account's stake, credits, balance, roles and
/// (with `--orchestrator`) its record there.
pub fn run_account(args: AccountArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let (key, address) = match (args.address, args.key.is_given()) {
            (Some(address), _) => (funetun_chain::keys::new_key(), address),
            (None, true) => {
                let key = args.key.signer()?;
                let address = key.address();
                (key, address)
            }
            (None, false) => anyhow::bail!(
                "whose account? pass --address ADDR, or the key (--key-file PATH or FUNETUN_KEY)"
            ),
        };
        let ledger = Ledger::connect(&args.rpc, args.contract, key, LedgerConfig::default())
            .await
            .with_context(|| format!("reading the contract {} at {}", args.contract, args.rpc))?;
        let view = ledger.account(address).await?;
        let balance = ledger.balance(address).await?;
        let mut roles = Vec::new();
        if view.roles & funetun_chain::bindings::roles::TRAINER != 0 {
            roles.push("trainer");
        }
        if view.roles & funetun_chain::bindings::roles::VALIDATOR != 0 {
            roles.push("validator");
        }
        let orchestrator = match &args.orchestrator {
            Some(url) => match funetun_client::Client::new(url, None).participants().await {
                Ok(list) => list.into_iter().find(|p| p.address == address),
                Err(e) => {
                    eprintln!("(the orchestrator at {url} did not answer: {e})");
                    None
                }
            },
            None => None,
        };
        let report = AccountReport {
            address,
            balance_wei: balance,
            stake_wei: view.stake,
            credit_wei: view.credit,
            roles,
            unlock_at: (view.unlockAt != 0).then_some(view.unlockAt),
            pending_verdicts: view.pending,
            platform: funetun_ml::platform::platform_class(),
            orchestrator,
        };
        print_account(&report);
        if args.json {
            print_json(&report)?;
        }
        Ok(())
    })
}

/// The human form of `funetun account`, on stderr.
fn print_account(r: &AccountReport) {
    let roles = if r.roles.is_empty() {
        "no role".to_string()
    } else {
        r.roles.join(" and ")
    };
    eprintln!("account {}", r.address);
    eprintln!("  balance   {}", format_eth(r.balance_wei));
    eprintln!("  stake     {} ({roles})", format_eth(r.stake_wei));
    if let Some(at) = r.unlock_at {
        eprintln!(
            "  leaving   the stake unlocks at {}; then `funetun unstake`",
            funetun_chain::explain::when(at)
        );
    }
    eprintln!(
        "  credits   {}{}",
        format_eth(r.credit_wei),
        if r.credit_wei.is_zero() {
            ""
        } else {
            " (`funetun withdraw` sends them)"
        }
    );
    if r.pending_verdicts > 0 {
        eprintln!(
            "  pending   {} updates or votes await a verdict",
            r.pending_verdicts
        );
    }
    eprintln!("  platform  {} (this machine)", r.platform);
    if let Some(p) = &r.orchestrator {
        eprintln!(
            "  record    effective compute {:.4} ut, {} accepted, {} rejected, {} votes; earned {}, slashed {}",
            p.reputation,
            p.accepted,
            p.rejected,
            p.validations,
            format_eth(p.earned_wei),
            format_eth(p.slashed_wei)
        );
    }
}

/// Runs `funetun leave`: gives up every role; the stake unlocks after the
/// contract's cooldown.
pub fn run_leave(args: LedgerArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let ledger = args.ledger().await?;
        let outcome = ledger.request_leave().await?;
        let view = ledger.account(ledger.address()).await?;
        eprintln!(
            "{} left every role (tx {}); its stake of {} unlocks at {}: run `funetun unstake` then",
            ledger.address(),
            outcome.tx_hash,
            format_eth(view.stake),
            funetun_chain::explain::when(view.unlockAt)
        );
        if args.json {
            print_json(&serde_json::json!({
                "address": ledger.address(),
                "tx_hash": outcome.tx_hash,
                "stake_wei": view.stake.to_string(),
                "unlock_at": view.unlockAt,
            }))?;
        }
        Ok(())
    })
}

/// Runs `funetun unstake`: sends the whole stake back once the leave
/// cooldown has passed.
pub fn run_unstake(args: LedgerArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let ledger = args.ledger().await?;
        let stake = ledger.account(ledger.address()).await?.stake;
        let outcome = ledger.withdraw_stake().await?;
        eprintln!(
            "sent the stake of {} back to {} (tx {})",
            format_eth(stake),
            ledger.address(),
            outcome.tx_hash
        );
        if args.json {
            print_json(&serde_json::json!({
                "address": ledger.address(),
                "amount_wei": stake.to_string(),
                "tx_hash": outcome.tx_hash,
            }))?;
        }
        Ok(())
    })
}

/// Arguments of `funetun gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// The participant's cache directory (as given to `funetun trainer`,
    /// `validator` or `challenger`; the same default).
    #[arg(long, env = "FUNETUN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Remove blobs unused for this many seconds.
    #[arg(long, default_value_t = funetun_participant::blobs::CACHE_IDLE.as_secs())]
    idle_secs: u64,
    /// Then remove the least recently used blobs until at most this many
    /// MiB remain.
    #[arg(long)]
    max_mb: Option<u64>,
}

/// Runs `funetun gc`: prunes the blob cache, prints
/// `{"removed","freed_bytes","kept","kept_bytes"}`. The journal and the
/// data sets are not touched; every blob removed is fetched again by hash
/// when needed.
pub fn run_gc(args: GcArgs) -> anyhow::Result<()> {
    let cache = args.cache_dir.unwrap_or_else(default_cache_dir);
    let dir = cache.join("blobs");
    anyhow::ensure!(
        dir.is_dir(),
        "{} is not a participant's blob cache (no blobs/ inside); pass the --cache-dir the \
         participant runs with",
        cache.display()
    );
    let blobs = funetun_core::blobs::BlobDir::open(&dir)?;
    let pruned = blobs.prune(
        Some(Duration::from_secs(args.idle_secs)),
        args.max_mb.map(|mb| mb.saturating_mul(1 << 20)),
    )?;
    print_json(&pruned)
}
