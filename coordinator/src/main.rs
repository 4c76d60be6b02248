use clap::Parser;

#[global_allocator]
static ALLOCATOR: server_kit::Allocator = server_kit::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Named failpoints from FAILPOINTS (crash tests); compiled out without `failpoints`.
    let _failpoints = fail::FailScenario::setup();
    let config = coordinator::Config::parse();
    let _telemetry = server_kit::telemetry::init(
        config.server.log_format,
        "coordinator",
        config.server.otlp_endpoint.as_deref(),
    )?;
    coordinator::run(config, server_kit::shutdown::signal_received()).await
}
