//! `ResourceDirectoryService`: the mirror of the caller's resource directory, which the
//! directory service (or an operator) keeps up to date. Each RPC identifies the caller,
//! converts the request (missing parameters, then shapes in field order), runs the use case and
//! answers with the request id. The directory is created on first use.

use std::sync::Arc;

use contactd_app::{ContactService, ContactStore, DirectoryStore};
use tonic::{Request, Response, Status};

use crate::proto::resource_directory_service_server::ResourceDirectoryService;
use crate::proto::{
    GetResourceDirectoryRequest, GetResourceDirectoryResponse, MoveMemberRequest,
    MoveMemberResponse, RegisterFolderRequest, RegisterFolderResponse, RegisterMemberRequest,
    RegisterMemberResponse, RemoveFolderRequest, RemoveFolderResponse, RemoveMemberRequest,
    RemoveMemberResponse,
};
use crate::service::serve;
use crate::{from_proto, to_proto};

#[derive(Debug)]
pub(crate) struct DirectoryGrpc<S> {
    app: Arc<ContactService<S>>,
}

impl<S> DirectoryGrpc<S> {
    pub(crate) fn new(app: Arc<ContactService<S>>) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl<S: ContactStore + DirectoryStore> ResourceDirectoryService for DirectoryGrpc<S> {
    async fn get_resource_directory(
        &self,
        request: Request<GetResourceDirectoryRequest>,
    ) -> Result<Response<GetResourceDirectoryResponse>, Status> {
        serve(request, |ctx, _req| async move {
            let directory = self.app.get_directory(&ctx).await?;
            Ok(to_proto::directory(ctx.request_id.to_string(), &directory))
        })
        .await
    }

    async fn register_folder(
        &self,
        request: Request<RegisterFolderRequest>,
    ) -> Result<Response<RegisterFolderResponse>, Status> {
        serve(request, |ctx, req| async move {
            let (folder_id, parent_id) = from_proto::register_folder(&req)?;
            self.app
                .register_folder(&ctx, &folder_id, parent_id.as_ref())
                .await?;
            Ok(RegisterFolderResponse {
                request_id: ctx.request_id.to_string(),
            })
        })
        .await
    }

    async fn remove_folder(
        &self,
        request: Request<RemoveFolderRequest>,
    ) -> Result<Response<RemoveFolderResponse>, Status> {
        serve(request, |ctx, req| async move {
            let folder_id = from_proto::remove_folder(&req)?;
            self.app.remove_folder(&ctx, &folder_id).await?;
            Ok(RemoveFolderResponse {
                request_id: ctx.request_id.to_string(),
            })
        })
        .await
    }

    async fn register_member(
        &self,
        request: Request<RegisterMemberRequest>,
    ) -> Result<Response<RegisterMemberResponse>, Status> {
        serve(request, |ctx, req| async move {
            let (account_id, folder_id) = from_proto::register_member(&req)?;
            self.app
                .register_member(&ctx, &account_id, folder_id.as_ref())
                .await?;
            Ok(RegisterMemberResponse {
                request_id: ctx.request_id.to_string(),
            })
        })
        .await
    }

    async fn move_member(
        &self,
        request: Request<MoveMemberRequest>,
    ) -> Result<Response<MoveMemberResponse>, Status> {
        serve(request, |ctx, req| async move {
            let (account_id, folder_id) = from_proto::move_member(&req)?;
            self.app
                .move_member(&ctx, &account_id, folder_id.as_ref())
                .await?;
            Ok(MoveMemberResponse {
                request_id: ctx.request_id.to_string(),
            })
        })
        .await
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<RemoveMemberResponse>, Status> {
        serve(request, |ctx, req| async move {
            let account_id = from_proto::remove_member(&req)?;
            self.app.remove_member(&ctx, &account_id).await?;
            Ok(RemoveMemberResponse {
                request_id: ctx.request_id.to_string(),
            })
        })
        .await
    }
}
