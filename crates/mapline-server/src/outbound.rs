//! Every request the server makes to an address someone else chose goes through here (webhooks
//! today; OIDC discovery and anything later tomorrow), so that nobody can point the server at
//! itself, the cloud metadata service or the network behind it (SSRF).
//!
//! Two steps, one policy:
//! - [`Guard::check`] at configuration time: the URL's form (http/https, a host, no credentials,
//!   no whitespace or control characters) and its host's addresses. A name that does not
//!   resolve is accepted here, because it may resolve later; everything else is refused only
//!   when it is certainly bad.
//! - [`Guard::connect`] at request time: the same checks again, the host resolved **once**, every
//!   address checked, and a [`Connection`] whose agent connects only to those checked addresses
//!   (no second lookup, so DNS rebinding cannot swap the address between check and connect). The
//!   URL keeps its name, so the `Host` header and TLS SNI are the name. Redirects are never
//!   followed (a 3xx is the answer) and proxies from the environment are ignored.
//!
//! URLs are parsed with the `url` crate (WHATWG), which normalises numeric hosts such as
//! `2130706433`, `0x7f.1` or `0177.0.0.1` to `127.0.0.1` before the address is checked, and
//! the normalised URL is what is requested.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _};
use std::sync::mpsc;
use std::time::Duration;

use ureq::config::Config;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use url::{Host, Url};

/// Which addresses outbound requests may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Also allow loopback, private (RFC 1918, fc00::/7) and shared (CGNAT) addresses: for
    /// deployments that deliver inside their own network. Link-local (cloud metadata),
    /// unspecified, multicast, broadcast, documentation and reserved addresses stay refused.
    pub allow_private: bool,
}

/// The kinds of address a request is never (or, for the private network, only when allowed)
/// sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Loopback,
    LinkLocal,
    Unspecified,
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    Shared,
    Multicast,
    Broadcast,
    Documentation,
    Reserved,
}

impl Class {
    /// Whether `--webhooks-allow-private` lets requests reach it.
    fn in_own_network(self) -> bool {
        matches!(self, Class::Loopback | Class::Private | Class::Shared)
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Loopback => "a loopback address",
            Class::LinkLocal => "a link-local address",
            Class::Unspecified => "an unspecified address",
            Class::Private => "a private address",
            Class::Shared => "a shared (carrier-grade NAT) address",
            Class::Multicast => "a multicast address",
            Class::Broadcast => "the broadcast address",
            Class::Documentation => "a documentation address",
            Class::Reserved => "a reserved address",
        })
    }
}

/// What kind of address `ip` is, or `None` for an ordinary public one. IPv6 forms that carry an
/// IPv4 address (mapped, compatible, NAT64, 6to4) are judged by that IPv4 address.
pub fn classify(ip: IpAddr) -> Option<Class> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_broadcast() => Class::Broadcast,
        (0, ..) => Class::Unspecified,
        (127, ..) => Class::Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => Class::Private,
        (100, 64..=127, _) => Class::Shared,
        (169, 254, _) => Class::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Class::Documentation,
        // IETF protocol assignments, the old 6to4 relay, benchmarking.
        (192, 0, 0) | (192, 88, 99) | (198, 18..=19, _) => Class::Reserved,
        (224..=239, ..) => Class::Multicast,
        (240..=255, ..) => Class::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if ip.is_unspecified() {
        return Some(Class::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Class::Loopback);
    }
    match s {
        // ::ffff:a.b.c.d (mapped) and 64:ff9b::a.b.c.d (NAT64): the IPv4 address is reached.
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            classify_v4(embedded(hi, lo))
        }
        // ::a.b.c.d (IPv4-compatible, deprecated): never a real destination.
        [0, 0, 0, 0, 0, 0, hi, lo] => classify_v4(embedded(hi, lo)).or(Some(Class::Reserved)),
        // 6to4: 2002:AABB:CCDD::/48 wraps a.b.c.d.
        [0x2002, hi, lo, ..] => classify_v4(embedded(hi, lo)),
        // Local-use NAT64 (RFC 8215).
        [0x64, 0xff9b, 1, ..] => Some(Class::Private),
        _ => match s[0] {
            0xfc00..=0xfdff | 0xfec0..=0xfeff => Some(Class::Private),
            0xfe80..=0xfebf => Some(Class::LinkLocal),
            0xff00..=0xffff => Some(Class::Multicast),
            0x2001 if s[1] == 0x0db8 => Some(Class::Documentation),
            0x3fff if s[1] <= 0x0fff => Some(Class::Documentation),
            // IETF protocol assignments (Teredo among them).
            0x2001 if s[1] < 0x0200 => Some(Class::Reserved),
            // Everything outside global unicast (2000::/3) not named above, e.g. 100::/64.
            first if !(0x2000..=0x3fff).contains(&first) => Some(Class::Reserved),
            _ => None,
        },
    }
}

