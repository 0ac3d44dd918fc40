//! The baseline server of `make bench`: an axum hello-world on loopback TCP and a Unix socket,
//! with tokio's default multi-thread runtime, as a plain axum service would be written.
//!
//! `bench-hello TCP_ADDR UNIX_PATH` (either may be `-` to skip it).

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(tcp), Some(unix)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bench-hello TCP_ADDR|- UNIX_PATH|-");
    };
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    let mut tasks = Vec::new();
    if tcp != "-" {
        let listener = tokio::net::TcpListener::bind(&tcp)
            .await
            .with_context(|| format!("binding {tcp}"))?;
        tasks.push(tokio::spawn(
            axum::serve(listener, app.clone()).into_future(),
        ));
    }
    if unix != "-" {
        let listener =
            tokio::net::UnixListener::bind(&unix).with_context(|| format!("binding {unix}"))?;
        tasks.push(tokio::spawn(axum::serve(listener, app).into_future()));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
