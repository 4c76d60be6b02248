//! Compiles `ticketdrop/v1/*.proto` with protox (pure Rust, no system protoc), writes the
//! descriptor set that server reflection serves, and generates the tonic clients and servers.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "ticketdrop/v1/common.proto",
    "ticketdrop/v1/inventory.proto",
    "ticketdrop/v1/orders.proto",
    "ticketdrop/v1/payments.proto",
    "ticketdrop/v1/notifier.proto",
    "ticketdrop/v1/coordinator.proto",
    "ticketdrop/v1/waiting_room.proto",
    "ticketdrop/v1/web.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let mut compiler = protox::Compiler::new(["."])?;
    // Source info keeps the comments, so `grpcurl describe` shows the documentation.
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("ticketdrop_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        // RPCs that a later service version implements answer UNIMPLEMENTED until then.
        .generate_default_stubs(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
