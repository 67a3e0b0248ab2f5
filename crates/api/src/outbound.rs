//! Egress grants: `capabilities.outbound`, the destinations a component may send `wasi:http`
//! requests to. Nothing is reachable without a grant.
//!
//! A grant is `SCHEME://HOST[:PORT]`:
//! - `SCHEME` is `http`, `https` or `*` (either);
//! - `HOST` is a name (`api.example.com`, a service `web.default.svc`), an IPv4 address, `*.`
//!   and a name (every name below it, not the name itself), or `*` (any host);
//! - `PORT` is a number or `*`; without one, the scheme's default port (80, 443).
//!
//! A request is matched by its own URL (scheme, host, port) and nothing else: no header of the
//! request, nor of the request that led to it, picks the destination.
use std::fmt;
use std::str::FromStr;

/// Which schemes a grant covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeMatch {
    /// `http`.
    Http,
    /// `https`.
    Https,
    /// `*`: either.
    Any,
}

/// Which hosts a grant covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Exactly this name or address (lowercase).
    Exact(String),
    /// Every name ending in this suffix (lowercase, with its leading dot: `.example.com`).
    Below(String),
    /// Any host.
    Any,
}

/// Which ports a grant covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortMatch {
    /// The request scheme's default port (80 for http, 443 for https).
    Default,
    /// This port.
    Exact(u16),
    /// Any port.
    Any,
}

/// One parsed entry of `capabilities.outbound`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundGrant {
    /// The schemes.
    pub scheme: SchemeMatch,
    /// The hosts.
    pub host: HostMatch,
    /// The ports.
    pub port: PortMatch,
}

/// The default port of `scheme` (`http` 80, `https` 443).
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl OutboundGrant {
    /// Whether a request to `scheme://host:port` is granted (`host` compared without case).
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme = scheme.to_ascii_lowercase();
        let scheme_ok = match self.scheme {
            SchemeMatch::Http => scheme == "http",
            SchemeMatch::Https => scheme == "https",
            SchemeMatch::Any => scheme == "http" || scheme == "https",
        };
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostMatch::Exact(h) => host == *h,
            HostMatch::Below(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|rest| !rest.is_empty()),
            HostMatch::Any => true,
        };
        let port_ok = match self.port {
            PortMatch::Default => default_port(&scheme) == Some(port),
            PortMatch::Exact(p) => p == port,
            PortMatch::Any => true,
        };
        scheme_ok && host_ok && port_ok
    }

    /// The grant that would allow a request to `scheme://host:port` (what a denial suggests).
    pub fn suggest(scheme: &str, host: &str, port: u16) -> String {
        let scheme = scheme.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        if default_port(&scheme) == Some(port) {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{port}")
        }
    }
}

/// Why a grant does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "outbound grant {grant:?} {why}; write SCHEME://HOST[:PORT], e.g. \"https://api.example.com\", \"http://*.default.svc\" or \"http://10.0.0.7:8080\""
)]
pub struct GrantError {
    /// The grant as written.
    pub grant: String,
    /// What is wrong with it.
    pub why: String,
}

impl FromStr for OutboundGrant {
    type Err = GrantError;

    fn from_str(s: &str) -> Result<Self, GrantError> {
        let bad = |why: &str| GrantError {
            grant: s.to_owned(),
            why: why.to_owned(),
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let scheme = match scheme {
            "http" => SchemeMatch::Http,
            "https" => SchemeMatch::Https,
            "*" => SchemeMatch::Any,
            _ => return Err(bad("has a scheme other than http, https or *")),
        };
        if rest.contains(['/', '?', '#']) {
            return Err(bad(
                "has a path: a grant names a destination only, without / or ?",
            ));
        }
        if rest.contains('@') {
            return Err(bad("has user information (@): a grant names a destination only"));
        }
        if rest.starts_with('[') {
            return Err(bad(
                "is an IPv6 address: only names and IPv4 addresses are supported",
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, "*")) => (h, PortMatch::Any),
            Some((h, p)) => {
                let n: u16 = p
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("has a port that is not 1 to 65535 or *"))?;
                (h, PortMatch::Exact(n))
            }
            None => (rest, PortMatch::Default),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(below) = host.strip_prefix("*.") {
            check_name(below).map_err(|why| bad(&why))?;
            HostMatch::Below(format!(".{below}"))
        } else {
            check_name(&host).map_err(|why| bad(&why))?;
            HostMatch::Exact(host)
        };
        Ok(OutboundGrant { scheme, host, port })
    }
}

/// Whether `name` is a host name or IPv4 address: dot-separated labels of letters, digits and
/// `-`, none empty or over 63, at most 253 in all.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("has no host".into());
    }
    if name.len() > 253 {
        return Err("has a host longer than 253 characters".into());
    }
    if name.contains('*') {
        return Err("has a * other than a leading \"*.\" or the whole host".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("has an empty or over-long label in host {name:?}"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "has host {name:?}: use letters, digits, '-' and dots only"
            ));
        }
    }
    Ok(())
}

