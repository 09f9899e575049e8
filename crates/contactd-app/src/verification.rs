//! The verification use cases: send a code for a pending target, list the pending targets,
//! cancel a pending change, confirm a code (by RPC, or by the link of the message that
//! carried it). The codes are derived, never stored (see `codes.rs`); the messages are sent
//! after commit by the dispatcher (`dispatch.rs`).

use chrono::{DateTime, TimeDelta, Utc};
use contactd_domain::{
    CancelMessageContactUpdate, Channel, Contact, ContactId, Field, MAX_CODE_TRIES, ParameterError,
    VerificationCode, VerificationId, VerificationTarget,
};
use tracing::instrument;

use crate::codes::{CodeSecret, LinkToken};
use crate::context::{CallContext, Principal};
use crate::error::AppError;
use crate::paging::{Page, PageRequest};
use crate::port::{CodeIssue, ContactStore, LinkedCode, Operation, Outcome, SendLimits};
use crate::service::{Change, ContactService, Idempotency};

/// The rules of codes that are settings.
#[derive(Debug, Clone)]
pub struct VerificationPolicy {
    /// How long a code (and its link) may be used.
    pub code_ttl: TimeDelta,
    /// Sends per account per UTC day.
    pub sends_per_account_day: u32,
    /// Sends per target in any minute.
    pub sends_per_target_minute: u32,
    /// The secret codes and links are derived under.
    pub secret: CodeSecret,
}

impl Default for VerificationPolicy {
    /// The contract's defaults, with a secret of this process alone: `serve` always passes
    /// the secret that every process of the database shares.
    fn default() -> Self {
        Self {
            code_ttl: TimeDelta::minutes(15),
            sends_per_account_day: 100,
            sends_per_target_minute: 10,
            secret: CodeSecret::generate(),
        }
    }
}

/// What a confirmation link leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkStatus {
    /// The link can confirm this target of this contact until `expires_at`.
    Valid {
        contact_id: ContactId,
        target: VerificationTarget,
        expires_at: DateTime<Utc>,
    },
    /// The link was used, or a newer code replaced it, or its target is no longer pending.
    Spent,
    Expired,
    /// No such link (or its contact is gone).
    Unknown,
}

