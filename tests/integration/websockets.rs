//! Issue 10: WebSocket caps, released however a socket ends (client abort, upstream abort,
//! reload, idle timeout), and sockets that lose their right to exist — a reload that removes
//! their origin, a token that expires — closed with 1008.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const SOCKETS: &str = r#"
version: 1
server:
  listen: [{ addr: "{{LISTEN}}" }]
  admin: "{{ADMIN}}"
  timeouts: { request_header: 2s, http_idle: 1s, websocket_idle: 1h }
upstream: { addr: "{{UPSTREAM}}", connect_timeout: 1s }
defaults: { rate_limit: none }
auth:
  api-jwt:
    jwt:
      algorithms: [HS256]
      secret_env: GATEHOUSE_JWT_SECRET
      issuer: "https://auth.test"
      audience: "voiceflow-api"
      token_sources: [header, "query:access_token"]
origins:
  web: ["http://ok.test", "http://also-ok.test"]
routes:
  - name: voice
    match: { path: /ws/voice }
    auth: none
    websocket: { origins: web, max_per_ip: 2 }
  - name: logs
    match: { path: /ws }
    auth: api-jwt
    websocket: { allow_missing_origin: true, max_per_subject: 1, close_on_token_expiry: true }
"#;

async fn open(gh: &Proxy, path: &str, origin: Option<&str>) -> Result<Ws, u16> {
    let mut req = format!("ws://{}{}", gh.addr, path)
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", http::HeaderValue::from_str(o).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert!(body["error"].is_string(), "JSON denial: {body}");
            Err(resp.status().as_u16())
        }
        Err(e) => panic!("connect: {e}"),
    }
}

async fn echo(ws: &mut Ws) -> bool {
    if ws.send(Message::Binary(vec![7, 7].into())).await.is_err() {
        return false;
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) if b.as_ref() == [7, 7] => return true,
            Ok(Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return false,
        }
    }
}

/// Waits for the socket to be closed by the proxy; returns the close frame's code and reason.
async fn closed_by_proxy(ws: &mut Ws, within: Duration) -> Option<(CloseCode, String)> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return Some((f.code, f.reason.to_string())),
            Ok(Some(Ok(_))) | Err(_) => continue,
            Ok(_) => return None,
        }
    }
    None
}

