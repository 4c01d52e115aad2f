//! Origins as `POLICY.md` defines them: `scheme://host[:port]`, default ports normalized, host
//! compared case-insensitively, and anything else in an `Origin` header (a path, userinfo, a
//! trailing dot) matching nothing. `https://*.example.com` matches one or more labels under
//! `example.com` — never `example.com` itself, `evilexample.com` or `example.com.evil.com`:
//! the match is on whole labels, anchored at both ends, never a substring or regex.

/// A named list of allowed origins.
#[derive(Debug, Clone)]
pub struct OriginList {
    /// Key path of the list (`origins.web-app`, or `routes[i].cors.origins` when inline).
    pub key: String,
    /// Entries, in file order.
    pub entries: Vec<OriginPattern>,
    /// Treat `localhost`, `127.0.0.1` and `[::1]` as one host (off by default).
    pub loopback_aliases: bool,
}

/// The spellings of the loopback host that `loopback_aliases` makes one.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl OriginList {
    /// The index of the first entry that matches the `Origin` header value, if any.
    pub fn find(&self, header: &str) -> Option<usize> {
        // Fast path, without parsing or allocating: a header written exactly as an exact
        // entry's canonical form parses to that entry's origin. Any earlier exact entry that
        // would match after parsing has the same origin, hence the same canonical form, and
        // was found first; the scan stops at the first other kind of entry, which needs the
        // parsed form to keep "first matching entry" the answer.
        for (i, entry) in self.entries.iter().enumerate() {
            match entry {
                OriginPattern::Exact(o) if o.is_written_as(header) => return Some(i),
                OriginPattern::Exact(_) => {}
                _ => break,
            }
        }
        self.find_parsed(header)
    }

    /// [`Self::find`] by parsing the header first.
    fn find_parsed(&self, header: &str) -> Option<usize> {
        let origin = Origin::parse(header);
        if let Some(i) = self
            .entries
            .iter()
            .position(|e| e.matches(header, origin.as_ref()))
        {
            return Some(i);
        }
        let o = origin
            .filter(|o| self.loopback_aliases && LOOPBACK_HOSTS.contains(&o.host.as_str()))?;
        LOOPBACK_HOSTS.iter().find_map(|alias| {
            let alias = Origin {
                host: (*alias).to_string(),
                ..o.clone()
            };
            self.entries
                .iter()
                .position(|e| e.matches(header, Some(&alias)))
        })
    }

    /// Which loopback spellings the list names (by exact entries).
    pub fn loopback_spellings(&self) -> Vec<&'static str> {
        LOOPBACK_HOSTS
            .iter()
            .copied()
            .filter(|h| {
                self.entries
                    .iter()
                    .any(|e| matches!(e, OriginPattern::Exact(o) if o.host == *h))
            })
            .collect()
    }
}

/// A parsed, canonical origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Whether `text` is this origin's canonical serialization (its `Display` form: lowercase
    /// scheme and host, the port only when it is not the scheme's default).
    fn is_written_as(&self, text: &str) -> bool {
        let Some(rest) = text
            .strip_prefix(self.scheme.as_str())
            .and_then(|r| r.strip_prefix("://"))
            .and_then(|r| r.strip_prefix(self.host.as_str()))
        else {
            return false;
        };
        let default = matches!(
            (self.scheme.as_str(), self.port),
            ("http", 80) | ("https", 443)
        );
        if default {
            return rest.is_empty();
        }
        rest.strip_prefix(':').is_some_and(|p| {
            !p.starts_with('0')
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>() == Ok(self.port)
        })
    }

    /// Parses a serialized origin strictly; `None` for anything that is not exactly
    /// `scheme://host[:port]` with an http or https scheme.
    pub fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let (host, port) = split_host_port(rest)?;
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
            None => default_port,
        };
        let host = host.to_ascii_lowercase();
        if !valid_host(&host) {
            return None;
        }
        Some(Origin { scheme, host, port })
    }
}

