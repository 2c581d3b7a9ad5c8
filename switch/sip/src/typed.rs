//! Typed views of the headers a switch needs: Via, From/To/Contact/Route
//! (name-addr), CSeq, Call-ID and the scalar headers (RFC 3261 §20, §25.1).

use crate::error::ParseError;
use crate::lex::{self, find_param, is_token, is_token_char, quoted_string, trim_lws, Param};
use crate::method::Method;
use crate::uri::{split_hostport, Host, Uri};
use std::fmt;

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport, uppercased (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or unknown).
    pub transport: String,
    /// sent-by host.
    pub host: Host,
    /// sent-by port.
    pub port: Option<u16>,
    /// via-params (branch, received, rport, maddr, ttl, extensions).
    pub params: Vec<Param>,
}

/// The RFC 3261 branch cookie (§8.1.1.7).
pub const BRANCH_COOKIE: &str = "z9hG4bK";

impl Via {
    /// A Via for a request we send.
    pub fn new(transport: &str, host: Host, port: Option<u16>, branch: &str) -> Via {
        Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params: vec![Param::new("branch", branch), Param::flag("rport")],
        }
    }

    /// Parses one Via value (already split on commas).
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        const H: &str = "Via";
        let err = |why| ParseError::header(H, why);
        let s = trim_lws(s);
        let (name, s) = take_token(s).ok_or(err("no protocol name"))?;
        let s = slash(s).ok_or(err("expected /"))?;
        let (version, s) = take_token(s).ok_or(err("no protocol version"))?;
        let s = slash(s).ok_or(err("expected /"))?;
        let (transport, s) = take_token(s).ok_or(err("no transport"))?;
        // The version is checked on the start line (505, RFC 4475 §3.1.2.16).
        let _ = (name, version);
        if !s.starts_with([' ', '\t']) {
            return Err(err("no space before sent-by"));
        }
        let s = s.trim_start_matches([' ', '\t']);
        let end = s.find([';', ' ', '\t']).unwrap_or(s.len());
        let (mut sent_by, mut rest) = (s[..end].to_owned(), &s[end..]);
        // Tolerate LWS around the sent-by colon ("host : port").
        let r = rest.trim_start_matches([' ', '\t']);
        if let Some(p) = r.strip_prefix(':') {
            let p = p.trim_start_matches([' ', '\t']);
            let n = p.bytes().take_while(u8::is_ascii_digit).count();
            sent_by = format!("{sent_by}:{}", &p[..n]);
            rest = &p[n..];
        }
        let (host, port) = split_hostport(&sent_by).map_err(|_| err("bad sent-by"))?;
        let (params, rest) = lex::params(rest).map_err(err)?;
        if !trim_lws(rest).is_empty() {
            return Err(err("junk after parameters"));
        }
        if let Some(Some(b)) = find_param(&params, "branch").map(|p| p.value.as_deref()) {
            if !is_token(b) {
                return Err(err("bad branch"));
            }
        }
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch")
    }

    /// A parameter's value (`Some("")` for a flag parameter).
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).map(|p| p.value.as_deref().unwrap_or(""))
    }

    /// Sets or replaces a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        self.params.retain(|p| !p.name.eq_ignore_ascii_case(name));
        self.params.push(Param {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        });
    }

    /// True if the branch carries the RFC 3261 magic cookie and an id.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > BRANCH_COOKIE.len() && b.starts_with(BRANCH_COOKIE))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        let mut s = String::new();
        lex::write_params(&mut s, &self.params);
        f.write_str(&s)
    }
}

fn take_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    let n = s.bytes().take_while(|&c| is_token_char(c)).count();
    (n > 0).then(|| (&s[..n], &s[n..]))
}

fn slash(s: &str) -> Option<&str> {
    s.trim_start_matches([' ', '\t']).strip_prefix('/')
}

