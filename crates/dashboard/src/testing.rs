//! A headless Chromium driven over WebDriver, for any test that has a base
//! URL to look at: the dashboard's own tests against a stand-in orchestrator,
//! and the end-to-end tests against `funetun demo --serve`. Behind the
//! `browser-test` feature.
//!
//! [`Browser::start`] starts `chromedriver` on a free loopback port and a
//! headless Chromium session through it; dropping the [`Browser`] ends both.
//! Where Chromium or chromedriver is missing, `start` fails when `CI` is set
//! (so a CI run never passes without having looked) and otherwise returns
//! `None` after saying why on stderr, and the test skips.
//!
//! Binaries: `$FUNETUN_CHROMIUM` / `$FUNETUN_CHROMEDRIVER`, else
//! `/usr/bin/chromium` / `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/setup.sh`), else `PATH`.
//! Screenshots go to [`artifacts_dir`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// How long the wait helpers wait unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A running headless Chromium with its chromedriver.
pub struct Browser {
    client: Client,
    // Killed on drop (`kill_on_drop`), taking Chromium with it.
    _driver: Child,
    artifacts: PathBuf,
    test: String,
}

/// Whether this run is CI, where a missing browser is an error.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

fn find_binary(env: &str, default: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if Path::new(default).is_file() {
        return Some(PathBuf::from(default));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Where screenshots go: `$FUNETUN_ARTIFACTS`, else `browser-artifacts/` in
/// the Cargo target directory of the running test binary
/// (`<target>/<profile>/deps/<test>` gives `<target>/browser-artifacts`),
/// else the system's temporary directory.
pub fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FUNETUN_ARTIFACTS").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let deps = exe.parent()?;
            (deps.file_name()? == "deps").then_some(())?;
            Some(deps.parent()?.parent()?.join("browser-artifacts"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("funetun-browser-artifacts"))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session for the test
    /// called `test` (used to name its screenshots). `Ok(None)`: no browser
    /// here and not CI, so the caller should skip.
    pub async fn start(test: &str) -> Result<Option<Self>> {
        let chromium = find_binary(
            "FUNETUN_CHROMIUM",
            "/usr/bin/chromium",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let driver = find_binary(
            "FUNETUN_CHROMEDRIVER",
            "/usr/bin/chromedriver",
            &["chromedriver"],
        );
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let why = "headless Chromium and chromedriver are needed for the dashboard's browser tests: \
                       run `bash scripts/setup.sh` (installs Debian's chromium and chromium-driver) \
                       or set FUNETUN_CHROMIUM and FUNETUN_CHROMEDRIVER";
            if in_ci() {
                bail!("{why} (CI is set, so this fails instead of skipping)");
            }
            eprintln!("SKIPPED {test}: {why}");
            return Ok(None);
        };

        let port = free_port()?;
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", driver.display()))?;

        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-extensions",
                    "--no-first-run",
                    "--window-size=1280,1600",
                ],
            }
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => bail!("capabilities are an object"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let attempt = ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                Err(e) => {
                    return Err(anyhow!(
                        "no WebDriver session from {} at {url}: {e}",
                        driver.display()
                    ));
                }
            }
        };
        let artifacts = artifacts_dir();
        std::fs::create_dir_all(&artifacts)
            .with_context(|| format!("creating {}", artifacts.display()))?;
        Ok(Some(Self {
            client,
            _driver: child,
            artifacts,
            test: test.to_owned(),
        }))
    }

    /// The WebDriver client, for anything the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Loads `url` and waits for the document to finish loading.
    pub async fn open(&self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))?;
        self.wait_for(
            "document loaded",
            DEFAULT_WAIT,
            "return document.readyState === 'complete'",
        )
        .await?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("running script: {script}"))
    }

    /// How many elements match the CSS selector.
    pub async fn count(&self, css: &str) -> Result<u64> {
        let v = self
            .js(
                "return document.querySelectorAll(arguments[0]).length",
                vec![json!(css)],
            )
            .await?;
        v.as_u64()
            .ok_or_else(|| anyhow!("count of `{css}` is not a number: {v}"))
    }

    /// The text of the first element matching the selector, if any.
    pub async fn text(&self, css: &str) -> Result<Option<String>> {
        let v = self
            .js(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
                vec![json!(css)],
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// An attribute of every element matching the selector, in document order.
    pub async fn attrs(&self, css: &str, name: &str) -> Result<Vec<String>> {
        let v = self
            .js(
                "return Array.from(document.querySelectorAll(arguments[0]), e => e.getAttribute(arguments[1]))",
                vec![json!(css), json!(name)],
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Clicks the first element matching the selector.
    pub async fn click(&self, css: &str) -> Result<()> {
        // The dashboard re-renders as it polls: an element found just
        // before a re-render is gone when clicked ("stale"); find it again.
        let mut attempt = 0;
        loop {
            let el = self
                .client
                .find(fantoccini::Locator::Css(css))
                .await
                .with_context(|| format!("finding `{css}`"))?;
            match el.click().await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 5 && e.to_string().contains("stale element") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("clicking `{css}`")),
            }
        }
    }

    /// Waits until `check` gives `Some`, polling every 100 ms, for at most
    /// `timeout`; on a timeout saves a screenshot and fails naming `what`.
    pub async fn wait_until<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let start = Instant::now();
        let mut last_error = None;
        loop {
            match check().await {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
            if start.elapsed() >= timeout {
                let shot = self.screenshot(&format!("timeout-{what}")).await.ok();
                let mut msg = format!("waited {timeout:?} for {what}");
                if let Some(p) = shot {
                    msg.push_str(&format!(" (screenshot: {})", p.display()));
                }
                if let Some(e) = last_error {
                    msg.push_str(&format!("; last error: {e:#}"));
                }
                bail!(msg);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `script` (a function body) returns `true` in the page.
    pub async fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Result<()> {
        self.wait_until(what, timeout, || async move {
            Ok(self
                .js(script, vec![])
                .await?
                .as_bool()
                .filter(|b| *b)
                .map(|_| ()))
        })
        .await
    }

    /// Waits until exactly `n` elements match the selector.
    pub async fn wait_count(&self, css: &str, n: u64, timeout: Duration) -> Result<()> {
        let what = format!("{n} × `{css}`");
        self.wait_until(&what, timeout, || async move {
            Ok((self.count(css).await? == n).then_some(()))
        })
        .await
    }

    /// Sets a mark on the page's `window`; a reload loses it, which
    /// [`Browser::ensure_not_reloaded`] checks.
    pub async fn mark_window(&self) -> Result<()> {
        self.js("window.__funetunMark = 'still-here'; return true", vec![])
            .await?;
        Ok(())
    }

    /// Fails unless the mark set by [`Browser::mark_window`] is still there,
    /// i.e. the page changed since without a reload.
    pub async fn ensure_not_reloaded(&self) -> Result<()> {
        let mark = self
            .js("return window.__funetunMark || null", vec![])
            .await?;
        if mark != json!("still-here") {
            bail!("the page was reloaded (mark: {mark})");
        }
        Ok(())
    }

    /// Saves a PNG of the viewport as `<artifacts>/<test>-<name>.png`.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot")?;
        let clean: String = format!("{}-{name}", self.test)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.artifacts.join(format!("{clean}.png"));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Ends the session; chromedriver stops when the browser is dropped.
    pub async fn close(self) -> Result<()> {
        self.client
            .clone()
            .close()
            .await
            .context("closing the browser session")?;
        Ok(())
    }
}
