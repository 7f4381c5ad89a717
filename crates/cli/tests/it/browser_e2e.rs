//! The dashboard in headless Chromium against a real `funetun demo --serve`:
//! the chain, the contract, the orchestrator, trainer and validator processes
//! of the `funetun` binary, watched live by the page.
//!
//! The browser harness is `funetun_dashboard::testing` (feature
//! `browser-test`): where Chromium or chromedriver is missing the test skips
//! with a message, unless `CI` is set, where it fails. Screenshots land in
//! `funetun_dashboard::testing::artifacts_dir()` as `demo_dashboard-<step>.png`.

#![cfg(unix)]

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use funetun_client::Client;
use funetun_core::protocol::{NodeKind, Role, RoundStatus, UpdateStatus};
use funetun_dashboard::testing::{Browser, DEFAULT_WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Rounds of the demo: enough that the page, opened while the job runs,
/// still sees rounds close after it has looked once.
const ROUNDS: u64 = 8;
const TRAINERS: u64 = 4;
const VALIDATORS: u64 = 2;
/// Waits that span demo work (loading data, training, chain transactions):
/// generous, since other tests may train at the same time.
const DEMO_WAIT: Duration = Duration::from_secs(180);

/// `funetun demo --serve` as a child process in its own process group, with
/// its stderr read line by line as it comes.
struct Demo {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
    _out: tempfile::TempDir,
}

impl Demo {
    fn start() -> Result<Self> {
        let out = tempfile::tempdir()?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_funetun"))
            .arg("demo")
            .args(["--dataset", crate::dataset(), "--offline"])
            .args(["--rounds", &ROUNDS.to_string(), "--steps", "60"])
            .args(["--trainers", &TRAINERS.to_string()])
            .args(["--validators", &VALIDATORS.to_string()])
            .arg("--serve")
            .arg("--out")
            .arg(out.path().join("demo-out"))
            .env("FUNETUN_LOG", "warn")
            .env_remove("FUNETUN_JSON")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group, so a failed test can end the demo and the
            // trainer and validator processes it started, and nothing else.
            .process_group(0)
            .spawn()
            .context("starting `funetun demo`")?;
        let stderr = child.stderr.take().context("the demo's stderr")?;
        let (tx, lines) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        Ok(Self {
            child,
            lines,
            stderr: log,
            _out: out,
        })
    }

    /// Everything the demo has written on stderr so far.
    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Reads stderr lines until `pick` finds what it wants in one; fails
    /// when the demo ends first or after `timeout`.
    async fn wait_line<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        pick: impl Fn(&str) -> Option<T>,
    ) -> Result<T> {
        let found = tokio::time::timeout(timeout, async {
            while let Some(line) = self.lines.recv().await {
                if let Some(v) = pick(&line) {
                    return Some(v);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(v)) => Ok(v),
            Ok(None) => bail!(
                "the demo ended before {what}; its stderr:\n{}",
                self.stderr()
            ),
            Err(_) => bail!(
                "waited {timeout:?} for {what}; the demo's stderr:\n{}",
                self.stderr()
            ),
        }
    }

    fn signal(&self, signal: &str, target: String) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args([signal, "--", &target])
            .status()
            .context("running kill")?;
        ensure!(status.success(), "kill {signal} {target}: {status}");
        Ok(())
    }

    /// Sends SIGTERM and waits for the demo to exit.
    async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().context("the demo already exited")?;
        self.signal("-TERM", pid.to_string())?;
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .map_err(|_| anyhow!("the demo did not exit within 60 s of SIGTERM"))?
            .context("waiting for the demo")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The whole group: the demo and any participant it left behind.
            let _ = self.signal("-KILL", format!("-{pid}"));
        }
    }
}

/// The orchestrator URL from the demo's first line,
/// `funetun demo: job 1 — …; chain <rpc>, orchestrator <url>`.
fn orchestrator_url(line: &str) -> Option<String> {
    if !line.starts_with("funetun demo: job ") {
        return None;
    }
    let url = line.rsplit_once(", orchestrator ")?.1.trim();
    url.starts_with("http://").then(|| url.to_owned())
}

/// An update as the table shows it: (trainer, hash, round, status).
type UpdateKey = (String, String, String, String);

