//! The room for people: one look as text, a live view until it sells out, or its flow
//! as a Mermaid flowchart.

use crate::json;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use proto::v1::*;
use server_kit::outgoing::MeshChannel;
use std::time::Duration;

use super::get;

/// The live view: fans admitted of those who joined, seats sold of capacity, and the
/// queue's state, redrawn four times a second until the room sells out or Ctrl-C.
pub(super) async fn live(
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
