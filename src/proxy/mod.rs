//! The Pingora glue. Thin on purpose: it turns a session into [`crate::policy::RequestFacts`],
//! calls the one decision function, and enforces the verdict.
//!
//! - [`gate`] — the `ProxyHttp` implementation (the request lifecycle hooks).
//! - [`headers`] — what the upstream receives: normalized target, forwarded headers,
//!   hop-by-hop and forged headers removed.
//! - [`respond`] — the one place a reason becomes a status, headers and a JSON body.
//! - [`app`] — wraps the HTTP app to bound the whole request head (`request_header`).
//! - [`admin`] — `/healthz`, `/readyz`, `/metrics`.
//! - [`bind`] — clear errors for ports in use or privileged.
//! - [`server`] — assembles the Pingora server from the policy.
//! - [`timer_pool`] — timers re-armed across requests instead of created for each head.
//! - [`websocket`] — relays admitted WebSockets, and closes them when they lose their right to
//!   exist (reload, token expiry).

pub mod admin;
pub mod app;
pub mod bind;
pub mod gate;
pub mod headers;
pub mod respond;
pub mod server;
pub mod timer_pool;
pub mod websocket;
