//! Which addresses the operator's outgoing HTTP may connect to. Tenants
//! choose the URLs (HTTP checks, webhooks, Prometheus), so the operator
//! must not become their way to its own loopback services, the node's
//! metadata endpoint or the API server. Pure: an address and a policy in,
//! allowed or why not out.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The flag that opens ranges, named in every refusal.
pub const ALLOW_FLAG: &str = "--allow-cidrs";

/// Metadata endpoints outside the link-local range (which is refused by
/// itself): Alibaba Cloud's and AWS's IPv6 one. The default of
/// `--deny-cidrs`.
pub const DEFAULT_DENY: &str = "100.100.100.200/32,fd00:ec2::254/128";

/// Refused unless `--allow-cidrs` opens them, whatever `--deny-cidrs` says.
const BUILT_IN: &[(&str, Why)] = &[
    ("127.0.0.0/8", Why::Loopback),
    ("::1/128", Why::Loopback),
    ("169.254.0.0/16", Why::LinkLocal),
    ("fe80::/10", Why::LinkLocal),
    ("0.0.0.0/8", Why::Unspecified),
    ("::/128", Why::Unspecified),
];

/// The address rules of outgoing HTTP.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Opened ranges; they win over the built-in and denied ranges.
    pub allow: Vec<IpNet>,
    /// Refused ranges on top of the built-in ones.
    pub deny: Vec<IpNet>,
    /// The API server's addresses (host and port) as the operator's own
    /// client reaches it.
    pub api_server: Vec<SocketAddr>,
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Loopback,
    LinkLocal,
    Unspecified,
    Denied(IpNet),
    ApiServer,
}

/// A refused connection: what was asked for and why it may not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target} is refused: {why}")]
pub struct Refused {
    /// `127.0.0.1:8080`, or `example.com (127.0.0.1)` for a resolved name.
    pub target: String,
    pub why: Why,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Loopback => write!(f, "a loopback address (opened by {ALLOW_FLAG})"),
            Why::LinkLocal => write!(
                f,
                "a link-local address, where the node's metadata endpoint lives (opened by {ALLOW_FLAG})"
            ),
            Why::Unspecified => write!(f, "an unspecified address (opened by {ALLOW_FLAG})"),
            Why::Denied(net) => {
                write!(f, "in the denied range {net} (opened by {ALLOW_FLAG})")
            }
            Why::ApiServer => write!(
                f,
                "the Kubernetes API server (a range in {ALLOW_FLAG} opens its address's other ports; its own port only an entry naming its address alone, as a /32 or /128)"
            ),
        }
    }
}

impl AddressPolicy {
    /// May a connection to `addr` be made? The API server's own socket stays
    /// refused under an opened range unless its address is listed alone:
    /// on a developer's machine everything, the API server included, listens
    /// on 127.0.0.1.
    pub fn check_socket(&self, addr: SocketAddr) -> Result<(), Refused> {
        let ip = canonical(addr.ip());
        let target = SocketAddr::new(ip, addr.port()).to_string();
        let is_api_server = self
            .api_server
            .iter()
            .any(|a| canonical(a.ip()) == ip && a.port() == addr.port());
        if is_api_server && !self.lists_alone(ip) {
            return Err(Refused {
                target,
                why: Why::ApiServer,
            });
        }
        self.why(ip)
            .map_or(Ok(()), |why| Err(Refused { target, why }))
    }

    /// May `ip` be connected to on some port? For resolved names, whose
    /// port the resolver does not see: the API server's addresses are
    /// refused on every port unless an opened range covers them.
    pub fn check_ip(&self, ip: IpAddr) -> Option<Why> {
        self.why(canonical(ip))
    }

