//! `MessageContactService`: each RPC checks the caller's permission, honours the client token,
//! converts the request, runs the use case and converts the result, in the contract's check
//! order. The contact's fields and verification, its delete and its bindings to the directory.

use std::sync::Arc;

use contactd_app::{
    AppError, CallContext, ContactService, ContactStore, DirectoryStore, Idempotency, Operation,
    Outcome,
};
use contactd_domain::ClientToken;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::access::{Target, admitted};
use crate::from_proto::{self, fingerprint};
use crate::proto::message_contact_service_server::MessageContactService;
use crate::proto::{
    AddMessageContactRequest, AddMessageContactResponse, AssociateMembersRequest,
    AssociateMembersResponse, CancelMessageContactUpdateRequest,
    CancelMessageContactUpdateResponse, ConfirmMessageContactVerificationRequest,
    ConfirmMessageContactVerificationResponse, ContactMember, ContactVerification,
    DeleteMessageContactRequest, DeleteMessageContactResponse, DisassociateMembersRequest,
    DisassociateMembersResponse, GetMessageContactDeletionStatusRequest,
    GetMessageContactDeletionStatusResponse, GetMessageContactRequest, GetMessageContactResponse,
    ListMessageContactVerificationsRequest, ListMessageContactVerificationsResponse,
    ListMessageContactsRequest, ListMessageContactsResponse,
    SendEmailVerificationForMessageContactRequest, SendEmailVerificationForMessageContactResponse,
    SendPhoneVerificationForMessageContactRequest, SendPhoneVerificationForMessageContactResponse,
    UpdateMessageContactRequest, UpdateMessageContactResponse,
};
use crate::status::{self, REQUEST_ID_HEADER};
use crate::to_proto;

#[derive(Debug)]
pub(crate) struct ContactGrpc<S> {
    app: Arc<ContactService<S>>,
}

impl<S> ContactGrpc<S> {
    pub(crate) fn new(app: Arc<ContactService<S>>) -> Self {
        Self { app }
    }
}

/// What a client token says about a call about to run.
enum Token {
    /// No token: run the call.
    Absent,
    /// A token not seen before: run the call and remember it.
    Fresh(Idempotency),
    /// A retry of a call that succeeded: answer as it was answered.
    Recalled(Outcome),
}

impl<S: ContactStore + DirectoryStore> ContactGrpc<S> {
    async fn token(
        &self,
        ctx: &CallContext,
        operation: Operation,
        raw: &str,
        fingerprint: impl FnOnce() -> Vec<u8>,
    ) -> Result<Token, AppError> {
        let Some(token) = ClientToken::parse(raw)? else {
            return Ok(Token::Absent);
        };
        let idempotency = Idempotency {
            token,
            fingerprint: fingerprint(),
        };
        Ok(match self.app.recall(ctx, operation, &idempotency).await? {
            Some(outcome) => Token::Recalled(outcome),
            None => Token::Fresh(idempotency),
        })
    }

    /// Runs a mutating call under its client token, looked at right after the caller's
    /// identity: a retry of a call that succeeded answers as it did, and changes nothing.
    async fn idempotent<M, Fut>(
        &self,
        ctx: &CallContext,
        operation: Operation,
        req: &M,
        run: impl FnOnce(Option<Idempotency>) -> Fut,
    ) -> Result<Outcome, AppError>
    where
        M: WithClientToken,
        Fut: Future<Output = Result<Outcome, AppError>>,
    {
        let fingerprint = || fingerprint(req, |r| r.client_token_mut().clear());
        match self
            .token(ctx, operation, req.client_token(), fingerprint)
            .await?
        {
            Token::Recalled(outcome) => Ok(outcome),
            Token::Absent => run(None).await,
            Token::Fresh(idempotency) => run(Some(idempotency)).await,
        }
    }

    async fn add(
        &self,
        ctx: &CallContext,
        req: AddMessageContactRequest,
    ) -> Result<AddMessageContactResponse, AppError> {
        let codes = &self.app.policy().country_codes;
        let outcome = self
            .idempotent(
                ctx,
                Operation::AddMessageContact,
                &req,
                |idempotency| async {
                    let new = from_proto::new_contact(&req, codes)?;
                    self.app.add_contact(ctx, new, idempotency).await
                },
            )
            .await?;
        match outcome {
            Outcome::Added {
                request_id,
                contact,
            } => Ok(AddMessageContactResponse {
                request_id,
                contact: Some(to_proto::contact(&contact)),
            }),
            Outcome::Acknowledged { .. } | Outcome::Deleted { .. } | Outcome::Bindings { .. } => {
                Err(mismatched_outcome())
            }
        }
    }

