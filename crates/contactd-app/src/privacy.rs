//! Forgetting a person (ADR 13): the contact's data key is destroyed, so that every personal
//! field of its events reads as redacted from then on, while the events themselves stay.

use contactd_domain::ContactId;
use tracing::{debug, instrument};

use crate::context::CallContext;
use crate::error::AppError;
use crate::port::{
    AppendError, AsOf, AuditLog, ContactStore, Forget, NewEvent, Outcome, contact_history,
};
use crate::service::{ContactService, append_error, metadata, new_event_id};

impl<S: ContactStore + AuditLog> ContactService<S> {
    /// Forgets a contact: deleted first if it was not, then its personal data made unreadable
    /// for good. Forgetting one forgotten already answers as a success and changes nothing;
    /// another account's or an unknown contact is `EntityNotExists.Contact`.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn forget_contact(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
    ) -> Result<Outcome, AppError> {
        let acknowledged = || Outcome::Acknowledged {
            request_id: ctx.request_id.to_string(),
        };
        // The stripe serialises this process's commands on the contact, and what it remembers
        // of the contact goes: nothing decided on it may be kept once it is forgotten.
        let mut stripe = self.stripe(contact_id).lock().await;
        drop(stripe.take(contact_id));
        let mut attempts = 0;
        loop {
            let (state, live) = match self
                .store()
                .load_contact(&ctx.account_id, contact_id)
                .await?
            {
                // A row: not deleted yet (a delete removes it).
                Some(state) => (state, true),
                // Deleted: its row is gone, its history still holds the data.
                None => {
                    let events = self
                        .store()
                        .stream_as_of(
                            &ctx.account_id,
                            contact_id.as_str(),
                            AsOf::Version(u64::MAX),
                        )
                        .await?;
                    let state = contactd_domain::Contact::fold(contact_history(&events))
                        .ok_or(AppError::ContactNotFound)?;
                    (state, false)
                }
            };
            let decided = state.forget();
            if decided.is_empty() {
                return Ok(acknowledged());
            }
            let now = crate::context::now().max(state.updated_at);
            let events: Vec<NewEvent> = decided
                .into_iter()
                .map(|event| NewEvent {
                    event_id: new_event_id(),
                    event,
                })
                .collect();
            let forget = Forget {
                contact_id,
                expected_version: state.version,
                live_name_key: live.then(|| state.name.uniqueness_key()),
                events: &events,
                metadata: &metadata(ctx, now),
            };
            match self.store().forget(forget).await {
                Ok(()) => {
                    self.recording().events_appended(events.len());
                    return Ok(acknowledged());
                }
                Err(AppendError::VersionConflict) => {
                    self.recording().version_conflict();
                    attempts += 1;
                    if attempts >= self.policy().max_attempts {
                        return Err(AppError::ConcurrentCall);
                    }
                    debug!(
                        attempts,
                        "the contact changed under the forgetting; deciding again"
                    );
                }
                Err(error) => return Err(append_error(error)),
            }
        }
    }
}
