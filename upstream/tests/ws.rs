//! The WebSocket endpoints of the real `voiceflow` binary, over loopback: `/ws` (execute,
//! subscribe, errors, pings) and `/ws/voice` (audio loopback).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, next_json, suite, wait_finished, Server, Ws, DEADLINE};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn send_json(ws: &mut Ws, value: &Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// Reads log frames of `id` until its status frame; returns the lines and the status.
async fn collect_run(ws: &mut Ws, id: &str) -> (Vec<String>, String) {
    let mut lines = Vec::new();
    loop {
        let frame = next_json(ws).await;
        assert_eq!(frame["execution_id"], id, "{frame}");
        match frame["type"].as_str().unwrap() {
            "log" => lines.push(frame["line"].as_str().unwrap().to_owned()),
            "status" => return (lines, frame["status"].as_str().unwrap().to_owned()),
            other => panic!("unexpected frame type {other}: {frame}"),
        }
    }
}

fn logs_of(status: &Value) -> Vec<String> {
    serde_json::from_value(status["logs"].clone()).unwrap()
}

#[tokio::test]
async fn execute_streams_lines_in_order_then_status() {
    let server = Server::start(&[]).await;
    let mut ws = server.ws("/ws").await;
    let run = suite(&[("one", "one"), ("two", "TWO"), ("three", "four")], 20);
    send_json(&mut ws, &json!({ "action": "execute", "suite": run })).await;

    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "log");
    let id = first["execution_id"].as_str().unwrap().to_owned();
    let (rest, status) = collect_run(&mut ws, &id).await;
    assert_eq!(status, "failed");

    let mut lines = vec![first["line"].as_str().unwrap().to_owned()];
    lines.extend(rest);
    assert_eq!(lines.len(), 2 + 2 * 3);
    assert_eq!(lines[0], r#"suite "demo" started: 3 steps"#);
    assert_eq!(lines[7], r#"suite "demo" failed: 2/3 steps passed"#);
    // The stream carries exactly the stored log, in the same order.
    assert_eq!(lines, logs_of(&wait_finished(&server, &id).await));
}

#[tokio::test]
async fn subscribe_mid_run_gets_every_line_once() {
    let server = Server::start(&[]).await;
    let run = suite(&[("a", "a"), ("b", "b"), ("c", "c"), ("d", "d")], 200);
    let started: Value = reqwest::Client::new()
        .post(server.url("/api/v1/tests/execute"))
        .json(&run)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["execution_id"].as_str().unwrap().to_owned();
    let status_url = server.url(&format!("/api/v1/tests/status/{id}"));
    eventually("two log lines", || async {
        let status: Value = reqwest::get(&status_url).await.ok()?.json().await.ok()?;
        (status["logs"].as_array()?.len() >= 2).then_some(())
    })
    .await;

    let mut ws = server.ws("/ws").await;
    send_json(
        &mut ws,
        &json!({ "action": "subscribe", "execution_id": id }),
    )
    .await;
    let (lines, status) = collect_run(&mut ws, &id).await;
    assert_eq!(status, "passed");
    assert_eq!(lines, logs_of(&wait_finished(&server, &id).await));
}

#[tokio::test]
async fn subscribe_to_finished_run_replays_it() {
    let server = Server::start(&[]).await;
    let mut ws = server.ws("/ws").await;
    send_json(
        &mut ws,
        &json!({ "action": "execute", "suite": suite(&[("x", "x")], 0) }),
    )
    .await;
    let id = next_json(&mut ws).await["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let finished = wait_finished(&server, &id).await;

    let mut other = server.ws("/ws").await;
    send_json(
        &mut other,
        &json!({ "action": "subscribe", "execution_id": id }),
    )
    .await;
    let (lines, status) = collect_run(&mut other, &id).await;
    assert_eq!(status, "passed");
    assert_eq!(lines, logs_of(&finished));
}

#[tokio::test]
async fn bad_messages_get_error_frames_and_the_connection_stays_open() {
    let server = Server::start(&[]).await;
    let mut ws = server.ws("/ws").await;
    let bad = [
        Message::text("{not json"),
        Message::text(r#"{"action":"dance"}"#),
        Message::text(r#"{"action":"execute","suite":{"name":"s","steps":[]}}"#),
        Message::text(r#"{"action":"execute"}"#),
        Message::text(r#"{"action":"subscribe","execution_id":"nope"}"#),
        Message::binary(vec![1, 2, 3]),
    ];
    for message in bad {
        ws.send(message.clone()).await.unwrap();
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["type"], "error", "{message:?} → {frame}");
        assert!(frame["message"].is_string());
    }
    send_json(
        &mut ws,
        &json!({ "action": "execute", "suite": suite(&[("ok", "ok")], 0) }),
    )
    .await;
    let first = next_json(&mut ws).await;
    let (_, status) = collect_run(&mut ws, first["execution_id"].as_str().unwrap()).await;
    assert_eq!(status, "passed");
}

#[tokio::test]
async fn sends_ping_frames_every_ws_ping_seconds() {
    let server = Server::start(&["--ws-ping", "1"]).await;
    let mut ws = server.ws("/ws").await;
    let frame = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Message::Text(text) = ws.next().await.unwrap().unwrap() {
                return serde_json::from_str::<Value>(&text).unwrap();
            }
        }
    })
    .await
    .expect("a ping frame in time");
    assert_eq!(frame, json!({ "type": "ping" }));
}

#[tokio::test]
async fn answers_protocol_pings() {
    let server = Server::start(&["--ws-ping", "0"]).await;
    for path in ["/ws", "/ws/voice"] {
        let mut ws = server.ws(path).await;
        ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
        let pong = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(pong, Message::Pong(b"hi".to_vec().into()), "{path}");
        ws.close(None).await.unwrap();
    }
}

#[tokio::test]
async fn voice_echoes_binary_and_answers_text() {
    let server = Server::start(&[]).await;
    let mut ws = server.ws("/ws/voice").await;
    let audio: Vec<u8> = (0..100_000u32).map(|i| (i % 256) as u8).collect();
    ws.send(Message::binary(audio.clone())).await.unwrap();
    let echoed = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_data().as_ref(), &audio[..]);

    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        json!({ "type": "text", "received": "hello" })
    );
    ws.close(None).await.unwrap();
}
