//! Authentication providers (`auth:` in the policy): JWT and HTTP basic. Each verifies what a
//! request presents and answers with an identity or a rejection whose precise cause is for the
//! log only — the client learns the reason code, never which check failed.

pub mod basic;
pub mod jwt;

use http::HeaderMap;
use serde_json::{Map, Value};

use super::decision::Reason;

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

/// Tokens already verified, kept by the runtime (a bounded cache cleared on every reload).
/// The decision stays pure: it asks the cache it is handed, as it reads the time it is handed;
/// `explain` and the tests hand none.
pub trait TokenCache {
    /// A still-valid identity verified earlier for `token` by provider `provider`.
    fn get(&self, provider: &str, token: &str, now: u64) -> Option<Identity>;
    /// Remembers a verification.
    fn put(&self, provider: &str, token: &str, identity: &Identity);
}

/// What authentication reads of a request.
#[derive(Clone, Copy)]
pub struct AuthInput<'a> {
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string.
    pub query: Option<&'a str>,
    /// Whether `query:` token sources are honoured (websocket routes only).
    pub websocket_route: bool,
    /// Current time, Unix seconds.
    pub now: u64,
    /// `Some(why)` when a `cookie:` token must not be used: the request is cross-site
    /// (POLICY.md, "Cookie tokens and cross-site requests").
    pub cookie_refused: Option<&'static str>,
    /// Verified tokens (the proxy's runtime cache), if any.
    pub cache: Option<&'a dyn TokenCache>,
}

/// Who a request proved to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// JWT `sub` or the basic-auth user name.
    pub subject: Option<String>,
    /// JWT `exp` plus the provider's leeway (Unix seconds): when the credential stops being
    /// valid. `None` for basic auth.
    pub expires_at: Option<u64>,
    /// Verified JWT claims (empty for basic auth). Shared: a cached identity is handed to
    /// every request of its token without copying the claims.
    pub claims: std::sync::Arc<Map<String, Value>>,
    /// Where the credential came from (`header`, `cookie:vf_token`, `query:access_token`, `basic`).
    pub source: String,
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
    /// A token was presented but the provider's secret was not loaded (a policy loaded for
    /// review without secrets): the outcome cannot be known.
    Unavailable {
        /// Which secret is missing.
        cause: String,
    },
}

impl AuthFailure {
    /// The one place a failure becomes a reason code, the client's message and the cause
    /// (for the log and the trail only).
    pub fn classify(&self) -> (Reason, &'static str, &str) {
        match self {
            AuthFailure::Missing { cause } => {
                (Reason::AuthRequired, "authentication required", cause)
            }
            AuthFailure::TokenInvalid { cause } => {
                (Reason::TokenInvalid, "the token was rejected", cause)
            }
            AuthFailure::CredentialsInvalid { cause } => (
                Reason::CredentialsInvalid,
                "the credentials were rejected",
                cause,
            ),
            AuthFailure::Unavailable { cause } => (
                Reason::TokenInvalid,
                "the token could not be verified",
                cause,
            ),
        }
    }
}

impl AuthProvider {
    /// Authenticates a request.
    pub fn authenticate(&self, input: &AuthInput<'_>) -> Result<Identity, AuthFailure> {
        match &self.kind {
            AuthKind::Jwt(j) => j.authenticate(input, &self.name),
            AuthKind::Basic(b) => b.authenticate(input.headers),
        }
    }

    /// Whether verifying this provider's credentials is expensive enough (password hashing)
    /// that it must not run on the proxy's event loop.
    pub fn is_slow(&self) -> bool {
        matches!(self.kind, AuthKind::Basic(_))
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