async fn api_updates(api: &Client) -> Result<BTreeSet<UpdateKey>> {
    Ok(api
        .updates(1)
        .await?
        .into_iter()
        .map(|u| {
            (
                format!("{:#x}", u.trainer),
                format!("{:#x}", u.update_hash),
                u.round.to_string(),
                u.status.to_string(),
            )
        })
        .collect())
}

async fn page_updates(b: &Browser) -> Result<BTreeSet<UpdateKey>> {
    let rows = b
        .js(
            "return Array.from(document.querySelectorAll('[data-testid=update-row]'), r => \
             [r.dataset.trainer, r.dataset.hash, r.dataset.round, r.dataset.status])",
            vec![],
        )
        .await?;
    serde_json::from_value::<Vec<(String, String, String, String)>>(rows)
        .map(|v| {
            v.into_iter()
                .map(|(t, h, r, s)| (t.to_lowercase(), h.to_lowercase(), r, s))
                .collect()
        })
        .context("reading the updates table")
}

/// Rounds the API lists as closed.
async fn closed_rounds(api: &Client) -> Result<Vec<String>> {
    Ok(api
        .rounds(1)
        .await?
        .into_iter()
        .filter(|r| r.status == RoundStatus::Closed)
        .map(|r| r.round.to_string())
        .collect())
}

const ACCURACY_POINTS: &str = "[data-testid=charts] [data-testid=accuracy-point]";

/// Waits until the accuracy chart has a point per closed round (the same
/// rounds as the API) and returns them.
async fn chart_matches_api(b: &Browser, api: &Client) -> Result<Vec<String>> {
    b.wait_until("a chart point per closed round", DEMO_WAIT, || async {
        let closed = closed_rounds(api).await?;
        let shown = b.attrs(ACCURACY_POINTS, "data-round").await?;
        Ok((shown == closed).then_some(shown))
    })
    .await
}

/// Waits until the updates table lists exactly the API's updates.
async fn table_matches_api(b: &Browser, api: &Client) -> Result<usize> {
    b.wait_until("the updates table to match the API", DEMO_WAIT, || async {
        let want = api_updates(api).await?;
        let shown = page_updates(b).await?;
        Ok((!want.is_empty() && shown == want).then_some(want.len()))
    })
    .await
}

/// How many pairs of edge labels in the graph overlap on screen.
const LABEL_OVERLAPS: &str = "const r = Array.from(document.querySelectorAll('[data-testid=graph-edge-label]'), \
                              e => e.getBoundingClientRect()); let n = 0; \
                              for (let i = 0; i < r.length; i++) for (let j = i + 1; j < r.length; j++) \
                              if (r[i].left < r[j].right && r[j].left < r[i].right \
                                  && r[i].top < r[j].bottom && r[j].top < r[i].bottom) n++; \
                              return n";

