//! A scripted HTTP server on 127.0.0.1 for the clients' tests: it records each request and
//! answers with the next scripted reply.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) headers: BTreeMap<String, String>,
    /// The body, and the same read as a form.
    pub(crate) body: Vec<u8>,
    pub(crate) form: BTreeMap<String, String>,
}

pub(crate) struct Server {
    pub(crate) url: Url,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
}

/// Serves the scripted `(status, body)` replies in order, one per connection, as JSON.
pub(crate) async fn server(script: Vec<(u16, String)>) -> Server {
    server_with_type(script, "application/json").await
}

/// The same, with another `Content-Type` on every reply.
pub(crate) async fn server_with_type(
    script: Vec<(u16, String)>,
    content_type: &'static str,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let task_seen = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buffer = Vec::new();
            let mut chunk = [0_u8; 4096];
            let head_end = loop {
                if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end;
                }
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "the client closed before the headers ended");
                buffer.extend_from_slice(&chunk[..read]);
            };
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
            let mut lines = head.lines();
            let path = lines.next().unwrap().split(' ').nth(1).unwrap().to_owned();
            let headers: BTreeMap<String, String> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                .collect();
            let length: usize = headers
                .get("content-length")
                .map_or(0, |value| value.parse().unwrap());
            let mut body = buffer[head_end + 4..].to_vec();
            while body.len() < length {
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "the client closed before the body ended");
                body.extend_from_slice(&chunk[..read]);
            }
            let form = url::form_urlencoded::parse(&body).into_owned().collect();

            task_seen.lock().unwrap().push(Seen {
                path,
                headers,
                body,
                form,
            });
            let (status, reply) = script
                .lock()
                .unwrap()
                .pop_front()
                .expect("a scripted reply");
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
            stream.write_all(response.as_bytes()).await.unwrap();
        }
    });
    Server { url, seen }
}
