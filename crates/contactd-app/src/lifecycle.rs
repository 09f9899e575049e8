//! The contact's lifecycle beyond its fields: bindings to the directory's root, folders and
//! members, the list of the contacts that apply to a member, delete (at once, or in the
//! background), and the commands the service issues itself in reaction to events (a target
//! the directory dropped is unbound; an asynchronous delete ends).

use contactd_domain::{Contact, ContactId, DeleteStatus, Deletion, FailReason, MemberId};
use tracing::instrument;
use uuid::Uuid;

use crate::context::CallContext;
use crate::error::AppError;
use crate::paging::Page;
use crate::port::{BindingChange, ContactStore, DirectoryStore, ListedContact, Operation, Outcome};
use crate::service::{Change, ContactService, Idempotency, ListQuery};

/// Which way a call changes a contact's bindings.
#[derive(Debug, Clone, Copy)]
enum Rebinding {
    Associate,
    Disassociate,
}

/// How an asynchronous delete stands, as `GetMessageContactDeletionStatus` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionStatus {
    Deleting,
    Failed(Vec<FailReason>),
}

impl<S: ContactStore + DirectoryStore> ContactService<S> {
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id))]
    pub async fn list_contacts(
        &self,
        ctx: &CallContext,
        query: &ListQuery,
    ) -> Result<Page<ListedContact>, AppError> {
        if let Some(contact_id) = &query.contact_id {
            self.store()
                .load_contact(&ctx.account_id, contact_id)
                .await?
                .ok_or(AppError::ContactNotFound)?;
        }
        if let Some(member) = &query.member {
            let directory = self.store().load_directory(&ctx.account_id).await?;
            if !directory.is_some_and(|d| d.contains(member)) {
                return Err(AppError::MemberNotFound);
            }
        }
        Ok(self
            .store()
            .list_contacts(
                &ctx.account_id,
                query.contact_id.as_ref(),
                query.member.as_ref(),
                query.page,
            )
            .await?)
    }

    /// Binds targets of the caller's directory to a contact. The response names each target
    /// with the time it was bound (earlier, for one bound already).
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn associate_members(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        targets: &[MemberId],
        idempotency: Option<Idempotency>,
    ) -> Result<Outcome, AppError> {
        self.rebind(ctx, contact_id, targets, idempotency, Rebinding::Associate)
            .await
    }

    /// Unbinds targets from a contact; the response names each with the time of the call.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn disassociate_members(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        targets: &[MemberId],
        idempotency: Option<Idempotency>,
    ) -> Result<Outcome, AppError> {
        self.rebind(
            ctx,
            contact_id,
            targets,
            idempotency,
            Rebinding::Disassociate,
        )
        .await
    }

    async fn rebind(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        targets: &[MemberId],
        idempotency: Option<Idempotency>,
        rebinding: Rebinding,
    ) -> Result<Outcome, AppError> {
        let directory = self.store().load_directory(&ctx.account_id).await?;
        let change = Change {
            operation: match rebinding {
                Rebinding::Associate => Operation::AssociateMembers,
                Rebinding::Disassociate => Operation::DisassociateMembers,
            },
            idempotency,
            code: None,
        };
        let decide = |state: &Contact| {
            Ok(match rebinding {
                Rebinding::Associate => state.associate(targets, directory.as_ref())?,
                Rebinding::Disassociate => state.disassociate(targets, directory.as_ref())?,
            })
        };
        let answer = |after: &Contact, now| Outcome::Bindings {
            request_id: ctx.request_id.to_string(),
            members: targets
                .iter()
                .map(|target| BindingChange {
                    member_id: target.clone(),
                    modify_date: match rebinding {
                        Rebinding::Associate => after
                            .members
                            .iter()
                            .find(|b| b.target == *target)
                            .map_or(now, |b| b.bound_at),
                        Rebinding::Disassociate => now,
                    },
                })
                .collect(),
        };
        self.change_answering(ctx, contact_id, change, decide, answer)
            .await
    }

    /// Deletes a contact: at once when it stays with the members (`retain_in_members`),
    /// else in the background, where the lifecycle worker removes it from every member it
    /// applied to first.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn delete_contact(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        retain_in_members: bool,
        idempotency: Option<Idempotency>,
    ) -> Result<Outcome, AppError> {
        let deletion_id = Uuid::now_v7();
        let change = Change {
            operation: Operation::DeleteMessageContact,
            idempotency,
            code: None,
        };
        let answer = |after: &Contact, _| Outcome::Deleted {
            request_id: ctx.request_id.to_string(),
            status: match after.status {
                contactd_domain::ContactStatus::Deleted => DeleteStatus::Deleted,
                _ => DeleteStatus::Deleting,
            },
        };
        self.change_answering(
            ctx,
            contact_id,
            change,
            |state| Ok(state.delete(retain_in_members, deletion_id)?.0),
            answer,
        )
        .await
    }

    /// How the contact's asynchronous delete stands; a contact that is not being deleted (or
    /// is gone) has none: `EntityNotExists.Contact`.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn deletion_status(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
    ) -> Result<DeletionStatus, AppError> {
        let contact = self
            .store()
            .load_contact(&ctx.account_id, contact_id)
            .await?
            .ok_or(AppError::ContactNotFound)?;
        match contact.deletion {
            Some(Deletion { failures: None, .. }) => Ok(DeletionStatus::Deleting),
            Some(Deletion {
                failures: Some(failures),
                ..
            }) => Ok(DeletionStatus::Failed(failures)),
            None => Err(AppError::ContactNotFound),
        }
    }

    /// Unbinds from a contact a target its directory no longer holds (`ctx` names the event
    /// that removed it). A contact that is gone, or no longer bound to it, needs nothing.
    pub async fn unbind_removed(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        target: &MemberId,
    ) -> Result<(), AppError> {
        // Even if the target was registered again since: the removal ended the binding (the
        // read model dropped it then), and binding it again is the caller's to do.
        let change = Change {
            operation: Operation::DisassociateMembers,
            idempotency: None,
            code: None,
        };
        gone_is_done(
            self.change(ctx, contact_id, change, |state| {
                Ok(state.unbind_removed(target))
            })
            .await,
        )
    }

    /// Ends the asynchronous delete `deletion_id` (`ctx` names the event that started it):
    /// deleted, or failed for the members it could not be removed from.
    pub async fn finish_deletion(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        deletion_id: Uuid,
        failures: Vec<FailReason>,
    ) -> Result<(), AppError> {
        let change = Change {
            operation: Operation::DeleteMessageContact,
            idempotency: None,
            code: None,
        };
        gone_is_done(
            self.change(ctx, contact_id, change, |state| {
                Ok(state.finish_deletion(deletion_id, failures.clone()))
            })
            .await,
        )
    }
}

/// A command the service issues in reaction to an event has nothing to do on a contact that is
/// gone since.
fn gone_is_done(result: Result<Outcome, AppError>) -> Result<(), AppError> {
    match result {
        Ok(_) | Err(AppError::ContactNotFound) => Ok(()),
        Err(error) => Err(error),
    }
}