fn split_host_port(rest: &str) -> Option<(&str, Option<&str>)> {
    if rest.is_empty() {
        return None;
    }
    if rest.starts_with('[') {
        let end = rest.find(']')?;
        let host = &rest[..=end];
        let after = &rest[end + 1..];
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match rest.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p))),
        None => Some((rest, None)),
    }
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let default = matches!(
            (self.scheme.as_str(), self.port),
            ("http", 80) | ("https", 443)
        );
        if default {
            write!(f, "{}://{}", self.scheme, self.host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

impl std::fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginPattern::Any => f.write_str("*"),
            OriginPattern::Null => f.write_str("null"),
            OriginPattern::Exact(o) => write!(f, "{o}"),
            OriginPattern::Wildcard {
                scheme,
                suffix,
                port,
            } => {
                let default = matches!((scheme.as_str(), *port), ("http", 80) | ("https", 443));
                if default {
                    write!(f, "{scheme}://*.{suffix}")
                } else {
                    write!(f, "{scheme}://*.{suffix}:{port}")
                }
            }
        }
    }
}

/// One entry of an origin list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: any http(s) origin (never with credentials; never `null`).
    Any,
    /// The literal `null` origin.
    Null,
    /// Exactly this origin.
    Exact(Origin),
    /// `scheme://*.suffix[:port]`: one or more labels under `suffix`.
    Wildcard {
        /// Scheme.
        scheme: String,
        /// The registrable part after `*.` (lowercase).
        suffix: String,
        /// Port (default port of the scheme when not written).
        port: u16,
    },
}

impl OriginPattern {
    /// Parses a policy entry; the error is a message for the operator.
    pub fn parse(text: &str) -> Result<OriginPattern, String> {
        if text == "null" {
            return Ok(OriginPattern::Null);
        }
        if text == "*" {
            return Ok(OriginPattern::Any);
        }
        if let Some((scheme, rest)) = text.split_once("://*.") {
            let probe = format!("{scheme}://{rest}");
            let o = Origin::parse(&probe).ok_or_else(|| bad(text))?;
            if !o.host.contains('.') {
                return Err(format!("{text:?}: a wildcard must sit under a domain of two or more labels, as in \"https://*.example.com\""));
            }
            if psl::suffix_str(&o.host) == Some(o.host.as_str()) {
                return Err(format!(
                    "{text:?}: {:?} is a public suffix: the wildcard would match every site registered under it",
                    o.host
                ));
            }
            return Ok(OriginPattern::Wildcard {
                scheme: o.scheme,
                suffix: o.host,
                port: o.port,
            });
        }
        if text.contains('*') {
            return Err(format!(
                "{text:?}: a wildcard is only allowed as the whole first label, as in \"https://*.example.com\""
            ));
        }
        Origin::parse(text)
            .map(OriginPattern::Exact)
            .ok_or_else(|| bad(text))
    }

    /// The scheme an entry names (`None` for `*` and `null`).
    pub fn scheme(&self) -> Option<&str> {
        match self {
            OriginPattern::Exact(o) => Some(&o.scheme),
            OriginPattern::Wildcard { scheme, .. } => Some(scheme),
            OriginPattern::Any | OriginPattern::Null => None,
        }
    }

    fn matches(&self, raw: &str, origin: Option<&Origin>) -> bool {
        match (self, origin) {
            (OriginPattern::Any, o) => o.is_some(),
            (OriginPattern::Null, _) => raw == "null",
            (OriginPattern::Exact(want), Some(o)) => want == o,
            (
                OriginPattern::Wildcard {
                    scheme,
                    suffix,
                    port,
                },
                Some(o),
            ) => {
                o.scheme == *scheme
                    && o.port == *port
                    && o.host.len() > suffix.len() + 1
                    && o.host.ends_with(suffix.as_str())
                    && o.host.as_bytes()[o.host.len() - suffix.len() - 1] == b'.'
            }
            _ => false,
        }
    }
}

