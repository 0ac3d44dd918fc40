//! `cognito-emulator --seed FILE --listen ADDR`: a local Cognito for demos and non-Rust tests.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use cognito_emulator::{Emulator, Seed};

/// A faithful, verifying local Amazon Cognito user-pool emulator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The TOML seed with pools, app clients and users.
    #[arg(long, value_name = "FILE")]
    seed: PathBuf,
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9229")]
    listen: SocketAddr,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let seed = Seed::from_file(&args.seed)?;
    // Signal handlers go in before the endpoint is announced: whoever reads that line may send
    // SIGTERM at once, and an unhandled SIGTERM would kill us with a failure status.
    let shutdown = shutdown_signal()?;
    let emulator = Emulator::start(seed, args.listen).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", emulator.endpoint())
            .context("cannot write to stdout")?;
        stdout.flush().context("cannot flush stdout")?;
    }
    shutdown.await?;
    tracing::info!("shutting down");
    emulator.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix. The handlers are registered when this is called, not when the
/// returned future is first polled.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot listen for SIGTERM")?;
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .context("cannot listen for Ctrl-C")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            Ok(())
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            tokio::signal::ctrl_c()
                .await
                .context("cannot listen for Ctrl-C")
        })
    }
}
