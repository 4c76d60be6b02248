use clap::Parser;

#[global_allocator]
static ALLOCATOR: server_kit::Allocator = server_kit::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Named failpoints from FAILPOINTS (crash tests, chaos lab); compiled out without
    // the `failpoints` feature.
    let _failpoints = fail::FailScenario::setup();
    let config = inventory_pg::Config::parse();
    let _telemetry = server_kit::telemetry::init(
        config.server.log_format,
        "inventory-pg",
        config.server.otlp_endpoint.as_deref(),
    )?;
    inventory_pg::run(config, server_kit::shutdown::signal_received()).await
}
