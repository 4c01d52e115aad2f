//! The policy file as written: serde structs that mirror `reference-policy.yaml` key for key.
//! Values with a syntax of their own (durations, CIDRs, rates) stay text here so that the
//! compiler can check them all and report every mistake, not just the first. Unknown keys are
//! collected by the loader (serde_ignored) and reported as errors: nothing is silently dropped.

// Fields are the policy keys themselves, documented in docs/policy.md.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

/// A scalar kept as text, whether YAML read it as a string, a number or a boolean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The whole file.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawPolicy {
    /// Format version: 1.
    pub version: u32,
    /// Listeners, client IP, timeouts, limits, hygiene.
    pub server: RawServer,
    /// The server Gatehouse protects.
    pub upstream: RawUpstream,
    #[serde(default)]
    /// What every route inherits (max_body, rate_limit) unless it sets its own.
    pub defaults: RawDefaults,
    /// CIDR rules applied to every request before routing: deny wins, then allow (absent = allow all).
    pub access: Option<RawAccess>,
    #[serde(default)]
    /// Named authentication providers (JWT or basic) that routes refer to.
    pub auth: BTreeMap<String, RawAuthProvider>,
    #[serde(default)]
    /// Named origin lists for cors.origins and websocket.origins.
    pub origins: BTreeMap<String, RawOriginList>,
    /// Routes, matched in file order: the first whose path and methods match wins.
    pub routes: Vec<RawRoute>,
}

/// `server:`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawServer {
    /// Public listeners (plain HTTP, or TLS with cert and key).
    pub listen: Vec<RawListen>,
    /// Admin listener (/metrics, /healthz, /readyz); keep it on loopback.
    pub admin: Option<Text>,
    #[serde(default)]
    /// How the client IP is found.
    pub client_ip: RawClientIp,
    #[serde(default)]
    /// Timeouts.
    pub timeouts: RawTimeouts,
    #[serde(default)]
    /// Connection caps, head limits, brute-force guard.
    pub limits: RawLimits,
    #[serde(default)]
    /// Path hygiene options.
    pub paths: RawPaths,
    #[serde(default)]
    /// Header hygiene options.
    pub headers: RawHeaders,
}

/// `server.paths`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawPaths {
    /// Accept ';' path parameters (refused by default: route confusion on Java upstreams).
    pub allow_semicolon: Option<bool>,
    /// Match routes case-insensitively (for upstreams that ignore case).
    pub case_insensitive: Option<bool>,
}

/// `server.headers`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawHeaders {
    /// Forward header names containing '_' (dropped by default); never a spelling of a header the proxy owns.
    pub allow_underscores: Option<bool>,
}

/// `server.listen[i]`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawListen {
    /// IP:port to bind.
    pub addr: Text,
    /// Certificate and key (PEM) for a TLS listener; checked at load.
    pub tls: Option<RawTls>,
}

/// `server.listen[i].tls`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawTls {
    /// Certificate chain, PEM.
    pub cert: Text,
    /// Private key, PEM; must match the certificate.
    pub key: Text,
}

/// `server.client_ip`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawClientIp {
    #[serde(default)]
    /// Peers whose X-Forwarded-For is read, right to left.
    pub trusted_proxies: Vec<Text>,
}

/// `server.timeouts`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawTimeouts {
    /// The whole request head must arrive within this (slow-loris guard).
    pub request_header: Option<Text>,
    /// Idle keep-alive connections are closed after this.
    pub http_idle: Option<Text>,
    /// Each wait for the upstream on plain requests (504 after).
    pub upstream_read: Option<Text>,
    /// Idle timeout once a connection is upgraded.
    pub websocket_idle: Option<Text>,
}

/// `server.limits`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawLimits {
    /// Requests in flight + open WebSockets per client IP (429 too_many_connections).
    pub connections_per_ip: Option<u32>,
    /// Largest request head (431), at most 1MiB - 1.
    pub max_header_bytes: Option<Text>,
    /// Most header lines (431), 1 to 256.
    pub max_headers: Option<u32>,
    /// Brute-force guard "N/period": failed authentications per client IP before 429.
    pub auth_failures_per_ip: Option<Text>,
}

/// `upstream:`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawUpstream {
    /// host:port of the upstream.
    pub addr: Text,
    /// Connect timeout (502 after).
    pub connect_timeout: Option<Text>,
}

