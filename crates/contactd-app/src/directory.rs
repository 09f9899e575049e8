//! The resource directory mirror's use cases: the directory service (or an operator) tells
//! this service about the caller's tree of folders and member accounts. The directory is
//! created on first use, and every change is decided on its state and appended at the version
//! it was decided on, like a contact's.

use contactd_domain::{
    Directory, DirectoryEvent, DirectoryRejection, FolderId, MemberAccountId, ResourceDirectoryId,
};
use tracing::{debug, instrument};

use crate::context::{CallContext, now};
use crate::error::AppError;
use crate::port::{AppendError, ContactStore, DirectoryAppend, DirectoryStore, NewEvent};
use crate::service::{ContactService, metadata, new_event_id};

/// A change of the directory, decided on its state: an event, or none when nothing changes.
type Decision = Result<Option<DirectoryEvent>, DirectoryRejection>;

impl<S: ContactStore + DirectoryStore> ContactService<S> {
    /// The caller's directory, created on this first use if need be.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id))]
    pub async fn get_directory(&self, ctx: &CallContext) -> Result<Directory, AppError> {
        self.change_directory(ctx, |_| Ok(None)).await
    }

    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id))]
    pub async fn register_folder(
        &self,
        ctx: &CallContext,
        folder_id: &FolderId,
        parent_id: Option<&FolderId>,
    ) -> Result<(), AppError> {
        self.change_directory(ctx, |d| d.register_folder(folder_id, parent_id).map(Some))
            .await
            .map(drop)
    }

    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id))]
    pub async fn remove_folder(
        &self,
        ctx: &CallContext,
        folder_id: &FolderId,
    ) -> Result<(), AppError> {
        self.change_directory(ctx, |d| d.remove_folder(folder_id).map(Some))
            .await
            .map(drop)
    }

    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id))]
    pub async fn register_member(
        &self,
        ctx: &CallContext,
        account_id: &MemberAccountId,
        folder_id: Option<&FolderId>,
    ) -> Result<(), AppError> {
        self.change_directory(ctx, |d| d.register_member(account_id, folder_id).map(Some))
            .await
            .map(drop)
    }

    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id))]
    pub async fn move_member(
        &self,
        ctx: &CallContext,
        account_id: &MemberAccountId,
        folder_id: Option<&FolderId>,
    ) -> Result<(), AppError> {
        self.change_directory(ctx, |d| d.move_member(account_id, folder_id))
            .await
            .map(drop)
    }

    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id))]
    pub async fn remove_member(
        &self,
        ctx: &CallContext,
        account_id: &MemberAccountId,
    ) -> Result<(), AppError> {
        self.change_directory(ctx, |d| d.remove_member(account_id).map(Some))
            .await
            .map(drop)
    }

    /// Decides a change on the directory (created first if it has never been used) and
    /// appends it at the version it was decided on; decides again if another call moved the
    /// directory on meanwhile.
    async fn change_directory(
        &self,
        ctx: &CallContext,
        decide: impl Fn(&Directory) -> Decision,
    ) -> Result<Directory, AppError> {
        let mut attempts = 0;
        loop {
            let stored = self.store().load_directory(&ctx.account_id).await?;
            let at = now().max(stored.as_ref().map_or(ctx.received_at, |d| d.updated_at));
            let mut decided = Vec::new();
            let (expected_version, mut directory) = match stored {
                Some(directory) => (directory.version, directory),
                None => {
                    let created = Directory::create(ResourceDirectoryId::generate());
                    let directory = Directory::created(ctx.account_id.clone(), &created, at)
                        .ok_or_else(|| {
                            AppError::Internal(crate::StoreError::internal(
                                "a directory's creation did not create it",
                                None,
                            ))
                        })?;
                    decided.push(created);
                    (0, directory)
                }
            };
            if let Some(event) = decide(&directory)? {
                directory.apply(&event, at);
                decided.push(event);
            }
            if decided.is_empty() {
                return Ok(directory);
            }
            let events: Vec<NewEvent<DirectoryEvent>> = decided
                .into_iter()
                .map(|event| NewEvent {
                    event_id: new_event_id(),
                    event,
                })
                .collect();
            let append = DirectoryAppend {
                directory: &directory,
                expected_version,
                events: &events,
                metadata: &metadata(ctx, at),
            };
            match self.store().append_directory(append).await {
                Ok(()) => {
                    self.recording().events_appended(events.len());
                    return Ok(directory);
                }
                Err(AppendError::VersionConflict) => {
                    self.recording().version_conflict();
                    attempts += 1;
                    if attempts >= self.policy().max_attempts {
                        return Err(AppError::ConcurrentCall);
                    }
                    self.recording().decided_again();
                    debug!(
                        attempts,
                        "the directory changed under the call; deciding again"
                    );
                }
                Err(AppendError::Store(error)) => return Err(error.into()),
                Err(_) => return Err(AppError::ConcurrentCall),
            }
        }
    }
}
