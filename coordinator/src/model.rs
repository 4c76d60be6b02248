//! The validated purchase: a PurchaseRequest becomes this at the edge, naming the field
//! on failure, so the protocols never see an empty event id or eleven seats.

use std::collections::HashSet;
use std::time::Duration;

use proto::error::FieldError;
use proto::v1::{Protocol, PurchaseRequest};
use server_kit::convert;
use server_kit::validate;

use proto::MAX_SEATS;
const MAX_KEY: usize = 255;
const MAX_TOKEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub user_id: String,
    pub event_id: String,
    /// Named seats, sorted; empty for a quantity purchase.
    pub seat_ids: Vec<String>,
    /// Best-available quantity; 0 for named seats.
    pub quantity: u32,
    pub card_token: String,
    pub idempotency_key: String,
    pub protocol: Protocol,
    pub deadline: Option<Duration>,
    /// The waiting room's admission token; empty when none was given.
    pub admission_token: String,
    /// Where to confirm the purchase once it commits.
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl Purchase {
    /// Seats the purchase asks for.
    pub fn seat_count(&self) -> u32 {
        match self.quantity {
            0 => u32::try_from(self.seat_ids.len()).unwrap_or(u32::MAX),
            n => n,
        }
    }
}

impl TryFrom<&PurchaseRequest> for Purchase {
    type Error = FieldError;

    fn try_from(r: &PurchaseRequest) -> Result<Self, FieldError> {
        let user_id = validate::id("user_id", &r.user_id)?;
        let event_id = validate::id("event_id", &r.event_id)?;
        let (seat_ids, quantity) = match (r.seat_ids.is_empty(), r.quantity) {
            (true, 0) => return Err(FieldError::new("seat_ids", "give seat_ids or a quantity")),
            (false, 0) => (seat_list(&r.seat_ids)?, 0),
            (true, n) if (1..=MAX_SEATS as u32).contains(&n) => (Vec::new(), n),
            (true, n) => {
                return Err(FieldError::new(
                    "quantity",
                    format!("must be between 1 and {MAX_SEATS}, got {n}"),
                ));
            }
            (false, _) => {
                return Err(FieldError::new(
                    "quantity",
                    "give seat_ids or quantity, not both",
                ));
            }
        };
        if !r.card_token.starts_with("tok_") || r.card_token.len() > 64 {
            return Err(FieldError::new(
                "card_token",
                "must be a card token such as tok_visa",
            ));
        }
        if r.idempotency_key.is_empty() || r.idempotency_key.len() > MAX_KEY {
            return Err(FieldError::new(
                "idempotency_key",
                format!("must be 1 to {MAX_KEY} characters"),
            ));
        }
        let protocol = match Protocol::try_from(r.protocol) {
            Ok(p @ (Protocol::TwoPhaseCommit | Protocol::Saga | Protocol::Lease)) => p,
            _ => return Err(FieldError::new("protocol", "must be 2pc, saga or lease")),
        };
        let deadline = match &r.deadline {
            None => None,
            Some(d) => {
                let d = convert::from_duration("deadline", d)?;
                if d.is_zero() {
                    return Err(FieldError::new("deadline", "must be > 0 when set"));
                }
                Some(d)
            }
        };
        if r.admission_token.len() > MAX_TOKEN {
            return Err(FieldError::new(
                "admission_token",
                format!("must be at most {MAX_TOKEN} characters"),
            ));
        }
        let contact = r.contact.clone().unwrap_or_default();
        let email = (!contact.email.is_empty())
            .then(|| validate::email("contact.email", &contact.email))
            .transpose()?;
        let phone = (!contact.phone.is_empty())
            .then(|| validate::phone("contact.phone", &contact.phone))
            .transpose()?;
        Ok(Self {
            user_id,
            event_id,
            seat_ids,
            quantity,
            email,
            phone,
            card_token: r.card_token.clone(),
            idempotency_key: r.idempotency_key.clone(),
            protocol,
            deadline,
            admission_token: r.admission_token.clone(),
        })
    }
}

fn seat_list(seat_ids: &[String]) -> Result<Vec<String>, FieldError> {
    if seat_ids.len() > MAX_SEATS {
        return Err(FieldError::new(
            "seat_ids",
            format!(
                "at most {MAX_SEATS} seats per purchase, got {}",
                seat_ids.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, seat) in seat_ids.iter().enumerate() {
        validate::id(&format!("seat_ids[{i}]"), seat)?;
        if !seen.insert(seat) {
            return Err(FieldError::new(
                "seat_ids",
                format!("seat {seat} is listed twice"),
            ));
        }
    }
    let mut sorted = seat_ids.to_vec();
    sorted.sort();
    Ok(sorted)
}

/// The protocol's name in the log and in the CLI.
pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::TwoPhaseCommit => "2pc",
        Protocol::Saga => "saga",
        Protocol::Lease => "lease",
        Protocol::Unspecified => "unspecified",
    }
}

pub fn protocol_from_name(name: &str) -> Protocol {
    match name {
        "2pc" => Protocol::TwoPhaseCommit,
        "saga" => Protocol::Saga,
        "lease" => Protocol::Lease,
        _ => Protocol::Unspecified,
    }
}
