//! The command line of the real `voiceflow` binary: a port in use fails with a message naming
//! the address (and the holder where the OS tells), and flag values are checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;

use common::{Server, DEADLINE};
use tokio::process::Command;

async fn run(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_voiceflow"))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(DEADLINE, output)
        .await
        .expect("exits in time")
        .expect("runs")
}

#[tokio::test]
async fn port_in_use_fails_naming_the_address() {
    let first = Server::start(&[]).await;
    let port = first.addr.port().to_string();
    let output = run(&["server", "--port", &port]).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!("error: cannot listen on 127.0.0.1:{port}: address already in use");
    assert!(stderr.contains(&expected), "{stderr}");
    if stderr.contains("held by") {
        assert!(stderr.contains(&format!("pid {}", first.pid)), "{stderr}");
    }
    assert!(output.stdout.is_empty(), "no listening line");
}

#[tokio::test]
async fn flag_values_are_checked() {
    for args in [
        &["server", "--cors=maybe"][..],
        &["server", "--swagger=yes"],
        &["server", "--port", "99999"],
        &["server", "--ws-ping", "-1"],
        &["serve"],
    ] {
        let output = run(args).await;
        assert!(!output.status.success(), "{args:?}");
    }
}

#[tokio::test]
async fn accepts_the_documented_flag_syntax() {
    let server = Server::start(&[
        "--host",
        "127.0.0.1",
        "--cors=false",
        "--swagger=false",
        "--ws-ping",
        "0",
        "--debug",
    ])
    .await;
    assert!(server.addr.ip().is_loopback());
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_cleanly_with_a_websocket_open() {
    let server = Server::start(&[]).await;
    let _ws = server.ws("/ws").await;
    let status = server.terminate().await;
    assert!(status.success(), "{status}");
}
