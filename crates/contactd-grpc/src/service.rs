//! `MessageContactService`: each RPC identifies the caller, honours the client token, converts
//! the request, runs the use case and converts the result, in the contract's check order.

use std::sync::Arc;

use contactd_app::{
    AppError, CallContext, ContactService, ContactStore, Idempotency, Operation, Outcome, RequestId,
};
use contactd_domain::ClientToken;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::from_proto::{self, fingerprint};
use crate::identity::call_context;
use crate::proto::message_contact_service_server::MessageContactService;
use crate::proto::{
    AddMessageContactRequest, AddMessageContactResponse, GetMessageContactRequest,
    GetMessageContactResponse, ListMessageContactsRequest, ListMessageContactsResponse,
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

impl<S: ContactStore> ContactGrpc<S> {
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

    async fn add(
        &self,
        ctx: &CallContext,
        req: AddMessageContactRequest,
    ) -> Result<AddMessageContactResponse, AppError> {
        let token = self
            .token(ctx, Operation::AddMessageContact, &req.client_token, || {
                fingerprint(&req, |r| r.client_token.clear())
            })
            .await?;
        let outcome = match token {
            Token::Recalled(outcome) => outcome,
            Token::Absent | Token::Fresh(_) => {
                let new = from_proto::new_contact(&req, &self.app.policy().country_codes)?;
                let idempotency = match token {
                    Token::Fresh(idempotency) => Some(idempotency),
                    _ => None,
                };
                self.app.add_contact(ctx, new, idempotency).await?
            }
        };
        match outcome {
            Outcome::Added {
                request_id,
                contact,
            } => Ok(AddMessageContactResponse {
                request_id,
                contact: Some(to_proto::contact(&contact)),
            }),
            Outcome::Updated { .. } => Err(mismatched_outcome()),
        }
    }

    async fn update(
        &self,
        ctx: &CallContext,
        req: UpdateMessageContactRequest,
    ) -> Result<UpdateMessageContactResponse, AppError> {
        let token = self
            .token(
                ctx,
                Operation::UpdateMessageContact,
                &req.client_token,
                || fingerprint(&req, |r| r.client_token.clear()),
            )
            .await?;
        let outcome = match token {
            Token::Recalled(outcome) => outcome,
            Token::Absent | Token::Fresh(_) => {
                let (contact_id, command) =
                    from_proto::update_command(&req, &self.app.policy().country_codes)?;
                let idempotency = match token {
                    Token::Fresh(idempotency) => Some(idempotency),
                    _ => None,
                };
                self.app
                    .update_contact(ctx, &contact_id, &command, idempotency)
                    .await?
            }
        };
        match outcome {
            Outcome::Updated { request_id } => Ok(UpdateMessageContactResponse { request_id }),
            Outcome::Added { .. } => Err(mismatched_outcome()),
        }
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
            contacts: page.items.iter().map(to_proto::contact).collect(),
        })
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

/// Identifies the caller, runs the call and turns its result into a response whose request id
/// is in the body and in metadata alike.
pub(crate) async fn serve<Req, Resp, Fut>(
    request: Request<Req>,
    call: impl FnOnce(CallContext, Req) -> Fut,
) -> Result<Response<Resp>, Status>
where
    Resp: WithRequestId,
    Fut: Future<Output = Result<Resp, AppError>>,
{
    let ctx = match call_context(request.metadata()) {
        Ok(ctx) => ctx,
        Err(_) => return Err(status::unauthenticated(&RequestId::generate().to_string())),
    };
    let request_id = ctx.request_id.to_string();
    match call(ctx, request.into_inner()).await {
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
    ListMessageContactsResponse
);

#[tonic::async_trait]
impl<S: ContactStore> MessageContactService for ContactGrpc<S> {
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
}
