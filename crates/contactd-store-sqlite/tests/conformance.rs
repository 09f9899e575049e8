//! The store ports' conformance suite (`contactd-store-conformance`), run on SQLite: a fresh
//! database file per test in a temporary directory.

// Test helpers unwrap freely: a failed setup step is a failed test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// In a folder of its own, so that Cargo does not take it for a test target.
#[path = "conformance/support.rs"]
mod support;

use support::SqliteBackend;

contactd_store_conformance::conformance_tests!(SqliteBackend);
