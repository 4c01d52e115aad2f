//! Issue 10: the proxy is the one place where origin policy lives. CORS preflights answered
//! (never authenticated, never forwarded), CORS answer headers replaced, the upstream's
//! permissive `Access-Control-Allow-Origin: *` removed, `cors: upstream` passed through, and
//! the origin-trick table for CORS and WebSocket alike — on the shipped `proxy.yaml`.

use crate::support::*;

/// The shipped policy, with the test issuer and one `cors: upstream` route in front of `api`.
fn policy() -> String {
    shipped_policy()
        .replace(
            "issuer: \"https://auth.example.com\"",
            "issuer: \"https://auth.test\"",
        )
        .replace(
            "  - name: api\n",
            "  - name: raw\n    match: { prefix: /api/v1/echo/raw/ }\n    auth: api-jwt\n    cors: upstream\n\n  - name: api\n",
        )
}

const APP: &str = "https://app.example.com";

fn preflight(gh: &Proxy, path: &str, origin: &str, method: &str, headers: &str) -> Response {
    let mut h = vec![
        ("Origin", origin),
        ("Access-Control-Request-Method", method),
    ];
    if !headers.is_empty() {
        h.push(("Access-Control-Request-Headers", headers));
    }
    request(gh.addr, "OPTIONS", path, &h, b"")
}

