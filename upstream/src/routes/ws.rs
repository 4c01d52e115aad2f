//! `GET /ws`: the live side of test executions, as a JSON text protocol.
//!
//! The client sends `{"action":"execute","suite":{...}}` (start a run and follow it) or
//! `{"action":"subscribe","execution_id":"..."}` (follow an existing one: its lines so far,
//! then live ones; a finished one gets its lines and its status at once). The server answers
//! `{"type":"log","execution_id","line"}` per line, then `{"type":"status","execution_id",
//! "status"}`. A bad message gets `{"type":"error","message"}` and the connection stays open.
//! Several runs may be followed at once on one connection. Every `--ws-ping` seconds the server
//! sends `{"type":"ping"}`; protocol pings are answered with pongs by axum.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::error::ApiError;
use crate::executions::{Event, Status, Subscription};
use crate::runner;
use crate::state::AppState;
use crate::suite::Suite;

/// How long queued frames may take to drain once the client is gone or closing.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What a client may ask.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
enum ClientMessage {
    Execute { suite: Value },
    Subscribe { execution_id: String },
}

/// Upgrades to the execution protocol (JSON 400 if the request is not a WebSocket upgrade).
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| ApiError::new(e.status(), "not_websocket", e.body_text()))?;
    Ok(upgrade.on_upgrade(move |socket| session(socket, state)))
}

async fn session(socket: WebSocket, state: AppState) {
    let (sink, mut incoming) = socket.split();
    let (out, queue) = mpsc::channel(64);
    let mut writer = tokio::spawn(write_frames(sink, queue));
    let mut streams = JoinSet::new();
    let mut ping = ping_timer(state.ws_ping);
    loop {
        let message = tokio::select! {
            message = incoming.next() => message,
            () = tick(&mut ping) => {
                if out.send(frame(json!({ "type": "ping" }))).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let reply = match message {
            Some(Ok(Message::Text(text))) => match start(&text, &state) {
                Ok((id, subscription)) => {
                    streams.spawn(follow(id, subscription, out.clone()));
                    None
                }
                Err(message) => Some(error_frame(message)),
            },
            Some(Ok(Message::Binary(_))) => Some(error_frame(
                "binary frames are not understood on /ws; send JSON text".to_owned(),
            )),
            // Pings are answered by axum; after a close, reading on flushes its reply and ends.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_))) => None,
            Some(Err(_)) | None => break,
        };
        if let Some(reply) = reply {
            if out.send(reply).await.is_err() {
                break;
            }
        }
        while streams.try_join_next().is_some() {}
    }
    drop(streams); // aborts the followers
    drop(out);
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// Parses one client message and returns the execution to follow, or the error to report.
fn start(text: &str, state: &AppState) -> Result<(String, Subscription), String> {
    let message: ClientMessage =
        serde_json::from_str(text).map_err(|e| format!("invalid message: {e}"))?;
    let id = match message {
        ClientMessage::Execute { suite } => {
            let suite = Suite::from_value(suite)?;
            runner::start(&state.executions, suite).map_err(|e| e.to_string())?
        }
        ClientMessage::Subscribe { execution_id } => execution_id,
    };
    let subscription = state
        .executions
        .subscribe(&id)
        .ok_or_else(|| format!("unknown execution_id {id:?}"))?;
    Ok((id, subscription))
}

/// Sends an execution's lines so far, then its live lines, then its final status.
async fn follow(id: String, subscription: Subscription, out: mpsc::Sender<Message>) {
    for line in &subscription.lines {
        if out.send(log_frame(&id, line)).await.is_err() {
            return;
        }
    }
    let Some(mut live) = subscription.live else {
        let _ = out.send(status_frame(&id, subscription.status)).await;
        return;
    };
    loop {
        let (message, last) = match live.recv().await {
            Ok(Event::Log(line)) => (log_frame(&id, &line), false),
            Ok(Event::Done(status)) => (status_frame(&id, status), true),
            // The feed is sized for a whole run, so this does not happen; say so if it does.
            Err(RecvError::Lagged(_)) => (error_frame(format!("fell behind on {id}")), true),
            Err(RecvError::Closed) => return,
        };
        if out.send(message).await.is_err() || last {
            return;
        }
    }
}

async fn write_frames(mut sink: SplitSink<WebSocket, Message>, mut queue: mpsc::Receiver<Message>) {
    while let Some(message) = queue.recv().await {
        if sink.send(message).await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

fn ping_timer(period: Duration) -> Option<Interval> {
    if period.is_zero() {
        return None;
    }
    let mut timer = tokio::time::interval_at(Instant::now() + period, period);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Some(timer)
}

async fn tick(timer: &mut Option<Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn frame(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

fn log_frame(id: &str, line: &str) -> Message {
    frame(json!({ "type": "log", "execution_id": id, "line": line }))
}

fn status_frame(id: &str, status: Status) -> Message {
    frame(json!({ "type": "status", "execution_id": id, "status": status }))
}

fn error_frame(message: String) -> Message {
    frame(json!({ "type": "error", "message": message }))
}
