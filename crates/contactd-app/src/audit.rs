//! Audit use cases: a contact's history page by page, the contact as it was at a point of its
//! history, and the account's log followed live. Tenancy as everywhere: another account's
//! contact has no history here.

use contactd_domain::{Contact, ContactId, Field, ParameterError};
use tracing::instrument;

use crate::context::CallContext;
use crate::error::AppError;
use crate::port::{AsOf, AuditLog, RecordedEvent, contact_history};

const DEFAULT_EVENT_PAGE: u32 = 100;
const MAX_EVENT_PAGE: u32 = 1000;

/// A page request over a stream: how many events, after which version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPage {
    pub size: u32,
    pub after_version: u64,
}

impl EventPage {
    /// `size` 0 means 100, else 1 to 1000; `token` is empty for the first page or the
    /// `next_page_token` of the previous one.
    pub fn parse(size: i64, token: &str) -> Result<Self, ParameterError> {
        let size = match size {
            0 => DEFAULT_EVENT_PAGE,
            s if s > 0 && s <= i64::from(MAX_EVENT_PAGE) => s as u32,
            _ => return Err(ParameterError::Invalid(Field::PageSize)),
        };
        let after_version = if token.is_empty() {
            0
        } else {
            token
                .strip_prefix('v')
                .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<u64>().ok())
                .filter(|version| *version > 0)
                .ok_or(ParameterError::Invalid(Field::PageToken))?
        };
        Ok(Self {
            size,
            after_version,
        })
    }

    /// The token that continues after `version`.
    pub fn token_after(version: u64) -> String {
        format!("v{version}")
    }
}

#[derive(Debug)]
pub struct AuditService<L> {
    log: L,
}

impl<L: AuditLog> AuditService<L> {
    pub fn new(log: L) -> Self {
        Self { log }
    }

    /// A page of the contact's events and the token of the next page, if there is one.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn contact_events(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        page: EventPage,
    ) -> Result<(Vec<RecordedEvent>, Option<String>), AppError> {
        let mut events = self
            .log
            .stream_page(
                &ctx.account_id,
                contact_id.as_str(),
                page.after_version,
                page.size + 1,
            )
            .await?;
        if events.is_empty() {
            // Past the last page of a contact that exists is an empty page; a contact that does
            // not exist (or is another account's) is not found, whatever the token.
            let exists = page.after_version > 0
                && !self
                    .log
                    .stream_page(&ctx.account_id, contact_id.as_str(), 0, 1)
                    .await?
                    .is_empty();
            if !exists {
                return Err(AppError::ContactNotFound);
            }
        }
        let next = (events.len() > page.size as usize).then(|| {
            events.truncate(page.size as usize);
            EventPage::token_after(events.last().map_or(0, |e| e.stream_version))
        });
        Ok((events, next))
    }

    /// The contact as it was at `as_of`: the fold of its events up to there.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn contact_as_of(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        as_of: AsOf,
    ) -> Result<Contact, AppError> {
        let events = self
            .log
            .stream_as_of(&ctx.account_id, contact_id.as_str(), as_of)
            .await?;
        Contact::fold(contact_history(&events)).ok_or(AppError::ContactNotFound)
    }

    /// The account's events from `from_position` on, then live ones.
    pub async fn follow(
        &self,
        ctx: &CallContext,
        from_position: i64,
    ) -> Result<L::Subscription, AppError> {
        if from_position < 0 {
            return Err(ParameterError::Invalid(Field::FromPosition).into());
        }
        Ok(self.log.follow(&ctx.account_id, from_position).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_pages_default_to_100_and_continue_after_a_version() {
        assert_eq!(
            EventPage::parse(0, ""),
            Ok(EventPage {
                size: 100,
                after_version: 0
            })
        );
        assert_eq!(
            EventPage::parse(1000, "v42"),
            Ok(EventPage {
                size: 1000,
                after_version: 42
            })
        );
        assert_eq!(
            EventPage::parse(1001, ""),
            Err(ParameterError::Invalid(Field::PageSize))
        );
        assert_eq!(
            EventPage::parse(-1, ""),
            Err(ParameterError::Invalid(Field::PageSize))
        );
        for bad in ["42", "v", "v-1", "v0", "vx", "v99999999999999999999999"] {
            assert_eq!(
                EventPage::parse(10, bad),
                Err(ParameterError::Invalid(Field::PageToken)),
                "{bad}"
            );
        }
        assert_eq!(
            EventPage::parse(1, &EventPage::token_after(7))
                .unwrap()
                .after_version,
            7
        );
    }
}