impl fmt::Display for OutboundGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            SchemeMatch::Http => "http",
            SchemeMatch::Https => "https",
            SchemeMatch::Any => "*",
        };
        let host = match &self.host {
            HostMatch::Exact(h) => h.clone(),
            HostMatch::Below(s) => format!("*{s}"),
            HostMatch::Any => "*".into(),
        };
        match self.port {
            PortMatch::Default => write!(f, "{scheme}://{host}"),
            PortMatch::Exact(p) => write!(f, "{scheme}://{host}:{p}"),
            PortMatch::Any => write!(f, "{scheme}://{host}:*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(s: &str) -> OutboundGrant {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn grants_match_scheme_host_and_port() {
        let cases: &[(&str, &str, &str, u16, bool)] = &[
            ("https://api.example.com", "https", "api.example.com", 443, true),
            ("https://api.example.com", "https", "API.Example.com", 443, true),
            ("https://api.example.com", "http", "api.example.com", 80, false),
            ("https://api.example.com", "https", "api.example.com", 8443, false),
            (
                "https://api.example.com",
                "https",
                "evil-api.example.com",
                443,
                false,
            ),
            ("http://*.example.com", "http", "a.example.com", 80, true),
            ("http://*.example.com", "http", "a.b.example.com", 80, true),
            ("http://*.example.com", "http", "example.com", 80, false),
            ("http://*.example.com", "http", "badexample.com", 80, false),
            ("*://web.default.svc", "https", "web.default.svc", 443, true),
            ("*://web.default.svc", "http", "web.default.svc", 80, true),
            ("*://web.default.svc", "http", "web.default.svc", 443, false),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, true),
            ("http://127.0.0.1:8080", "http", "127.0.0.1", 8081, false),
            ("http://10.0.0.7:*", "http", "10.0.0.7", 1, true),
            ("http://*:*", "http", "anything.at.all", 9, true),
            ("http://*", "http", "anything", 80, true),
            ("http://*", "http", "anything", 81, false),
        ];
        for (g, scheme, host, port, want) in cases {
            assert_eq!(
                grant(g).allows(scheme, host, *port),
                *want,
                "{g} vs {scheme}://{host}:{port}"
            );
        }
    }

    #[test]
    fn bad_grants_say_what_is_wrong() {
        for (g, why) in [
            ("example.com", "has no scheme"),
            ("ftp://example.com", "scheme other than"),
            ("https://example.com/api", "has a path"),
            ("https://user@example.com", "user information"),
            ("https://[::1]:80", "IPv6"),
            ("https://example.com:0", "port"),
            ("https://example.com:99999", "port"),
            ("https://a.*.example.com", "has a * other than"),
            ("https://", "has no host"),
            ("https://exa_mple.com", "letters, digits"),
            ("https://example..com", "empty or over-long label"),
        ] {
            let e = g.parse::<OutboundGrant>().unwrap_err().to_string();
            assert!(e.contains(why), "{g}: {e}");
            assert!(e.contains("SCHEME://HOST[:PORT]"), "{g}: {e}");
        }
    }

    #[test]
    fn grants_print_as_written_and_denials_suggest_the_missing_grant() {
        for g in [
            "https://api.example.com",
            "http://*.default.svc",
            "*://h:8080",
            "http://*:*",
        ] {
            assert_eq!(grant(g).to_string(), g);
        }
        assert_eq!(
            OutboundGrant::suggest("http", "Web.default.svc", 80),
            "http://web.default.svc"
        );
        assert_eq!(
            OutboundGrant::suggest("http", "127.0.0.1", 8080),
            "http://127.0.0.1:8080"
        );
    }
}
