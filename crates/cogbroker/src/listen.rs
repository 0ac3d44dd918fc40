//! Binding the daemon's listeners (a Unix socket in a private directory, loopback TCP, or sockets
//! handed over by systemd) and finding out which user is on the other end of each connection.
//!
//! The checks here are the transport half of the security model (design.md §7); the HTTP half
//! (Host, Origin, custom header, API key) lives in `server.rs` and uses the [`Peer`] recorded here.
//!
//! Rooms: `bind` (the sockets and their directory), `peer` (who is on the other end of an
//! accepted connection), `owner` (the client's check that the daemon end is ours), `proc_net`
//! (addresses as the kernel's socket tables print them).

mod bind;
mod owner;
mod peer;
mod proc_net;

use std::net::SocketAddr;

use self::bind::UnixSocket;
pub use self::bind::{bind, bind_addresses, prepare_private_dir};
pub use self::owner::{server_owners_in_table, tcp_server_owners};
pub use self::peer::{TcpUidResolver, tcp_peer_uid, tcp_peer_uids};
pub(crate) use self::proc_net::{canonical, parse_proc_addr};

/// The sockets the daemon serves on: bound and checked, not yet accepting.
///
/// Dropping it closes the sockets and removes the socket file this process created (never one
/// inherited from systemd, never one that has been replaced behind our back).
#[derive(Debug)]
pub struct Listeners {
    tcp: Option<std::net::TcpListener>,
    tcp_addr: Option<SocketAddr>,
    unix: Option<UnixSocket>,
    /// Set when the TCP port was taken and only the Unix socket is served.
    tcp_unavailable: Option<String>,
}

/// Who is on the other end of one accepted connection. The accept loop inserts it into every
/// request on that connection as an extension; the server's checks refuse requests without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// How the connection arrived.
    pub transport: Transport,
    /// The peer's uid: `SO_PEERCRED` on the Unix socket, the kernel's socket table for TCP.
    /// `None` when it could not be determined (non-Linux TCP, a vanished table entry).
    pub uid: Option<u32>,
    /// The peer's pid, when the transport tells it (Unix socket only); for logs.
    pub pid: Option<i32>,
}

/// The transport of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Loopback TCP; `local` is our end (its port is the one `Host` must name).
    Tcp {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// The Unix socket.
    Unix,
}

/// What the uid policy says about a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerVerdict {
    /// The peer runs as our uid.
    Ours,
    /// The peer's uid could not be determined; only the API key can admit it.
    Unverified,
    /// The peer runs as another uid (root included, unless we are root): refused.
    Foreign(u32),
}

/// Our effective uid.
pub fn our_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The uid policy: a peer is ours only with our uid. Root (uid 0) is refused unless we are root
/// ourselves: a root process can read our memory anyway, but a tool run under `sudo` by mistake
/// should not silently receive the user's tokens.
pub fn judge_peer(peer_uid: Option<u32>, our_uid: u32) -> PeerVerdict {
    match peer_uid {
        None => PeerVerdict::Unverified,
        Some(uid) if uid == our_uid => PeerVerdict::Ours,
        Some(uid) => PeerVerdict::Foreign(uid),
    }
}

#[cfg(test)]
mod tests;
