//! The access log line: one per request, formatted by hand into a per-thread buffer and handed
//! to the [`BatchWriter`] in one append.
//!
//! Why not a `tracing` event like the other lines: a profile of the proxy under load showed the
//! event costing ~5 µs per request (field visitors, a `String` per `%` field, the timestamp
//! re-derived from the calendar for every line, serde's escaping) — more than the whole policy
//! decision. Here the line is written without per-field allocation and the timestamp's
//! `YYYY-MM-DDTHH:MM:SS.` prefix is computed once per second per thread.
//!
//! The line keeps the shape the `tracing` formatters gave it (same keys, same order, target
//! `access`), so `--log-format json|text`, `RUST_LOG` filtering (`access=off` silences it) and
//! log pipelines are unchanged; `docs/operations.md` documents the fields.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::log_writer::BatchWriter;
use crate::text::{self, IpText};

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `2026-12-04T17:05:57.891409Z  INFO access: request method=GET ...`
    Text,
    /// One JSON object per line.
    Json,
}

struct Sink {
    writer: BatchWriter,
    format: Format,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Installs the writer and format (once, by `run`, beside the `tracing` subscriber).
pub fn install(writer: BatchWriter, format: Format) {
    let _ = SINK.set(Sink { writer, format });
}

/// What one request's line says.
pub struct Entry<'a> {
    /// Method as sent.
    pub method: &'a str,
    /// Path as sent, without the query.
    pub path: &'a str,
    /// Route name or `-`.
    pub route: &'a str,
    /// Status sent (0: none).
    pub status: u16,
    /// Client IP of step 1, if decided.
    pub client_ip: Option<IpAddr>,
    /// From the head to the end (written in milliseconds, three decimals).
    pub duration: Duration,
    /// Request id.
    pub request_id: &'a str,
    /// Denied or forwarded, with the fields each has.
    pub outcome: Outcome<'a>,
}

/// The outcome part of the line.
pub enum Outcome<'a> {
    /// `denied`: reason code and cause.
    Denied {
        /// Reason code.
        reason: &'a str,
        /// Precise cause.
        cause: &'a str,
    },
    /// `request`: forwarded (or answered without a denial).
    Request {
        /// Became a WebSocket.
        upgraded: bool,
        /// How a WebSocket ended.
        closed: &'a str,
        /// A proxying error.
        error: &'a str,
    },
}

/// Writes the line, if the log is installed and `access` lines are enabled.
pub fn write(entry: &Entry) {
    let Some(sink) = SINK.get() else { return };
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    thread_local! {
        static BUF: RefCell<(String, Clock)> = RefCell::new((String::with_capacity(512), Clock::default()));
    }
    BUF.with(|cell| {
        let Ok(mut guard) = cell.try_borrow_mut() else {
            return;
        };
        let (buf, clock) = &mut *guard;
        buf.clear();
        format(buf, clock, sink.format, entry, SystemTime::now());
        sink.writer.append(buf.as_bytes());
        if buf.capacity() > 64 * 1024 {
            *buf = String::with_capacity(512);
        }
    });
}

/// The cached `YYYY-MM-DDTHH:MM:SS.` of the current second.
#[derive(Default)]
struct Clock {
    second: u64,
    prefix: String,
}

