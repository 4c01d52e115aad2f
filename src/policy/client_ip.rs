//! Step 1 of the evaluation: who is the client? The TCP peer, unless the peer is a trusted
//! proxy; then `X-Forwarded-For` is walked from the right, skipping trusted hops, and the
//! first untrusted address is the client. A header from an untrusted peer changes nothing —
//! the classic `X-Forwarded-For` spoof is impossible by construction.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

use super::model::canonical;

/// The decided client address and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    /// The client.
    pub ip: IpAddr,
    /// Human-readable reason (for the trail).
    pub how: String,
}

/// Whether `ip` is in any of `nets`.
pub fn in_nets(nets: &[IpNet], ip: IpAddr) -> Option<&IpNet> {
    nets.iter().find(|n| n.contains(&ip))
}

/// Parses one `X-Forwarded-For` element: an address, optionally `[v6]`, or `v4:port`.
pub fn parse_forwarded_element(s: &str) -> Option<IpAddr> {
    let s = s.trim();
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

/// The `X-Forwarded-For` elements, in order, over every such header line.
pub fn forwarded_chain(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Decides the client IP (POLICY.md step 1).
pub fn client_ip(peer: IpAddr, trusted: &[IpNet], headers: &HeaderMap) -> ClientIp {
    let peer = canonical(peer);
    if in_nets(trusted, peer).is_none() {
        return ClientIp {
            ip: peer,
            how: format!("TCP peer {peer} (not a trusted proxy)"),
        };
    }
    let chain = forwarded_chain(headers);
    if chain.is_empty() {
        return ClientIp {
            ip: peer,
            how: format!("trusted peer {peer} sent no X-Forwarded-For"),
        };
    }
    let mut last_trusted = peer;
    for element in chain.iter().rev() {
        match parse_forwarded_element(element) {
            Some(ip) if in_nets(trusted, ip).is_some() => last_trusted = ip,
            Some(ip) => {
                return ClientIp {
                    ip,
                    how: format!(
                    "X-Forwarded-For via trusted peer {peer}: first untrusted hop from the right"
                ),
                }
            }
            None => {
                return ClientIp {
                    ip: last_trusted,
                    how: format!(
                        "X-Forwarded-For has an unparsable hop; stopped at trusted {last_trusted}"
                    ),
                }
            }
        }
    }
    ClientIp {
        ip: last_trusted,
        how: "every X-Forwarded-For hop is trusted: the leftmost".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let c = client_ip(ip("198.51.100.7"), &trusted, &xff("1.2.3.4"));
        assert_eq!(c.ip, ip("198.51.100.7"));
    }

    #[test]
    fn walks_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, &xff("6.6.6.6, 1.2.3.4, 10.0.0.2")).ip,
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, &xff("10.0.0.9, 10.0.0.2")).ip,
            ip("10.0.0.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, &HeaderMap::new()).ip,
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, &xff("1.2.3.4, garbage, 10.0.0.3")).ip,
            ip("10.0.0.3")
        );
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &trusted, &xff("[2001:db8::1]:443")).ip,
            ip("2001:db8::1")
        );
    }

    proptest::proptest! {
        #[test]
        fn forwarded_parsing_never_panics(s in "\\PC{0,80}") {
            let _ = parse_forwarded_element(&s);
            if let Ok(v) = HeaderValue::from_str(&s) {
                let mut h = HeaderMap::new();
                h.append("x-forwarded-for", v);
                let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
                let _ = client_ip(ip("10.1.1.1"), &trusted, &h);
                // An untrusted peer is the client whatever the header says.
                proptest::prop_assert_eq!(client_ip(ip("192.0.2.9"), &trusted, &h).ip, ip("192.0.2.9"));
            }
        }
    }
}
