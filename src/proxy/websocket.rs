//! Gatehouse relays admitted WebSockets itself instead of handing the upgrade to Pingora's
//! proxy loop, because a socket must be able to *lose its right to exist*: a reload whose
//! policy would refuse it, or the expiry of the token it was opened with
//! (`websocket.close_on_token_expiry`), closes it with a 1008 close frame to the client and
//! the upstream connection shut — even when no byte is moving. Pingora's relay is driven only
//! by traffic and offers no hook to end an idle tunnel.
//!
//! The handshake is forwarded as Pingora would (the same [`super::headers::rewrite`]); a non-101
//! answer is passed through as a plain response. Once upgraded, bytes are copied both ways
//! unchanged. Frames from the upstream are tracked only to know where one ends, so a close
//! frame is never injected inside another frame. The idle timeout (`websocket_idle`) applies
//! to traffic in either direction.
//!
//! Memory: an idle socket should cost little (nginx: ~18 KB). A plain-TCP tunnel therefore
//! gets its own handle on the client socket and runs as a task of its own ([`Pump`]) once the
//! 101 is sent, so Pingora's per-request state (session, head buffer, hook futures) is freed;
//! and neither side holds a read buffer while idle: a buffer is allocated only once a side
//! is readable, for that one read. TLS tunnels (whose decryption state is in the session)
//! relay inside the hook, through the session. Figures: docs/benchmarks.md.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::policy::{Reason, ResponseCors};
use crate::runtime::sockets::Registration;

/// Largest upstream handshake answer we read.
const MAX_HEAD: usize = 64 * 1024;
/// Read buffer for a non-upgraded answer passed through.
const BUF: usize = 4 * 1024;
/// Longest wait for the upstream to finish a frame before a close is sent anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How the tunnel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The upstream did not upgrade; its answer was passed through with this status.
    NotUpgraded(u16),
    /// Either side closed, or an I/O error.
    Closed,
    /// No traffic for the idle timeout.
    Idle,
    /// Closed by Gatehouse with 1008 and this reason.
    Policy(String),
}

/// Why the handshake could not reach the upstream.
#[derive(Debug)]
pub struct Failed(pub Reason, pub String);

/// Where one frame from the upstream ends.
#[derive(Debug, Default)]
struct Frames {
    header: Vec<u8>,
    payload_left: u64,
}

impl Frames {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = (self.payload_left.min(data.len() as u64)) as usize;
                self.payload_left -= n as u64;
                data = &data[n..];
                continue;
            }
            self.header.push(data[0]);
            data = &data[1..];
            if let Some(len) = self.header_complete() {
                self.payload_left = len;
                self.header.clear();
            }
        }
    }

    /// `Some(payload length)` once the header bytes read so far make a whole header.
    fn header_complete(&self) -> Option<u64> {
        let h = &self.header;
        if h.len() < 2 {
            return None;
        }
        let masked = h[1] & 0x80 != 0;
        let (ext, len) = match h[1] & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        let need = 2 + ext + if masked { 4 } else { 0 };
        if h.len() < need {
            return None;
        }
        Some(len.unwrap_or_else(|| {
            h[2..2 + ext]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        }))
    }

    fn at_boundary(&self) -> bool {
        self.header.is_empty() && self.payload_left == 0
    }
}

/// A close frame from the server: code 1008 (policy violation) and a short reason.
fn close_frame(reason: &str) -> Bytes {
    close_frame_code(1008, reason)
}

/// A close frame from the server with `code` and a reason of at most 120 bytes.
fn close_frame_code(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut f = Vec::with_capacity(4 + reason.len());
    f.push(0x88);
    f.push((2 + reason.len()) as u8);
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(reason);
    Bytes::from(f)
}

