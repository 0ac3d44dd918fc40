//! `login P --browser | --no-browser` (design.md §14): the daemon starts a browser login (PKCE
//! S256, a random `state`) and answers with the authorize URL; we open it (`$BROWSER`, else
//! `xdg-open` / `open`, never waiting for the browser) or print it alone on one line on stderr,
//! listen on the profile's loopback `redirect_uri` only while the login is pending, and, with
//! `--no-browser`, also accept the redirect URL pasted as one line on stdin. Whichever comes
//! first goes to the daemon, which checks `state` and redeems the code. The browser tab gets a
//! short "you can close this tab" page.

use std::convert::Infallible;
use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use secrecy::SecretString;
use tokio::sync::{mpsc, oneshot};
use url::Url;

use super::{Daemon, LoginArgs};
use crate::api::challenge::Authenticated;
use crate::api::{AnswerBody, LoginOutcome, LoginRequest, ProfileStatus};
use crate::client::ClientError;

/// A redirect the listener received, and where to send the page for the tab.
struct Arrival {
    url: String,
    page: oneshot::Sender<Page>,
}

/// The page the browser tab gets.
struct Page {
    status: StatusCode,
    title: &'static str,
    text: String,
}

/// Where a redirect came from.
enum Source {
    Listener(oneshot::Sender<Page>),
    Pasted,
}

/// The browser login of `args.profile`: the profile's status before it, and the login's
/// success (the caller reports it).
pub(super) async fn run(
    daemon: &Daemon,
    args: &LoginArgs,
) -> anyhow::Result<(ProfileStatus, Authenticated)> {
    let profile = args.profile.as_str();
    let status = daemon.client.status(profile).await?;
    let reply = daemon
        .client
        .login(profile, &LoginRequest { password: None })
        .await
        .map_err(|error| error.with_credentials_hint(profile))?;
    let step = match reply {
        LoginOutcome::Browser(step) => step,
        LoginOutcome::Authenticated(done) => return Ok((status, done)),
        LoginOutcome::Challenge(step) => {
            let _ = daemon.client.cancel(&step.login_id).await;
            bail!(
                "profile {profile} does not sign in through a browser; run `cogbroker login {profile}` without --browser"
            );
        }
    };
    let result = converse(daemon, args, &step.authorize_url, &step.login_id).await;
    if result.is_err() {
        // Leave nothing pending (best effort: the daemon also expires it).
        let _ = daemon.client.cancel(&step.login_id).await;
    }
    match result? {
        Some(done) => Ok((status, done)),
        None => bail!("interrupted"),
    }
}

/// Opens (or prints) the URL and waits for a redirect, from the listener or stdin.
async fn converse(
    daemon: &Daemon,
    args: &LoginArgs,
    authorize_url: &str,
    login_id: &str,
) -> anyhow::Result<Option<crate::api::challenge::Authenticated>> {
    let authorize =
        Url::parse(authorize_url).context("the daemon sent a malformed authorize URL")?;
    let redirect_uri = authorize
        .query_pairs()
        .find(|(name, _)| name == "redirect_uri")
        .map(|(_, value)| value.into_owned())
        .context("the authorize URL has no redirect_uri")?;
    let redirect = Url::parse(&redirect_uri).context("the redirect_uri is not a URL")?;
    let (arrivals, mut arrived) = mpsc::channel::<Arrival>(4);
    let listener = match listen(&redirect, arrivals).await {
        Ok(listener) => Some(listener),
        Err(error) if args.no_browser => {
            eprintln_cb(&format!(
                "cannot listen on {redirect_uri} ({error:#}); paste the redirect URL instead"
            ));
            None
        }
        Err(error) => return Err(error),
    };
    let (pasted_tx, mut pasted) = mpsc::channel::<String>(1);
    if args.no_browser {
        // The URL alone on its line, for a person to copy or a script to read.
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{authorize_url}");
        drop(stderr);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                if pasted_tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
    } else {
        drop(pasted_tx);
        open_browser(authorize_url)?;
        eprintln_cb("opened the sign-in page in your browser; waiting for it to come back");
    }
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the Ctrl-C handler failed")?;
    let outcome = loop {
        let (url, source) = tokio::select! {
            Some(arrival) = arrived.recv() => (arrival.url, Source::Listener(arrival.page)),
            Some(line) = pasted.recv() => (line.trim().to_owned(), Source::Pasted),
            _ = interrupt.recv() => break None,
            else => bail!("nothing can complete the login: no listener and no standard input"),
        };
        let answer = daemon
            .client
            .answer(login_id, &AnswerBody::redirect(SecretString::from(url)))
            .await;
        match (answer, source) {
            (Ok(LoginOutcome::Authenticated(done)), source) => {
                if let Source::Listener(page) = source {
                    let _ = page.send(Page {
                        status: StatusCode::OK,
                        title: "Signed in",
                        text: "cogbroker has your sign-in. You can close this tab.".to_owned(),
                    });
                }
                break Some(done);
            }
            (Ok(_), _) => bail!("the daemon answered the redirect with another step"),
            (Err(error), Source::Listener(page)) if is_bad_redirect(&error) => {
                // Not this login's redirect (a stale tab, or someone else's page): refuse it and
                // keep waiting for the real one.
                let _ = page.send(Page {
                    status: StatusCode::BAD_REQUEST,
                    title: "Not this sign-in",
                    text: "This redirect does not belong to the pending cogbroker login and was refused.".to_owned(),
                });
                eprintln_cb(&format!("refused a redirect: {error}"));
            }
            (Err(error), Source::Listener(page)) => {
                let _ = page.send(Page {
                    status: StatusCode::BAD_REQUEST,
                    title: "Sign-in failed",
                    text: "The sign-in did not complete; see the terminal.".to_owned(),
                });
                return Err(error.into());
            }
            (Err(error), Source::Pasted) => return Err(error.into()),
        }
    };
    // The listener is served only while the login is pending.
    drop(listener);
    Ok(outcome)
}

