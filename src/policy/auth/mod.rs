//! Authentication providers (`auth:` in the policy): JWT and HTTP basic. Each verifies what a
//! request presents and answers with an identity or a rejection whose precise cause is for the
//! log only — the client learns the reason code, never which check failed.

pub mod basic;
pub mod jwt;

use http::HeaderMap;
use serde_json::{Map, Value};

pub use basic::BasicProvider;
pub use jwt::{JwtProvider, TokenSource};

/// A named provider from `auth:`.
#[derive(Debug)]
pub struct AuthProvider {
    /// Its name under `auth:`.
    pub name: String,
    /// JWT or basic.
    pub kind: AuthKind,
}

/// The kind of a provider.
#[derive(Debug)]
pub enum AuthKind {
    /// Bearer tokens.
    Jwt(Box<JwtProvider>),
    /// `Authorization: Basic` against an htpasswd file.
    Basic(BasicProvider),
}

/// Who a request proved to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// JWT `sub` or the basic-auth user name.
    pub subject: Option<String>,
    /// Verified JWT claims (empty for basic auth).
    pub claims: Map<String, Value>,
    /// Where the credential came from (`header`, `cookie:vf_token`, `query:access_token`, `basic`).
    pub source: String,
    /// A `query:` source whose parameter must be removed before forwarding.
    pub strip_query_param: Option<String>,
}

/// Why authentication failed. `cause` is for the log and the explain trail only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// Nothing usable was presented → 401 `auth_required`.
    Missing {
        /// What was (not) found.
        cause: String,
    },
    /// A JWT was presented and rejected → 401 `token_invalid`.
    TokenInvalid {
        /// Precise cause (expired, bad signature, unknown kid, …).
        cause: String,
    },
    /// Basic credentials were presented and rejected → 401 `credentials_invalid`.
    CredentialsInvalid {
        /// Precise cause (unknown user, wrong password, malformed header).
        cause: String,
    },
}

impl AuthProvider {
    /// Authenticates a request. `query` is the raw query string; `websocket_route` tells
    /// whether `query:` token sources are honoured.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        websocket_route: bool,
        now: u64,
    ) -> Result<Identity, AuthFailure> {
        match &self.kind {
            AuthKind::Jwt(j) => j.authenticate(headers, query, websocket_route, now),
            AuthKind::Basic(b) => b.authenticate(headers),
        }
    }

    /// The `WWW-Authenticate` challenge for a 401 from this provider.
    pub fn challenge(&self, failure: &AuthFailure) -> String {
        match &self.kind {
            AuthKind::Jwt(_) => match failure {
                AuthFailure::TokenInvalid { .. } => "Bearer error=\"invalid_token\"".to_string(),
                _ => "Bearer".to_string(),
            },
            AuthKind::Basic(b) => format!("Basic realm=\"{}\"", b.realm.replace(['"', '\\'], "")),
        }
    }
}

/// The credentials part of `Authorization: <scheme> <credentials>` when the scheme matches
/// (case-insensitively), else `None`.
pub(crate) fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}