/// `defaults:`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawDefaults {
    /// Largest request body (413), e.g. 1MiB.
    pub max_body: Option<Text>,
    /// Rate limit every route inherits, or none.
    pub rate_limit: Option<RawRateLimitSetting>,
}

/// `access:` (global or per route)
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawAccess {
    /// CIDRs allowed (absent = all).
    pub allow: Option<Vec<Text>>,
    #[serde(default)]
    /// CIDRs denied (deny wins).
    pub deny: Vec<Text>,
}

/// `auth.<name>`: exactly one of `jwt` or `basic`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawAuthProvider {
    /// Bearer tokens (JWT).
    pub jwt: Option<RawJwt>,
    /// HTTP basic auth against an htpasswd file.
    pub basic: Option<RawBasic>,
}

/// `auth.<name>.jwt`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawJwt {
    /// Pinned algorithms; the token never chooses. Never none.
    pub algorithms: Vec<Text>,
    /// HS*: environment variable holding the secret (its bytes).
    pub secret_env: Option<Text>,
    /// HS*: file holding the secret (one trailing newline removed).
    pub secret_file: Option<Text>,
    /// RS*/PS*/ES*/EdDSA: a JWKS, keys chosen by kid.
    pub jwks_file: Option<Text>,
    /// RS*/PS*/ES*/EdDSA: one public key, PEM.
    pub public_key_file: Option<Text>,
    /// Required iss.
    pub issuer: Option<Text>,
    /// Accepted aud value(s).
    pub audience: Option<OneOrMany>,
    /// Clock skew allowed on exp/nbf, at most 60s; 0s is valid.
    pub leeway: Option<Text>,
    /// Where tokens come from: header, cookie:NAME, query:NAME (query only on websocket routes).
    pub token_sources: Option<Vec<Text>>,
    #[serde(default)]
    /// Claims forwarded to the upstream as headers: claim -> header.
    pub forward_claims: BTreeMap<String, Text>,
}

/// `auth.<name>.basic`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawBasic {
    /// Realm in WWW-Authenticate.
    pub realm: Option<Text>,
    /// htpasswd file of bcrypt or argon2id hashes.
    pub htpasswd: Text,
}

/// `routes[i]`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRoute {
    /// Unique route name (logs, metrics, explain).
    pub name: Text,
    #[serde(rename = "match")]
    /// Path (exact) or prefix, and methods.
    pub matcher: RawMatch,
    /// CIDR rules for this route.
    pub access: Option<RawAccess>,
    /// A provider name, or none for a public route (required).
    pub auth: Option<Text>,
    /// Claims a token must carry.
    pub require: Option<RawRequire>,
    /// CORS policy answered by the proxy, or upstream.
    pub cors: Option<RawCorsSetting>,
    /// WebSocket settings (origins, caps, idle timeout, token expiry).
    pub websocket: Option<RawWebSocket>,
    /// Largest request body for this route.
    pub max_body: Option<Text>,
    /// Overrides server.timeouts.upstream_read.
    pub upstream_timeout: Option<Text>,
    /// Rate limit for this route, or none.
    pub rate_limit: Option<RawRateLimitSetting>,
    /// Bounded queue in front of the upstream.
    pub concurrency: Option<RawConcurrency>,
}

/// `routes[i].match`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawMatch {
    /// Exact path (normalized form).
    pub path: Option<Text>,
    /// Path prefix (normalized form).
    pub prefix: Option<Text>,
    /// Methods (upper case); absent = any.
    pub methods: Option<Vec<Text>>,
}

/// `routes[i].require`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRequire {
    #[serde(default)]
    /// claim -> accepted value(s); arrays and space-separated scope match any element.
    pub claims: BTreeMap<String, OneOrMany>,
}

/// `origins.<name>`: a list, or `{ origins: [...], loopback_aliases: true }`.
#[derive(Debug)]
pub struct RawOriginList {
    pub origins: Vec<Text>,
    pub loopback_aliases: Option<bool>,
}

/// The mapping form of an origin list.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOriginMap {
    /// Allowed origins: scheme://host[:port], https://*.example.com, null, *.
    pub origins: Vec<Text>,
    /// Treat localhost, 127.0.0.1 and [::1] as one host.
    pub loopback_aliases: Option<bool>,
}

