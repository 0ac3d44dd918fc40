//! The baseline helper process of `make bench`: the least a compiled credential helper can do.
//! It connects, sends one HTTP/1.1 GET with the daemon's request header, prints the body and
//! exits (non-zero unless the answer is 200).
//!
//! `bench-oneshot unix:PATH|tcp:ADDR PATH_AND_QUERY`

use std::io::Write as _;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(target), Some(path)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bench-oneshot unix:PATH|tcp:ADDR PATH_AND_QUERY");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = runtime.block_on(async move {
        let (mut sender, host) = if let Some(socket) = target.strip_prefix("unix:") {
            let stream = tokio::net::UnixStream::connect(socket)
                .await
                .with_context(|| format!("connecting to {socket}"))?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            (sender, "localhost".to_owned())
        } else if let Some(addr) = target.strip_prefix("tcp:") {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            (sender, addr.to_owned())
        } else {
            anyhow::bail!("target: expected unix:PATH or tcp:ADDR");
        };
        let request = http::Request::get(path)
            .header(http::header::HOST, host)
            .header("x-cogbroker-request", "1")
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(status == http::StatusCode::OK, "answer: {status}");
        anyhow::Ok(body)
    })?;
    let mut out = std::io::stdout().lock();
    out.write_all(&body)?;
    out.write_all(b"\n")?;
    Ok(())
}