fn is_bad_redirect(error: &ClientError) -> bool {
    matches!(error, ClientError::Api { code, .. } if code == "bad_input")
}

fn eprintln_cb(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "cogbroker: {text}");
}

/// A running callback listener; dropping it stops it.
struct Listener {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on the redirect URI's loopback address and port; a GET of its path is an arrival.
async fn listen(redirect: &Url, arrivals: mpsc::Sender<Arrival>) -> anyhow::Result<Listener> {
    let port = redirect.port().context("the redirect_uri has no port")?;
    let address: SocketAddr = match redirect.host() {
        Some(url::Host::Ipv6(ip)) => SocketAddr::from((ip, port)),
        Some(url::Host::Ipv4(ip)) => SocketAddr::from((ip, port)),
        // localhost: browsers try 127.0.0.1 first (and Chromium only that when [::1] refuses).
        _ => SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for the redirect"))?;
    let path = redirect.path().to_owned();
    let base = redirect.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let arrivals = arrivals.clone();
            let path = path.clone();
            let base = base.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let arrivals = arrivals.clone();
                        let path = path.clone();
                        let base = base.clone();
                        async move {
                            Ok::<_, Infallible>(callback(request, &path, &base, &arrivals).await)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Listener { task })
}

async fn callback(
    request: Request<hyper::body::Incoming>,
    path: &str,
    base: &Url,
    arrivals: &mpsc::Sender<Arrival>,
) -> Response<Full<Bytes>> {
    if request.method() != hyper::Method::GET || request.uri().path() != path {
        return page(Page {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            text: "Nothing here.".to_owned(),
        });
    }
    let mut url = base.clone();
    url.set_query(request.uri().query());
    let (reply, answer) = oneshot::channel();
    if arrivals
        .send(Arrival {
            url: url.to_string(),
            page: reply,
        })
        .await
        .is_err()
    {
        return page(Page {
            status: StatusCode::GONE,
            title: "Too late",
            text: "The cogbroker login is no longer waiting.".to_owned(),
        });
    }
    page(answer.await.unwrap_or(Page {
        status: StatusCode::GONE,
        title: "Too late",
        text: "The cogbroker login is no longer waiting.".to_owned(),
    }))
}

fn page(page: Page) -> Response<Full<Bytes>> {
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body style=\"font-family: sans-serif; margin: 3em\"><h1>{title}</h1><p>{text}</p></body></html>\n",
        title = page.title,
        text = page.text,
    );
    Response::builder()
        .status(page.status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// Opens `url` without waiting for the browser: each `$BROWSER` entry (colon-separated; `%s`
/// is replaced by the URL, else the URL is the last argument) in turn, else `xdg-open`, else
/// `open`.
fn open_browser(url: &str) -> anyhow::Result<()> {
    let mut candidates: Vec<Vec<String>> = Vec::new();
    if let Ok(browser) = std::env::var("BROWSER") {
        for entry in browser.split(':').filter(|entry| !entry.trim().is_empty()) {
            let mut words: Vec<String> = entry.split_whitespace().map(str::to_owned).collect();
            if words.iter().any(|word| word.contains("%s")) {
                for word in &mut words {
                    *word = word.replace("%s", url);
                }
            } else {
                words.push(url.to_owned());
            }
            candidates.push(words);
        }
    }
    candidates.push(vec!["xdg-open".to_owned(), url.to_owned()]);
    candidates.push(vec!["open".to_owned(), url.to_owned()]);
    for words in candidates {
        let Some((program, rest)) = words.split_first() else {
            continue;
        };
        let spawned = std::process::Command::new(program)
            .args(rest)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn();
        if let Ok(mut child) = spawned {
            // Not waited for; reaped in the background so it leaves no zombie.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(());
        }
    }
    bail!(
        "no browser could be started ($BROWSER, xdg-open, open); use `--no-browser` and open the URL yourself"
    )
}
