//! Issue 2: proxying HTTP and WebSockets, timeouts, upstream failure, hot reload.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

pub const POLICY: &str = include_str!("../fixtures/policy.yaml");

fn token() -> String {
    hs256(&claims("alice", "tester"))
}

#[test]
fn http_reaches_upstream_with_forwarded_headers() {
    let up = Upstream::start();
    let gh = Proxy::start(POLICY, up.addr);
    let auth = bearer(&token());
    let r = gh.get(
        "/api/v1/echo/x?q=1&r=%2F",
        &[("Authorization", &auth), ("X-Request-Id", "client-chosen")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["path"], "/api/v1/echo/x");
    assert_eq!(j["query"], "q=1&r=%2F");
    let h = &j["headers"];
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-real-ip"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-forwarded-host"][0], gh.addr.to_string());
    assert_eq!(h["x-auth-subject"][0], "alice");
    assert_eq!(h["x-auth-role"][0], "tester");
    // A request id from an untrusted client is replaced, and echoed back to the client.
    let rid = h["x-request-id"][0].as_str().unwrap();
    assert_ne!(rid, "client-chosen");
    assert_eq!(r.header("x-request-id"), Some(rid));
    // Public health route, HEAD too.
    assert_eq!(gh.get("/health", &[]).status, 200);
    assert_eq!(request(gh.addr, "HEAD", "/health", &[], b"").status, 200);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    use std::io::{Read, Write};
    let up = Upstream::start();
    let gh = Proxy::start(POLICY, up.addr);
    let mut s = std::net::TcpStream::connect(gh.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
}

