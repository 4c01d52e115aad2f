//! Prometheus metrics, in a registry of our own (Pingora's default-registry metrics are
//! exported beside them). Reason codes are the same strings as in responses and logs.

use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The metrics Gatehouse exports on the admin listener.
pub struct Metrics {
    registry: Registry,
    /// `gatehouse_requests_total{route,status}`
    pub requests: IntCounterVec,
    /// `gatehouse_denied_total{route,reason}`
    pub denied: IntCounterVec,
    /// `gatehouse_policy_reload_total{result}`
    pub reloads: IntCounterVec,
    /// `gatehouse_websockets_open`
    pub websockets_open: IntGauge,
    /// `gatehouse_route_in_flight{route}`: requests at the upstream.
    pub in_flight: IntGaugeVec,
    /// `gatehouse_route_queued{route}`: requests waiting in a route's queue.
    pub queued: IntGaugeVec,
    /// `gatehouse_route_websockets_open{route}`
    pub route_websockets: IntGaugeVec,
    /// `gatehouse_shadow_limited_total{route}`: refusals a `shadow` limit would have made.
    pub shadow_limited: IntCounterVec,
    /// `gatehouse_log_lines_dropped_total`: log lines the background writer could not keep.
    log_dropped: IntGauge,
}

static LOG_WRITER: std::sync::OnceLock<super::log_writer::BatchWriter> = std::sync::OnceLock::new();

/// Where `/metrics` reads the count of dropped log lines from (set once, by `run`).
pub fn set_log_writer(w: super::log_writer::BatchWriter) {
    let _ = LOG_WRITER.set(w);
}

/// A gauge raised for as long as this value lives.
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    /// Raises `gauge` until drop.
    pub fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|_| unreachable_metric());
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let requests = counter(
            "gatehouse_requests_total",
            "Requests answered, by route and status",
            &["route", "status"],
        );
        let denied = counter(
            "gatehouse_denied_total",
            "Requests denied, by route and reason code",
            &["route", "reason"],
        );
        let reloads = counter(
            "gatehouse_policy_reload_total",
            "Policy reloads, by result",
            &["result"],
        );
        let websockets_open = IntGauge::new(
            "gatehouse_websockets_open",
            "WebSockets currently open through the proxy",
        )
        .unwrap_or_else(|_| unreachable_gauge());
        let _ = registry.register(Box::new(websockets_open.clone()));
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["route"])
                .unwrap_or_else(|_| unreachable_gauge_vec());
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        let in_flight = gauge(
            "gatehouse_route_in_flight",
            "Requests of the route forwarded and not finished",
        );
        let queued = gauge(
            "gatehouse_route_queued",
            "Requests waiting in the route's concurrency queue",
        );
        let route_websockets = gauge(
            "gatehouse_route_websockets_open",
            "WebSockets open on the route",
        );
        let shadow_limited = counter(
            "gatehouse_shadow_limited_total",
            "Requests a shadow-mode rate limit would have refused, by route",
            &["route"],
        );
        let log_dropped = IntGauge::new(
            "gatehouse_log_lines_dropped_total",
            "Log lines dropped because the log writer fell behind (a counter, read at scrape time)",
        )
        .unwrap_or_else(|_| unreachable_gauge());
        let _ = registry.register(Box::new(log_dropped.clone()));
        Metrics {
            registry,
            log_dropped,
            requests,
            denied,
            reloads,
            websockets_open,
            in_flight,
            queued,
            route_websockets,
            shadow_limited,
        }
    }

    /// Text exposition of our metrics and Pingora's.
    pub fn render(&self) -> Vec<u8> {
        if let Some(w) = LOG_WRITER.get() {
            self.log_dropped.set(w.dropped() as i64);
        }
        let mut families = self.registry.gather();
        families.extend(prometheus::gather());
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&families, &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

// Metric names and labels above are constants that are valid; these exist only so a
// (impossible) registration failure cannot panic the proxy.
fn unreachable_metric() -> IntCounterVec {
    IntCounterVec::new(Opts::new("gatehouse_invalid", "invalid"), &["x"])
        .unwrap_or_else(|_| std::process::abort())
}
fn unreachable_gauge() -> IntGauge {
    IntGauge::new("gatehouse_invalid_gauge", "invalid").unwrap_or_else(|_| std::process::abort())
}
fn unreachable_gauge_vec() -> IntGaugeVec {
    IntGaugeVec::new(Opts::new("gatehouse_invalid_gauge_vec", "invalid"), &["x"])
        .unwrap_or_else(|_| std::process::abort())
}
