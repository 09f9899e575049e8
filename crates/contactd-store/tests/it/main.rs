//! Store tests on a real PostgreSQL, a fresh database per test: the log's guarantees, and the
//! rules across contacts under races.

mod log;
mod ordering;
mod races;
mod support;
mod upcasting;
