//! Proxies: HTTP `CONNECT` and SOCKS5, set with the `proxy` option or taken from the
//! environment the way curl and Python's `websockets` do (`docs/PROXIES.md`).
//!
//! The proxy is chosen once, when the config is built: an explicit `proxy` wins (`"none"`
//! connects directly even when the environment names a proxy); otherwise the environment is
//! read: `wss_proxy`, `https_proxy`, `all_proxy` for `wss://`, `ws_proxy`, `http_proxy`,
//! `all_proxy` for `ws://` (lower case first, then upper case; never `HTTP_PROXY`, which a CGI
//! server can be made to set, the "httpoxy" problem), unless `no_proxy` exempts the host.
//!
//! Each connect attempt then opens TCP to the proxy (Happy Eyeballs over the proxy's
//! addresses, or the ones pinned for it with `resolve`) and asks it for a tunnel to the URL's
//! host and port; TLS (for `wss://`) and the upgrade run inside the tunnel, end to end.

use std::net::IpAddr;

use data_encoding::BASE64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Secret;
use crate::error::{ConnectError, ProxyRefusal};

/// How a proxy is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProxyKind {
    /// HTTP `CONNECT` (`http://`).
    Http,
    /// SOCKS5, the client resolves the target (`socks5://`, as curl).
    Socks5,
    /// SOCKS5, the proxy resolves the target (`socks5h://`).
    Socks5h,
}

/// A parsed proxy URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proxy {
    pub(crate) kind: ProxyKind,
    /// Host name or IP literal, without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// User name and password from the URL (percent-decoded).
    pub(crate) auth: Option<(String, Secret<String>)>,
    /// Where it came from, for errors and logs: `the proxy option` or an environment variable.
    pub(crate) source: String,
}

impl Proxy {
    /// `host:port` (IPv6 in brackets): how errors name the proxy.
    pub(crate) fn name(&self) -> String {
        authority(&self.host, self.port)
    }

    /// The URL with the password left out, for reading the option back and for logs.
    pub(crate) fn redacted_url(&self) -> String {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
        };
        let user = match &self.auth {
            Some((u, _)) => format!("{u}:<redacted>@"),
            None => String::new(),
        };
        format!("{scheme}://{user}{}", self.name())
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Parse a proxy URL: `http://[user:pass@]host[:port]` (default port 80), `socks5://` or
/// `socks5h://` (default port 1080); a bare `host:port` is HTTP, as in curl.
pub(crate) fn parse(text: &str, source: &str) -> Result<Proxy, String> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| format!("not a proxy URL: {e}"))?;
    let (kind, default_port) = match url.scheme() {
        "http" => (ProxyKind::Http, 80),
        "socks5" => (ProxyKind::Socks5, 1080),
        "socks5h" => (ProxyKind::Socks5h, 1080),
        "https" => {
            return Err(
                "https:// proxies (TLS to the proxy itself) are not supported; use http:// (wss:// is still encrypted end to end inside the tunnel)".into(),
            )
        }
        "socks" | "socks4" | "socks4a" => {
            return Err(format!(
                "{}:// is not supported: use socks5:// (local DNS) or socks5h:// (the proxy resolves)",
                url.scheme()
            ))
        }
        other => {
            return Err(format!(
                "unsupported proxy scheme `{other}`: use http://, socks5:// or socks5h://"
            ))
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the proxy host is missing")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port().unwrap_or(default_port);
    if port == 0 {
        return Err("port 0 cannot be connected to".into());
    }
    let auth = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        let user = decode(url.username())?;
        let pass = decode(url.password().unwrap_or_default())?;
        if kind != ProxyKind::Http && (user.len() > 255 || pass.len() > 255) {
            return Err("SOCKS5 user names and passwords are at most 255 bytes (RFC 1929)".into());
        }
        Some((user, Secret(pass)))
    };
    Ok(Proxy {
        kind,
        host,
        port,
        auth,
        source: source.to_owned(),
    })
}

fn decode(s: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "the proxy credentials are not UTF-8 once percent-decoded".into())
}