    async fn update(
        &self,
        ctx: &CallContext,
        req: UpdateMessageContactRequest,
    ) -> Result<UpdateMessageContactResponse, AppError> {
        let codes = &self.app.policy().country_codes;
        let outcome = self
            .idempotent(
                ctx,
                Operation::UpdateMessageContact,
                &req,
                |idempotency| async {
                    let (contact_id, command) = from_proto::update_command(&req, codes)?;
                    self.app
                        .update_contact(ctx, &contact_id, &command, idempotency)
                        .await
                },
            )
            .await?;
        Ok(UpdateMessageContactResponse {
            request_id: acknowledged(outcome)?,
        })
    }

    async fn send_email(
        &self,
        ctx: &CallContext,
        req: SendEmailVerificationForMessageContactRequest,
    ) -> Result<SendEmailVerificationForMessageContactResponse, AppError> {
        let outcome = self
            .idempotent(
                ctx,
                Operation::SendEmailVerificationForMessageContact,
                &req,
                |idempotency| async {
                    let (contact_id, target) = from_proto::send_email(&req)?;
                    self.app
                        .send_verification(ctx, &contact_id, &target, idempotency)
                        .await
                },
            )
            .await?;
        Ok(SendEmailVerificationForMessageContactResponse {
            request_id: acknowledged(outcome)?,
        })
    }

    async fn send_phone(
        &self,
        ctx: &CallContext,
        req: SendPhoneVerificationForMessageContactRequest,
    ) -> Result<SendPhoneVerificationForMessageContactResponse, AppError> {
        let codes = &self.app.policy().country_codes;
        let outcome = self
            .idempotent(
                ctx,
                Operation::SendPhoneVerificationForMessageContact,
                &req,
                |idempotency| async {
                    let (contact_id, target) = from_proto::send_phone(&req, codes)?;
                    self.app
                        .send_verification(ctx, &contact_id, &target, idempotency)
                        .await
                },
            )
            .await?;
        Ok(SendPhoneVerificationForMessageContactResponse {
            request_id: acknowledged(outcome)?,
        })
    }

    async fn list_verifications(
        &self,
        ctx: &CallContext,
        req: ListMessageContactVerificationsRequest,
    ) -> Result<ListMessageContactVerificationsResponse, AppError> {
        let (contact_id, page) = from_proto::list_verifications(&req)?;
        let page = self.app.list_verifications(ctx, &contact_id, page).await?;
        Ok(ListMessageContactVerificationsResponse {
            request_id: ctx.request_id.to_string(),
            total_count: i64::try_from(page.total_count).unwrap_or(i64::MAX),
            page_number: i32::try_from(page.request.number).unwrap_or(i32::MAX),
            page_size: i32::try_from(page.request.size).unwrap_or(i32::MAX),
            contact_verifications: page
                .items
                .iter()
                .map(|target| ContactVerification {
                    contact_id: contact_id.to_string(),
                    target: target.as_str().to_owned(),
                })
                .collect(),
        })
    }

    async fn cancel(
        &self,
        ctx: &CallContext,
        req: CancelMessageContactUpdateRequest,
    ) -> Result<CancelMessageContactUpdateResponse, AppError> {
        let codes = &self.app.policy().country_codes;
        let outcome = self
            .idempotent(
                ctx,
                Operation::CancelMessageContactUpdate,
                &req,
                |idempotency| async {
                    let (contact_id, command) = from_proto::cancel_command(&req, codes)?;
                    self.app
                        .cancel_update(ctx, &contact_id, &command, idempotency)
                        .await
                },
            )
            .await?;
        Ok(CancelMessageContactUpdateResponse {
            request_id: acknowledged(outcome)?,
        })
    }

