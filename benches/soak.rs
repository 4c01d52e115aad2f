//! Soak and abuse runs, by hand (never in CI): `benches/soak.sh` builds the release binaries
//! and runs this with a raised file-descriptor limit. Everything stays on loopback and every
//! loop is bounded in count and time.
//!
//! - `soak [SOCKETS] [SECONDS]`: holds SOCKETS idle WebSockets through Gatehouse while 16
//!   clients send a steady request load; the policy is rewritten (reloaded) every 3 s and the
//!   upstream is restarted once, half way. Prints 5xx and dropped sockets inside and outside
//!   the restart window, the reload re-check times, and Gatehouse's RSS at start, middle, end.
//! - `slowloris [CONNS]`: p50/p99 of normal requests before and while CONNS clients send their
//!   request heads one byte at a time.
//! - `upload [MIB]`: streams a MIB-MiB chunked upload through Gatehouse to a route whose
//!   `max_body` allows it, sampling Gatehouse's RSS as it goes: bodies are streamed, never
//!   buffered whole, so RSS must not grow with the upload.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::zombie_processes,
    missing_docs
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

#[path = "common/mod.rs"]
mod common;
use common::{free_port, root, rss_kib, voiceflow};

fn policy(listen: u16, admin: u16, up: u16, generation: u64) -> String {
    format!(
        r#"# generation {generation}
version: 1
server:
  listen: [{{ addr: "127.0.0.1:{listen}" }}]
  admin: "127.0.0.1:{admin}"
  limits: {{ connections_per_ip: 100000 }}
upstream: {{ addr: "127.0.0.1:{up}" }}
defaults: {{ rate_limit: none }}
routes:
  - name: health
    match: {{ path: /health }}
    auth: none
  - name: upload
    match: {{ prefix: /api/v1/echo/ }}
    auth: none
    max_body: 4GiB
    upstream_timeout: 10m
  - name: voice
    match: {{ path: /ws/voice }}
    auth: none
    websocket: {{ allow_missing_origin: true }}
"#
    )
}

struct Gate {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    admin: u16,
    up: u16,
}

fn gatehouse(up: u16) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let file = dir.path().join("proxy.yaml");
    std::fs::write(&file, policy(listen, admin, up, 0)).unwrap();
    let log = std::fs::File::create(dir.path().join("gatehouse.log")).unwrap();
    let child = Command::new(root().join("target/release/gatehouse"))
        .args(["run", "-c"])
        .arg(&file)
        .args(["--threads", "2", "--log-format", "json"])
        .env("RUST_LOG", "warn,gatehouse::reload=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "gatehouse did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Gate {
        child,
        addr,
        dir,
        admin,
        up,
    }
}

impl Gate {
    fn reload(&self, generation: u64) {
        let tmp = self.dir.path().join(".p.tmp");
        std::fs::write(
            &tmp,
            policy(self.addr.port(), self.admin, self.up, generation),
        )
        .unwrap();
        std::fs::rename(&tmp, self.dir.path().join("proxy.yaml")).unwrap();
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gatehouse.log")).unwrap_or_default()
    }
}

fn get(addr: SocketAddr, path: &str) -> Option<(u16, Duration)> {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let status = std::str::from_utf8(buf.get(9..12)?).ok()?.parse().ok()?;
    Some((status, t.elapsed()))
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize]
}