fn serialize(req: &RequestHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        req.uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers.iter() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Connects to the upstream and sends the handshake; answers with the response head and
/// whatever bytes followed it.
pub async fn handshake(
    addr: std::net::SocketAddr,
    connect_timeout: Duration,
    answer_timeout: Duration,
    req: &RequestHeader,
) -> Result<(TcpStream, ResponseHeader, Vec<u8>), Failed> {
    let mut up = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Failed(Reason::UpstreamUnavailable, format!("connect: {e}"))),
        Err(_) => return Err(Failed(Reason::UpstreamTimeout, "connect timed out".into())),
    };
    let _ = up.set_nodelay(true);
    let io = |e: std::io::Error| Failed(Reason::UpstreamUnavailable, e.to_string());
    up.write_all(&serialize(req)).await.map_err(io)?;
    let mut buf = Vec::with_capacity(1024);
    let read_head = async {
        loop {
            let mut chunk = [0u8; 1024];
            let n = up.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return Err(Failed(
                    Reason::UpstreamUnavailable,
                    "closed before answering the handshake".into(),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            match r.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = r.code.unwrap_or(502);
                    let mut resp = ResponseHeader::build(status, Some(r.headers.len()))
                        .map_err(|e| Failed(Reason::UpstreamUnavailable, e.to_string()))?;
                    for h in r.headers.iter() {
                        let _ = resp.append_header(h.name.to_string(), h.value);
                    }
                    return Ok((resp, len));
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
                _ => {
                    return Err(Failed(
                        Reason::UpstreamUnavailable,
                        "malformed handshake answer".into(),
                    ))
                }
            }
        }
    };
    let (resp, len) = match tokio::time::timeout(answer_timeout, read_head).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Failed(
                Reason::UpstreamTimeout,
                "no handshake answer".into(),
            ))
        }
    };
    let rest = buf.split_off(len);
    Ok((up, resp, rest))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What [`relay`] leaves to its caller.
pub enum Relayed {
    /// The answer was passed on and, for a TLS tunnel, relayed here until it ended.
    Ended(End),
    /// A plain-TCP tunnel: the 101 is sent and [`Pump::run`] relays it on a task of its own,
    /// so Pingora's per-request state (its session, head buffer and hook futures, ~33 KiB in
    /// a heap profile) is released now instead of living as long as the socket.
    Detached(Pump),
}

/// A tunnel that owns everything it needs: the client (a second handle on its socket), the
/// upstream, and the policy's hold on it.
pub struct Pump {
    client: TcpStream,
    up: TcpStream,
    rest: Vec<u8>,
    idle: Duration,
    close_at: Option<u64>,
    registration: Option<Registration>,
}

impl Pump {
    /// Relays until one side ends, the socket idles out, or Gatehouse closes it.
    pub async fn run(self) -> End {
        pump(
            Client::Direct(self.client),
            self.up,
            self.rest,
            self.idle,
            self.close_at,
            self.registration,
        )
        .await
    }
}

/// Passes the upstream's answer on and, for a 101, relays until one side ends, the socket
/// idles out, or Gatehouse closes it — or hands a plain-TCP tunnel back to be run detached.
#[allow(clippy::too_many_arguments)]
pub async fn relay(
    session: &mut Session,
    mut up: TcpStream,
    mut resp: ResponseHeader,
    cors: &ResponseCors,
    rest: Vec<u8>,
    request_id: &str,
    idle: Duration,
    close_at: Option<u64>,
    registration: Option<Registration>,
) -> Result<Relayed> {
    super::respond::finish_upstream_answer(&mut resp, request_id, cors)?;
    let status = resp.status.as_u16();
    if status != 101 {
        // Not upgraded: a plain answer, passed through until the upstream closes.
        resp.insert_header(http::header::CONNECTION, "close")?;
        session.set_keepalive(None);
        session.write_response_header(Box::new(resp), false).await?;
        if !rest.is_empty() {
            session
                .write_response_body(Some(Bytes::from(rest)), false)
                .await?;
        }
        let mut buf = vec![0u8; BUF];
        loop {
            match tokio::time::timeout(idle, up.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    session
                        .write_response_body(Some(Bytes::copy_from_slice(&buf[..n])), false)
                        .await?
                }
                _ => break,
            }
        }
        session.write_response_body(None, true).await?;
        return Ok(Relayed::Ended(End::NotUpgraded(status)));
    }

    session.write_response_header(Box::new(resp), false).await?;
    // The 101 head is flushed; from here on the client's bytes bypass Pingora's buffers.
    Ok(match Client::of(session) {
        Client::Direct(client) => Relayed::Detached(Pump {
            client,
            up,
            rest,
            idle,
            close_at,
            registration,
        }),
        client => Relayed::Ended(pump(client, up, rest, idle, close_at, registration).await),
    })
}

