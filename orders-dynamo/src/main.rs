use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = orders_dynamo::Config::parse();
    server_kit::telemetry::init(config.server.log_format);
    orders_dynamo::run(config, server_kit::shutdown::signal_received()).await
}
