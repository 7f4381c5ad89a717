//! Integration tests of the orchestrator on the embedded dev chain, real
//! SQLite in a temporary directory (or PostgreSQL: `common::POSTGRES_VAR`),
//! blobs in a directory (or an S3 bucket: `common::S3_VAR`) and real HTTP.

mod common;
mod compute;
mod flow;
mod fuzz;
mod handlers;
mod holes;
mod outage;
mod pg_outage;
mod replicas;
mod restart;
mod s3;
mod schema;
mod slow_clients;