async fn soak(sockets: usize, seconds: u64) {
    let up_port = free_port();
    let mut up = voiceflow(up_port);
    let gh = gatehouse(up_port);
    let pid = gh.child.id();
    let rss_start = rss_kib(pid);
    let url = format!("ws://{}/ws/voice", gh.addr);
    let started = Instant::now();
    let restart_at = Duration::from_secs(seconds / 2);
    let window = (restart_at, restart_at + Duration::from_secs(5));
    let in_window = move |t: Duration| t >= window.0 && t <= window.1;
    let dropped_in = Arc::new(AtomicU64::new(0));
    let dropped_out = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Idle sockets: each waits for the end of the run; any close before it is a drop.
    let mut held = Vec::new();
    for i in 0..sockets {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("socket {i}: {e}"));
        let (din, dout, stop) = (dropped_in.clone(), dropped_out.clone(), stop.clone());
        held.push(tokio::spawn(async move {
            let (_tx, mut rx) = ws.split();
            let _ = rx.next().await;
            if !stop.load(Ordering::Acquire) {
                let t = started.elapsed();
                if t >= window.0 && t <= window.1 {
                    din.fetch_add(1, Ordering::Relaxed);
                } else {
                    dout.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let rss_open = rss_kib(pid);
    println!(
        "{sockets} idle WebSockets open: RSS {rss_start} KiB -> {rss_open} KiB ({:.1} KiB/socket)",
        (rss_open.saturating_sub(rss_start)) as f64 / sockets.max(1) as f64
    );

    // Steady load.
    let ok = Arc::new(AtomicU64::new(0));
    let s5_in = Arc::new(AtomicU64::new(0));
    let s5_out = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..16 {
        let (ok, s5_in, s5_out, stop) = (ok.clone(), s5_in.clone(), s5_out.clone(), stop.clone());
        let addr = gh.addr;
        load.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                match get(addr, "/health") {
                    Some((s, _)) if s < 500 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        if in_window(started.elapsed()) {
                            s5_in.fetch_add(1, Ordering::Relaxed)
                        } else {
                            s5_out.fetch_add(1, Ordering::Relaxed)
                        };
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }

    let mut generation = 0;
    let mut rss_mid = 0;
    let mut restarted = false;
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(3)).await;
        generation += 1;
        gh.reload(generation);
        if !restarted && started.elapsed() >= restart_at {
            rss_mid = rss_kib(pid);
            let _ = up.kill();
            let _ = up.wait();
            up = voiceflow(up_port);
            restarted = true;
        }
    }
    stop.store(true, Ordering::Release);
    for t in load {
        let _ = t.join();
    }
    let rss_end = rss_kib(pid);
    for h in held {
        h.abort();
    }
    let log = gh.log();
    let rechecks: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("re-checked"))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["micros"].as_u64()
        })
        .collect();
    println!(
        "ran {seconds}s: {} requests ok, {generation} reloads, upstream restarted once",
        ok.load(Ordering::Relaxed)
    );
    println!(
        "5xx / failed requests: {} outside the restart window, {} inside it",
        s5_out.load(Ordering::Relaxed),
        s5_in.load(Ordering::Relaxed)
    );
    println!(
        "dropped WebSockets: {} outside the restart window, {} with the upstream restart",
        dropped_out.load(Ordering::Relaxed),
        dropped_in.load(Ordering::Relaxed)
    );
    println!(
        "RSS KiB: start {rss_start}, sockets open {rss_open}, middle {rss_mid}, end {rss_end}"
    );
    if !rechecks.is_empty() {
        let max = rechecks.iter().max().copied().unwrap_or(0);
        println!(
            "reload re-check of open sockets: {} reloads, max {:.1} ms, first {:.1} ms",
            rechecks.len(),
            max as f64 / 1000.0,
            rechecks[0] as f64 / 1000.0
        );
    }
    let _ = up.kill();
    let _ = up.wait();
    let mut child = gh.child;
    let _ = child.kill();
    let _ = child.wait();
}

fn slowloris(conns: usize) {
    let up_port = free_port();
    let mut up = voiceflow(up_port);
    let gh = gatehouse(up_port);
    let sample = |n: usize| {
        let mut v: Vec<Duration> = (0..n)
            .filter_map(|_| get(gh.addr, "/health").map(|(_, d)| d))
            .collect();
        (percentile(&mut v, 0.5), percentile(&mut v, 0.99), v.len())
    };
    let (p50, p99, n) = sample(500);
    println!("before: {n} requests, p50 {p50:?}, p99 {p99:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let mut slow = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..conns {
        if let Ok(s) = TcpStream::connect(gh.addr) {
            streams.push(s);
        }
    }
    let opened = streams.len();
    let stop2 = stop.clone();
    slow.push(std::thread::spawn(move || {
        let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let mut i = 0;
        while !stop2.load(Ordering::Acquire) && i < 10_000 {
            for s in streams.iter_mut() {
                let _ = s.write_all(&[head[i % head.len()]]);
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
    }));
    std::thread::sleep(Duration::from_secs(1));
    let (p50, p99, n) = sample(500);
    println!("with {opened} slow-loris connections: {n} requests, p50 {p50:?}, p99 {p99:?}");
    stop.store(true, Ordering::Release);
    for t in slow {
        let _ = t.join();
    }
    let _ = up.kill();
    let _ = up.wait();
    let mut child = gh.child;
    let _ = child.kill();
    let _ = child.wait();
}

fn upload(mib: usize) {
    let up_port = free_port();
    let mut up = voiceflow(up_port);
    let gh = gatehouse(up_port);
    let pid = gh.child.id();
    let before = rss_kib(pid);
    let mut s = TcpStream::connect(gh.addr).unwrap();
    write!(
        s,
        "POST /api/v1/echo/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut peak = before;
    let started = Instant::now();
    for i in 0..mib {
        write!(s, "{:x}\r\n", chunk.len()).unwrap();
        s.write_all(&chunk).unwrap();
        s.write_all(b"\r\n").unwrap();
        if i % 64 == 0 {
            peak = peak.max(rss_kib(pid));
        }
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let after = rss_kib(pid);
    let status = answer.get(9..12).unwrap_or("?");
    let bytes = answer
        .split("\"body_bytes\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .unwrap_or("?");
    println!(
        "{mib} MiB chunked upload in {:.1}s: status {status}, upstream counted {bytes} bytes",
        started.elapsed().as_secs_f64()
    );
    println!("Gatehouse RSS KiB: before {before}, peak while streaming {peak}, after {after}");
    let _ = up.kill();
    let _ = up.wait();
    let mut child = gh.child;
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n = |i: usize, d: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    assert!(
        Path::new(&root().join("target/release/gatehouse")).exists(),
        "build first: benches/soak.sh does"
    );
    match args.first().map(String::as_str) {
        Some("slowloris") => slowloris(n(1, 1000)),
        Some("upload") => upload(n(1, 1024)),
        Some("soak") | None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(soak(n(1, 2000), n(2, 60) as u64));
        }
        Some(other) => {
            eprintln!("unknown mode {other}: soak [SOCKETS] [SECONDS] | slowloris [CONNS]")
        }
    }
}
