//! Raw policy → compiled [`Policy`]. Checks every value and every cross-reference (provider
//! and origin-list names, key files, secrets) and collects *all* errors, each with the key
//! path it belongs to; the loader turns paths into line:column.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey};

use super::raw::*;
use super::values::{parse_cidr, parse_duration, parse_rate, parse_size};
use crate::policy::auth::basic::StoredHash;
use crate::policy::auth::jwt::{JwkEntry, JwtKeys, KeySource};
use crate::policy::auth::{AuthKind, AuthProvider, BasicProvider, JwtProvider, TokenSource};
use crate::policy::model::*;
use crate::policy::origin::{OriginList, OriginPattern};
use crate::policy::path::normalize_path;

/// Reads environment variables for `secret_env` (a function so tests can inject).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

/// Compilation state: where relative paths start, and the errors so far.
pub struct Compiler<'a> {
    base: PathBuf,
    env: EnvLookup<'a>,
    /// (key path, message) pairs.
    pub errors: Vec<(String, String)>,
    /// Valid but suspicious settings: (key path, message).
    pub warnings: Vec<(String, String)>,
    watched: Vec<PathBuf>,
    /// Whether a missing JWT secret is an error (`run`) or only leaves its provider unable to
    /// verify tokens (`check --no-secrets`, `audit`, `test`, `explain` for review).
    secrets_required: bool,
}

/// What every route compiles against: the names it may refer to and the defaults.
struct RouteContext<'c> {
    providers: &'c BTreeMap<String, Arc<AuthProvider>>,
    provider_names: Vec<&'c String>,
    origins: &'c BTreeMap<String, Arc<OriginList>>,
    default_max_body: Option<u64>,
    default_rate: Option<RateLimit>,
}

/// Header names a claim may never be forwarded as: they would change how the request is
/// framed or routed, or forge what the proxy itself sets.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
    "authorization",
    "cookie",
];

impl<'a> Compiler<'a> {
    /// A compiler for a file in `base`.
    pub fn new(base: PathBuf, env: EnvLookup<'a>) -> Self {
        Compiler {
            base,
            env,
            errors: Vec::new(),
            warnings: Vec::new(),
            watched: Vec::new(),
            secrets_required: true,
        }
    }

    /// A compiler that loads the policy without its secrets (for review).
    pub fn without_secrets(mut self) -> Self {
        self.secrets_required = false;
        self
    }

    fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push((path.into(), msg.into()));
    }

    fn warn(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.warnings.push((path.into(), msg.into()));
    }

    /// A path the policy names, made absolute (relative to the policy file's folder), so the
    /// compiled policy and `dump` mean the same file wherever they are read from.
    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        };
        std::path::absolute(&joined).unwrap_or(joined)
    }

    /// Reads a file the policy names (and watches it); errors name the key path.
    fn read_file(&mut self, path: &str, key: &str) -> Option<Vec<u8>> {
        let full = self.resolve(path);
        self.watched.push(full.clone());
        match std::fs::read(&full) {
            Ok(b) => Some(b),
            Err(e) => {
                self.err(key, format!("cannot read {}: {e}", full.display()));
                None
            }
        }
    }

    fn duration(&mut self, v: &Option<Text>, key: &str, default: Duration) -> Duration {
        self.duration_from(v, key, default, false)
    }

    /// A duration that may be zero (`leeway: 0s` means none).
    fn duration_or_zero(&mut self, v: &Option<Text>, key: &str) -> Duration {
        self.duration_from(v, key, Duration::ZERO, true)
    }

    fn duration_from(
        &mut self,
        v: &Option<Text>,
        key: &str,
        default: Duration,
        zero_ok: bool,
    ) -> Duration {
        match v {
            None => default,
            Some(t) => match parse_duration(&t.0) {
                Ok(d) if d.is_zero() && !zero_ok => {
                    self.err(key, "must be longer than zero");
                    default
                }
                Ok(d) => d,
                Err(m) => {
                    self.err(key, m);
                    default
                }
            },
        }
    }

    fn size(&mut self, v: &Option<Text>, key: &str) -> Option<u64> {
        let t = v.as_ref()?;
        match parse_size(&t.0) {
            Ok(s) => Some(s),
            Err(m) => {
                self.err(key, m);
                None
            }
        }
    }

    fn cidrs(&mut self, list: &[Text], key: &str) -> Vec<IpNet> {
        let mut out = Vec::new();
        for (i, t) in list.iter().enumerate() {
            match parse_cidr(&t.0) {
                Ok(n) => out.push(n),
                Err(m) => self.err(format!("{key}[{i}]"), m),
            }
        }
        out
    }

    fn access(&mut self, raw: &RawAccess, key: &str) -> AccessRule {
        let deny = self.cidrs(&raw.deny, &format!("{key}.deny"));
        let allow = raw
            .allow
            .as_ref()
            .map(|a| self.cidrs(a, &format!("{key}.allow")));
        AccessRule {
            key: key.to_string(),
            allow,
            deny,
        }
    }

    fn socket_addr(&mut self, t: &Text, key: &str) -> Option<SocketAddr> {
        match t.0.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    key,
                    format!(
                        "expected an address such as \"0.0.0.0:8080\" or \"[::]:8080\", got {:?}",
                        t.0
                    ),
                );
                None
            }
        }
    }

    fn methods(&mut self, list: &[Text], key: &str) -> Vec<Method> {
        let mut out = Vec::new();
        for (i, t) in list.iter().enumerate() {
            let upper = t.0.to_ascii_uppercase();
            if upper != t.0 {
                self.err(
                    format!("{key}[{i}]"),
                    format!("methods are upper-case: write {upper:?}"),
                );
            }
            match Method::from_bytes(upper.as_bytes()) {
                Ok(m) => out.push(m),
                Err(_) => self.err(
                    format!("{key}[{i}]"),
                    format!("{:?} is not an HTTP method", t.0),
                ),
            }
        }
        out
    }

    fn origin_list(&mut self, list: &[Text], key: &str, loopback_aliases: bool) -> OriginList {
        let mut entries = Vec::new();
        for (i, t) in list.iter().enumerate() {
            match OriginPattern::parse(&t.0) {
                Ok(p) => entries.push(p),
                Err(m) => self.err(format!("{key}[{i}]"), m),
            }
        }
        let list = OriginList {
            key: key.to_string(),
            entries,
            loopback_aliases,
        };
        let spelled = list.loopback_spellings();
        if !loopback_aliases && !spelled.is_empty() && spelled.len() < 3 {
            self.warn(
                key,
                format!(
                    "names the loopback host as {} only: a browser on {} sends another Origin; list every spelling or set loopback_aliases: true",
                    spelled.join(", "),
                    crate::policy::origin::LOOPBACK_HOSTS
                        .iter()
                        .filter(|h| !spelled.contains(h))
                        .copied()
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            );
        }
        list
    }

    fn origins_ref(
        &mut self,
        r: &OriginsRef,
        key: &str,
        named: &BTreeMap<String, Arc<OriginList>>,
    ) -> Option<Arc<OriginList>> {
        match r {
            OriginsRef::Named(name) => match named.get(&name.0) {
                Some(l) => Some(l.clone()),
                None => {
                    let known: Vec<&String> = named.keys().collect();
                    self.err(
                        key,
                        format!(
                            "no origin list named {:?} under `origins:` (known: {known:?})",
                            name.0
                        ),
                    );
                    None
                }
            },
            OriginsRef::Inline(list) => Some(Arc::new(self.origin_list(list, key, false))),
        }
    }

    /// Compiles the whole file. Errors are in `self.errors`; the policy is only meaningful
    /// when there are none.
    pub fn compile(&mut self, raw: &RawPolicy, file: &Path) -> Option<Policy> {
        self.watched.push(file.to_path_buf());
        if raw.version != 1 {
            self.err(
                "version",
                format!(
                    "unsupported version {}: this Gatehouse reads version 1",
                    raw.version
                ),
            );
        }
        let server = self.server(&raw.server);
        let upstream = self.upstream(&raw.upstream);
        let access = raw.access.as_ref().map(|a| self.access(a, "access"));

        let mut named_origins = BTreeMap::new();
        for (name, list) in &raw.origins {
            let key = format!("origins.{name}");
            let compiled =
                self.origin_list(&list.origins, &key, list.loopback_aliases.unwrap_or(false));
            named_origins.insert(name.clone(), Arc::new(compiled));
        }

        let mut providers = BTreeMap::new();
        let mut claim_headers: Vec<HeaderName> = Vec::new();
        for (name, p) in &raw.auth {
            if let Some(provider) = self.provider(name, p) {
                if let AuthKind::Jwt(j) = &provider.kind {
                    for (_, h) in &j.forward_claims {
                        if !claim_headers.contains(h) {
                            claim_headers.push(h.clone());
                        }
                    }
                }
                providers.insert(name.clone(), Arc::new(provider));
            }
        }

        let default_max_body = self.size(&raw.defaults.max_body, "defaults.max_body");
        let default_rate = raw
            .defaults
            .rate_limit
            .as_ref()
            .and_then(|r| self.rate_limit(r, "defaults.rate_limit"));

        if raw.routes.is_empty() {
            self.err(
                "routes",
                "at least one route is needed: without routes every request is answered 404",
            );
        }
        let mut names = HashSet::new();
        let mut routes = Vec::new();
        let ctx = RouteContext {
            providers: &providers,
            provider_names: raw.auth.keys().collect(),
            origins: &named_origins,
            default_max_body,
            default_rate,
        };
        for (i, r) in raw.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            if !names.insert(r.name.0.clone()) {
                self.err(
                    format!("{key}.name"),
                    format!("route name {:?} is used twice", r.name.0),
                );
            }
            if let Some(route) = self.route(i, r, &key, &ctx) {
                routes.push(route);
            }
        }

        if !self.errors.is_empty() {
            return None;
        }
        let (server, upstream) = (server?, upstream?);
        self.websocket_hints(&routes, &server);
        let mut watched = std::mem::take(&mut self.watched);
        watched.dedup();
        Some(Policy {
            file: file.to_path_buf(),
            server,
            upstream,
            access,
            providers: providers.into_values().collect(),
            origin_lists: named_origins.into_values().collect(),
            routes,
            claim_headers,
            watched_files: watched,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn server(&mut self, raw: &RawServer) -> Option<ServerSettings> {
        if raw.listen.is_empty() {
            self.err("server.listen", "at least one listener is needed");
        }
        let mut listeners = Vec::new();
        for (i, l) in raw.listen.iter().enumerate() {
            let key = format!("server.listen[{i}]");
            let addr = self.socket_addr(&l.addr, &format!("{key}.addr"));
            let tls = l.tls.as_ref().map(|t| {
                let cert = self.resolve(&t.cert.0);
                let key_path = self.resolve(&t.key.0);
                self.watched.push(cert.clone());
                self.watched.push(key_path.clone());
                if let Err(super::tls::TlsProblem(which, message)) =
                    super::tls::check_pair(&cert, &key_path)
                {
                    self.err(format!("{key}.tls.{which}"), message);
                }
                TlsFiles {
                    cert,
                    key: key_path,
                }
            });
            if let Some(addr) = addr {
                if listeners.iter().any(|x: &Listener| x.addr == addr) {
                    self.err(format!("{key}.addr"), format!("{addr} is listed twice"));
                }
                listeners.push(Listener { addr, tls });
            }
        }
        let admin = raw
            .admin
            .as_ref()
            .and_then(|a| self.socket_addr(a, "server.admin"));
        if let (Some(admin), true) = (admin, listeners.iter().any(|l| Some(l.addr) == admin)) {
            self.err("server.admin", format!("{admin} is also a public listener"));
        }
        let trusted_proxies = self.cidrs(
            &raw.client_ip.trusted_proxies,
            "server.client_ip.trusted_proxies",
        );
        let t = &raw.timeouts;
        let timeouts = Timeouts {
            request_header: self.duration(
                &t.request_header,
                "server.timeouts.request_header",
                Duration::from_secs(10),
            ),
            http_idle: self.duration(
                &t.http_idle,
                "server.timeouts.http_idle",
                Duration::from_secs(60),
            ),
            upstream_read: self.duration(
                &t.upstream_read,
                "server.timeouts.upstream_read",
                Duration::from_secs(60),
            ),
            websocket_idle: self.duration(
                &t.websocket_idle,
                "server.timeouts.websocket_idle",
                Duration::from_secs(3600),
            ),
        };
        let l = &raw.limits;
        if l.connections_per_ip == Some(0) {
            self.err("server.limits.connections_per_ip", "must be at least 1");
        }
        if l.max_headers.is_some_and(|n| n == 0 || n > 256) {
            self.err(
                "server.limits.max_headers",
                "from 1 to 256 (the HTTP parser refuses more than 256 header lines)",
            );
        }
        let limits = Limits {
            connections_per_ip: l.connections_per_ip,
            max_header_bytes: match self.size(&l.max_header_bytes, "server.limits.max_header_bytes")
            {
                Some(n) if n == 0 || n > 1_048_575 => {
                    self.err(
                        "server.limits.max_header_bytes",
                        "from 1 byte to 1MiB - 1 (the HTTP parser refuses larger heads)",
                    );
                    n
                }
                Some(n) => n,
                None => 32 * 1024,
            },
            max_headers: l.max_headers.unwrap_or(100),
            auth_failures_per_ip: l.auth_failures_per_ip.as_ref().and_then(|t| {
                match parse_rate(&t.0) {
                    Ok(r) => Some(r),
                    Err(m) => {
                        self.err("server.limits.auth_failures_per_ip", m);
                        None
                    }
                }
            }),
        };
        let paths = PathOptions {
            allow_semicolon: raw.paths.allow_semicolon.unwrap_or(false),
            case_insensitive: raw.paths.case_insensitive.unwrap_or(false),
        };
        let headers = HeaderOptions {
            allow_underscores: raw.headers.allow_underscores.unwrap_or(false),
        };
        Some(ServerSettings {
            listeners,
            admin,
            trusted_proxies,
            timeouts,
            limits,
            paths,
            headers,
        })
    }

    fn upstream(&mut self, raw: &RawUpstream) -> Option<UpstreamSettings> {
        let connect_timeout = self.duration(
            &raw.connect_timeout,
            "upstream.connect_timeout",
            Duration::from_secs(2),
        );
        let addr = match raw.addr.0.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => match raw.addr.0.to_socket_addrs().map(|mut it| it.next()) {
                Ok(Some(a)) => Some(a),
                _ => {
                    self.err(
                        "upstream.addr",
                        format!(
                            "expected host:port, got {:?} (or the name does not resolve)",
                            raw.addr.0
                        ),
                    );
                    None
                }
            },
        }?;
        Some(UpstreamSettings {
            addr,
            connect_timeout,
        })
    }

    fn rate_limit(&mut self, raw: &RawRateLimitSetting, key: &str) -> Option<RateLimit> {
        match raw {
            RawRateLimitSetting::Off(t) if t.0 == "none" => None,
            RawRateLimitSetting::Off(t) => {
                self.err(
                    key,
                    format!(
                        "expected `none` or a mapping with per_ip / per_subject / burst, got {:?}",
                        t.0
                    ),
                );
                None
            }
            RawRateLimitSetting::Limit(l) => {
                let rate = |v: &Option<Text>, k: &str, c: &mut Self| {
                    v.as_ref().and_then(|t| match parse_rate(&t.0) {
                        Ok(r) => Some(r),
                        Err(m) => {
                            c.err(format!("{key}.{k}"), m);
                            None
                        }
                    })
                };
                let per_ip = rate(&l.per_ip, "per_ip", self);
                let per_subject = rate(&l.per_subject, "per_subject", self);
                if l.per_ip.is_none() && l.per_subject.is_none() {
                    self.err(key, "a rate_limit needs per_ip and/or per_subject (or write `rate_limit: none`)");
                }
                Some(RateLimit {
                    key: key.to_string(),
                    per_ip,
                    per_subject,
                    burst: l.burst.unwrap_or(0),
                    shadow: l.shadow.unwrap_or(false),
                })
            }
        }
    }

    fn provider(&mut self, name: &str, raw: &RawAuthProvider) -> Option<AuthProvider> {
        let key = format!("auth.{name}");
        if name == "none" {
            self.err(
                &key,
                "`none` is reserved for `auth: none` on routes; choose another provider name",
            );
        }
        let kind = match (&raw.jwt, &raw.basic) {
            (Some(j), None) => AuthKind::Jwt(Box::new(self.jwt(j, &format!("{key}.jwt"))?)),
            (None, Some(b)) => AuthKind::Basic(self.basic(b, &format!("{key}.basic"))?),
            _ => {
                self.err(&key, "a provider has exactly one of `jwt:` or `basic:`");
                return None;
            }
        };
        Some(AuthProvider {
            name: name.to_string(),
            kind,
        })
    }

    fn jwt(&mut self, raw: &RawJwt, key: &str) -> Option<JwtProvider> {
        let algorithms = self.jwt_algorithms(&raw.algorithms, key);
        let keys = self.jwt_keys(raw, key, &algorithms)?;
        let leeway = self.duration_or_zero(&raw.leeway, &format!("{key}.leeway"));
        if leeway > Duration::from_secs(60) {
            self.err(format!("{key}.leeway"), "at most 60s");
        }
        let token_sources = self.token_sources(raw.token_sources.as_deref(), key);
        let forward_claims = self.forward_claims(&raw.forward_claims, key);
        let audience = raw
            .audience
            .as_ref()
            .map(|a| a.0.iter().map(|t| t.0.clone()).collect())
            .unwrap_or_default();
        let mut provider = JwtProvider::new(
            algorithms,
            keys,
            raw.issuer.as_ref().map(|t| t.0.clone()),
            audience,
            leeway.as_secs(),
            token_sources,
            forward_claims,
        );
        provider.secret_file = raw.secret_file.as_ref().map(|f| self.resolve(&f.0));
        provider.key_source = if let Some(e) = &raw.secret_env {
            KeySource::Env(e.0.clone())
        } else if let Some(f) = &raw.secret_file {
            KeySource::SecretFile(self.resolve(&f.0))
        } else if let Some(f) = &raw.jwks_file {
            KeySource::Jwks(self.resolve(&f.0))
        } else if let Some(f) = &raw.public_key_file {
            KeySource::PublicKey(self.resolve(&f.0))
        } else {
            KeySource::Env(String::new())
        };
        Some(provider)
    }

    /// `algorithms:` — pinned, never `none`, one key type.
    fn jwt_algorithms(&mut self, list: &[Text], key: &str) -> Vec<Algorithm> {
        let mut algorithms = Vec::new();
        for (i, t) in list.iter().enumerate() {
            let k = format!("{key}.algorithms[{i}]");
            if t.0.eq_ignore_ascii_case("none") {
                self.err(k, "`none` is never accepted: a token must be signed");
                continue;
            }
            match t.0.parse::<Algorithm>() {
                Ok(a) => algorithms.push(a),
                Err(_) => self.err(
                    k,
                    format!(
                        "unknown algorithm {:?} (HS256/384/512, RS*, PS*, ES256/384, EdDSA)",
                        t.0
                    ),
                ),
            }
        }
        if list.is_empty() {
            self.err(format!("{key}.algorithms"), "pin at least one algorithm");
        }
        let family = algorithms.first().map(|a| a.family());
        if algorithms.iter().any(|a| Some(a.family()) != family) {
            self.err(format!("{key}.algorithms"), "all algorithms of a provider must share one key type (HS*, RS*/PS*, ES*, or EdDSA)");
        }
        algorithms
    }

    /// Exactly one key source, of the key type the algorithms pin.
    fn jwt_keys(&mut self, raw: &RawJwt, key: &str, algorithms: &[Algorithm]) -> Option<JwtKeys> {
        let sources = [
            ("secret_env", raw.secret_env.is_some()),
            ("secret_file", raw.secret_file.is_some()),
            ("jwks_file", raw.jwks_file.is_some()),
            ("public_key_file", raw.public_key_file.is_some()),
        ];
        let set: Vec<&str> = sources.iter().filter(|s| s.1).map(|s| s.0).collect();
        if set.len() != 1 {
            self.err(key, format!("exactly one of secret_env, secret_file, jwks_file, public_key_file is needed (found {set:?})"));
            return None;
        }
        let family = algorithms.first()?.family();
        if family == jsonwebtoken::AlgorithmFamily::Hmac {
            self.hmac_key(raw, key, algorithms)
        } else if let Some(f) = &raw.public_key_file {
            self.pem_key(&f.0, &format!("{key}.public_key_file"), family)
        } else if let Some(f) = &raw.jwks_file {
            self.jwks_keys(&f.0, &format!("{key}.jwks_file"), family)
        } else {
            self.err(
                key,
                format!("{family:?} algorithms need jwks_file or public_key_file"),
            );
            None
        }
    }

    /// `secret_env` / `secret_file`, at least as long as the hash output.
    fn hmac_key(&mut self, raw: &RawJwt, key: &str, algorithms: &[Algorithm]) -> Option<JwtKeys> {
        let (which, secret) = if let Some(env) = &raw.secret_env {
            match (self.env)(&env.0) {
                Some(v) => ("secret_env", v),
                None if !self.secrets_required => {
                    return Some(JwtKeys::Unavailable(format!(
                        "environment variable {} is not set",
                        env.0
                    )));
                }
                None => {
                    self.err(
                        format!("{key}.secret_env"),
                        format!("environment variable {} is not set", env.0),
                    );
                    return None;
                }
            }
        } else if let Some(f) = &raw.secret_file {
            if !self.secrets_required && std::fs::metadata(self.resolve(&f.0)).is_err() {
                return Some(JwtKeys::Unavailable(format!(
                    "{} cannot be read",
                    self.resolve(&f.0).display()
                )));
            }
            let mut b = self.read_file(&f.0, &format!("{key}.secret_file"))?;
            if b.last() == Some(&b'\n') {
                b.pop();
            }
            ("secret_file", b)
        } else {
            self.err(key, "HS* algorithms need secret_env or secret_file");
            return None;
        };
        let need = algorithms
            .iter()
            .map(|a| match a {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            })
            .max()
            .unwrap_or(32);
        if secret.len() < need {
            self.err(
                format!("{key}.{which}"),
                format!(
                    "the secret is {} bytes; {algorithms:?} needs at least {need}",
                    secret.len()
                ),
            );
            return None;
        }
        Some(JwtKeys::Single(DecodingKey::from_secret(&secret)))
    }

    /// `public_key_file`: one PEM key of the pinned type.
    fn pem_key(
        &mut self,
        path: &str,
        k: &str,
        family: jsonwebtoken::AlgorithmFamily,
    ) -> Option<JwtKeys> {
        use jsonwebtoken::AlgorithmFamily as F;
        let pem = self.read_file(path, k)?;
        let parsed = match family {
            F::Rsa => DecodingKey::from_rsa_pem(&pem),
            F::Ec => DecodingKey::from_ec_pem(&pem),
            F::Ed => DecodingKey::from_ed_pem(&pem),
            F::Hmac => unreachable_hmac(),
        };
        match parsed {
            Ok(dk) => Some(JwtKeys::Single(dk)),
            Err(e) => {
                self.err(k, format!("not a {family:?} public key in PEM: {e}"));
                None
            }
        }
    }

    /// `jwks_file`: keys selected by `kid`, all of the pinned type.
    fn jwks_keys(
        &mut self,
        path: &str,
        k: &str,
        family: jsonwebtoken::AlgorithmFamily,
    ) -> Option<JwtKeys> {
        let bytes = self.read_file(path, k)?;
        let set: JwkSet = match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                self.err(k, format!("not a JWKS: {e}"));
                return None;
            }
        };
        let mut entries = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let Some(kid) = jwk.common.key_id.clone() else {
                self.err(k, format!("key {i} has no kid"));
                continue;
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|ka| ka.to_string().parse::<Algorithm>().ok());
            match DecodingKey::from_jwk(jwk) {
                Ok(dk) if dk.family() == family => entries.push(JwkEntry { kid, alg, key: dk }),
                Ok(dk) => self.err(
                    k,
                    format!(
                        "key {kid:?} is {:?}, the provider pins {family:?}",
                        dk.family()
                    ),
                ),
                Err(e) => self.err(k, format!("key {kid:?}: {e}")),
            }
        }
        Some(JwtKeys::Set(entries))
    }

    /// `token_sources:` (default: the `Authorization` header only).
    fn token_sources(&mut self, list: Option<&[Text]>, key: &str) -> Vec<TokenSource> {
        let Some(list) = list else {
            return vec![TokenSource::Header];
        };
        let mut out = Vec::new();
        for (i, t) in list.iter().enumerate() {
            let src = if t.0 == "header" {
                Some(TokenSource::Header)
            } else if let Some(n) = t.0.strip_prefix("cookie:").filter(|n| !n.is_empty()) {
                Some(TokenSource::Cookie(n.to_string()))
            } else {
                t.0.strip_prefix("query:")
                    .filter(|n| !n.is_empty())
                    .map(|n| TokenSource::Query(n.to_string()))
            };
            match src {
                Some(s) => out.push(s),
                None => self.err(
                    format!("{key}.token_sources[{i}]"),
                    format!(
                        "expected `header`, `cookie:NAME` or `query:NAME`, got {:?}",
                        t.0
                    ),
                ),
            }
        }
        out
    }

    /// `forward_claims:` — never a header the proxy sets or one that frames the request.
    fn forward_claims(
        &mut self,
        map: &BTreeMap<String, Text>,
        key: &str,
    ) -> Vec<(String, HeaderName)> {
        let mut out = Vec::new();
        for (claim, header) in map {
            let k = format!("{key}.forward_claims.{claim}");
            match HeaderName::from_bytes(header.0.as_bytes()) {
                Ok(h) if RESERVED_HEADERS.contains(&h.as_str()) => self.err(
                    k,
                    format!(
                        "{:?} is set by the proxy or frames the request; choose another header",
                        header.0
                    ),
                ),
                Ok(h) if h.as_str().contains('_') => self.err(
                    k,
                    format!(
                        "{:?} contains '_': client headers with '_' are dropped, so upstreams may ignore it; use '-'",
                        header.0
                    ),
                ),
                Ok(h) => out.push((claim.clone(), h)),
                Err(_) => self.err(k, format!("{:?} is not a valid header name", header.0)),
            }
        }
        out
    }

    fn basic(&mut self, raw: &RawBasic, key: &str) -> Option<BasicProvider> {
        let k = format!("{key}.htpasswd");
        let bytes = self.read_file(&raw.htpasswd.0, &k)?;
        let Ok(text) = String::from_utf8(bytes) else {
            self.err(k, "the htpasswd file is not UTF-8");
            return None;
        };
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                self.err(
                    &k,
                    format!("{} line {}: expected user:hash", raw.htpasswd.0, n + 1),
                );
                continue;
            };
            match StoredHash::parse(hash) {
                Ok(h) => {
                    if users.insert(user.to_string(), h).is_some() {
                        self.err(
                            &k,
                            format!(
                                "{} line {}: user {user:?} appears twice",
                                raw.htpasswd.0,
                                n + 1
                            ),
                        );
                    }
                }
                Err(m) => self.err(&k, format!("{} line {}: {m}", raw.htpasswd.0, n + 1)),
            }
        }
        let costs: std::collections::BTreeSet<String> =
            users.values().map(StoredHash::cost_label).collect();
        if costs.len() > 1 {
            self.warn(
                &k,
                format!(
                    "{} mixes algorithms or costs ({}): every unknown user costs the most common one, so the others answer at a measurably different speed",
                    raw.htpasswd.0,
                    costs.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let realm = raw
            .realm
            .as_ref()
            .map_or_else(|| "gatehouse".to_string(), |r| r.0.clone());
        let mut provider = BasicProvider::new(realm, users);
        provider.htpasswd = self.resolve(&raw.htpasswd.0);
        Some(provider)
    }

    fn route(
        &mut self,
        index: usize,
        r: &RawRoute,
        key: &str,
        ctx: &RouteContext<'_>,
    ) -> Option<Route> {
        if r.name.0.is_empty() {
            self.err(format!("{key}.name"), "a route needs a name");
        }
        let mkey = format!("{key}.match");
        let path = self.route_match(&r.matcher, &mkey);
        let methods = r
            .matcher
            .methods
            .as_ref()
            .map(|m| self.methods(m, &format!("{mkey}.methods")));
        let access = r
            .access
            .as_ref()
            .map(|a| self.access(a, &format!("{key}.access")));
        let auth = self.route_auth(r.auth.as_ref(), key, ctx);
        let require_claims = self.route_claims(r.require.as_ref(), auth.as_ref(), key);
        let (cors, cors_upstream) = match &r.cors {
            None => (None, false),
            Some(RawCorsSetting::Upstream(t)) if t.0 == "upstream" => (None, true),
            Some(RawCorsSetting::Upstream(t)) => {
                self.err(
                    format!("{key}.cors"),
                    format!("expected `upstream` or a mapping, got {:?}", t.0),
                );
                (None, false)
            }
            Some(RawCorsSetting::Policy(c)) => (
                self.route_cors(c, &format!("{key}.cors"), ctx.origins),
                false,
            ),
        };
        let websocket = r
            .websocket
            .as_ref()
            .map(|w| self.route_websocket(w, &format!("{key}.websocket"), ctx.origins));
        let max_body = match &r.max_body {
            Some(_) => self.size(&r.max_body, &format!("{key}.max_body")),
            None => ctx.default_max_body,
        };
        let rate_limit = match &r.rate_limit {
            Some(rl) => self.rate_limit(rl, &format!("{key}.rate_limit")),
            None => ctx.default_rate.clone(),
        };
        let upstream_timeout = r.upstream_timeout.as_ref().map(|_| {
            self.duration(
                &r.upstream_timeout,
                &format!("{key}.upstream_timeout"),
                Duration::ZERO,
            )
        });
        let concurrency = r
            .concurrency
            .as_ref()
            .map(|c| self.route_concurrency(c, &format!("{key}.concurrency")));
        Some(Route {
            index,
            name: r.name.0.clone(),
            path: path?,
            methods,
            access,
            auth: auth?,
            require_claims,
            cors,
            cors_upstream,
            websocket,
            max_body,
            rate_limit,
            upstream_timeout,
            concurrency,
        })
    }

    /// `match:` — exactly one of `path:` or `prefix:`.
    fn route_match(&mut self, m: &RawMatch, mkey: &str) -> Option<PathMatch> {
        match (&m.path, &m.prefix) {
            (Some(p), None) => self
                .route_path(&p.0, &format!("{mkey}.path"))
                .map(PathMatch::Exact),
            (None, Some(p)) => self
                .route_path(&p.0, &format!("{mkey}.prefix"))
                .map(PathMatch::Prefix),
            _ => {
                self.err(mkey, "exactly one of `path:` or `prefix:` is needed");
                None
            }
        }
    }

    /// `auth:` — required: a provider's name, or `none`.
    fn route_auth(
        &mut self,
        auth: Option<&Text>,
        key: &str,
        ctx: &RouteContext<'_>,
    ) -> Option<RouteAuth> {
        match auth {
            None => {
                self.err(key, "`auth:` is required on every route: name a provider, or write `auth: none` for a public route");
                None
            }
            Some(t) if t.0 == "none" => Some(RouteAuth::None),
            Some(t) => match ctx.providers.get(&t.0) {
                Some(p) => Some(RouteAuth::Provider(p.clone())),
                None if ctx.provider_names.contains(&&t.0) => None, // provider itself had errors
                None => {
                    self.err(
                        format!("{key}.auth"),
                        format!(
                            "no provider named {:?} under `auth:` (known: {:?})",
                            t.0, ctx.provider_names
                        ),
                    );
                    None
                }
            },
        }
    }

    /// `require.claims` — needs a JWT provider.
    fn route_claims(
        &mut self,
        require: Option<&RawRequire>,
        auth: Option<&RouteAuth>,
        key: &str,
    ) -> Vec<ClaimRequirement> {
        let Some(req) = require else {
            return Vec::new();
        };
        let is_jwt =
            matches!(auth, Some(RouteAuth::Provider(p)) if matches!(p.kind, AuthKind::Jwt(_)));
        if !is_jwt && auth.is_some() {
            self.err(
                format!("{key}.require"),
                "require.claims needs a JWT provider in `auth:`",
            );
        }
        req.claims
            .iter()
            .map(|(claim, values)| ClaimRequirement {
                claim: claim.clone(),
                values: values.0.iter().map(|t| t.0.clone()).collect(),
            })
            .collect()
    }

    /// `cors:`
    fn route_cors(
        &mut self,
        c: &RawCors,
        ck: &str,
        origins: &BTreeMap<String, Arc<OriginList>>,
    ) -> Option<Cors> {
        let list = self.origins_ref(&c.origins, &format!("{ck}.origins"), origins);
        let methods = c
            .methods
            .as_ref()
            .map(|m| self.methods(m, &format!("{ck}.methods")))
            .unwrap_or_default();
        let max_age = c
            .max_age
            .as_ref()
            .map(|_| self.duration(&c.max_age, &format!("{ck}.max_age"), Duration::ZERO));
        let credentials = c.credentials.unwrap_or(false);
        if let Some(l) = &list {
            if credentials && l.entries.contains(&OriginPattern::Null) {
                self.err(
                    format!("{ck}.origins"),
                    "`null` with credentials: true would hand credentials to any sandboxed page",
                );
            }
            if credentials && l.entries.contains(&OriginPattern::Any) {
                self.err(
                    format!("{ck}.origins"),
                    "`*` with credentials: true would let every site read credentialed answers; list the origins",
                );
            }
        }
        let lower = |v: &Option<Vec<Text>>| -> Vec<String> {
            v.iter()
                .flatten()
                .map(|t| t.0.to_ascii_lowercase())
                .collect()
        };
        Some(Cors {
            origins: list?,
            credentials,
            methods,
            headers: lower(&c.headers),
            expose_headers: lower(&c.expose_headers),
            max_age,
            enforce: c.enforce.unwrap_or(false),
        })
    }

    /// `websocket:`
    fn route_websocket(
        &mut self,
        w: &RawWebSocket,
        wk: &str,
        origins: &BTreeMap<String, Arc<OriginList>>,
    ) -> WebSocketSettings {
        let origins = w
            .origins
            .as_ref()
            .and_then(|o| self.origins_ref(o, &format!("{wk}.origins"), origins));
        let idle_timeout = w.idle_timeout.as_ref().map(|_| {
            self.duration(
                &w.idle_timeout,
                &format!("{wk}.idle_timeout"),
                Duration::ZERO,
            )
        });
        for (k, v) in [
            ("max_per_ip", w.max_per_ip),
            ("max_per_subject", w.max_per_subject),
        ] {
            if v == Some(0) {
                self.err(
                    format!("{wk}.{k}"),
                    "must be at least 1 (0 would refuse every upgrade)",
                );
            }
        }
        WebSocketSettings {
            origins,
            max_per_ip: w.max_per_ip,
            max_per_subject: w.max_per_subject,
            idle_timeout,
            allow_missing_origin: w.allow_missing_origin.unwrap_or(false),
            close_on_token_expiry: w.close_on_token_expiry.unwrap_or(false),
        }
    }

    /// `concurrency:`
    fn route_concurrency(&mut self, c: &RawConcurrency, ck: &str) -> Concurrency {
        if c.max_in_flight == 0 {
            self.err(format!("{ck}.max_in_flight"), "must be at least 1");
        }
        Concurrency {
            max_in_flight: c.max_in_flight,
            queue: c.queue.unwrap_or(0),
            queue_timeout: self.duration(
                &c.queue_timeout,
                &format!("{ck}.queue_timeout"),
                Duration::from_secs(30),
            ),
        }
    }

    /// Valid settings that WebSocket troubleshooting guides keep meeting as bugs.
    fn websocket_hints(&mut self, routes: &[Route], server: &ServerSettings) {
        let any_tls = server.listeners.iter().any(|l| l.tls.is_some());
        for r in routes {
            let Some(ws) = &r.websocket else { continue };
            let key = format!("{}.websocket", r.key());
            let cookies = matches!(&r.auth, RouteAuth::Provider(p) if matches!(&p.kind,
                AuthKind::Jwt(j) if j.sources.iter().any(|s| matches!(s, TokenSource::Cookie(_)))));
            match &ws.origins {
                None if cookies => self.warn(
                    &key,
                    "no websocket.origins, and the provider accepts cookie tokens: any site can open this socket in a visitor's name (cross-site WebSocket hijacking); list the origins",
                ),
                Some(list) if !any_tls => {
                    let https = list.entries.iter().any(|e| e.scheme() == Some("https"));
                    if https {
                        self.warn(
                            format!("{key}.origins"),
                            "allows https:// pages, but every listener is plain ws://: browsers block ws:// from an https page (mixed content); add a TLS listener, or make sure TLS is terminated in front of Gatehouse",
                        );
                    }
                }
                _ => {}
            }
            if ws.allow_missing_origin && cookies {
                self.warn(
                    format!("{key}.allow_missing_origin"),
                    "on a socket that accepts cookie tokens: the Origin check is what stops cross-site hijacking; prefer a header or query token for clients that send no Origin",
                );
            }
        }
    }

    fn route_path(&mut self, p: &str, key: &str) -> Option<String> {
        match normalize_path(p) {
            Ok(n) if n == p => Some(n),
            Ok(n) => {
                self.err(key, format!("write the path in normalized form: {n:?} (requests are matched after normalization)"));
                None
            }
            Err(e) => {
                self.err(key, format!("{p:?} is not a valid path: {}", e.0));
                None
            }
        }
    }
}

fn unreachable_hmac() -> jsonwebtoken::errors::Result<DecodingKey> {
    Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into())
}