/// The environment variables consulted for a scheme, in order (after the case rules above).
fn env_names(secure: bool) -> &'static [&'static str] {
    if secure {
        &[
            "wss_proxy",
            "WSS_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ]
    } else {
        // No HTTP_PROXY: see the module doc (curl ignores it too).
        &[
            "ws_proxy",
            "WS_PROXY",
            "http_proxy",
            "all_proxy",
            "ALL_PROXY",
        ]
    }
}

/// The proxy the environment names for `url`, if any and unless `no_proxy` exempts the host.
/// `var` reads one variable (the process environment, or a table in tests); empty values
/// count as unset. Errors: (variable name, problem).
pub(crate) fn from_env(
    url: &url::Url,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, (String, String)> {
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let found = env_names(url.scheme() == "wss")
        .iter()
        .find_map(|name| get(name).map(|v| (*name, v)));
    let Some((name, value)) = found else {
        return Ok(None);
    };
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = url.port_or_known_default().unwrap_or(80);
    if let Some(list) = get("no_proxy").or_else(|| get("NO_PROXY")) {
        if bypassed(&list, &host, port) {
            return Ok(None);
        }
    }
    parse(&value, &format!("environment variable {name}"))
        .map(Some)
        .map_err(|e| (name.to_owned(), e))
}

/// Whether `no_proxy` (comma- or space-separated) exempts `host` (lower case, no brackets) on
/// `port`: `*` exempts everything; a name matches itself and its subdomains (a leading dot is
/// ignored: `.example.com` and `example.com` both match `www.example.com`); an IP literal
/// matches that address, `10.0.0.0/8` a network (curl 7.86); an entry with `:port` only that
/// port (as Python's `urllib` allows).
pub(crate) fn bypassed(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.');
    let host_ip: Option<IpAddr> = host.parse().ok();
    list.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let (pattern, entry_port) = split_port(entry);
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let pattern = pattern
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if let Some((net, bits)) = pattern.split_once('/') {
                return match (net.parse::<IpAddr>(), bits.parse::<u8>(), host_ip) {
                    (Ok(net), Ok(bits), Some(ip)) => in_network(ip, net, bits),
                    _ => false,
                };
            }
            match (pattern.parse::<IpAddr>(), host_ip) {
                (Ok(a), Some(b)) => a == b,
                (Ok(_), None) => false,
                _ => {
                    host == pattern
                        || (host.len() > pattern.len()
                            && host.ends_with(&pattern)
                            && host.as_bytes()[host.len() - pattern.len() - 1] == b'.')
                }
            }
        })
}

/// `entry` split into its host part and port, if it has one.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (entry, None),
        };
    }
    if entry.parse::<IpAddr>().is_ok() || entry.contains('/') {
        return (entry, None);
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// What the tunnel leads to: a name the proxy resolves, or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Name(String),
    Ip(IpAddr),
}

impl Target {
    fn host(&self) -> String {
        match self {
            Target::Name(n) => n.clone(),
            Target::Ip(ip) => ip.to_string(),
        }
    }
}

/// Longest `CONNECT` answer head read (status line and headers).
const MAX_HTTP_HEAD: usize = 16 << 10;

/// Ask `proxy`, already connected on `tcp`, for a tunnel to `target:port`. On success the
/// stream is the tunnel: nothing of the proxy's answer is left unread in it.
pub(crate) async fn tunnel(
    tcp: &mut TcpStream,
    proxy: &Proxy,
    target: &Target,
    port: u16,
) -> Result<(), ConnectError> {
    match proxy.kind {
        ProxyKind::Http => http_connect(tcp, proxy, target, port).await,
        ProxyKind::Socks5 | ProxyKind::Socks5h => socks5(tcp, proxy, target, port).await,
    }
}

fn io_error(proxy: &Proxy, e: std::io::Error) -> ConnectError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ConnectError::Io(format!(
            "proxy {} closed the connection during its handshake",
            proxy.name()
        ))
    } else {
        ConnectError::Io(format!("proxy {}: {e}", proxy.name()))
    }
}

fn refused(proxy: &Proxy, refusal: ProxyRefusal, detail: String) -> ConnectError {
    ConnectError::Proxy {
        proxy: proxy.name(),
        refusal,
        detail,
    }
}

async fn http_connect(
    tcp: &mut TcpStream,
    proxy: &Proxy,
    target: &Target,
    port: u16,
) -> Result<(), ConnectError> {
    let dest = authority(&target.host(), port);
    let mut request = format!("CONNECT {dest} HTTP/1.1\r\nHost: {dest}\r\n");
    if let Some((user, pass)) = &proxy.auth {
        let token = BASE64.encode(format!("{user}:{}", pass.0).as_bytes());
        request += &format!("Proxy-Authorization: Basic {token}\r\n");
    }
    request += "\r\n";
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| io_error(proxy, e))?;
    // Byte by byte up to the blank line, so not one byte of the tunnel is read here.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HTTP_HEAD {
            return Err(refused(
                proxy,
                ProxyRefusal::Malformed,
                format!("answered CONNECT with more than {MAX_HTTP_HEAD} bytes of headers"),
            ));
        }
        let byte = tcp.read_u8().await.map_err(|e| io_error(proxy, e))?;
        head.push(byte);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let reason: String = parts
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    match status {
        Some(s) if version.starts_with("HTTP/1.") && (200..300).contains(&s) => Ok(()),
        Some(s) if version.starts_with("HTTP/1.") => Err(refused(
            proxy,
            ProxyRefusal::HttpStatus(s),
            format!("answered {s} {}", reason.trim())
                .trim_end()
                .to_owned(),
        )),
        _ => Err(refused(
            proxy,
            ProxyRefusal::Malformed,
            format!(
                "answered CONNECT with something that is not HTTP: {:?}",
                status_line.chars().take(60).collect::<String>()
            ),
        )),
    }
}

