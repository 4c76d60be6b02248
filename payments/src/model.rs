//! Validated requests: every failure names its field and nothing is written.

use proto::error::FieldError;
use proto::v1 as pb;
use server_kit::validate;

/// Largest amount one payment may move, in cents.
pub const MAX_AMOUNT: i64 = 1_000_000_000;
/// Longest idempotency key.
pub const MAX_KEY: usize = 255;
/// Currencies the simulated card network settles.
pub const CURRENCIES: &[&str] = &[
    "AUD", "CAD", "CHF", "DKK", "EUR", "GBP", "JPY", "NOK", "PLN", "SEK", "USD",
];

/// A validated Authorize (or PreparePayment) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuthorization {
    pub order_id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub card_token: String,
}

impl NewAuthorization {
    pub fn parse(
        order_id: &str,
        amount_cents: i64,
        currency: &str,
        card_token: &str,
    ) -> Result<Self, FieldError> {
        Ok(Self {
            order_id: validate::id("order_id", order_id)?,
            amount_cents: amount("amount_cents", amount_cents)?,
            currency: supported_currency(currency)?,
            card_token: card_token_format(card_token)?,
        })
    }
}

impl TryFrom<&pb::AuthorizeRequest> for NewAuthorization {
    type Error = FieldError;

    fn try_from(r: &pb::AuthorizeRequest) -> Result<Self, FieldError> {
        Self::parse(&r.order_id, r.amount_cents, &r.currency, &r.card_token)
    }
}

impl TryFrom<&pb::PreparePaymentRequest> for NewAuthorization {
    type Error = FieldError;

    fn try_from(r: &pb::PreparePaymentRequest) -> Result<Self, FieldError> {
        Self::parse(&r.order_id, r.amount_cents, &r.currency, &r.card_token)
    }
}

/// An amount > 0 and at most [`MAX_AMOUNT`].
pub fn amount(field: &str, value: i64) -> Result<i64, FieldError> {
    if value <= 0 {
        return Err(FieldError::new(field, format!("must be > 0, got {value}")));
    }
    if value > MAX_AMOUNT {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_AMOUNT}"),
        ));
    }
    Ok(value)
}

/// An optional amount: 0 means "all of it".
pub fn optional_amount(field: &str, value: i64) -> Result<Option<i64>, FieldError> {
    match value {
        0 => Ok(None),
        v => amount(field, v).map(Some),
    }
}

pub fn supported_currency(value: &str) -> Result<String, FieldError> {
    let code = validate::currency("currency", value)?;
    if CURRENCIES.contains(&code.as_str()) {
        Ok(code)
    } else {
        Err(FieldError::new(
            "currency",
            format!(
                "{code} is not supported; use one of {}",
                CURRENCIES.join(", ")
            ),
        ))
    }
}

/// `tok_` followed by 1 to 60 lower-case letters, digits or `_`.
pub fn card_token_format(value: &str) -> Result<String, FieldError> {
    let well_formed = value.strip_prefix("tok_").is_some_and(|rest| {
        (1..=60).contains(&rest.len())
            && rest
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    });
    if well_formed {
        Ok(value.to_owned())
    } else {
        Err(FieldError::new(
            "card_token",
            format!("{value:?} is not a card token (tok_ followed by letters, digits or _)"),
        ))
    }
}

pub fn idempotency_key(value: &str) -> Result<String, FieldError> {
    if value.is_empty() {
        return Err(FieldError::new("idempotency_key", "must not be empty"));
    }
    if value.len() > MAX_KEY {
        return Err(FieldError::new(
            "idempotency_key",
            format!("must be at most {MAX_KEY} characters"),
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_currencies_and_cards_are_checked() {
        assert!(NewAuthorization::parse("o", 100, "EUR", "tok_visa").is_ok());
        let field = |r: Result<NewAuthorization, FieldError>| r.unwrap_err().field;
        assert_eq!(
            field(NewAuthorization::parse("o", 0, "EUR", "tok_visa")),
            "amount_cents"
        );
        assert_eq!(
            field(NewAuthorization::parse("o", -5, "EUR", "tok_visa")),
            "amount_cents"
        );
        assert_eq!(
            field(NewAuthorization::parse("o", 5, "XYZ", "tok_visa")),
            "currency"
        );
        assert_eq!(
            field(NewAuthorization::parse("o", 5, "EUR", "4242424242424242")),
            "card_token"
        );
        assert_eq!(
            field(NewAuthorization::parse("o", 5, "EUR", "tok_")),
            "card_token"
        );
        assert_eq!(
            field(NewAuthorization::parse("", 5, "EUR", "tok_visa")),
            "order_id"
        );
    }
}
