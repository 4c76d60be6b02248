//! How a purchase ends, the same for every protocol: committed (answer logged and
//! returned), aborted (the refusal logged and returned; parked if the undo did not
//! finish), or unknown (parked, txid returned).

use prost::Message;
use proto::v1::{Order, PricedSeat, Protocol, PurchaseResponse};
use tonic::Status;
use tracing::{info, warn};

use crate::driver::{CallError, Run};
use crate::error::{Error, Result};

/// Logs COMMITTED with the answer and returns it.
#[allow(clippy::too_many_arguments)]
pub async fn committed(
    run: &Run,
    protocol: Protocol,
    order_id: &str,
    seats: &[PricedSeat],
    currency: &str,
    payment_id: &str,
    order: Option<Order>,
) -> Result<PurchaseResponse> {
    let response = PurchaseResponse {
        txid: run.txid.clone(),
        order_id: order_id.to_owned(),
        protocol: protocol.into(),
        seats: seats.to_vec(),
        tickets: order.map(|o| o.tickets).unwrap_or_default(),
        amount_cents: seats.iter().map(|s| s.price_cents).sum(),
        currency: currency.to_owned(),
        payment_id: payment_id.to_owned(),
        phases: run.phases(),
        total: Some(run.total()),
        replayed: false,
    };
    run.driver
        .log
        .finish_committed(&run.owned, &response.encode_to_vec())
        .await?;
    info!(txid = %run.txid, seats = seats.len(), "purchase committed");
    Ok(response)
}

/// Logs the refusal and ABORTED (or NEEDS_ATTENTION when the undo did not finish) and
/// returns the refusal: the purchase certainly did not happen.
pub async fn aborted(run: &Run, cause: Status, undo: Result<(), CallError>) -> Error {
    let log = &run.driver.log;
    let cause = honest_sold_out(run, cause).await;
    if let Err(error) = &undo {
        warn!(txid = %run.txid, error = %crate::driver::describe(error.status()),
              "undo did not finish; parking the aborted purchase");
        run.parked();
    }
    if let Err(error) = log
        .end_aborted(
            &run.owned,
            cause.code() as i32,
            cause.message(),
            cause.details(),
            undo.is_ok(),
        )
        .await
    {
        // The log still shows the purchase unfinished: its waiting-room slot stays taken
        // until recovery ends it, which then releases the admission. A slot comes back
        // only once the log says the purchase ended, never on the answer alone.
        warn!(txid = %run.txid, %error,
              "could not log the end of an aborted purchase; recovery ends it and frees its slot");
        run.parked();
    }
    info!(txid = %run.txid, reason = %cause.message(), "purchase aborted");
    Error::Refused {
        txid: run.txid.clone(),
        status: cause,
    }
}

/// A participant's SOLD_OUT is passed on only when it is definitive: no other purchase
/// of the event is in flight, or aborted since this one began, that may have held a
/// seat the participant counted as sold (a lease write or a saga's confirmed seats are
/// SOLD before their purchase commits). Otherwise the buyer hears the truth: every
/// unsold seat is held by purchases in progress, try again. A definitive answer is
/// remembered for the sold-out fast path.
async fn honest_sold_out(run: &Run, cause: Status) -> Status {
    if !crate::sold_out::SoldOut::is_sold_out(&cause) {
        return cause;
    }
    let in_flight = match run
        .driver
        .log
        .others_in_flight(&run.event_id, &run.txid)
        .await
    {
        Ok(0) => {
            if run.best_available {
                run.driver.sold_out.remember(&run.event_id);
            }
            return cause;
        }
        Ok(n) => n.to_string(),
        Err(error) => {
            // Cannot tell: do not claim "sold out".
            warn!(txid = %run.txid, %error, "could not check purchases in flight; not calling it sold out");
            "some".to_owned()
        }
    };
    proto::error::with_reason(
        tonic::Code::Aborted,
        proto::v1::ErrorReason::SeatTaken,
        format!(
            "no seat is free right now: {in_flight} other purchase(s) of {} are in progress \
             and may give a seat back; try again",
            run.event_id
        ),
        [("event_id", run.event_id.clone()), ("in_flight", in_flight)],
    )
}

/// Parks the purchase and answers "outcome unknown" with its txid.
pub async fn unknown(run: &Run, cause: &Status) -> Error {
    run.parked();
    let message = crate::driver::describe(cause);
    if let Err(error) = run.driver.log.park(&run.owned, &message).await {
        warn!(txid = %run.txid, %error, "could not park a purchase");
    }
    warn!(txid = %run.txid, cause = %message, "purchase parked; outcome unknown to the caller");
    Error::OutcomeUnknown {
        txid: run.txid.clone(),
        cause: message,
        deadline: false,
    }
}

/// The refusal to report for a failed forward call: the participant's own answer when
/// it said no, or "did not answer" when it never did (the purchase is aborted either way).
pub fn refusal(participant: &str, error: &CallError) -> Status {
    match error {
        CallError::Refused(status) | CallError::NotOwner(status) => status.clone(),
        CallError::Unknown(status) => proto::error::with_reason(
            tonic::Code::Unavailable,
            proto::v1::ErrorReason::ParticipantUnavailable,
            format!(
                "{participant} did not answer ({}); the purchase was aborted",
                status.message()
            ),
            [("participant", participant.to_owned())],
        ),
    }
}

/// Both results, keeping the first failure.
pub fn first_error(
    results: impl IntoIterator<Item = Result<(), CallError>>,
) -> Result<(), CallError> {
    results.into_iter().collect()
}
