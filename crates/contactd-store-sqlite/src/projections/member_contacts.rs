//! The `member_contacts` read model on SQLite: the statements its projection
//! ([`contactd_app::MemberContacts`]) reads and writes with, the same as PostgreSQL's in
//! SQLite's dialect. Lists of ids are bound as one JSON array and opened with `json_each`;
//! times are text that orders as they do, so `max`/`min` pick the later/earlier one, and the
//! empty text stands for "before any time".

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use contactd_app::{
    MemberContactPair, MemberContactsModel, NewJobTask, NewLifecycleJob, StoreError,
};
use contactd_domain::{AccountId, Contact};
use contactd_store_core::documents::{CONTACT_COLUMNS, StoredContact};
use contactd_store_core::events::type_names;
use uuid::Uuid;

use super::work::SqliteWork;
use crate::error::failed;

/// The nodes below the ones of the JSON array `?2` (themselves included), at any depth.
const SUBTREE: &str = "subtree(node_id) AS ( \
        SELECT node_id FROM directory_nodes \
            WHERE account_id = ?1 AND node_id IN (SELECT value FROM json_each(?2)) \
        UNION \
        SELECT n.node_id FROM directory_nodes n JOIN subtree s \
            ON n.account_id = ?1 AND n.parent_id = s.node_id)";

/// Ids as the JSON array `json_each` opens.
fn json_array<S: AsRef<str>>(ids: &[S]) -> String {
    serde_json::Value::from(ids.iter().map(AsRef::as_ref).collect::<Vec<&str>>()).to_string()
}

/// A job as its row's columns.
struct JobRow<'a> {
    kind: &'static str,
    target: Option<&'a str>,
    subject: Option<&'a str>,
    message_id: Option<&'a str>,
    /// JSON, rendered from its parsed value as every store renders a payload.
    payload: Option<String>,
    /// A JSON array of the types' names.
    message_types: Option<String>,
    deletion_id: Option<Uuid>,
}

impl<'a> JobRow<'a> {
    fn of(job: &'a NewLifecycleJob) -> Self {
        match &job.task {
            NewJobTask::Publish {
                member,
                message,
                message_types,
                deletion_id,
            } => Self {
                kind: "publish",
                target: Some(member.as_str()),
                subject: Some(message.subject.as_str()),
                message_id: Some(message.message_id.as_str()),
                payload: serde_json::from_slice::<serde_json::Value>(&message.payload)
                    .ok()
                    .map(|payload| payload.to_string()),
                message_types: Some(json_array(&type_names(*message_types))),
                deletion_id: *deletion_id,
            },
            NewJobTask::Unbind { target } => Self {
                kind: "unbind",
                target: Some(target.as_str()),
                subject: None,
                message_id: None,
                payload: None,
                message_types: None,
                deletion_id: None,
            },
            NewJobTask::FinishDeletion { deletion_id } => Self {
                kind: "finish_deletion",
                target: None,
                subject: None,
                message_id: None,
                payload: None,
                message_types: None,
                deletion_id: Some(*deletion_id),
            },
        }
    }
}

