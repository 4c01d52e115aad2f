//! Test support: real `voiceflow` and `gatehouse` processes on OS-chosen loopback ports, a
//! raw HTTP/1.1 client (so path tricks reach the proxy byte for byte — URL-normalizing
//! clients would rewrite `/a/../b` or `%2e` before sending), JWT minting, and the upstream's
//! `/debug/requests` record to prove what did and did not reach it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A 32-byte HS256 secret for tests.
pub const SECRET: &str = "test-secret-0123456789abcdef-0123";

/// Path of a workspace binary (`voiceflow` is built because its package has tests).
pub fn bin(name: &str) -> PathBuf {
    if name == "gatehouse" {
        return PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"));
    }
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo test --workspace` (or `cargo build -p voiceflow`)",
        p.display()
    );
    p
}

/// A loopback port the OS picked (bound, then released for the child to bind).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fixtures folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Kills the child on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `voiceflow server --debug`.
pub struct Upstream {
    pub addr: SocketAddr,
    _proc: Proc,
}

impl Upstream {
    pub fn start() -> Upstream {
        Self::start_on(0, &[])
    }

    pub fn start_on(port: u16, extra: &[&str]) -> Upstream {
        let mut child = Command::new(bin("voiceflow"))
            .args([
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--debug",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn voiceflow");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("voiceflow exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("voiceflow listening on http://") {
                break rest.trim().parse().unwrap();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Upstream {
            addr,
            _proc: Proc(child),
        }
    }

    /// `GET /debug/requests`.
    pub fn requests(&self) -> Vec<Value> {
        let r = request(self.addr, "GET", "/debug/requests", &[], b"");
        assert_eq!(r.status, 200, "debug record: {}", r.text());
        serde_json::from_slice::<Vec<Value>>(&r.body).unwrap()
    }

    /// `DELETE /debug/requests`.
    pub fn clear(&self) {
        let r = request(self.addr, "DELETE", "/debug/requests", &[], b"");
        assert!(r.status < 300, "clear: {}", r.status);
    }

    /// Asserts nothing reached the upstream since the last clear.
    pub fn assert_untouched(&self, what: &str) {
        let seen = self.requests();
        assert!(seen.is_empty(), "{what}: the upstream saw {seen:?}");
    }
}

/// A running gatehouse.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub policy: PathBuf,
    proc: Proc,
}

/// Fills `{{LISTEN}}`, `{{ADMIN}}`, `{{UPSTREAM}}`, `{{FIXTURES}}` in a policy template.
pub fn render(
    template: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
) -> String {
    template
        .replace("{{LISTEN}}", &listen.to_string())
        .replace("{{ADMIN}}", &admin.to_string())
        .replace("{{UPSTREAM}}", &upstream.to_string())
        .replace("{{FIXTURES}}", &fixtures().display().to_string())
}

impl Proxy {
    /// Starts gatehouse with `template` and waits until `/readyz` says ready.
    pub fn start(template: &str, upstream: SocketAddr) -> Proxy {
        Self::start_with_threads(template, upstream, 1)
    }

    /// [`Proxy::start`] with `threads` worker threads.
    pub fn start_with_threads(template: &str, upstream: SocketAddr, threads: usize) -> Proxy {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Self::start_full(template, upstream, threads, listen)
    }

    /// [`Proxy::start`] on a listen address chosen beforehand (a page must name it).
    pub fn start_listening(template: &str, upstream: SocketAddr, listen: SocketAddr) -> Proxy {
        Self::start_full(template, upstream, 1, listen)
    }

    fn start_full(
        template: &str,
        upstream: SocketAddr,
        threads: usize,
        listen: SocketAddr,
    ) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let policy = dir.path().join("proxy.yaml");
        std::fs::write(&policy, render(template, listen, admin, upstream)).unwrap();
        std::fs::copy(
            fixtures().join("ops.htpasswd"),
            dir.path().join("ops.htpasswd"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("gatehouse.log")).unwrap();
        let child = Command::new(bin("gatehouse"))
            .args(["run", "-c"])
            .arg(&policy)
            .args(["--threads", &threads.to_string(), "--log-format", "json"])
            .env("GATEHOUSE_JWT_SECRET", SECRET)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn gatehouse");
        let p = Proxy {
            addr: listen,
            admin,
            dir,
            policy,
            proc: Proc(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = try_request(admin, "GET", "/readyz", &[], b"") {
                if r.status == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not become ready:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gatehouse.log")).unwrap_or_default()
    }

    /// Overwrites the policy file with a rendered template (same ports).
    pub fn write_policy(&self, template: &str, upstream: SocketAddr) {
        let text = render(template, self.addr, self.admin, upstream);
        // Write beside, then rename: the way most editors save.
        let tmp = self.dir.path().join(".proxy.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.policy).unwrap();
    }

    pub fn metrics(&self) -> String {
        request(self.admin, "GET", "/metrics", &[], b"").text()
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers, b"")
    }

    pub fn pid(&self) -> u32 {
        self.proc.0.id()
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// Asserts a Gatehouse denial: status, JSON reason code, request id.
    pub fn assert_denied(&self, status: u16, reason: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: status; body {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{what}: content-type"
        );
        let j = self.json();
        assert_eq!(j["error"], reason, "{what}: reason; body {j}");
        assert!(
            j["request_id"].as_str().is_some_and(|s| !s.is_empty()),
            "{what}: request_id"
        );
        assert!(j["message"].is_string(), "{what}: message");
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, target, headers, body)
        .unwrap_or_else(|e| panic!("{method} {target} to {addr}: {e}"))
}

pub fn try_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut raw =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    for (n, v) in headers {
        raw.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body);
    raw_exchange(addr, &raw)
}

/// The shipped `proxy.yaml` as a test template: its fixed ports replaced by placeholders.
pub fn shipped_policy() -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proxy.yaml"))
        .unwrap()
        .replace("127.0.0.1:8080", "{{LISTEN}}")
        .replace("127.0.0.1:9901", "{{ADMIN}}")
        .replace("127.0.0.1:9000", "{{UPSTREAM}}")
}

/// Writes raw bytes and parses whatever comes back until the server closes.
pub fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(raw)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse_response(&buf).ok_or_else(|| {
        std::io::Error::other(format!(
            "unparsable response: {:?}",
            String::from_utf8_lossy(&buf)
        ))
    })
}

pub fn parse_response(buf: &[u8]) -> Option<Response> {
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut hs);
    let n = match r.parse(buf).ok()? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let status = r.code?;
    let mut body = buf[n..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        let len: usize = len.1.trim().parse().ok()?;
        body.truncate(len);
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(pos) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..pos])
                .unwrap_or("0")
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = pos + 2;
        out.extend_from_slice(&b[start..(start + size).min(b.len())]);
        b = &b[(start + size + 2).min(b.len())..];
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Standard valid claims for the test issuer/audience.
pub fn claims(sub: &str, role: &str) -> Value {
    json!({"sub": sub, "role": role, "iss": "https://auth.test", "aud": "voiceflow-api", "exp": now() + 600})
}

/// An HS256 token signed with [`SECRET`].
pub fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A token signed with a fixture private key.
pub fn signed(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 | Algorithm::PS256 => {
            EncodingKey::from_rsa_pem(&std::fs::read(fixtures().join("keys/rsa.key")).unwrap())
                .unwrap()
        }
        Algorithm::ES256 => {
            EncodingKey::from_ec_pem(&std::fs::read(fixtures().join("keys/ec.key")).unwrap())
                .unwrap()
        }
        Algorithm::EdDSA => {
            EncodingKey::from_ed_pem(&std::fs::read(fixtures().join("keys/ed.key")).unwrap())
                .unwrap()
        }
        _ => EncodingKey::from_secret(SECRET.as_bytes()),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, claims, &key).unwrap()
}

/// `Authorization: Bearer` header value.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Polls `f` until it returns true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
