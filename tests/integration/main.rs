//! Integration tests: the real `gatehouse` and `voiceflow` binaries on loopback ports the OS
//! picks, driven by a raw HTTP/1.1 client and a real WebSocket client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod access;
mod browser;
mod cli;
mod foundation;
mod hardening;
mod limits;
mod origins;
mod schema;
mod support;
mod tls;
mod websocket_race;
mod websockets;
