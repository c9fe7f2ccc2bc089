//! Event times from the forms timestamps come in. weir's event time is
//! milliseconds since the Unix epoch (`u64`); these turn other forms into
//! it, for `event_time` extractors:
//!
//! ```
//! use weir::timestamp::rfc3339_millis;
//!
//! assert_eq!(rfc3339_millis("1970-01-01T00:00:01.5Z").unwrap(), 1_500);
//! assert_eq!(rfc3339_millis("2024-05-01T14:00:00+02:00").unwrap(), 1_714_564_800_000);
//! assert!(rfc3339_millis("yesterday").is_err());
//! ```
//!
//! Epoch seconds are `seconds * 1000`; the spec's `event_time.format`
//! (`ms`, `s`, `rfc3339`) does the same for `weir run`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A timestamp that is not an event time: it does not parse, or it is
/// before the epoch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TimestampError {
    reason: String,
}

/// Milliseconds since the epoch of an RFC 3339 timestamp
/// (`2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.250+02:00`); fractions
/// below a millisecond are dropped.
///
/// # Errors
///
/// The text is not an RFC 3339 timestamp, or it is before 1970.
pub fn rfc3339_millis(text: &str) -> Result<u64, TimestampError> {
    let at = OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|e| TimestampError {
        reason: format!("not an RFC 3339 timestamp ({e})"),
    })?;
    let nanos = at.unix_timestamp_nanos();
    if nanos < 0 {
        return Err(TimestampError {
            reason: "before the epoch (1970-01-01T00:00:00Z)".into(),
        });
    }
    u64::try_from(nanos / 1_000_000).map_err(|_| TimestampError {
        reason: "too far in the future".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_fractions_and_the_epoch() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00.0019Z"), Ok(1));
        assert_eq!(
            rfc3339_millis("2024-05-01T12:00:00Z"),
            rfc3339_millis("2024-05-01T14:00:00+02:00")
        );
        assert!(rfc3339_millis("1969-12-31T23:59:59.9995Z").is_err());
        let err = rfc3339_millis("1969-12-31T23:59:59Z").unwrap_err();
        assert!(err.to_string().contains("before the epoch"), "{err}");
        let err = rfc3339_millis("2024-05-01 12:00").unwrap_err();
        assert!(
            err.to_string().contains("not an RFC 3339 timestamp"),
            "{err}"
        );
    }
}
