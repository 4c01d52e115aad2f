//! Step 1 of the evaluation: who is the client? The TCP peer, unless the peer is a trusted
//! proxy; then `X-Forwarded-For` is walked from the right, skipping trusted hops, and the
//! first untrusted address is the client. A header from an untrusted peer changes nothing —
//! the classic `X-Forwarded-For` spoof is impossible by construction.
//!
//! The header is read as **bytes**, element by element: a proxy in front of us forwards
//! whatever the attacker put on the left (`\xc3\xa9, 203.0.113.9`), and dropping a line
//! because it is not UTF-8 would make the trusted proxy itself the client — a bypass of every
//! IP rule. An element that cannot be read where the client must be found is an error (the
//! caller answers 400); one further left, beyond the client, is ignored.

use std::fmt;
use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// Canonical form of an address for every comparison: IPv4-mapped IPv6 becomes IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// How the client address was found (rendered only for the trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The peer is not a trusted proxy: it is the client.
    UntrustedPeer,
    /// A trusted peer sent no `X-Forwarded-For`.
    TrustedNoHeader,
    /// The first untrusted hop from the right.
    FirstUntrusted,
    /// Every hop is trusted: the leftmost.
    AllTrusted,
}

/// The decided client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    /// The client.
    pub ip: IpAddr,
    /// The TCP peer (canonical).
    pub peer: IpAddr,
    /// How it was found.
    pub how: How,
    /// The `X-Forwarded-For` hops we vouch for (the client and the trusted hops right of
    /// it), canonical and comma-joined; empty when the peer is the client.
    pub chain: String,
}

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = self.peer;
        match self.how {
            How::UntrustedPeer => write!(f, "{} — TCP peer (not a trusted proxy)", self.ip),
            How::TrustedNoHeader => {
                write!(f, "{} — trusted peer sent no X-Forwarded-For", self.ip)
            }
            How::FirstUntrusted => write!(
                f,
                "{} — X-Forwarded-For via trusted peer {peer}: first untrusted hop from the right",
                self.ip
            ),
            How::AllTrusted => write!(
                f,
                "{} — every X-Forwarded-For hop is trusted: the leftmost",
                self.ip
            ),
        }
    }
}

/// An `X-Forwarded-For` element that is not an address, where the client had to be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableHop {
    /// 0-based position from the left, over every header line.
    pub position: usize,
    /// The element, escaped for a log line.
    pub element: String,
}

/// Whether `ip` is in any of `nets`.
pub fn in_nets(nets: &[IpNet], ip: IpAddr) -> Option<&IpNet> {
    nets.iter().find(|n| n.contains(&ip))
}

/// Parses one `X-Forwarded-For` element: an address, optionally `[v6]`, `[v6]:port` or
/// `v4:port`. Any byte that is not ASCII makes it unreadable.
pub fn parse_forwarded_element(raw: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(inner) = s.strip_prefix('[') {
        let end = inner.find(']')?;
        let rest = &inner[end + 1..];
        if !(rest.is_empty()
            || rest
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok()))
        {
            return None;
        }
        return inner[..end].parse::<IpAddr>().ok().map(canonical);
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// The `X-Forwarded-For` elements as bytes, in order, over every header line (empty list
/// elements are skipped, as RFC 9110 lists allow).
pub fn forwarded_elements(headers: &HeaderMap) -> Vec<&[u8]> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(trim)
        .filter(|e| !e.is_empty())
        .collect()
}

