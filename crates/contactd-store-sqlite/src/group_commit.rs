//! Group commit: SQLite has one writer, and each commit costs an fsync of the WAL, so concurrent
//! appends are written by the writer's connection in one transaction, one after the other,
//! each inside a savepoint of its own. An append that a rule refuses rolls back to its
//! savepoint and is answered alone; the rest of its group commits. Unlike PostgreSQL's group
//! (one statement, so only plain updates), any append can join: a name claim, a quota, a
//! client token or a code runs its statements after the appends before it in the group, so it
//! is decided exactly as if it had been written on its own at that moment.
//!
//! If the transaction itself fails (it cannot begin, a savepoint cannot be rolled back to
//! because SQLite rolled the whole transaction back, the commit fails), no append of the group
//! committed, and every one that was not refused is answered with the store's error.

use std::sync::Arc;

use contactd_app::{
    Append, AppendError, CodeIssue, DirectoryAppend, EventMetadata, NameClaim, NewEvent, Recording,
    RememberedCall, StoreError,
};
use contactd_domain::{Contact, Directory, DirectoryEvent};
use sqlx::{SqliteConnection, SqlitePool};
use tracing::debug;

use crate::append;
use crate::error::{append_error, store_error};
use crate::keys::{Keys, UsedKey};
use contactd_store_core::grouping::{GroupWork, Grouped};

/// A write as the writer runs it, borrowed from its caller.
#[derive(Debug)]
pub(crate) enum WriteRef<'a> {
    Contact(Append<'a>),
    Directory(DirectoryAppend<'a>),
    Remember(&'a RememberedCall),
}

impl WriteRef<'_> {
    /// Runs the write; the data key a contact's append sealed with, if any.
    async fn run(&self, conn: &mut SqliteConnection, keys: &Keys) -> Result<UsedKey, AppendError> {
        match self {
            WriteRef::Contact(a) => append::append(conn, keys, a).await,
            WriteRef::Directory(a) => append::append_directory(conn, a).await.map(|()| None),
            WriteRef::Remember(call) => append::remember(conn, call).await.map(|()| None),
        }
    }
}

/// Writes one append in a transaction of its own, on the writer's connection.
pub(crate) async fn write_alone(
    writes: &SqlitePool,
    keys: &Keys,
    write: WriteRef<'_>,
) -> Result<(), AppendError> {
    let mut tx = writes
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(append_error)?;
    // A refusal drops the transaction, which rolls it back.
    let used = write.run(&mut tx, keys).await?;
    tx.commit().await.map_err(append_error)?;
    // Only a committed key is sealed with again: a new contact's key rolled back is no one's.
    if let Some((contact_id, key)) = used {
        keys.cache.insert(&contact_id, key);
    }
    Ok(())
}

/// A write copied out of its call, so that a group outlives any one caller: a client that
/// hangs up does not cancel the writes of the others.
#[derive(Debug)]
pub(crate) enum Write {
    Contact(Box<OwnedAppend>),
    Directory(Box<OwnedDirectoryAppend>),
    Remember(Box<RememberedCall>),
}

#[derive(Debug)]
pub(crate) struct OwnedAppend {
    contact: Contact,
    expected_version: u64,
    events: Vec<NewEvent>,
    metadata: EventMetadata,
    name_claim: NameClaim,
    quota_limit: Option<u32>,
    remember: Option<RememberedCall>,
    code: Option<CodeIssue>,
}

#[derive(Debug)]
pub(crate) struct OwnedDirectoryAppend {
    directory: Directory,
    expected_version: u64,
    events: Vec<NewEvent<DirectoryEvent>>,
    metadata: EventMetadata,
}

impl WriteRef<'_> {
    /// A copy for the group, which may outlive the call.
    pub(crate) fn to_owned(&self) -> Write {
        match self {
            WriteRef::Contact(append) => Write::Contact(Box::new(OwnedAppend {
                contact: append.contact.clone(),
                expected_version: append.expected_version,
                events: append.events.to_vec(),
                metadata: append.metadata.clone(),
                name_claim: append.name_claim.clone(),
                quota_limit: append.quota_limit,
                remember: append.remember.cloned(),
                code: append.code.cloned(),
            })),
            WriteRef::Directory(append) => Write::Directory(Box::new(OwnedDirectoryAppend {
                directory: append.directory.clone(),
                expected_version: append.expected_version,
                events: append.events.to_vec(),
                metadata: append.metadata.clone(),
            })),
            WriteRef::Remember(call) => Write::Remember(Box::new((*call).clone())),
        }
    }
}

