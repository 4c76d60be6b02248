use clap::Parser;

#[global_allocator]
static ALLOCATOR: server_kit::Allocator = server_kit::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Named failpoints from FAILPOINTS (crash tests, chaos lab); compiled out without
    // the `failpoints` feature.
    let _failpoints = fail::FailScenario::setup();
    let config = orders_dynamo::Config::parse();
    let _telemetry = server_kit::telemetry::init(
        config.server.log_format,
        "orders-dynamo",
        config.server.otlp_endpoint.as_deref(),
    )?;
    if config.create_table_only {
        return orders_dynamo::create_table(&config).await;
    }
    orders_dynamo::run(config, server_kit::shutdown::signal_received()).await
}
