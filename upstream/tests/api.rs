//! The REST API of the real `voiceflow` binary, over loopback: health, test executions, echo,
//! transcribe, the API description, CORS and JSON errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{raw_body, suite, wait_finished, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

async fn post_suite(server: &Server, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url("/api/v1/tests/execute"))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn assert_json_error(body: &Value, code: &str) {
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn health_is_ok() {
    let server = Server::start(&[]).await;
    let response = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "status": "ok" })
    );
}

#[tokio::test]
async fn suite_runs_in_background_and_passes() {
    let server = Server::start(&[]).await;
    let response = post_suite(
        &server,
        &suite(&[("Hello there", "hello"), ("Bye", "")], 10),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let started: Value = response.json().await.unwrap();
    assert_eq!(started["status"], "running");
    let id = started["execution_id"].as_str().unwrap();

    let done = wait_finished(&server, id).await;
    assert_eq!(done["execution_id"], id);
    assert_eq!(done["status"], "passed");
    let logs: Vec<&str> = done["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        logs,
        [
            r#"suite "demo" started: 2 steps"#,
            r#"step 1/2: say "Hello there""#,
            r#"step 1/2: passed (heard "hello")"#,
            r#"step 2/2: say "Bye""#,
            r#"step 2/2: passed (heard "")"#,
            r#"suite "demo" passed: 2/2 steps passed"#,
        ]
    );
}

#[tokio::test]
async fn suite_with_a_failing_step_fails() {
    let server = Server::start(&[]).await;
    let started: Value = post_suite(&server, &suite(&[("yes", "yes"), ("no", "maybe")], 0))
        .await
        .json()
        .await
        .unwrap();
    let done = wait_finished(&server, started["execution_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert!(done["logs"]
        .as_array()
        .unwrap()
        .contains(&json!(r#"step 2/2: failed (expected "maybe")"#)));
}

#[tokio::test]
async fn unknown_execution_is_404_json() {
    let server = Server::start(&[]).await;
    let response = reqwest::get(server.url("/api/v1/tests/status/nope"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_json_error(&response.json().await.unwrap(), "not_found");
}

#[tokio::test]
async fn malformed_suites_are_400_json() {
    let server = Server::start(&[]).await;
    let step = json!([{ "say": "a", "expect": "a" }]);
    for body in [
        json!({ "steps": step }),
        json!({ "name": "", "steps": step }),
        json!({ "name": "s", "steps": [] }),
        json!({ "name": "s" }),
        json!({ "name": "s", "steps": [{ "expect": "a" }] }),
        json!({ "name": "s", "steps": step, "step_delay_ms": "fast" }),
        json!(["not", "an", "object"]),
    ] {
        let response = post_suite(&server, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_json_error(&response.json().await.unwrap(), "invalid_suite");
    }
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/tests/execute"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn echo_reports_the_request_as_received() {
    let server = Server::start(&[]).await;
    let response = reqwest::Client::new()
        .patch(server.url("/api/v1/echo/a//b?x=1&y=%20z&x=2"))
        .header("X-Multi", "first")
        .header("X-Multi", "second")
        .header("X-Single", "only")
        .body(vec![7u8; 1234])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["method"], "PATCH");
    assert_eq!(echo["path"], "/api/v1/echo/a//b");
    assert_eq!(echo["query"], "x=1&y=%20z&x=2");
    assert_eq!(echo["headers"]["x-multi"], json!(["first", "second"]));
    assert_eq!(echo["headers"]["x-single"], json!(["only"]));
    assert_eq!(echo["body_bytes"], 1234);

    let echo: Value = reqwest::get(server.url("/api/v1/echo"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/api/v1/echo");
    assert_eq!(echo["query"], "");
    assert_eq!(echo["body_bytes"], 0);
}

#[tokio::test]
async fn echo_does_not_normalize_the_path() {
    let server = Server::start(&[]).await;
    let answer = server
        .raw(b"DELETE /api/v1/echo/../x/./y//z?q HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let echo = raw_body(&answer);
    assert_eq!(echo["method"], "DELETE");
    assert_eq!(echo["path"], "/api/v1/echo/../x/./y//z");
    assert_eq!(echo["query"], "q");
}

#[tokio::test]
async fn transcribe_hashes_the_body() {
    let server = Server::start(&[]).await;
    let audio: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let response = reqwest::Client::new()
        .post(server.url("/api/transcribe"))
        .header("Content-Type", "audio/wav")
        .body(audio.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["bytes"], audio.len());
    assert_eq!(answer["sha256"], hex::encode(Sha256::digest(&audio)));
}

#[tokio::test]
async fn transcribe_holds_the_answer_for_delay_ms() {
    let server = Server::start(&[]).await;
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(server.url("/api/transcribe?delay_ms=300"))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A sleep never ends early, so this lower bound holds however slow the machine is.
    assert!(started.elapsed() >= Duration::from_millis(300));
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["bytes"], 3);
}

#[tokio::test]
async fn transcribe_rejects_bad_delay_and_oversize_body() {
    let server = Server::start(&[]).await;
    for query in ["delay_ms=soon", "delay_ms=-1", "delay_ms=600001"] {
        let response = reqwest::Client::new()
            .post(server.url(&format!("/api/transcribe?{query}")))
            .body("abc")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_json_error(&response.json().await.unwrap(), "invalid_query");
    }
    let answer = server
        .raw(
            b"POST /api/transcribe HTTP/1.1\r\nHost: t\r\nContent-Length: 70000000\r\n\
              Connection: close\r\n\r\n",
        )
        .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_json_error(&raw_body(&answer), "body_too_large");
}

#[tokio::test]
async fn unknown_path_and_wrong_method_are_json() {
    let server = Server::start(&[]).await;
    let response = reqwest::get(server.url("/no/such/path")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_json_error(&response.json().await.unwrap(), "not_found");

    let response = reqwest::Client::new()
        .delete(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_json_error(&response.json().await.unwrap(), "method_not_allowed");

    let response = reqwest::get(server.url("/ws")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_json_error(&response.json().await.unwrap(), "not_websocket");
}

#[tokio::test]
async fn swagger_and_openapi_are_served_by_default() {
    let server = Server::start(&["--swagger=true"]).await;
    let response = reqwest::get(server.url("/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/api/v1/tests/execute"]["post"].is_object());

    let response = reqwest::get(server.url("/swagger/index.html"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(response.text().await.unwrap().contains("/openapi.json"));
}

#[tokio::test]
async fn swagger_false_removes_the_description() {
    let server = Server::start(&["--swagger=false"]).await;
    for path in ["/openapi.json", "/swagger/index.html"] {
        let response = reqwest::get(server.url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_json_error(&response.json().await.unwrap(), "not_found");
    }
}

#[tokio::test]
async fn cors_is_permissive_by_default() {
    let server = Server::start(&[]).await;
    let client = reqwest::Client::new();
    let response = client
        .get(server.url("/health"))
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");

    let preflight = client
        .request(
            reqwest::Method::OPTIONS,
            server.url("/api/v1/tests/execute"),
        )
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    assert!(preflight
        .headers()
        .contains_key("access-control-allow-methods"));
}

#[tokio::test]
async fn cors_false_sends_no_cors_headers() {
    let server = Server::start(&["--cors=false"]).await;
    let response = reqwest::Client::new()
        .get(server.url("/health"))
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response
        .headers()
        .keys()
        .any(|name| name.as_str().starts_with("access-control-")));
}