impl<'de> Deserialize<'de> for RawOriginList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawOriginList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of origins, or a mapping with origins and loopback_aliases")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<RawOriginList, A::Error> {
                let origins = Deserialize::deserialize(de::value::SeqAccessDeserializer::new(a))?;
                Ok(RawOriginList {
                    origins,
                    loopback_aliases: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<RawOriginList, A::Error> {
                let m: RawOriginMap =
                    Deserialize::deserialize(de::value::MapAccessDeserializer::new(a))?;
                Ok(RawOriginList {
                    origins: m.origins,
                    loopback_aliases: m.loopback_aliases,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `routes[i].cors`: the word `upstream`, or the proxy's own CORS policy.
#[derive(Debug)]
pub enum RawCorsSetting {
    /// `cors: upstream` — the upstream manages CORS itself.
    Upstream(Text),
    /// `cors: { origins: ..., ... }`
    Policy(RawCors),
}

/// `routes[i].cors` (mapping form)
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawCors {
    /// A named origin list, or a list of origins.
    pub origins: OriginsRef,
    /// Send Access-Control-Allow-Credentials: true.
    pub credentials: Option<bool>,
    /// Methods a preflight may ask for.
    pub methods: Option<Vec<Text>>,
    /// Request headers a preflight may ask for.
    pub headers: Option<Vec<Text>>,
    /// Response headers scripts may read.
    pub expose_headers: Option<Vec<Text>>,
    /// How long browsers may cache a preflight answer.
    pub max_age: Option<Text>,
    /// 403 origin_denied for a plain request from an origin not on the list.
    pub enforce: Option<bool>,
}

/// `routes[i].websocket`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawWebSocket {
    /// Origins allowed to open the socket (a named list or a list).
    pub origins: Option<OriginsRef>,
    /// Open sockets per client IP on this route.
    pub max_per_ip: Option<u32>,
    /// Open sockets per JWT subject on this route.
    pub max_per_subject: Option<u32>,
    /// Overrides server.timeouts.websocket_idle.
    pub idle_timeout: Option<Text>,
    /// Admit an upgrade without Origin (non-browser clients).
    pub allow_missing_origin: Option<bool>,
    /// Close the socket (1008) when its JWT expires.
    pub close_on_token_expiry: Option<bool>,
}

/// `routes[i].concurrency`
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawConcurrency {
    /// Requests at the upstream at once.
    pub max_in_flight: u32,
    /// Requests waiting beyond that (503 queue_full past it).
    pub queue: Option<u32>,
    /// Longest wait in the queue (503 queue_timeout).
    pub queue_timeout: Option<Text>,
}

/// `rate_limit:` — the word `none`, or a limit.
#[derive(Debug)]
pub enum RawRateLimitSetting {
    /// `rate_limit: none`
    Off(Text),
    /// `rate_limit: { per_ip: ..., per_subject: ..., burst: ... }`
    Limit(RawRateLimit),
}

/// The mapping form of `rate_limit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRateLimit {
    /// "N/period" per client IP.
    pub per_ip: Option<Text>,
    /// "N/period" per JWT subject.
    pub per_subject: Option<Text>,
    /// Extra bucket capacity.
    pub burst: Option<u32>,
    /// Count and log what would be refused, without refusing.
    pub shadow: Option<bool>,
}

/// `origins:` on cors/websocket — the name of a list under top-level `origins:`, or a list.
#[derive(Debug)]
pub enum OriginsRef {
    /// A named list.
    Named(Text),
    /// An inline list.
    Inline(Vec<Text>),
}

/// A scalar or a list of scalars (`audience`, claim values).
#[derive(Debug)]
pub struct OneOrMany(pub Vec<Text>);

struct ScalarOr<T>(std::marker::PhantomData<T>, &'static str);

macro_rules! scalar_or {
    ($ty:ty, $what:expr, |$s:ident| $scalar:expr, |$rest:ident| $other:expr, $access:ident, $trait:ident, $adapter:ident) => {
        impl<'de> Visitor<'de> for ScalarOr<$ty> {
            type Value = $ty;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.1)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                let $s = Text(v.to_string());
                Ok($scalar)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                let $s = Text(v.to_string());
                Ok($scalar)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                let $s = Text(v.to_string());
                Ok($scalar)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<$ty, E> {
                let $s = Text(v.to_string());
                Ok($scalar)
            }
            fn $access<A>(self, a: A) -> Result<$ty, A::Error>
            where
                A: $trait<'de>,
            {
                let $rest = Deserialize::deserialize(de::value::$adapter::new(a))?;
                Ok($other)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ScalarOr::<$ty>(std::marker::PhantomData, $what))
            }
        }
    };
}

scalar_or!(
    RawRateLimitSetting,
    "`none` or a mapping with per_ip / per_subject / burst",
    |s| RawRateLimitSetting::Off(s),
    |m| RawRateLimitSetting::Limit(m),
    visit_map,
    MapAccess,
    MapAccessDeserializer
);
scalar_or!(
    RawCorsSetting,
    "`upstream` or a mapping with origins / methods / headers / credentials",
    |s| RawCorsSetting::Upstream(s),
    |m| RawCorsSetting::Policy(m),
    visit_map,
    MapAccess,
    MapAccessDeserializer
);
scalar_or!(
    OriginsRef,
    "the name of an `origins:` list, or a list of origins",
    |s| OriginsRef::Named(s),
    |l| OriginsRef::Inline(l),
    visit_seq,
    SeqAccess,
    SeqAccessDeserializer
);
scalar_or!(
    OneOrMany,
    "a value or a list of values",
    |s| OneOrMany(vec![s]),
    |l| OneOrMany(l),
    visit_seq,
    SeqAccess,
    SeqAccessDeserializer
);

// JSON Schema of the value types whose YAML form is flexible (a scalar or a list, a word or a
// mapping): what `gatehouse schema` says they accept is what their Deserialize accepts.

impl JsonSchema for Text {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

impl JsonSchema for OneOrMany {
    fn schema_name() -> Cow<'static, str> {
        "OneOrMany".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": ["string", "number", "boolean"] },
                { "type": "array", "items": { "type": ["string", "number", "boolean"] } }
            ]
        })
    }
}