/// Why a URL is not requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a URL: {0}")]
    Malformed(String),
    #[error("the URL contains whitespace or control characters")]
    Characters,
    #[error("scheme {0:?} is not allowed: only http and https")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL must not carry credentials (user or password before the host)")]
    Credentials,
    #[error("{host} is {class}")]
    Literal { host: String, class: Class },
    #[error("{host} resolves to {class} {ip}")]
    Resolved {
        host: String,
        ip: IpAddr,
        class: Class,
    },
    #[error("{host} does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
}

impl Refusal {
    /// Whether the URL itself is at fault (its form), rather than where it points.
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Refusal::Malformed(_) | Refusal::Characters | Refusal::Scheme(_) | Refusal::NoHost
        )
    }
}

/// A request could not be made or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Request(#[from] ureq::Error),
}

/// A URL that passed the form checks: http or https, with a host and a port.
#[derive(Debug, Clone)]
struct Target {
    url: Url,
    port: u16,
}

/// The one gate for outbound requests: a [`Policy`] and the time a request may take.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    policy: Policy,
    timeout: Duration,
}

impl Guard {
    /// A guard whose requests (name lookup included) take at most `timeout`.
    pub fn new(policy: Policy, timeout: Duration) -> Self {
        Self { policy, timeout }
    }

    /// Configuration time: refuses a malformed URL, a literal address the policy forbids, and a
    /// name that resolves to a forbidden address. A name that does not resolve (now) is
    /// accepted: [`Guard::connect`] checks again at every request. Returns the normalised URL,
    /// which is what should be stored. Blocks for the name lookup.
    pub fn check(&self, raw: &str) -> Result<String, Refusal> {
        let target = parse(raw)?;
        match self.addresses(&target) {
            Ok(_) | Err(Refusal::Unresolvable { .. }) => Ok(target.url.into()),
            Err(refusal) => Err(refusal),
        }
    }

    /// Request time: checks `raw` as [`Guard::check`] does, resolves its host once, refuses it if
    /// any address is forbidden (or none resolves), and returns a connection pinned to those
    /// addresses. Blocks for the name lookup.
    pub fn connect(&self, raw: &str) -> Result<Connection, Refusal> {
        let target = parse(raw)?;
        let addresses = self.addresses(&target)?;
        Ok(Connection {
            agent: self.agent(addresses),
            url: target.url,
        })
    }

    /// An agent that connects only to `addresses`, follows no redirect and uses no proxy.
    fn agent(&self, addresses: Vec<SocketAddr>) -> ureq::Agent {
        let config = Config::builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(self.timeout))
            .build();
        ureq::Agent::with_parts(config, DefaultConnector::new(), Pinned(addresses))
    }

    /// Every address of the target's host, each checked against the policy.
    fn addresses(&self, target: &Target) -> Result<Vec<SocketAddr>, Refusal> {
        let ip = match target.url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::from(ip),
            Some(Host::Ipv6(ip)) => IpAddr::from(ip),
            Some(Host::Domain(name)) => return self.resolve(name, target.port),
            None => return Err(Refusal::NoHost),
        };
        match self.refuses(ip) {
            Some(class) => Err(Refusal::Literal {
                host: ip.to_string(),
                class,
            }),
            None => Ok(vec![SocketAddr::new(ip, target.port)]),
        }
    }

    /// Resolves `name` once; refused if any of its addresses is.
    fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let addresses =
            lookup(name, port, self.timeout).map_err(|reason| Refusal::Unresolvable {
                host: name.to_owned(),
                reason,
            })?;
        for address in &addresses {
            if let Some(class) = self.refuses(address.ip()) {
                return Err(Refusal::Resolved {
                    host: name.to_owned(),
                    ip: address.ip(),
                    class,
                });
            }
        }
        Ok(addresses)
    }

    fn refuses(&self, ip: IpAddr) -> Option<Class> {
        classify(ip).filter(|class| !(self.policy.allow_private && class.in_own_network()))
    }
}