/// RFC 1928 §6 reply codes.
fn socks_reply_text(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}

/// SOCKS5 method negotiation and, when the proxy picks it, RFC 1929 authentication.
async fn socks5_auth(tcp: &mut TcpStream, proxy: &Proxy) -> Result<(), ConnectError> {
    let io = |e| io_error(proxy, e);
    let malformed = |what: String| refused(proxy, ProxyRefusal::Malformed, what);
    // Greeting: offer no authentication, and username/password when the URL has them.
    let greeting: &[u8] = if proxy.auth.is_some() {
        &[5, 2, 0x00, 0x02]
    } else {
        &[5, 1, 0x00]
    };
    tcp.write_all(greeting).await.map_err(io)?;
    let mut choice = [0u8; 2];
    tcp.read_exact(&mut choice).await.map_err(io)?;
    if choice[0] != 5 {
        return Err(malformed(format!(
            "is not a SOCKS5 proxy (it answered version {})",
            choice[0]
        )));
    }
    match (choice[1], &proxy.auth) {
        (0x00, _) => {}
        (0x02, Some((user, pass))) => {
            let mut auth = vec![1, user.len() as u8];
            auth.extend_from_slice(user.as_bytes());
            auth.push(pass.0.len() as u8);
            auth.extend_from_slice(pass.0.as_bytes());
            tcp.write_all(&auth).await.map_err(io)?;
            let mut status = [0u8; 2];
            tcp.read_exact(&mut status).await.map_err(io)?;
            if status[1] != 0 {
                return Err(refused(
                    proxy,
                    ProxyRefusal::SocksAuthFailed,
                    format!(
                        "refused the user name and password (RFC 1929 status {})",
                        status[1]
                    ),
                ));
            }
        }
        (0xFF, auth) => {
            let detail = if auth.is_some() {
                "accepted none of the authentication methods offered (none, username/password)"
            } else {
                "requires authentication (put user:password in the proxy URL)"
            };
            return Err(refused(
                proxy,
                ProxyRefusal::SocksNoAcceptableMethod,
                detail.into(),
            ));
        }
        (other, _) => {
            return Err(malformed(format!(
                "chose authentication method {other:#04x}, which was not offered"
            )))
        }
    }
    Ok(())
}

