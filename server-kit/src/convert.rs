//! Conversions between protobuf well-known types and chrono / std types.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use proto::error::FieldError;

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).expect("nanoseconds fit in i32"),
    }
}

/// A request timestamp as chrono, naming `field` when it is out of range.
pub fn from_timestamp(
    field: &str,
    ts: &prost_types::Timestamp,
) -> Result<DateTime<Utc>, FieldError> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| Utc.timestamp_opt(ts.seconds, nanos).single())
        .ok_or_else(|| FieldError::new(field, "is not a valid timestamp"))
}

pub fn duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).expect("nanoseconds fit in i32"),
    }
}

/// A request duration as std, naming `field` when it is negative or malformed.
pub fn from_duration(field: &str, d: &prost_types::Duration) -> Result<Duration, FieldError> {
    match (u64::try_from(d.seconds), u32::try_from(d.nanos)) {
        (Ok(seconds), Ok(nanos)) if nanos < 1_000_000_000 => Ok(Duration::new(seconds, nanos)),
        _ => Err(FieldError::new(field, "must be a non-negative duration")),
    }
}
