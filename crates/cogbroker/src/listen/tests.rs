//! Tests of binding (permissions, stale and live sockets, refusals, socket activation) and of
//! peer identification (`SO_PEERCRED`, the kernel's TCP table).

use std::fs;
use std::io::{self, BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::bind::activation_fd_count;
use super::peer::uid_in_table;
use super::*;
use crate::config::{DaemonConfig, Listen, ProcessEnv, SocketSetting, StoreKind};
use crate::test_child;

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("path exists").mode() & 0o777
}

fn error_text(result: anyhow::Result<Listeners>) -> String {
    format!("{:#}", result.expect_err("binding must fail"))
}

#[cfg(target_endian = "little")]
#[test]
fn finds_the_client_entry_in_proc_net_tcp() {
    let table = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1D2B 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 11 1 0 100 0 0 10 0
   1: 0100007F:1D2B 0100007F:B880 01 00000000:00000000 00:00000000 00000000  1000        0 12 1 0 20 4 30 10 -1
   2: 0100007F:B880 0100007F:1D2B 01 00000000:00000000 00:00000000 00000000  1001        0 13 1 0 20 4 30 10 -1
   3: 0100007F:B88C 0100007F:1D2B 06 00000000:00000000 03:0000065A 00000000     0        0 0 3 0
";
    let server: SocketAddr = "127.0.0.1:7467".parse().unwrap();
    let client: SocketAddr = "127.0.0.1:47232".parse().unwrap();
    assert_eq!(
        uid_in_table(table, client, server),
        Some(1001),
        "the client's entry, not ours"
    );
    let timed_out: SocketAddr = "127.0.0.1:47244".parse().unwrap();
    assert_eq!(
        uid_in_table(table, timed_out, server),
        None,
        "TIME_WAIT minisockets carry uid 0"
    );
    let unknown: SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert_eq!(uid_in_table(table, unknown, server), None);
    assert_eq!(uid_in_table("", client, server), None);
    assert_eq!(uid_in_table("header\n  0: garbage", client, server), None);
}

#[cfg(target_endian = "little")]
#[test]
fn parses_ipv6_and_mapped_addresses() {
    let table = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:D431 00000000000000000000000001000000:1D2B 01 00000000:00000000 00:00000000 00000000  1002        0 14 1 0 20 4 30 10 -1
   1: 0000000000000000FFFF00000100007F:D432 0000000000000000FFFF00000100007F:1D2B 01 00000000:00000000 00:00000000 00000000  1003        0 15 1 0 20 4 30 10 -1
";
    let server6: SocketAddr = "[::1]:7467".parse().unwrap();
    let client6: SocketAddr = "[::1]:54321".parse().unwrap();
    assert_eq!(uid_in_table(table, client6, server6), Some(1002));
    let server4: SocketAddr = "127.0.0.1:7467".parse().unwrap();
    let client4: SocketAddr = "127.0.0.1:54322".parse().unwrap();
    assert_eq!(
        uid_in_table(table, client4, server4),
        Some(1003),
        "v4-mapped entries match plain IPv4"
    );
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:54322".parse().unwrap();
    assert_eq!(uid_in_table(table, mapped, server4), Some(1003));
}

#[test]
fn uid_policy() {
    assert_eq!(judge_peer(Some(1000), 1000), PeerVerdict::Ours);
    assert_eq!(judge_peer(Some(1001), 1000), PeerVerdict::Foreign(1001));
    assert_eq!(
        judge_peer(Some(0), 1000),
        PeerVerdict::Foreign(0),
        "root is refused unless we are root"
    );
    assert_eq!(judge_peer(Some(0), 0), PeerVerdict::Ours);
    assert_eq!(judge_peer(None, 1000), PeerVerdict::Unverified);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn tcp_lookup_finds_our_uid_for_a_real_loopback_connection() {
    for addr in ["127.0.0.1:0", "[::1]:0"] {
        let addr: SocketAddr = addr.parse().unwrap();
        let Ok(listener) = tokio::net::TcpListener::bind(addr).await else {
            assert!(addr.is_ipv6(), "IPv4 loopback must be available");
            continue; // no IPv6 loopback on this machine
        };
        let server = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(server).await.unwrap();
        let (stream, remote) = listener.accept().await.unwrap();
        assert_eq!(stream.local_addr().unwrap(), server);
        let peer = Peer::of_tcp(server, remote).await;
        assert_eq!(peer.uid, Some(our_uid()), "{addr}");
        assert_eq!(
            peer.transport,
            Transport::Tcp {
                local: server,
                remote
            }
        );
        // The batching resolver the accept loop uses gives the same answer, and `None` for a
        // connection that does not exist (fail closed).
        let resolver = TcpUidResolver::start(4);
        assert_eq!(resolver.peer(server, remote).await, peer);
        let made_up: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(resolver.peer(server, made_up).await.uid, None);
    }
}

/// The client verifies the daemon: the server end of our connection (or, before the kernel
/// shows it, the listener) names the listening socket's owner.
#[tokio::test]
async fn the_server_end_names_the_listeners_owner() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let client = tokio::net::TcpStream::connect(server).await.unwrap();
    let owners = tcp_server_owners(server, client.local_addr().unwrap()).unwrap();
    assert_eq!(owners, vec![our_uid()]);
}

