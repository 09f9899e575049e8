//! `MessageContactPrivacyService`: forgetting a person. The call is admitted by the access
//! layer like every other (its own RAM action, on the contact's resource, counted as a write),
//! then its contact id is parsed as DeleteMessageContact's is and the contact forgotten.

use std::sync::Arc;

use contactd_app::{AuditLog, ContactService, ContactStore};
use tonic::{Request, Response, Status};

use crate::from_proto;
use crate::proto::message_contact_privacy_service_server::MessageContactPrivacyService;
use crate::proto::{ForgetMessageContactRequest, ForgetMessageContactResponse};
use crate::service::{acknowledged, serve};

#[derive(Debug)]
pub(crate) struct PrivacyGrpc<S> {
    app: Arc<ContactService<S>>,
}

impl<S> PrivacyGrpc<S> {
    pub(crate) fn new(app: Arc<ContactService<S>>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl<S: ContactStore + AuditLog> MessageContactPrivacyService for PrivacyGrpc<S> {
    async fn forget_message_contact(
        &self,
        request: Request<ForgetMessageContactRequest>,
    ) -> Result<Response<ForgetMessageContactResponse>, Status> {
        serve(request, |ctx, req| async move {
            let contact_id = from_proto::forget(&req)?;
            let outcome = self.app.forget_contact(&ctx, &contact_id).await?;
            Ok(ForgetMessageContactResponse {
                request_id: acknowledged(outcome)?,
            })
        })
        .await
    }
}
