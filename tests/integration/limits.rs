//! Issue 9: every limit of the policy enforced through the real binaries — rate limits (and
//! shadow mode, per subject), the brute-force guard, connection caps released on abrupt
//! disconnects, body caps by `Content-Length` and while a chunked body streams, and the bounded
//! queue. Each denial checks status, reason code and headers, and what the upstream saw.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

const LIMITS: &str = r#"
version: 1
server:
  listen: [{ addr: "{{LISTEN}}" }]
  admin: "{{ADMIN}}"
  timeouts: { request_header: 2s, http_idle: 2s, upstream_read: 10s }
  limits:
    connections_per_ip: 3
    auth_failures_per_ip: "3/1m"
upstream: { addr: "{{UPSTREAM}}", connect_timeout: 1s }
defaults:
  max_body: 1MiB
  rate_limit: none
auth:
  api-jwt:
    jwt:
      algorithms: [HS256]
      secret_env: GATEHOUSE_JWT_SECRET
      issuer: "https://auth.test"
      audience: "voiceflow-api"
routes:
  - name: health
    match: { path: /health }
    auth: none
  - name: limited
    match: { prefix: /api/v1/echo/limited/ }
    auth: none
    rate_limit: { per_ip: "3/2s" }
  - name: shadowed
    match: { prefix: /api/v1/echo/shadowed/ }
    auth: none
    rate_limit: { per_ip: "1/1m", shadow: true }
  - name: per-subject
    match: { prefix: /api/v1/echo/subject/ }
    auth: api-jwt
    rate_limit: { per_subject: "2/1m" }
  - name: small
    match: { prefix: /api/v1/echo/small/ }
    auth: none
    max_body: 1KiB
  - name: transcribe
    match: { path: /api/transcribe, methods: [POST] }
    auth: none
    concurrency: { max_in_flight: 1, queue: 1, queue_timeout: 1s }
  - name: echo
    match: { prefix: /api/v1/echo/ }
    auth: none
  - name: dies
    match: { path: /debug/truncated }
    auth: none
"#;

fn start() -> (Upstream, Proxy) {
    let up = Upstream::start();
    let gh = Proxy::start(LIMITS, up.addr);
    (up, gh)
}

fn count_path(up: &Upstream, path: &str) -> usize {
    up.requests().iter().filter(|r| r["path"] == path).count()
}

#[test]
fn rate_limit_refuses_the_n_plus_first_with_headers_then_admits_again() {
    let (up, gh) = start();
    let path = "/api/v1/echo/limited/x";
    for i in 0..3 {
        assert_eq!(gh.get(path, &[]).status, 200, "request {i}");
    }
    up.clear();
    let r = gh.get(path, &[]);
    r.assert_denied(429, "rate_limited", "4th in the period");
    up.assert_untouched("rate limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    assert_eq!(r.header("ratelimit-policy"), Some("\"per_ip\";q=3;w=2"));
    assert!(
        r.header("ratelimit")
            .is_some_and(|v| v.starts_with("\"per_ip\";r=0;t=")),
        "{:?}",
        r.header("ratelimit")
    );
    // One token comes back every 2s/3.
    assert!(
        eventually(3, || gh.get(path, &[]).status == 200),
        "admitted again in the next period"
    );
    // The trail names the limit; metrics count the denial.
    assert!(gh
        .metrics()
        .contains("gatehouse_denied_total{reason=\"rate_limited\",route=\"limited\"}"));
}

#[test]
fn shadow_mode_logs_and_admits() {
    let (_up, gh) = start();
    for _ in 0..3 {
        assert_eq!(gh.get("/api/v1/echo/shadowed/x", &[]).status, 200);
    }
    assert!(
        eventually(5, || gh
            .log()
            .contains("shadow: a rate limit would have refused")),
        "{}",
        gh.log()
    );
    assert!(gh
        .metrics()
        .contains("gatehouse_shadow_limited_total{route=\"shadowed\"} 2"));
}

