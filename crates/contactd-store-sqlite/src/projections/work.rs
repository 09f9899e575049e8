//! The unit of work of the SQLite store: a transaction on the store's one writer connection,
//! on which the projections' model traits read and write.

use sqlx::SqliteConnection;

/// The writer's connection inside a transaction, handed to a projection's batch. The batch's
/// statements and the checkpoint's move share it, and so commit or roll back together; every
/// other write waits for it, as SQLite has one writer.
#[derive(Debug)]
pub struct SqliteWork<'c> {
    conn: &'c mut SqliteConnection,
}

impl<'c> SqliteWork<'c> {
    /// Work on `conn`, inside the transaction the caller opened on it.
    pub fn new(conn: &'c mut SqliteConnection) -> Self {
        Self { conn }
    }

    /// The connection itself: for a projection of its own (tests, tools) that writes tables
    /// no model trait names.
    pub fn connection(&mut self) -> &mut SqliteConnection {
        self.conn
    }
}
