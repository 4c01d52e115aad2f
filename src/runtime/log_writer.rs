//! The log's writer: lines are appended to one in-memory batch under a short lock (no system
//! call, no thread wake-up per line) and a background thread writes the batch out every
//! [`FLUSH_EVERY`]. A profile showed the per-line hand-off to a writer thread (a channel send
//! and a wake-up for every request) costing more than the proxying itself; batching makes
//! it one wake-up per interval. An idle proxy costs nothing: the thread sleeps until a line
//! arrives.
//!
//! A security log should not lose lines silently: if the output cannot keep up and the batch
//! reaches its cap, new lines are dropped and counted (`gatehouse_log_lines_dropped_total`)
//! rather than stalling every request behind a slow disk.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How often a non-empty batch is written out.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

struct Inner {
    batch: Mutex<Vec<u8>>,
    ready: Condvar,
    dropped: AtomicU64,
    cap: usize,
}

/// A `MakeWriter` for `tracing_subscriber::fmt` that batches lines.
#[derive(Clone)]
pub struct BatchWriter {
    inner: Arc<Inner>,
}

impl BatchWriter {
    /// Starts the flushing thread writing to `out`; at most `cap` bytes wait in memory.
    pub fn start(mut out: impl Write + Send + 'static, cap: usize) -> Self {
        let inner = Arc::new(Inner {
            batch: Mutex::new(Vec::with_capacity(64 * 1024)),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
            cap,
        });
        let flusher = inner.clone();
        let spawned = std::thread::Builder::new()
            .name("gatehouse-log".into())
            .spawn(move || loop {
                let data = {
                    let Ok(mut batch) = flusher.batch.lock() else {
                        return;
                    };
                    while batch.is_empty() {
                        batch = match flusher.ready.wait(batch) {
                            Ok(b) => b,
                            Err(_) => return,
                        };
                    }
                    drop(batch);
                    // Let the batch fill for one interval, then take it whole.
                    std::thread::sleep(FLUSH_EVERY);
                    match flusher.batch.lock() {
                        Ok(mut b) => std::mem::take(&mut *b),
                        Err(_) => return,
                    }
                };
                let _ = out.write_all(&data);
                let _ = out.flush();
            });
        if let Err(e) = spawned {
            eprintln!("warning: cannot start the log writer thread: {e}");
        }
        BatchWriter { inner }
    }

    /// Appends whole lines to the batch (or drops and counts them when it is full).
    pub fn append(&self, lines: &[u8]) {
        self.inner.append(lines);
    }

    /// Lines dropped because the batch was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

/// One event's writer.
pub struct Line<'a>(&'a Inner);

impl Inner {
    fn append(&self, buf: &[u8]) {
        let Ok(mut batch) = self.batch.lock() else {
            return;
        };
        if batch.len() + buf.len() > self.cap {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = batch.is_empty();
        batch.extend_from_slice(buf);
        drop(batch);
        if was_empty {
            self.ready.notify_one();
        }
    }
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = Line<'a>;
    fn make_writer(&'a self) -> Line<'a> {
        Line(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_and_overflow_is_counted() {
        let sink = Sink::default();
        let w = BatchWriter::start(sink.clone(), 1024);
        for i in 0..10 {
            writeln!(w.make_writer(), "line {i}").unwrap();
        }
        std::thread::sleep(FLUSH_EVERY * 10);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 10);
        assert!(text.starts_with("line 0\n") && text.ends_with("line 9\n"));
        // Past the cap, lines are dropped and counted, never blocking the writer.
        let big = vec![b'x'; 600];
        w.make_writer().write_all(&big).unwrap();
        w.make_writer().write_all(&big).unwrap();
        assert!(w.dropped() >= 1);
    }
}
