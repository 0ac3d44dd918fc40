//! Peer identification: the uid behind an accepted connection (`SO_PEERCRED`, the TCP table).

use std::fs::File;
use std::io;
use std::net::SocketAddr;

use super::proc_net::{canonical, parse_proc_addr};
use super::{Peer, Transport};

impl Peer {
    /// The peer of an accepted Unix connection, from `SO_PEERCRED`.
    pub fn of_unix(stream: &tokio::net::UnixStream) -> Self {
        match stream.peer_cred() {
            Ok(cred) => Self {
                transport: Transport::Unix,
                uid: Some(cred.uid()),
                pid: cred.pid(),
            },
            Err(error) => {
                tracing::debug!(%error, "cannot read SO_PEERCRED; the connection is closed");
                Self {
                    transport: Transport::Unix,
                    uid: None,
                    pid: None,
                }
            }
        }
    }

    /// The peer of an accepted TCP connection; its uid comes from the kernel's socket table
    /// (see [`tcp_peer_uid`]).
    pub async fn of_tcp(local: SocketAddr, remote: SocketAddr) -> Self {
        let lookup = tokio::task::spawn_blocking(move || tcp_peer_uid(local, remote)).await;
        let uid = match lookup {
            Ok(Ok(uid)) => uid,
            Ok(Err(error)) => {
                tracing::debug!(%error, "cannot read the kernel's TCP socket table; the caller's uid is unknown");
                None
            }
            Err(error) => {
                tracing::debug!(%error, "the TCP uid lookup failed");
                None
            }
        };
        Self {
            transport: Transport::Tcp { local, remote },
            uid,
            pid: None,
        }
    }
}

/// Looks up TCP peers' uids for the accept loop: one worker reads the kernel's socket table on
/// a blocking thread for every lookup waiting at that moment, so a burst of connections costs a
/// few table reads, not one each, and never more than one blocking thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TcpUidResolver {
    requests: tokio::sync::mpsc::Sender<UidRequest>,
}

type UidRequest = (
    SocketAddr,
    SocketAddr,
    tokio::sync::oneshot::Sender<Option<u32>>,
);

impl TcpUidResolver {
    /// Starts the worker (on the current runtime); it ends when every clone is dropped.
    pub fn start(queue: usize) -> Self {
        let (requests, mut incoming) = tokio::sync::mpsc::channel::<UidRequest>(queue.max(1));
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = incoming.try_recv() {
                    batch.push(more);
                }
                let wanted: Vec<(SocketAddr, SocketAddr)> = batch
                    .iter()
                    .map(|(local, remote, _)| (*local, *remote))
                    .collect();
                let found = tokio::task::spawn_blocking(move || tcp_peer_uids(&wanted)).await;
                let uids = match found {
                    Ok(Ok(uids)) => uids,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "cannot read the kernel's TCP socket table; the callers' uids are unknown");
                        Vec::new()
                    }
                    Err(error) => {
                        tracing::debug!(%error, "the TCP uid lookup failed");
                        Vec::new()
                    }
                };
                for (index, (_, _, reply)) in batch.into_iter().enumerate() {
                    let _ = reply.send(uids.get(index).copied().flatten());
                }
            }
        });
        Self { requests }
    }

    /// The peer of an accepted TCP connection; `uid` is `None` when the table does not show it
    /// or cannot be read (which the accept loop treats as unverified: fail closed).
    pub async fn peer(&self, local: SocketAddr, remote: SocketAddr) -> Peer {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let uid = match self.requests.send((local, remote, reply)).await {
            Ok(()) => answer.await.ok().flatten(),
            Err(_) => None,
        };
        Peer {
            transport: Transport::Tcp { local, remote },
            uid,
            pid: None,
        }
    }
}

