//! The `contactd` program as a library, so that tests run the very server the binary runs.

pub mod backend;
pub mod config_file;
pub mod keys;
pub mod layers;
pub mod probe;
pub mod secret;
mod security;
pub mod settings;
pub mod startup;
pub mod telemetry;
