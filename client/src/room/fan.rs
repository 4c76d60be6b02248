//! A fan's way through the room, which `purchase --room`, `drop` and `room watch` share:
//! join (joining again keeps the place), follow the place over Watch, end admitted, sold
//! out or expired.

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
