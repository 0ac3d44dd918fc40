//! The load generator: a small hyper HTTP/1.1 client over loopback TCP or a Unix socket, the
//! same code for the product and for its baselines.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Where a server listens.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Target {
    /// The Host header this transport needs (the daemon checks it on TCP).
    pub(crate) fn host(&self) -> String {
        match self {
            Self::Tcp(addr) => addr.to_string(),
            Self::Unix(_) => "localhost".to_owned(),
        }
    }

    /// The argument form `bench-oneshot` takes.
    pub(crate) fn oneshot_arg(&self) -> String {
        match self {
            Self::Tcp(addr) => format!("tcp:{addr}"),
            Self::Unix(path) => format!("unix:{}", path.display()),
        }
    }
}

/// One kept-alive connection.
#[derive(Debug)]
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    pub(crate) async fn open(target: &Target) -> anyhow::Result<Self> {
        let sender = match target {
            Target::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("connecting to {addr}"))?;
                stream.set_nodelay(true)?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("connecting to {}", path.display()))?;
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(Self {
            sender,
            host: target.host(),
        })
    }

    /// Sends one request and reads the whole answer.
    pub(crate) async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        json: Option<&str>,
    ) -> anyhow::Result<(http::StatusCode, Bytes)> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.host)
            .header("x-cogbroker-request", "1");
        if json.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Bytes::from(json.unwrap_or_default().to_owned()));
        self.sender.ready().await?;
        let response = self.sender.send_request(builder.body(body)?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// A GET that must answer 200.
    pub(crate) async fn get_ok(&mut self, path: &str) -> anyhow::Result<Bytes> {
        let (status, body) = self.send(http::Method::GET, path, None).await?;
        if status != http::StatusCode::OK {
            bail!(
                "GET {path}: {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            );
        }
        Ok(body)
    }
}

/// One request on a new connection.
pub(crate) async fn once(
    target: &Target,
    method: http::Method,
    path: &str,
    json: Option<&str>,
) -> anyhow::Result<(http::StatusCode, Bytes)> {
    Conn::open(target).await?.send(method, path, json).await
}

/// What one throughput run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Throughput {
    pub(crate) per_second: f64,
    pub(crate) requests: u64,
}

/// Requests per second of `conns` kept-alive connections sending GET `path` back to back for
/// `duration`. Any answer but 200 is an error.
pub(crate) async fn throughput(
    target: &Target,
    path: &str,
    conns: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let done = Arc::new(AtomicU64::new(0));
    let mut opened = Vec::with_capacity(conns);
    for _ in 0..conns {
        opened.push(Conn::open(target).await?);
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(conns);
    for mut conn in opened {
        let done = Arc::clone(&done);
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                conn.get_ok(&path).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let requests = done.load(Ordering::Relaxed);
    Ok(Throughput {
        per_second: requests as f64 / elapsed,
        requests,
    })
}

/// Exactly `total` GETs spread over `conns` kept-alive connections.
pub(crate) async fn fixed_count(
    target: &Target,
    path: &str,
    conns: usize,
    total: u64,
) -> anyhow::Result<()> {
    let left = Arc::new(AtomicU64::new(total));
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut conn = Conn::open(target).await?;
        let left = Arc::clone(&left);
        let path = path.to_owned();
        tasks.push(tokio::spawn(async move {
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                conn.get_ok(&path).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Latencies (µs) of `n` sequential GETs on each of two kept-alive connections, after `n / 10`
/// warm-up each: `a` = (target, path) and `b` take turns request by request, so a change in the
/// machine's load meets both alike.
pub(crate) async fn sequential_pair(
    a: (&Target, &str),
    b: (&Target, &str),
    n: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let mut conns = [Conn::open(a.0).await?, Conn::open(b.0).await?];
    let paths = [a.1, b.1];
    for _ in 0..n / 10 {
        for (conn, path) in conns.iter_mut().zip(paths) {
            conn.get_ok(path).await?;
        }
    }
    let mut samples = [Vec::with_capacity(n), Vec::with_capacity(n)];
    for _ in 0..n {
        for ((conn, path), samples) in conns.iter_mut().zip(paths).zip(&mut samples) {
            let start = Instant::now();
            conn.get_ok(path).await?;
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    let [a, b] = samples;
    Ok((a, b))
}

/// The `q` quantile (0..=1) of `samples` (sorted in place).
pub(crate) fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    if samples.is_empty() {
        return f64::NAN;
    }
    let index = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let mut samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&mut samples, 0.5), 51.0);
        assert_eq!(quantile(&mut samples, 0.99), 99.0);
        assert_eq!(quantile(&mut samples, 0.0), 1.0);
        assert!(quantile(&mut [], 0.5).is_nan());
    }

    #[test]
    fn host_header_names_the_tcp_port() {
        let tcp = Target::Tcp("127.0.0.1:7467".parse().unwrap());
        assert_eq!(tcp.host(), "127.0.0.1:7467");
        assert_eq!(Target::Unix("/s".into()).host(), "localhost");
        assert_eq!(tcp.oneshot_arg(), "tcp:127.0.0.1:7467");
    }
}