#[cfg(target_endian = "little")]
#[test]
fn server_owners_come_from_the_connection_or_every_covering_listener() {
    let table = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1D2B 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 11 1 0 100 0 0 10 0
   1: 00000000:1D2B 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 11 1 0 100 0 0 10 0
   2: 0100007F:1D2B 0100007F:B880 01 00000000:00000000 00:00000000 00000000  1002        0 12 1 0 20 4 30 10 -1
";
    let server: SocketAddr = "127.0.0.1:7467".parse().unwrap();
    let client: SocketAddr = "127.0.0.1:47232".parse().unwrap();
    assert_eq!(server_owners_in_table(table, server, client), vec![1002]);
    let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert_eq!(
        server_owners_in_table(table, server, other),
        vec![1000, 1001],
        "the exact and the wildcard listener both count"
    );
    assert!(server_owners_in_table("", server, other).is_empty());
}

#[tokio::test]
async fn unix_peer_credentials_name_us() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run").join("cogbroker.sock");
    let listeners = bind_addresses(None, Some(&path)).unwrap();
    let (_, unix) = listeners.into_parts();
    let (listener, _guard) = unix.unwrap().into_tokio().unwrap();
    let _client = tokio::net::UnixStream::connect(&path).await.unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let peer = Peer::of_unix(&stream);
    assert_eq!(peer.transport, Transport::Unix);
    assert_eq!(peer.uid, Some(our_uid()));
    assert_eq!(peer.pid, Some(std::process::id() as i32));
}

#[test]
fn runtime_dir_is_0700_and_socket_0600() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("cogbroker");
    let path = runtime.join("cogbroker.sock");
    let listeners = bind_addresses(None, Some(&path)).unwrap();
    assert_eq!(mode(&runtime), 0o700);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(fs::metadata(&path).unwrap().uid(), our_uid());
    assert_eq!(fs::metadata(&runtime).unwrap().uid(), our_uid());
    assert_eq!(listeners.unix_path(), Some(path.as_path()));
    assert!(!listeners.unix_inherited());
    drop(listeners);
    assert!(
        !path.exists(),
        "our socket file is removed when the listeners are dropped"
    );
}

/// Child half of `permissions_hold_under_umask_000`.
#[test]
fn umask_child() {
    let Some(dir) = test_child::dir() else {
        return;
    };
    let path = dir.join("run").join("cogbroker.sock");
    let listeners = bind_addresses(None, Some(&path)).unwrap();
    assert_eq!(mode(&dir.join("run")), 0o700);
    assert_eq!(mode(&path), 0o600);
    drop(listeners);
    fs::write(dir.join("child-done"), b"ok").unwrap();
}

#[test]
fn permissions_hold_under_umask_000() {
    // The umask is process-wide: run the bind in a child started with umask 000 rather than
    // loosening it under the other tests of this process.
    let dir = tempfile::tempdir().unwrap();
    let exe = test_child::this_test_binary();
    let status = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000 && exec "$0" --exact listen::tests::umask_child --test-threads=1"#)
        .arg(exe)
        .env(test_child::CHILD, "1")
        .env(test_child::DIR, dir.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(dir.path().join("child-done").exists(), "the child test ran");
}

#[test]
fn existing_loose_or_foreign_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("loose");
    fs::create_dir(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o755)).unwrap();
    let text = error_text(bind_addresses(None, Some(&runtime.join("s.sock"))));
    assert!(text.contains("mode 755"), "{text}");

    let target = dir.path().join("target");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.path().join("link");
    symlink(&target, &link).unwrap();
    let text = error_text(bind_addresses(None, Some(&link.join("s.sock"))));
    assert!(text.contains("symbolic link"), "{text}");

    // Another owner: only root can hand a directory to someone else (CI runs as root); without
    // root this fails loudly rather than pass untested.
    let foreign = dir.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::set_permissions(&foreign, fs::Permissions::from_mode(0o700)).unwrap();
    let other = rustix::fs::Uid::from_raw(our_uid().wrapping_add(4242));
    rustix::fs::chown(&foreign, Some(other), None)
        .expect("this test needs root (CI runs as root) to give a directory to another uid");
    let text = error_text(bind_addresses(None, Some(&foreign.join("s.sock"))));
    assert!(text.contains("owned by uid"), "{text}");
    // ... and a directory above the socket's owned by another uid is refused too.
    let text = error_text(bind_addresses(
        None,
        Some(&foreign.join("run").join("s.sock")),
    ));
    assert!(text.contains("above it is owned by uid"), "{text}");
}

