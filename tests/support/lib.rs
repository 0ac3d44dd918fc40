//! Shared support for the end-to-end tests: where the workspace binaries are, a free loopback
//! port, and a seeded `cognito-emulator` on `127.0.0.1:0`.
//!
//! Modules:
//! - [`daemon`]: the real `cogbroker` binary in a private directory, ready on `READY=1`.

pub mod daemon;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cognito_emulator::{Emulator, RunningEmulator, Seed};

/// The path of a binary of this workspace, built next to the running test executable
/// (`target/debug/<name>`).
///
/// Where `program` is on `PATH` (the first match, as a shell would find it); an error naming it
/// when it is not there, never a skipped test.
pub fn on_path(program: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{program} is not on PATH"))
}

/// Cargo builds a package's own binaries before its integration tests, but not other packages'
/// binaries: `make test` runs `cargo build --workspace --bins` first. A missing binary is an error
/// that says so, never a skipped test.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let test_exe = std::env::current_exe().context("locate the running test executable")?;
    // The test executable lives in target/<profile>/deps/; the binaries in target/<profile>/.
    let deps_dir = test_exe
        .parent()
        .context("the test executable has no parent directory")?;
    let profile_dir = if deps_dir.file_name().is_some_and(|dir| dir == "deps") {
        deps_dir
            .parent()
            .context("target/<profile>/deps has no parent directory")?
    } else {
        deps_dir
    };
    let binary = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!(
            "binary `{name}` not found at {}: build it first with `cargo build --workspace --bins` \
             (`make test` does)",
            binary.display()
        );
    }
    Ok(binary)
}

/// The workspace root (the directory holding the virtual `Cargo.toml`).
pub fn workspace_root() -> &'static Path {
    // This crate lives in <root>/tests, so the parent of its manifest directory is the root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ always has a parent directory: the workspace root")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Only for programs that cannot bind port 0 and report the port they got; prefer binding
/// `127.0.0.1:0` and asking the listener, which cannot race with another process.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    let port = listener
        .local_addr()
        .context("read the address of a listener on 127.0.0.1:0")?
        .port();
    Ok(port)
}

/// The seed file behind `make demo` and the README's emulator command.
pub fn demo_seed_path() -> PathBuf {
    workspace_root().join("crates/cognito-emulator/examples/demo-seed.toml")
}

/// Starts an in-process emulator seeded from TOML text, on a fresh port of 127.0.0.1.
pub async fn start_emulator(seed_toml: &str) -> anyhow::Result<RunningEmulator> {
    let seed = Seed::from_toml(seed_toml).context("parse the emulator seed")?;
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    Emulator::start(seed, listen)
        .await
        .context("start the emulator on 127.0.0.1:0")
}

/// Starts an in-process emulator seeded from `crates/cognito-emulator/examples/demo-seed.toml`.
pub async fn start_demo_emulator() -> anyhow::Result<RunningEmulator> {
    let path = demo_seed_path();
    let seed_toml = std::fs::read_to_string(&path)
        .with_context(|| format!("read the demo seed {}", path.display()))?;
    start_emulator(&seed_toml).await
}
