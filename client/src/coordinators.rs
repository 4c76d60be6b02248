//! `ticketdrop coordinators`: the coordinator log's id and the instances that served it —
//! how many purchases each began and finished, and how many passed between them when one
//! stopped (takeovers).

use comfy_table::Table;
use proto::v1::ListCoordinatorsRequest;

use crate::endpoints::{self, Endpoints};
use crate::json;

#[derive(Debug, clap::Args)]
pub struct CoordinatorsArgs {
    /// Count only this event's purchases (`drop --protocol all` makes E-2pc, E-saga,
    /// E-lease: give each, or none for all).
    #[arg(long)]
    pub event: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(endpoints: &Endpoints, args: CoordinatorsArgs) -> anyhow::Result<()> {
    let mut coordinator = endpoints.coordinator().await?;
    let answer = coordinator
        .list_coordinators(ListCoordinatorsRequest {
            event_id: args.event.clone().unwrap_or_default(),
        })
        .await
        .map_err(|status| anyhow::anyhow!(endpoints::describe(&status)))?
        .into_inner();
    if args.json {
        return json::print(&serde_json::json!({
            "log_id": answer.log_id,
            "coordinators": answer.coordinators.iter().map(|c| serde_json::json!({
                "instance_id": c.instance_id,
                "listen": c.listen,
                "started_at": json::timestamp(&c.started_at),
                "began": c.began,
                "finished": c.finished,
                "taken_over_from": c.taken_over_from,
                "took_over": c.took_over,
            })).collect::<Vec<_>>(),
        }));
    }
    let mut table = Table::new();
    table.set_header([
        "coordinator",
        "serves on",
        "purchases begun",
        "finished",
        "taken over from it",
        "taken over by it",
    ]);
    for c in &answer.coordinators {
        table.add_row([
            c.instance_id.clone(),
            c.listen.clone(),
            c.began.to_string(),
            c.finished.to_string(),
            c.taken_over_from.to_string(),
            c.took_over.to_string(),
        ]);
    }
    let scope = args.event.map_or_else(
        || "all purchases".to_owned(),
        |event| format!("purchases of {event}"),
    );
    println!("log {} ({scope})\n{table}", answer.log_id);
    Ok(())
}
