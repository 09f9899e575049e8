//! Store tests on a real PostgreSQL, a fresh database per test: the log's guarantees, and the
//! rules across contacts under races.

// Test helpers unwrap freely: a failed setup step is a failed test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group_commit;
mod group_read;
mod log;
mod migrations;
mod ordering;
mod races;
mod support;
mod upcasting;
