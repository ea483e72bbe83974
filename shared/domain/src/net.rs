//! The one outbound-request (SSRF) policy: which URLs the product accepts as targets it will
//! later call (webhooks, content URLs) and which addresses it may connect to. Registration
//! refuses literal private targets at once; delivery resolves the name, filters the answers
//! with [`ip_allowed`] and connects only to an address that passed (resolve-and-pin).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const URL_MAX_CHARS: usize = 2_048;

/// Whether an address may be connected to: never loopback, private, link-local, unique-local,
/// shared (CGNAT), documentation, benchmarking, multicast, broadcast, reserved, unspecified or
/// cloud metadata, including IPv4 addresses embedded in IPv6 (mapped `::ffff:a.b.c.d`,
/// compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`). Loopback only
/// when explicitly allowed, for local development.
pub fn ip_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback),
        IpAddr::V6(v6) => v6_allowed(v6, allow_loopback),
    }
}

fn v4_allowed(v4: Ipv4Addr, allow_loopback: bool) -> bool {
    if v4.is_loopback() {
        return allow_loopback;
    }
    let o = v4.octets();
    !(v4.is_private()
        || v4.is_link_local() // includes 169.254.169.254, the metadata service
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // shared address space (carrier-grade NAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240)
}

fn v6_allowed(v6: Ipv6Addr, allow_loopback: bool) -> bool {
    if v6.is_loopback() {
        return allow_loopback;
    }
    let s = v6.segments();
    // IPv4 carried inside IPv6 is judged as the IPv4 address it reaches.
    if let Some(v4) = v6.to_ipv4_mapped() {
        return v4_allowed(v4, allow_loopback);
    }
    if s[..6] == [0; 6] {
        // IPv4-compatible (deprecated) `::a.b.c.d`; `::` itself is unspecified.
        return !v6.is_unspecified() && v4_allowed(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32), allow_loopback);
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        if s[2..6] == [0; 4] {
            return v4_allowed(Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32), allow_loopback); // NAT64 well-known prefix
        }
        return false; // 64:ff9b:1::/48, local-use NAT64
    }
    if s[0] == 0x2002 {
        return v4_allowed(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32), allow_loopback); // 6to4
    }
    !(v6.is_unspecified()
        || v6.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated)
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments, Teredo (hides an IPv4 address)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0; 3]) // discard-only
        || (s[0] == 0xfd00 && s[1] == 0x0ec2)) // AWS IMDS over IPv6 (fd00:ec2::254)
}

/// Names that always mean this machine, whatever DNS says (RFC 6761).
fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Checks a URL the product will call later. Accepts `https://` with a public host and no
/// credentials; with `allow_loopback` (local development only) also `http://` to loopback.
/// Returns the parsed URL, or why it is refused. Host names that are not literals pass here
/// and are checked again when they are resolved at delivery.
/// The host of a URL, for logs and error messages: a webhook URL may carry its secret in
/// its path or query (Slack, Discord), so only the host is ever written down.
pub fn host_only(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| "(not a URL)".into())
}

pub fn check_target_url(url: &str, allow_loopback: bool) -> Result<url::Url, String> {
    if url.chars().count() > URL_MAX_CHARS {
        return Err(format!("longer than {URL_MAX_CHARS} characters"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let loopback = match parsed.host() {
        None => return Err("has no host".into()),
        Some(url::Host::Domain(name)) if name.is_empty() => return Err("has no host".into()),
        Some(url::Host::Domain(name)) if is_local_name(name) => {
            if !allow_loopback {
                return Err(format!("`{name}` is this machine; use a public host"));
            }
            true
        }
        Some(url::Host::Domain(_)) => false,
        Some(url::Host::Ipv4(ip)) => literal(IpAddr::V4(ip), allow_loopback)?,
        Some(url::Host::Ipv6(ip)) => literal(IpAddr::V6(ip), allow_loopback)?,
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err("must be an https:// URL".into()),
    }
}

/// Whether a literal address is loopback; an error when it is not allowed at all.
fn literal(ip: IpAddr, allow_loopback: bool) -> Result<bool, String> {
    if !ip_allowed(ip, allow_loopback) {
        return Err(format!("points at {ip}, a private, loopback or reserved address"));
    }
    Ok(ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(ip: &str) -> bool {
        ip_allowed(ip.parse().unwrap(), false)
    }

    #[test]
    fn embedded_and_reserved_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "100.64.0.1",
            "198.18.0.1",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2001:0:4136:e378::1",
            "2001:db8::1",
            "fd00:ec2::254",
            "fe80::1",
            "fc00::1",
            "::",
        ] {
            assert!(!allowed(ip), "{ip} must be refused");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822", "2002:5db8:d822::1"] {
            assert!(allowed(ip), "{ip} is public");
        }
        assert!(ip_allowed("127.0.0.1".parse().unwrap(), true));
        assert!(!ip_allowed("10.0.0.1".parse().unwrap(), true));
    }

    #[test]
    fn registration_refuses_literal_private_targets() {
        for url in [
            "https://127.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.7/x",
            "https://localhost./x",
            "https://api.localhost/x",
            "https://[::127.0.0.1]/x",
            "https://[64:ff9b::a9fe:a9fe]/x",
            "https://[2002:a9fe:a9fe::]/x",
            "https://2130706433/x", // 127.0.0.1 written as one number
            "https://0x7f.1/x",
            "http://example.com/x",
            "https://user:pw@example.com/x",
            "ftp://example.com/x",
        ] {
            assert!(check_target_url(url, false).is_err(), "{url} must be refused");
        }
        assert!(check_target_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_target_url("http://127.0.0.1:9000/x", true).is_ok());
        assert!(check_target_url("http://localhost:9000/x", true).is_ok());
        assert!(check_target_url("http://example.com/x", true).is_err());
        assert!(check_target_url("https://10.0.0.1/x", true).is_err());
    }
}
