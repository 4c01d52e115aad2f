//! The `--debug` request recorder of the real `voiceflow` binary: what is recorded, how bodies
//! are counted (including one cut off mid-way), clearing, and its absence without `--debug`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Waits for the record with `request_id` to satisfy `done`, and returns it.
async fn record_of(server: &Server, request_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(request_id, || async {
        server
            .debug_requests()
            .await
            .into_iter()
            .find(|r| r["request_id"] == request_id && done(r))
    })
    .await
}

#[tokio::test]
async fn records_requests_with_their_bodies() {
    let server = Server::start(&["--debug"]).await;
    let client = reqwest::Client::new();
    client
        .post(server.url("/api/v1/echo/x?secret=1"))
        .header("X-Request-Id", "req-1")
        .body(vec![0u8; 5000])
        .send()
        .await
        .unwrap();
    client.get(server.url("/health")).send().await.unwrap();
    // A handler that never reads the body: it is still counted to its end.
    client
        .put(server.url("/health"))
        .header("X-Request-Id", "req-2")
        .body(vec![0u8; 300])
        .send()
        .await
        .unwrap();

    let echo = record_of(&server, "req-1", |r| r["body_complete"] == true).await;
    assert_eq!(
        echo,
        json!({ "method": "POST", "path": "/api/v1/echo/x", "body_bytes": 5000,
                "body_complete": true, "request_id": "req-1" })
    );
    let put = record_of(&server, "req-2", |r| r["body_complete"] == true).await;
    assert_eq!(put["body_bytes"], 300);

    let records = server.debug_requests().await;
    let paths: Vec<&str> = records
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/api/v1/echo/x", "/health", "/health"],
        "oldest first"
    );
    assert_eq!(records[1]["request_id"], Value::Null);
    assert!(!paths.iter().any(|p| p.starts_with("/debug")));
}

#[tokio::test]
async fn body_cut_off_midway_stays_incomplete() {
    let server = Server::start(&["--debug"]).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /api/v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\
                X-Request-Id: cut-1\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'a'; 100]).await.unwrap();
    stream.shutdown().await.unwrap();

    let record = record_of(&server, "cut-1", |r| r["body_bytes"] == 100).await;
    assert_eq!(record["body_complete"], false);
    assert_eq!(record["path"], "/api/v1/echo");
    drop(stream);
}

#[tokio::test]
async fn delete_clears_the_record() {
    let server = Server::start(&["--debug"]).await;
    reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(server.debug_requests().await.len(), 1);
    let response = reqwest::Client::new()
        .delete(server.url("/debug/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(server.debug_requests().await.is_empty());
}

#[tokio::test]
async fn debug_routes_are_404_without_the_flag() {
    let server = Server::start(&[]).await;
    let response = reqwest::get(server.url("/debug/requests")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "not_found"
    );
}
