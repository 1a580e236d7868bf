//! Generates the prost messages and tonic client/server for `peergrid/v1/*.proto`,
//! using the protoc binary vendored by `protoc-bin-vendored` (no system protoc),
//! and writes their encoded `FileDescriptorSet` for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        // `peergrid_proto::FILE_DESCRIPTOR_SET` includes it.
        .file_descriptor_set_path(out_dir.join("peergrid_v1_descriptor.bin"))
        .compile_with_config(
            config,
            &[
                "peergrid/v1/worker.proto",
                "peergrid/v1/certificate.proto",
                "peergrid/v1/ledger.proto",
                "peergrid/v1/membership.proto",
                "peergrid/v1/node.proto",
            ],
            &["."],
        )?;
    println!("cargo:rerun-if-changed=peergrid");
    Ok(())
}