/// A `name-addr` or `addr-spec` with header parameters: the value of From,
/// To, Contact, Route, Record-Route, Refer-To, P-Asserted-Identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted.
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters after the URI (tag, expires, q, ...).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// A bare `<uri>`.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Vec::new(),
        }
    }

    /// Parses one value. `header` names the header for errors.
    pub fn parse(s: &str, header: &'static str) -> Result<NameAddr, ParseError> {
        let err = |why| ParseError::header(header, why);
        let s = trim_lws(s);
        let (display, uri, rest) = if s.starts_with('"') {
            let (d, rest) = quoted_string(s).ok_or(err("unterminated quoted display name"))?;
            let rest = rest.trim_start_matches([' ', '\t']);
            let (uri, rest) = angle(rest).ok_or(err("expected <uri> after display name"))?;
            (Some(d), uri, rest)
        } else if let Some(lt) = s.find('<') {
            let d = trim_lws(&s[..lt]);
            if !d.is_empty() && !d.split([' ', '\t']).filter(|w| !w.is_empty()).all(is_token) {
                return Err(err("display name is not tokens or a quoted string"));
            }
            let (uri, rest) = angle(&s[lt..]).ok_or(err("unterminated <uri>"))?;
            ((!d.is_empty()).then(|| d.to_owned()), uri, rest)
        } else {
            // addr-spec: the URI ends at the first ';' or LWS and may not
            // contain ',', ';' or '?' (RFC 3261 §20.10).
            let end = s.find([';', ' ', '\t']).unwrap_or(s.len());
            let uri = &s[..end];
            if uri.contains(['?', ',', '<', '>', '"']) {
                return Err(err("URI with '?' or ',' must be in <>"));
            }
            (None, uri, &s[end..])
        };
        let uri = Uri::parse(uri)?;
        let (params, rest) = lex::params(rest).map_err(err)?;
        if !trim_lws(rest).is_empty() {
            return Err(err("junk after parameters"));
        }
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// A header parameter's value (`Some("")` for a flag).
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).map(|p| p.value.as_deref().unwrap_or(""))
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }

    /// Sets or replaces a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        self.params.retain(|p| !p.name.eq_ignore_ascii_case(name));
        self.params.push(Param {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        });
    }
}

/// `<uri>` at the start of `s` with no LWS inside the brackets
/// (RFC 3261: LAQUOT addr-spec RAQUOT). Returns (uri, rest).
fn angle(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('<')?;
    let end = inner.find('>')?;
    let uri = &inner[..end];
    if uri.is_empty() || uri.starts_with([' ', '\t']) || uri.ends_with([' ', '\t']) {
        return None;
    }
    Some((uri, &inner[end + 1..]))
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        if let Some(d) = &self.display {
            lex::write_quoted(&mut s, d);
            s.push(' ');
        }
        s.push('<');
        s.push_str(&self.uri.to_string());
        s.push('>');
        lex::write_params(&mut s, &self.params);
        f.write_str(&s)
    }
}

/// The Contact header of a REGISTER may be `*` (RFC 3261 §10.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *`
    Star,
    /// Zero or more addresses.
    List(Vec<NameAddr>),
}

/// Parses a comma-separated list of name-addr values.
pub fn parse_name_addrs<'a>(
    values: impl Iterator<Item = &'a str>,
    header: &'static str,
) -> Result<Vec<NameAddr>, ParseError> {
    let mut out = Vec::new();
    for v in values {
        let parts =
            lex::split_commas(v).ok_or(ParseError::header(header, "unbalanced quote or <"))?;
        for p in parts {
            out.push(NameAddr::parse(p, header)?);
        }
    }
    Ok(out)
}

