//! JWT verification. The provider's configuration — never the token — decides the algorithms
//! and the key: the token's `alg` must be one of the pinned algorithms, `none` is never one of
//! them, and an HS token cannot be verified with an RSA public key used as an HMAC secret
//! (the alg-confusion attack) because an RS provider holds no HMAC key at all.
//!
//! Time checks (`exp` required and numeric, `nbf`, leeway) are done here against the `now`
//! the caller passes, so the decision stays a pure function that `explain` and tests can run
//! with a fixed clock. Signature, `iss` and `aud` are checked by `jsonwebtoken`.

use std::collections::HashSet;

use http::{HeaderMap, HeaderName};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{authorization, AuthFailure, AuthInput, Identity};

/// Where a token may come from, in the order configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`
    Header,
    /// `Cookie: <name>=<token>`
    Cookie(String),
    /// `?<name>=<token>` — honoured on websocket routes only.
    Query(String),
}

impl TokenSource {
    /// The source as written in the policy.
    pub fn label(&self) -> String {
        match self {
            TokenSource::Header => "header".into(),
            TokenSource::Cookie(n) => format!("cookie:{n}"),
            TokenSource::Query(n) => format!("query:{n}"),
        }
    }
}

/// Where a provider's key comes from (the policy's key, for `dump`; never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `secret_env: NAME`
    Env(String),
    /// `secret_file: PATH`
    SecretFile(std::path::PathBuf),
    /// `jwks_file: PATH`
    Jwks(std::path::PathBuf),
    /// `public_key_file: PATH`
    PublicKey(std::path::PathBuf),
}

/// Verification keys of a provider.
pub enum JwtKeys {
    /// One key (`secret_env`, `secret_file` or `public_key_file`).
    Single(DecodingKey),
    /// A JWKS: keys selected by the token's `kid`.
    Set(Vec<JwkEntry>),
    /// The secret was not loaded (`check --no-secrets`, `audit`, `explain` without it): a
    /// token cannot be verified, and the decision says so instead of guessing.
    Unavailable(String),
}

/// One key of a JWKS.
pub struct JwkEntry {
    /// `kid`
    pub kid: String,
    /// `alg` of the JWK, when it names one: the token must then use exactly it.
    pub alg: Option<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        match self {
            JwtKeys::Single(_) => f.write_str("Single(<key>)"),
            JwtKeys::Set(s) => write!(f, "Set({} keys)", s.len()),
            JwtKeys::Unavailable(why) => write!(f, "Unavailable({why})"),
        }
    }
}

