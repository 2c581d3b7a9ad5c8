//! URIs: SIP/SIPS per RFC 3261 §19.1 with IPv6 references per RFC 5118;
//! other schemes (tel:, http:, ...) are kept as opaque text.

use crate::error::ParseError;
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// The host part of a SIP URI or Via sent-by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, lowercased.
    Domain(String),
    /// An IPv4 address or an IPv6 reference (written in `[...]`).
    Ip(IpAddr),
}

impl Host {
    /// Parses a host: hostname, IPv4address or IPv6reference (RFC 3261
    /// §25.1). A bare IPv6 address without brackets is an error (RFC 5118
    /// §4.2). Tolerates the `:::` of the RFC 3261 ABNF bug (RFC 5118 §4.10).
    pub fn parse(s: &str) -> Result<Host, ParseError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or(ParseError::Uri("unclosed IPv6 reference"))?;
            return parse_v6(inner).map(|a| Host::Ip(IpAddr::V6(a)));
        }
        if s.is_empty() {
            return Err(ParseError::Uri("empty host"));
        }
        if s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
            if let Ok(ip) = s.parse() {
                return Ok(Host::Ip(IpAddr::V4(ip)));
            }
        }
        let ok = s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_');
        if !ok || s.starts_with('.') || s.starts_with('-') {
            return Err(ParseError::Uri("bad host name"));
        }
        Ok(Host::Domain(s.to_ascii_lowercase()))
    }

    /// The IP address, if the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Domain(_) => None,
        }
    }
}

fn parse_v6(s: &str) -> Result<Ipv6Addr, ParseError> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    // RFC 5118 §4.10: "2001:db8:::192.0.2.1" must be tolerated.
    if s.contains(":::") {
        if let Ok(a) = s.replacen(":::", "::", 1).parse() {
            return Ok(a);
        }
    }
    Err(ParseError::Uri("bad IPv6 address"))
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        Host::Ip(ip)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// Splits `host[:port]`, where host may be an IPv6 reference.
pub(crate) fn split_hostport(s: &str) -> Result<(Host, Option<u16>), ParseError> {
    let (host, port) = if s.starts_with('[') {
        let end = s
            .find(']')
            .ok_or(ParseError::Uri("unclosed IPv6 reference"))?;
        let rest = &s[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return Err(ParseError::Uri("junk after IPv6 reference")),
        };
        (&s[..=end], port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()) => Some(
            p.parse()
                .map_err(|_| ParseError::Uri("port out of range"))?,
        ),
        Some(_) => return Err(ParseError::Uri("bad port")),
    };
    Ok((Host::parse(host)?, port))
}

/// A SIP or SIPS URI (RFC 3261 §19.1.1). User, password, parameters and
/// headers are kept as received (escaped); use [`SipUri::user_decoded`] to
/// compare users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, escaped as received.
    pub user: Option<String>,
    /// The password, escaped as received (deprecated but legal).
    pub password: Option<String>,
    /// Host.
    pub host: Host,
    /// Port, if given.
    pub port: Option<u16>,
    /// `;name[=value]` URI parameters, escaped as received.
    pub params: Vec<(String, Option<String>)>,
    /// `?name=value&...` headers, escaped as received.
    pub headers: Vec<(String, String)>,
}

impl SipUri {
    /// `sip:user@host[:port]`.
    pub fn new(user: Option<&str>, host: Host, port: Option<u16>) -> Self {
        SipUri {
            secure: false,
            user: user.map(str::to_owned),
            password: None,
            host,
            port,
            params: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The user part with %HH escapes decoded (RFC 3261 §19.1.4).
    pub fn user_decoded(&self) -> Option<Cow<'_, str>> {
        self.user.as_deref().map(unescape)
    }

    /// A URI parameter by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// Sets or replaces a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        self.params.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.params
            .push((name.to_owned(), value.map(str::to_owned)));
    }

    /// The `transport` parameter, lowercased.
    pub fn transport(&self) -> Option<String> {
        self.param("transport")
            .flatten()
            .map(str::to_ascii_lowercase)
    }

