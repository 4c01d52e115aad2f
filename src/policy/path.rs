//! Request-target normalization — the defence against path-confusion bypasses (the nginx
//! `merge_slashes`/alias, Envoy `%2F`, Traefik and Tomcat `..;/` families). Routing and the
//! upstream see the same normalized path; anything still ambiguous is refused, never guessed:
//!
//! - unreserved characters (`A-Z a-z 0-9 - . _ ~`) are percent-decoded, other escapes kept
//!   (hex upper-cased), so `%2e%2e` is `..` and is resolved like `..`;
//! - `.` and `..` segments are resolved and `//` merged;
//! - an encoded `/` (`%2F`), a `\` raw or encoded, an encoded NUL/control character, a `..`
//!   above the root, a dot segment carrying `;` parameters (`..;`), a raw
//!   non-ASCII or control byte, or a broken `%` escape → `bad_path`.
//!
//! The output is a fixed point: normalizing it again changes nothing.

/// A normalized request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedTarget {
    /// The path, starting with `/`.
    pub path: String,
    /// The raw query (without `?`), unchanged; `None` when absent.
    pub query: Option<String>,
}

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPath(pub &'static str);

/// Normalizes a raw request target (origin-form `/a/b?q`, or absolute-form `http://h/a`).
pub fn normalize_target(raw: &[u8]) -> Result<NormalizedTarget, BadPath> {
    let target = std::str::from_utf8(raw).map_err(|_| BadPath("non-ASCII byte in the path"))?;
    let origin_form = if target.starts_with('/') {
        target
    } else if let Some(rest) = strip_scheme(target) {
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            _ => "/",
        }
    } else {
        return Err(BadPath("request target is not a path"));
    };
    // A fragment is never part of a request; the HTTP parser in front of us drops it, so the
    // decision does too (and it is never forwarded).
    let origin_form = origin_form.split('#').next().unwrap_or(origin_form);
    let (path, query) = match origin_form.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (origin_form, None),
    };
    Ok(NormalizedTarget {
        path: normalize_path(path)?,
        query,
    })
}

fn strip_scheme(t: &str) -> Option<&str> {
    for scheme in ["http://", "https://"] {
        if t.len() >= scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&t[scheme.len()..]);
        }
    }
    None
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalizes an absolute path (see the module docs).
pub fn normalize_path(path: &str) -> Result<String, BadPath> {
    if already_normal(path) {
        return Ok(path.to_string());
    }
    normalize_path_in_full(path)
}

/// Whether `path` is its own normal form, seen in one pass without allocating: it starts with
/// `/`, every byte is visible ASCII other than `%` and `\`, and no segment is empty (but the
/// last) or starts with a dot. Most paths are; the rest go through every step below.
fn already_normal(path: &str) -> bool {
    let b = path.as_bytes();
    b.first() == Some(&b'/')
        && b.iter()
            .all(|&c| matches!(c, 0x21..=0x7e) && c != b'%' && c != b'\\')
        && !b
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'))
}

