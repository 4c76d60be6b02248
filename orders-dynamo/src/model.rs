//! Validated requests: prost messages become these at the edge, naming the field on
//! failure, so the rest of the crate never sees an empty order id or a negative price.

use std::collections::HashSet;

use proto::error::FieldError;
use proto::v1::{self as pb, PricedSeat};
use server_kit::validate;

/// Most seats one order may hold.
use proto::MAX_SEATS;
/// Longest purchase idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The common body of CreateOrder, PrepareOrder and PlaceOrderFenced.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub order_id: String,
    pub user_id: String,
    pub event_id: String,
    pub seats: Vec<PricedSeat>,
    pub currency: String,
    pub idempotency_key: Option<String>,
}

impl NewOrder {
    pub fn parse(
        order_id: &str,
        user_id: &str,
        event_id: &str,
        seats: &[PricedSeat],
        currency: &str,
        idempotency_key: &str,
    ) -> Result<Self, FieldError> {
        Ok(Self {
            order_id: validate::id("order_id", order_id)?,
            user_id: validate::id("user_id", user_id)?,
            event_id: validate::id("event_id", event_id)?,
            seats: seats_list(seats)?,
            currency: validate::currency("currency", currency)?,
            idempotency_key: optional_key(idempotency_key)?,
        })
    }

    pub fn seat_ids(&self) -> Vec<String> {
        self.seats.iter().map(|s| s.seat_id.clone()).collect()
    }
}

impl TryFrom<&pb::CreateOrderRequest> for NewOrder {
    type Error = FieldError;

    fn try_from(r: &pb::CreateOrderRequest) -> Result<Self, FieldError> {
        Self::parse(
            &r.order_id,
            &r.user_id,
            &r.event_id,
            &r.seats,
            &r.currency,
            &r.idempotency_key,
        )
    }
}

impl TryFrom<&pb::PrepareOrderRequest> for NewOrder {
    type Error = FieldError;

    fn try_from(r: &pb::PrepareOrderRequest) -> Result<Self, FieldError> {
        Self::parse(
            &r.order_id,
            &r.user_id,
            &r.event_id,
            &r.seats,
            &r.currency,
            &r.idempotency_key,
        )
    }
}

impl TryFrom<&pb::PlaceOrderFencedRequest> for NewOrder {
    type Error = FieldError;

    fn try_from(r: &pb::PlaceOrderFencedRequest) -> Result<Self, FieldError> {
        Self::parse(
            &r.order_id,
            &r.user_id,
            &r.event_id,
            &r.seats,
            &r.currency,
            &r.idempotency_key,
        )
    }
}

fn seats_list(seats: &[PricedSeat]) -> Result<Vec<PricedSeat>, FieldError> {
    if seats.is_empty() {
        return Err(FieldError::new("seats", "must hold at least one seat"));
    }
    if seats.len() > MAX_SEATS {
        return Err(FieldError::new(
            "seats",
            format!("at most {MAX_SEATS} seats per order, got {}", seats.len()),
        ));
    }
    let mut seen = HashSet::new();
    for (i, seat) in seats.iter().enumerate() {
        validate::id(&format!("seats[{i}].seat_id"), &seat.seat_id)?;
        if seat.price_cents < 0 {
            return Err(FieldError::new(
                format!("seats[{i}].price_cents"),
                format!("must be >= 0, got {}", seat.price_cents),
            ));
        }
        if !seen.insert(seat.seat_id.as_str()) {
            return Err(FieldError::new(
                "seats",
                format!("seat {} is listed twice", seat.seat_id),
            ));
        }
    }
    let mut sorted = seats.to_vec();
    sorted.sort_by(|a, b| a.seat_id.cmp(&b.seat_id));
    Ok(sorted)
}

fn optional_key(key: &str) -> Result<Option<String>, FieldError> {
    match key {
        "" => Ok(None),
        key if key.len() > MAX_IDEMPOTENCY_KEY => Err(FieldError::new(
            "idempotency_key",
            format!("must be at most {MAX_IDEMPOTENCY_KEY} characters"),
        )),
        key => Ok(Some(key.to_owned())),
    }
}

/// The fencing token of a write that may be unfenced: 0 (the lab's negative control,
/// `--unsafe-no-fencing`) or a fencing token.
pub fn fencing_token_or_unfenced(value: u64) -> Result<u64, FieldError> {
    match value {
        0 => Ok(0),
        token => fencing_token(token),
    }
}

/// A fencing token: 1 to 2^63-1 (it is stored as a DynamoDB number and compared).
pub fn fencing_token(value: u64) -> Result<u64, FieldError> {
    if value == 0 || i64::try_from(value).is_err() {
        return Err(FieldError::new(
            "fencing_token",
            "must be between 1 and 2^63-1",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(id: &str, price: i64) -> PricedSeat {
        PricedSeat {
            seat_id: id.into(),
            price_cents: price,
        }
    }

    #[test]
    fn orders_need_ids_seats_and_sane_prices() {
        let ok = NewOrder::parse(
            "o",
            "u",
            "e",
            &[seat("A-1-2", 5), seat("A-1-1", 0)],
            "EUR",
            "",
        );
        assert_eq!(ok.unwrap().seat_ids(), ["A-1-1", "A-1-2"]);
        let field = |r: Result<NewOrder, FieldError>| r.unwrap_err().field;
        assert_eq!(
            field(NewOrder::parse("", "u", "e", &[seat("A", 1)], "EUR", "")),
            "order_id"
        );
        assert_eq!(
            field(NewOrder::parse("o", "u", "e", &[], "EUR", "")),
            "seats"
        );
        assert_eq!(
            field(NewOrder::parse("o", "u", "e", &[seat("A", -1)], "EUR", "")),
            "seats[0].price_cents"
        );
        assert_eq!(
            field(NewOrder::parse(
                "o",
                "u",
                "e",
                &[seat("A", 1), seat("A", 1)],
                "EUR",
                ""
            )),
            "seats"
        );
        assert_eq!(
            field(NewOrder::parse("o", "u", "e", &[seat("A", 1)], "eu", "")),
            "currency"
        );
    }
}
