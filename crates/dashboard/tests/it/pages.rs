//! The page in headless Chromium against the stand-in orchestrator.
//!
//! Each test skips (with a message) where no browser is installed, unless
//! `CI` is set, where it fails. Screenshots land in the artifacts folder
//! (see `funetun_dashboard::testing::artifacts_dir`).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::fixture::{Fixture, TRAINERS, VALIDATORS, World};
use funetun_dashboard::testing::{Browser, DEFAULT_WAIT};

#[tokio::test]
async fn network_view_shows_typed_nodes_and_weighted_edges() -> Result<()> {
    let Some(b) = Browser::start("network_view").await? else {
        return Ok(());
    };
    let fixture = Fixture::start(World::sample(2)).await?;
    b.open(&format!("{}/", fixture.base_url())).await?;

    let nodes = fixture.world.lock().map_or(0, |w| w.graph.nodes.len()) as u64;
    b.wait_count("[data-testid=graph-node]", nodes, DEFAULT_WAIT)
        .await?;
    ensure!(
        b.count("[data-testid=graph-node][data-type=trainer]")
            .await?
            == TRAINERS.len() as u64
    );
    ensure!(
        b.count("[data-testid=graph-node][data-type=validator]")
            .await?
            == VALIDATORS.len() as u64
    );
    for kind in ["owner", "orchestrator", "contract"] {
        ensure!(
            b.count(&format!("[data-testid=graph-node][data-type={kind}]"))
                .await?
                == 1,
            "{kind}"
        );
    }
    // The trainer last seen an hour ago is greyed; the others are not.
    ensure!(
        b.count("[data-testid=graph-node][data-type=trainer][data-idle=true]")
            .await?
            == 1
    );
    ensure!(
        b.count("[data-testid=graph-node][data-type=validator][data-idle=true]")
            .await?
            == 0
    );
    let labels = b
        .attrs("[data-testid=graph-node][data-type=trainer]", "data-id")
        .await?;
    ensure!(labels.len() == 3, "{labels:?}");

    // Edges carry their counts and are wider the more messages they carry.
    let edges = fixture.world.lock().map_or(0, |w| w.graph.edges.len()) as u64;
    b.wait_count("[data-testid=graph-edge]", edges, DEFAULT_WAIT)
        .await?;
    let widths = b
        .js(
            "const w = l => parseFloat(document.querySelector(`[data-testid=graph-edge][data-label=${l}]`).getAttribute('stroke-width'));\
             return [w('createJob'), w('validateUpdate')]",
            vec![],
        )
        .await?;
    let (one, more) = (
        widths[0].as_f64().unwrap_or(0.0),
        widths[1].as_f64().unwrap_or(0.0),
    );
    ensure!(
        more > one,
        "an edge with 2 messages ({more}) is wider than one with 1 ({one})"
    );

    // The jobs list under the graph links to the job.
    b.wait_count("[data-testid=job-row]", 1, DEFAULT_WAIT)
        .await?;
    b.screenshot("network").await?;
    b.close().await
}