/// SOCKS5 (RFC 1928): authenticate, then CONNECT to the target.
async fn socks5(
    tcp: &mut TcpStream,
    proxy: &Proxy,
    target: &Target,
    port: u16,
) -> Result<(), ConnectError> {
    let io = |e| io_error(proxy, e);
    let malformed = |what: String| refused(proxy, ProxyRefusal::Malformed, what);
    socks5_auth(tcp, proxy).await?;
    let mut request = vec![5, 1, 0];
    match target {
        Target::Ip(IpAddr::V4(a)) => {
            request.push(1);
            request.extend_from_slice(&a.octets());
        }
        Target::Ip(IpAddr::V6(a)) => {
            request.push(4);
            request.extend_from_slice(&a.octets());
        }
        Target::Name(name) => {
            let len = u8::try_from(name.len()).map_err(|_| {
                ConnectError::Resolve(format!("{name}: too long for SOCKS5 (255 bytes at most)"))
            })?;
            request.push(3);
            request.push(len);
            request.extend_from_slice(name.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    tcp.write_all(&request).await.map_err(io)?;
    let mut reply = [0u8; 4];
    tcp.read_exact(&mut reply).await.map_err(io)?;
    if reply[0] != 5 {
        return Err(malformed(format!(
            "answered CONNECT with version {}",
            reply[0]
        )));
    }
    if reply[1] != 0 {
        return Err(refused(
            proxy,
            ProxyRefusal::SocksReply(reply[1]),
            format!(
                "answered {}: {} (for {})",
                reply[1],
                socks_reply_text(reply[1]),
                authority(&target.host(), port)
            ),
        ));
    }
    // The bound address: read and forget.
    let rest = match reply[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => usize::from(tcp.read_u8().await.map_err(io)?) + 2,
        other => return Err(malformed(format!("answered with address type {other}"))),
    };
    let mut skip = vec![0u8; rest];
    tcp.read_exact(&mut skip).await.map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn proxy_urls_parse_with_defaults_and_decoded_credentials() {
        let p = parse("http://us%40er:p%3Ass@proxy.example:3128", "t").expect("valid");
        assert_eq!(p.kind, ProxyKind::Http);
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
        let (user, pass) = p.auth.clone().expect("credentials");
        assert_eq!((user.as_str(), pass.0.as_str()), ("us@er", "p:ss"));
        assert_eq!(
            p.redacted_url(),
            "http://us@er:<redacted>@proxy.example:3128"
        );
        assert_eq!(
            parse("proxy:8080", "t").expect("bare").kind,
            ProxyKind::Http
        );
        assert_eq!(parse("http://p", "t").expect("default").port, 80);
        let s = parse("socks5h://[::1]", "t").expect("v6");
        assert_eq!(
            (s.kind, s.host.as_str(), s.port),
            (ProxyKind::Socks5h, "::1", 1080)
        );
        assert_eq!(s.name(), "[::1]:1080");
        assert_eq!(
            parse("socks5://h:1", "t").expect("s5").kind,
            ProxyKind::Socks5
        );
        for bad in [
            "https://p:1",
            "socks4://p:1",
            "socks://p",
            "ftp://p",
            "http://:1",
        ] {
            assert!(parse(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn no_proxy_matches_like_curl() {
        let list = "example.com, .internal,10.0.0.0/8 ::1,[fe80::1]:8443,host:9000";
        for (host, port, want) in [
            ("example.com", 443, true),
            ("www.example.com", 443, true),
            ("notexample.com", 443, false),
            ("example.com.evil", 443, false),
            ("a.b.internal", 80, true),
            ("internal", 80, true),
            ("10.2.3.4", 80, true),
            ("11.2.3.4", 80, false),
            ("::1", 80, true),
            ("fe80::1", 8443, true),
            ("fe80::1", 443, false),
            ("host", 9000, true),
            ("host", 9001, false),
        ] {
            assert_eq!(bypassed(list, host, port), want, "{host}:{port}");
        }
        assert!(bypassed("*", "anything", 1));
        assert!(!bypassed("", "anything", 1));
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn chosen(url: &str, pairs: &[(&str, &str)]) -> Option<String> {
        let url = url::Url::parse(url).expect("url");
        from_env(&url, &env(pairs))
            .expect("valid")
            .map(|p| format!("{} {}", p.source, p.name()))
    }

    #[test]
    fn the_environment_is_read_per_scheme_with_no_proxy() {
        let all = [
            ("https_proxy", "http://s:1"),
            ("http_proxy", "http://p:2"),
            ("all_proxy", "socks5h://a:3"),
        ];
        assert_eq!(
            chosen("wss://h/", &all).as_deref(),
            Some("environment variable https_proxy s:1")
        );
        assert_eq!(
            chosen("ws://h/", &all).as_deref(),
            Some("environment variable http_proxy p:2")
        );
        assert_eq!(
            chosen("ws://h/", &[("all_proxy", "socks5h://a:3")]).as_deref(),
            Some("environment variable all_proxy a:3")
        );
        assert_eq!(
            chosen("wss://h/", &[("HTTPS_PROXY", "http://u:4")]).as_deref(),
            Some("environment variable HTTPS_PROXY u:4")
        );
        assert_eq!(
            chosen(
                "ws://h/",
                &[("wss_proxy", "http://w:5"), ("ws_proxy", "http://v:6")]
            )
            .as_deref(),
            Some("environment variable ws_proxy v:6")
        );
        // httpoxy: HTTP_PROXY is never read.
        assert_eq!(chosen("ws://h/", &[("HTTP_PROXY", "http://x:1")]), None);
        // Empty values are unset.
        assert_eq!(
            chosen(
                "ws://h/",
                &[("http_proxy", ""), ("all_proxy", "http://a:1")]
            )
            .as_deref(),
            Some("environment variable all_proxy a:1")
        );
        let with_no = [("http_proxy", "http://p:2"), ("no_proxy", "h,other")];
        assert_eq!(chosen("ws://h:81/", &with_no), None);
        assert_eq!(chosen("ws://x.h/", &with_no), None);
        assert!(chosen("ws://hh/", &with_no).is_some());
        assert_eq!(
            chosen(
                "ws://h/",
                &[("http_proxy", "http://p:2"), ("NO_PROXY", "*")]
            ),
            None
        );
        let bad = from_env(
            &url::Url::parse("ws://h/").expect("url"),
            &env(&[("http_proxy", "socks4://p:1")]),
        );
        assert!(matches!(bad, Err((name, _)) if name == "http_proxy"));
    }
}