    async fn confirm(
        &self,
        ctx: &CallContext,
        req: ConfirmMessageContactVerificationRequest,
    ) -> Result<ConfirmMessageContactVerificationResponse, AppError> {
        let codes = &self.app.policy().country_codes;
        let outcome = self
            .idempotent(
                ctx,
                Operation::ConfirmMessageContactVerification,
                &req,
                |idempotency| async {
                    let (contact_id, target, code) = from_proto::confirm(&req, codes)?;
                    self.app
                        .confirm_verification(ctx, &contact_id, &target, &code, idempotency)
                        .await
                },
            )
            .await?;
        Ok(ConfirmMessageContactVerificationResponse {
            request_id: acknowledged(outcome)?,
        })
    }

    async fn get(
        &self,
        ctx: &CallContext,
        req: GetMessageContactRequest,
    ) -> Result<GetMessageContactResponse, AppError> {
        let contact_id = from_proto::contact_id(&req)?;
        let contact = self.app.get_contact(ctx, &contact_id).await?;
        Ok(GetMessageContactResponse {
            request_id: ctx.request_id.to_string(),
            contact: Some(to_proto::contact(&contact)),
        })
    }

    async fn list(
        &self,
        ctx: &CallContext,
        req: ListMessageContactsRequest,
    ) -> Result<ListMessageContactsResponse, AppError> {
        let query = from_proto::list_query(&req)?;
        let page = self.app.list_contacts(ctx, &query).await?;
        Ok(ListMessageContactsResponse {
            request_id: ctx.request_id.to_string(),
            total_count: i64::try_from(page.total_count).unwrap_or(i64::MAX),
            page_number: i32::try_from(page.request.number).unwrap_or(i32::MAX),
            page_size: i32::try_from(page.request.size).unwrap_or(i32::MAX),
            contacts: page.items.iter().map(to_proto::listed).collect(),
        })
    }

    async fn delete(
        &self,
        ctx: &CallContext,
        req: DeleteMessageContactRequest,
    ) -> Result<DeleteMessageContactResponse, AppError> {
        let outcome = self
            .idempotent(
                ctx,
                Operation::DeleteMessageContact,
                &req,
                |idempotency| async {
                    let (contact_id, retain_in_members) = from_proto::delete(&req)?;
                    self.app
                        .delete_contact(ctx, &contact_id, retain_in_members, idempotency)
                        .await
                },
            )
            .await?;
        match outcome {
            Outcome::Deleted { request_id, status } => Ok(DeleteMessageContactResponse {
                request_id,
                status: status.as_str().to_owned(),
            }),
            Outcome::Added { .. } | Outcome::Acknowledged { .. } | Outcome::Bindings { .. } => {
                Err(mismatched_outcome())
            }
        }
    }

    async fn deletion_status(
        &self,
        ctx: &CallContext,
        req: GetMessageContactDeletionStatusRequest,
    ) -> Result<GetMessageContactDeletionStatusResponse, AppError> {
        let contact_id = from_proto::deletion_status(&req)?;
        let status = self.app.deletion_status(ctx, &contact_id).await?;
        Ok(GetMessageContactDeletionStatusResponse {
            request_id: ctx.request_id.to_string(),
            contact_deletion_status: Some(to_proto::deletion_status(&contact_id, &status)),
        })
    }

    async fn associate(
        &self,
        ctx: &CallContext,
        req: AssociateMembersRequest,
    ) -> Result<AssociateMembersResponse, AppError> {
        let outcome = self
            .idempotent(
                ctx,
                Operation::AssociateMembers,
                &req,
                |idempotency| async {
                    let (contact_id, targets) = from_proto::associate(&req)?;
                    self.app
                        .associate_members(ctx, &contact_id, &targets, idempotency)
                        .await
                },
            )
            .await?;
        let (request_id, members) = bindings(&req.contact_id, outcome)?;
        Ok(AssociateMembersResponse {
            request_id,
            members,
        })
    }

    async fn disassociate(
        &self,
        ctx: &CallContext,
        req: DisassociateMembersRequest,
    ) -> Result<DisassociateMembersResponse, AppError> {
        let outcome = self
            .idempotent(
                ctx,
                Operation::DisassociateMembers,
                &req,
                |idempotency| async {
                    let (contact_id, targets) = from_proto::disassociate(&req)?;
                    self.app
                        .disassociate_members(ctx, &contact_id, &targets, idempotency)
                        .await
                },
            )
            .await?;
        let (request_id, members) = bindings(&req.contact_id, outcome)?;
        Ok(DisassociateMembersResponse {
            request_id,
            members,
        })
    }
}