/// The form checks: no whitespace or control characters anywhere (the WHATWG parser would drop
/// tabs and line breaks silently), http or https, a host, no user info.
fn parse(raw: &str) -> Result<Target, Refusal> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Refusal::Characters);
    }
    let url = Url::parse(raw).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme(url.scheme().to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Refusal::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    let port = url.port_or_known_default().ok_or(Refusal::NoHost)?;
    Ok(Target { url, port })
}

/// Resolves `name` once, within `timeout` (the lookup runs on its own thread, which is left
/// behind if it takes longer).
fn lookup(name: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    let (tx, rx) = mpsc::sync_channel(1);
    let query = (name.to_owned(), port);
    std::thread::Builder::new()
        .name("outbound-lookup".into())
        .spawn(move || {
            let _ = tx.send(query.to_socket_addrs().map(Vec::from_iter));
        })
        .map_err(|e| format!("cannot start the lookup: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addresses)) if addresses.is_empty() => Err("no address".to_owned()),
        Ok(Ok(addresses)) => Ok(addresses),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// A checked URL and an agent that connects only to its checked addresses.
#[derive(Debug)]
pub struct Connection {
    agent: ureq::Agent,
    url: Url,
}

impl Connection {
    /// A `POST` to the URL (redirects are answers, never followed).
    pub fn post(&self) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.agent.post(self.url.as_str())
    }

    /// A `GET` to the URL (redirects are answers, never followed).
    pub fn get(&self) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.agent.get(self.url.as_str())
    }
}

/// ureq's resolver for one request: the addresses the guard checked, whatever the URI says.
#[derive(Debug)]
struct Pinned(Vec<SocketAddr>);

impl Resolver for Pinned {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        // Beyond ureq's capacity (16) the rest are left out: every one of them was checked.
        for address in &self.0 {
            if out.try_push(*address).is_err() {
                break;
            }
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::TcpListener;

    const STRICT: Guard = Guard {
        policy: Policy {
            allow_private: false,
        },
        timeout: Duration::from_secs(5),
    };
    const OWN_NETWORK: Guard = Guard {
        policy: Policy {
            allow_private: true,
        },
        timeout: Duration::from_secs(5),
    };

    fn check_ip(ip: &str, expected: Option<Class>) {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(classify(parsed), expected, "{ip}");
    }

    #[test]
    fn every_forbidden_ipv4_range_is_classified() {
        use Class::*;
        for (ip, class) in [
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("169.254.169.254", Some(LinkLocal)),
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("10.0.0.1", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("100.64.0.1", Some(Shared)),
            ("100.127.255.255", Some(Shared)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("255.255.255.255", Some(Broadcast)),
            ("192.0.2.1", Some(Documentation)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("192.0.0.8", Some(Reserved)),
            ("198.18.0.1", Some(Reserved)),
            ("240.0.0.1", Some(Reserved)),
            // Neighbours of the ranges are public.
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("169.253.0.1", None),
            ("11.0.0.1", None),
            ("8.8.8.8", None),
            ("93.184.216.34", None),
        ] {
            check_ip(ip, class);
        }
    }

    #[test]
    fn every_forbidden_ipv6_range_and_embedded_ipv4_is_classified() {
        use Class::*;
        for (ip, class) in [
            ("::1", Some(Loopback)),
            ("::", Some(Unspecified)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("ff02::1", Some(Multicast)),
            ("2001:db8::1", Some(Documentation)),
            ("2001::1", Some(Reserved)),
            ("100::1", Some(Reserved)),
            // IPv4-mapped and -compatible forms are judged by their IPv4 address.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:7f00:1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::127.0.0.1", Some(Loopback)),
            ("::8.8.8.8", Some(Reserved)),
            ("64:ff9b::127.0.0.1", Some(Loopback)),
            ("64:ff9b::8.8.8.8", None),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:a9fe:a9fe::1", Some(LinkLocal)),
            ("::ffff:8.8.8.8", None),
            ("2606:4700::1111", None),
            ("2a00:1450:4001::200e", None),
        ] {
            check_ip(ip, class);
        }
    }

    fn refusal(guard: Guard, url: &str) -> Option<Refusal> {
        guard.check(url).err()
    }

    #[test]
    fn numeric_host_forms_are_normalised_before_they_are_checked() {
        for url in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://017700000001/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]:8080/",
        ] {
            assert!(
                matches!(
                    refusal(STRICT, url),
                    Some(Refusal::Literal {
                        class: Class::Loopback,
                        ..
                    })
                ),
                "{url}: {:?}",
                refusal(STRICT, url)
            );
        }
        assert_eq!(
            STRICT
                .check("http://0xa9.0xfe.0xa9.0xfe/latest")
                .unwrap_err(),
            Refusal::Literal {
                host: "169.254.169.254".into(),
                class: Class::LinkLocal
            }
        );
        assert_eq!(
            refusal(STRICT, "http://[::1]:9/x").map(|r| r.to_string()),
            Some("::1 is a loopback address".into())
        );
        assert_eq!(
            refusal(STRICT, "http://0.0.0.0:80/").map(|r| r.to_string()),
            Some("0.0.0.0 is an unspecified address".into())
        );
    }

    #[test]
    fn malformed_urls_are_refused_for_their_form() {
        for (url, expected) in [
            ("http://", Refusal::Malformed("empty host".into())),
            ("ftp://example.com/", Refusal::Scheme("ftp".into())),
            ("file:///etc/passwd", Refusal::Scheme("file".into())),
            ("gopher://example.com/", Refusal::Scheme("gopher".into())),
            (
                "example.com/hook",
                Refusal::Malformed("relative URL without a base".into()),
            ),
            ("http://user:pw@example.com/", Refusal::Credentials),
            ("http://user@example.com/", Refusal::Credentials),
            ("http://example.com/\r\nX-Injected: 1", Refusal::Characters),
            ("http://exa\tmple.com/", Refusal::Characters),
            (" http://example.com/", Refusal::Characters),
            ("http://example.com/a b", Refusal::Characters),
            ("http://example.com/\u{0}", Refusal::Characters),
        ] {
            assert_eq!(refusal(STRICT, url), Some(expected), "{url}");
        }
    }

    #[test]
    fn names_are_checked_by_every_address_they_resolve_to() {
        assert!(matches!(
            refusal(STRICT, "http://localhost:1/hook"),
            Some(Refusal::Resolved { class: Class::Loopback, ref host, .. }) if host == "localhost"
        ));
        // A name that does not resolve is accepted at configuration time, refused at request.
        assert_eq!(
            STRICT.check("https://hooks.example.invalid/x").as_deref(),
            Ok("https://hooks.example.invalid/x")
        );
        assert!(matches!(
            STRICT.connect("https://hooks.example.invalid/x"),
            Err(Refusal::Unresolvable { .. })
        ));
        // Public literal addresses pass, normalised.
        assert_eq!(
            STRICT.check("HTTP://8.8.8.8:443/Hook?a=1").as_deref(),
            Ok("http://8.8.8.8:443/Hook?a=1")
        );
    }

    #[test]
    fn allowing_the_own_network_still_refuses_metadata_and_special_addresses() {
        for url in [
            "http://127.0.0.1:9/",
            "http://localhost:9/",
            "http://10.0.0.1/",
            "http://[fd00::1]/",
            "http://100.64.0.1/",
        ] {
            assert!(OWN_NETWORK.check(url).is_ok(), "{url}");
        }
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://0.0.0.0:9/",
            "http://[::]:9/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            assert!(
                matches!(OWN_NETWORK.check(url), Err(Refusal::Literal { .. })),
                "{url}"
            );
        }
    }

    /// One HTTP exchange on a local listener: returns the request head it read.
    fn serve_once(listener: TcpListener, answer: &'static str) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let mut stream = stream;
            stream.write_all(answer.as_bytes()).unwrap();
            head
        })
    }

    #[test]
    fn a_connection_goes_to_the_checked_address_with_the_name_as_host() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = serve_once(
            listener,
            "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
        );
        // The name's own lookup would fail: only the pinned address is used.
        let connection = Connection {
            agent: STRICT.agent(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
            url: Url::parse(&format!("http://hooks.example.invalid:{port}/in")).unwrap(),
        };
        let response = connection.post().send("{}").unwrap();
        assert_eq!(response.status().as_u16(), 204);
        let head = server.join().unwrap().to_lowercase();
        assert!(head.starts_with("post /in http/1.1"), "{head}");
        assert!(
            head.contains(&format!("host: hooks.example.invalid:{port}")),
            "{head}"
        );
    }

    #[test]
    fn redirects_are_answers_and_never_followed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = serve_once(
            listener,
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/healthz\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        let connection = OWN_NETWORK
            .connect(&format!("http://127.0.0.1:{port}/hook"))
            .unwrap();
        let response = connection.post().send("{}").unwrap();
        assert_eq!(response.status().as_u16(), 302);
        server.join().unwrap();
        assert!(matches!(
            STRICT.connect(&format!("http://127.0.0.1:{port}/hook")),
            Err(Refusal::Literal {
                class: Class::Loopback,
                ..
            })
        ));
    }
}
