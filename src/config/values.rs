//! Parsers for the scalar value syntaxes of the policy file: durations (`500ms`, `10s`),
//! sizes (`512KiB`, `10MB`), rates (`"10/1m"`) and CIDRs. Each returns a message fit to follow
//! the key path in an error, so the compiler only has to say *where*.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};

pub use crate::policy::client_ip::canonical as canonical_ip;
pub use crate::policy::model::Rate;

/// Parses `500ms`, `10s`, `1m`, `1h` (a whole number and a unit; the unit is required).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let expected = || {
        format!("expected a duration such as \"500ms\", \"10s\", \"1m\" or \"1h\", got {text:?}")
    };
    if num.is_empty() {
        return Err(expected());
    }
    let n: u64 = num.parse().map_err(|_| expected())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(expected()),
    };
    Ok(d)
}

/// Parses `512KiB`, `10MiB`, `1GiB` (binary), `KB`/`MB`/`GB` (decimal), `B` or a bare byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let expected =
        || format!("expected a size such as \"512KiB\", \"10MiB\" or \"1MB\", got {text:?}");
    if num.is_empty() {
        return Err(expected());
    }
    let n: u64 = num.parse().map_err(|_| expected())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(expected()),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Parses `"N/period"`, e.g. `"10/1s"`, `"100/1m"`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let expected = || format!("expected \"N/period\" such as \"100/1m\", got {text:?}");
    let (n, period) = text.trim().split_once('/').ok_or_else(expected)?;
    let count: u32 = n.trim().parse().map_err(|_| expected())?;
    let period = parse_duration(period.trim()).map_err(|_| expected())?;
    if count == 0 {
        return Err(format!(
            "a rate must admit at least 1 request, got {text:?}"
        ));
    }
    if period.is_zero() {
        return Err(format!(
            "a rate period must be longer than zero, got {text:?}"
        ));
    }
    Ok(Rate { count, period })
}

/// Parses a CIDR (`10.0.0.0/8`, `::1/128`) or a bare address (a single host). An
/// IPv4-mapped IPv6 range becomes the IPv4 range it covers, so one rule matches a client
/// however its address reached us. Host bits are cleared (`10.1.2.3/8` = `10.0.0.0/8`).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    let net = if t.contains('/') {
        t.parse::<IpNet>().map_err(|_| {
            format!("expected a CIDR such as \"10.0.0.0/8\" or an address, got {text:?}")
        })?
    } else {
        let ip: IpAddr = t.parse().map_err(|_| {
            format!("expected a CIDR such as \"10.0.0.0/8\" or an address, got {text:?}")
        })?;
        IpNet::from(ip)
    };
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.network().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                let v4net = Ipv4Net::new(v4, v6.prefix_len() - 96)
                    .map_err(|_| format!("invalid IPv4-mapped range {text:?}"))?;
                return Ok(IpNet::V4(v4net.trunc()));
            }
        }
    }
    Ok(net.trunc())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["10", "s", "10 minutes", "-1s", "1.5s", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("10MiB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("42").unwrap(), 42);
        assert!(parse_size("10 megs").is_err());
    }

    #[test]
    fn rates() {
        let r = parse_rate("5/1m").unwrap();
        assert_eq!((r.count, r.period), (5, Duration::from_secs(60)));
        assert!(parse_rate("10 per minute").is_err());
        assert!(parse_rate("0/1m").is_err());
        assert!(parse_rate("5/0s").is_err());
    }

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("127.0.0.1").unwrap().to_string(), "127.0.0.1/32");
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        assert_eq!(
            parse_cidr("::ffff:10.0.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("ten").is_err());
    }
}
