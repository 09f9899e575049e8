//! End-to-end tests: the real server on port 0, a fresh database per test on each backend
//! (PostgreSQL and the embedded SQLite store), called over gRPC with the generated client.

// Test helpers unwrap freely: a failed setup step is a failed test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod config;
mod contacts;
mod db;
mod deployment;
mod dispatch;
mod durability;
mod errors;
mod grpcurl;
mod health;
mod integration;
mod lifecycle;
mod lifecycle_support;
mod limits;
mod logs;
mod metrics;
mod offline;
mod pages;
mod privacy;
mod processes;
mod raw;
mod secrets;
mod security;
mod shutdown;
mod support;
mod traces;
mod verification;
