//! Memory of idle proxied WebSockets, by hand (never in CI): `benches/wsmem.sh` builds the
//! release binaries, raises the file-descriptor limit and runs this.
//!
//! For each proxy (Gatehouse, the bare Pingora proxy of `benches/bare_pingora.rs`, and nginx
//! when installed), in front of the same `voiceflow` echo upstream (`/ws/voice`):
//!
//! 1. RSS at rest (after a few warm-up sockets opened and closed);
//! 2. N sockets opened, each echoing one frame, then held idle: RSS growth per socket;
//! 3. the proxy's CPU over 10 s while they sit idle;
//! 4. all N closed, then `WAIT` seconds: how much of the growth came back;
//! 5. churn: open N again, close them, open N a third time: that third peak against the first;
//!    then all closed and `WAIT` seconds again.
//!
//! Usage: wsmem [SOCKETS=3000] [WAIT_S=60] [PROXIES=gatehouse,bare,nginx]. Gatehouse runs with
//! `GATEHOUSE_ENV` (e.g. `MALLOC_ARENA_MAX=2`) added to its environment, to compare allocator
//! settings in one run, and `GATEHOUSE_WRAP` (e.g. `heaptrack -o /tmp/gh`) runs it under a
//! heap profiler (RSS is then the profiler's: read the profile, not the table).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::zombie_processes,
    missing_docs
)]

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[path = "common/mod.rs"]
mod common;
use common::{free_port, root, rss_kib, voiceflow};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running proxy: its process (whose RSS and CPU are read) and its address.
struct Proxy {
    name: &'static str,
    child: Child,
    /// The process to measure (nginx: the single worker).
    pid: u32,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const THREADS: &str = "2";

fn gatehouse(up: u16) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let file = dir.path().join("proxy.yaml");
    std::fs::write(
        &file,
        format!(
            r#"version: 1
server:
  listen: [{{ addr: "127.0.0.1:{listen}" }}]
  limits: {{ connections_per_ip: 100000 }}
upstream: {{ addr: "127.0.0.1:{up}" }}
defaults: {{ rate_limit: none }}
routes:
  - name: voice
    match: {{ path: /ws/voice }}
    auth: none
    websocket: {{ allow_missing_origin: true, max_per_ip: 100000 }}
"#
        ),
    )
    .unwrap();
    // GATEHOUSE_BIN picks another build (e.g. `--features system-allocator`); GATEHOUSE_WRAP
    // runs it under a profiler, e.g. "heaptrack -o /tmp/gh".
    let bin = std::env::var("GATEHOUSE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/release/gatehouse"));
    let wrap = std::env::var("GATEHOUSE_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut cmd = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.args(["run", "-c"])
        .arg(&file)
        .args(["--threads", THREADS, "--log-format", "json"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for kv in std::env::var("GATEHOUSE_ENV")
        .unwrap_or_default()
        .split_whitespace()
    {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let child = cmd.spawn().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
    wait_listening(addr, "gatehouse");
    Proxy {
        name: "gatehouse",
        pid: child.id(),
        child,
        addr,
        _dir: dir,
    }
}

fn bare(up: u16) -> Proxy {
    let listen = free_port();
    let child = Command::new(root().join("target/release/examples/bare_pingora"))
        .args([
            format!("127.0.0.1:{listen}"),
            format!("127.0.0.1:{up}"),
            THREADS.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("target/release/examples/bare_pingora: run benches/wsmem.sh");
    let addr: SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
    wait_listening(addr, "bare pingora");
    Proxy {
        name: "bare-pingora",
        pid: child.id(),
        child,
        addr,
        _dir: tempfile::tempdir().unwrap(),
    }
}

fn nginx(up: u16) -> Option<Proxy> {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let d = dir.path().display();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 65536; }}
http {{ access_log off;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{ listen 127.0.0.1:{listen};
    location / {{ proxy_pass http://127.0.0.1:{up}; proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h; }} }} }}
"
        ),
    )
    .unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr: SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
    wait_listening(addr, "nginx");
    // The worker is the process that holds the sockets.
    let master = child.id();
    let worker = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(master);
    Some(Proxy {
        name: "nginx",
        pid: worker,
        child,
        addr,
        _dir: dir,
    })
}

/// utime + stime, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// Opens `n` sockets (50 handshakes at a time), each echoing one binary frame.
async fn open(addr: SocketAddr, n: usize) -> Vec<Ws> {
    let url = format!("ws://{addr}/ws/voice");
    let mut all = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let batch = left.min(50);
        left -= batch;
        let opened = futures_util::future::join_all((0..batch).map(|_| async {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .unwrap();
            ws.send(Message::binary(vec![7u8; 64])).await.unwrap();
            while let Some(m) = ws.next().await {
                if m.unwrap().is_binary() {
                    break;
                }
            }
            ws
        }))
        .await;
        all.extend(opened);
    }
    all
}

async fn close(sockets: Vec<Ws>) {
    futures_util::future::join_all(sockets.into_iter().map(|mut ws| async move {
        let _ = ws.close(None).await;
        // Read until the close handshake ends (or the proxy drops the connection).
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }))
    .await;
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

async fn measure(p: &Proxy, n: usize, wait: u64) {
    let tck = 100.0; // CLK_TCK on Linux
    close(open(p.addr, 20).await).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rest = rss_kib(p.pid);
    let held = open(p.addr, n).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak1 = rss_kib(p.pid);
    let c0 = cpu_ticks(p.pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = (cpu_ticks(p.pid) - c0) as f64 / tck / 10.0 * 100.0;
    close(held).await;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let after_close = rss_kib(p.pid);
    let again = open(p.addr, n).await;
    let peak2 = rss_kib(p.pid);
    close(again).await;
    let third = open(p.addr, n).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak3 = rss_kib(p.pid);
    close(third).await;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let last = rss_kib(p.pid);
    let grown = peak1.saturating_sub(rest).max(1);
    let returned = peak1.saturating_sub(after_close) as f64 / grown as f64 * 100.0;
    println!(
        "{:<13} {:>10} {:>10} {:>9.1} {:>8.2}% {:>10} {:>8.0}% {:>10} {:>10} {:>7.2} {:>10}",
        p.name,
        mib(rest),
        mib(peak1),
        grown as f64 / n as f64,
        idle_cpu,
        mib(after_close),
        returned,
        mib(peak2),
        mib(peak3),
        peak3 as f64 / peak1 as f64,
        mib(last),
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let wait: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(60);
    let which = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "gatehouse,bare,nginx".into());
    let up_port = free_port();
    let mut up = voiceflow(up_port);
    println!(
        "{n} idle WebSockets, {wait} s after close; GATEHOUSE_ENV={:?}",
        std::env::var("GATEHOUSE_ENV").unwrap_or_default()
    );
    println!(
        "{:<13} {:>10} {:>10} {:>9} {:>9} {:>10} {:>9} {:>10} {:>10} {:>7} {:>10}",
        "proxy",
        "rest",
        "open",
        "KiB/sock",
        "idle CPU",
        "closed",
        "returned",
        "reopen",
        "3rd open",
        "3rd/1st",
        "closed"
    );
    for name in which.split(',') {
        let p = match name {
            "gatehouse" => Some(gatehouse(up_port)),
            "bare" => Some(bare(up_port)),
            "nginx" => nginx(up_port),
            _ => None,
        };
        match p {
            Some(p) => measure(&p, n, wait).await,
            None => println!("{name:<13} (not available)"),
        }
    }
    let _ = up.kill();
}