/// A configured JWT provider.
#[derive(Debug)]
pub struct JwtProvider {
    /// Pinned algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Keys.
    pub keys: JwtKeys,
    /// Accepted `iss`, if set.
    pub issuer: Option<String>,
    /// Accepted `aud` values, if set.
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` / `nbf`, in seconds.
    pub leeway: u64,
    /// Token sources in order.
    pub sources: Vec<TokenSource>,
    /// `forward_claims`: claim → header.
    pub forward_claims: Vec<(String, HeaderName)>,
    /// `secret_file`, resolved (`audit` checks who may read it).
    pub secret_file: Option<std::path::PathBuf>,
    /// Where the key comes from, as written (`dump`).
    pub key_source: KeySource,
    validation: Validation,
}

impl JwtProvider {
    /// Builds a provider; the configuration has been validated by the compiler.
    pub fn new(
        algorithms: Vec<Algorithm>,
        keys: JwtKeys,
        issuer: Option<String>,
        audience: Vec<String>,
        leeway: u64,
        sources: Vec<TokenSource>,
        forward_claims: Vec<(String, HeaderName)>,
    ) -> Self {
        let mut validation = Validation::new(algorithms.first().copied().unwrap_or_default());
        validation.algorithms = algorithms.clone();
        // exp/nbf are checked by `check_times` against the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = HashSet::new();
        validation.leeway = 0;
        // iss/aud are checked by `check_claims`: jsonwebtoken skips them when the token
        // omits them, and a configured issuer or audience must be *present* and match.
        validation.validate_aud = false;
        JwtProvider {
            algorithms,
            keys,
            issuer,
            audience,
            leeway,
            sources,
            forward_claims,
            secret_file: None,
            key_source: KeySource::Env(String::new()),
            validation,
        }
    }

    /// The `query:` parameter names this provider reads tokens from.
    pub fn query_params(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().filter_map(|s| match s {
            TokenSource::Query(n) => Some(n.as_str()),
            _ => None,
        })
    }

    pub(super) fn authenticate(
        &self,
        input: &AuthInput<'_>,
        provider: &str,
    ) -> Result<Identity, AuthFailure> {
        let headers = input.headers;
        let mut ignored = None;
        for source in &self.sources {
            let token = match source {
                TokenSource::Header => authorization(headers, "Bearer").map(str::to_string),
                TokenSource::Cookie(name) => {
                    let t = cookie(headers, name);
                    if let (Some(_), Some(why)) = (&t, input.cookie_refused) {
                        ignored = Some(why.to_string());
                        continue;
                    }
                    t
                }
                TokenSource::Query(name) => {
                    let t = input.query.and_then(|q| query_param(q, name));
                    if t.is_some() && !input.websocket_route {
                        ignored = Some(format!(
                            "token in query parameter {name:?} is only honoured on websocket routes"
                        ));
                        continue;
                    }
                    t
                }
            };
            let Some(token) = token else { continue };
            if let JwtKeys::Unavailable(why) = &self.keys {
                return Err(AuthFailure::Unavailable {
                    cause: format!("cannot verify the token ({}): {why}", source.label()),
                });
            }
            if let Some(mut id) = input.cache.and_then(|c| c.get(provider, &token, input.now)) {
                id.source = source.label();
                return Ok(id);
            }
            let (claims, exp) = self.verify_timed(&token, input.now).map_err(|cause| {
                AuthFailure::TokenInvalid {
                    cause: format!("{} ({})", cause, source.label()),
                }
            })?;
            let subject = claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string);
            let id = Identity {
                subject,
                expires_at: Some(exp.saturating_add(self.leeway)),
                claims: std::sync::Arc::new(claims),
                source: source.label(),
            };
            if let Some(c) = input.cache {
                c.put(provider, &token, &id);
            }
            return Ok(id);
        }
        let cause = match ignored {
            Some(why) => why,
            None if authorization(headers, "Basic").is_some() => {
                "basic credentials presented to a JWT provider".to_string()
            }
            None => format!(
                "no token in {}",
                self.sources
                    .iter()
                    .map(TokenSource::label)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Err(AuthFailure::Missing { cause })
    }

    /// Verifies a token: pinned algorithm, key, signature, `iss`, `aud`, `exp`, `nbf`.
    pub fn verify(&self, token: &str, now: u64) -> Result<Map<String, Value>, String> {
        self.verify_timed(token, now).map(|(claims, _)| claims)
    }

    /// [`Self::verify`], also returning `exp` (whole seconds).
    fn verify_timed(&self, token: &str, now: u64) -> Result<(Map<String, Value>, u64), String> {
        reject_crit(token)?;
        let header = decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(format!(
                "algorithm {:?} is not one of the pinned {:?}",
                header.alg, self.algorithms
            ));
        }
        let key = match &self.keys {
            JwtKeys::Unavailable(why) => return Err(format!("secret not loaded: {why}")),
            JwtKeys::Single(k) => k,
            JwtKeys::Set(set) => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or("token has no kid and the provider uses a JWKS")?;
                let entry = set
                    .iter()
                    .find(|e| e.kid == kid)
                    .ok_or_else(|| format!("unknown kid {kid:?}"))?;
                if entry.alg.is_some_and(|a| a != header.alg) {
                    return Err(format!(
                        "kid {kid:?} is for {:?}, token says {:?}",
                        entry.alg, header.alg
                    ));
                }
                &entry.key
            }
        };
        let data = decode::<Map<String, Value>>(token, key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => "bad signature".to_string(),
                K::InvalidIssuer => "wrong issuer".to_string(),
                K::InvalidAudience => "wrong audience".to_string(),
                K::InvalidAlgorithm => "algorithm does not fit the key".to_string(),
                other => format!("rejected: {other:?}"),
            }
        })?;
        self.check_claims(&data.claims)?;
        let exp = self.check_times(&data.claims, now)?;
        Ok((data.claims, exp))
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), String> {
        if let Some(want) = &self.issuer {
            match claims.get("iss") {
                Some(Value::String(iss)) if iss == want => {}
                Some(_) => return Err("wrong issuer".into()),
                None => return Err("token has no iss".into()),
            }
        }
        if !self.audience.is_empty() {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => self.audience.contains(a),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| self.audience.iter().any(|w| w == a)),
                Some(_) => false,
                None => return Err("token has no aud".into()),
            };
            if !ok {
                return Err("wrong audience".into());
            }
        }
        Ok(())
    }

    /// `exp` required and numeric, `nbf` honoured; returns `exp` in whole seconds.
    fn check_times(&self, claims: &Map<String, Value>, now: u64) -> Result<u64, String> {
        let exp = match claims.get("exp") {
            None => return Err("token has no exp".into()),
            Some(v) => numeric_date(v).ok_or("exp is not a number")?,
        };
        if exp + self.leeway as f64 <= now as f64 {
            return Err(format!(
                "expired at {exp} (now {now}, leeway {}s)",
                self.leeway
            ));
        }
        if let Some(v) = claims.get("nbf") {
            let nbf = numeric_date(v).ok_or("nbf is not a number")?;
            if nbf > (now + self.leeway) as f64 {
                return Err(format!(
                    "not valid before {nbf} (now {now}, leeway {}s)",
                    self.leeway
                ));
            }
        }
        Ok(exp.max(0.0) as u64)
    }
}

/// A header with `crit` names extensions the recipient must understand; Gatehouse
/// understands none (RFC 7515 §4.1.11), so such a token is rejected whatever it lists.
fn reject_crit(token: &str) -> Result<(), String> {
    use base64::Engine;
    let head = token.split('.').next().unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .map_err(|_| "malformed token: header is not base64url".to_string())?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| "malformed token: header is not a JSON object".to_string())?;
    if header.contains_key("crit") {
        return Err("token header has `crit`: no extension is understood".into());
    }
    Ok(())
}

fn numeric_date(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.is_finite())
}

/// The value of cookie `name`, from any `Cookie` header.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The first value of query parameter `name` (raw; JWTs are URL-safe).
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}
