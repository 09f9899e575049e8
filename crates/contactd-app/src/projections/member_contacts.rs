//! `member_contacts`: which contacts apply to each node of each account's directory (bound to
//! it, or to a folder or the root above it, at any depth), and since when. It keeps its own
//! copy of the tree and of the bindings, in log order, so that `ListMessageContacts(member=…)`
//! is one indexed range whatever the directory's depth, and a rebuild gives the same rows.
//!
//! Live (not when rebuilt), it also records the lifecycle jobs its changes call for, in the
//! same unit of work: an integration event for each member account a contact came to apply to,
//! stopped applying to, or changed for; the removals of an asynchronous delete and the job
//! that ends it; the unbinding of a target the directory no longer holds. The lifecycle
//! worker carries them out after commit (ADR 9).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use contactd_domain::{
    AccountId, Contact, ContactEvent, DirectoryEvent, DomainEvent, MemberAccountId, MessageTypes,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::integration::{MemberContactChange, member_contact_message};
use crate::port::{IntegrationMessage, RecordedEvent, StoreError};
use crate::projection::Projection;

/// The projection; [`MemberContacts::replaying`] for rebuilds, which record no job.
#[derive(Debug)]
pub struct MemberContacts {
    /// Wakes this process's lifecycle worker after a batch that recorded jobs; `None` when
    /// replaying.
    recorded: Option<Arc<watch::Sender<u64>>>,
}

impl MemberContacts {
    pub const NAME: &'static str = "member_contacts";

    /// The live projection, which records lifecycle jobs and then wakes the store's lifecycle
    /// worker through `recorded` (the store's [`crate::LifecycleJobs::recorded_jobs`]).
    pub fn live(recorded: Arc<watch::Sender<u64>>) -> Self {
        Self {
            recorded: Some(recorded),
        }
    }

    /// The read model alone, for a rebuild: nothing is published or unbound again.
    pub fn replaying() -> Self {
        Self { recorded: None }
    }
}

/// A member account and a contact that applies to it: a pair of the effective view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberContactPair {
    /// The member's node: a member account's id.
    pub member: String,
    pub contact_id: String,
}

/// A lifecycle job, as the projection records it for the lifecycle worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLifecycleJob {
    /// Derived from the causing event, so that recording it again (a batch redelivered after
    /// a crash) records it once.
    pub job_id: String,
    pub account_id: AccountId,
    /// The contact it is about: a member's jobs about one contact are carried out in the
    /// order they were recorded.
    pub contact_id: String,
    pub task: NewJobTask,
    /// The id of the event that caused it.
    pub causation_id: String,
    pub correlation_id: String,
}

/// What a recorded job is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewJobTask {
    /// Publish an integration event to a member account; one of an asynchronous delete's
    /// removals when `deletion_id` is set.
    Publish {
        member: MemberAccountId,
        message: IntegrationMessage,
        /// The contact's message types when the message was made.
        message_types: MessageTypes,
        deletion_id: Option<Uuid>,
    },
    /// Unbind from the contact a target (a node's id) its directory no longer holds.
    Unbind { target: String },
    /// End an asynchronous delete once every removal it recorded has settled.
    FinishDeletion { deletion_id: Uuid },
}