const BANNER_SHOWN: &str = "const e = document.querySelector('[data-testid=unreachable-banner]'); \
                            return !!e && !e.hidden && e.getBoundingClientRect().height > 0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_dashboard_follows_a_real_job_in_chromium() -> Result<()> {
    // The browser first, so the page is ready while the job runs.
    let Some(b) = Browser::start("demo_dashboard").await? else {
        return Ok(());
    };
    let mut demo = Demo::start()?;
    let url = demo
        .wait_line("the orchestrator URL", DEMO_WAIT, orchestrator_url)
        .await?;
    let api = Client::new(&url, None);

    // The network view: typed nodes, every trainer and validator of the job.
    b.open(&format!("{url}/")).await?;
    b.wait_count(
        "[data-testid=graph-node][data-type=trainer]",
        TRAINERS,
        DEMO_WAIT,
    )
    .await?;
    b.wait_count(
        "[data-testid=graph-node][data-type=validator]",
        VALIDATORS,
        DEMO_WAIT,
    )
    .await?;
    for kind in ["owner", "orchestrator", "contract"] {
        b.wait_count(
            &format!("[data-testid=graph-node][data-type={kind}]"),
            1,
            DEFAULT_WAIT,
        )
        .await?;
    }
    let graph = api.graph().await?;
    for kind in [NodeKind::Trainer, NodeKind::Validator] {
        let want: BTreeSet<String> = graph
            .nodes
            .iter()
            .filter(|n| n.kind == kind)
            .map(|n| n.id.to_lowercase())
            .collect();
        let shown: BTreeSet<String> = b
            .attrs(
                &format!("[data-testid=graph-node][data-type={kind}]"),
                "data-id",
            )
            .await?
            .into_iter()
            .map(|s| s.to_lowercase())
            .collect();
        ensure!(shown == want, "{kind} nodes {shown:?} != /graph {want:?}");
    }
    b.wait_until("edges in the graph", DEFAULT_WAIT, || async {
        Ok((b.count("[data-testid=graph-edge]").await? > 0).then_some(()))
    })
    .await?;
    b.screenshot("network").await?;

    // The job page, reached by a click: no reload from here on.
    b.wait_count("[data-testid=job-link][data-job-id='1']", 1, DEFAULT_WAIT)
        .await?;
    b.mark_window().await?;
    b.click("[data-testid=job-link][data-job-id='1']").await?;
    b.wait_for(
        "the job page",
        DEFAULT_WAIT,
        "return document.querySelector('main').dataset.view === 'job' \
         && !!document.querySelector('[data-testid=round-charts]')",
    )
    .await?;
    let seen = b.count(ACCURACY_POINTS).await?;
    ensure!(
        seen < ROUNDS,
        "the demo finished all {ROUNDS} rounds before the page looked; \
         there is no round left to watch (raise ROUNDS)"
    );
    b.screenshot("job-running").await?;

    // A new round closes: the chart grows, the page is the same page.
    b.wait_until("a new accuracy point", DEMO_WAIT, || async {
        Ok((b.count(ACCURACY_POINTS).await? > seen).then_some(()))
    })
    .await?;
    b.ensure_not_reloaded().await?;
    let while_running = chart_matches_api(&b, &api).await?;
    ensure!(!while_running.is_empty());
    table_matches_api(&b, &api).await?;
    b.screenshot("job-live").await?;

    // The job ends; the demo prints the dashboard URL and keeps serving.
    let served = demo
        .wait_line("the dashboard line", DEMO_WAIT, |l| {
            l.strip_prefix("dashboard: ")
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        })
        .await?;
    ensure!(
        served == format!("{url}/"),
        "dashboard line `{served}`, orchestrator {url}"
    );
    b.wait_until("the job to show as finished", DEMO_WAIT, || async {
        Ok(
            (b.text("[data-testid=job-status]").await?.as_deref() == Some("finished"))
                .then_some(()),
        )
    })
    .await?;
    let rounds = chart_matches_api(&b, &api).await?;
    let all: Vec<String> = (0..ROUNDS).map(|r| r.to_string()).collect();
    ensure!(rounds == all, "chart rounds {rounds:?}");
    ensure!(
        b.attrs("[data-testid=round-charts]", "data-closed-rounds")
            .await?
            == [ROUNDS.to_string()]
    );
    let updates = table_matches_api(&b, &api).await?;
    ensure!(
        updates as u64 >= ROUNDS * TRAINERS / 2,
        "{updates} updates for {ROUNDS} rounds"
    );
    b.wait_count("[data-testid=round-row]", ROUNDS, DEFAULT_WAIT)
        .await?;
    // The money cards carry the API's exact amounts.
    let job = api.job(1).await?.summary;
    for (card, wei) in [
        ("deposit", job.deposit_wei),
        ("paid", job.paid_wei),
        ("slashed", job.slashed_wei),
        ("remaining", job.remaining_wei),
    ] {
        let shown = b
            .attrs(&format!("[data-testid=money-{card}]"), "data-wei")
            .await?;
        ensure!(shown == [wei.to_string()], "{card}: {shown:?} != {wei}");
    }
    ensure!(job.paid_wei > alloy_primitives::U256::ZERO, "nothing paid");
    b.ensure_not_reloaded().await?;
    b.screenshot("job-finished").await?;
    b.js(
        "document.querySelector('[data-testid=updates-table]').scrollIntoView(); return true",
        vec![],
    )
    .await?;
    b.screenshot("job-finished-tables").await?;

    // The participants page against /v1/participants.
    b.click("[data-testid=nav-participants]").await?;
    let people = api.participants().await?;
    b.wait_count(
        "[data-testid=participant-row]",
        people.len() as u64,
        DEFAULT_WAIT,
    )
    .await?;
    for p in &people {
        let row = format!(
            "[data-testid=participant-row][data-address='{:#x}']",
            p.address
        );
        ensure!(b.count(&row).await? == 1, "no row for {}", p.address);
        let roles = b.attrs(&row, "data-roles").await?;
        ensure!(
            roles
                == [p
                    .roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")],
            "{}: roles {roles:?}",
            p.address
        );
        for (field, want) in [
            ("participant-stake", p.stake_wei.to_string()),
            ("participant-credit", p.credit_wei.to_string()),
        ] {
            let shown = b
                .attrs(&format!("{row} [data-testid={field}]"), "data-wei")
                .await?;
            ensure!(
                shown == [want.clone()],
                "{}: {field} {shown:?} != {want}",
                p.address
            );
        }
        for (field, want) in [("accepted", p.accepted), ("rejected", p.rejected)] {
            let shown = b.text(&format!("{row} [data-field={field}]")).await?;
            ensure!(
                shown.as_deref() == Some(want.to_string().as_str()),
                "{}: {field} {shown:?} != {want}",
                p.address
            );
        }
    }
    let count_role = |role: Role| people.iter().filter(|p| p.roles.contains(&role)).count() as u64;
    ensure!(count_role(Role::Trainer) == TRAINERS && count_role(Role::Validator) == VALIDATORS);
    // The trainers' counts add up to the job's updates.
    let decided = api.updates(1).await?;
    for (status, total) in [
        (
            UpdateStatus::Accepted,
            people.iter().map(|p| p.accepted).sum::<u64>(),
        ),
        (
            UpdateStatus::Rejected,
            people.iter().map(|p| p.rejected).sum::<u64>(),
        ),
    ] {
        let n = decided.iter().filter(|u| u.status == status).count() as u64;
        ensure!(total == n, "participants {status} {total} != updates {n}");
    }
    ensure!(
        !b.js(BANNER_SHOWN, vec![]).await?.as_bool().unwrap_or(true),
        "the unreachable banner shows while the demo serves"
    );
    b.ensure_not_reloaded().await?;
    b.screenshot("participants").await?;

    // The network after the job: the same typed nodes, every edge labelled
    // where its label fits (the rest keep it in their tooltip).
    b.click("[data-testid=nav-network]").await?;
    b.wait_count(
        "[data-testid=graph-node][data-type=trainer]",
        TRAINERS,
        DEFAULT_WAIT,
    )
    .await?;
    b.wait_count(
        "[data-testid=graph-node][data-type=validator]",
        VALIDATORS,
        DEFAULT_WAIT,
    )
    .await?;
    let graph = api.graph().await?;
    let (nodes, edges) = (graph.nodes.len() as u64, graph.edges.len() as u64);
    b.wait_count("[data-testid=graph-node]", nodes, DEFAULT_WAIT)
        .await?;
    b.wait_count("[data-testid=graph-edge]", edges, DEFAULT_WAIT)
        .await?;
    let overlaps = b.js(LABEL_OVERLAPS, vec![]).await?;
    ensure!(
        overlaps == serde_json::json!(0),
        "overlapping edge labels: {overlaps}"
    );
    b.screenshot("network-finished").await?;

    // Ctrl-C / SIGTERM ends the demo cleanly ...
    let status = demo.terminate().await?;
    ensure!(
        status.success(),
        "the demo exited with {status} on SIGTERM; its stderr:\n{}",
        demo.stderr()
    );

    // ... and the open page says the orchestrator is gone, keeping its data.
    b.wait_for("the unreachable banner", DEFAULT_WAIT, BANNER_SHOWN)
        .await?;
    let banner = b
        .text("[data-testid=unreachable-banner]")
        .await?
        .unwrap_or_default();
    ensure!(banner.contains("Orchestrator unreachable"), "{banner}");
    ensure!(b.attrs("[data-testid=live-status]", "data-state").await? == ["unreachable"]);
    ensure!(b.count("[data-testid=graph-node]").await? == nodes);
    ensure!(b.count("[data-testid=graph-edge]").await? == edges);
    b.ensure_not_reloaded().await?;
    b.screenshot("unreachable").await?;
    b.close().await
}
