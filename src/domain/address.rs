//! The client's address: the peer, unless the peer is a trusted proxy, in which case the
//! one header the proxies write (`X-Forwarded-For`, or RFC 7239 `Forwarded`) is walked from
//! the right to the first hop that is not trusted. Nothing a client writes is believed
//! unless a trusted proxy appended it; the other header is never read, since proxies pass
//! a header they do not write through untouched.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// The header the trusted proxies append the client's address to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

impl ForwardedHeader {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            other => Err(format!("\"{other}\" is not x-forwarded-for or forwarded")),
        }
    }

    /// The header's name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// Networks whose forwarding header is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a list of CIDRs or plain addresses separated by commas or spaces.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let net = match item.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(canonical(ip)),
                Err(_) => item
                    .parse::<IpNet>()
                    .map_err(|_| format!("\"{item}\" is not an address or CIDR like 10.0.0.0/8"))?,
            };
            nets.push(net.trunc());
        }
        Ok(Self(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// One hop of a `Forwarded` element's `for=` or an `X-Forwarded-For` item; `None` for
/// `unknown`, obfuscated identifiers and garbage.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    // "[2001:db8::1]:4711" or "[2001:db8::1]"
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    // "192.0.2.1:8080"
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The `for=` hops of `Forwarded` header values, in order.
fn forwarded_hops(values: &[&str]) -> Vec<Option<IpAddr>> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, v)| parse_hop(v))
        })
        .collect()
}

fn x_forwarded_for_hops(values: &[&str]) -> Vec<Option<IpAddr>> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(parse_hop)
        .collect()
}

/// The client's address for `peer`, given every value of the one forwarding header the
/// trusted proxies write (values that are not valid text are passed lossily, so one bad
/// byte spoils only its own hop).
pub fn client_address(
    peer: IpAddr,
    header: ForwardedHeader,
    values: &[String],
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let hops = match header {
        ForwardedHeader::Forwarded => forwarded_hops(&values),
        ForwardedHeader::XForwardedFor => x_forwarded_for_hops(&values),
    };
    let mut current = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            // A trusted proxy wrote this hop: believe it, and go on if it is trusted too.
            Some(ip) => {
                current = canonical(ip);
                if !trusted.contains(current) {
                    return current;
                }
            }
            // An unreadable hop: the last address we can vouch for is the answer.
            None => return current,
        }
    }
    current
}

/// An address as the limits count it: IPv4 whole, IPv6 by its /64 (one subscriber's
/// allocation, which a single attacker can cycle through freely).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LimitAddress(String);

impl LimitAddress {
    pub fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => Self(v4.to_string()),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                Self(format!("{prefix}/64"))
            }
        }
    }
}

impl fmt::Display for LimitAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(peer: &str, values: &[&str], trusted: &TrustedProxies) -> IpAddr {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        client_address(ip(peer), ForwardedHeader::XForwardedFor, &values, trusted)
    }

    fn fwd(peer: &str, values: &[&str], trusted: &TrustedProxies) -> IpAddr {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        client_address(ip(peer), ForwardedHeader::Forwarded, &values, trusted)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_writes() {
        let none = TrustedProxies::default();
        assert_eq!(
            xff("203.0.113.5", &["198.51.100.1"], &none),
            ip("203.0.113.5")
        );
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            xff("203.0.113.5", &["1.1.1.1"], &proxies),
            ip("203.0.113.5")
        );
        assert_eq!(
            fwd("203.0.113.5", &["for=1.1.1.1"], &proxies),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn walks_right_to_left_to_the_first_untrusted_hop() {
        let proxies = TrustedProxies::parse("10.0.0.1, 10.0.1.0/24").unwrap();
        // The client wrote a fake first hop; the proxies appended the real ones.
        let chain = ["6.6.6.6, 198.51.100.9", "10.0.1.7"];
        assert_eq!(xff("10.0.0.1", &chain, &proxies), ip("198.51.100.9"));
        assert_eq!(
            xff("10.0.0.1", &[], &proxies),
            ip("10.0.0.1"),
            "no header: the proxy itself"
        );
        assert_eq!(
            xff("10.0.0.1", &["10.0.1.2"], &proxies),
            ip("10.0.1.2"),
            "every hop trusted: the leftmost"
        );
        assert_eq!(
            xff("10.0.0.1", &["garbage, 10.0.1.3"], &proxies),
            ip("10.0.1.3"),
            "an unreadable hop stops the walk at the last trusted one"
        );
        // One bad byte in the part the client wrote spoils only that hop.
        let lossy = String::from_utf8_lossy(b"1.2.3.4\x80, 198.51.100.9").into_owned();
        assert_eq!(
            xff("10.0.0.1", &[lossy.as_str()], &proxies),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn reads_only_the_configured_header() {
        let proxies = TrustedProxies::parse("127.0.0.1").unwrap();
        let forwarded =
            [r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#];
        assert_eq!(
            fwd("127.0.0.1", &forwarded, &proxies),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd("127.0.0.1", &["for=192.0.2.1:8080"], &proxies),
            ip("192.0.2.1")
        );
        assert_eq!(
            fwd("127.0.0.1", &["for=unknown"], &proxies),
            ip("127.0.0.1")
        );
        assert_eq!(
            ForwardedHeader::parse("Forwarded"),
            Ok(ForwardedHeader::Forwarded)
        );
        assert!(ForwardedHeader::parse("x-real-ip").is_err());
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            LimitAddress::of(ip("2001:db8:1:2:aaaa::1")),
            LimitAddress::of(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            LimitAddress::of(ip("2001:db8:1:2::1")),
            LimitAddress::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            LimitAddress::of(ip("::ffff:192.0.2.1")).to_string(),
            "192.0.2.1"
        );
        assert!(
            TrustedProxies::parse("::ffff:127.0.0.1")
                .unwrap()
                .contains(ip("127.0.0.1"))
        );
    }

    #[test]
    fn rejects_bad_proxy_lists() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }
}
