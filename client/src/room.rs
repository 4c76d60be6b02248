//! `ticketdrop room open|show|watch|leave`: the waiting room in front of a drop, for
//! people — open one, watch the queue move live, or wait in it as a fan — and the fan's
//! journey (join, watch, admitted) that `purchase --room` and `drop` share.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use proto::v1::*;
use serde_json::json;
use server_kit::outgoing::MeshChannel;

use crate::endpoints::{self, Endpoints};
use crate::json;
use crate::txn::Format;

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

/// How a fan's wait ended.
#[derive(Debug, Clone)]
pub enum Final {
    Admitted(Admission),
    SoldOut(SoldOut),
    Expired(Expired),
}

/// A fan's wait in a room.
#[derive(Debug, Clone)]
pub struct Wait {
    pub join_number: u64,
    pub outcome: Final,
}

/// How often a fan watches again after the stream broke (the room restarting, say).
const WATCH_ATTEMPTS: u32 = 8;

/// Joins the room (idempotent) and watches until the final message, calling `on_place`
/// with every position update. A broken stream is watched again with backoff, a bounded
/// number of times: the fan's place is kept in the room.
pub async fn wait_in_room(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event_id: &str,
    user_id: &str,
    mut on_place: impl FnMut(&Place),
) -> Result<Wait, tonic::Status> {
    let place = join(room, event_id, user_id).await?;
    on_place(&place);
    let outcome = watch(room, &place, on_place).await?;
    Ok(Wait {
        join_number: place.join_number,
        outcome,
    })
}

/// Watches a joined fan's place until the final message (see [`wait_in_room`]).
pub async fn watch(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    place: &Place,
    mut on_place: impl FnMut(&Place),
) -> Result<Final, tonic::Status> {
    if place.state() == FanState::SoldOut {
        return Ok(Final::SoldOut(SoldOut::default()));
    }
    let (event_id, user_id) = (place.event_id.as_str(), place.user_id.as_str());
    let mut attempt = 1;
    let mut backoff = Duration::from_millis(100);
    loop {
        let broken = match watch_once(room, event_id, user_id, &mut on_place).await {
            Ok(outcome) => return Ok(outcome),
            Err(status) => status,
        };
        if !matches!(
            broken.code(),
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::ResourceExhausted
        ) || attempt >= WATCH_ATTEMPTS
        {
            return Err(broken);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        attempt += 1;
    }
}

/// Joins, retrying a room that does not answer (Join is idempotent).
pub async fn join(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event_id: &str,
    user_id: &str,
) -> Result<Place, tonic::Status> {
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match room
            .join(JoinRequest {
                event_id: event_id.to_owned(),
                user_id: user_id.to_owned(),
            })
            .await
        {
            Ok(answer) => return Ok(answer.into_inner().place.unwrap_or_default()),
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                ) && attempt < WATCH_ATTEMPTS =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                attempt += 1;
            }
            Err(status) => return Err(status),
        }
    }
}