/// CSeq (RFC 3261 §20.16): a sequence number below 2^31 and a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number.
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let err = |why| ParseError::header("CSeq", why);
        let s = trim_lws(s);
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        let seq = parse_u32(&s[..n])
            .filter(|&v| v < 1 << 31)
            .ok_or(err("bad sequence number"))?;
        let rest = &s[n..];
        if !rest.starts_with([' ', '\t']) {
            return Err(err("no method"));
        }
        let m = trim_lws(rest);
        if !is_token(m) {
            return Err(err("bad method"));
        }
        Ok(CSeq {
            seq,
            method: Method::from_token(m),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Parses `1*DIGIT` into a u32 (None on overflow or non-digits).
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses delta-seconds (Expires, expires=); values beyond 2^32-1 are
/// taken as 2^32-1 (RFC 3261 §10.2.1 asks for a sane upper bound anyway).
/// Who refreshes a session (RFC 4028 §4 `refresher` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The caller (the UAC of the session's INVITE).
    Uac,
    /// The callee.
    Uas,
}

/// A `Session-Expires` value (RFC 4028 §4): `delta-seconds *(;se-params)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The session interval, seconds.
    pub secs: u32,
    /// The `refresher` parameter, if given.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses a header value; None if it is not a delta-seconds with
    /// parameters.
    pub fn parse(s: &str) -> Option<SessionExpires> {
        let mut parts = s.split(';');
        let secs = parse_delta_seconds(parts.next()?)?;
        let mut refresher = None;
        for p in parts {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            if trim_lws(name).eq_ignore_ascii_case("refresher") {
                refresher = match trim_lws(value).to_ascii_lowercase().as_str() {
                    "uac" => Some(Refresher::Uac),
                    "uas" => Some(Refresher::Uas),
                    _ => return None,
                };
            }
        }
        Some(SessionExpires { secs, refresher })
    }
}

impl fmt::Display for SessionExpires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.secs)?;
        match self.refresher {
            Some(Refresher::Uac) => write!(f, ";refresher=uac"),
            Some(Refresher::Uas) => write!(f, ";refresher=uas"),
            None => Ok(()),
        }
    }
}

/// A `Replaces` value (RFC 3891 §6.1): the dialog an INVITE (or a REFER's
/// target) takes the place of. The tags are as the recipient sees its
/// dialog: `to_tag` is its local tag, `from_tag` the remote one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    /// The dialog's Call-ID.
    pub call_id: String,
    /// The recipient's local tag.
    pub to_tag: String,
    /// The recipient's remote tag.
    pub from_tag: String,
    /// `early-only`: replace only a dialog that is not yet confirmed.
    pub early_only: bool,
}

impl Replaces {
    /// Parses a header value: `callid *(;replaces-param)` with exactly one
    /// `to-tag` and one `from-tag` (§6.1); None otherwise.
    pub fn parse(s: &str) -> Option<Replaces> {
        let mut parts = s.split(';');
        let call_id = trim_lws(parts.next()?);
        check_call_id(call_id).ok()?;
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for p in parts {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (trim_lws(n), Some(trim_lws(v))),
                None => (trim_lws(p), None),
            };
            let slot = if name.eq_ignore_ascii_case("to-tag") {
                &mut to_tag
            } else if name.eq_ignore_ascii_case("from-tag") {
                &mut from_tag
            } else {
                if name.eq_ignore_ascii_case("early-only") {
                    early_only = true;
                } else if name.is_empty() || !name.bytes().all(lex::is_token_char) {
                    return None;
                }
                continue;
            };
            let v = value.filter(|v| !v.is_empty() && v.bytes().all(lex::is_token_char))?;
            if slot.replace(v.to_owned()).is_some() {
                return None;
            }
        }
        Some(Replaces {
            call_id: call_id.to_owned(),
            to_tag: to_tag?,
            from_tag: from_tag?,
            early_only,
        })
    }
}

impl fmt::Display for Replaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};to-tag={};from-tag={}",
            self.call_id, self.to_tag, self.from_tag
        )?;
        if self.early_only {
            write!(f, ";early-only")?;
        }
        Ok(())
    }
}

pub fn parse_delta_seconds(s: &str) -> Option<u32> {
    let s = trim_lws(s);
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .map_or(u32::MAX, |v| v.min(u32::MAX as u64) as u32),
    )
}

