//! Generates the prost messages and tonic client/server for `peergrid/v1/*.proto`,
//! using the protoc binary vendored by `protoc-bin-vendored` (no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure().compile_with_config(
        config,
        &[
            "peergrid/v1/worker.proto",
            "peergrid/v1/certificate.proto",
            "peergrid/v1/ledger.proto",
            "peergrid/v1/membership.proto",
        ],
        &["."],
    )?;
    println!("cargo:rerun-if-changed=peergrid");
    Ok(())
}