impl Clock {
    fn stamp(&mut self, out: &mut String, now: SystemTime) {
        let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        if self.prefix.is_empty() || self.second != secs {
            self.second = secs;
            self.prefix.clear();
            let (y, mo, day) = civil_from_days((secs / 86_400) as i64);
            let s = secs % 86_400;
            let _ = write!(
                self.prefix,
                "{y:04}-{mo:02}-{day:02}T{:02}:{:02}:{:02}.",
                s / 3600,
                (s / 60) % 60,
                s % 60
            );
        }
        out.push_str(&self.prefix);
        text::push_padded(out, u64::from(d.subsec_micros()), 6);
        out.push('Z');
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn format(out: &mut String, clock: &mut Clock, format: Format, e: &Entry, now: SystemTime) {
    let message = match e.outcome {
        Outcome::Denied { .. } => "denied",
        Outcome::Request { .. } => "request",
    };
    match format {
        Format::Json => {
            out.push_str("{\"timestamp\":\"");
            clock.stamp(out, now);
            out.push_str("\",\"level\":\"INFO\",\"message\":\"");
            out.push_str(message);
            out.push('"');
            json_field(out, "method", e.method);
            json_field(out, "path", e.path);
            json_field(out, "route", e.route);
            out.push_str(",\"status\":");
            text::push_decimal(out, u64::from(e.status));
            out.push_str(",\"client_ip\":\"");
            if let Some(ip) = e.client_ip {
                out.push_str(IpText::new(ip).as_str());
            }
            out.push_str("\",\"duration_ms\":");
            text::push_millis(out, e.duration.as_micros());
            json_field(out, "request_id", e.request_id);
            match e.outcome {
                Outcome::Denied { reason, cause } => {
                    json_field(out, "reason", reason);
                    json_field(out, "cause", cause);
                }
                Outcome::Request {
                    upgraded,
                    closed,
                    error,
                } => {
                    out.push_str(if upgraded {
                        ",\"upgraded\":true"
                    } else {
                        ",\"upgraded\":false"
                    });
                    json_field(out, "closed", closed);
                    json_field(out, "error", error);
                }
            }
            out.push_str(",\"target\":\"access\"}\n");
        }
        Format::Text => {
            clock.stamp(out, now);
            out.push_str("  INFO access: ");
            out.push_str(message);
            text_field(out, "method", e.method);
            text_field(out, "path", e.path);
            text_field(out, "route", e.route);
            out.push_str(" status=");
            text::push_decimal(out, u64::from(e.status));
            out.push_str(" client_ip=");
            if let Some(ip) = e.client_ip {
                out.push_str(IpText::new(ip).as_str());
            }
            out.push_str(" duration_ms=");
            text::push_millis(out, e.duration.as_micros());
            text_field(out, "request_id", e.request_id);
            match e.outcome {
                Outcome::Denied { reason, cause } => {
                    text_field(out, "reason", reason);
                    quoted_field(out, "cause", cause);
                }
                Outcome::Request {
                    upgraded,
                    closed,
                    error,
                } => {
                    out.push_str(if upgraded {
                        " upgraded=true"
                    } else {
                        " upgraded=false"
                    });
                    quoted_field(out, "closed", closed);
                    quoted_field(out, "error", error);
                }
            }
            out.push('\n');
        }
    }
}

/// `,"key":"value"` with the value escaped as a JSON string.
fn json_field(out: &mut String, key: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":\"");
    json_escape(out, value);
    out.push('"');
}

fn json_escape(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f | 0x7f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// ` key=value` as `tracing`'s text format writes a `Display` field; a value with a space or
/// a quote is written quoted, so a line always splits back into its fields.
fn text_field(out: &mut String, key: &str, value: &str) {
    if value.is_empty() || value.bytes().any(|b| b == b' ' || b == b'"' || b < 0x20) {
        quoted_field(out, key, value);
        return;
    }
    out.push(' ');
    out.push_str(key);
    out.push('=');
    out.push_str(value);
}

/// ` key="value"`, as `tracing`'s text format writes a string field.
fn quoted_field(out: &mut String, key: &str, value: &str) {
    out.push(' ');
    out.push_str(key);
    out.push_str("=\"");
    json_escape(out, value);
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry<'a>(outcome: Outcome<'a>) -> Entry<'a> {
        Entry {
            method: "GET",
            path: "/a \"b\"\\\u{1}é",
            route: "api",
            status: 401,
            client_ip: Some("10.0.0.7".parse().unwrap()),
            duration: Duration::from_nanos(523_400),
            request_id: "rid-1",
            outcome,
        }
    }

    // 2026-12-04T17:05:22.602424Z
    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(1_796_403_922_602_424)
    }

    #[test]
    fn json_line_parses_with_the_documented_keys() {
        let mut out = String::new();
        let denied = entry(Outcome::Denied {
            reason: "auth_required",
            cause: "no token in header",
        });
        format(&mut out, &mut Clock::default(), Format::Json, &denied, at());
        assert!(out.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["timestamp"], "2026-12-04T17:05:22.602424Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "denied");
        assert_eq!(v["path"], "/a \"b\"\\\u{1}é");
        assert_eq!(v["status"], 401);
        assert_eq!(v["client_ip"], "10.0.0.7");
        assert_eq!(v["duration_ms"], 0.523);
        assert_eq!(v["reason"], "auth_required");
        assert_eq!(v["cause"], "no token in header");
        assert_eq!(v["target"], "access");

        out.clear();
        let mut forwarded = entry(Outcome::Request {
            upgraded: true,
            closed: "idle timeout",
            error: "",
        });
        forwarded.client_ip = None;
        format(
            &mut out,
            &mut Clock::default(),
            Format::Json,
            &forwarded,
            at(),
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["message"], "request");
        assert_eq!(v["upgraded"], true);
        assert_eq!(v["closed"], "idle timeout");
        assert_eq!(v["client_ip"], "");
    }

    #[test]
    fn text_line_splits_back_into_fields() {
        let mut out = String::new();
        let e = Entry {
            path: "/x",
            ..entry(Outcome::Request {
                upgraded: false,
                closed: "",
                error: "",
            })
        };
        format(&mut out, &mut Clock::default(), Format::Text, &e, at());
        assert_eq!(
            out,
            "2026-12-04T17:05:22.602424Z  INFO access: request method=GET path=/x route=api \
             status=401 client_ip=10.0.0.7 duration_ms=0.523 request_id=rid-1 upgraded=false \
             closed=\"\" error=\"\"\n"
        );
        out.clear();
        format(
            &mut out,
            &mut Clock::default(),
            Format::Text,
            &entry(Outcome::Denied {
                reason: "r",
                cause: "c",
            }),
            at(),
        );
        assert!(out.contains(" path=\"/a \\\"b\\\"\\\\\\u0001é\" "), "{out}");
    }

    #[test]
    fn the_second_prefix_follows_the_clock() {
        let mut clock = Clock::default();
        let mut out = String::new();
        clock.stamp(&mut out, at());
        out.push('|');
        clock.stamp(&mut out, at() + Duration::from_millis(400));
        out.push('|');
        clock.stamp(&mut out, at() + Duration::from_secs(86_400 * 28));
        assert_eq!(
            out,
            "2026-12-04T17:05:22.602424Z|2026-12-04T17:05:23.002424Z|2027-01-01T17:05:22.602424Z"
        );
    }

    #[test]
    fn calendar_matches_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_791), (2026, 12, 4));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
