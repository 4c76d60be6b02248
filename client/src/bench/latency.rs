//! Uncontended purchase latency: one fan at a time buys one best-available seat, under
//! each protocol, on an event of its own (no waiting room), and the latency of each
//! purchase call is kept.

use std::time::Instant;

use proto::v1::PurchaseRequest;
use serde::Serialize;

use crate::endpoints::Endpoints;
use crate::json;
use crate::load::stats::percentile;

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub protocol: &'static str,
    pub purchases: u32,
    pub sold: u32,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub async fn measure(
    endpoints: &Endpoints,
    event_prefix: &str,
    purchases: u32,
) -> anyhow::Result<Vec<Latency>> {
    let mut coordinator = endpoints.coordinator().await?;
    let mut all = Vec::new();
    for protocol in super::PROTOCOLS {
        let event = format!("{event_prefix}-{}", json::protocol(protocol));
        crate::load::ensure_event(endpoints, &event, purchases).await?;
        let mut latencies = Vec::with_capacity(purchases as usize);
        let mut sold = 0;
        for i in 0..purchases {
            let request = PurchaseRequest {
                user_id: format!("{event}-fan-{i}"),
                event_id: event.clone(),
                seat_ids: Vec::new(),
                quantity: 1,
                card_token: "tok_visa".into(),
                idempotency_key: format!("{event}-{i}"),
                protocol: protocol.into(),
                deadline: None,
                contact: None,
                admission_token: String::new(),
            };
            let began = Instant::now();
            let answer = coordinator.purchase(request).await;
            latencies.push(began.elapsed().as_secs_f64() * 1000.0);
            match answer {
                Ok(_) => sold += 1,
                Err(status) => anyhow::bail!(
                    "{} purchase {i} of the latency run failed: {}",
                    json::protocol(protocol),
                    crate::endpoints::describe(&status)
                ),
            }
        }
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| percentile(&latencies, q);
        all.push(Latency {
            protocol: json::protocol(protocol),
            purchases,
            sold,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        });
    }
    Ok(all)
}
