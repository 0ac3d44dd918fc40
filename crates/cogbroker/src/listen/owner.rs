//! The client's check that the daemon end of its loopback connection is owned by us.

use std::fs::File;
use std::io;
use std::net::SocketAddr;

use super::proc_net::{canonical, parse_proc_addr};

/// Who owns the daemon end of our loopback TCP connection from `client` to `server`, for the
/// CLI's check that the daemon is ours before it sends anything (Linux; `Ok(vec![])` elsewhere
/// or when the kernel's tables do not show it).
///
/// The server end of the connection (local address = `server`, remote = `client`) carries the
/// uid of the listener that accepted it, even before the daemon calls `accept`; if that entry is
/// not in the table yet, every listening socket that covers `server` (its exact address or a
/// wildcard on the port) is returned instead, so one foreign listener is enough to refuse.
pub fn tcp_server_owners(server: SocketAddr, client: SocketAddr) -> io::Result<Vec<u32>> {
    if !cfg!(target_os = "linux") {
        return Ok(Vec::new());
    }
    let mut text = String::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match File::open(table) {
            Ok(mut file) => {
                io::Read::read_to_string(&mut file, &mut text)?;
                text.push('\n');
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(server_owners_in_table(&text, server, client))
}

/// The owners [`tcp_server_owners`] looks for, in the text of the tables (headers included).
pub fn server_owners_in_table(table: &str, server: SocketAddr, client: SocketAddr) -> Vec<u32> {
    const SYN_RECV: u8 = 0x03;
    const TIME_WAIT: u8 = 0x06;
    const LISTEN: u8 = 0x0A;
    let (server, client) = (canonical(server), canonical(client));
    let mut listeners = Vec::new();
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state), Some(uid)) =
            (fields.get(1), fields.get(2), fields.get(3), fields.get(7))
        else {
            continue;
        };
        let (Some(state), Some(local), Some(uid)) = (
            u8::from_str_radix(state, 16).ok(),
            parse_proc_addr(local),
            uid.parse::<u32>().ok(),
        ) else {
            continue;
        };
        if state == LISTEN {
            let covers = local.port() == server.port()
                && (local.ip() == server.ip() || local.ip().is_unspecified());
            if covers {
                listeners.push(uid);
            }
        } else if !matches!(state, SYN_RECV | TIME_WAIT)
            && local == server
            && parse_proc_addr(remote) == Some(client)
        {
            return vec![uid];
        }
    }
    listeners
}
