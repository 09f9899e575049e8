//! The store ports' conformance suite (`contactd-store-conformance`), run on PostgreSQL: a
//! fresh database per test on the server at `DATABASE_URL`.

// Test helpers unwrap freely: a failed setup step is a failed test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// In a folder of its own, so that Cargo does not take it for a test target.
#[path = "conformance/support.rs"]
mod support;

use support::PgBackend;

contactd_store_conformance::conformance_tests!(PgBackend);
