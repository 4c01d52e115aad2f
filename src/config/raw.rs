//! The policy file as written: serde structs that mirror `reference-policy.yaml` key for key.
//! Values with a syntax of their own (durations, CIDRs, rates) stay text here so that the
//! compiler can check them all and report every mistake, not just the first. Unknown keys are
//! collected by the loader (serde_ignored) and reported as errors: nothing is silently dropped.

// Fields are the policy keys themselves, documented in docs/policy.md.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
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
#[derive(Debug, Deserialize)]
pub struct RawPolicy {
    pub version: u32,
    pub server: RawServer,
    pub upstream: RawUpstream,
    #[serde(default)]
    pub defaults: RawDefaults,
    pub access: Option<RawAccess>,
    #[serde(default)]
    pub auth: BTreeMap<String, RawAuthProvider>,
    #[serde(default)]
    pub origins: BTreeMap<String, RawOriginList>,
    pub routes: Vec<RawRoute>,
}

/// `server:`
#[derive(Debug, Deserialize)]
pub struct RawServer {
    pub listen: Vec<RawListen>,
    pub admin: Option<Text>,
    #[serde(default)]
    pub client_ip: RawClientIp,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub paths: RawPaths,
    #[serde(default)]
    pub headers: RawHeaders,
}

/// `server.paths`
#[derive(Debug, Default, Deserialize)]
pub struct RawPaths {
    pub allow_semicolon: Option<bool>,
    pub case_insensitive: Option<bool>,
}

/// `server.headers`
#[derive(Debug, Default, Deserialize)]
pub struct RawHeaders {
    pub allow_underscores: Option<bool>,
}

/// `server.listen[i]`
#[derive(Debug, Deserialize)]
pub struct RawListen {
    pub addr: Text,
    pub tls: Option<RawTls>,
}

/// `server.listen[i].tls`
#[derive(Debug, Deserialize)]
pub struct RawTls {
    pub cert: Text,
    pub key: Text,
}

/// `server.client_ip`
#[derive(Debug, Default, Deserialize)]
pub struct RawClientIp {
    #[serde(default)]
    pub trusted_proxies: Vec<Text>,
}

/// `server.timeouts`
#[derive(Debug, Default, Deserialize)]
pub struct RawTimeouts {
    pub request_header: Option<Text>,
    pub http_idle: Option<Text>,
    pub upstream_read: Option<Text>,
    pub websocket_idle: Option<Text>,
}

/// `server.limits`
#[derive(Debug, Default, Deserialize)]
pub struct RawLimits {
    pub connections_per_ip: Option<u32>,
    pub max_header_bytes: Option<Text>,
    pub max_headers: Option<u32>,
    pub auth_failures_per_ip: Option<Text>,
}

/// `upstream:`
#[derive(Debug, Deserialize)]
pub struct RawUpstream {
    pub addr: Text,
    pub connect_timeout: Option<Text>,
}

/// `defaults:`
#[derive(Debug, Default, Deserialize)]
pub struct RawDefaults {
    pub max_body: Option<Text>,
    pub rate_limit: Option<RawRateLimitSetting>,
}

/// `access:` (global or per route)
#[derive(Debug, Deserialize)]
pub struct RawAccess {
    pub allow: Option<Vec<Text>>,
    #[serde(default)]
    pub deny: Vec<Text>,
}

/// `auth.<name>`: exactly one of `jwt` or `basic`.
#[derive(Debug, Deserialize)]
pub struct RawAuthProvider {
    pub jwt: Option<RawJwt>,
    pub basic: Option<RawBasic>,
}

/// `auth.<name>.jwt`
#[derive(Debug, Deserialize)]
pub struct RawJwt {
    pub algorithms: Vec<Text>,
    pub secret_env: Option<Text>,
    pub secret_file: Option<Text>,
    pub jwks_file: Option<Text>,
    pub public_key_file: Option<Text>,
    pub issuer: Option<Text>,
    pub audience: Option<OneOrMany>,
    pub leeway: Option<Text>,
    pub token_sources: Option<Vec<Text>>,
    #[serde(default)]
    pub forward_claims: BTreeMap<String, Text>,
}

/// `auth.<name>.basic`
#[derive(Debug, Deserialize)]
pub struct RawBasic {
    pub realm: Option<Text>,
    pub htpasswd: Text,
}

/// `routes[i]`
#[derive(Debug, Deserialize)]
pub struct RawRoute {
    pub name: Text,
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    pub access: Option<RawAccess>,
    pub auth: Option<Text>,
    pub require: Option<RawRequire>,
    pub cors: Option<RawCorsSetting>,
    pub websocket: Option<RawWebSocket>,
    pub max_body: Option<Text>,
    pub upstream_timeout: Option<Text>,
    pub rate_limit: Option<RawRateLimitSetting>,
    pub concurrency: Option<RawConcurrency>,
}

/// `routes[i].match`
#[derive(Debug, Deserialize)]
pub struct RawMatch {
    pub path: Option<Text>,
    pub prefix: Option<Text>,
    pub methods: Option<Vec<Text>>,
}

/// `routes[i].require`
#[derive(Debug, Deserialize)]
pub struct RawRequire {
    #[serde(default)]
    pub claims: BTreeMap<String, OneOrMany>,
}

/// `origins.<name>`: a list, or `{ origins: [...], loopback_aliases: true }`.
#[derive(Debug)]
pub struct RawOriginList {
    pub origins: Vec<Text>,
    pub loopback_aliases: Option<bool>,
}

/// The mapping form of an origin list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOriginMap {
    pub origins: Vec<Text>,
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
#[derive(Debug, Deserialize)]
pub struct RawCors {
    pub origins: OriginsRef,
    pub credentials: Option<bool>,
    pub methods: Option<Vec<Text>>,
    pub headers: Option<Vec<Text>>,
    pub expose_headers: Option<Vec<Text>>,
    pub max_age: Option<Text>,
    pub enforce: Option<bool>,
}

/// `routes[i].websocket`
#[derive(Debug, Deserialize)]
pub struct RawWebSocket {
    pub origins: Option<OriginsRef>,
    pub max_per_ip: Option<u32>,
    pub max_per_subject: Option<u32>,
    pub idle_timeout: Option<Text>,
    pub allow_missing_origin: Option<bool>,
    pub close_on_token_expiry: Option<bool>,
}

/// `routes[i].concurrency`
#[derive(Debug, Deserialize)]
pub struct RawConcurrency {
    pub max_in_flight: u32,
    pub queue: Option<u32>,
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
#[derive(Debug, Deserialize)]
pub struct RawRateLimit {
    pub per_ip: Option<Text>,
    pub per_subject: Option<Text>,
    pub burst: Option<u32>,
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