impl MemberContactsModel for SqliteWork<'_> {
    async fn bound_contacts(&mut self, contact_ids: &[&str]) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT DISTINCT contact_id FROM contact_bindings \
             WHERE contact_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_array(contact_ids))
        .fetch_all(self.connection())
        .await
        .map_err(failed("reading the bound contacts failed"))
    }

    async fn node_exists(&mut self, account: &AccountId, node: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM directory_nodes WHERE account_id = ?1 AND node_id = ?2)",
        )
        .bind(account.as_str())
        .bind(node)
        .fetch_one(self.connection())
        .await
        .map_err(failed("reading the directory's tree failed"))
    }

    async fn add_root(
        &mut self,
        account: &AccountId,
        root: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO directory_nodes (account_id, node_id, parent_id, is_member, joined_at) \
             VALUES (?1, ?2, NULL, 0, ?3) ON CONFLICT DO NOTHING",
        )
        .bind(account.as_str())
        .bind(root)
        .bind(at)
        .execute(self.connection())
        .await
        .map_err(failed("adding a directory's root failed"))?;
        Ok(())
    }

    async fn place_node(
        &mut self,
        account: &AccountId,
        node: &str,
        parent: Option<&str>,
        is_member: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // A node without a folder is under the root: the node without a parent. (The `WHERE
        // true` tells SQLite's parser that `ON CONFLICT` is the upsert's.)
        sqlx::query(
            "INSERT INTO directory_nodes (account_id, node_id, parent_id, is_member, joined_at) \
             SELECT ?1, ?2, coalesce(?3, (SELECT node_id FROM directory_nodes \
                 WHERE account_id = ?1 AND parent_id IS NULL AND NOT is_member)), ?4, ?5 WHERE true \
             ON CONFLICT (account_id, node_id) DO UPDATE \
                 SET parent_id = excluded.parent_id, joined_at = excluded.joined_at",
        )
        .bind(account.as_str())
        .bind(node)
        .bind(parent)
        .bind(is_member)
        .bind(at)
        .execute(self.connection())
        .await
        .map_err(failed("placing a directory node failed"))?;
        Ok(())
    }

    async fn remove_node(
        &mut self,
        account: &AccountId,
        node: &str,
    ) -> Result<Vec<String>, StoreError> {
        let failure = failed("removing a directory node failed");
        let bound: Vec<String> = sqlx::query_scalar(
            "DELETE FROM contact_bindings WHERE account_id = ?1 AND node_id = ?2 \
             RETURNING contact_id",
        )
        .bind(account.as_str())
        .bind(node)
        .fetch_all(&mut *self.connection())
        .await
        .map_err(&failure)?;
        for table in ["effective_contacts", "directory_nodes"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE account_id = ?1 AND node_id = ?2"
            ))
            .bind(account.as_str())
            .bind(node)
            .execute(&mut *self.connection())
            .await
            .map_err(&failure)?;
        }
        Ok(bound)
    }

    async fn insert_bindings(
        &mut self,
        account: &AccountId,
        contact_id: &str,
        nodes: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO contact_bindings (account_id, contact_id, node_id, bound_at) \
             SELECT ?1, ?2, value, ?4 FROM json_each(?3) WHERE true ON CONFLICT DO NOTHING",
        )
        .bind(account.as_str())
        .bind(contact_id)
        .bind(json_array(nodes))
        .bind(at)
        .execute(self.connection())
        .await
        .map_err(failed("binding a contact failed"))?;
        Ok(())
    }

    async fn delete_bindings(
        &mut self,
        account: &AccountId,
        contact_id: &str,
        nodes: &[String],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM contact_bindings WHERE account_id = ?1 AND contact_id = ?2 \
                 AND node_id IN (SELECT value FROM json_each(?3))",
        )
        .bind(account.as_str())
        .bind(contact_id)
        .bind(json_array(nodes))
        .execute(self.connection())
        .await
        .map_err(failed("unbinding a contact failed"))?;
        Ok(())
    }

    async fn forget_contact(
        &mut self,
        account: &AccountId,
        contact_id: &str,
    ) -> Result<(), StoreError> {
        for table in ["contact_bindings", "effective_contacts"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE account_id = ?1 AND contact_id = ?2"
            ))
            .bind(account.as_str())
            .bind(contact_id)
            .execute(&mut *self.connection())
            .await
            .map_err(failed("forgetting a deleted contact's bindings failed"))?;
        }
        Ok(())
    }

    async fn recompute(
        &mut self,
        account: &AccountId,
        roots: &[String],
        contact_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let roots = json_array(roots);
        sqlx::query(&format!(
            "WITH RECURSIVE {SUBTREE} \
             DELETE FROM effective_contacts WHERE account_id = ?1 \
                 AND node_id IN (SELECT node_id FROM subtree) AND (?3 IS NULL OR contact_id = ?3)"
        ))
        .bind(account.as_str())
        .bind(&roots)
        .bind(contact_id)
        .execute(&mut *self.connection())
        .await
        .map_err(failed("emptying the effective contacts failed"))?;
        // For each node below, each node above it (itself included) with the time the node
        // came under it: a contact bound up there came to apply at the later of that time and
        // the binding's. The tree has no cycle (folders never move); the depth bound is there
        // all the same.
        sqlx::query(&format!(
            "WITH RECURSIVE {SUBTREE}, \
             up(node_id, ancestor_id, came_at, depth) AS ( \
                 SELECT node_id, node_id, '', 0 FROM subtree \
                 UNION ALL \
                 SELECT u.node_id, n.parent_id, max(u.came_at, n.joined_at), u.depth + 1 \
                 FROM up u JOIN directory_nodes n ON n.account_id = ?1 AND n.node_id = u.ancestor_id \
                 WHERE n.parent_id IS NOT NULL AND u.depth < 10000) \
             INSERT INTO effective_contacts (account_id, node_id, contact_id, created_at, associated_at) \
             SELECT ?1, u.node_id, b.contact_id, c.created_at, min(max(u.came_at, b.bound_at)) \
             FROM up u \
             JOIN contact_bindings b ON b.account_id = ?1 AND b.node_id = u.ancestor_id \
             JOIN contacts c ON c.contact_id = b.contact_id AND c.account_id = ?1 \
             WHERE ?3 IS NULL OR b.contact_id = ?3 \
             GROUP BY u.node_id, b.contact_id, c.created_at"
        ))
        .bind(account.as_str())
        .bind(&roots)
        .bind(contact_id)
        .execute(self.connection())
        .await
        .map_err(failed("computing the effective contacts failed"))?;
        Ok(())
    }

    async fn applying(
        &mut self,
        account: &AccountId,
        roots: Option<&[String]>,
        contact_id: Option<&str>,
    ) -> Result<Vec<MemberContactPair>, StoreError> {
        let roots = roots.map(json_array);
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "WITH RECURSIVE {SUBTREE} \
             SELECT e.node_id, e.contact_id FROM effective_contacts e \
             JOIN directory_nodes n ON n.account_id = e.account_id AND n.node_id = e.node_id \
             WHERE e.account_id = ?1 AND n.is_member \
                 AND (?2 IS NULL OR e.node_id IN (SELECT node_id FROM subtree)) \
                 AND (?3 IS NULL OR e.contact_id = ?3)"
        ))
        .bind(account.as_str())
        .bind(roots)
        .bind(contact_id)
        .fetch_all(self.connection())
        .await
        .map_err(failed("reading the effective contacts failed"))?;
        Ok(rows
            .into_iter()
            .map(|(member, contact_id)| MemberContactPair { member, contact_id })
            .collect())
    }

    async fn contacts(
        &mut self,
        account: &AccountId,
        contact_ids: &[&str],
    ) -> Result<HashMap<String, Contact>, StoreError> {
        let rows: Vec<StoredContact> = sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts \
             WHERE account_id = ?1 AND contact_id IN (SELECT value FROM json_each(?2))"
        ))
        .bind(account.as_str())
        .bind(json_array(contact_ids))
        .fetch_all(self.connection())
        .await
        .map_err(failed("reading contacts failed"))?;
        rows.into_iter()
            .map(|row| {
                let id = row.contact_id.clone();
                row.into_contact().map(|c| (id, c))
            })
            .collect()
    }

    async fn record_jobs(&mut self, jobs: &[NewLifecycleJob]) -> Result<(), StoreError> {
        // Due at once, with the service's clock (SQLite's writes another format).
        let now = Utc::now();
        // One statement per job, in order: the rowid is the order the worker follows.
        for job in jobs {
            let row = JobRow::of(job);
            sqlx::query(
                "INSERT INTO lifecycle_jobs (job_id, account_id, kind, contact_id, target, \
                     subject, message_id, payload, message_types, deletion_id, causation_id, \
                     correlation_id, next_attempt_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                 ON CONFLICT (job_id) DO NOTHING",
            )
            .bind(job.job_id.as_str())
            .bind(job.account_id.as_str())
            .bind(row.kind)
            .bind(job.contact_id.as_str())
            .bind(row.target)
            .bind(row.subject)
            .bind(row.message_id)
            .bind(row.payload)
            .bind(row.message_types)
            .bind(row.deletion_id)
            .bind(job.causation_id.as_str())
            .bind(job.correlation_id.as_str())
            .bind(now)
            .execute(&mut *self.connection())
            .await
            .map_err(failed("recording lifecycle jobs failed"))?;
        }
        Ok(())
    }

    async fn clear_member_contacts(&mut self) -> Result<(), StoreError> {
        for table in ["directory_nodes", "contact_bindings", "effective_contacts"] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *self.connection())
                .await
                .map_err(failed("emptying the member contacts failed"))?;
        }
        Ok(())
    }
}
