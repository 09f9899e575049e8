//! The `member_contacts` read model on PostgreSQL: the statements its projection
//! ([`contactd_app::MemberContacts`]) reads and writes with. The tree is `directory_nodes`,
//! the bindings `contact_bindings`, the effective view `effective_contacts` (recomputed with
//! recursive CTEs), and the jobs it records go to `lifecycle_jobs` (ADR 9).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use contactd_app::{
    MemberContactPair, MemberContactsModel, NewJobTask, NewLifecycleJob, StoreError,
};
use contactd_domain::{AccountId, Contact};
use uuid::Uuid;

use crate::error::store_error;
use crate::work::PgWork;
use contactd_store_core::documents::{CONTACT_COLUMNS, StoredContact};
use contactd_store_core::events::type_names;

/// The nodes below the given ones (themselves included), at any depth.
const SUBTREE: &str = "subtree(node_id) AS ( \
        SELECT node_id FROM directory_nodes WHERE account_id = $1 AND node_id = ANY($2) \
        UNION \
        SELECT n.node_id FROM directory_nodes n JOIN subtree s \
            ON n.account_id = $1 AND n.parent_id = s.node_id)";

/// A job as its row's columns.
struct JobRow<'a> {
    kind: &'static str,
    target: Option<&'a str>,
    subject: Option<&'a str>,
    message_id: Option<&'a str>,
    payload: Option<serde_json::Value>,
    message_types: Option<serde_json::Value>,
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
                payload: serde_json::from_slice::<serde_json::Value>(&message.payload).ok(),
                message_types: Some(serde_json::json!(type_names(*message_types))),
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