async fn watch_once(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event_id: &str,
    user_id: &str,
    on_place: &mut impl FnMut(&Place),
) -> Result<Final, tonic::Status> {
    let mut stream = room
        .watch(WatchRequest {
            event_id: event_id.to_owned(),
            user_id: user_id.to_owned(),
        })
        .await?
        .into_inner();
    let mut outcome = None;
    while let Some(message) = stream.message().await? {
        match message.update {
            Some(watch_response::Update::Waiting(place)) => on_place(&place),
            Some(watch_response::Update::Admitted(admission)) => {
                outcome = Some(Final::Admitted(admission));
            }
            Some(watch_response::Update::SoldOut(sold_out)) => {
                outcome = Some(Final::SoldOut(sold_out));
            }
            Some(watch_response::Update::Expired(expired)) => {
                outcome = Some(Final::Expired(expired));
            }
            None => {}
        }
        if outcome.is_some() {
            // The room ends the stream right after the final message: read it to its
            // end rather than reset it (tens of thousands of resets at a sell-out look
            // like an attack to HTTP/2 and close the connection).
            while stream.message().await?.is_some() {}
            break;
        }
    }
    outcome.ok_or_else(|| tonic::Status::unavailable("the watch stream ended without an outcome"))
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

/// The live view: fans admitted of those who joined, seats sold of capacity, and the
/// queue's state, redrawn four times a second until the room sells out or Ctrl-C.
async fn live(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event_id: &str,
) -> Result<(), tonic::Status> {
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = |template: &str| {
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> ")
    };
    let admitted = bars.add(ProgressBar::new(0));
    admitted.set_style(style("admitted   [{bar:40}] {pos}/{len} fans joined"));
    let sold = bars.add(ProgressBar::new(0));
    sold.set_style(style("seats sold [{bar:40}] {pos}/{len}"));
    let queue = bars.add(ProgressBar::new_spinner());
    queue.set_style(style("{spinner} {msg}"));
    let mut last = get(room, event_id).await?;
    loop {
        admitted.set_length(last.joined.max(1));
        admitted.set_position(last.admitted);
        sold.set_length(last.capacity.max(1));
        sold.set_position(last.seats_sold);
        queue.set_message(format!(
            "{} — waiting {} · buying {} of {} · admitted/s {:.1} · told sold out {}",
            json::short_enum(last.state().as_str_name(), "ROOM_STATE_"),
            last.waiting,
            last.purchasing,
            last.max_active,
            last.admission_rate,
            last.sold_out
        ));
        queue.tick();
        if last.state() == RoomState::SoldOut {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        last = get(room, event_id).await?;
    }
    let _ = bars.clear();
    print!("{}", describe(&last));
    Ok(())
}

/// One snapshot of a room as text.
pub fn describe(r: &Room) -> String {
    format!(
        "room of {}: {} (at most {} buying at once, admissions last {:.0} s)\n  \
         joined {} · waiting {} · admitted {} (holding a slot {}, buying {}) · purchased {} · \
         no sale {} · expired {} · left {} · told sold out {}\n  \
         seats sold {} / {} · admitted/s {:.1} · most buying at once {}\n",
        r.event_id,
        json::short_enum(r.state().as_str_name(), "ROOM_STATE_"),
        r.max_active,
        json::millis(&r.admission_ttl) / 1e3,
        r.joined,
        r.waiting,
        r.admitted,
        r.active,
        r.purchasing,
        r.purchased,
        r.finished,
        r.expired,
        r.left,
        r.sold_out,
        r.seats_sold,
        r.capacity,
        r.admission_rate,
        r.max_purchasing_seen
    )
}

/// The room's flow as a Mermaid flowchart, every edge labelled with how many fans took it.
pub fn flowchart(r: &Room) -> String {
    let slot_holders = r.active.saturating_sub(r.purchasing);
    format!(
        "flowchart LR\n    \
         joined([\"joined {joined}\"]) --> waiting[\"waiting {waiting}\"]\n    \
         waiting -->|\"admitted {admitted}\"| admitted[\"admitted, not buying yet {slot_holders}\"]\n    \
         waiting -->|\"sold out {sold_out}\"| sold_out([\"told sold out {sold_out}\"])\n    \
         waiting -->|\"left {left}\"| left([\"left {left}\"])\n    \
         admitted -->|\"claimed {claimed}\"| purchasing[\"buying {purchasing}\"]\n    \
         admitted -->|\"expired {expired}\"| expired([\"expired {expired}\"])\n    \
         purchasing -->|\"committed {purchased}\"| purchased([\"purchased {purchased}\"])\n    \
         purchasing -->|\"no sale {finished}\"| finished([\"no sale {finished}\"])\n",
        joined = r.joined,
        waiting = r.waiting,
        admitted = r.admitted,
        sold_out = r.sold_out,
        left = r.left,
        claimed = r.purchased + r.finished + r.purchasing,
        purchasing = r.purchasing,
        expired = r.expired,
        purchased = r.purchased,
        finished = r.finished,
    )
}
