//! Integration tests of the orchestrator on the embedded dev chain, real
//! SQLite in a temporary directory and real HTTP.

mod common;
mod flow;
mod fuzz;
mod handlers;
mod holes;
mod outage;
mod restart;
mod slow_clients;
