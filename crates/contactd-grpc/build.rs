//! Generates the protobuf and tonic code from `proto/`, with a vendored `protoc` so that the
//! build needs no system compiler, and the descriptor set that server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos = [
        root.join("resourcemanager/messagecontact/v1/message_contact.proto"),
        // Compiled only for its descriptors: reflection then describes the error details.
        root.join("google/rpc/error_details.proto"),
    ];
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.protoc_arg(format!(
        "-I{}",
        protoc_bin_vendored::include_path()?.display()
    ));
    tonic_prost_build::configure()
        .codec_path("crate::codec::LeanCodec")
        .file_descriptor_set_path(out_dir.join("message_contact_descriptor.bin"))
        .compile_with_config(config, &protos, std::slice::from_ref(&root))?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
