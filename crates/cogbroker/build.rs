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
//! Only release builds for Linux, and only when the linker takes the option: LLD does (Rust's
//! own links x86_64-unknown-linux-gnu by default since 1.90), GNU ld does not. That is probed by
//! linking an empty program with it, with the same compiler, target and linker. Otherwise, or
//! with `COGBROKER_SYMBOL_ORDER=0`, the build is the same without it.

use std::path::PathBuf;
use std::process::{Command, Stdio};

const OPTIONS: [&str; 2] = ["--symbol-ordering-file", "--no-warn-symbol-ordering"];

fn main() {
    let manifest = PathBuf::from(var("CARGO_MANIFEST_DIR"));
    let order = manifest.join("symbol-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=COGBROKER_SYMBOL_ORDER");
    if var("COGBROKER_SYMBOL_ORDER") == "0"
        || var("PROFILE") != "release"
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || !order.is_file()
    {
        return;
    }
    let args = [
        format!("-Wl,{}={}", OPTIONS[0], order.display()),
        format!("-Wl,{}", OPTIONS[1]),
    ];
    if linker_takes(&args) {
        for arg in args {
            println!("cargo:rustc-link-arg-bin=cogbroker={arg}");
        }
    } else {
        println!(
            "cargo:warning=the linker does not take {}: cogbroker is linked in its default order",
            OPTIONS[0]
        );
    }
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Links an empty program with `args`, as this build would link the binary.
fn linker_takes(args: &[String]) -> bool {
    let out = PathBuf::from(var("OUT_DIR"));
    let source = out.join("probe.rs");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let mut probe = Command::new(rustc);
    probe
        .arg("--target")
        .arg(var("TARGET"))
        .arg("--crate-type=bin")
        .arg("-o")
        .arg(out.join("probe"))
        .arg(&source);
    let rustc_linker = var("RUSTC_LINKER");
    if !rustc_linker.is_empty() {
        probe.arg(format!("-Clinker={rustc_linker}"));
    }
    // The user's flags (a linker flavour, -fuse-ld=...) as cargo passes them to rustc.
    for flag in var("CARGO_ENCODED_RUSTFLAGS")
        .split('\x1f')
        .filter(|f| !f.is_empty())
    {
        probe.arg(flag);
    }
    for arg in args {
        probe.arg(format!("-Clink-arg={arg}"));
    }
    let linked = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    linked && out.join("probe").is_file()
}
