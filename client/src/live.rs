//! `ticketdrop drop --live`: a line of the mesh's own metrics beside the progress bar,
//! scraped once a second from the coordinator's and the waiting room's Prometheus
//! endpoints (each service's gRPC port + 1000, as `make up` runs them, or
//! `TICKETDROP_{COORDINATOR,WAITING_ROOM}_METRICS_URL`).

use std::time::Duration;

use indicatif::ProgressBar;

/// The scraping task; stops when dropped.
pub struct Live(tokio::task::JoinHandle<()>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the line for `event` (and its protocol) on `progress`.
pub fn spawn(
    endpoints: &crate::endpoints::Endpoints,
    event: &str,
    protocol: &'static str,
    progress: ProgressBar,
) -> Live {
    let coordinator = metrics_url("TICKETDROP_COORDINATOR_METRICS_URL", &endpoints.coordinator);
    let room = metrics_url(
        "TICKETDROP_WAITING_ROOM_METRICS_URL",
        &endpoints.waiting_room,
    );
    let event = event.to_owned();
    Live(tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(800))
            .build()
            .expect("an HTTP client");
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let (c, r) = tokio::join!(
                scrape(&http, coordinator.as_deref()),
                scrape(&http, room.as_deref())
            );
            progress.set_message(line(&c, &r, &event, protocol));
        }
    }))
}

/// The line: purchases by outcome, in flight, the room's depth and admissions, the
/// outbox's lag and the log's pool.
fn line(
    coordinator: &Option<String>,
    room: &Option<String>,
    event: &str,
    protocol: &str,
) -> String {
    let mut parts = Vec::new();
    match coordinator {
        Some(text) => {
            let purchases = |outcome: &str| {
                sum(
                    text,
                    "ticketdrop_purchases_total",
                    &[("protocol", protocol), ("outcome", outcome)],
                )
            };
            parts.push(format!(
                "coordinator: {} committed, {} refused, {} unknown, {} in flight",
                purchases("committed"),
                purchases("refused"),
                purchases("unknown"),
                sum(text, "ticketdrop_transactions_in_flight", &[])
            ));
            parts.push(format!(
                "outbox lag {:.1} s",
                value(text, "ticketdrop_outbox_lag_seconds", &[])
            ));
            parts.push(format!(
                "log pool {}/{} ({} waiting)",
                sum(
                    text,
                    "ticketdrop_db_pool_connections",
                    &[("state", "in_use")]
                ),
                sum(text, "ticketdrop_db_pool_max_connections", &[]),
                sum(text, "ticketdrop_db_pool_waiting", &[])
            ));
        }
        None => parts.push("coordinator metrics unavailable".into()),
    }
    match room {
        Some(text) => {
            let labels = [("event", event)];
            parts.push(format!(
                "room: {} waiting, {} buying, {} admitted",
                sum(text, "ticketdrop_waiting_room_waiting", &labels),
                sum(text, "ticketdrop_waiting_room_purchasing", &labels),
                sum(text, "ticketdrop_waiting_room_admitted_total", &labels)
            ));
        }
        None => parts.push("room metrics unavailable".into()),
    }
    parts.join(" · ")
}

pub(crate) async fn scrape(http: &reqwest::Client, url: Option<&str>) -> Option<String> {
    let response = http.get(url?).send().await.ok()?;
    response.error_for_status().ok()?.text().await.ok()
}

/// `env`, or the endpoint's host with its port + 1000 (the services' default).
pub(crate) fn metrics_url(env: &str, endpoint: &str) -> Option<String> {
    if let Ok(url) = std::env::var(env) {
        return Some(url);
    }
    let authority = endpoint.split("://").nth(1)?.trim_end_matches('/');
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    Some(format!("http://{host}:{}/metrics", port.checked_add(1000)?))
}

/// The sum of the samples of `name` (whole-number counters and gauges) whose labels
/// include every pair of `labels`, from Prometheus text.
pub(crate) fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    value(text, name, labels).round() as u64
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE ticketdrop_purchases_total counter\n\
        ticketdrop_purchases_total{protocol=\"saga\",outcome=\"committed\",reason=\"\"} 12\n\
        ticketdrop_purchases_total{protocol=\"saga\",outcome=\"refused\",reason=\"SOLD_OUT\"} 3\n\
        ticketdrop_purchases_total{protocol=\"saga\",outcome=\"refused\",reason=\"CARD_DECLINED\"} 2\n\
        ticketdrop_purchases_total{protocol=\"2pc\",outcome=\"refused\",reason=\"SOLD_OUT\"} 5\n\
        ticketdrop_outbox_lag_seconds 0.25\n";

    #[test]
    fn sums_the_samples_whose_labels_match() {
        let refused = [("protocol", "saga"), ("outcome", "refused")];
        assert_eq!(sum(TEXT, "ticketdrop_purchases_total", &refused), 5);
        assert_eq!(sum(TEXT, "ticketdrop_purchases_total", &[]), 22);
        assert_eq!(value(TEXT, "ticketdrop_outbox_lag_seconds", &[]), 0.25);
        assert_eq!(sum(TEXT, "ticketdrop_missing", &[]), 0);
    }

    #[test]
    fn the_metrics_port_is_the_grpc_port_plus_1000() {
        assert_eq!(
            metrics_url(
                "TICKETDROP_TEST_UNSET_METRICS_URL",
                "http://127.0.0.1:50050"
            ),
            Some("http://127.0.0.1:51050/metrics".into())
        );
    }
}
