//! `MessageContactAuditService`: a contact's history, the contact as of a point of it, and the
//! account's log streamed live.

use std::sync::Arc;

use contactd_app::{AppError, AsOf, AuditLog, AuditService, EventPage, LogSubscription};
use contactd_domain::{ContactId, Field, ParameterError};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::identity::call_context;
use crate::proto::get_message_contact_as_of_request::AsOf as ProtoAsOf;
use crate::proto::message_contact_audit_service_server::MessageContactAuditService;
use crate::proto::{
    Event, GetMessageContactAsOfRequest, GetMessageContactAsOfResponse,
    ListMessageContactEventsRequest, ListMessageContactEventsResponse, StreamEventsRequest,
};
use crate::service::serve;
use crate::{status, to_proto};

/// Events buffered per stream before the reader waits for the client: the back-pressure.
const STREAM_BUFFER: usize = 256;

#[derive(Debug)]
pub(crate) struct AuditGrpc<L> {
    audit: Arc<AuditService<L>>,
    /// Turns true when the server shuts down: open streams end so that shutdown completes.
    stopping: watch::Receiver<bool>,
}

impl<L> AuditGrpc<L> {
    pub(crate) fn new(audit: Arc<AuditService<L>>, stopping: watch::Receiver<bool>) -> Self {
        Self { audit, stopping }
    }
}

fn as_of(req: &GetMessageContactAsOfRequest) -> Result<AsOf, ParameterError> {
    match req.as_of {
        None => Err(ParameterError::Missing(Field::AsOf)),
        Some(ProtoAsOf::AsOfVersion(version)) => u64::try_from(version)
            .ok()
            .filter(|v| *v > 0)
            .map(AsOf::Version)
            .ok_or(ParameterError::Invalid(Field::AsOf)),
        Some(ProtoAsOf::AsOfTime(time)) => to_proto::datetime(time)
            .map(AsOf::Time)
            .ok_or(ParameterError::Invalid(Field::AsOf)),
    }
}

#[tonic::async_trait]
impl<L: AuditLog> MessageContactAuditService for AuditGrpc<L> {
    async fn list_message_contact_events(
        &self,
        request: Request<ListMessageContactEventsRequest>,
    ) -> Result<Response<ListMessageContactEventsResponse>, Status> {
        serve(request, |ctx, req| async move {
            let contact_id = ContactId::parse(&req.contact_id)?;
            let page = EventPage::parse(req.page_size.into(), &req.page_token)?;
            let (events, next) = self.audit.contact_events(&ctx, &contact_id, page).await?;
            Ok(ListMessageContactEventsResponse {
                request_id: ctx.request_id.to_string(),
                events: events.iter().map(to_proto::event).collect(),
                next_page_token: next.unwrap_or_default(),
            })
        })
        .await
    }

    async fn get_message_contact_as_of(
        &self,
        request: Request<GetMessageContactAsOfRequest>,
    ) -> Result<Response<GetMessageContactAsOfResponse>, Status> {
        serve(request, |ctx, req| async move {
            let contact_id = ContactId::parse(&req.contact_id)?;
            let as_of = as_of(&req)?;
            let contact = self.audit.contact_as_of(&ctx, &contact_id, as_of).await?;
            Ok(GetMessageContactAsOfResponse {
                request_id: ctx.request_id.to_string(),
                contact: Some(to_proto::contact(&contact)),
            })
        })
        .await
    }

    type StreamEventsStream = ReceiverStream<Result<Event, Status>>;

    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let ctx = call_context(request.metadata()).map_err(|_| {
            status::unauthenticated(&contactd_app::RequestId::generate().to_string())
        })?;
        let request_id = ctx.request_id.to_string();
        let from_position = request.into_inner().from_position;
        let mut subscription = self
            .audit
            .follow(&ctx, from_position)
            .await
            .map_err(|error| status::app_error(&error, &request_id))?;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                let batch = tokio::select! {
                    batch = subscription.next_batch() => batch,
                    _ = stopping.wait_for(|stop| *stop) => return,
                    // The client went away while nothing new came: stop following for it.
                    () = sender.closed() => return,
                };
                match batch {
                    Ok(events) => {
                        for event in &events {
                            // A send fails once the client has gone: stop reading for it.
                            if sender.send(Ok(to_proto::event(event))).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(error) => {
                        let _ = sender
                            .send(Err(status::app_error(&AppError::from(error), &request_id)))
                            .await;
                        return;
                    }
                }
            }
        });
        let mut response = Response::new(ReceiverStream::new(receiver));
        if let Ok(value) = ctx.request_id.to_string().parse() {
            response
                .metadata_mut()
                .insert(status::REQUEST_ID_HEADER, value);
        }
        Ok(response)
    }
}
