//! Compiles `proto/custody/v1/*.proto` with protox, so no `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with env!: cargo may reuse a compiled build
    // script across checkouts of the same workspace (its hash ignores the
    // absolute path), and env! would bake in the first checkout's path.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [root.join("custody/v1/log.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("custody_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Service stubs only with the `grpc` feature; the messages always.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .bytes(".custody.v1.SignedEvent.body")
        .compile_fds(fds)?;
    Ok(())
}