/// The upgraded tunnel's loop.
async fn pump(
    mut client: Client<'_>,
    mut up: TcpStream,
    rest: Vec<u8>,
    idle: Duration,
    close_at: Option<u64>,
    registration: Option<Registration>,
) -> End {
    let mut frames = Frames::default();
    if !rest.is_empty() {
        frames.feed(&rest);
        if client.write(Bytes::from(rest), idle).await.is_err() {
            client.finish().await;
            return End::Closed;
        }
    }
    let mut close_rx = registration.as_ref().map(|r| r.close.clone());
    let expiry = close_at.map(|at| {
        let left = Duration::from_secs(at.saturating_sub(now_secs()));
        tokio::time::Instant::now() + left
    });
    let mut closing: Option<(String, tokio::time::Instant)> = None;
    let end = loop {
        let idle_deadline = tokio::time::sleep(idle);
        let grace = async {
            match &closing {
                Some((_, until)) => tokio::time::sleep_until(*until).await,
                None => std::future::pending().await,
            }
        };
        let expired = async {
            match expiry {
                Some(at) if closing.is_none() => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        let told = async {
            match close_rx.as_mut() {
                Some(rx) if closing.is_none() => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    rx.borrow().clone()
                }
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            reason = told => {
                if let Some(reason) = reason {
                    closing = Some((reason, tokio::time::Instant::now() + CLOSE_GRACE));
                }
            }
            _ = expired => {
                closing = Some(("token expired".into(), tokio::time::Instant::now() + CLOSE_GRACE));
            }
            _ = grace => {
                // The upstream stalled mid-frame: close without a close frame.
                break End::Policy(closing.map(|c| c.0).unwrap_or_default());
            }
            _ = idle_deadline => {
                // Going away (1001), if no frame from the upstream is half sent.
                if frames.at_boundary() {
                    let _ = client.write(close_frame_code(1001, "idle timeout"), idle).await;
                }
                break End::Idle;
            }
            from_client = client.read() => match from_client {
                Some(b) if closing.is_none() => {
                    if up.write_all(&b).await.is_err() {
                        break End::Closed;
                    }
                }
                Some(_) => {}
                None => break End::Closed,
            },
            from_up = read_some(&up) => match from_up {
                Ok(Some(b)) => {
                    frames.feed(&b);
                    if client.write(b, idle).await.is_err() {
                        break End::Closed;
                    }
                }
                _ => break End::Closed,
            },
        }
        if let (Some((reason, _)), true) = (&closing, frames.at_boundary()) {
            let _ = client.write(close_frame(reason), idle).await;
            break End::Policy(reason.clone());
        }
    };
    let _ = up.shutdown().await;
    client.finish().await;
    end
}

/// Largest chunk read from either side at once.
const CHUNK: usize = 16 * 1024;

/// Waits until `s` is readable, then reads what is there into a buffer allocated for that
/// read only: an idle socket holds no read buffer. `None` at end of stream.
async fn read_some(s: &TcpStream) -> std::io::Result<Option<Bytes>> {
    loop {
        s.readable().await?;
        let mut buf = bytes::BytesMut::with_capacity(CHUNK);
        match s.try_read_buf(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(buf.freeze())),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The client's side of an upgraded tunnel.
enum Client<'s> {
    /// Plain TCP: a second handle on the client's socket, read only when it is readable. Read
    /// through Pingora's session instead, every idle socket would hold the session's 64 KiB
    /// body buffer for its whole life (the largest share of its memory in a heap profile).
    Direct(TcpStream),
    /// TLS (the session holds the decryption state), or when the handle cannot be had.
    Session(&'s mut Session),
}

impl<'s> Client<'s> {
    fn of(session: &'s mut Session) -> Self {
        let tls = session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .is_some();
        if !tls {
            if let Some(s) = second_handle(session) {
                return Client::Direct(s);
            }
        }
        Client::Session(session)
    }

    /// The client's next bytes; `None` when it closed or failed.
    async fn read(&mut self) -> Option<Bytes> {
        match self {
            Client::Direct(s) => read_some(s).await.ok().flatten(),
            Client::Session(session) => session.read_request_body().await.ok().flatten(),
        }
    }

    /// Sends bytes to the client; a client that takes none for `idle` is gone.
    async fn write(&mut self, b: Bytes, idle: Duration) -> std::io::Result<()> {
        let stalled = || std::io::Error::new(std::io::ErrorKind::TimedOut, "client stalled");
        match self {
            Client::Direct(s) => match tokio::time::timeout(idle, s.write_all(&b)).await {
                Ok(r) => r,
                Err(_) => Err(stalled()),
            },
            Client::Session(session) => session
                .write_response_body(Some(b), false)
                .await
                .map_err(|e| std::io::Error::other(e.to_string())),
        }
    }

    async fn finish(self) {
        match self {
            Client::Direct(mut s) => {
                let _ = s.shutdown().await;
            }
            Client::Session(session) => {
                let _ = session.write_response_body(None, true).await;
            }
        }
    }
}

/// A second handle (`dup(2)`) on the client's TCP socket, registered with the runtime, so the
/// upgraded tunnel reads it directly. Pingora's session keeps its own handle and closes it
/// when the request ends. Checked to be the client's socket by its peer address.
#[allow(unsafe_code)]
fn second_handle(session: &Session) -> Option<TcpStream> {
    use std::os::fd::BorrowedFd;
    let fd = session.stream()?.id();
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is the descriptor of the client stream the session owns; the session is
    // borrowed for this call, so the descriptor stays open while it is borrowed here, and it
    // is only duplicated (the duplicate is owned by the returned stream).
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed.try_clone_to_owned().ok()?;
    let std = std::net::TcpStream::from(owned);
    let expected = session.client_addr().and_then(|a| a.as_inet()).copied();
    if expected.is_none() || std.peer_addr().ok() != expected {
        return None;
    }
    std.set_nonblocking(true).ok()?;
    TcpStream::from_std(std).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_boundaries_are_tracked_across_reads() {
        let mut f = Frames::default();
        assert!(f.at_boundary());
        // A 5-byte text frame, split.
        f.feed(&[0x81]);
        assert!(!f.at_boundary());
        f.feed(&[0x05, b'h', b'e']);
        assert!(!f.at_boundary());
        f.feed(b"llo");
        assert!(f.at_boundary());
        // A 300-byte binary frame with a 16-bit length, then a ping in the same read.
        let mut data = vec![0x82, 126, 0x01, 0x2c];
        data.extend(std::iter::repeat_n(0u8, 300));
        data.extend([0x89, 0x00]);
        f.feed(&data[..100]);
        assert!(!f.at_boundary());
        f.feed(&data[100..]);
        assert!(f.at_boundary());
        // A masked frame.
        f.feed(&[0x81, 0x82, 1, 2, 3, 4, b'a']);
        assert!(!f.at_boundary());
        f.feed(b"b");
        assert!(f.at_boundary());
    }

    #[test]
    fn close_frames_carry_1008_and_a_short_reason() {
        let f = close_frame("policy changed: ip_denied");
        assert_eq!(f[0], 0x88);
        assert_eq!(f[1] as usize, f.len() - 2);
        assert_eq!(&f[2..4], &1008u16.to_be_bytes());
        assert_eq!(&f[4..], b"policy changed: ip_denied");
        assert!(close_frame(&"x".repeat(500)).len() <= 125);
    }
}