/// The answer of a binding call. `contact_id` is the request's, validated when the call ran: a
/// recalled outcome was answered to a request with the same fields.
fn bindings(contact_id: &str, outcome: Outcome) -> Result<(String, Vec<ContactMember>), AppError> {
    match outcome {
        Outcome::Bindings {
            request_id,
            members,
        } => Ok((
            request_id,
            members
                .iter()
                .map(|change| to_proto::binding(contact_id, change))
                .collect(),
        )),
        Outcome::Added { .. } | Outcome::Acknowledged { .. } | Outcome::Deleted { .. } => {
            Err(mismatched_outcome())
        }
    }
}

/// The request id of a call that answers only that.
pub(crate) fn acknowledged(outcome: Outcome) -> Result<String, AppError> {
    match outcome {
        Outcome::Acknowledged { request_id } => Ok(request_id),
        Outcome::Added { .. } | Outcome::Deleted { .. } | Outcome::Bindings { .. } => {
            Err(mismatched_outcome())
        }
    }
}

/// A remembered outcome of another operation under this operation's token: the scope of a
/// token includes the RPC, so this means a bug, not a client error.
pub(crate) fn mismatched_outcome() -> AppError {
    AppError::Internal(contactd_app::StoreError::internal(
        "a remembered outcome belongs to another RPC",
        None,
    ))
}

/// Runs a call the access layer let in, once its principal may do the RPC's action on its
/// resource, and turns its result into a response whose request id is in the body and in
/// metadata alike.
pub(crate) async fn serve<Req, Resp, Fut>(
    request: Request<Req>,
    call: impl FnOnce(CallContext, Req) -> Fut,
) -> Result<Response<Resp>, Status>
where
    Req: Target,
    Resp: WithRequestId,
    Fut: Future<Output = Result<Resp, AppError>>,
{
    let (ctx, message) = admitted(request)?;
    let request_id = ctx.request_id.to_string();
    match call(ctx, message).await {
        Ok(body) => {
            let header = MetadataValue::try_from(body.request_id())
                .map_err(|_| status::app_error(&mismatched_outcome(), &request_id))?;
            let mut response = Response::new(body);
            response.metadata_mut().insert(REQUEST_ID_HEADER, header);
            Ok(response)
        }
        Err(error) => Err(status::app_error(&error, &request_id)),
    }
}

/// Mutating requests carry a client token.
pub(crate) trait WithClientToken: prost::Message + Clone {
    fn client_token(&self) -> &str;
    fn client_token_mut(&mut self) -> &mut String;
}

macro_rules! with_client_token {
    ($($request:ty),*) => {
        $(impl WithClientToken for $request {
            fn client_token(&self) -> &str {
                &self.client_token
            }
            fn client_token_mut(&mut self) -> &mut String {
                &mut self.client_token
            }
        })*
    };
}

with_client_token!(
    AddMessageContactRequest,
    UpdateMessageContactRequest,
    SendEmailVerificationForMessageContactRequest,
    SendPhoneVerificationForMessageContactRequest,
    CancelMessageContactUpdateRequest,
    ConfirmMessageContactVerificationRequest,
    DeleteMessageContactRequest,
    AssociateMembersRequest,
    DisassociateMembersRequest
);

/// Responses carry their request id in the body; [`serve`] copies it into metadata.
pub(crate) trait WithRequestId {
    fn request_id(&self) -> &str;
}

macro_rules! with_request_id {
    ($($response:ty),*) => {
        $(impl WithRequestId for $response {
            fn request_id(&self) -> &str {
                &self.request_id
            }
        })*
    };
}

with_request_id!(
    crate::proto::ListMessageContactEventsResponse,
    crate::proto::GetMessageContactAsOfResponse,
    AddMessageContactResponse,
    UpdateMessageContactResponse,
    GetMessageContactResponse,
    ListMessageContactsResponse,
    SendEmailVerificationForMessageContactResponse,
    SendPhoneVerificationForMessageContactResponse,
    ListMessageContactVerificationsResponse,
    CancelMessageContactUpdateResponse,
    ConfirmMessageContactVerificationResponse,
    DeleteMessageContactResponse,
    GetMessageContactDeletionStatusResponse,
    AssociateMembersResponse,
    DisassociateMembersResponse,
    crate::proto::GetResourceDirectoryResponse,
    crate::proto::RegisterFolderResponse,
    crate::proto::RemoveFolderResponse,
    crate::proto::RegisterMemberResponse,
    crate::proto::MoveMemberResponse,
    crate::proto::RemoveMemberResponse,
    crate::proto::ForgetMessageContactResponse
);

