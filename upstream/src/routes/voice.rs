//! `GET /ws/voice`: an audio loopback. Binary frames come back byte for byte; a text frame is
//! answered with `{"type":"text","received":"<the text>"}`. Protocol pings are answered by axum.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::json;

use crate::error::ApiError;

/// Upgrades to the loopback (JSON 400 if the request is not a WebSocket upgrade).
pub(crate) async fn upgrade(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|e| ApiError::new(e.status(), "not_websocket", e.body_text()))?;
    Ok(upgrade.on_upgrade(loopback))
}

async fn loopback(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Binary(audio) => Message::Binary(audio),
            Message::Text(text) => {
                let answer = json!({ "type": "text", "received": text.as_str() });
                Message::Text(answer.to_string().into())
            }
            // Pings are answered by axum; after a close, reading on flushes its reply and ends.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}