impl MemberContactsModel for PgWork<'_> {
    async fn bound_contacts(&mut self, contact_ids: &[&str]) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT DISTINCT contact_id FROM contact_bindings WHERE contact_id = ANY($1)",
        )
        .bind(contact_ids)
        .fetch_all(self.connection())
        .await
        .map_err(|e| store_error("reading the bound contacts failed", e))
    }

    async fn node_exists(&mut self, account: &AccountId, node: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM directory_nodes WHERE account_id = $1 AND node_id = $2)",
        )
        .bind(account.as_str())
        .bind(node)
        .fetch_one(self.connection())
        .await
        .map_err(|e| store_error("reading the directory's tree failed", e))
    }

    async fn add_root(
        &mut self,
        account: &AccountId,
        root: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO directory_nodes (account_id, node_id, parent_id, is_member, joined_at) \
             VALUES ($1, $2, NULL, false, $3) ON CONFLICT DO NOTHING",
        )
        .bind(account.as_str())
        .bind(root)
        .bind(at)
        .execute(self.connection())
        .await
        .map_err(|e| store_error("adding a directory's root failed", e))?;
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
        // A node without a folder is under the root: the node without a parent.
        sqlx::query(
            "INSERT INTO directory_nodes (account_id, node_id, parent_id, is_member, joined_at) \
             SELECT $1, $2, coalesce($3, (SELECT node_id FROM directory_nodes \
                 WHERE account_id = $1 AND parent_id IS NULL AND NOT is_member)), $4, $5 \
             ON CONFLICT (account_id, node_id) DO UPDATE \
                 SET parent_id = EXCLUDED.parent_id, joined_at = EXCLUDED.joined_at",
        )
        .bind(account.as_str())
        .bind(node)
        .bind(parent)
        .bind(is_member)
        .bind(at)
        .execute(self.connection())
        .await
        .map_err(|e| store_error("placing a directory node failed", e))?;
        Ok(())
    }

    async fn remove_node(
        &mut self,
        account: &AccountId,
        node: &str,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "WITH gone AS (DELETE FROM directory_nodes WHERE account_id = $1 AND node_id = $2), \
                  ineffective AS (DELETE FROM effective_contacts WHERE account_id = $1 AND node_id = $2) \
             DELETE FROM contact_bindings WHERE account_id = $1 AND node_id = $2 RETURNING contact_id",
        )
        .bind(account.as_str())
        .bind(node)
        .fetch_all(self.connection())
        .await
        .map_err(|e| store_error("removing a directory node failed", e))
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
             SELECT $1, $2, n, $4 FROM UNNEST($3::text[]) AS n ON CONFLICT DO NOTHING",
        )
        .bind(account.as_str())
        .bind(contact_id)
        .bind(nodes)
        .bind(at)
        .execute(self.connection())
        .await
        .map_err(|e| store_error("binding a contact failed", e))?;
        Ok(())
    }

    async fn delete_bindings(
        &mut self,
        account: &AccountId,
        contact_id: &str,
        nodes: &[String],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM contact_bindings \
             WHERE account_id = $1 AND contact_id = $2 AND node_id = ANY($3)",
        )
        .bind(account.as_str())
        .bind(contact_id)
        .bind(nodes)
        .execute(self.connection())
        .await
        .map_err(|e| store_error("unbinding a contact failed", e))?;
        Ok(())
    }

    async fn forget_contact(
        &mut self,
        account: &AccountId,
        contact_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "WITH unbound AS (DELETE FROM contact_bindings \
                 WHERE account_id = $1 AND contact_id = $2) \
             DELETE FROM effective_contacts WHERE account_id = $1 AND contact_id = $2",
        )
        .bind(account.as_str())
        .bind(contact_id)
        .execute(self.connection())
        .await
        .map_err(|e| store_error("forgetting a deleted contact's bindings failed", e))?;
        Ok(())
    }

    async fn recompute(
        &mut self,
        account: &AccountId,
        roots: &[String],
        contact_id: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "WITH RECURSIVE {SUBTREE} \
             DELETE FROM effective_contacts WHERE account_id = $1 \
                 AND node_id IN (SELECT node_id FROM subtree) AND ($3::text IS NULL OR contact_id = $3)"
        ))
        .bind(account.as_str())
        .bind(roots)
        .bind(contact_id)
        .execute(&mut *self.connection())
        .await
        .map_err(|e| store_error("emptying the effective contacts failed", e))?;
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
        .bind(account.as_str())
        .bind(roots)
        .bind(contact_id)
        .execute(self.connection())
        .await
        .map_err(|e| store_error("computing the effective contacts failed", e))?;
        Ok(())
    }

    async fn applying(
        &mut self,
        account: &AccountId,
        roots: Option<&[String]>,
        contact_id: Option<&str>,
    ) -> Result<Vec<MemberContactPair>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "WITH RECURSIVE {SUBTREE} \
             SELECT e.node_id, e.contact_id FROM effective_contacts e \
             JOIN directory_nodes n ON n.account_id = e.account_id AND n.node_id = e.node_id \
             WHERE e.account_id = $1 AND n.is_member \
                 AND ($2::text[] IS NULL OR e.node_id IN (SELECT node_id FROM subtree)) \
                 AND ($3::text IS NULL OR e.contact_id = $3)"
        ))
        .bind(account.as_str())
        .bind(roots)
        .bind(contact_id)
        .fetch_all(self.connection())
        .await
        .map_err(|e| store_error("reading the effective contacts failed", e))?;
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
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 AND contact_id = ANY($2)"
        ))
        .bind(account.as_str())
        .bind(contact_ids)
        .fetch_all(self.connection())
        .await
        .map_err(|e| store_error("reading contacts failed", e))?;
        rows.into_iter()
            .map(|row| {
                let id = row.contact_id.clone();
                row.into_contact().map(|c| (id, c))
            })
            .collect()
    }

    async fn record_jobs(&mut self, jobs: &[NewLifecycleJob]) -> Result<(), StoreError> {
        let rows: Vec<JobRow<'_>> = jobs.iter().map(JobRow::of).collect();
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
        .bind(jobs.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.account_id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.contact_id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.target).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.subject).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.message_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.payload.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.message_types.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.deletion_id).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.causation_id.as_str()).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| j.correlation_id.as_str())
                .collect::<Vec<_>>(),
        )
        .execute(self.connection())
        .await
        .map_err(|e| store_error("recording lifecycle jobs failed", e))?;
        Ok(())
    }

    async fn clear_member_contacts(&mut self) -> Result<(), StoreError> {
        sqlx::query("TRUNCATE directory_nodes, contact_bindings, effective_contacts")
            .execute(self.connection())
            .await
            .map_err(|e| store_error("emptying the member contacts failed", e))?;
        Ok(())
    }
}