/// The uids of the client ends of several loopback connections (`(local, remote)` as the
/// server sees them), from one read of `/proc/net/tcp` and `/proc/net/tcp6` (see
/// [`tcp_peer_uid`]); `None` for those not found. Linux only (all `None` elsewhere).
pub fn tcp_peer_uids(connections: &[(SocketAddr, SocketAddr)]) -> io::Result<Vec<Option<u32>>> {
    let mut uids = vec![None; connections.len()];
    if !cfg!(target_os = "linux") || connections.is_empty() {
        return Ok(uids);
    }
    let mut wanted = std::collections::HashMap::new();
    for (index, (local, remote)) in connections.iter().enumerate() {
        // The client's entry: its local address is our remote one, and the other way round.
        wanted.insert((canonical(*remote), canonical(*local)), index);
    }
    let mut text = String::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match File::open(table) {
            Ok(mut file) => {
                text.clear();
                io::Read::read_to_string(&mut file, &mut text)?;
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        }
        for (client, server, uid) in established_entries(&text) {
            if let Some(&index) = wanted.get(&(client, server)) {
                uids[index] = Some(uid);
            }
        }
    }
    Ok(uids)
}

/// `(local, remote, uid)` of every entry of a socket table that is a full socket (not a
/// listener, nor a SYN_RECV or TIME_WAIT minisocket, whose uid column is 0).
fn established_entries(table: &str) -> impl Iterator<Item = (SocketAddr, SocketAddr, u32)> + '_ {
    const SYN_RECV: u8 = 0x03;
    const TIME_WAIT: u8 = 0x06;
    const LISTEN: u8 = 0x0A;
    table.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let remote = fields.next()?;
        let state = u8::from_str_radix(fields.next()?, 16).ok()?;
        if matches!(state, SYN_RECV | TIME_WAIT | LISTEN) {
            return None;
        }
        let uid = fields.nth(3)?.parse().ok()?;
        Some((parse_proc_addr(local)?, parse_proc_addr(remote)?, uid))
    })
}

/// The uid owning the client end of a loopback TCP connection whose server end is
/// `local` ← `remote`, from `/proc/net/tcp` and `/proc/net/tcp6` (Linux; `Ok(None)` elsewhere).
///
/// Both ends of a loopback connection live in the same network namespace, so the client's entry
/// (local address = our `remote`, remote address = our `local`) is in the same tables we can
/// read. The uid column is the uid that created the client socket. Entries in TIME_WAIT or
/// SYN_RECV are minisockets whose uid column is 0 and are skipped, as are listeners.
pub fn tcp_peer_uid(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<u32>> {
    if !cfg!(target_os = "linux") {
        return Ok(None);
    }
    let tables: [&str; 2] = if canonical(remote).is_ipv4() {
        ["/proc/net/tcp", "/proc/net/tcp6"]
    } else {
        ["/proc/net/tcp6", "/proc/net/tcp"]
    };
    for table in tables {
        let file = match File::open(table) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        // Read line by line and stop at the match: the kernel renders the table as it is read,
        // and with many sockets (TIME_WAIT after a load test) it is long.
        let lines = io::BufRead::lines(io::BufReader::new(file)).map_while(Result::ok);
        if let Some(uid) = uid_in_lines(lines, remote, local) {
            return Ok(Some(uid));
        }
    }
    Ok(None)
}

/// Finds the uid of the socket whose local address is `client` and remote address is `server`
/// in the text of `/proc/net/tcp` or `/proc/net/tcp6`.
#[cfg(test)]
pub(super) fn uid_in_table(table: &str, client: SocketAddr, server: SocketAddr) -> Option<u32> {
    uid_in_lines(table.lines(), client, server)
}

/// The uid column of the matching entry, from the lines of the table (header line included).
fn uid_in_lines<L: AsRef<str>>(
    lines: impl Iterator<Item = L>,
    client: SocketAddr,
    server: SocketAddr,
) -> Option<u32> {
    const SYN_RECV: u8 = 0x03;
    const TIME_WAIT: u8 = 0x06;
    const LISTEN: u8 = 0x0A;
    let (client, server) = (canonical(client), canonical(server));
    lines.skip(1).find_map(|line| {
        let line = line.as_ref();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, rem, state, uid) = (
            fields.get(1)?,
            fields.get(2)?,
            fields.get(3)?,
            fields.get(7)?,
        );
        let state = u8::from_str_radix(state, 16).ok()?;
        if matches!(state, SYN_RECV | TIME_WAIT | LISTEN) {
            return None;
        }
        if parse_proc_addr(local)? != client || parse_proc_addr(rem)? != server {
            return None;
        }
        uid.parse().ok()
    })
}