    fn parse(secure: bool, s: &str) -> Result<SipUri, ParseError> {
        let (userinfo, rest) = match s.find('@') {
            Some(i) => (Some(&s[..i]), &s[i + 1..]),
            None => (None, s),
        };
        // '?' may appear in the user part (user-unreserved); headers only
        // follow the host.
        let (rest, headers) = match rest.split_once('?') {
            Some((a, h)) => (a, Some(h)),
            None => (rest, None),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(ParseError::Uri("empty user"));
                }
                if !ui.bytes().all(is_user_char) {
                    return Err(ParseError::Uri("bad character in user part"));
                }
                (Some(u.to_owned()), p.map(str::to_owned))
            }
        };
        let (hostport, params) = match rest.find(';') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (host, port) = split_hostport(hostport)?;
        let mut uri = SipUri {
            secure,
            user,
            password,
            host,
            port,
            params: Vec::new(),
            headers: Vec::new(),
        };
        if let Some(params) = params {
            for p in params.split(';') {
                if p.is_empty() || !p.bytes().all(is_param_char) {
                    return Err(ParseError::Uri("bad URI parameter"));
                }
                let (n, v) = match p.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (p, None),
                };
                if n.is_empty() {
                    return Err(ParseError::Uri("empty URI parameter name"));
                }
                uri.params.push((n.to_owned(), v));
            }
        }
        if let Some(h) = headers {
            for kv in h.split('&') {
                let (n, v) = kv
                    .split_once('=')
                    .ok_or(ParseError::Uri("bad URI header"))?;
                if n.is_empty() || !kv.bytes().all(is_param_char) {
                    return Err(ParseError::Uri("bad URI header"));
                }
                uri.headers.push((n.to_owned(), v.to_owned()));
            }
        }
        Ok(uri)
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&c)
}

/// user / password characters (unreserved, escaped, user-unreserved and
/// the password's `&=+$,`).
fn is_user_char(c: u8) -> bool {
    is_unreserved(c) || b"&=+$,;?/:".contains(&c)
}

/// paramchar / hnv characters.
fn is_param_char(c: u8) -> bool {
    is_unreserved(c) || b"[]/:&+$=?".contains(&c)
}

/// Decodes `%HH` escapes (not recursively; invalid escapes are kept).
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Any URI found in a SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// sip: or sips:
    Sip(SipUri),
    /// Another scheme; `text` is the whole URI.
    Other {
        /// The scheme, lowercased.
        scheme: String,
        /// The URI as received.
        text: String,
    },
}

impl Uri {
    /// Parses an absolute URI (RFC 3261 §25.1 `Request-URI`/`addr-spec`).
    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        let (scheme, rest) = s.split_once(':').ok_or(ParseError::Uri("no scheme"))?;
        let b = scheme.as_bytes();
        if b.is_empty()
            || !b[0].is_ascii_alphabetic()
            || !b
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        {
            return Err(ParseError::Uri("bad scheme"));
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            return SipUri::parse(scheme.len() == 4, rest).map(Uri::Sip);
        }
        if rest.is_empty()
            || s.bytes()
                .any(|c| c <= b' ' || c == b'<' || c == b'>' || c == b'"')
        {
            return Err(ParseError::Uri("bad absolute URI"));
        }
        Ok(Uri::Other {
            scheme: scheme.to_ascii_lowercase(),
            text: s.to_owned(),
        })
    }

    /// The SIP URI, if this is one.
    pub fn sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other { .. } => None,
        }
    }

    /// True if both URIs address the same target: for SIP URIs scheme,
    /// user (unescaped), host and port; parameters and headers are ignored.
    /// Used to check a digest response's `uri` against the Request-URI.
    pub fn same_target(&self, other: &Uri) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => {
                a.secure == b.secure
                    && a.user_decoded() == b.user_decoded()
                    && a.host == b.host
                    && a.port.unwrap_or(5060) == b.port.unwrap_or(5060)
            }
            (Uri::Other { text: a, .. }, Uri::Other { text: b, .. }) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }

    /// The SIP URI, mutably, if this is one.
    pub fn sip_mut(&mut self) -> Option<&mut SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other { .. } => None,
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        for (i, (n, v)) in self.headers.iter().enumerate() {
            write!(f, "{}{n}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Other { text, .. } => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn basic() {
        let u = sip("sip:alice:pw@Example.COM:5070;transport=tcp;lr?subject=x");
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, Host::Domain("example.com".into()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers, vec![("subject".into(), "x".into())]);
        assert_eq!(
            u.to_string(),
            "sip:alice:pw@example.com:5070;transport=tcp;lr?subject=x"
        );
    }

    #[test]
    fn ipv6() {
        let u = sip("sip:[2001:db8::10:5070]");
        assert_eq!(u.port, None);
        assert_eq!(u.host, Host::Ip("2001:db8::10:5070".parse().unwrap()));
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.port, Some(5070));
        assert!(Uri::parse("sip:2001:db8::10").is_err());
        assert!(Uri::parse("sip:[2001:db8:::192.0.2.1]").is_ok());
    }

    #[test]
    fn escapes() {
        let u = sip("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(u.user_decoded().unwrap(), "sips:user@example.com");
        assert_eq!(unescape("value%2541"), "value%41");
        assert_eq!(unescape("%"), "%");
        assert_eq!(unescape("%4"), "%4");
    }

    #[test]
    fn other_schemes() {
        assert!(matches!(
            Uri::parse("tel:+358-555-1234567").unwrap(),
            Uri::Other { .. }
        ));
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("nocolon").is_err());
    }
}
