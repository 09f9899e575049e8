//! The store ports' conformance suite: what every event store must do, written once as generic
//! test bodies, and run by each store's tests on its own database through [`Backend`] and
//! [`conformance_tests!`].
//!
//! A property is tested here when it can be stated through the ports of
//! `contactd_app::port` alone (with the service's use cases on top where a race is what the
//! service does, not what a test invents). What only one store's machinery can show (how
//! PostgreSQL orders concurrent transactions, its advisory locks, grouped statements, old
//! layouts of its tables) stays in that store's own tests.
//!
//! A store's `tests/conformance.rs` is then a few lines:
//!
//! ```text
//! mod conformance_support;
//! use conformance_support::PgBackend;
//! contactd_store_conformance::conformance_tests!(PgBackend);
//! ```

// The suite is test code: a failed step is a failed test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use contactd_app::{
    AuditLog, ContactStore, DirectoryStore, EventLog, LifecycleJobs, Outbox, ProjectionMetrics,
    RunnerSettings,
};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub mod audit;
pub mod codes;
pub mod fixtures;
pub mod jobs;
pub mod log;
pub mod outbox;
pub mod privacy;
pub mod projections;
pub mod rules;
pub mod tokens;
pub mod upcasting;

/// What the suite needs of a store's test harness: a store on a database of its own, and the
/// few things a property needs that only the store's own code (or SQL) can do behind the
/// ports' back. One value is one test's database.
pub trait Backend: Sized + Send + Sync + 'static {
    /// The store under test: every store port, and cheap clones that share one store.
    type Store: ContactStore + DirectoryStore + Outbox + LifecycleJobs + AuditLog + EventLog + Clone;

    /// A store on a fresh database of this test's own: empty, migrated, shared with no other
    /// test.
    fn fresh() -> impl Future<Output = Self> + Send;

    /// The store the test works with.
    fn store(&self) -> &Self::Store;

    /// Another store on the same database sharing nothing in memory with [`Backend::store`]
    /// (no cache, no group, no signal): what a second process would open. A store that admits
    /// one process only on its database (SQLite's) answers a clone of [`Backend::store`]: its
    /// races are then those of one process's tasks.
    fn another_process(&self) -> impl Future<Output = Self::Store> + Send;

    /// Tries to change the stored event `event_id` in place, behind the store's back (an
    /// `UPDATE`). `Err` carries the database's refusal, which must name the log
    /// "append-only" (so that a refusal for any other reason, a mistyped statement say, does
    /// not pass for one).
    fn try_update_event(&self, event_id: Uuid) -> impl Future<Output = Result<(), String>> + Send;

    /// The same for removing the event (a `DELETE`).
    fn try_delete_event(&self, event_id: Uuid) -> impl Future<Output = Result<(), String>> + Send;

    /// The same for emptying the whole log at once (PostgreSQL's `TRUNCATE`, SQLite's
    /// `DELETE` without a `WHERE`, which it runs as a truncation).
    fn try_empty_log(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Stores an event row as it is, as an older version of the service would have written
    /// it: no encoding, no read model, no check beyond the database's own.
    fn insert_raw_event(&self, event: RawEvent) -> impl Future<Output = ()> + Send;

    /// The stored payload of the event `event_id`, as the database holds it (its text).
    fn stored_payload(&self, event_id: Uuid) -> impl Future<Output = String> + Send;

    /// Overwrites the stored payload of the event `event_id` behind the store's back, past
    /// the append-only guard: what someone with write access to the database could do.
    fn overwrite_payload(&self, event_id: Uuid, payload: &str) -> impl Future<Output = ()> + Send;

    /// Seals in place the events stored in clear, as `contactd events encrypt` does: how many
    /// it sealed.
    fn seal_clear_events(&self) -> impl Future<Output = u64> + Send;

    /// Starts the store's projection `name` in its live form
    /// ([`contactd_app::AccountActivity::NAME`], [`contactd_app::VerificationOutbox::NAME`] or
    /// [`contactd_app::MemberContacts::NAME`]) with the application's runner
    /// ([`contactd_app::run_projection`]) in a task of its own, until `shutdown` turns true.
    /// Aborting the task kills the projection mid-run: whatever it holds (connections, locks,
    /// an open transaction) goes with it, as when its process dies.
    fn spawn_projection(
        &self,
        name: &'static str,
        settings: RunnerSettings,
        metrics: ProjectionMetrics,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()>;

    /// Rebuilds from the log every read model that can be rebuilt (the inline one: contacts,
    /// names, quota counters, directories; `account_activity`; `member_contacts`, replayed
    /// without its jobs), as `contactd projections rebuild` does.
    fn rebuild_read_models(&self) -> impl Future<Output = ()> + Send;

    /// Every row of each table the rebuilds write, by table, each row as a JSON object of all
    /// its columns, in an order fixed by the table's key.
    fn read_models(&self) -> impl Future<Output = BTreeMap<&'static str, Vec<Value>>> + Send;

    /// Changes rows of every table of [`Backend::read_models`] behind the store's back (a
    /// wrong count, a lost row, a changed document), so that only a real rebuild gives them
    /// back.
    fn spoil_read_models(&self) -> impl Future<Output = ()> + Send;
}

/// An event row as stored, for [`Backend::insert_raw_event`]: the envelope's columns and the
/// payload in its own schema version.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub event_id: Uuid,
    pub account_id: String,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub request_id: String,
    pub caller: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub recorded_at: DateTime<Utc>,
}