#[test]
fn preflights_are_answered_by_the_proxy_without_credentials() {
    let up = Upstream::start();
    let gh = Proxy::start(&policy(), up.addr);
    up.clear();
    let r = preflight(
        &gh,
        "/api/v1/tests/execute",
        APP,
        "POST",
        "Authorization, Content-Type",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert!(r.header("vary").is_some_and(|v| v.contains("Origin")));
    up.assert_untouched("an answered preflight is never forwarded");

    for (name, origin, method, headers, reason) in [
        (
            "foreign origin",
            "https://evil.test",
            "POST",
            "",
            "origin_denied",
        ),
        ("method not allowed", APP, "DELETE", "", "preflight_denied"),
        (
            "header not allowed",
            APP,
            "POST",
            "x-evil",
            "preflight_denied",
        ),
    ] {
        let r = preflight(&gh, "/api/v1/tests/execute", origin, method, headers);
        r.assert_denied(403, reason, name);
        up.assert_untouched(name);
    }
    let r = preflight(&gh, "/api/v1/tests/execute", APP, "DELETE", "");
    assert!(
        r.json()["message"].as_str().unwrap().contains("DELETE"),
        "names it"
    );
}

#[test]
fn answers_carry_the_proxy_cors_headers_never_the_upstreams() {
    let up = Upstream::start();
    let gh = Proxy::start(&policy(), up.addr);
    let token = bearer(&hs256(&claims("alice", "tester")));
    // Allowed origin: the proxy's headers replace voiceflow's `*`.
    let r = gh.get(
        "/api/v1/echo/x",
        &[
            ("Authorization", &token),
            ("Origin", "https://b.example.com"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://b.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r
        .header("vary")
        .is_some_and(|v| v.to_ascii_lowercase().contains("origin")));
    assert!(
        !r.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("access-control-allow-origin") && v == "*"),
        "{:?}",
        r.headers
    );
    // Foreign origin: forwarded (cors.enforce is off) but without any CORS header.
    let r = gh.get(
        "/api/v1/echo/x",
        &[("Authorization", &token), ("Origin", "https://evil.test")],
    );
    assert_eq!(r.status, 200);
    assert!(
        !r.headers
            .iter()
            .any(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-")),
        "{:?}",
        r.headers
    );
    // A route without cors: voiceflow's `Access-Control-Allow-Origin: *` is removed.
    let r = gh.get("/health", &[("Origin", "https://evil.test")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "{:?}",
        r.headers
    );
    // A refusal from an allowed origin can be read by the page.
    up.clear();
    let r = gh.get("/api/v1/echo/x", &[("Origin", APP)]);
    r.assert_denied(401, "auth_required", "no token, allowed origin");
    up.assert_untouched("no token, allowed origin");
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
}

#[test]
fn cors_upstream_passes_the_upstreams_headers_and_forwards_preflights() {
    let up = Upstream::start();
    let gh = Proxy::start(&policy(), up.addr);
    up.clear();
    let r = preflight(
        &gh,
        "/api/v1/echo/raw/x",
        "https://evil.test",
        "PUT",
        "x-any",
    );
    assert!(r.status < 300, "{}: {}", r.status, r.text());
    let seen = up.requests();
    assert!(
        seen.iter().any(|q| q["method"] == "OPTIONS"),
        "the preflight reached the upstream: {seen:?}"
    );
    let token = bearer(&hs256(&claims("alice", "tester")));
    let r = gh.get(
        "/api/v1/echo/raw/x",
        &[("Authorization", &token), ("Origin", "https://evil.test")],
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // Only the preflight skips authentication.
    up.clear();
    gh.get("/api/v1/echo/raw/x", &[("Origin", APP)])
        .assert_denied(401, "auth_required", "cors: upstream still authenticates");
    up.assert_untouched("cors: upstream still authenticates");
}

/// Origins that must match nothing on a list of `https://app.example.com`,
/// `https://*.example.com` and `http://localhost:3000`.
const TRICKS: &[(&str, &str)] = &[
    ("suffix", "https://app.example.com.evil.test"),
    ("prefix", "https://evilapp.example.com.test"),
    ("label prefix", "https://evilexample.com"),
    ("apex of the wildcard", "https://example.com"),
    ("scheme", "http://app.example.com"),
    ("port", "https://app.example.com:8443"),
    ("localhost port", "http://localhost:3001"),
    ("null", "null"),
    ("trailing dot", "https://app.example.com."),
    ("userinfo", "https://user@app.example.com"),
    ("path", "https://app.example.com/x"),
    ("no scheme", "app.example.com"),
];

#[test]
fn the_origin_trick_table_for_cors_preflights() {
    let up = Upstream::start();
    let gh = Proxy::start(&policy(), up.addr);
    up.clear();
    for (name, origin) in TRICKS {
        let r = preflight(&gh, "/api/v1/tests/execute", origin, "POST", "");
        r.assert_denied(403, "origin_denied", name);
    }
    up.assert_untouched("origin tricks");
    // Case is not a trick: hosts compare case-insensitively, default ports normalize.
    for ok in ["https://APP.Example.com", "https://app.example.com:443"] {
        assert_eq!(
            preflight(&gh, "/api/v1/tests/execute", ok, "POST", "").status,
            204,
            "{ok}"
        );
    }
}

#[tokio::test]
async fn the_origin_trick_table_for_websockets() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let up = Upstream::start();
    let gh = Proxy::start(&policy(), up.addr);
    let token = hs256(&claims("alice", "tester"));
    up.clear();
    for (name, origin) in TRICKS {
        let mut req = format!("ws://{}/ws/voice", gh.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("origin", http::HeaderValue::from_str(origin).unwrap());
        req.headers_mut().insert(
            "authorization",
            http::HeaderValue::from_str(&bearer(&token)).unwrap(),
        );
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 403, "{name}");
                let body: serde_json::Value =
                    serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(body["error"], "origin_denied", "{name}");
            }
            other => panic!(
                "{name}: {origin} was not refused: {:?}",
                other.map(|r| r.1.status())
            ),
        }
    }
    up.assert_untouched("websocket origin tricks");
}

#[test]
fn explain_agrees_with_the_proxy_on_preflights() {
    let up = Upstream::start();
    let gh = Proxy::start(&policy(), up.addr);
    for (origin, method) in [
        (APP, "POST"),
        ("https://evil.test", "POST"),
        (APP, "DELETE"),
    ] {
        let live = preflight(&gh, "/api/v1/tests/execute", origin, method, "");
        let out = std::process::Command::new(bin("gatehouse"))
            .args(["explain", "-c"])
            .arg(&gh.policy)
            .args(["OPTIONS", "/api/v1/tests/execute", "--format", "json"])
            .args(["-H", &format!("Origin: {origin}")])
            .args(["-H", &format!("Access-Control-Request-Method: {method}")])
            .env("GATEHOUSE_JWT_SECRET", SECRET)
            .output()
            .unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            j["status"].as_u64(),
            Some(u64::from(live.status)),
            "{origin} {method}: {j}"
        );
        if live.status >= 400 {
            assert_eq!(j["reason"], live.json()["error"], "{origin} {method}");
        }
    }
}
