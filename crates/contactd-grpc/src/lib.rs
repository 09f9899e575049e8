//! The gRPC front end: the only crate that knows the wire format. It turns calls into commands
//! (`from_proto`), results into responses (`to_proto`), errors into statuses with the
//! contract's details (`status`), and serves it all with health and reflection (`server`): the
//! contact service (`service`: fields, verification, delete, bindings), the audit service
//! (`audit`) and the resource directory mirror (`directory`).

mod audit;
mod directory;
mod from_proto;
mod identity;
mod server;
mod service;
mod status;
mod to_proto;

pub use server::{Server, ServerSettings};

/// The generated protobuf types, server and client.
pub mod proto {
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("resourcemanager.messagecontact.v1");

    /// The encoded descriptors of this package, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("message_contact_descriptor");
}
