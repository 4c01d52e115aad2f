//! Gatehouse: a reverse proxy that enforces one YAML policy file.
//!
//! A map of who decides what:
//! - [`config`] — the policy file: YAML → raw structs → compiled [`policy::Policy`], with
//!   every error located by file, line:column and key path.
//! - [`policy`] — the **pure decision**: policy + request facts → verdict + trail. No I/O, no
//!   clock, no Pingora. The proxy, `gatehouse explain` and the tests all call
//!   [`policy::decide`].
//! - [`runtime`] — state that lives across requests: the swappable policy snapshot, metrics.
//! - [`reload`] — watch the policy and its files, recompile, swap atomically or keep the old.
//! - [`proxy`] — the Pingora glue: translate a session into facts, enforce the verdict,
//!   forward, answer denials as JSON.
//! - [`cli`] — the `gatehouse` commands.
//! - [`text`] — numbers and addresses as text for the per-request paths, without `core::fmt`.

pub mod cli;
pub mod config;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod runtime;
pub mod text;
