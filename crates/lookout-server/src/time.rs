//! Time as the API and the pages read and write it: RFC 3339 dates and Sentry's
//! `statsPeriod` windows.

/// RFC 3339 in UTC with milliseconds, as Sentry writes dates.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A window that is not one of Sentry's `statsPeriod` forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid statsPeriod {0:?}: use a number and one of s, m, h, d, w (for example 24h)")]
pub struct BadPeriod(pub String);

/// Sentry's `statsPeriod` (`24h`, `14d`, `30m`, `1w`; a bare number is hours) in
/// milliseconds.
pub fn parse_period(p: &str) -> Result<i64, BadPeriod> {
    let p = p.trim();
    let split = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
    let (n, unit) = p.split_at(split);
    let n: i64 = n.parse().map_err(|_| BadPeriod(p.to_owned()))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" | "" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(BadPeriod(p.to_owned())),
    };
    Ok(n.saturating_mul(unit_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_dates() {
        assert_eq!(parse_period("24h"), Ok(86_400_000));
        assert_eq!(parse_period("30m"), Ok(1_800_000));
        assert_eq!(parse_period("2"), Ok(7_200_000));
        assert_eq!(parse_period("1w"), Ok(604_800_000));
        assert!(parse_period("1y").is_err());
        assert!(parse_period("h").is_err());
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
    }
}
