//! Funetun's web dashboard, served by the orchestrator.
//!
//! - [`router`]: the single-page app at `/` and its embedded files under
//!   `/assets/`. The orchestrator merges it into its own router; the page
//!   reads the orchestrator's JSON API (`/v1/jobs`, `/v1/participants`,
//!   `/graph`, …) and polls it every second.
//! - [`assets`]: the files compiled into the binary (HTML, JavaScript, CSS,
//!   icon), with their content types and cache validators.
//! - [`charts`]: test accuracy, test loss and mean train loss per closed round
//!   as an SVG drawn with plotters, served by the orchestrator at
//!   [`CHARTS_PATH`] and written to a file by `funetun demo`.
//! - `testing` (feature `browser-test`): a headless Chromium driven over
//!   WebDriver, for browser tests here and in other crates.
//!
//! Nothing here needs a JavaScript toolchain: the page is plain JavaScript
//! and CSS, embedded with `include_str!`. What the page shows and how its
//! browser tests run is described in `docs/dashboard.md`.

pub mod assets;
pub mod charts;
#[cfg(feature = "browser-test")]
pub mod testing;

use axum::Router;
use axum::routing::get;

/// The routes [`router`] serves, in axum's path syntax; they need no
/// signature and carry no state.
pub const DASHBOARD_PATHS: &[&str] = &["/", "/assets/{*path}"];

/// The route at which the orchestrator serves [`charts::round_charts_svg`]
/// for a job; the page fetches it (with the job id filled in) and inlines it.
pub const CHARTS_PATH: &str = "/v1/jobs/{id}/charts.svg";

/// The dashboard's routes: `/` (the page) and `/assets/{*path}` (its files),
/// for any router state so the orchestrator can `.merge()` it into its own.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{*path}", get(assets::asset))
}
