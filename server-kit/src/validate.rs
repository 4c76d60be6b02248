//! Checks of primitive request fields shared by every service. Each failure names the
//! field.

use proto::error::FieldError;

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

/// A transaction id (a txid, or a saga id, which is its purchase's txid): an [`id`],
/// recorded on the current call's span so that the call's log lines carry it.
pub fn txid(field: &str, value: &str) -> Result<String, FieldError> {
    let txid = id(field, value)?;
    crate::trace::record_txid(&txid);
    Ok(txid)
}

/// An id that may be absent: empty is None (a coordinator log id from a caller that
/// predates log ids).
pub fn optional_id(field: &str, value: &str) -> Result<Option<String>, FieldError> {
    if value.is_empty() {
        Ok(None)
    } else {
        id(field, value).map(Some)
    }
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

/// An email address: one `@` between a local part and a dotted domain, no spaces or
/// angle brackets, at most 254 characters. Deliverability is the mail server's call.
pub fn email(field: &str, value: &str) -> Result<String, FieldError> {
    let bad = || {
        FieldError::new(
            field,
            format!("must be an email address such as fan@example.com, got {value:?}"),
        )
    };
    if value.len() > 254
        || value.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
        })
    {
        return Err(bad());
    }
    match value.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(value.to_owned())
        }
        _ => Err(bad()),
    }
}

/// A phone number in E.164 form: `+` and 8 to 15 digits.
pub fn phone(field: &str, value: &str) -> Result<String, FieldError> {
    match value.strip_prefix('+') {
        Some(digits)
            if (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) =>
        {
            Ok(value.to_owned())
        }
        _ => Err(FieldError::new(
            field,
            format!("must be an E.164 phone number such as +4915112345678, got {value:?}"),
        )),
    }
}

/// An absolute http or https URL with a host, at most 2,000 characters.
pub fn url(field: &str, value: &str) -> Result<String, FieldError> {
    let bad = |why: &str| FieldError::new(field, format!("{why}, got {value:?}"));
    if value.len() > 2_000 {
        return Err(bad("must be at most 2000 characters"));
    }
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must be a URL with a host and no spaces"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_an_email_an_e164_number_and_an_http_url() {
        assert!(email("contact.email", "fan@example.com").is_ok());
        for bad in [
            "fan",
            "@example.com",
            "fan@",
            "fan@example",
            "a b@example.com",
            "fan@@x.io",
            "<fan@x.io>",
        ] {
            assert!(email("contact.email", bad).is_err(), "{bad}");
        }
        assert!(phone("contact.phone", "+4915112345678").is_ok());
        for bad in ["4915112345678", "+49 151", "+1234", "+49151123456789012"] {
            assert!(phone("contact.phone", bad).is_err(), "{bad}");
        }
        assert!(url("url", "http://127.0.0.1:8080/hook").is_ok());
        assert!(url("url", "https://hooks.example.com").is_ok());
        for bad in ["ftp://x", "http://", "https:///path", "http://a b"] {
            assert!(url("url", bad).is_err(), "{bad}");
        }
    }

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
