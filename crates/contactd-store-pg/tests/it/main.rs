//! What only PostgreSQL shows, on a real server with a fresh database per test: the log's
//! order by writing transaction under concurrent transactions, grouped statements, and
//! migrations of old layouts. Everything the store ports promise is the conformance suite's
//! (`tests/conformance.rs`).

// Test helpers unwrap freely: a failed setup step is a failed test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod deadline;
mod group_commit;
mod group_read;
mod migrations;
mod ordering;
mod sealing_guard;
mod support;