impl<S: ContactStore> ContactService<S> {
    /// Issues a code for a pending target; the message that carries it is sent after commit.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn send_verification(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        target: &VerificationTarget,
        idempotency: Option<Idempotency>,
    ) -> Result<Outcome, AppError> {
        let policy = &self.policy().verification;
        let verification_id = VerificationId::generate();
        let expires_at = ctx.received_at + policy.code_ttl;
        let code = CodeIssue {
            verification_id,
            channel: target.channel(),
            link_hash: policy.secret.link_token(verification_id).hash(),
            expires_at,
            limits: SendLimits {
                day: ctx.received_at.date_naive(),
                per_account_day: policy.sends_per_account_day,
                target_digest: policy.secret.target_digest(target),
                per_target_minute: policy.sends_per_target_minute,
            },
        };
        let operation = match target.channel() {
            Channel::Email => Operation::SendEmailVerificationForMessageContact,
            Channel::Phone => Operation::SendPhoneVerificationForMessageContact,
        };
        let change = Change {
            operation,
            idempotency,
            code: Some(&code),
        };
        self.change(ctx, contact_id, change, |state| {
            Ok(vec![state.request_verification(
                target,
                verification_id,
                expires_at,
            )?])
        })
        .await
    }

    /// A page of the contact's pending targets: the email address first, then the phone.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn list_verifications(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        page: PageRequest,
    ) -> Result<Page<VerificationTarget>, AppError> {
        let pending = self.get_contact(ctx, contact_id).await?.pending_targets();
        let items = pending
            .iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(page.size as usize)
            .cloned()
            .collect();
        Ok(Page {
            request: page,
            total_count: pending.len() as u64,
            items,
        })
    }

    /// Gives up pending changes: the verified values are asked for again.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn cancel_update(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        command: &CancelMessageContactUpdate,
        idempotency: Option<Idempotency>,
    ) -> Result<Outcome, AppError> {
        let change = Change {
            operation: Operation::CancelMessageContactUpdate,
            idempotency,
            code: None,
        };
        self.change(ctx, contact_id, change, |state| Ok(state.cancel(command)?))
            .await
    }

    /// Confirms a pending target with the code its message carried. Every try counts, in
    /// the database, against the code's [`MAX_CODE_TRIES`] before the code is compared, so
    /// that no number of processes or concurrent calls can try a code more often.
    #[instrument(level = "debug", skip_all, fields(request_id = %ctx.request_id, contact_id = %contact_id))]
    pub async fn confirm_verification(
        &self,
        ctx: &CallContext,
        contact_id: &ContactId,
        target: &VerificationTarget,
        code: &VerificationCode,
        idempotency: Option<Idempotency>,
    ) -> Result<Outcome, AppError> {
        let state = self.get_contact(ctx, contact_id).await?;
        let issued = state.live_code(target, ctx.received_at)?;
        if !self
            .store()
            .claim_code_try(&ctx.account_id, issued.verification_id, MAX_CODE_TRIES)
            .await?
        {
            return Err(AppError::SendLimitExceeded);
        }
        if !self
            .policy()
            .verification
            .secret
            .matches(issued.verification_id, code)
        {
            return Err(ParameterError::Invalid(Field::VerificationCode).into());
        }
        let change = Change {
            operation: Operation::ConfirmMessageContactVerification,
            idempotency,
            code: None,
        };
        self.change(ctx, contact_id, change, |state| {
            Ok(vec![state.confirm(
                target,
                issued.verification_id,
                ctx.received_at,
            )?])
        })
        .await
    }

    /// What a confirmation link leads to, changing nothing (mail scanners open links).
    #[instrument(level = "debug", skip_all)]
    pub async fn inspect_link(&self, token: &LinkToken) -> Result<LinkStatus, AppError> {
        let Some(linked) = self.store().find_link(&token.hash()).await? else {
            return Ok(LinkStatus::Unknown);
        };
        let ctx = link_context(&linked);
        match self
            .store()
            .load_contact(&ctx.account_id, &linked.contact_id)
            .await?
        {
            None => Ok(LinkStatus::Unknown),
            Some(state) => Ok(link_status(&state, &linked, ctx.received_at)),
        }
    }

    /// Confirms what a link leads to, exactly as `ConfirmMessageContactVerification` with the
    /// right code would: the link is the proof. Answers the link's status as it was found.
    #[instrument(level = "debug", skip_all)]
    pub async fn confirm_link(&self, token: &LinkToken) -> Result<LinkStatus, AppError> {
        let Some(linked) = self.store().find_link(&token.hash()).await? else {
            return Ok(LinkStatus::Unknown);
        };
        let ctx = link_context(&linked);
        let found = std::sync::Mutex::new(LinkStatus::Unknown);
        let change = Change {
            operation: Operation::ConfirmMessageContactVerification,
            idempotency: None,
            code: None,
        };
        let confirmed = self
            .change(&ctx, &linked.contact_id, change, |state| {
                let status = link_status(state, &linked, ctx.received_at);
                let decided = match &status {
                    LinkStatus::Valid { target, .. } => Ok(vec![state.confirm(
                        target,
                        linked.verification_id,
                        ctx.received_at,
                    )?]),
                    // Refused so that nothing is written; the status says why.
                    _ => Err(AppError::VerificationNotFound),
                };
                if let Ok(mut found) = found.lock() {
                    *found = status;
                }
                decided
            })
            .await;
        let status = found.into_inner().unwrap_or(LinkStatus::Unknown);
        match confirmed {
            Ok(_) => Ok(status),
            Err(AppError::ContactNotFound) => Ok(LinkStatus::Unknown),
            Err(AppError::VerificationNotFound) if status != LinkStatus::Unknown => Ok(status),
            Err(error) => Err(error),
        }
    }
}

/// A link acts for its contact's account; its events say they came from a link.
fn link_context(linked: &LinkedCode) -> CallContext {
    let mut ctx = CallContext::new(linked.account_id.clone(), None);
    ctx.principal = Principal::service(ctx.account_id.clone(), "confirmation-link");
    ctx
}

fn link_status(state: &Contact, linked: &LinkedCode, now: DateTime<Utc>) -> LinkStatus {
    let code = match linked.channel {
        Channel::Email => state.email_code,
        Channel::Phone => state.phone_code,
    };
    match (state.pending_target(linked.channel), code) {
        (Some(target), Some(code)) if code.verification_id == linked.verification_id => {
            if code.is_live_at(now) {
                LinkStatus::Valid {
                    contact_id: state.contact_id.clone(),
                    target,
                    expires_at: code.expires_at,
                }
            } else {
                LinkStatus::Expired
            }
        }
        _ => LinkStatus::Spent,
    }
}
