//! Where tiller's own connections may go. An endpoint is checked when a provider is built
//! ([`EgressPolicy::check`]), and every connection resolves its host through the same policy
//! ([`EgressPolicy::resolve`]), so a name that later resolves off the machine is refused at
//! connect time too. Loopback is always allowed; anything else must be on the allow-list, and
//! nothing else at all under `local_only`.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use crate::ModelError;

/// The rules for tiller's own connections.
#[derive(Clone, Debug, PartialEq)]
pub struct EgressPolicy {
    /// Refuse every address that is not loopback.
    pub local_only: bool,
    /// Hosts allowed besides loopback: `host`, `host:port`, `*.domain`, or a URL.
    pub allow: Vec<String>,
    /// The proxy for tiller's own connections; proxy environment variables are never read.
    pub proxy: Option<String>,
}

impl Default for EgressPolicy {
    /// Loopback only.
    fn default() -> Self {
        EgressPolicy { local_only: true, allow: Vec::new(), proxy: None }
    }
}

/// Whether an endpoint is on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Every address of the host is a loopback address.
    Loopback,
    /// Data sent there leaves the machine.
    Remote,
}

impl EgressPolicy {
    /// Whether `url` may be called, and where it is. A name that does not resolve counts as
    /// remote.
    pub fn check(&self, url: &str) -> Result<Reach, ModelError> {
        let (host, port) = host_port(url)?;
        let reach = reach(url)?;
        if reach == Reach::Remote {
            if self.local_only {
                return Err(ModelError::Config(format!(
                    "{url} is not on this machine, and egress.local_only is on"
                )));
            }
            if !self.allows(&host, port) {
                return Err(ModelError::Config(format!(
                    "{host} is not on the egress allow-list; to allow it, put \
                     `allow = [\"{host}\"]` under [egress] in config.toml"
                )));
            }
        }
        Ok(reach)
    }

    /// Resolves `netloc` (`host:port`, as the HTTP client asks) to the addresses the policy
    /// lets it connect to.
    pub(crate) fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = split_netloc(netloc)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, netloc.to_string()))?;
        let addrs = lookup(&host, port)?;
        let (local, other): (Vec<SocketAddr>, Vec<SocketAddr>) =
            addrs.into_iter().partition(|a| a.ip().is_loopback());
        if other.is_empty() || (!self.local_only && self.allows(&host, port)) {
            return Ok(local.into_iter().chain(other).collect());
        }
        if self.local_only && !local.is_empty() {
            return Ok(local);
        }
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("egress policy refuses {host} at {}", other[0].ip()),
        ))
    }

    /// Whether the allow-list names `host` (and `port`, where an entry gives one).
    fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.allow.iter().any(|entry| {
            let (name, want_port) = if entry.contains("://") {
                match host_port(entry) {
                    Ok((h, p)) => (h, Some(p)),
                    Err(_) => return false,
                }
            } else {
                match split_netloc(entry) {
                    Some((h, p)) => (h, Some(p)),
                    None => (entry.trim_matches(['[', ']']).to_string(), None),
                }
            };
            let name = name.to_ascii_lowercase();
            let host_ok = match name.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => name == host,
            };
            host_ok && want_port.is_none_or(|p| p == port)
        })
    }
}

/// Where `url`'s host is: on loopback when every address it resolves to is a loopback address;
/// remote otherwise, including when it does not resolve.
pub fn reach(url: &str) -> Result<Reach, ModelError> {
    let (host, port) = host_port(url)?;
    Ok(match lookup(&host, port) {
        Ok(addrs) if !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()) => {
            Reach::Loopback
        }
        _ => Reach::Remote,
    })
}

/// The host (without IPv6 brackets) and port of an http(s) URL.
fn host_port(url: &str) -> Result<(String, u16), ModelError> {
    let bad = |why: &str| ModelError::Config(format!("endpoint `{url}` {why}"));
    let parsed = url::Url::parse(url).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(bad("has no host")),
    };
    let port = parsed.port_or_known_default().ok_or_else(|| bad("has no port"))?;
    Ok((host, port))
}

/// `host:port` or `[v6]:port` split in two; `None` without a port.
fn split_netloc(netloc: &str) -> Option<(String, u16)> {
    let (host, port) = netloc.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (!host.contains(':') || netloc.starts_with('[')).then(|| (host.to_string(), port))
}

fn lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(vec![SocketAddr::new(ip, port)]),
        Err(_) => Ok((host, port).to_socket_addrs()?.collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(local_only: bool, allow: &[&str]) -> EgressPolicy {
        EgressPolicy {
            local_only,
            allow: allow.iter().map(|s| s.to_string()).collect(),
            proxy: None,
        }
    }

    #[test]
    fn loopback_is_always_allowed() {
        for url in ["http://127.0.0.1:8080/v1", "http://[::1]:1/v1", "http://localhost:11434/v1"] {
            assert_eq!(policy(true, &[]).check(url).unwrap(), Reach::Loopback, "{url}");
        }
    }

    #[test]
    fn remote_endpoints_need_the_allow_list_and_not_local_only() {
        let url = "https://10.1.2.3:8000/v1";
        let err = policy(true, &["10.1.2.3"]).check(url).unwrap_err().to_string();
        assert!(err.contains("local_only"), "{err}");
        let err = policy(false, &["10.9.9.9"]).check(url).unwrap_err().to_string();
        assert!(err.contains("allow = [\"10.1.2.3\"]"), "{err}");
        for entry in ["10.1.2.3", "10.1.2.3:8000", "https://10.1.2.3:8000/"] {
            assert_eq!(policy(false, &[entry]).check(url).unwrap(), Reach::Remote, "{entry}");
        }
        assert!(policy(false, &["10.1.2.3:443"]).check(url).is_err());
    }

    #[test]
    fn allow_list_entries_match_hosts_ports_and_subdomains() {
        let p = policy(false, &["API.example.com", "*.corp.test", "[fd00::1]:8000"]);
        assert!(p.allows("api.example.com", 443));
        assert!(p.allows("llm.corp.test", 8000));
        assert!(!p.allows("corp.test", 443));
        assert!(!p.allows("evil-corp.test", 443));
        assert!(p.allows("fd00::1", 8000));
        assert!(!p.allows("fd00::1", 8001));
        assert!(!p.allows("example.com", 443));
    }

    #[test]
    fn resolve_refuses_what_the_policy_forbids() {
        assert!(policy(true, &[]).resolve("127.0.0.1:80").is_ok());
        assert!(policy(true, &[]).resolve("[::1]:80").is_ok());
        let err = policy(true, &["10.1.2.3"]).resolve("10.1.2.3:80").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(policy(false, &[]).resolve("10.1.2.3:80").is_err());
        assert_eq!(
            policy(false, &["10.1.2.3"]).resolve("10.1.2.3:80").unwrap(),
            ["10.1.2.3:80".parse().unwrap()]
        );
    }

    #[test]
    fn netlocs_split_with_and_without_brackets() {
        assert_eq!(split_netloc("a.b:80"), Some(("a.b".into(), 80)));
        assert_eq!(split_netloc("[::1]:8080"), Some(("::1".into(), 8080)));
        assert_eq!(split_netloc("::1"), None);
        assert_eq!(split_netloc("a.b"), None);
    }
}
