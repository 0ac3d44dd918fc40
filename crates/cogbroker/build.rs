//! Release builds lay out the functions of the hot paths first in `.text`.
//!
//! `symbol-order.txt` lists the functions that `cogbroker token`, the helper modes and the
//! daemon's start-up, login, refresh and cache hits run (`scripts/symbol-order.sh` traces them
//! with callgrind). Handed to the linker as `--symbol-ordering-file`, they end up next to each
//! other: a helper process faults in a few pages of code instead of pages spread over the whole
//! binary, and the daemon keeps fewer pages of text resident (docs/benchmarks.md, "Symbol
//! order"). A listed name the binary lacks (a new toolchain or dependency changes the hashes in
//! the names) is skipped silently; the rest of the binary keeps the linker's order.
//!
//! Only where the linker is known to be LLD, which takes the option: a release build for
//! x86_64-unknown-linux-gnu with Rust 1.90 or later and no linker chosen by the user. Elsewhere,
//! or with `COGBROKER_SYMBOL_ORDER=0`, the build is the same without it.

use std::path::Path;
use std::process::Command;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = Path::new(&manifest).join("symbol-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=COGBROKER_SYMBOL_ORDER");
    if linker_takes_an_order() && order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=cogbroker=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=cogbroker=-Wl,--no-warn-symbol-ordering");
    }
}

fn linker_takes_an_order() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("COGBROKER_SYMBOL_ORDER") == "0"
        || var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        // A linker or linker flavour of the user's own (RUSTC_LINKER is cargo's resolved
        // `target.<triple>.linker`): it may be GNU ld, which has no such option.
        || !var("RUSTC_LINKER").is_empty()
        || var("CARGO_ENCODED_RUSTFLAGS").contains("link")
    {
        return false;
    }
    // Rust links x86_64-unknown-linux-gnu with its own LLD by default since 1.90.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let Ok(output) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let version = String::from_utf8_lossy(&output.stdout);
    let mut numbers = version
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