/// One `#[tokio::test]` per property of the suite, each on a fresh database of `$backend`
/// (a [`Backend`]), grouped in a module per part of the suite. The runtime has two worker
/// threads, so that racing tasks really run at once.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ty) => {
        $crate::__conformance_tests! { $backend;
            log {
                appended_events_read_back_with_their_metadata_and_the_row_is_their_fold,
                an_append_at_a_stale_version_is_refused_and_writes_nothing,
                a_directory_append_at_a_stale_version_is_refused_and_writes_nothing,
                the_database_refuses_to_change_or_remove_stored_events,
                a_reader_following_the_log_sees_every_event_of_concurrent_writers_once_in_order,
                the_log_end_bounds_what_has_committed_and_what_commits_later,
                a_start_at_a_position_begins_with_that_event_and_past_the_end_with_later_ones,
                the_log_read_for_an_account_or_a_stream_holds_only_its_events_in_order,
            }
            rules {
                a_name_is_claimed_once_per_account_ignoring_case_and_freed_by_a_rename,
                concurrent_adds_with_one_name_leave_exactly_one_contact,
                concurrent_adds_against_a_quota_of_twenty_leave_exactly_twenty,
                concurrent_updates_of_one_contact_lose_none,
                two_processes_updating_one_contact_lose_nothing_they_acknowledged,
                two_processes_updating_many_contacts_lose_nothing_they_acknowledged,
                a_deleted_contact_frees_its_name_and_its_place_in_the_quota,
            }
            tokens {
                a_remembered_call_is_recalled_within_the_window_and_not_after,
                a_client_token_held_by_another_call_is_refused_and_nothing_is_stored,
                calls_racing_on_one_client_token_let_exactly_one_through,
                a_client_token_older_than_the_window_is_free_again,
                a_retried_add_answers_the_first_response_and_adds_nothing,
            }
            codes {
                concurrent_tries_of_a_code_from_two_processes_never_get_a_sixth,
                the_per_target_send_limit_holds_under_concurrent_sends_from_two_processes,
                the_daily_send_limit_holds_under_concurrent_sends_of_the_account,
                a_link_finds_its_code_by_the_hash_of_its_token,
            }
            audit {
                a_stream_is_read_page_by_page_in_version_order_and_only_in_its_account,
                a_stream_as_of_a_version_or_a_time_ends_there,
                following_an_account_sends_its_committed_events_in_log_order_then_live_ones,
                following_from_an_events_position_starts_with_exactly_that_event,
                following_from_past_the_end_of_the_log_sends_no_older_event,
            }
            outbox {
                a_send_is_recorded_in_the_outbox_once_and_claimed_with_its_details,
                a_message_is_not_claimed_again_while_its_lease_runs,
                concurrent_claimers_never_get_the_same_message,
                an_outcome_recorded_under_a_lost_lease_is_refused,
                a_failed_attempt_is_due_again_at_its_retry_time,
                the_outbox_depth_counts_the_messages_not_yet_finished,
            }
            jobs {
                a_binding_records_a_job_claimed_by_one_worker_while_its_lease_runs,
                a_job_is_settled_only_by_the_holder_of_its_lease,
                a_members_messages_about_a_contact_are_claimed_one_at_a_time_in_order,
                an_asynchronous_deletes_removals_are_counted_until_they_settle,
            }
            projections {
                a_projection_killed_mid_run_resumes_from_its_checkpoint_applying_each_event_once,
                a_projection_stopped_and_started_again_applies_only_what_is_new,
                rebuilding_every_read_model_gives_back_the_live_ones_exactly,
            }
            privacy {
                a_forgotten_contact_is_gone_and_every_personal_field_of_its_events_reads_redacted,
                personal_fields_are_stored_sealed_and_a_changed_byte_is_refused_not_read,
                events_stored_in_clear_are_sealed_in_place_once_and_read_the_same,
                forgetting_a_contact_stored_in_clear_seals_its_history_too,
            }
            upcasting {
                a_version_1_creation_and_title_change_read_as_todays_events,
                a_version_1_creation_takes_its_account_from_the_envelope,
                an_unknown_schema_version_fails_the_read_rather_than_being_guessed,
                a_version_1_creation_with_a_field_missing_fails_the_read,
            }
        }
    };
}

/// The expansion of [`conformance_tests!`]: a module per part, a test per property.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($backend:ty; $( $part:ident { $( $property:ident ),* $(,)? } )*) => {
        $(
            mod $part {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $property() {
                        $crate::$part::$property::<$backend>().await;
                    }
                )*
            }
        )*
    };
}