#[tonic::async_trait]
impl<S: ContactStore + DirectoryStore> MessageContactService for ContactGrpc<S> {
    async fn add_message_contact(
        &self,
        request: Request<AddMessageContactRequest>,
    ) -> Result<Response<AddMessageContactResponse>, Status> {
        serve(request, |ctx, req| async move { self.add(&ctx, req).await }).await
    }

    async fn update_message_contact(
        &self,
        request: Request<UpdateMessageContactRequest>,
    ) -> Result<Response<UpdateMessageContactResponse>, Status> {
        serve(
            request,
            |ctx, req| async move { self.update(&ctx, req).await },
        )
        .await
    }

    async fn get_message_contact(
        &self,
        request: Request<GetMessageContactRequest>,
    ) -> Result<Response<GetMessageContactResponse>, Status> {
        serve(request, |ctx, req| async move { self.get(&ctx, req).await }).await
    }

    async fn list_message_contacts(
        &self,
        request: Request<ListMessageContactsRequest>,
    ) -> Result<Response<ListMessageContactsResponse>, Status> {
        serve(
            request,
            |ctx, req| async move { self.list(&ctx, req).await },
        )
        .await
    }

    async fn send_email_verification_for_message_contact(
        &self,
        request: Request<SendEmailVerificationForMessageContactRequest>,
    ) -> Result<Response<SendEmailVerificationForMessageContactResponse>, Status> {
        serve(request, |ctx, req| async move {
            self.send_email(&ctx, req).await
        })
        .await
    }

    async fn send_phone_verification_for_message_contact(
        &self,
        request: Request<SendPhoneVerificationForMessageContactRequest>,
    ) -> Result<Response<SendPhoneVerificationForMessageContactResponse>, Status> {
        serve(request, |ctx, req| async move {
            self.send_phone(&ctx, req).await
        })
        .await
    }

    async fn list_message_contact_verifications(
        &self,
        request: Request<ListMessageContactVerificationsRequest>,
    ) -> Result<Response<ListMessageContactVerificationsResponse>, Status> {
        serve(request, |ctx, req| async move {
            self.list_verifications(&ctx, req).await
        })
        .await
    }

    async fn cancel_message_contact_update(
        &self,
        request: Request<CancelMessageContactUpdateRequest>,
    ) -> Result<Response<CancelMessageContactUpdateResponse>, Status> {
        serve(
            request,
            |ctx, req| async move { self.cancel(&ctx, req).await },
        )
        .await
    }

    async fn confirm_message_contact_verification(
        &self,
        request: Request<ConfirmMessageContactVerificationRequest>,
    ) -> Result<Response<ConfirmMessageContactVerificationResponse>, Status> {
        serve(
            request,
            |ctx, req| async move { self.confirm(&ctx, req).await },
        )
        .await
    }

    async fn delete_message_contact(
        &self,
        request: Request<DeleteMessageContactRequest>,
    ) -> Result<Response<DeleteMessageContactResponse>, Status> {
        serve(
            request,
            |ctx, req| async move { self.delete(&ctx, req).await },
        )
        .await
    }

    async fn get_message_contact_deletion_status(
        &self,
        request: Request<GetMessageContactDeletionStatusRequest>,
    ) -> Result<Response<GetMessageContactDeletionStatusResponse>, Status> {
        serve(request, |ctx, req| async move {
            self.deletion_status(&ctx, req).await
        })
        .await
    }

    async fn associate_members(
        &self,
        request: Request<AssociateMembersRequest>,
    ) -> Result<Response<AssociateMembersResponse>, Status> {
        serve(request, |ctx, req| async move {
            self.associate(&ctx, req).await
        })
        .await
    }

    async fn disassociate_members(
        &self,
        request: Request<DisassociateMembersRequest>,
    ) -> Result<Response<DisassociateMembersResponse>, Status> {
        serve(request, |ctx, req| async move {
            self.disassociate(&ctx, req).await
        })
        .await
    }
}