fn normalize_path_in_full(path: &str) -> Result<String, BadPath> {
    if !path.starts_with('/') {
        return Err(BadPath("path does not start with '/'"));
    }
    // 1. Decode unreserved escapes, check every byte.
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (h, l) = match (
                    bytes.get(i + 1).and_then(|x| hex(*x)),
                    bytes.get(i + 2).and_then(|x| hex(*x)),
                ) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(BadPath("broken percent-escape")),
                };
                let v = h * 16 + l;
                match v {
                    b'/' => return Err(BadPath("encoded '/' (%2F) in path")),
                    b'\\' => return Err(BadPath("encoded '\\' (%5C) in path")),
                    0x00..=0x1f | 0x7f => return Err(BadPath("encoded control character in path")),
                    _ if is_unreserved(v) => decoded.push(v as char),
                    _ => {
                        decoded.push('%');
                        decoded.push(char::from(b"0123456789ABCDEF"[(v >> 4) as usize]));
                        decoded.push(char::from(b"0123456789ABCDEF"[(v & 15) as usize]));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(BadPath("'\\' in path")),
            0x21..=0x7e => {
                decoded.push(b as char);
                i += 1;
            }
            _ => return Err(BadPath("control, space or non-ASCII byte in path")),
        }
    }
    // 2. Resolve dot segments and merge empty ones.
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (n, seg) in segments.iter().enumerate() {
        let bare = seg.split(';').next().unwrap_or("");
        if seg.contains(';') && (bare == "." || bare == "..") {
            return Err(BadPath("dot segment with ';' parameters"));
        }
        match *seg {
            "" => {
                if n == last {
                    trailing_slash = true;
                }
            }
            "." => trailing_slash = n == last,
            ".." => {
                if out.pop().is_none() {
                    return Err(BadPath("'..' climbs above the root"));
                }
                trailing_slash = n == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut result = String::with_capacity(decoded.len());
    for s in &out {
        result.push('/');
        result.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        result.push('/');
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn n(p: &str) -> Result<String, BadPath> {
        normalize_path(p)
    }

    #[test]
    fn the_one_pass_check_only_passes_paths_that_are_their_own_normal_form() {
        let paths = [
            "/",
            "/a",
            "/a/b",
            "/a/b/",
            "/a.b/c.d",
            "/a/b.",
            "/a/..b",
            "/.well-known/x",
            "/a/./b",
            "/a/../b",
            "/a//b",
            "//a",
            "/a/b/.",
            "/a/b/..",
            "/a/%41",
            "/a\\b",
            "/a;b",
            "/a/.;b",
            "/a/..;/b",
            "/a b",
            "/é",
            "/a/~x/_y-z",
            "/a?b",
            "/a#b",
        ];
        for p in paths {
            if already_normal(p) {
                assert_eq!(normalize_path_in_full(p), Ok(p.to_string()), "{p}");
            }
            assert_eq!(normalize_path(p), normalize_path_in_full(p), "{p}");
        }
        assert!(already_normal("/api/v1/echo"));
        assert!(!already_normal("/a/./b"));
    }

    #[test]
    fn resolves_and_merges() {
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("/a/b").unwrap(), "/a/b");
        assert_eq!(n("/a//b").unwrap(), "/a/b");
        assert_eq!(n("//a///b//").unwrap(), "/a/b/");
        assert_eq!(n("/a/./b").unwrap(), "/a/b");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(n("/a/b/../c").unwrap(), "/a/c");
        assert_eq!(n("/a/%2e%2e/c").unwrap(), "/c");
        assert_eq!(n("/a/%2E/c").unwrap(), "/a/c");
        assert_eq!(n("/%61pi").unwrap(), "/api");
        assert_eq!(n("/a%20b").unwrap(), "/a%20b");
        assert_eq!(n("/a%c3%a9").unwrap(), "/a%C3%A9");
        assert_eq!(n("/api/v1/.").unwrap(), "/api/v1/");
        assert_eq!(n("/a;b/c").unwrap(), "/a;b/c");
    }

    #[test]
    fn refuses_ambiguity() {
        for bad in [
            "/..",
            "/a/../..",
            "/%2e%2e",
            "/a/%2F/b",
            "/a%2fb",
            "/a\\b",
            "/a%5cb",
            "/a%00",
            "/a%0a",
            "/a%",
            "/a%zz",
            "/..;/admin",
            "/a/.;x/b",
            "/a b",
            "relative",
        ] {
            assert!(n(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets() {
        let t = normalize_target(b"/a/../b?x=1&y=%2F").unwrap();
        assert_eq!(t.path, "/b");
        assert_eq!(t.query.as_deref(), Some("x=1&y=%2F"));
        assert_eq!(
            normalize_target(b"http://h.example/a//b").unwrap().path,
            "/a/b"
        );
        assert_eq!(normalize_target(b"HTTP://h.example").unwrap().path, "/");
        assert_eq!(
            normalize_target(b"/a/../b#frag/../../x").unwrap().path,
            "/b"
        );
        assert!(normalize_target(b"*").is_err());
        assert!(normalize_target(b"/caf\xc3\xa9").is_err());
    }

    proptest::proptest! {
        #[test]
        fn normalization_is_idempotent_and_never_panics(s in "[/a-zA-Z0-9%._~;\\\\-]{0,48}") {
            if let Ok(n) = normalize_path(&format!("/{s}")) {
                proptest::prop_assert_eq!(normalize_path(&n), Ok(n.clone()));
                proptest::prop_assert!(n.starts_with('/'));
                proptest::prop_assert!(!n.contains("//"));
                proptest::prop_assert!(!n.split('/').any(|seg| seg == ".." || seg == "."));
                proptest::prop_assert!(!n.to_ascii_lowercase().contains("%2f") && !n.contains('\\'));
            }
        }

        #[test]
        fn arbitrary_targets_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            if let Ok(t) = normalize_target(&b) {
                proptest::prop_assert_eq!(normalize_path(&t.path), Ok(t.path.clone()));
            }
        }
    }
}