#[test]
fn per_subject_limits_follow_the_token_not_the_ip() {
    let (up, gh) = start();
    let alice = bearer(&hs256(&claims("alice", "tester")));
    let bob = bearer(&hs256(&claims("bob", "tester")));
    let path = "/api/v1/echo/subject/x";
    for _ in 0..2 {
        assert_eq!(gh.get(path, &[("Authorization", &alice)]).status, 200);
    }
    up.clear();
    gh.get(path, &[("Authorization", &alice)])
        .assert_denied(429, "rate_limited", "alice's third");
    up.assert_untouched("alice's third");
    // Same IP, another subject: its own bucket.
    assert_eq!(gh.get(path, &[("Authorization", &bob)]).status, 200);
}

#[test]
fn brute_force_guard_trips_before_any_credential_is_verified() {
    let (up, gh) = start();
    let path = "/api/v1/echo/subject/x";
    let mut wrong = claims("mallory", "tester");
    wrong["iss"] = serde_json::json!("https://evil.test");
    let wrong = bearer(&hs256(&wrong));
    up.clear();
    for i in 0..3 {
        gh.get(path, &[("Authorization", &wrong)]).assert_denied(
            401,
            "token_invalid",
            &format!("failure {i}"),
        );
    }
    up.assert_untouched("rejected tokens");
    // The budget is spent: even a valid token is refused, before it is verified.
    up.clear();
    let good = bearer(&hs256(&claims("alice", "tester")));
    let r = gh.get(path, &[("Authorization", &good)]);
    r.assert_denied(429, "rate_limited", "guard tripped");
    assert!(r.header("retry-after").is_some());
    up.assert_untouched("guard tripped");
    // Public routes are not behind the guard.
    assert_eq!(gh.get("/health", &[]).status, 200);
}

fn slow_post(addr: std::net::SocketAddr, delay_ms: u64) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /api/transcribe?delay_ms={delay_ms} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s
}

fn read_all(mut s: TcpStream) -> Response {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
        .unwrap_or_else(|| panic!("unparsable: {:?}", String::from_utf8_lossy(&buf)))
}

