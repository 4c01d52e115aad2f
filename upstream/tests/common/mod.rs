//! Shared by the integration tests: start the real `voiceflow` binary on a free port, and a few
//! small client helpers. Not every test crate uses every helper.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio_tungstenite::tungstenite::Message;

/// Generous bound on any single wait: machines running the tests may be slow and busy.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// The WebSocket client stream type.
pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A running `voiceflow server`, killed when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
    child: Child,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts `voiceflow server --port 0 <args>` and waits for its listening line.
    pub(crate) async fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_voiceflow"))
            .args(["server", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn voiceflow");
        let pid = child.id().expect("pid");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        tokio::time::timeout(DEADLINE, stdout.read_line(&mut line))
            .await
            .expect("listening line in time")
            .expect("read stdout");
        let addr = line
            .trim_end()
            .strip_prefix("voiceflow listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address");
        Server {
            addr,
            pid,
            child,
            _stdout: stdout,
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    #[cfg(unix)]
    pub(crate) async fn terminate(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(sent.success());
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait")
    }

    /// `http://ADDR<path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Opens a WebSocket to `ws://ADDR<path>`.
    pub(crate) async fn ws(&self, path: &str) -> Ws {
        let url = format!("ws://{}{path}", self.addr);
        let (ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("connect");
        ws
    }

    /// Sends raw bytes on a new connection and returns everything read back until the server
    /// closes it (so the request should say `Connection: close`). The client does not
    /// half-close: hyper drops a request whose connection's read side ended.
    pub(crate) async fn raw(&self, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
            .await
            .expect("answer in time")
            .expect("read");
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// `GET /debug/requests`.
    pub(crate) async fn debug_requests(&self) -> Vec<Value> {
        reqwest::get(self.url("/debug/requests"))
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }
}

/// The JSON body of a raw HTTP/1.1 answer.
pub(crate) fn raw_body(answer: &str) -> Value {
    let (_, body) = answer.split_once("\r\n\r\n").expect("head and body");
    serde_json::from_str(body).expect("json body")
}

/// The next text frame as JSON, skipping `{"type":"ping"}` frames and protocol frames.
pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("frame in time")
            .expect("stream open")
            .expect("frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("json frame");
            if value["type"] != "ping" {
                return value;
            }
        }
    }
}

/// A suite with one step per `(say, expect)` pair.
pub(crate) fn suite(steps: &[(&str, &str)], step_delay_ms: u64) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|(say, expect)| serde_json::json!({ "say": say, "expect": expect }))
        .collect();
    serde_json::json!({ "name": "demo", "steps": steps, "step_delay_ms": step_delay_ms })
}

/// Polls the status of `id` until it is no longer running; returns the last answer.
pub(crate) async fn wait_finished(server: &Server, id: &str) -> Value {
    let url = server.url(&format!("/api/v1/tests/status/{id}"));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let status: Value = reqwest::get(&url)
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if status["status"] != "running" {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still running: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 20 ms until it returns `Some`, failing after [`DEADLINE`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
