//! Checks of primitive request fields shared by every service. Each failure names the
//! field.

use crate::status::FieldError;

/// Longest id (event, seat, order, saga, txid, user) accepted anywhere.
pub const MAX_ID_LEN: usize = 64;

/// An id: 1 to 64 characters from letters, digits and `-_.:`.
pub fn id(field: &str, value: &str) -> Result<String, FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(FieldError::new(
            field,
            format!(
                "must be at most {MAX_ID_LEN} characters, got {}",
                value.len()
            ),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(FieldError::new(
            field,
            format!("may hold only letters, digits and -_.: (found {bad:?})"),
        ));
    }
    Ok(value.to_owned())
}

/// Free text of 1 to `max` characters (after trimming).
pub fn text(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// An ISO 4217 code: three upper-case letters.
pub fn currency(field: &str, value: &str) -> Result<String, FieldError> {
    if value.len() == 3 && value.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(value.to_owned())
    } else {
        Err(FieldError::new(
            field,
            format!("must be an ISO 4217 code such as EUR, got {value:?}"),
        ))
    }
}

/// A page size: `default` when 0, at most `max`.
pub fn page_size(field: &str, value: u32, default: u32, max: u32) -> Result<i64, FieldError> {
    match value {
        0 => Ok(i64::from(default)),
        n if n <= max => Ok(i64::from(n)),
        n => Err(FieldError::new(
            field,
            format!("must be at most {max}, got {n}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_and_plain() {
        assert_eq!(id("order_id", "ord-1").as_deref(), Ok("ord-1"));
        assert_eq!(id("order_id", "").unwrap_err().field, "order_id");
        assert!(id("order_id", &"x".repeat(65)).is_err());
        assert!(id("order_id", &"x".repeat(64)).is_ok());
        assert!(id("order_id", "a b").is_err());
    }

    #[test]
    fn currencies_are_three_capitals() {
        assert!(currency("currency", "EUR").is_ok());
        assert!(currency("currency", "eur").is_err());
        assert!(currency("currency", "EURO").is_err());
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size("page_size", 0, 20, 100), Ok(20));
        assert_eq!(page_size("page_size", 100, 20, 100), Ok(100));
        assert!(page_size("page_size", 101, 20, 100).is_err());
    }
}
