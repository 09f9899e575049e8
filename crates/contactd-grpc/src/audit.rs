//! `MessageContactAuditService`: a contact's history, the contact as of a point of it, and the
//! account's log streamed live.

use std::sync::Arc;
use std::time::Duration;

use contactd_app::{AppError, AsOf, AuditLog, AuditService, EventPage, LogSubscription};
use contactd_domain::{ContactId, Field, ParameterError};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::access::admitted;
use crate::proto::get_message_contact_as_of_request::AsOf as ProtoAsOf;
use crate::proto::message_contact_audit_service_server::MessageContactAuditService;
use crate::proto::{
    GetMessageContactAsOfRequest, GetMessageContactAsOfResponse, ListMessageContactEventsRequest,
    ListMessageContactEventsResponse, StreamEventsRequest,
};
use crate::service::serve;
use crate::streams::{self, EventStream, OpenStreams};
use crate::{status, to_proto};

/// When a refused stream may try again: streams end at their clients' pace, not the server's.
const STREAM_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct AuditGrpc<L> {
    audit: Arc<AuditService<L>>,
    /// Turns true when the server shuts down: open streams end so that shutdown completes.
    stopping: watch::Receiver<bool>,
    streams: Arc<OpenStreams>,
}

impl<L> AuditGrpc<L> {
    pub(crate) fn new(
        audit: Arc<AuditService<L>>,
        stopping: watch::Receiver<bool>,
        streams: Arc<OpenStreams>,
    ) -> Self {
        Self {
            audit,
            stopping,
            streams,
        }
    }
}

/// The point of history a request names.
pub(crate) fn as_of(req: &GetMessageContactAsOfRequest) -> Result<AsOf, ParameterError> {
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

    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let (ctx, StreamEventsRequest { from_position }) = admitted(request)?;
        let request_id = ctx.request_id.to_string();
        let Some(permit) = self.streams.open(&ctx.account_id) else {
            tracing::info!(request_id, account = %ctx.account_id, "stream refused: too many open");
            return Err(status::throttled(&request_id, STREAM_RETRY_AFTER));
        };
        let mut subscription = self
            .audit
            .follow(&ctx, from_position)
            .await
            .map_err(|error| status::app_error(&error, &request_id))?;
        let (mut sender, stream) = streams::buffer(self.streams.settings(), permit);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            // Where a new stream would carry on after the events queued so far.
            let mut resume_from = from_position;
            loop {
                let batch = tokio::select! {
                    batch = subscription.next_batch() => batch,
                    _ = stopping.wait_for(|stop| *stop) => {
                        // Not OK: a follower must tell a shutdown from a stream that ended.
                        sender.end(status::shutting_down(&request_id, resume_from));
                        return;
                    }
                    // The client went away while nothing new came: stop following for it.
                    () = sender.client_gone() => return,
                };
                match batch {
                    Ok(events) => {
                        for event in &events {
                            let stalled = |resume| status::stream_fell_behind(&request_id, resume);
                            if sender.send(to_proto::event(event), stalled).await.is_err() {
                                return;
                            }
                            resume_from = event.global_position + 1;
                        }
                    }
                    Err(error) => {
                        sender.end(status::app_error(&AppError::from(error), &request_id));
                        return;
                    }
                }
            }
        });
        let mut response = Response::new(stream);
        if let Ok(value) = ctx.request_id.to_string().parse() {
            response
                .metadata_mut()
                .insert(status::REQUEST_ID_HEADER, value);
        }
        Ok(response)
    }
}
