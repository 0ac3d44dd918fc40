//! The Java `EEE MMM d HH:mm:ss z yyyy` (US English, UTC) timestamps of SRP claims.
//!
//! The service parses the client's TIMESTAMP leniently and then signs its own canonical rendering
//! of that instant. A zero-padded day or a wrong weekday therefore parses, but the signature over
//! the canonical string does not match: "Incorrect username or password.", as measured on AWS.

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats unix seconds canonically, e.g. `Sun Nov 1 05:04:03 UTC 2026`.
pub(crate) fn format(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday.
    format!(
        "{} {} {} {:02}:{:02}:{:02} UTC {}",
        WEEKDAYS[weekday],
        MONTHS[month as usize - 1],
        day,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        year
    )
}

/// Unix seconds as RFC 3339 in UTC, e.g. `2026-11-01T05:04:03Z` (STS's `Expiration`).
pub(crate) fn rfc3339(unix: i64) -> String {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parses a timestamp in the pattern's shape, leniently as Java does (one- or two-digit fields,
/// any English weekday, `UTC` or `GMT`). `None` when the shape is wrong.
pub(crate) fn parse(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split(' ').collect();
    let [weekday, month, day, time, zone, year] = parts.as_slice() else {
        return None;
    };
    if !WEEKDAYS.iter().any(|w| w.eq_ignore_ascii_case(weekday)) {
        return None;
    }
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    if !matches!(*zone, "UTC" | "GMT") || year.len() != 4 {
        return None;
    }
    let year: i64 = digits(year, 4)?.into();
    let day = digits(day, 2)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let hms: Vec<&str> = time.split(':').collect();
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let (h, m, s) = (digits(h, 2)?, digits(m, 2)?, digits(s, 2)?);
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + i64::from(h * 3600 + m * 60 + s))
}

fn digits(text: &str, max_len: usize) -> Option<u32> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400;
    (if month <= 2 { year + 1 } else { year }, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_785_128_643), "2026-07-27T05:04:03Z");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format(0), "Thu Jan 1 00:00:00 UTC 1970");
        assert_eq!(format(1_793_509_443), "Sun Nov 1 05:04:03 UTC 2026");
        assert_eq!(format(1_795_294_337), "Sat Nov 21 20:52:17 UTC 2026");
        assert_eq!(format(951_782_400), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn parse_round_trips_every_day_of_a_leap_year() {
        let start = days_from_civil(2028, 1, 1) * 86_400 + 3_723;
        for day in 0..366 {
            let t = start + day * 86_400;
            assert_eq!(parse(&format(t)), Some(t), "{}", format(t));
        }
    }

    #[test]
    fn parse_is_lenient_where_java_is_and_strict_on_shape() {
        let canonical = parse("Sun Nov 1 05:04:03 UTC 2026");
        assert_eq!(parse("Sun Nov 01 05:04:03 UTC 2026"), canonical);
        assert_eq!(
            parse("Mon Nov 1 05:04:03 UTC 2026"),
            canonical,
            "weekday is not checked by the parser"
        );
        assert_eq!(parse("Sun Nov 1 05:04:03 GMT 2026"), canonical);
        for bad in [
            "Dom Nov 1 05:04:03 UTC 2026",
            "Sun Noviembre 1 05:04:03 UTC 2026",
            "Sun Nov 1 05:04:03 PST 2026",
            "Sun Nov 1 05:04:03 +0000 2026",
            "Sun Nov  1 05:04:03 UTC 2026",
            "2026-11-01T05:04:03Z",
            "Sun Nov 31 05:04:03 UTC 2026",
            "Sun Nov 1 24:00:00 UTC 2026",
            "Sun Nov 1 05:04:03 UTC 26",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
