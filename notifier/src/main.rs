use clap::Parser;

#[global_allocator]
static ALLOCATOR: server_kit::Allocator = server_kit::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = notifier::Config::parse();
    let _telemetry = server_kit::telemetry::init(
        config.server.log_format,
        "notifier",
        config.server.otlp_endpoint.as_deref(),
    )?;
    notifier::run(config, server_kit::shutdown::signal_received()).await
}
