//! `ticketdrop room open|show|watch|leave`: the waiting room in front of a drop, for
//! people — open one, watch the queue move live, or wait in it as a fan — and the fan's
//! journey (join, watch, admitted) that `purchase --room` and `drop` share.

mod fan;
mod view;

pub use fan::{Final, Wait, join_and_watch, wait_in_room};
use view::{describe, flowchart, live};

use crate::endpoints::{self, Endpoints};
use crate::json;
use crate::txn::Format;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use proto::v1::*;
use serde_json::json;
use server_kit::outgoing::MeshChannel;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub enum RoomCommand {
    /// Open the waiting room of an event, or change max-active and admission-ttl.
    Open {
        #[arg(long)]
        event: String,
        /// Most fans holding a live admission at once.
        #[arg(long, default_value_t = 64)]
        max_active: u32,
        /// How long an admission may wait for its purchase, e.g. 30s, 2m.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        admission_ttl: Duration,
        #[arg(long)]
        json: bool,
    },
    /// The room: a live view of the queue (until it sells out or Ctrl-C), one look with
    /// --once, JSON, or its flow as a Mermaid flowchart.
    Show {
        #[arg(long)]
        event: String,
        /// Print one snapshot instead of the live view.
        #[arg(long)]
        once: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Join the room as a fan (joining again keeps your place) and follow your place
    /// until you are admitted (the token to buy with), the event sells out, or your
    /// admission expires.
    Watch {
        #[arg(long)]
        event: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Leave the room: a waiting fan loses their place, an admitted one gives it back.
    Leave {
        #[arg(long)]
        event: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn open(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event_id: &str,
    max_active: u32,
    admission_ttl: Duration,
) -> Result<Room, tonic::Status> {
    Ok(room
        .open_room(OpenRoomRequest {
            event_id: event_id.to_owned(),
            max_active,
            admission_ttl: Some(server_kit::convert::duration(admission_ttl)),
            ..Default::default()
        })
        .await?
        .into_inner()
        .room
        .unwrap_or_default())
}

pub async fn get(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event_id: &str,
) -> Result<Room, tonic::Status> {
    Ok(room
        .get_room(GetRoomRequest {
            event_id: event_id.to_owned(),
        })
        .await?
        .into_inner()
        .room
        .unwrap_or_default())
}

pub async fn run(endpoints: &Endpoints, command: RoomCommand) -> anyhow::Result<()> {
    let mut room = endpoints.waiting_room().await?;
    let fail = |status: tonic::Status| anyhow::anyhow!(endpoints::describe(&status));
    match command {
        RoomCommand::Open {
            event,
            max_active,
            admission_ttl,
            json: as_json,
        } => {
            let opened = open(&mut room, &event, max_active, admission_ttl)
                .await
                .map_err(fail)?;
            if as_json {
                json::print(&json::room(&opened))?;
            } else {
                println!(
                    "room of {} open: at most {} fans buying at once, admissions last {}",
                    opened.event_id,
                    opened.max_active,
                    humantime::format_duration(admission_ttl)
                );
            }
        }
        RoomCommand::Show {
            event,
            once,
            format,
        } => {
            let snapshot = get(&mut room, &event).await.map_err(fail)?;
            match format {
                Format::Json => json::print(&json::room(&snapshot))?,
                Format::Mermaid => print!("{}", flowchart(&snapshot)),
                Format::Text if once || !std::io::stderr().is_terminal() => {
                    print!("{}", describe(&snapshot));
                }
                Format::Text => live(&mut room, &event).await.map_err(fail)?,
            }
        }
        RoomCommand::Watch {
            event,
            user,
            json: as_json,
        } => {
            let started = Instant::now();
            let mut updates = Vec::new();
            let wait = wait_in_room(&mut room, &event, &user, |place| {
                if as_json {
                    updates.push(json::place(place));
                    return;
                }
                let wait = place
                    .estimated_wait
                    .as_ref()
                    .map(|_| {
                        format!(
                            ", about {:.0} s to wait",
                            json::millis(&place.estimated_wait) / 1e3
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "{}: {} — join number {}, position {}{wait}",
                    place.user_id,
                    json::short_enum(place.state().as_str_name(), "FAN_STATE_"),
                    place.join_number,
                    place.position
                );
            })
            .await
            .map_err(fail)?;
            let waited = started.elapsed();
            if as_json {
                let outcome = match &wait.outcome {
                    Final::Admitted(a) => json!({"admitted": json::admission(a)}),
                    Final::SoldOut(s) => {
                        json!({"sold_out": {"sold_out_at": json::timestamp(&s.sold_out_at), "capacity": s.capacity}})
                    }
                    Final::Expired(e) => {
                        json!({"expired": {"expired_at": json::timestamp(&e.expired_at)}})
                    }
                };
                json::print(&json!({
                    "event_id": event, "user_id": user, "join_number": wait.join_number,
                    "waited_ms": waited.as_secs_f64() * 1e3, "updates": updates, "outcome": outcome,
                }))?;
            } else {
                match wait.outcome {
                    Final::Admitted(a) => println!(
                        "ADMITTED (admission {}, until {}): buy with\n  ticketdrop purchase --user {user} --event {event} --admission-token {} …",
                        a.admission_number,
                        json::timestamp(&a.expires_at).as_str().unwrap_or("?"),
                        a.token
                    ),
                    Final::SoldOut(_) => println!("SOLD OUT: every seat of {event} is sold"),
                    Final::Expired(_) => println!("EXPIRED: the admission was not used in time"),
                }
            }
        }
        RoomCommand::Leave {
            event,
            user,
            json: as_json,
        } => {
            let left = room
                .leave(LeaveRequest {
                    event_id: event.clone(),
                    user_id: user.clone(),
                })
                .await
                .map_err(fail)?
                .into_inner();
            let from = json::short_enum(left.left_from().as_str_name(), "FAN_STATE_");
            if as_json {
                json::print(&json!({"event_id": event, "user_id": user, "left_from": from}))?;
            } else if left.left_from() == FanState::Unspecified {
                println!("{user} was not in the room of {event}");
            } else {
                println!("{user} left the room of {event} (was {from})");
            }
        }
    }
    Ok(())
}
