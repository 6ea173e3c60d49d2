//! Dates from the Unix clock, in UTC: RFC 3339 timestamps (a Helm
//! repository index's `generated` and `created`) and the day a benchmark
//! figure was measured. A few lines of arithmetic, so no date crate.

/// The current time as RFC 3339 in UTC (`2026-01-02T03:04:05Z`), computed
/// from the Unix time so no date crate is needed for one field.
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// The current time as Go's RFC 3339 with nanoseconds in UTC
/// (`2026-01-02T03:04:05.123456789Z`, trailing zeros of the fraction dropped):
/// what Helm writes as a `Chart.lock`'s `generated`.
pub fn rfc3339_nanos_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339_nanos(now.as_secs(), now.subsec_nanos())
}

pub fn rfc3339_nanos(secs: u64, nanos: u32) -> String {
    let whole = rfc3339(secs);
    let fraction = format!("{nanos:09}");
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        whole
    } else {
        format!("{}.{fraction}Z", whole.trim_end_matches('Z'))
    }
}

pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3_600, rem % 3_600 / 60, rem % 60)
}

/// Today's date (UTC), `YYYY-MM-DD`: a figure is quoted with the day it was measured.
pub fn today() -> String {
    rfc3339_now()[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(315_532_800), "1980-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339_nanos(0, 120_000_000), "1970-01-01T00:00:00.12Z");
        assert_eq!(rfc3339_nanos(0, 0), "1970-01-01T00:00:00Z");
    }
}
