//! The pure policy decision: compiled [`model::Policy`] + [`facts::RequestFacts`] in,
//! [`decision::Decision`] out. No I/O, no Pingora types, no clock. The proxy, `gatehouse
//! explain` and the tests all call [`evaluate::decide`] — one code path.

pub mod admission;
pub mod auth;
pub mod client_ip;
pub mod decision;
pub mod evaluate;
pub mod facts;
pub mod model;
pub mod origin;
pub mod path;

#[cfg(test)]
mod decision_table;

pub use decision::{
    Decision, Denial, Forward, Outcome, Preflight, Reason, ResponseCors, WebSocketForward,
};
pub use evaluate::{decide, decide_with};
pub use facts::RequestFacts;
pub use model::Policy;
