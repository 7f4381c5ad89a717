//! The dashboard's integration tests, one binary.
//!
//! - `fixture`: a stand-in orchestrator serving the dashboard and JSON built
//!   from `funetun_core::api` types, changed while the page watches.
//! - `routes`: the router's answers without a socket or a browser.
//! - `pages`: the page in Chromium against the stand-in, through
//!   `funetun_dashboard::testing` (the harness, feature `browser-test`).

mod fixture;
mod pages;
mod routes;
