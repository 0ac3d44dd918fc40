//! Whether the binary measured has its hot functions laid out first (crates/cogbroker/build.rs).

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use crate::{Row, Verdict};

/// The list the release build hands the linker, as the bench's own checkout has it.
const ORDER_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../cogbroker/symbol-order.txt");

/// How many of the listed functions the binary defines, and where the first of them sits
/// against the start of its `.text`: a binary linked with the list starts `.text` with them. A
/// stale list (new toolchain or dependencies: other hashes in the names) shows as few found.
pub(super) fn symbol_order_row(cogbroker: &Path) -> Row {
    let figure = "hot functions laid out first (crates/cogbroker/symbol-order.txt)";
    let measured = (|| {
        let listed = std::fs::read_to_string(ORDER_FILE).with_context(|| ORDER_FILE.to_owned())?;
        let listed: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
        let output = Command::new("nm")
            .args(["--defined-only", "--numeric-sort"])
            .arg(cogbroker)
            .output()
            .context("nm (binutils)")?;
        anyhow::ensure!(output.status.success(), "nm {} failed", cogbroker.display());
        let text = String::from_utf8_lossy(&output.stdout);
        let mut functions = Vec::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace().skip(1);
            if let (Some("t" | "T" | "w" | "W"), Some(name)) = (parts.next(), parts.next()) {
                functions.push(name);
            }
        }
        let defined: HashSet<&str> = functions.iter().copied().collect();
        let found = listed.iter().filter(|name| defined.contains(*name)).count();
        // Laid out as listed: the first functions of .text are the list's first ones.
        let wanted: HashSet<&str> = listed.iter().copied().take(50).collect();
        let leading = functions
            .iter()
            .take(50)
            .filter(|f| wanted.contains(*f))
            .count();
        anyhow::Ok((found, listed.len(), leading))
    })();
    match measured {
        Ok((found, listed, leading)) => Row::new(
            figure,
            format!(
                "{found} of {listed} listed functions in the binary; {leading} of its first 50 from the list's first 50"
            ),
            "",
            "",
            "reported (scripts/symbol-order.sh regenerates the list)",
            Verdict::Info,
        ),
        Err(error) => Row::error(figure, "reported", &error),
    }
}
