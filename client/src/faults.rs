//! `ticketdrop faults`: the simulated card network's faults in payments — declines,
//! latency, hangs and lost answers — shown, set and cleared, so a lab session or a
//! debugging recipe can make a purchase fail the way it fails in production.

use std::time::Duration;

use proto::v1::payments_service_client::PaymentsServiceClient;
use proto::v1::{FaultSettings, GetFaultsRequest, LatencyDistribution, SetFaultsRequest};
use serde_json::json;
use server_kit::outgoing::MeshChannel;

use crate::endpoints::{self, Endpoints};
use crate::json;

#[derive(Debug, clap::Subcommand)]
pub enum FaultsCommand {
    /// The fault settings in force.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change the settings named; the others keep their values (admin).
    Set(SetArgs),
    /// Turn every fault off (admin).
    Clear {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// Share of authorizations with a good card that are declined, 0 to 1.
    #[arg(long, value_parser = probability, allow_negative_numbers = true)]
    decline_rate: Option<f64>,
    /// Decline every Nth authorization of a good card (0: none): the same declines
    /// every time, where --decline-rate draws them at random.
    #[arg(long)]
    decline_every: Option<u32>,
    /// Extra time every card-network call takes: one duration (250ms) or a uniform
    /// range (100ms..400ms).
    #[arg(long, value_parser = latency)]
    latency: Option<(Duration, Duration)>,
    /// Share of card-network calls that hang until the caller's deadline, 0 to 1.
    #[arg(long, value_parser = probability, allow_negative_numbers = true)]
    timeout_probability: Option<f64>,
    /// Share of payment writes whose answer is lost after they committed (the caller
    /// sees UNAVAILABLE; a retry replays the stored answer), 0 to 1.
    #[arg(long, value_parser = probability, allow_negative_numbers = true)]
    lose_response_probability: Option<f64>,
    #[arg(long)]
    json: bool,
}

fn probability(text: &str) -> Result<f64, String> {
    let p: f64 = text
        .parse()
        .map_err(|_| format!("not a number: {text:?}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("must be between 0 and 1, got {p}"))
    }
}

fn latency(text: &str) -> Result<(Duration, Duration), String> {
    let parse = |t: &str| humantime::parse_duration(t.trim()).map_err(|e| format!("{t:?}: {e}"));
    let (min, max) = match text.split_once("..") {
        Some((min, max)) => (parse(min)?, parse(max)?),
        None => {
            let d = parse(text)?;
            (d, d)
        }
    };
    if min > max {
        return Err(format!("the range {text:?} ends before it starts"));
    }
    Ok((min, max))
}

pub async fn run(endpoints: &Endpoints, command: FaultsCommand) -> anyhow::Result<()> {
    let mut payments = endpoints.payments().await?;
    let (faults, json_out) = match command {
        FaultsCommand::Show { json } => (current(&mut payments).await?, json),
        FaultsCommand::Set(args) => {
            let mut faults = current(&mut payments).await?;
            if let Some(rate) = args.decline_rate {
                faults.decline_rate = rate;
            }
            if let Some(every) = args.decline_every {
                faults.decline_every = every;
            }
            if let Some((min, max)) = args.latency {
                faults.latency = Some(LatencyDistribution {
                    min: Some(server_kit::convert::duration(min)),
                    max: Some(server_kit::convert::duration(max)),
                });
            }
            if let Some(p) = args.timeout_probability {
                faults.timeout_probability = p;
            }
            if let Some(p) = args.lose_response_probability {
                faults.lose_response_probability = p;
            }
            (set(&mut payments, faults).await?, args.json)
        }
        FaultsCommand::Clear { json } => {
            (set(&mut payments, FaultSettings::default()).await?, json)
        }
    };
    if json_out {
        return json::print(&json!({
            "decline_rate": faults.decline_rate,
            "decline_every": faults.decline_every,
            "latency_min_ms": faults.latency.as_ref().map_or(0.0, |l| json::millis(&l.min)),
            "latency_max_ms": faults.latency.as_ref().map_or(0.0, |l| json::millis(&l.max)),
            "timeout_probability": faults.timeout_probability,
            "lose_response_probability": faults.lose_response_probability,
        }));
    }
    print_faults(&faults);
    Ok(())
}

type Payments = PaymentsServiceClient<MeshChannel>;

async fn current(payments: &mut Payments) -> anyhow::Result<FaultSettings> {
    Ok(payments
        .get_faults(GetFaultsRequest {})
        .await
        .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
        .into_inner()
        .faults
        .unwrap_or_default())
}

async fn set(payments: &mut Payments, faults: FaultSettings) -> anyhow::Result<FaultSettings> {
    Ok(payments
        .set_faults(SetFaultsRequest {
            faults: Some(faults),
        })
        .await
        .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
        .into_inner()
        .faults
        .unwrap_or_default())
}

fn print_faults(faults: &FaultSettings) {
    let latency = faults
        .latency
        .as_ref()
        .map(|l| (json::millis(&l.min), json::millis(&l.max)));
    let quiet = faults.decline_rate == 0.0
        && faults.decline_every == 0
        && faults.timeout_probability == 0.0
        && faults.lose_response_probability == 0.0
        && latency.is_none_or(|(min, max)| min == 0.0 && max == 0.0);
    if quiet {
        println!("no faults: the card network answers at once and approves good cards");
        return;
    }
    println!("decline rate               {}", faults.decline_rate);
    if faults.decline_every > 0 {
        println!("decline every              {}", faults.decline_every);
    }
    match latency {
        Some((min, max)) if min == max => println!("latency                    {min} ms"),
        Some((min, max)) => println!("latency                    {min} to {max} ms"),
        None => println!("latency                    none"),
    }
    println!("timeout probability        {}", faults.timeout_probability);
    println!(
        "lose-response probability  {}",
        faults.lose_response_probability
    );
}
