//! A fan's way through the room, which `purchase --room`, `drop` and `room watch` share:
//! one Watch call that joins (joining again keeps the place) and follows the place, ending
//! admitted, sold out or expired.

use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use proto::v1::*;
use server_kit::outgoing::MeshChannel;
use std::time::Duration;

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
    /// The fan's join number (0 when the wait ended before a pre-queued fan was given
    /// one).
    pub join_number: u64,
    pub outcome: Final,
}

/// How often a fan watches again after the stream broke (the room restarting, say).
const WATCH_ATTEMPTS: u32 = 8;

/// Joins the room (idempotent) and watches until the final message, in one call (Watch
/// with `join`), calling `on_place` with the place the join gave and every position
/// update. A broken stream is watched again with backoff, a bounded number of times —
/// without joining again once the room has answered the join (the fan's place is kept in
/// the room; a fan whose place is gone hears NOT_FOUND rather than a new place at the
/// back).
pub async fn wait_in_room(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event_id: &str,
    user_id: &str,
    on_place: impl FnMut(&Place),
) -> Result<Wait, tonic::Status> {
    join_and_watch(room, event_id, user_id, None, on_place).await
}

/// [`wait_in_room`], each join holding a permit of `joins` (when given) until the room
/// has answered the call: a drop bounds how many fans join at once.
pub async fn join_and_watch(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event_id: &str,
    user_id: &str,
    joins: Option<&tokio::sync::Semaphore>,
    mut on_place: impl FnMut(&Place),
) -> Result<Wait, tonic::Status> {
    let mut join_number = 0;
    let mut joined = false;
    let mut attempt = 1;
    let mut backoff = Duration::from_millis(100);
    loop {
        let permit = match (joined, joins) {
            (false, Some(joins)) => Some(
                joins
                    .acquire()
                    .await
                    .expect("the semaphore is never closed"),
            ),
            _ => None,
        };
        let watched = watch_once(room, event_id, user_id, !joined, permit, &mut |place| {
            // A pre-queued fan's place has no number until the opening's shuffle.
            if place.join_number != 0 {
                join_number = place.join_number;
            }
            on_place(place);
        })
        .await;
        let broken = match watched {
            Ok(outcome) => {
                return Ok(Wait {
                    join_number,
                    outcome,
                });
            }
            Err((answered, status)) => {
                joined |= answered;
                status
            }
        };
        if !rewatch(&broken) || attempt >= WATCH_ATTEMPTS {
            return Err(broken);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        attempt += 1;
    }
}

/// Whether a broken Watch is worth calling again (the room restarting, or busy).
fn rewatch(broken: &tonic::Status) -> bool {
    matches!(
        broken.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::ResourceExhausted
    )
}

/// One Watch call (joining first when `join`) until its final message; `on_place` hears
/// every place. `permit` goes back as soon as the room has answered the call (a joining
/// Watch is answered once the fan is in line). An error says whether the room had
/// answered the call (the fan is in line) before it.
async fn watch_once(
    room: &mut WaitingRoomServiceClient<MeshChannel>,
    event_id: &str,
    user_id: &str,
    join: bool,
    permit: Option<tokio::sync::SemaphorePermit<'_>>,
    on_place: &mut impl FnMut(&Place),
) -> Result<Final, (bool, tonic::Status)> {
    let answered = room
        .watch(WatchRequest {
            event_id: event_id.to_owned(),
            user_id: user_id.to_owned(),
            join,
        })
        .await;
    drop(permit);
    let mut stream = answered.map_err(|status| (false, status))?.into_inner();
    follow(&mut stream, on_place)
        .await
        .map_err(|status| (true, status))
}

/// Reads a Watch stream to its final message.
async fn follow(
    stream: &mut tonic::Streaming<WatchResponse>,
    on_place: &mut impl FnMut(&Place),
) -> Result<Final, tonic::Status> {
    let mut outcome = None;
    while let Some(message) = stream.message().await? {
        match message.update {
            Some(
                watch_response::Update::Joined(place) | watch_response::Update::Waiting(place),
            ) => on_place(&place),
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
