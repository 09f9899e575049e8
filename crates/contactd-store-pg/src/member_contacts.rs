//! The `member_contacts` projection: which contacts apply to each node of each account's
//! directory (bound to it, or to a folder or the root above it, at any depth), and since
//! when. It keeps its own copy of the tree and of the bindings, in log order, so that
//! `ListMessageContacts(member=…)` is one indexed range whatever the directory's depth, and a
//! rebuild gives the same rows.
//!
//! Live (not when rebuilt), it also records the lifecycle jobs its changes call for, in the
//! same transaction: an integration event for each member account a contact came to apply to,
//! stopped applying to, or changed for; the removals of an asynchronous delete and the job
//! that ends it; the unbinding of a target the directory no longer holds. The lifecycle
//! worker carries them out after commit (ADR 9).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use contactd_app::{
    IntegrationMessage, MemberContactChange, RecordedEvent, member_contact_message,
};
use contactd_domain::{
    AccountId, Contact, ContactEvent, DirectoryEvent, DomainEvent, MemberAccountId,
};
use sqlx::PgConnection;
use tokio::sync::watch;
use uuid::Uuid;

use crate::projection::Projection;
use contactd_store_format::documents::{CONTACT_COLUMNS, StoredContact};
use contactd_store_format::events::type_names;

/// The projection; [`MemberContacts::replaying`] for rebuilds, which record no job.
#[derive(Debug)]
pub struct MemberContacts {
    /// Wakes this process's lifecycle worker after a batch that recorded jobs; `None` when
    /// replaying.
    recorded: Option<Arc<watch::Sender<u64>>>,
}

impl MemberContacts {
    pub const NAME: &'static str = "member_contacts";

