use clap::Parser;

#[global_allocator]
static ALLOCATOR: server_kit::Allocator = server_kit::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = web::Config::parse();
    let _telemetry = server_kit::telemetry::init(
        config.server.log_format,
        "web",
        config.server.otlp_endpoint.as_deref(),
    )?;
    web::run(config, server_kit::shutdown::signal_received()).await
}
