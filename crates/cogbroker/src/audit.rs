//! Who took my token (issue 8): every token the server hands out is recorded with its
//! consumer, never with the token. The consumer is the peer process: its uid and pid from
//! `SO_PEERCRED` on the Unix socket, or, on loopback TCP, from the kernel's socket table (the
//! client socket's inode) and the process holding that inode among its descriptors; its
//! executable from `/proc/<pid>/exe`, and the processes that started it (a credential helper's
//! consumer: the `git`, `docker` or `kubectl` that ran `cogbroker`, often through `sh -c`).
//! The record lives in a bounded in-memory ring: the oldest
//! entries go first, nothing is written to disk.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use crate::api::{AuditEntry, AuditProcess, TokenKind};
use crate::broker::state::rfc3339;
use crate::listen::{Peer, Transport, canonical, parse_proc_addr};

/// How many hand-outs the ring keeps.
pub const AUDIT_CAPACITY: usize = 1024;

/// The process on the other end of a connection, as far as it could be found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Its uid.
    pub uid: Option<u32>,
    /// Its pid.
    pub pid: Option<i32>,
    /// Its executable (`/proc/<pid>/exe`).
    pub exe: Option<PathBuf>,
    /// The process that started it, that process's parent, and so on ([`ANCESTORS`] at most,
    /// not init): pid and executable (`PPid` in `/proc/<pid>/status`, then `/proc/<pid>/exe`).
    pub parents: Vec<(i32, Option<PathBuf>)>,
}

/// How many generations above the consumer are recorded: enough for git → sh → helper.
pub const ANCESTORS: usize = 3;

/// The consumer of one connection, found at most once: the process on the other end of a
/// connection does not change while it stays open.
#[derive(Debug, Clone, Default)]
pub struct ConsumerCache(std::sync::Arc<tokio::sync::OnceCell<std::sync::Arc<Consumer>>>);

impl ConsumerCache {
    /// The consumer behind `peer`, looked up on the first call. On the Unix socket that is a
    /// `readlink` of procfs (the pid came with `SO_PEERCRED`) and a status read and `readlink`
    /// per parent (three at most), done in place; on TCP it reads the socket tables and walks
    /// `/proc`, off the executor.
    pub async fn resolve(&self, peer: &Peer) -> std::sync::Arc<Consumer> {
        self.0
            .get_or_init(|| async {
                std::sync::Arc::new(match peer.transport {
                    Transport::Unix => consumer_of(peer),
                    Transport::Tcp { .. } => {
                        let peer = peer.clone();
                        tokio::task::spawn_blocking(move || consumer_of(&peer))
                            .await
                            .unwrap_or_default()
                    }
                })
            })
            .await
            .clone()
    }
}

/// Finds the consumer behind `peer`. Blocking (reads `/proc`): on TCP call it off the executor.
pub fn consumer_of(peer: &Peer) -> Consumer {
    let (uid, pid) = match peer.transport {
        Transport::Unix => (peer.uid, peer.pid),
        Transport::Tcp { local, remote } => match tcp_client_inode(local, remote) {
            Ok(Some((uid, inode))) => (Some(uid), process_with_socket(inode, uid)),
            _ => (peer.uid, None),
        },
    };
    let exe_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let parents = std::iter::successors(pid.and_then(parent_of), |&above| parent_of(above))
        .take_while(|&above| above > 1)
        .take(ANCESTORS)
        .map(|above| (above, exe_of(above)))
        .collect();
    Consumer {
        uid,
        pid,
        exe: pid.and_then(exe_of),
        parents,
    }
}

/// The `PPid` of `pid`, from `/proc/<pid>/status`.
fn parent_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    ppid_in_status(&status)
}

fn ppid_in_status(status: &str) -> Option<i32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))
        .and_then(|value| value.trim().parse().ok())
}

/// The uid and inode of the client end (local = our `remote`, remote = our `local`) of a
/// loopback TCP connection, from `/proc/net/tcp{,6}`.
fn tcp_client_inode(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<(u32, u64)>> {
    let (client, server) = (canonical(remote), canonical(local));
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let file = match File::open(table) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        let lines = io::BufReader::new(file).lines().map_while(Result::ok);
        if let Some(found) = inode_in_lines(lines, client, server) {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The uid and inode columns of the entry whose local address is `client` and remote
/// address is `server` (header line included in `lines`).
fn inode_in_lines<L: AsRef<str>>(
    lines: impl Iterator<Item = L>,
    client: SocketAddr,
    server: SocketAddr,
) -> Option<(u32, u64)> {
    lines.skip(1).find_map(|line| {
        let fields: Vec<&str> = line.as_ref().split_whitespace().collect();
        if parse_proc_addr(fields.get(1)?)? != client || parse_proc_addr(fields.get(2)?)? != server
        {
            return None;
        }
        let inode: u64 = fields.get(9)?.parse().ok()?;
        (inode != 0).then_some((fields.get(7)?.parse().ok()?, inode))
    })
}

/// The process holding the socket `inode` among its descriptors. Only processes of the
/// socket's `uid` are looked into, newest first (a consumer is most often a process just
/// started: a CLI, curl), so the walk is short on a busy machine; a socket shared across a
/// fork names the newest holder.
fn process_with_socket(inode: u64, uid: u32) -> Option<i32> {
    use std::os::unix::fs::MetadataExt as _;
    let wanted = format!("socket:[{inode}]");
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid = entry.file_name().to_str()?.parse().ok()?;
            (entry.metadata().ok()?.uid() == uid).then_some(pid)
        })
        .collect();
    pids.sort_unstable_by(|a, b| b.cmp(a));
    pids.into_iter().find(|pid| {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.filter_map(Result::ok).any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str())
        })
    })
}