    /// The live projection, which records lifecycle jobs (see [`crate::PgStore::member_contacts`]).
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

/// A job to record, as its row.
#[derive(Debug)]
struct Job {
    job_id: String,
    account_id: String,
    kind: &'static str,
    contact_id: Option<String>,
    target: Option<String>,
    message: Option<IntegrationMessage>,
    message_types: Option<Vec<String>>,
    deletion_id: Option<Uuid>,
    causation_id: String,
    correlation_id: String,
}

impl Job {
    fn new(event: &RecordedEvent, job_id: String, kind: &'static str) -> Self {
        Self {
            job_id,
            account_id: event.metadata.account_id.as_str().to_owned(),
            kind,
            contact_id: None,
            target: None,
            message: None,
            message_types: None,
            deletion_id: None,
            causation_id: event.event_id.to_string(),
            correlation_id: event.metadata.correlation_id.clone(),
        }
    }
}

/// What one batch does: the jobs it records, if live.
struct Batch<'a> {
    tx: &'a mut PgConnection,
    live: bool,
    jobs: Vec<Job>,
    /// The contacts of the batch that may apply to members: bound before it, or in it. A
    /// change of any other contact (most changes) costs no query.
    bound: HashSet<String>,
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

/// A (member node, contact) pair of the effective view.
type Applying = BTreeSet<(String, String)>;

impl Projection for MemberContacts {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), sqlx::Error> {
        let live = self.recorded.is_some();
        let mut bound = HashSet::new();
        let changed: Vec<&str> = events
            .iter()
            .filter(|e| live && is_detail_change(e))
            .map(|e| e.stream_id.as_str())
            .collect();
        if !changed.is_empty() {
            let already: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT contact_id FROM contact_bindings WHERE contact_id = ANY($1)",
            )
            .bind(&changed)
            .fetch_all(&mut *tx)
            .await?;
            bound.extend(already);
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
            tx,
            live,
            jobs: Vec::new(),
            bound,
        };
        for event in events.iter().filter(|e| concerned(e)) {
            batch.project(event).await?;
        }
        batch.record_jobs().await
    }

    fn clear(
        &self,
        tx: &mut PgConnection,
    ) -> Option<impl Future<Output = Result<(), sqlx::Error>> + Send> {
        Some(async move {
            sqlx::query("TRUNCATE directory_nodes, contact_bindings, effective_contacts")
                .execute(tx)
                .await
                .map(drop)
        })
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

/// The nodes below the given ones (themselves included), at any depth.
const SUBTREE: &str = "subtree(node_id) AS ( \
        SELECT node_id FROM directory_nodes WHERE account_id = $1 AND node_id = ANY($2) \
        UNION \
        SELECT n.node_id FROM directory_nodes n JOIN subtree s \
            ON n.account_id = $1 AND n.parent_id = s.node_id)";

impl Batch<'_> {
    async fn project(&mut self, event: &RecordedEvent) -> Result<(), sqlx::Error> {
        let account = event.metadata.account_id.as_str();
        let at = event.metadata.recorded_at;
        match &event.event {
            DomainEvent::Directory(directory) => self.directory(event, directory, at).await,
            DomainEvent::Contact(contact_event) => {
                let contact_id = event.stream_id.as_str();
                match contact_event {
                    ContactEvent::MembersAssociated { members } => {
                        let mut present = Vec::new();
                        for member in members {
                            if self.node_exists(account, member.as_str()).await? {
                                present.push(member.as_str().to_owned());
                            } else if self.live {
                                // Removed from the directory before this binding committed.
                                self.unbind(event, contact_id, member.as_str());
                            }
                        }
                        sqlx::query(
                            "INSERT INTO contact_bindings (account_id, contact_id, node_id, bound_at) \
                             SELECT $1, $2, n, $4 FROM UNNEST($3::text[]) AS n ON CONFLICT DO NOTHING",
                        )
                        .bind(account)
                        .bind(contact_id)
                        .bind(&present)
                        .bind(at)
                        .execute(&mut *self.tx)
                        .await?;
                        self.recompute(event, &present, Some(contact_id)).await
                    }
                    ContactEvent::MembersDisassociated { members } => {
                        let nodes: Vec<String> =
                            members.iter().map(|m| m.as_str().to_owned()).collect();
                        sqlx::query(
                            "DELETE FROM contact_bindings \
                             WHERE account_id = $1 AND contact_id = $2 AND node_id = ANY($3)",
                        )
                        .bind(account)
                        .bind(contact_id)
                        .bind(&nodes)
                        .execute(&mut *self.tx)
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
                        sqlx::query(
                            "WITH unbound AS (DELETE FROM contact_bindings \
                                 WHERE account_id = $1 AND contact_id = $2) \
                             DELETE FROM effective_contacts WHERE account_id = $1 AND contact_id = $2",
                        )
                        .bind(account)
                        .bind(contact_id)
                        .execute(&mut *self.tx)
                        .await
                        .map(drop)
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
    ) -> Result<(), sqlx::Error> {
        let account = event.metadata.account_id.as_str();
        let place = |parent: Option<&str>, node: &str, is_member: bool| {
            // A node without a folder is under the root: the node without a parent.
            sqlx::query(
                "INSERT INTO directory_nodes (account_id, node_id, parent_id, is_member, joined_at) \
                 SELECT $1, $2, coalesce($3, (SELECT node_id FROM directory_nodes \
                     WHERE account_id = $1 AND parent_id IS NULL AND NOT is_member)), $4, $5 \
                 ON CONFLICT (account_id, node_id) DO UPDATE \
                     SET parent_id = EXCLUDED.parent_id, joined_at = EXCLUDED.joined_at",
            )
            .bind(account.to_owned())
            .bind(node.to_owned())
            .bind(parent.map(str::to_owned))
            .bind(is_member)
            .bind(at)
        };
        match directory {
            DirectoryEvent::ResourceDirectoryCreated {
                resource_directory_id,
            } => {
                sqlx::query(
                    "INSERT INTO directory_nodes (account_id, node_id, parent_id, is_member, joined_at) \
                     VALUES ($1, $2, NULL, false, $3) ON CONFLICT DO NOTHING",
                )
                .bind(account)
                .bind(resource_directory_id.as_str())
                .bind(at)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }
            DirectoryEvent::FolderRegistered {
                folder_id,
                parent_id,
            } => {
                let parent = parent_id.as_ref().map(|p| p.as_str());
                place(parent, folder_id.as_str(), false)
                    .execute(&mut *self.tx)
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
                place(folder, account_id.as_str(), true)
                    .execute(&mut *self.tx)
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
                let bound: Vec<String> = sqlx::query_scalar(
                    "WITH gone AS (DELETE FROM directory_nodes WHERE account_id = $1 AND node_id = $2), \
                          ineffective AS (DELETE FROM effective_contacts WHERE account_id = $1 AND node_id = $2) \
                     DELETE FROM contact_bindings WHERE account_id = $1 AND node_id = $2 RETURNING contact_id",
                )
                .bind(account)
                .bind(node)
                .fetch_all(&mut *self.tx)
                .await?;
                if self.live {
                    for contact_id in bound {
                        self.unbind(event, &contact_id, node);
                    }
                }
                Ok(())
            }
        }
    }

    async fn node_exists(&mut self, account: &str, node: &str) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM directory_nodes WHERE account_id = $1 AND node_id = $2)",
        )
        .bind(account)
        .bind(node)
        .fetch_one(&mut *self.tx)
        .await
    }

    /// Computes afresh which contacts (all, or one) apply to every node below `roots`, from
    /// the tree and the bindings; live, publishes what changed for the member accounts.
    async fn recompute(
        &mut self,
        event: &RecordedEvent,
        roots: &[String],
        contact: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        if roots.is_empty() {
            return Ok(());
        }
        let account = event.metadata.account_id.as_str();
        let before = if self.live {
            self.applying(account, Some(roots), contact).await?
        } else {
            Applying::new()
        };
        sqlx::query(&format!(
            "WITH RECURSIVE {SUBTREE} \
             DELETE FROM effective_contacts WHERE account_id = $1 \
                 AND node_id IN (SELECT node_id FROM subtree) AND ($3::text IS NULL OR contact_id = $3)"
        ))
        .bind(account)
        .bind(roots)
        .bind(contact)
        .execute(&mut *self.tx)
        .await?;
        // For each node below, each node above it (itself included) with the time the node
        // came under it: a contact bound up there came to apply at the later of that time and
        // the binding's. The tree has no cycle (folders never move); the depth bound is there
        // all the same.
        sqlx::query(&format!(
            "WITH RECURSIVE {SUBTREE}, \
             up(node_id, ancestor_id, came_at, depth) AS ( \
                 SELECT node_id, node_id, '-infinity'::timestamptz, 0 FROM subtree \
                 UNION ALL \
                 SELECT u.node_id, n.parent_id, GREATEST(u.came_at, n.joined_at), u.depth + 1 \
                 FROM up u JOIN directory_nodes n ON n.account_id = $1 AND n.node_id = u.ancestor_id \
                 WHERE n.parent_id IS NOT NULL AND u.depth < 10000) \
             INSERT INTO effective_contacts (account_id, node_id, contact_id, created_at, associated_at) \
             SELECT $1, u.node_id, b.contact_id, c.created_at, min(GREATEST(u.came_at, b.bound_at)) \
             FROM up u \
             JOIN contact_bindings b ON b.account_id = $1 AND b.node_id = u.ancestor_id \
             JOIN contacts c ON c.contact_id = b.contact_id AND c.account_id = $1 \
             WHERE $3::text IS NULL OR b.contact_id = $3 \
             GROUP BY u.node_id, b.contact_id, c.created_at"
        ))
        .bind(account)
        .bind(roots)
        .bind(contact)
        .execute(&mut *self.tx)
        .await?;
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

    /// The (member, contact) pairs of the effective view below `roots` (`None`: anywhere).
    async fn applying(
        &mut self,
        account: &str,
        roots: Option<&[String]>,
        contact: Option<&str>,
    ) -> Result<Applying, sqlx::Error> {
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "WITH RECURSIVE {SUBTREE} \
             SELECT e.node_id, e.contact_id FROM effective_contacts e \
             JOIN directory_nodes n ON n.account_id = e.account_id AND n.node_id = e.node_id \
             WHERE e.account_id = $1 AND n.is_member \
                 AND ($2::text[] IS NULL OR e.node_id IN (SELECT node_id FROM subtree)) \
                 AND ($3::text IS NULL OR e.contact_id = $3)"
        ))
        .bind(account)
        .bind(roots)
        .bind(contact)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// The member accounts a contact applies to now.
    async fn members_of(
        &mut self,
        account: &str,
        contact_id: &str,
    ) -> Result<Applying, sqlx::Error> {
        self.applying(account, None, Some(contact_id)).await
    }

    /// A contact that applies to members changed: each of them is told.
    async fn changed(
        &mut self,
        event: &RecordedEvent,
        contact_id: &str,
    ) -> Result<(), sqlx::Error> {
        let account = event.metadata.account_id.as_str();
        let members: Vec<_> = self
            .members_of(account, contact_id)
            .await?
            .into_iter()
            .collect();
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
    ) -> Result<(), sqlx::Error> {
        let account = event.metadata.account_id.as_str();
        let members: Vec<_> = self
            .members_of(account, contact_id)
            .await?
            .into_iter()
            .collect();
        self.publish(
            event,
            MemberContactChange::Removed,
            &members,
            Some(deletion_id),
        )
        .await?;
        let mut finish = Job::new(
            event,
            format!("{}.finish", event.event_id),
            "finish_deletion",
        );
        finish.contact_id = Some(contact_id.to_owned());
        finish.deletion_id = Some(deletion_id);
        self.jobs.push(finish);
        Ok(())
    }

    fn unbind(&mut self, event: &RecordedEvent, contact_id: &str, target: &str) {
        let mut job = Job::new(
            event,
            format!("{}.unbind.{contact_id}.{target}", event.event_id),
            "unbind",
        );
        job.contact_id = Some(contact_id.to_owned());
        job.target = Some(target.to_owned());
        self.jobs.push(job);
    }

    /// Records a message for each (member, contact) pair.
    async fn publish(
        &mut self,
        event: &RecordedEvent,
        change: MemberContactChange,
        pairs: &[(String, String)],
        deletion_id: Option<Uuid>,
    ) -> Result<(), sqlx::Error> {
        if pairs.is_empty() {
            return Ok(());
        }
        let account = &event.metadata.account_id;
        let ids: Vec<&str> = pairs.iter().map(|(_, c)| c.as_str()).collect();
        let contacts = self.contacts(account, &ids).await?;
        for (member, contact_id) in pairs {
            let (Some(contact), Ok(member)) =
                (contacts.get(contact_id), MemberAccountId::parse(member))
            else {
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
            let mut job = Job::new(event, message.message_id.clone(), "publish");
            job.contact_id = Some(contact_id.clone());
            job.target = Some(member.as_str().to_owned());
            job.message_types = Some(type_names(contact.message_types));
            job.deletion_id = deletion_id;
            job.message = Some(message);
            self.jobs.push(job);
        }
        Ok(())
    }

    /// The contacts named, as they are now.
    async fn contacts(
        &mut self,
        account: &AccountId,
        ids: &[&str],
    ) -> Result<HashMap<String, Contact>, sqlx::Error> {
        let rows: Vec<StoredContact> = sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 AND contact_id = ANY($2)"
        ))
        .bind(account.as_str())
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.into_iter()
            .map(|row| {
                let id = row.contact_id.clone();
                row.into_contact()
                    .map(|c| (id, c))
                    .map_err(|e| sqlx::Error::Protocol(e.to_string()))
            })
            .collect()
    }

    async fn record_jobs(self) -> Result<(), sqlx::Error> {
        if self.jobs.is_empty() {
            return Ok(());
        }
        let jobs = &self.jobs;
        let text = |f: fn(&Job) -> Option<&str>| jobs.iter().map(f).collect::<Vec<_>>();
        // Recorded again after a crash before the checkpoint moved: the ids are the same.
        sqlx::query(
            "INSERT INTO lifecycle_jobs (job_id, account_id, kind, contact_id, target, subject, \
                 message_id, payload, message_types, deletion_id, causation_id, correlation_id) \
             SELECT j.job_id, j.account_id, j.kind, j.contact_id, j.target, j.subject, j.message_id, \
                 j.payload, CASE WHEN j.message_types IS NULL THEN NULL \
                     ELSE ARRAY(SELECT jsonb_array_elements_text(j.message_types)) END, \
                 j.deletion_id, j.causation_id, j.correlation_id \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                         $7::text[], $8::jsonb[], $9::jsonb[], $10::uuid[], $11::text[], $12::text[]) \
                  WITH ORDINALITY \
                  AS j(job_id, account_id, kind, contact_id, target, subject, message_id, payload, \
                       message_types, deletion_id, causation_id, correlation_id, ordinal) \
             ORDER BY j.ordinal \
             ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(text(|j| Some(j.job_id.as_str())))
        .bind(text(|j| Some(j.account_id.as_str())))
        .bind(text(|j| Some(j.kind)))
        .bind(text(|j| j.contact_id.as_deref()))
        .bind(text(|j| j.target.as_deref()))
        .bind(text(|j| j.message.as_ref().map(|m| m.subject.as_str())))
        .bind(text(|j| j.message.as_ref().map(|m| m.message_id.as_str())))
        .bind(
            jobs.iter()
                .map(|j| {
                    j.message
                        .as_ref()
                        .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).ok())
                })
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|j| j.message_types.as_ref().map(|t| serde_json::json!(t)))
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.deletion_id).collect::<Vec<_>>())
        .bind(text(|j| Some(j.causation_id.as_str())))
        .bind(text(|j| Some(j.correlation_id.as_str())))
        .execute(self.tx)
        .await
        .map(drop)
    }
}