#[tokio::test]
async fn per_ip_cap_is_enforced_and_released_by_a_client_abort() {
    let up = Upstream::start();
    let gh = Proxy::start(SOCKETS, up.addr);
    let mut a = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    let b = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    up.clear();
    assert_eq!(
        open(&gh, "/ws/voice", Some("http://ok.test")).await.err(),
        Some(429)
    );
    up.assert_untouched("third socket over max_per_ip");
    // An abrupt client abort (no close handshake) gives the slot back.
    drop(b);
    let mut c = None;
    for _ in 0..30 {
        if let Ok(ws) = open(&gh, "/ws/voice", Some("http://ok.test")).await {
            c = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = c.expect("slot released after the client went away");
    assert!(echo(&mut a).await && echo(&mut c).await);
}

#[tokio::test]
async fn per_subject_cap_follows_the_token() {
    let up = Upstream::start();
    let gh = Proxy::start(SOCKETS, up.addr);
    let alice = hs256(&claims("alice", "tester"));
    let bob = hs256(&claims("bob", "tester"));
    let _first = open(&gh, &format!("/ws?access_token={alice}"), None)
        .await
        .unwrap();
    up.clear();
    assert_eq!(
        open(&gh, &format!("/ws?access_token={alice}"), None)
            .await
            .err(),
        Some(429)
    );
    up.assert_untouched("second socket over max_per_subject");
    assert!(open(&gh, &format!("/ws?access_token={bob}"), None)
        .await
        .is_ok());
}

#[tokio::test]
async fn an_upstream_abort_releases_the_slots() {
    let up = Upstream::start();
    let port = up.addr.port();
    let gh = Proxy::start(SOCKETS, up.addr);
    let mut a = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    let _b = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    drop(up); // the upstream dies
    assert!(!echo(&mut a).await, "the socket ended with its upstream");
    let _up = Upstream::start_on(port, &[]);
    let mut ok = false;
    for _ in 0..30 {
        if let Ok(mut ws) = open(&gh, "/ws/voice", Some("http://ok.test")).await {
            ok = echo(&mut ws).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "both slots released after the upstream went away");
}

#[tokio::test]
async fn an_idle_timeout_closes_the_socket_and_releases_its_slot() {
    let up = Upstream::start_on(0, &["--ws-ping", "0"]);
    let gh = Proxy::start(
        &SOCKETS.replace("max_per_ip: 2 }", "max_per_ip: 1, idle_timeout: 1s }"),
        up.addr,
    );
    let mut a = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    up.clear();
    assert_eq!(
        open(&gh, "/ws/voice", Some("http://ok.test")).await.err(),
        Some(429)
    );
    up.assert_untouched("second socket over max_per_ip");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!echo(&mut a).await, "idled out");
    let mut b = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    assert!(echo(&mut b).await);
}

#[tokio::test]
async fn a_reload_that_removes_the_origin_closes_the_socket_with_1008() {
    let up = Upstream::start();
    let gh = Proxy::start(SOCKETS, up.addr);
    let mut removed = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    let mut kept = open(&gh, "/ws/voice", Some("http://also-ok.test"))
        .await
        .unwrap();
    assert!(echo(&mut removed).await);
    gh.write_policy(
        &SOCKETS.replace(
            r#"["http://ok.test", "http://also-ok.test"]"#,
            r#"["http://also-ok.test"]"#,
        ),
        up.addr,
    );
    let (code, reason) = closed_by_proxy(&mut removed, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("not closed with a close frame:\n{}", gh.log()));
    assert_eq!(code, CloseCode::Policy);
    assert!(reason.contains("origin_denied"), "{reason}");
    // The socket whose origin is still allowed lives on, and the freed slot can be used.
    assert!(echo(&mut kept).await);
    let mut again = open(&gh, "/ws/voice", Some("http://also-ok.test"))
        .await
        .unwrap();
    assert!(echo(&mut again).await);
    assert!(eventually(5, || gh
        .log()
        .contains("open WebSockets re-checked")));
}

#[tokio::test]
async fn a_socket_closes_when_its_token_expires() {
    let up = Upstream::start();
    let gh = Proxy::start(SOCKETS, up.addr);
    let mut c = claims("alice", "tester");
    c["exp"] = serde_json::json!(now() + 2);
    let token = hs256(&c);
    let mut ws = open(&gh, &format!("/ws?access_token={token}"), None)
        .await
        .unwrap();
    let t = Instant::now();
    let (code, reason) = closed_by_proxy(&mut ws, Duration::from_secs(8))
        .await
        .expect("closed at expiry with a close frame");
    assert_eq!(code, CloseCode::Policy);
    assert_eq!(reason, "token expired");
    assert!(t.elapsed() < Duration::from_secs(5));
    // The subject's slot is free again.
    let fresh = hs256(&claims("alice", "tester"));
    assert!(open(&gh, &format!("/ws?access_token={fresh}"), None)
        .await
        .is_ok());
}

/// A plain-TCP socket is relayed by a task of its own once upgraded (Pingora's request ends
/// then): its access line is still written when it closes, with status 101 and how it ended,
/// and the open-socket gauges and the per-IP slots come back however it ends.
#[tokio::test]
async fn a_relayed_socket_logs_when_it_closes_and_gives_back_what_it_held() {
    let up = Upstream::start();
    let gh = Proxy::start(SOCKETS, up.addr);
    let gauge = |gh: &Proxy, line: &str| {
        gh.metrics()
            .lines()
            .find(|l| l.starts_with(line))
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let mut a = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    let mut b = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    assert!(echo(&mut a).await && echo(&mut b).await);
    assert_eq!(gauge(&gh, "gatehouse_websockets_open "), "2");
    // max_per_ip: 2 — a third is refused while both live.
    assert_eq!(
        open(&gh, "/ws/voice", Some("http://ok.test")).await.err(),
        Some(429)
    );
    // One closes cleanly, the other is dropped without a close frame.
    a.close(None).await.unwrap();
    drop(b);
    assert!(
        eventually(5, || gauge(&gh, "gatehouse_websockets_open ") == "0"),
        "{}",
        gh.metrics()
    );
    let lines = |gh: &Proxy| {
        gh.log()
            .lines()
            .filter(|l| l.contains("\"status\":101") && l.contains("\"upgraded\":true"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(eventually(5, || lines(&gh).len() == 2), "{}", gh.log());
    for l in lines(&gh) {
        let j: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(j["route"], "voice", "{l}");
        assert_eq!(j["closed"], "closed", "{l}");
        assert_eq!(j["path"], "/ws/voice", "{l}");
        assert!(j["duration_ms"].as_f64().unwrap() > 0.0, "{l}");
    }
    assert!(gh
        .metrics()
        .contains("gatehouse_requests_total{route=\"voice\",status=\"101\"} 2"));
    // Both slots are free again.
    let mut c = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    let mut d = open(&gh, "/ws/voice", Some("http://ok.test"))
        .await
        .unwrap();
    assert!(echo(&mut c).await && echo(&mut d).await);
}
