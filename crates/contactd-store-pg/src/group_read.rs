//! Grouped reads of contacts: concurrent `load_contact`s (each `GetMessageContact`, and each
//! update that has no state of the contact at hand) are answered by one `SELECT`, so that they
//! share one round trip and one execution.
//!
//! Each read still sees only committed rows, read after it was asked: the group's statement
//! starts after every one of its requests arrived.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use contactd_app::{Recording, StoreError};
use contactd_domain::{AccountId, Contact, ContactId};
use sqlx::PgPool;

use crate::deadline::{Budget, bounded_reporting};
use crate::error::stopped;
use contactd_store_core::documents::{CONTACT_COLUMNS, StoredContact};
use contactd_store_core::grouping::{GroupWork, Grouped};

/// A contact asked for by one caller, in its account.
#[derive(Debug)]
pub(crate) struct Load {
    pub account_id: AccountId,
    pub contact_id: ContactId,
    /// The caller's deadline, taken in its task: the group runs in the runner's.
    pub deadline: Option<Instant>,
}

/// The grouped reads, run by [`Grouped`].
#[derive(Debug)]
pub(crate) struct LoadGroups {
    pool: PgPool,
    recording: Recording,
    /// The pool's session `statement_timeout` (see `PgStore::statement_timeout`).
    cap: Option<Duration>,
}

impl LoadGroups {
    pub(crate) fn new(
        pool: PgPool,
        cap: Option<Duration>,
        readers: usize,
        recording: Recording,
    ) -> Arc<Grouped<Self>> {
        Grouped::new(
            Self {
                pool,
                recording,
                cap,
            },
            readers,
        )
    }
}

impl GroupWork for LoadGroups {
    type Request = Load;
    type Answer = Result<Option<Contact>, StoreError>;

    const MAX_GROUP: usize = 256;

    async fn run(&self, group: &[Load]) -> Vec<Self::Answer> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE contact_id = ANY($1::text[])")
        });
        let ids: Vec<&str> = group.iter().map(|load| load.contact_id.as_str()).collect();
        // The group is worth reading while any of its members still waits.
        let budget = Budget::of_group(group.iter().map(|load| load.deadline), self.cap);
        let statement = sqlx::query_as::<_, StoredContact>(SQL.as_str()).bind(ids);
        let rows = match bounded_reporting(
            &self.pool,
            budget,
            false,
            &self.recording,
            async |connection| statement.fetch_all(&mut *connection).await,
        )
        .await
        {
            Ok(rows) => rows,
            Err(stopped_early) => {
                let error = stopped("loading contacts failed")(stopped_early);
                return group.iter().map(|_| Err(error.clone())).collect();
            }
        };
        group
            .iter()
            .map(|load| {
                // Another account's contact is not found, exactly as by a single read.
                rows.iter()
                    .find(|row| {
                        row.contact_id == load.contact_id.as_str()
                            && row.account_id == load.account_id.as_str()
                    })
                    .map(|row| row.clone().into_contact())
                    .transpose()
            })
            .collect()
    }

    fn lost() -> Self::Answer {
        Err(StoreError::internal(
            "the group reading a contact ended before it answered",
            None,
        ))
    }
}
