//! Binding the listening socket, and an error that says which address failed and, when the OS
//! can tell, which process already holds it.

use std::fmt;
use std::io;

use tokio::net::TcpListener;

/// The server could not listen on the requested address.
#[derive(Debug)]
pub struct BindError {
    addr: String,
    source: io::Error,
    holder: Option<listeners::Process>,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot listen on {}: ", self.addr)?;
        match self.source.kind() {
            io::ErrorKind::AddrInUse => f.write_str("address already in use")?,
            io::ErrorKind::AddrNotAvailable => f.write_str("address not available")?,
            io::ErrorKind::PermissionDenied => f.write_str("permission denied")?,
            _ => write!(f, "{}", self.source)?,
        }
        if let Some(process) = &self.holder {
            write!(f, " (held by {}, pid {})", process.name, process.pid)?;
        }
        Ok(())
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Binds `host:port`, trying each address the host resolves to; the error names the first.
pub(crate) async fn bind(host: &str, port: u16) -> Result<TcpListener, BindError> {
    let addrs: Vec<_> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect(),
        Err(source) => return Err(error(host_port(host, port), source, port).await),
    };
    let mut first_error = None;
    for addr in &addrs {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(source) => {
                first_error.get_or_insert((addr.to_string(), source));
            }
        }
    }
    let (addr, source) = first_error.unwrap_or_else(|| {
        let none = io::Error::new(io::ErrorKind::NotFound, "host resolves to no address");
        (host_port(host, port), none)
    });
    Err(error(addr, source, port).await)
}

fn host_port(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

async fn error(addr: String, source: io::Error, port: u16) -> BindError {
    let holder = if source.kind() == io::ErrorKind::AddrInUse && port != 0 {
        let lookup = move || listeners::get_process_by_port(port, listeners::Protocol::TCP).ok();
        tokio::task::spawn_blocking(lookup).await.ok().flatten()
    } else {
        None
    };
    BindError {
        addr,
        source,
        holder,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn message_names_address_and_holder() {
        let err = BindError {
            addr: "127.0.0.1:9000".into(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
            holder: Some(listeners::Process {
                pid: 1234,
                name: "nginx".into(),
                path: "/usr/sbin/nginx".into(),
            }),
        };
        assert_eq!(
            err.to_string(),
            "cannot listen on 127.0.0.1:9000: address already in use (held by nginx, pid 1234)"
        );
    }
}