#[test]
fn socket_path_that_is_a_symlink_or_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("run");
    prepare_private_dir(&runtime).unwrap();
    let elsewhere = dir.path().join("elsewhere.sock");
    let _other = StdUnixListener::bind(&elsewhere).unwrap();
    let path = runtime.join("cogbroker.sock");
    symlink(&elsewhere, &path).unwrap();
    let text = error_text(bind_addresses(None, Some(&path)));
    assert!(text.contains("symbolic link"), "{text}");

    fs::remove_file(&path).unwrap();
    fs::write(&path, b"not a socket").unwrap();
    let text = error_text(bind_addresses(None, Some(&path)));
    assert!(text.contains("not a socket"), "{text}");
    assert_eq!(
        fs::read(&path).unwrap(),
        b"not a socket",
        "the file is left alone"
    );
}

#[test]
fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("run");
    prepare_private_dir(&runtime).unwrap();
    let path = runtime.join("cogbroker.sock");
    drop(StdUnixListener::bind(&path).unwrap()); // a dead instance leaves its file behind
    let refused = StdUnixStream::connect(&path).expect_err("nobody answers on a stale socket");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    let listeners = bind_addresses(None, Some(&path)).unwrap();
    StdUnixStream::connect(&path).expect("the new socket answers");
    assert_eq!(mode(&path), 0o600);
    drop(listeners);
}

#[test]
fn second_instance_is_refused_and_the_first_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run").join("cogbroker.sock");
    let first = bind_addresses(None, Some(&path)).unwrap();
    let text = error_text(bind_addresses(None, Some(&path)));
    assert!(text.contains("already running"), "{text}");
    StdUnixStream::connect(&path).expect("the first instance's socket still answers");
    drop(first);

    // A live socket without our lock (an older instance, or a systemd .socket unit): the probe
    // connection is answered, so this is also "already running", and the socket is kept.
    let live = StdUnixListener::bind(&path).unwrap();
    let text = error_text(bind_addresses(None, Some(&path)));
    assert!(text.contains("already running"), "{text}");
    assert!(path.exists());
    drop(live);
}

#[test]
fn a_second_instance_on_the_same_port_is_told_it_is_already_running() {
    // The socket is bound before the port, so the second instance hits our lock (and says
    // what to do) rather than a bare "address in use" from TCP; the first keeps its socket.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run").join("cogbroker.sock");
    let first = bind_addresses(Some("127.0.0.1:0".parse().unwrap()), Some(&path)).unwrap();
    let text = error_text(bind_addresses(first.tcp_addr(), Some(&path)));
    assert!(text.contains("already running"), "{text}");
    assert!(text.contains("stop it first"), "{text}");
    StdUnixStream::connect(&path).expect("the first instance's socket still answers");
    drop(first);
}

#[test]
fn dropping_leaves_a_replaced_socket_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run").join("cogbroker.sock");
    let listeners = bind_addresses(None, Some(&path)).unwrap();
    fs::remove_file(&path).unwrap();
    let _replacement = StdUnixListener::bind(&path).unwrap();
    drop(listeners);
    assert!(path.exists(), "a socket that is not the one we bound stays");
}

#[test]
fn tcp_must_be_loopback() {
    let text = error_text(bind_addresses(Some("0.0.0.0:0".parse().unwrap()), None));
    assert!(text.contains("only loopback"), "{text}");
    let listeners = bind_addresses(Some("127.0.0.1:0".parse().unwrap()), None).unwrap();
    let addr = listeners.tcp_addr().unwrap();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    assert_eq!(listeners.tcp_port(), Some(addr.port()));
    let text = error_text(bind_addresses(Some(addr), None));
    assert!(text.contains("already running"), "{text}");
}

fn daemon_config(listen: Listen, socket: SocketSetting, dir: &Path) -> DaemonConfig {
    DaemonConfig {
        listen,
        socket,
        store: StoreKind::Memory,
        state_dir: dir.join("state"),
        api_key_file: None,
        log: "info".to_owned(),
        autostart: false,
    }
}