impl Write {
    fn borrow(&self) -> WriteRef<'_> {
        match self {
            Write::Contact(a) => WriteRef::Contact(Append {
                contact: &a.contact,
                expected_version: a.expected_version,
                events: &a.events,
                metadata: &a.metadata,
                name_claim: a.name_claim.clone(),
                quota_limit: a.quota_limit,
                remember: a.remember.as_ref(),
                code: a.code.as_ref(),
            }),
            Write::Directory(a) => WriteRef::Directory(DirectoryAppend {
                directory: &a.directory,
                expected_version: a.expected_version,
                events: &a.events,
                metadata: &a.metadata,
            }),
            Write::Remember(call) => WriteRef::Remember(call),
        }
    }
}

/// The group commit of writes, run by [`Grouped`] on the writer's connection.
#[derive(Debug)]
pub(crate) struct WriteGroups {
    writes: SqlitePool,
    keys: Arc<Keys>,
    recording: Recording,
}

impl WriteGroups {
    /// One runner: the pool has one connection, so a second runner would only hold a group
    /// back while it waited for it.
    pub(crate) fn new(
        writes: SqlitePool,
        keys: Arc<Keys>,
        recording: Recording,
    ) -> Arc<Grouped<Self>> {
        Grouped::new(
            Self {
                writes,
                keys,
                recording,
            },
            1,
        )
    }
}

impl GroupWork for WriteGroups {
    type Request = Write;
    type Answer = Result<(), AppendError>;

    /// Large enough that a group's commit is shared widely, small enough that the writer's
    /// connection is not held from the other writes (outbox, jobs) for long.
    const MAX_GROUP: usize = 128;

    async fn run(&self, group: &[Write]) -> Vec<Self::Answer> {
        debug!(writes = group.len(), "writing a group of appends");
        match write_group(&self.writes, &self.keys, &self.recording, group).await {
            Ok(answers) => {
                self.recording.group_committed(group.len());
                answers
            }
            Err(error) => {
                let error = store_error("writing a group of appends failed", error);
                group
                    .iter()
                    .map(|_| Err(AppendError::Store(error.clone())))
                    .collect()
            }
        }
    }

    fn lost() -> Self::Answer {
        Err(AppendError::Store(StoreError::internal(
            "the group writing an append ended before it answered",
            None,
        )))
    }
}

/// Writes the group in one transaction; answers each write. `Err` when the transaction failed
/// before its commit was attempted, which rolls all of it back.
async fn write_group(
    writes: &SqlitePool,
    keys: &Keys,
    recording: &Recording,
    group: &[Write],
) -> Result<Vec<Result<(), AppendError>>, sqlx::Error> {
    let asked = std::time::Instant::now();
    let mut tx = writes.begin_with("BEGIN IMMEDIATE").await?;
    recording.connection_acquired(asked.elapsed());
    let mut answers = Vec::with_capacity(group.len());
    let mut used = Vec::new();
    for write in group {
        sqlx::query("SAVEPOINT grouped_write")
            .execute(&mut *tx)
            .await?;
        let answer = match write.borrow().run(&mut tx, keys).await {
            Ok(key) => {
                used.extend(key);
                Ok(())
            }
            Err(error) => Err(error),
        };
        if answer.is_err() {
            sqlx::query("ROLLBACK TO grouped_write")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("RELEASE grouped_write")
            .execute(&mut *tx)
            .await?;
        answers.push(answer);
    }
    if let Err(error) = tx.commit().await {
        // Refusals stay true (they were refused whatever became of the rest); what was
        // written is not.
        let error = store_error("committing a group of appends failed", error);
        for answer in &mut answers {
            if answer.is_ok() {
                *answer = Err(AppendError::Store(error.clone()));
            }
        }
        return Ok(answers);
    }
    // Only committed keys are sealed with again.
    for (contact_id, key) in used {
        keys.cache.insert(&contact_id, key);
    }
    Ok(answers)
}