/// Validates a Call-ID: `word [ "@" word ]` (RFC 3261 §25.1).
pub(crate) fn check_call_id(s: &str) -> Result<(), ParseError> {
    let ok = match s.split_once('@') {
        Some((a, b)) => is_word(a) && is_word(b),
        None => is_word(s),
    };
    if ok {
        Ok(())
    } else {
        Err(ParseError::header("Call-ID", "not word[@word]"))
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(lex::is_word_char)
}

/// Splits an option-tag list (Require, Supported, ...) into tokens.
pub fn option_tags(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(trim_lws).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces() {
        let r =
            Replaces::parse("98732@sip.example.com;from-tag=r33th4x0r ;to-tag=ff87ff;early-only")
                .unwrap();
        assert_eq!(r.call_id, "98732@sip.example.com");
        assert_eq!(
            (r.to_tag.as_str(), r.from_tag.as_str()),
            ("ff87ff", "r33th4x0r")
        );
        assert!(r.early_only);
        assert_eq!(Replaces::parse(&r.to_string()), Some(r));
        // Both tags, once each, with token values.
        for bad in [
            "abc;to-tag=1",
            "abc;from-tag=1",
            "abc;to-tag=1;from-tag=2;to-tag=3",
            "abc;to-tag=;from-tag=2",
            "a b;to-tag=1;from-tag=2",
            ";to-tag=1;from-tag=2",
            "abc;to-tag=1;from-tag=2;=x",
        ] {
            assert_eq!(Replaces::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn session_expires() {
        let se = SessionExpires::parse("90;refresher=uac").unwrap();
        assert_eq!((se.secs, se.refresher), (90, Some(Refresher::Uac)));
        assert_eq!(se.to_string(), "90;refresher=uac");
        let se = SessionExpires::parse(" 1800 ; other=1 ;REFRESHER = UAS").unwrap();
        assert_eq!((se.secs, se.refresher), (1800, Some(Refresher::Uas)));
        assert_eq!(SessionExpires::parse("4000").unwrap().refresher, None);
        assert_eq!(SessionExpires::parse("abc"), None);
        assert_eq!(SessionExpires::parse("90;refresher=both"), None);
        assert_eq!(SessionExpires::parse(""), None);
    }

    #[test]
    fn via_variants() {
        let v = Via::parse("SIP  /   2.0  /UDP     192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v = Via::parse("SIP/2.0/TCP [2001:db8::9:1]:5061 ; branch = z9hG4bKx ;rport;received=[2001:db8::9:255]").unwrap();
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.param("rport"), Some(""));
        assert_eq!(v.param("received"), Some("[2001:db8::9:255]"));
        assert!(v.has_rfc3261_branch());
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert_eq!(
            Via::parse("SIP/2.0/UDP h:5060;branch=z9hG4bK1")
                .unwrap()
                .to_string(),
            "SIP/2.0/UDP h:5060;branch=z9hG4bK1"
        );
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(
            r#""J Rosenberg \\\""  <sip:jdrosen@example.com> ; tag = 98asjd8"#,
            "From",
        )
        .unwrap();
        assert_eq!(a.display.as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(a.tag(), Some("98asjd8"));
        let a = NameAddr::parse(
            "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            "To",
        )
        .unwrap();
        assert_eq!(a.tag(), Some("1918181833n"));
        let a = NameAddr::parse("caller<sip:caller@example.com>;tag=323", "From").unwrap();
        assert_eq!(a.display.as_deref(), Some("caller"));
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#, "To").is_err());
        assert!(NameAddr::parse(r#""Watson, Thomas" < sip:t.watson@example.org >"#, "To").is_err());
        assert!(
            NameAddr::parse("Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43", "From").is_err()
        );
        assert!(NameAddr::parse(
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "Contact"
        )
        .is_err());
    }

    #[test]
    fn cseq() {
        assert_eq!(
            CSeq::parse("0009   INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: Method::Invite
            }
        );
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
    }

    #[test]
    fn delta() {
        assert_eq!(parse_delta_seconds("10000000000000"), Some(u32::MAX));
        assert_eq!(parse_delta_seconds("3600"), Some(3600));
        assert_eq!(parse_delta_seconds("-1"), None);
    }
}
