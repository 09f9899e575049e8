//! The unit of work of the PostgreSQL store: one transaction's connection, on which the
//! projections' model traits (`ActivityModel`, `OutboxModel`, `MemberContactsModel`, each
//! implemented beside its SQL) read and write.

use sqlx::PgConnection;

/// A transaction's connection, handed to a projection's batch. The batch's statements and the
/// checkpoint's move share it, and so commit or roll back together.
#[derive(Debug)]
pub struct PgWork<'c> {
    conn: &'c mut PgConnection,
}

impl<'c> PgWork<'c> {
    /// Work on `conn`, inside the transaction the caller opened on it.
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self { conn }
    }

    /// The connection itself: for a projection of its own (tests, tools) that writes tables
    /// no model trait names.
    pub fn connection(&mut self) -> &mut PgConnection {
        self.conn
    }
}