#[tokio::test]
async fn job_page_follows_new_rounds_without_reload() -> Result<()> {
    let Some(b) = Browser::start("job_page").await? else {
        return Ok(());
    };
    let fixture = Fixture::start(World::sample(2)).await?;
    b.open(&format!("{}/", fixture.base_url())).await?;
    b.wait_count("[data-testid=job-link]", 1, DEFAULT_WAIT)
        .await?;
    b.mark_window().await?;
    b.click("[data-testid=job-link]").await?;

    // A point per finished round, in the inlined chart.
    b.wait_count(
        "[data-testid=charts] [data-testid=accuracy-point]",
        2,
        DEFAULT_WAIT,
    )
    .await?;
    let rounds = b
        .attrs("[data-testid=accuracy-point]", "data-round")
        .await?;
    ensure!(rounds == ["0", "1"], "{rounds:?}");
    b.wait_count("[data-testid=round-row]", 3, DEFAULT_WAIT)
        .await?;
    let status = b.text("[data-testid=job-status]").await?;
    ensure!(status.as_deref() == Some("active"), "{status:?}");

    // The updates table matches the API.
    let api: BTreeSet<String> = fixture
        .world
        .lock()
        .map(|w| {
            w.updates[&1]
                .iter()
                .map(|u| format!("{}", u.update_hash))
                .collect()
        })
        .unwrap_or_default();
    b.wait_count("[data-testid=update-row]", api.len() as u64, DEFAULT_WAIT)
        .await?;
    let shown: BTreeSet<String> = b
        .attrs("[data-testid=update-row]", "data-hash")
        .await?
        .into_iter()
        .collect();
    ensure!(shown == api, "table {shown:?} != api {api:?}");
    let verdicts = b
        .text("[data-testid=update-row][data-round='1'] [data-testid=update-verdicts]")
        .await?;
    ensure!(verdicts.as_deref() == Some("✓2 ✗0"), "{verdicts:?}");

    // Per trainer: busy and idle from lease and report times, staleness of
    // its merged updates. The first holds each task 10 s of a 20 s round;
    // the second 20 s, on the previous checkpoint from round 1.
    let trainers: Vec<String> = fixture
        .world
        .lock()
        .map(|w| {
            let mut by_shard: Vec<_> = w.updates[&1].iter().map(|u| (u.shard, u.trainer)).collect();
            by_shard.sort();
            by_shard.dedup();
            // As the API writes addresses, which the rows are keyed by.
            by_shard
                .into_iter()
                .map(|(_, t)| {
                    serde_json::to_value(t)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    ensure!(trainers.len() == 2, "{trainers:?}");
    let cell = |trainer: &str, field: &str| {
        let sel =
            format!("[data-testid=trainer-row][data-trainer='{trainer}'] [data-field={field}]");
        let b = &b;
        async move { Ok::<_, anyhow::Error>(b.text(&sel).await?.unwrap_or_default()) }
    };
    for (trainer, want) in trainers.iter().zip([
        ["20 s", "10 s", "66.7%", "0.00 / 0"],
        ["40 s", "0 s", "100.0%", "0.50 / 1"],
    ]) {
        for (field, want) in ["busy", "idle", "utilization", "staleness"]
            .into_iter()
            .zip(want)
        {
            let got = cell(trainer, field).await?;
            ensure!(
                got == want,
                "trainer {trainer} {field}: {got:?}, expected {want:?}"
            );
        }
    }

    // Money in ETH: 10 deposited, 4 × 0.1 to trainers and 2 × 2 × 0.01 to validators paid.
    let money = |k: &'static str| {
        let b = &b;
        async move { b.text(&format!("[data-testid=money-{k}]")).await }
    };
    ensure!(money("deposit").await?.as_deref() == Some("10 ETH"));
    ensure!(money("paid").await?.as_deref() == Some("0.44 ETH"));
    ensure!(money("validators").await?.as_deref() == Some("0.04 ETH"));
    ensure!(money("remaining").await?.as_deref() == Some("9.56 ETH"));
    b.screenshot("two-rounds").await?;

    // A round closes: the page follows without a reload.
    fixture.change(|w| w.close_round(1));
    b.wait_count(
        "[data-testid=charts] [data-testid=accuracy-point]",
        3,
        DEFAULT_WAIT,
    )
    .await?;
    b.wait_count("[data-testid=round-row]", 4, DEFAULT_WAIT)
        .await?;
    b.wait_count("[data-testid=update-row]", 6, DEFAULT_WAIT)
        .await?;
    b.wait_until("paid to follow", DEFAULT_WAIT, || async {
        Ok((money("paid").await?.as_deref() == Some("0.66 ETH")).then_some(()))
    })
    .await?;
    b.ensure_not_reloaded().await?;
    b.screenshot("three-rounds").await?;
    b.js(
        "document.querySelector('[data-testid=round-timeline]').scrollIntoView(); return true",
        vec![],
    )
    .await?;
    b.screenshot("three-rounds-tables").await?;
    b.close().await
}

#[tokio::test]
async fn participants_page_lists_stake_credits_and_reputation() -> Result<()> {
    let Some(b) = Browser::start("participants").await? else {
        return Ok(());
    };
    let fixture = Fixture::start(World::sample(3)).await?;
    b.open(&format!("{}/#/participants", fixture.base_url()))
        .await?;
    let n = (TRAINERS.len() + VALIDATORS.len()) as u64;
    b.wait_count("[data-testid=participant-row]", n, DEFAULT_WAIT)
        .await?;
    ensure!(
        b.count("[data-testid=participant-row][data-roles=trainer]")
            .await?
            == TRAINERS.len() as u64
    );
    let top = b
        .text("[data-testid=participant-row] [data-field=accepted]")
        .await?;
    ensure!(
        top.as_deref() == Some("3"),
        "most reputable trainer first: {top:?}"
    );
    let credit = b
        .text("[data-testid=participant-row] [data-testid=participant-credit]")
        .await?;
    ensure!(credit.as_deref() == Some("0.3 ETH"), "{credit:?}");
    let stake = b
        .text("[data-testid=participant-row][data-roles=validator] [data-testid=participant-stake]")
        .await?;
    ensure!(stake.as_deref() == Some("2 ETH"), "{stake:?}");
    b.screenshot("participants").await?;
    b.close().await
}

#[tokio::test]
async fn unreachable_orchestrator_shows_a_banner_and_recovers() -> Result<()> {
    let Some(b) = Browser::start("unreachable").await? else {
        return Ok(());
    };
    let mut fixture = Fixture::start(World::sample(1)).await?;
    b.open(&format!("{}/#/jobs/1", fixture.base_url())).await?;
    b.wait_for(
        "the page to be live",
        DEFAULT_WAIT,
        "return document.querySelector('[data-testid=live-status]').dataset.state === 'live'",
    )
    .await?;
    b.wait_count("[data-testid=accuracy-point]", 1, DEFAULT_WAIT)
        .await?;
    b.mark_window().await?;
    let banner_shown = "const e = document.querySelector('[data-testid=unreachable-banner]'); \
                        return !e.hidden && e.getBoundingClientRect().height > 0";
    ensure!(
        !b.js(banner_shown, vec![]).await?.as_bool().unwrap_or(true),
        "banner shown while reachable"
    );

    fixture.stop().await?;
    b.wait_for("the unreachable banner", DEFAULT_WAIT, banner_shown)
        .await?;
    let text = b
        .text("[data-testid=unreachable-banner]")
        .await?
        .unwrap_or_default();
    ensure!(text.contains("Orchestrator unreachable"), "{text}");
    ensure!(
        b.attrs("[data-testid=live-status]", "data-state").await? == ["unreachable"],
        "live status says unreachable"
    );
    // The last data stays on the page.
    ensure!(b.count("[data-testid=accuracy-point]").await? == 1);
    b.screenshot("down").await?;

    // It comes back, with news: the page recovers by itself.
    fixture.change(|w| w.close_round(1));
    fixture.restart().await?;
    b.wait_for(
        "the banner to go",
        Duration::from_secs(15),
        "return document.querySelector('[data-testid=unreachable-banner]').hidden \
         && document.querySelector('[data-testid=live-status]').dataset.state === 'live'",
    )
    .await?;
    b.wait_count("[data-testid=accuracy-point]", 2, DEFAULT_WAIT)
        .await?;
    b.ensure_not_reloaded().await?;
    b.screenshot("recovered").await?;
    b.close().await
}

#[tokio::test]
async fn unknown_jobs_say_so() -> Result<()> {
    let Some(b) = Browser::start("unknown_job").await? else {
        return Ok(());
    };
    let fixture = Fixture::start(World::sample(0)).await?;
    b.open(&format!("{}/#/jobs/99", fixture.base_url())).await?;
    b.wait_count("[data-testid=job-missing]", 1, DEFAULT_WAIT)
        .await?;
    ensure!(b.attrs("[data-testid=live-status]", "data-state").await? == ["live"]);
    b.close().await
}