/// Decides the client IP (POLICY.md step 1).
pub fn client_ip(
    peer: IpAddr,
    trusted: &[IpNet],
    headers: &HeaderMap,
) -> Result<ClientIp, UnreadableHop> {
    let peer = canonical(peer);
    let found = |ip, how, chain| ClientIp {
        ip,
        peer,
        how,
        chain,
    };
    if in_nets(trusted, peer).is_none() {
        return Ok(found(peer, How::UntrustedPeer, String::new()));
    }
    let elements = forwarded_elements(headers);
    if elements.is_empty() {
        return Ok(found(peer, How::TrustedNoHeader, String::new()));
    }
    let mut hops: Vec<IpAddr> = Vec::with_capacity(elements.len());
    for (position, element) in elements.iter().enumerate().rev() {
        let Some(ip) = parse_forwarded_element(element) else {
            return Err(UnreadableHop {
                position,
                element: String::from_utf8_lossy(element).escape_debug().to_string(),
            });
        };
        hops.push(ip);
        if in_nets(trusted, ip).is_none() {
            return Ok(found(ip, How::FirstUntrusted, render_chain(&hops)));
        }
    }
    let leftmost = hops.last().copied().unwrap_or(peer);
    Ok(found(leftmost, How::AllTrusted, render_chain(&hops)))
}

/// `hops` were collected right to left; the header lists them left to right.
fn render_chain(hops: &[IpAddr]) -> String {
    let mut out = String::new();
    for ip in hops.iter().rev() {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&ip.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    fn xff(v: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_bytes(v).unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap()]
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let c = client_ip(ip("198.51.100.7"), &trusted(), &xff(b"1.2.3.4")).unwrap();
        assert_eq!(c.ip, ip("198.51.100.7"));
        assert_eq!(c.chain, "");
    }

    #[test]
    fn walks_from_the_right() {
        let t = trusted();
        let c = client_ip(ip("10.0.0.1"), &t, &xff(b"6.6.6.6, 1.2.3.4, 10.0.0.2")).unwrap();
        assert_eq!(c.ip, ip("1.2.3.4"));
        assert_eq!(c.chain, "1.2.3.4, 10.0.0.2");
        assert_eq!(
            client_ip(ip("10.0.0.1"), &t, &xff(b"10.0.0.9, 10.0.0.2"))
                .unwrap()
                .ip,
            ip("10.0.0.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &t, &HeaderMap::new()).unwrap().ip,
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &t, &xff(b"[2001:db8::1]:443"))
                .unwrap()
                .ip,
            ip("2001:db8::1")
        );
    }

    #[test]
    fn non_ascii_left_of_the_client_is_ignored_not_a_bypass() {
        // Regression (issue 6.1): the whole line used to be dropped, making the proxy the client.
        let c = client_ip(ip("10.0.0.1"), &trusted(), &xff(b"\xc3\xa9, 203.0.113.9")).unwrap();
        assert_eq!(c.ip, ip("203.0.113.9"));
    }

    #[test]
    fn unreadable_hop_where_the_client_is_sought_is_an_error() {
        let t = trusted();
        for v in [
            &b"1.2.3.4, garbage, 10.0.0.3"[..],
            b"\xc3\xa9",
            b"203.0.113.9, \xff",
            b"10.0.0.2, 10.0.0.3, nope",
        ] {
            assert!(client_ip(ip("10.0.0.1"), &t, &xff(v)).is_err(), "{v:?}");
        }
        // Several lines are joined in order.
        let mut h = xff(b"\xff");
        h.append("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &t, &h).unwrap().ip,
            ip("198.51.100.1")
        );
    }

    proptest::proptest! {
        #[test]
        fn forwarded_parsing_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = parse_forwarded_element(&b);
            if let Ok(v) = HeaderValue::from_bytes(&b) {
                let mut h = HeaderMap::new();
                h.append("x-forwarded-for", v);
                let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
                if let Ok(c) = client_ip(ip("10.1.1.1"), &trusted, &h) {
                    // The client is never a trusted hop unless every hop was trusted.
                    proptest::prop_assert!(in_nets(&trusted, c.ip).is_none() || c.how != How::FirstUntrusted);
                }
                // An untrusted peer is the client whatever the header says.
                proptest::prop_assert_eq!(client_ip(ip("192.0.2.9"), &trusted, &h).unwrap().ip, ip("192.0.2.9"));
            }
        }
    }
}