#[test]
fn activation_needs_our_pid() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = std::collections::BTreeMap::new();
    env.insert("LISTEN_FDS".to_owned(), "1".to_owned());
    env.insert("LISTEN_PID".to_owned(), "1".to_owned()); // systemd's pid, not ours
    assert_eq!(activation_fd_count(&env).unwrap(), None);
    env.insert("LISTEN_PID".to_owned(), std::process::id().to_string());
    assert_eq!(activation_fd_count(&env).unwrap(), Some(1));
    env.insert("LISTEN_FDS".to_owned(), "lots".to_owned());
    assert!(activation_fd_count(&env).is_err());

    // Without activation, `bind` binds what the configuration says.
    let path = dir.path().join("run").join("cogbroker.sock");
    let config = daemon_config(
        Listen::Tcp("127.0.0.1:0".parse().unwrap()),
        SocketSetting::Path(path.clone()),
        dir.path(),
    );
    let listeners = bind(&config, &std::collections::BTreeMap::new()).unwrap();
    assert!(listeners.tcp_port().is_some());
    assert_eq!(listeners.unix_path(), Some(path.as_path()));
    drop(listeners);
    let off = daemon_config(Listen::Off, SocketSetting::Off, dir.path());
    let text = error_text(bind(&off, &std::collections::BTreeMap::new()));
    assert!(text.contains("nothing to listen on"), "{text}");
}

/// Child half of `adopts_the_socket_systemd_passes_and_never_unlinks_it`, run under
/// `systemd-socket-activate`.
#[tokio::test]
async fn activation_child() {
    let Some(dir) = test_child::dir() else {
        return;
    };
    let port: u16 = std::env::var("COGBROKER_TEST_PORT")
        .unwrap()
        .parse()
        .unwrap();
    let configured = dir.join("run").join("configured.sock");
    let config = daemon_config(
        Listen::Tcp("127.0.0.1:0".parse().unwrap()),
        SocketSetting::Path(configured.clone()),
        &dir,
    );
    let listeners = bind(&config, &ProcessEnv).unwrap();
    assert!(listeners.unix_inherited());
    assert_eq!(
        listeners.tcp_port(),
        Some(port),
        "the inherited TCP socket replaces the configured one"
    );
    let path = listeners.unix_path().unwrap().to_path_buf();
    assert!(
        !configured.exists(),
        "the inherited socket replaces the configured one"
    );
    let (tcp, unix) = listeners.into_parts();
    let (listener, guard) = unix.unwrap().into_tokio().unwrap();
    let (mut stream, _) = listener.accept().await.unwrap();
    let peer = Peer::of_unix(&stream);
    let line = format!("ok {}\n", peer.uid.unwrap());
    tokio::io::AsyncWriteExt::write_all(&mut stream, line.as_bytes())
        .await
        .unwrap();
    drop(stream);
    let tcp = tokio::net::TcpListener::from_std(tcp.unwrap()).unwrap();
    let (mut stream, remote) = tcp.accept().await.unwrap();
    let peer = Peer::of_tcp(stream.local_addr().unwrap(), remote).await;
    let line = format!("ok {}\n", peer.uid.unwrap());
    tokio::io::AsyncWriteExt::write_all(&mut stream, line.as_bytes())
        .await
        .unwrap();
    drop(stream);
    drop(listener);
    drop(guard);
    assert!(path.exists(), "an inherited socket is never unlinked");
    fs::write(dir.join("child-done"), b"ok").unwrap();
}

#[test]
#[allow(
    clippy::print_stderr,
    reason = "say that socket activation was not exercised, and why"
)]
fn adopts_the_sockets_systemd_passes_and_never_unlinks_them() {
    let Ok(tool) = which("systemd-socket-activate") else {
        eprintln!("systemd-socket-activate is not installed; socket activation not exercised");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("run");
    prepare_private_dir(&runtime).unwrap();
    let path = runtime.join("activated.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(tool)
        .arg("--listen")
        .arg(&path)
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--setenv=COGBROKER_TEST_PORT={port}"))
        .arg(format!("--setenv={}=1", test_child::CHILD))
        .arg(format!(
            "--setenv={}={}",
            test_child::DIR,
            dir.path().display()
        ))
        .arg(test_child::this_test_binary())
        .args([
            "--exact",
            "listen::tests::activation_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // systemd-socket-activate says "Listening on ..." once the socket exists.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut listening = 0;
    while listening < 2 {
        let mut line = String::new();
        assert_ne!(
            stderr.read_line(&mut line).unwrap(),
            0,
            "systemd-socket-activate exited early"
        );
        listening += usize::from(line.contains("Listening on"));
    }
    let mut stream = StdUnixStream::connect(&path).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, format!("ok {}\n", our_uid()));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert_eq!(
        answer,
        format!("ok {}\n", our_uid()),
        "the TCP peer's uid through /proc/net/tcp"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(dir.path().join("child-done").exists(), "the child test ran");
    assert!(path.exists());
}

fn which(program: &str) -> Result<PathBuf, ()> {
    let paths = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or(())
}