async fn ws_connect(
    gh: &Proxy,
    path: &str,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}{}", gh.addr, path)
        .into_client_request()
        .unwrap();
    for (n, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket through the proxy");
    assert_eq!(resp.status(), 101);
    ws
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> serde_json::Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("frame in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] != "ping" {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn websocket_streams_logs_and_echoes_voice() {
    let up = Upstream::start();
    let gh = Proxy::start(POLICY, up.addr);
    let auth = bearer(&token());
    let mut ws = ws_connect(
        &gh,
        "/ws",
        &[
            ("Authorization", &auth),
            ("Origin", "http://localhost:3000"),
        ],
    )
    .await;
    let suite = serde_json::json!({"action": "execute", "suite": {"name": "smoke", "step_delay_ms": 50,
        "steps": [{"say": "hello world", "expect": "hello"}, {"say": "bye", "expect": "bye"}]}});
    ws.send(Message::Text(suite.to_string().into()))
        .await
        .unwrap();
    let mut logs = 0;
    loop {
        let v = next_json(&mut ws).await;
        match v["type"].as_str() {
            Some("log") => logs += 1,
            Some("status") => {
                assert_eq!(v["status"], "passed");
                break;
            }
            _ => {}
        }
    }
    assert!(logs >= 2, "log lines streamed live: {logs}");

    // /ws/voice: binary frames come back byte for byte.
    let mut voice = ws_connect(&gh, "/ws/voice", &[]).await;
    let audio: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    voice
        .send(Message::Binary(audio.clone().into()))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), voice.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Binary(b) => {
                assert_eq!(b.as_ref(), audio.as_slice());
                break;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn idle_websocket_outlives_http_idle() {
    // http_idle is 1s in the test policy; the socket stays idle for 3s.
    let up = Upstream::start_on(0, &["--ws-ping", "0"]);
    let gh = Proxy::start(POLICY, up.addr);
    let mut voice = ws_connect(&gh, "/ws/voice", &[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    voice
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("still open after idling past http_idle");
    let m = tokio::time::timeout(Duration::from_secs(10), voice.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m, Message::Binary(vec![1, 2, 3].into()));
    // Meanwhile an idle keep-alive HTTP connection *is* closed after http_idle.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(gh.addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 4096];
    let _ = s.read(&mut buf).unwrap();
    let start = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "keep-alive connection closed by the proxy");
    assert!(start.elapsed() < Duration::from_secs(9));
}

#[test]
fn upstream_down_gives_502_then_recovers() {
    let port = free_port();
    let down: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let gh = Proxy::start(POLICY, down);
    let started = Instant::now();
    let r = gh.get("/health", &[]);
    r.assert_denied(502, "upstream_unavailable", "upstream down");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered quickly"
    );
    let _up = Upstream::start_on(port, &[]);
    assert!(
        eventually(10, || gh.get("/health", &[]).status == 200),
        "recovers when the upstream is back"
    );
}

#[test]
fn slow_upstream_gives_504() {
    let up = Upstream::start();
    let gh = Proxy::start(POLICY, up.addr);
    let auth = bearer(&token());
    // upstream_read is 3s in the test policy.
    let r = request(
        gh.addr,
        "POST",
        "/api/transcribe?delay_ms=6000",
        &[("Authorization", &auth)],
        b"RIFF",
    );
    r.assert_denied(504, "upstream_timeout", "slow upstream");
}

#[test]
fn slow_loris_head_is_cut_at_request_header() {
    use std::io::{Read, Write};
    let up = Upstream::start();
    let gh = Proxy::start(POLICY, up.addr);
    let mut s = std::net::TcpStream::connect(gh.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let started = Instant::now();
    // One header byte every 500ms: each read is quick, the head never completes.
    let mut closed = false;
    for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter()
    {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        if started.elapsed() > Duration::from_secs(12) {
            break;
        }
    }
    if !closed {
        let mut buf = [0u8; 64];
        closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
    }
    assert!(closed, "connection closed once request_header (2s) ran out");
    assert!(started.elapsed() < Duration::from_secs(12));
}

#[test]
fn http_1_0_and_connection_close_requests_get_the_connection_closed() {
    use std::io::{Read, Write};
    let up = Upstream::start();
    let gh = Proxy::start(POLICY, up.addr);
    for head in [
        "GET /health HTTP/1.0\r\nHost: x\r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let mut s = std::net::TcpStream::connect(gh.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let started = Instant::now();
        let mut all = Vec::new();
        // Read to the end: the proxy closes right after the answer, well before http_idle.
        let _ = s.read_to_end(&mut all);
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200"), "{head:?}: {text}");
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{head:?}: closed after {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn slow_loris_on_a_keep_alive_connection_is_cut_at_http_idle_plus_request_header() {
    // The second request's head is sent one byte every 300 ms: each read is well within
    // http_idle (1s), the whole head never completes. Its budget is http_idle +
    // request_header (3s) from the end of the first request.
    use std::io::{Read, Write};
    let up = Upstream::start();
    let gh = Proxy::start(POLICY, up.addr);
    let mut s = std::net::TcpStream::connect(gh.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    up.clear();
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /api/v1/echo/slow HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        .iter()
    {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(12) {
            break;
        }
    }
    if !closed {
        closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
    }
    let took = started.elapsed();
    assert!(closed, "connection closed once the head's budget ran out");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(8),
        "cut after {took:?}, expected about 3s"
    );
    up.assert_untouched("a head that never completed");
}

#[tokio::test]
async fn reload_adds_routes_keeps_old_policy_on_error_and_keeps_websockets() {
    let up = Upstream::start();
    let gh = Proxy::start(POLICY, up.addr);
    let mut voice = ws_connect(&gh, "/ws/voice", &[]).await;

    // A new public route appears within a couple of seconds.
    assert_eq!(gh.get("/swagger/index.html", &[]).status, 404);
    let added = POLICY.replace(
        "routes:\n",
        "routes:\n  - name: docs\n    match: { prefix: /swagger/ }\n    auth: none\n",
    );
    gh.write_policy(&added, up.addr);
    assert!(
        eventually(10, || gh.get("/swagger/index.html", &[]).status == 200),
        "new route served:\n{}",
        gh.log()
    );

    // An invalid edit is refused; the running policy keeps serving.
    let broken = added.replace("request_header: 2s", "request_header: soon");
    gh.write_policy(&broken, up.addr);
    assert!(
        eventually(10, || gh
            .metrics()
            .contains("gatehouse_policy_reload_total{result=\"error\"} 1")),
        "reload error counted:\n{}",
        gh.log()
    );
    assert_eq!(gh.get("/swagger/index.html", &[]).status, 200);
    assert!(
        eventually(5, || gh.log().contains("request_header")),
        "error logged with its key path"
    );

    // The WebSocket opened before both reloads still works.
    voice
        .send(Message::Binary(vec![9, 9].into()))
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), voice.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m, Message::Binary(vec![9, 9].into()));

    // SIGHUP forces a reload too.
    let before = gh.metrics();
    let ok_count = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("gatehouse_policy_reload_total{result=\"ok\"}"))
            .map(str::to_string)
    };
    gh.write_policy(&added, up.addr);
    assert!(eventually(10, || ok_count(&gh.metrics()) != ok_count(&before)));
    let before = gh.metrics();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &gh.pid().to_string()])
        .status();
    assert!(
        eventually(10, || ok_count(&gh.metrics()) != ok_count(&before)),
        "SIGHUP reload"
    );
}

#[test]
fn admin_endpoints() {
    let up = Upstream::start();
    let gh = Proxy::start(POLICY, up.addr);
    assert_eq!(request(gh.admin, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(request(gh.admin, "GET", "/readyz", &[], b"").status, 200);
    gh.get("/health", &[]);
    gh.get("/nope", &[]);
    let m = gh.metrics();
    assert!(
        m.contains("gatehouse_requests_total{route=\"health\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("gatehouse_denied_total{reason=\"no_route\",route=\"-\"} 1"),
        "{m}"
    );
    assert!(m.contains("gatehouse_websockets_open"), "{m}");
    // The access log is one JSON line per request with the reason code.
    assert!(
        eventually(5, || gh.log().lines().any(|l| l
            .contains("\"reason\":\"no_route\"")
            && l.contains("\"status\":404"))),
        "{}",
        gh.log()
    );
}
