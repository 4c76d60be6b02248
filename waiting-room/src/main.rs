use clap::Parser;

#[global_allocator]
static ALLOCATOR: server_kit::Allocator = server_kit::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = waiting_room::Config::parse();
    let _telemetry = server_kit::telemetry::init(
        config.server.log_format,
        "waiting-room",
        config.server.otlp_endpoint.as_deref(),
    )?;
    waiting_room::run(config, server_kit::shutdown::signal_received()).await
}