#[test]
fn connection_cap_counts_in_flight_requests_and_releases_on_abrupt_disconnect() {
    let (up, gh) = start();
    // Three slots held by one client IP: a slow request at the upstream, one waiting in
    // the route's queue (it counts: it is in flight from the client's side), and a request
    // whose body never finishes.
    let a = slow_post(gh.addr, 5_000);
    let b = slow_post(gh.addr, 5_000); // queued behind a (1s queue timeout)
    std::thread::sleep(Duration::from_millis(300));
    // A third in flight: a request whose body never finishes (held by the body read).
    let mut c = TcpStream::connect(gh.addr).unwrap();
    write!(
        c,
        "POST /api/v1/echo/x HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\npartial",
        gh.addr
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    up.clear();
    let r = gh.get("/health", &[]);
    r.assert_denied(429, "too_many_connections", "4th in flight");
    up.assert_untouched("4th in flight");
    // Abrupt disconnects give the slots back.
    drop(c);
    drop(b);
    drop(a);
    assert!(
        eventually(5, || gh.get("/health", &[]).status == 200),
        "slots released after the clients went away"
    );
    // And all three are free again: three parallel slow requests fit.
    let held: Vec<_> = (0..2).map(|_| slow_post(gh.addr, 1_000)).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(gh.get("/health", &[]).status, 200);
    drop(held);
}

#[test]
fn content_length_over_the_cap_is_refused_before_the_body_is_read() {
    let (up, gh) = start();
    up.clear();
    let body = vec![b'x'; 1025];
    let r = request(gh.addr, "POST", "/api/v1/echo/small/x", &[], &body);
    r.assert_denied(413, "body_too_large", "Content-Length 1025 > 1KiB");
    up.assert_untouched("Content-Length over the cap");
    let ok = request(gh.addr, "POST", "/api/v1/echo/small/x", &[], &body[..1024]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["body_bytes"], 1024);
}

#[test]
fn a_chunked_body_is_cut_the_moment_it_passes_the_cap() {
    let (up, gh) = start();
    up.clear();
    let mut s = TcpStream::connect(gh.addr).unwrap();
    write!(
        s,
        "POST /api/v1/echo/small/x HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        gh.addr
    )
    .unwrap();
    for _ in 0..8 {
        let chunk = vec![b'y'; 512];
        let _ = write!(s, "{:x}\r\n", chunk.len());
        let _ = s.write_all(&chunk);
        let _ = s.write_all(b"\r\n");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let r = read_all(s);
    r.assert_denied(413, "body_too_large", "chunked over the cap");
    // The upstream saw less than the whole body (or nothing), never a complete one.
    for seen in up.requests() {
        assert!(
            seen["body_complete"] == false || seen["body_bytes"].as_u64() < Some(4096),
            "upstream got the whole body: {seen}"
        );
        assert!(seen["body_bytes"].as_u64().unwrap_or(0) <= 1536, "{seen}");
    }
}

#[test]
fn the_queue_admits_one_holds_one_refuses_the_rest_and_times_out() {
    let (up, gh) = start();
    let first = slow_post(gh.addr, 3_000);
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let second = slow_post(gh.addr, 0); // waits in the queue (1s timeout)
    std::thread::sleep(Duration::from_millis(200));
    up.clear();
    let third = read_all(slow_post(gh.addr, 0));
    third.assert_denied(503, "queue_full", "third");
    assert_eq!(third.header("retry-after"), Some("1"));
    let second = read_all(second);
    second.assert_denied(503, "queue_timeout", "second");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "waited the queue timeout"
    );
    assert_eq!(
        count_path(&up, "/api/transcribe"),
        0,
        "no queued request reached the upstream"
    );
    assert_eq!(read_all(first).status, 200);
    assert!(gh
        .metrics()
        .contains("gatehouse_route_queued{route=\"transcribe\"} 0"));
}

#[test]
fn a_queued_client_that_disconnects_frees_its_place() {
    let (_up, gh) = start();
    let first = slow_post(gh.addr, 1_000);
    std::thread::sleep(Duration::from_millis(200));
    let queued = slow_post(gh.addr, 0);
    std::thread::sleep(Duration::from_millis(200));
    assert!(gh
        .metrics()
        .contains("gatehouse_route_queued{route=\"transcribe\"} 1"));
    drop(queued);
    assert!(
        eventually(3, || gh
            .metrics()
            .contains("gatehouse_route_queued{route=\"transcribe\"} 0")),
        "place freed"
    );
    // The freed place can be taken: not refused as full, and served once the first is done.
    let next = slow_post(gh.addr, 0);
    assert_eq!(read_all(first).status, 200);
    let next = read_all(next);
    assert_ne!(
        next.header("content-type")
            .map(|_| next.json()["error"].clone()),
        Some(serde_json::json!("queue_full"))
    );
    assert_eq!(next.status, 200, "{}", next.text());
}

#[test]
fn oversize_heads_get_431_json_and_a_log_line() {
    let (up, gh) = start();
    let a = gh.addr;
    let mut many = format!("GET /health HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let mut huge = format!("GET /health HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n");
    for i in 0..300 {
        huge.push_str(&format!("X-H{i}: v\r\n"));
    }
    huge.push_str("\r\n");
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: {a}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(40 * 1024)
    );
    for (name, raw) in [
        ("150 header lines (policy: 100)", many),
        ("300 header lines (parser: 256)", huge),
        ("40 KiB head (policy: 32 KiB)", big),
    ] {
        up.clear();
        let r = raw_exchange(a, raw.as_bytes()).unwrap();
        r.assert_denied(431, "headers_too_large", name);
        up.assert_untouched(name);
    }
    assert!(
        eventually(5, || gh.log().contains("refused by the HTTP parser")),
        "the parser's refusal is logged"
    );
}

#[test]
fn an_upstream_reset_mid_response_is_never_presented_as_complete() {
    let (_up, gh) = start();
    let mut s = TcpStream::connect(gh.addr).unwrap();
    write!(
        s,
        "GET /debug/truncated?bytes=5000 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        gh.addr
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw); // a reset ends the read with an error: fine
    let text = String::from_utf8_lossy(&raw);
    let head_end = text.find("\r\n\r\n").expect("a response head was sent");
    let head = text[..head_end].to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let body = &raw[head_end + 4..];
    if head.contains("transfer-encoding: chunked") {
        assert!(
            !body.ends_with(b"0\r\n\r\n"),
            "a truncated body was closed with a final chunk: presented as complete"
        );
    } else {
        let declared: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .expect("content-length or chunked")
            .trim()
            .parse()
            .unwrap();
        assert_eq!(declared, 10_000);
        assert!(body.len() < declared, "the whole declared body arrived?");
    }
}
