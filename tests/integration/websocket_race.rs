//! Regression (issue 6.2): freshly upgraded WebSockets were closed 0–6 ms after the 101, with
//! no close frame, in about 1 of 50 when clients opened them ten at a time (a race in
//! pingora-proxy 0.9.1, cloudflare/pingora#946, patched in `vendor/pingora-proxy`). This
//! opens hundreds, ten at a time, sends one binary frame on each and fails on any loss.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::foundation::POLICY;
use crate::support::*;

const SOCKETS: usize = 1000;
const AT_ONCE: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_upgrades_ten_at_a_time_lose_none() {
    let up = Upstream::start();
    // Two workers, as `run` uses on this machine by default.
    let gh = Proxy::start_with_threads(POLICY, up.addr, 2);
    let url = format!("ws://{}/ws/voice", gh.addr);
    let mut lost = Vec::new();
    for round in 0..SOCKETS / AT_ONCE {
        let tasks: Vec<_> = (0..AT_ONCE)
            .map(|i| {
                let url = url.clone();
                tokio::spawn(async move {
                    let (mut ws, resp) = tokio_tungstenite::connect_async(url.as_str())
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                    if resp.status() != 101 {
                        return Err(format!("status {}", resp.status()));
                    }
                    let upgraded = Instant::now();
                    let payload: Vec<u8> = (0..64u8).map(|b| b ^ i as u8).collect();
                    ws.send(Message::Binary(payload.clone().into()))
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                    loop {
                        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                            Ok(Some(Ok(Message::Binary(b))))
                                if b.as_ref() == payload.as_slice() =>
                            {
                                break;
                            }
                            Ok(Some(Ok(_))) => continue,
                            other => {
                                return Err(format!(
                                    "no echo {} ms after the 101: {other:?}",
                                    upgraded.elapsed().as_millis()
                                ))
                            }
                        }
                    }
                    let _ = ws.close(None).await;
                    Ok::<(), String>(())
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            if let Err(e) = t.await.unwrap() {
                lost.push(format!("round {round} socket {i}: {e}"));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {SOCKETS} WebSockets lost:\n{}",
        lost.len(),
        lost.join("\n")
    );
}