/// The `member_contacts` read model (the directory's tree, the bindings, the effective view)
/// and the lifecycle jobs, as the projection reads and writes them inside a unit of work.
/// Node ids are the directory's ids as their text: the directory's own id for its root, a
/// folder's, a member account's.
pub trait MemberContactsModel: Send {
    /// Which of the contacts named are bound to some node.
    fn bound_contacts(
        &mut self,
        contact_ids: &[&str],
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Whether the account's tree holds the node.
    fn node_exists(
        &mut self,
        account: &AccountId,
        node: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Adds the root of the account's tree (the node without a parent that is no member), if
    /// it has none.
    fn add_root(
        &mut self,
        account: &AccountId,
        root: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Places a folder or a member under `parent` (`None`: under the root), or moves it
    /// there if the tree holds it already; `at` is when it came under its parent.
    fn place_node(
        &mut self,
        account: &AccountId,
        node: &str,
        parent: Option<&str>,
        is_member: bool,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a node from the tree, with its bindings and its rows of the effective view;
    /// answers the contacts that were bound to it.
    fn remove_node(
        &mut self,
        account: &AccountId,
        node: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Binds the contact to each node, since `at`; a binding that exists already is kept as it
    /// is.
    fn insert_bindings(
        &mut self,
        account: &AccountId,
        contact_id: &str,
        nodes: &[String],
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the contact's bindings to these nodes.
    fn delete_bindings(
        &mut self,
        account: &AccountId,
        contact_id: &str,
        nodes: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes every binding of the contact and its rows of the effective view.
    fn forget_contact(
        &mut self,
        account: &AccountId,
        contact_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Computes afresh, from the tree and the bindings, the effective view of every node below
    /// `roots` (themselves included, at any depth), for one contact or (`None`) all: a contact
    /// applies to a node when bound to it or to a node above it, since the later of its
    /// binding and the time the node came under the bound one (the earliest such time, if
    /// several). Only contacts the inline read model holds apply.
    fn recompute(
        &mut self,
        account: &AccountId,
        roots: &[String],
        contact_id: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The (member, contact) pairs of the effective view below `roots` (`None`: anywhere in
    /// the account's tree), of one contact or (`None`) all.
    fn applying(
        &mut self,
        account: &AccountId,
        roots: Option<&[String]>,
        contact_id: Option<&str>,
    ) -> impl Future<Output = Result<Vec<MemberContactPair>, StoreError>> + Send;

    /// The account's contacts named, as the inline read model holds them now, by id; a contact
    /// it does not hold (deleted) is missing.
    fn contacts(
        &mut self,
        account: &AccountId,
        contact_ids: &[&str],
    ) -> impl Future<Output = Result<HashMap<String, Contact>, StoreError>> + Send;

    /// Records the jobs in this order; a job whose id is recorded already is left as it is.
    fn record_jobs(
        &mut self,
        jobs: &[NewLifecycleJob],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Empties the tree, the bindings and the effective view, before a rebuild (the jobs
    /// stay).
    fn clear_member_contacts(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Whether the projection has anything to do with an event.
fn concerned(event: &RecordedEvent) -> bool {
    match &event.event {
        DomainEvent::Directory(_) => true,
        DomainEvent::Contact(event) => matches!(
            event,
            ContactEvent::MembersAssociated { .. }
                | ContactEvent::MembersDisassociated { .. }
                | ContactEvent::ContactDeletionStarted { .. }
                | ContactEvent::MessageContactDeleted
                | ContactEvent::MessageContactRenamed { .. }
                | ContactEvent::TitleChanged { .. }
                | ContactEvent::MessageTypesChanged { .. }
                | ContactEvent::EmailAddressVerified { .. }
                | ContactEvent::PhoneNumberVerified { .. }
                | ContactEvent::PhoneNumberRemoved
        ),
        DomainEvent::Delivery(_) => false,
    }
}

/// A change of the contact's details, which members it applies to are told of.
fn is_detail_change(event: &RecordedEvent) -> bool {
    matches!(
        event.contact_event(),
        Some(
            ContactEvent::MessageContactRenamed { .. }
                | ContactEvent::TitleChanged { .. }
                | ContactEvent::MessageTypesChanged { .. }
                | ContactEvent::EmailAddressVerified { .. }
                | ContactEvent::PhoneNumberVerified { .. }
                | ContactEvent::PhoneNumberRemoved
        )
    )
}

/// The pairs of the effective view, ordered: the order their messages are recorded in.
type Applying = BTreeSet<MemberContactPair>;

impl<W: MemberContactsModel> Projection<W> for MemberContacts {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn apply(&self, work: &mut W, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let live = self.recorded.is_some();
        let mut bound = HashSet::new();
        let changed: Vec<&str> = events
            .iter()
            .filter(|e| live && is_detail_change(e))
            .map(|e| e.stream_id.as_str())
            .collect();
        if !changed.is_empty() {
            bound.extend(work.bound_contacts(&changed).await?);
            bound.extend(
                events
                    .iter()
                    .filter(|e| {
                        matches!(
                            e.contact_event(),
                            Some(ContactEvent::MembersAssociated { .. })
                        )
                    })
                    .map(|e| e.stream_id.clone()),
            );
        }
        let mut batch = Batch {
            work,
            live,
            jobs: Vec::new(),
            bound,
        };
        for event in events.iter().filter(|e| concerned(e)) {
            batch.project(event).await?;
        }
        batch.record_jobs().await
    }

    fn clear(&self, work: &mut W) -> Option<impl Future<Output = Result<(), StoreError>> + Send> {
        Some(work.clear_member_contacts())
    }

    fn committed(&self, events: &[RecordedEvent]) {
        if let Some(recorded) = &self.recorded
            && events.iter().any(concerned)
        {
            recorded.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    fn concerns(&self, event: &RecordedEvent) -> bool {
        concerned(event)
    }
}

/// What one batch does: the jobs it records, if live.
struct Batch<'a, W> {
    work: &'a mut W,
    live: bool,
    jobs: Vec<NewLifecycleJob>,
    /// The contacts of the batch that may apply to members: bound before it, or in it. A
    /// change of any other contact (most changes) costs no read.
    bound: HashSet<String>,
}

/// A job caused by `event`, about `contact_id`.
fn job(
    event: &RecordedEvent,
    job_id: String,
    contact_id: &str,
    task: NewJobTask,
) -> NewLifecycleJob {
    NewLifecycleJob {
        job_id,
        account_id: event.metadata.account_id.clone(),
        contact_id: contact_id.to_owned(),
        task,
        causation_id: event.event_id.to_string(),
        correlation_id: event.metadata.correlation_id.clone(),
    }
}

impl<W: MemberContactsModel> Batch<'_, W> {
    async fn project(&mut self, event: &RecordedEvent) -> Result<(), StoreError> {
        let account = &event.metadata.account_id;
        let at = event.metadata.recorded_at;
        match &event.event {
            DomainEvent::Directory(directory) => self.directory(event, directory, at).await,
            DomainEvent::Contact(contact_event) => {
                let contact_id = event.stream_id.as_str();
                match contact_event {
                    ContactEvent::MembersAssociated { members } => {
                        let mut present = Vec::new();
                        for member in members {
                            if self.work.node_exists(account, member.as_str()).await? {
                                present.push(member.as_str().to_owned());
                            } else if self.live {
                                // Removed from the directory before this binding committed.
                                self.unbind(event, contact_id, member.as_str());
                            }
                        }
                        self.work
                            .insert_bindings(account, contact_id, &present, at)
                            .await?;
                        self.recompute(event, &present, Some(contact_id)).await
                    }
                    ContactEvent::MembersDisassociated { members } => {
                        let nodes: Vec<String> =
                            members.iter().map(|m| m.as_str().to_owned()).collect();
                        self.work
                            .delete_bindings(account, contact_id, &nodes)
                            .await?;
                        self.recompute(event, &nodes, Some(contact_id)).await
                    }
                    ContactEvent::ContactDeletionStarted { deletion_id } => {
                        if self.live {
                            self.removals(event, contact_id, *deletion_id).await?;
                        }
                        Ok(())
                    }
                    ContactEvent::MessageContactDeleted => {
                        // Kept in the members (or removed from them already): nothing to publish.
                        self.work.forget_contact(account, contact_id).await
                    }
                    _ => {
                        if self.live && self.bound.contains(contact_id) {
                            self.changed(event, contact_id).await?;
                        }
                        Ok(())
                    }
                }
            }
            DomainEvent::Delivery(_) => Ok(()),
        }
    }

    async fn directory(
        &mut self,
        event: &RecordedEvent,
        directory: &DirectoryEvent,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let account = &event.metadata.account_id;
        match directory {
            DirectoryEvent::ResourceDirectoryCreated {
                resource_directory_id,
            } => {
                self.work
                    .add_root(account, resource_directory_id.as_str(), at)
                    .await
            }
            DirectoryEvent::FolderRegistered {
                folder_id,
                parent_id,
            } => {
                let parent = parent_id.as_ref().map(|p| p.as_str());
                self.work
                    .place_node(account, folder_id.as_str(), parent, false, at)
                    .await?;
                self.recompute(event, &[folder_id.as_str().to_owned()], None)
                    .await
            }
            DirectoryEvent::MemberRegistered {
                account_id,
                folder_id,
            }
            | DirectoryEvent::MemberMoved {
                account_id,
                to: folder_id,
                ..
            } => {
                let folder = folder_id.as_ref().map(|f| f.as_str());
                self.work
                    .place_node(account, account_id.as_str(), folder, true, at)
                    .await?;
                self.recompute(event, &[account_id.as_str().to_owned()], None)
                    .await
            }
            DirectoryEvent::FolderRemoved { .. } | DirectoryEvent::MemberRemoved { .. } => {
                let Some(target) = directory.removed_target() else {
                    return Ok(());
                };
                let node = target.as_str();
                // As upstream, a member leaving the directory keeps the copies it has: the
                // contacts stop applying here, and nothing is published for it.
                let bound = self.work.remove_node(account, node).await?;
                if self.live {
                    for contact_id in bound {
                        self.unbind(event, &contact_id, node);
                    }
                }
                Ok(())
            }
        }
    }

    /// Computes afresh which contacts (all, or one) apply to every node below `roots`; live,
    /// publishes what changed for the member accounts.
    async fn recompute(
        &mut self,
        event: &RecordedEvent,
        roots: &[String],
        contact: Option<&str>,
    ) -> Result<(), StoreError> {
        if roots.is_empty() {
            return Ok(());
        }
        let account = &event.metadata.account_id;
        let before = if self.live {
            self.applying(account, Some(roots), contact).await?
        } else {
            Applying::new()
        };
        self.work.recompute(account, roots, contact).await?;
        if !self.live {
            return Ok(());
        }
        let after = self.applying(account, Some(roots), contact).await?;
        let applied: Vec<_> = after.difference(&before).cloned().collect();
        let removed: Vec<_> = before.difference(&after).cloned().collect();
        self.publish(event, MemberContactChange::Applied, &applied, None)
            .await?;
        self.publish(event, MemberContactChange::Removed, &removed, None)
            .await
    }

    async fn applying(
        &mut self,
        account: &AccountId,
        roots: Option<&[String]>,
        contact: Option<&str>,
    ) -> Result<Applying, StoreError> {
        Ok(self
            .work
            .applying(account, roots, contact)
            .await?
            .into_iter()
            .collect())
    }

    /// The member accounts a contact applies to now.
    async fn members_of(
        &mut self,
        account: &AccountId,
        contact_id: &str,
    ) -> Result<Vec<MemberContactPair>, StoreError> {
        Ok(self
            .applying(account, None, Some(contact_id))
            .await?
            .into_iter()
            .collect())
    }

    /// A contact that applies to members changed: each of them is told.
    async fn changed(&mut self, event: &RecordedEvent, contact_id: &str) -> Result<(), StoreError> {
        let members = self
            .members_of(&event.metadata.account_id, contact_id)
            .await?;
        self.publish(event, MemberContactChange::Changed, &members, None)
            .await
    }

    /// An asynchronous delete: a removal for each member the contact applies to, and the job
    /// that ends the delete once they have all settled.
    async fn removals(
        &mut self,
        event: &RecordedEvent,
        contact_id: &str,
        deletion_id: Uuid,
    ) -> Result<(), StoreError> {
        let members = self
            .members_of(&event.metadata.account_id, contact_id)
            .await?;
        self.publish(
            event,
            MemberContactChange::Removed,
            &members,
            Some(deletion_id),
        )
        .await?;
        self.jobs.push(job(
            event,
            format!("{}.finish", event.event_id),
            contact_id,
            NewJobTask::FinishDeletion { deletion_id },
        ));
        Ok(())
    }

    fn unbind(&mut self, event: &RecordedEvent, contact_id: &str, target: &str) {
        self.jobs.push(job(
            event,
            format!("{}.unbind.{contact_id}.{target}", event.event_id),
            contact_id,
            NewJobTask::Unbind {
                target: target.to_owned(),
            },
        ));
    }

    /// Records a message for each (member, contact) pair.
    async fn publish(
        &mut self,
        event: &RecordedEvent,
        change: MemberContactChange,
        pairs: &[MemberContactPair],
        deletion_id: Option<Uuid>,
    ) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let account = &event.metadata.account_id;
        let ids: Vec<&str> = pairs.iter().map(|p| p.contact_id.as_str()).collect();
        let contacts = self.work.contacts(account, &ids).await?;
        for pair in pairs {
            let (Some(contact), Ok(member)) = (
                contacts.get(&pair.contact_id),
                MemberAccountId::parse(&pair.member),
            ) else {
                // A contact deleted since (its removal was published or it was kept): nothing.
                continue;
            };
            let message = member_contact_message(
                change,
                event.event_id,
                account,
                &member,
                contact,
                event.metadata.recorded_at,
            );
            self.jobs.push(job(
                event,
                message.message_id.clone(),
                &pair.contact_id,
                NewJobTask::Publish {
                    member,
                    message,
                    message_types: contact.message_types,
                    deletion_id,
                },
            ));
        }
        Ok(())
    }

    async fn record_jobs(self) -> Result<(), StoreError> {
        if self.jobs.is_empty() {
            return Ok(());
        }
        // Recorded again after a crash before the checkpoint moved: the ids are the same.
        self.work.record_jobs(&self.jobs).await
    }
}
