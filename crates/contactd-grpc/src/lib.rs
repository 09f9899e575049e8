//! The gRPC front end: the only crate that knows the wire format. It turns calls into commands
//! (`from_proto`), results into responses (`to_proto`), errors into statuses with the
//! contract's details (`status`), and serves it all with health and reflection (`server`)
//! behind the identity layer (`access`): the contact service (`service`: fields,
//! verification, delete, bindings), the audit service (`audit`, its live streams bounded by
//! `streams`), the resource directory mirror (`directory`) and the privacy service
//! (`privacy`: forgetting a person).

mod access;
mod audit;
mod codec;
mod directory;
mod from_proto;
/// The fuzz targets' way in to the request conversions (`fuzz/`).
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod metrics;
mod privacy;
mod server;
mod service;
mod status;
mod streams;
mod to_proto;

pub use access::{Access, Identity};
pub use codec::LeanCodec;
pub use server::{Server, ServerSettings};
pub use streams::{EventStream, StreamSettings};

/// An error as the contract words it (`EntityNotExists.Contact: This Contact does not
/// exist.`), for the operator's commands that run a use case without a call; a technical
/// cause is logged with `request_id`, never put in the text.
pub fn contract_error(error: &contactd_app::AppError, request_id: &str) -> String {
    let status = status::app_error(error, request_id);
    match status
        .metadata()
        .get(status::ERROR_CODE_HEADER)
        .and_then(|code| code.to_str().ok())
    {
        Some(code) => format!("{code}: {}", status.message()),
        None => status.message().to_owned(),
    }
}

/// The generated protobuf types, server and client.
pub mod proto {
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("resourcemanager.messagecontact.v1");

    /// The encoded descriptors of this package, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("message_contact_descriptor");
}
