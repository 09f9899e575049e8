//! The SQLite store's own tests: what is particular to SQLite (the lock file, the connections'
//! settings, the triggers, group commit with savepoints, error messages mapped to conflicts,
//! the log's order). What every store must do is the conformance suite's.

// Test helpers unwrap freely: a failed setup step is a failed test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conflicts;
mod group_commit;
mod lock;
mod log;
mod pragmas;
mod privacy;
mod reads;
mod support;
mod work;