/// The ring of recent hand-outs. Recording is on the token path, so an entry is kept compact
/// (the consumer shared with its connection, no text formatted) and turned into the wire
/// shape only when someone reads the ring.
#[derive(Debug, Default)]
pub struct AuditRing {
    entries: Mutex<VecDeque<Handout>>,
}

#[derive(Debug)]
struct Handout {
    at: SystemTime,
    profile: Box<str>,
    kind: TokenKind,
    unix: bool,
    consumer: std::sync::Arc<Consumer>,
}

impl AuditRing {
    /// Records one hand-out of `profile`'s `kind` token to `consumer` over `transport`.
    pub fn record(
        &self,
        at: SystemTime,
        profile: &str,
        kind: TokenKind,
        transport: &Transport,
        consumer: std::sync::Arc<Consumer>,
    ) {
        let entry = Handout {
            at,
            profile: profile.into(),
            kind,
            unix: matches!(transport, Transport::Unix),
            consumer,
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= AUDIT_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The recorded hand-outs, oldest first, of `profile` (or of all).
    pub fn entries(&self, profile: Option<&str>) -> Vec<AuditEntry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|entry| profile.is_none_or(|name| &*entry.profile == name))
            .map(|entry| AuditEntry {
                at: rfc3339(entry.at),
                profile: entry.profile.to_string(),
                kind: entry.kind,
                transport: if entry.unix { "unix" } else { "tcp" }.to_owned(),
                uid: entry.consumer.uid,
                pid: entry.consumer.pid,
                exe: entry
                    .consumer
                    .exe
                    .as_ref()
                    .map(|exe| exe.display().to_string()),
                parents: entry
                    .consumer
                    .parents
                    .iter()
                    .map(|(pid, exe)| AuditProcess {
                        pid: *pid,
                        exe: exe.as_ref().map(|exe| exe.display().to_string()),
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn the_ring_is_bounded_and_filters_by_profile() {
        let ring = AuditRing::default();
        for n in 0..AUDIT_CAPACITY + 10 {
            let profile = if n % 2 == 0 { "a" } else { "b" };
            ring.record(
                SystemTime::UNIX_EPOCH,
                profile,
                TokenKind::Access,
                &Transport::Unix,
                std::sync::Arc::new(Consumer {
                    uid: Some(1),
                    pid: Some(i32::try_from(n).unwrap()),
                    ..Consumer::default()
                }),
            );
        }
        let all = ring.entries(None);
        assert_eq!(all.len(), AUDIT_CAPACITY);
        assert_eq!(all[0].pid, Some(10), "the oldest went first");
        assert!(ring.entries(Some("a")).iter().all(|e| e.profile == "a"));
        assert_eq!(ring.entries(Some("a")).len(), AUDIT_CAPACITY / 2);
    }

    /// Our own loopback connection: the table names this very process and executable.
    #[test]
    fn a_tcp_peer_is_found_through_the_socket_table() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, remote) = listener.accept().unwrap();
        let peer = Peer {
            transport: Transport::Tcp {
                local: server.local_addr().unwrap(),
                remote,
            },
            uid: None,
            pid: None,
        };
        let consumer = consumer_of(&peer);
        assert_eq!(
            consumer.pid,
            Some(i32::try_from(std::process::id()).unwrap())
        );
        assert_eq!(consumer.uid, Some(rustix::process::getuid().as_raw()));
        assert_eq!(consumer.exe, std::env::current_exe().ok());
        let parent = i32::try_from(std::os::unix::process::parent_id()).unwrap();
        if parent > 1 {
            assert_eq!(
                consumer.parents.first(),
                Some(&(
                    parent,
                    std::fs::read_link(format!("/proc/{parent}/exe")).ok()
                ))
            );
        }
        assert!(consumer.parents.len() <= ANCESTORS);
        assert!(consumer.parents.iter().all(|&(pid, _)| pid > 1));
        drop(client);
    }

    #[test]
    fn the_parent_is_read_from_the_status_file() {
        let status = "Name:\tgit-remote-http\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\nPPid:\t4200\nTracerPid:\t0\n";
        assert_eq!(ppid_in_status(status), Some(4200));
        assert_eq!(ppid_in_status("Name:\tx\n"), None);
        assert_eq!(ppid_in_status("PPid:\tnot-a-number\n"), None);
    }
}