fn bad(text: &str) -> String {
    format!("{text:?} is not an origin: expected scheme://host[:port] with http or https, or null")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn list(entries: &[&str]) -> OriginList {
        OriginList {
            key: "t".into(),
            entries: entries
                .iter()
                .map(|e| OriginPattern::parse(e).unwrap())
                .collect(),
            loopback_aliases: false,
        }
    }

    #[test]
    fn public_suffixes_and_schemes_are_refused() {
        for bad in [
            "https://*.co.uk",
            "https://*.github.io",
            "*://a.com",
            "https://a.com/path",
            "https://*",
            "http*://a.com",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(OriginPattern::parse("https://*.example.co.uk").is_ok());
    }

    #[test]
    fn the_unparsed_fast_path_answers_what_parsing_answers() {
        let lists = [
            list(&["https://a.com", "http://localhost:3000"]),
            list(&["http://a.com:8080", "https://*.a.com", "https://b.com"]),
            list(&["https://*.a.com", "https://x.a.com"]),
            list(&["*", "https://a.com"]),
            list(&["null", "https://a.com"]),
            list(&["https://a.com", "https://a.com"]),
            list(&["http://[::1]:3000", "https://xn--bcher-kva.example"]),
        ];
        let headers = [
            "https://a.com",
            "https://A.com",
            "HTTPS://a.com",
            "https://a.com:443",
            "https://a.com:0443",
            "https://a.com:+443",
            "https://a.com/",
            "https://a.com.",
            "https://a.comx",
            "http://a.com:8080",
            "http://a.com:08080",
            "http://a.com:80800",
            "http://a.com",
            "https://x.a.com",
            "https://b.com",
            "http://localhost:3000",
            "http://localhost:3000/",
            "http://[::1]:3000",
            "http://[0::1]:3000",
            "https://xn--bcher-kva.example",
            "null",
            "",
            "https://",
        ];
        for l in &lists {
            for h in headers {
                assert_eq!(l.find(h), l.find_parsed(h), "{h:?} in {:?}", l.entries);
            }
        }
    }

    #[test]
    fn any_matches_origins_but_not_null_or_garbage() {
        let l = list(&["*"]);
        assert!(l.find("https://x.test").is_some());
        assert!(l.find("null").is_none());
        assert!(l.find("https://x.test/path").is_none());
    }

    #[test]
    fn loopback_aliases_make_one_host() {
        let mut l = list(&["http://localhost:3000"]);
        assert!(l.find("http://127.0.0.1:3000").is_none(), "off by default");
        l.loopback_aliases = true;
        assert!(l.find("http://127.0.0.1:3000").is_some());
        assert!(l.find("http://[::1]:3000").is_some());
        assert!(
            l.find("http://127.0.0.1:3001").is_none(),
            "port still matters"
        );
        assert!(
            l.find("https://127.0.0.1:3000").is_none(),
            "scheme still matters"
        );
        assert!(l.find("http://127.0.0.2:3000").is_none());
        assert_eq!(l.loopback_spellings(), vec!["localhost"]);
    }

    #[test]
    fn exact_and_default_ports() {
        let l = list(&["https://a.com", "http://localhost:3000"]);
        assert!(l.find("https://a.com").is_some());
        assert!(l.find("https://A.COM:443").is_some());
        assert!(l.find("http://localhost:3000").is_some());
        assert!(l.find("http://a.com").is_none());
        assert!(l.find("https://a.com:8443").is_none());
        for bad in [
            "https://a.com/",
            "https://u@a.com",
            "https://a.com.",
            "https://a.com/x",
            "a.com",
            "null",
        ] {
            assert!(l.find(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn wildcard_is_anchored_on_labels() {
        let l = list(&["https://*.example.com"]);
        assert!(l.find("https://app.example.com").is_some());
        assert!(l.find("https://a.b.example.com").is_some());
        for bad in [
            "https://example.com",
            "https://evilexample.com",
            "https://example.com.evil.com",
            "http://app.example.com",
            "https://.example.com",
            "https://app.example.com:444",
        ] {
            assert!(l.find(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn null_only_when_listed() {
        assert!(list(&["null"]).find("null").is_some());
        assert!(OriginPattern::parse("https://a.*.com").is_err());
        assert!(OriginPattern::parse("ftp://a.com").is_err());
        assert!(OriginPattern::parse("https://*.com").is_err());
    }
}
