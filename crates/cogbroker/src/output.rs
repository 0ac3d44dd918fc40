//! What commands print on standard output (the requested output only; diagnostics go to
//! stderr), shared by the CLI and `cogbroker demo`.

use std::io::Write as _;

use anyhow::Context as _;

/// Writes `text` to stdout and flushes it (a closed pipe is an error, reported once).
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing to stdout failed")
}

/// `90` → `1m30s`, `3600` → `1h00m`, `90000` → `1d01h`.
pub fn human_duration(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60),
        _ => format!("{}d{:02}h", seconds / 86_400, (seconds % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(42), "42s");
        assert_eq!(human_duration(90), "1m30s");
        assert_eq!(human_duration(3600), "1h00m");
        assert_eq!(human_duration(90_000), "1d01h");
    }
}
