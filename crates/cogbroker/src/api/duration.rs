//! The one duration grammar of cogbroker: the configuration's `refresh_before = "5m"` and the
//! CLI's `--min-ttl 90s` both read it.
//!
//! A duration is one or more `<number><unit>` parts, optionally separated by spaces: `90s`,
//! `5m`, `1h30m`, `1m 30s`, `500ms`, `2d`. Units: `ms`; `s`, `sec`, `secs`; `m`, `min`,
//! `mins`; `h`; `d`. Whether a bare number (`90`) is accepted, and as seconds, is the
//! caller's choice: the configuration refuses it (a unit must be explicit in a file), the
//! command line takes it as seconds.

use std::time::Duration;

/// What a bare number without a unit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareNumber {
    /// Refused: the unit must be explicit (the configuration file).
    Refused,
    /// Whole seconds (`--min-ttl 90`).
    Seconds,
}

/// Parses `text` (see the module documentation). Errors quote the text and say what to write.
pub fn parse(text: &str, bare: BareNumber) -> Result<Duration, String> {
    let invalid = || {
        let bare_hint = match bare {
            BareNumber::Refused => "write a number with a unit",
            BareNumber::Seconds => "write seconds or a number with a unit",
        };
        format!(
            "invalid duration {text:?}; {bare_hint}: ms, s, m, h, d (e.g. \"90s\", \"5m\", \"1h30m\")"
        )
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid());
    }
    if bare == BareNumber::Seconds && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" | "sec" | "secs" => Duration::from_secs(number),
            "m" | "min" | "mins" => {
                Duration::from_secs(number.checked_mul(60).ok_or_else(invalid)?)
            }
            "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(invalid)?),
            "d" => Duration::from_secs(number.checked_mul(86_400).ok_or_else(invalid)?),
            _ => return Err(invalid()),
        };
        total = total.checked_add(part).ok_or_else(invalid)?;
    }
    Ok(total)
}

/// A command-line duration (clap's `value_parser`): a bare number is seconds.
pub fn parse_cli(text: &str) -> Result<Duration, String> {
    parse(text, BareNumber::Seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_combinations() {
        let ok = [
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("2d", 172_800),
            (" 10 s ", 10),
            ("1m 30s", 90),
            ("2 min", 120),
            ("3secs", 3),
        ];
        for (text, seconds) in ok {
            for bare in [BareNumber::Refused, BareNumber::Seconds] {
                assert_eq!(
                    parse(text, bare),
                    Ok(Duration::from_secs(seconds)),
                    "{text}"
                );
            }
        }
        assert_eq!(
            parse("1500ms", BareNumber::Refused),
            Ok(Duration::from_millis(1500))
        );
    }

    #[test]
    fn bare_numbers_are_the_callers_choice() {
        assert_eq!(parse_cli("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_cli(" 0 "), Ok(Duration::ZERO));
        let refused = parse("5", BareNumber::Refused).unwrap_err();
        assert!(refused.contains("with a unit"), "{refused}");
    }

    #[test]
    fn malformed_durations_are_refused_with_the_text() {
        for bad in [
            "",
            "m",
            "5x",
            "5m3",
            "-1s",
            "-5s",
            "1.5m",
            "99999999999999999999d",
            "99999999999999999999",
            "soon",
        ] {
            for bare in [BareNumber::Refused, BareNumber::Seconds] {
                let error = parse(bad, bare).unwrap_err();
                assert!(error.starts_with("invalid duration"), "{bad}: {error}");
                assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
            }
        }
    }
}