impl JsonSchema for OriginsRef {
    fn schema_name() -> Cow<'static, str> {
        "OriginsRef".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The name of a list under `origins:`, or a list of origins.",
            "anyOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } } ]
        })
    }
}

fn word_or<T: JsonSchema>(gen: &mut SchemaGenerator, word: &str, description: &str) -> Schema {
    let mapping = serde_json::to_value(gen.subschema_for::<T>()).unwrap_or_default();
    json_schema!({
        "description": description,
        "anyOf": [ { "const": word }, mapping ]
    })
}

impl JsonSchema for RawRateLimitSetting {
    fn schema_name() -> Cow<'static, str> {
        "RateLimitSetting".into()
    }
    fn json_schema(gen: &mut SchemaGenerator) -> Schema {
        word_or::<RawRateLimit>(
            gen,
            "none",
            "`none`, or per_ip / per_subject / burst / shadow.",
        )
    }
}

impl JsonSchema for RawCorsSetting {
    fn schema_name() -> Cow<'static, str> {
        "CorsSetting".into()
    }
    fn json_schema(gen: &mut SchemaGenerator) -> Schema {
        word_or::<RawCors>(
            gen,
            "upstream",
            "The proxy's CORS policy, or `upstream` (the upstream manages CORS itself).",
        )
    }
}

impl JsonSchema for RawOriginList {
    fn schema_name() -> Cow<'static, str> {
        "OriginList".into()
    }
    fn json_schema(gen: &mut SchemaGenerator) -> Schema {
        let mapping = serde_json::to_value(gen.subschema_for::<RawOriginMap>()).unwrap_or_default();
        json_schema!({
            "description": "A list of origins, or { origins, loopback_aliases }.",
            "anyOf": [ { "type": "array", "items": { "type": "string" } }, mapping ]
        })
    }
}

/// The JSON Schema (draft 2020-12) of the policy file.
pub fn schema() -> serde_json::Value {
    let mut s = serde_json::to_value(schemars::schema_for!(RawPolicy)).unwrap_or_default();
    if let Some(o) = s.as_object_mut() {
        o.insert("title".into(), "Gatehouse policy (proxy.yaml)".into());
        o.insert(
            "description".into(),
            "One policy file for the Gatehouse reverse proxy. Reference: docs/policy.md.".into(),
        );
    }
    s
}
