//! Lenient deserializers for fields whose JSON type varies between services or versions.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A string, or a number written as a string; anything else (or absence) is `None`.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    })
}

/// A number, or a string holding one; anything else (or absence) is `None`.
pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A time as RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or epoch seconds/milliseconds; anything
/// else (or absence) is `None`.
pub(crate) fn opt_datetime<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    use chrono::{DateTime, NaiveDateTime, Utc};
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S")
                    .ok()
                    .map(|n| n.and_utc())
            }),
        Some(Value::Number(n)) => n.as_i64().and_then(|x| {
            if x > 100_000_000_000 {
                DateTime::from_timestamp_millis(x)
            } else {
                DateTime::from_timestamp(x, 0)
            }
        }),
        _ => None,
    })
}
