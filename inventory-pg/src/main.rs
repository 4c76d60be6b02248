use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = inventory_pg::Config::parse();
    server_kit::telemetry::init(config.server.log_format);
    inventory_pg::run(config, server_kit::shutdown::signal_received()).await
}