    /// An IP-literal host of `url` (with its port) checked as a socket;
    /// names are left to the resolver.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let host = url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = host.parse::<IpAddr>() else {
            return Ok(());
        };
        let port = url.port_or_known_default().unwrap_or(0);
        self.check_socket(SocketAddr::new(ip, port))
    }

    fn why(&self, ip: IpAddr) -> Option<Why> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return None;
        }
        let built_in = BUILT_IN.iter().find_map(|(net, why)| {
            let net: IpNet = net.parse().ok()?;
            net.contains(&ip).then_some(*why)
        });
        let denied = || {
            self.deny
                .iter()
                .find(|net| net.contains(&ip))
                .map(|net| Why::Denied(*net))
        };
        let api_server = || {
            self.api_server
                .iter()
                .any(|a| canonical(a.ip()) == ip)
                .then_some(Why::ApiServer)
        };
        built_in.or_else(denied).or_else(api_server)
    }

    /// Whether `--allow-cidrs` names `ip` as a single address.
    fn lists_alone(&self, ip: IpAddr) -> bool {
        self.allow
            .iter()
            .any(|net| net.prefix_len() == net.max_prefix_len() && net.addr() == ip)
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is the IPv4
/// address: the kernel connects to it as such.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses a comma-separated list of CIDRs (a bare address counts as one
/// address). Empty items are skipped, so `""` is the empty list.
pub fn parse_cidrs(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not a CIDR (like 10.0.0.0/8) or an IP address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &str, deny: &str, api_server: &[&str]) -> AddressPolicy {
        AddressPolicy {
            allow: parse_cidrs(allow).unwrap(),
            deny: parse_cidrs(deny).unwrap(),
            api_server: api_server.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    fn why(p: &AddressPolicy, addr: &str) -> Option<Why> {
        p.check_socket(addr.parse().unwrap()).err().map(|r| r.why)
    }

    #[test]
    fn loopback_link_local_and_unspecified_are_refused_by_default() {
        let p = policy("", DEFAULT_DENY, &[]);
        assert_eq!(why(&p, "127.0.0.1:80"), Some(Why::Loopback));
        assert_eq!(why(&p, "127.3.2.1:8080"), Some(Why::Loopback));
        assert_eq!(why(&p, "[::1]:80"), Some(Why::Loopback));
        assert_eq!(why(&p, "169.254.169.254:80"), Some(Why::LinkLocal));
        assert_eq!(why(&p, "[fe80::1]:80"), Some(Why::LinkLocal));
        assert_eq!(why(&p, "0.0.0.0:80"), Some(Why::Unspecified));
        assert_eq!(why(&p, "[::]:80"), Some(Why::Unspecified));
        // Written as IPv6, still the IPv4 address.
        assert_eq!(why(&p, "[::ffff:127.0.0.1]:80"), Some(Why::Loopback));
        assert_eq!(why(&p, "[::ffff:169.254.169.254]:80"), Some(Why::LinkLocal));
    }

    #[test]
    fn default_denies_name_the_metadata_endpoints_and_leave_private_ranges_open() {
        let p = policy("", DEFAULT_DENY, &[]);
        assert!(matches!(
            why(&p, "100.100.100.200:80"),
            Some(Why::Denied(_))
        ));
        assert!(matches!(
            why(&p, "[fd00:ec2::254]:80"),
            Some(Why::Denied(_))
        ));
        for open in [
            "10.0.0.5:9090",
            "192.168.1.2:80",
            "172.16.0.1:443",
            "8.8.8.8:443",
        ] {
            assert_eq!(why(&p, open), None, "{open}");
        }
    }

    #[test]
    fn configured_denies_refuse_and_allows_win_over_every_deny() {
        let p = policy("10.1.0.0/16,127.0.0.0/8", "10.0.0.0/8", &[]);
        assert_eq!(
            why(&p, "10.2.0.1:80"),
            Some(Why::Denied("10.0.0.0/8".parse().unwrap()))
        );
        assert_eq!(why(&p, "10.1.2.3:80"), None);
        assert_eq!(why(&p, "127.0.0.1:9090"), None);
        assert_eq!(why(&p, "[::1]:80"), Some(Why::Loopback));
    }

    #[test]
    fn the_api_server_socket_stays_refused_unless_listed_alone() {
        let api = ["127.0.0.1:6443", "10.96.0.1:443"];
        let p = policy("127.0.0.0/8", "", &api);
        assert_eq!(why(&p, "127.0.0.1:6443"), Some(Why::ApiServer));
        // Another port of an opened range is not the API server.
        assert_eq!(why(&p, "127.0.0.1:8080"), None);
        // The in-cluster service address is refused on every port unless
        // a range opens it.
        assert_eq!(why(&p, "10.96.0.1:443"), Some(Why::ApiServer));
        assert_eq!(why(&p, "10.96.0.1:80"), Some(Why::ApiServer));
        assert_eq!(
            p.check_ip("10.96.0.1".parse().unwrap()),
            Some(Why::ApiServer)
        );

        let listed = policy("127.0.0.1/32", "", &api);
        assert_eq!(why(&listed, "127.0.0.1:6443"), None);
        let wide = policy("10.0.0.0/8", "", &api);
        assert_eq!(why(&wide, "10.96.0.1:80"), None);
        assert_eq!(why(&wide, "10.96.0.1:443"), Some(Why::ApiServer));
    }

    #[test]
    fn literal_hosts_of_urls_are_checked_with_their_port() {
        let p = policy("127.0.0.0/8", "", &["127.0.0.1:6443"]);
        let check = |u: &str| {
            p.check_url(&reqwest::Url::parse(u).unwrap())
                .err()
                .map(|r| r.why)
        };
        assert_eq!(check("https://127.0.0.1:6443/api"), Some(Why::ApiServer));
        assert_eq!(check("http://127.0.0.1:9090/"), None);
        assert_eq!(check("http://169.254.169.254/latest"), Some(Why::LinkLocal));
        assert_eq!(check("http://[::1]:80/"), Some(Why::Loopback));
        // Names are for the resolver to check.
        assert_eq!(check("http://localhost:6443/"), None);
    }

    #[test]
    fn refusals_say_what_and_which_flag_opens_it() {
        let p = policy("", "", &[]);
        let refused = p
            .check_socket("169.254.169.254:80".parse().unwrap())
            .unwrap_err();
        let text = refused.to_string();
        assert!(
            text.starts_with("169.254.169.254:80 is refused: a link-local"),
            "{text}"
        );
        assert!(text.contains("--allow-cidrs"), "{text}");
    }

    #[test]
    fn cidr_lists_parse_and_reject_nonsense() {
        assert_eq!(parse_cidrs("").unwrap(), vec![]);
        assert_eq!(
            parse_cidrs(" 10.0.0.0/8, ,::1 ").unwrap(),
            vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
        );
        assert!(
            parse_cidrs("10.0.0.0/8,nope")
                .unwrap_err()
                .contains("\"nope\"")
        );
        assert!(parse_cidrs("10.0.0.0/33").is_err());
        assert_eq!(parse_cidrs(DEFAULT_DENY).unwrap().len(), 2);
    }
}
