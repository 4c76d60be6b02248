//! `ticketdrop health`: each service's gRPC health, optionally waiting for SERVING.

use std::time::{Duration, Instant};

use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::endpoints::{self, Endpoints};

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Keep asking for up to this many seconds until every service is SERVING.
    #[arg(long, default_value_t = 0)]
    wait: u64,

    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,

    /// Ask only this endpoint (any service's): the container healthcheck of one service,
    /// which has no other service's address.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
}

#[derive(Debug, Serialize)]
struct ServiceHealth {
    service: &'static str,
    endpoint: String,
    status: String,
}

pub async fn run(endpoints: &Endpoints, args: HealthArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let report = loop {
        let report = match &args.endpoint {
            Some(endpoint) => vec![check_one("service", endpoint).await],
            None => check_all(endpoints).await,
        };
        let all_serving = report.iter().all(|s| s.status == "SERVING");
        if all_serving || Instant::now() >= deadline {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for service in &report {
            println!(
                "{:<14} {:<24} {}",
                service.service, service.endpoint, service.status
            );
        }
    }
    let not_serving: Vec<_> = report
        .iter()
        .filter(|s| s.status != "SERVING")
        .map(|s| s.service)
        .collect();
    if !not_serving.is_empty() {
        anyhow::bail!("not serving: {}", not_serving.join(", "));
    }
    Ok(())
}

/// Every service's health; a service with several endpoints (the coordinators of one
/// log) gets a row per endpoint.
async fn check_all(endpoints: &Endpoints) -> Vec<ServiceHealth> {
    let each: Vec<(&'static str, &str)> = endpoints
        .all()
        .into_iter()
        .flat_map(|(service, list)| {
            list.split(',')
                .map(str::trim)
                .filter(|endpoint| !endpoint.is_empty())
                .map(move |endpoint| (service, endpoint))
        })
        .collect();
    let checks = each
        .into_iter()
        .map(|(service, endpoint)| check_one(service, endpoint));
    futures::future::join_all(checks).await
}

async fn check_one(service: &'static str, endpoint: &str) -> ServiceHealth {
    let status = match check(service, endpoint).await {
        Ok(status) => status,
        Err(error) => format!("DOWN ({error:#})"),
    };
    ServiceHealth {
        service,
        endpoint: endpoint.to_owned(),
        status,
    }
}

async fn check(service: &str, endpoint: &str) -> anyhow::Result<String> {
    let channel = endpoints::connect(service, endpoint).await?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(response.into_inner().status().as_str_name().to_owned())
}
