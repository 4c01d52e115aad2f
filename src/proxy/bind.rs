//! Checks, before Pingora binds, that every address can be bound, and says why not in words
//! an operator can act on: which process holds a port in use, and how to grant a
//! non-root process a port below 1024 (`setcap`) instead of "run as root".

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};

/// Why an address cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another socket holds the address.
    #[error("cannot listen on {addr} ({what}): address already in use{holder}")]
    InUse {
        /// Address.
        addr: SocketAddr,
        /// Which policy key it came from.
        what: String,
        /// ` (held by NAME, pid N)` when the OS tells.
        holder: String,
    },
    /// A privileged port without the capability.
    #[error(
        "cannot listen on {addr} ({what}): permission denied — ports below 1024 need the \
         CAP_NET_BIND_SERVICE capability; grant it to the binary once with \
         `sudo setcap cap_net_bind_service=+ep {exe}` (or use a port ≥ 1024)"
    )]
    Privileged {
        /// Address.
        addr: SocketAddr,
        /// Which policy key it came from.
        what: String,
        /// Path of this executable.
        exe: String,
    },
    /// Anything else the OS refused.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Other {
        /// Address.
        addr: SocketAddr,
        /// Which policy key it came from.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Tries to bind `addr` and releases it at once.
pub fn check(addr: SocketAddr, what: &str) -> Result<(), BindError> {
    match TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            let holder = listeners::get_process_by_port(addr.port(), listeners::Protocol::TCP)
                .map(|p| format!(" (held by {}, pid {})", p.name, p.pid))
                .unwrap_or_default();
            Err(BindError::InUse {
                addr,
                what: what.to_string(),
                holder,
            })
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied && addr.port() < 1024 => {
            let exe = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "gatehouse".into());
            Err(BindError::Privileged {
                addr,
                what: what.to_string(),
                exe,
            })
        }
        Err(source) => Err(BindError::Other {
            addr,
            what: what.to_string(),
            source,
        }),
    }
}
