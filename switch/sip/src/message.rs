//! Requests, responses, and their wire form (RFC 3261 §7).

use crate::error::ParseError;
use crate::header::{Headers, Name};
use crate::method::Method;
use crate::typed::{self, CSeq, Contacts, NameAddr, Via};
use crate::uri::Uri;
use bytes::Bytes;
use std::fmt::Write as _;

/// Largest message accepted (UDP datagram or stream message).
pub const MAX_MESSAGE: usize = 65_535;

/// A SIP version from the start line; only 2.0 is supported (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub u8, pub u8);

impl Version {
    /// SIP/2.0
    pub const V2: Version = Version(2, 0);
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method from the Request-Line.
    pub method: Method,
    /// Request-URI.
    pub uri: Uri,
    /// Version from the Request-Line.
    pub version: Version,
    /// Header fields in order.
    pub headers: Headers,
    /// Body (a slice of the received buffer when parsed).
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100..=699.
    pub code: u16,
    /// Reason phrase (may be empty).
    pub reason: String,
    /// Header fields in order.
    pub headers: Headers,
    /// Body.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// How the body is framed: by Content-Length (streams must have it) or by
/// the end of the datagram (UDP, RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A UDP datagram: missing Content-Length means "to the end".
    Datagram,
    /// One message cut out of a stream by [`crate::framing::StreamFramer`].
    Stream,
}

/// Accessors shared by requests and responses.
pub trait SipMessage {
    /// The header list.
    fn headers(&self) -> &Headers;
    /// The header list, mutably.
    fn headers_mut(&mut self) -> &mut Headers;
    /// The body.
    fn body(&self) -> &Bytes;
    /// The body, mutably.
    fn body_mut(&mut self) -> &mut Bytes;

    /// Call-ID.
    fn call_id(&self) -> Option<&str> {
        self.headers().get(&Name::CallId)
    }
    /// CSeq, parsed.
    fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(
            self.headers()
                .get(&Name::CSeq)
                .ok_or(ParseError::header("CSeq", "missing"))?,
        )
    }
    /// From, parsed.
    fn from(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(
            self.headers()
                .get(&Name::From)
                .ok_or(ParseError::header("From", "missing"))?,
            "From",
        )
    }
    /// To, parsed.
    fn to(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(
            self.headers()
                .get(&Name::To)
                .ok_or(ParseError::header("To", "missing"))?,
            "To",
        )
    }
    /// Every Via value in order, parsed.
    fn vias(&self) -> Result<Vec<Via>, ParseError> {
        let mut out = Vec::new();
        for v in self.headers().get_all(&Name::Via) {
            for part in
                crate::lex::split_commas(v).ok_or(ParseError::header("Via", "unbalanced"))?
            {
                out.push(Via::parse(part)?);
            }
        }
        Ok(out)
    }
    /// The topmost Via.
    fn top_via(&self) -> Result<Via, ParseError> {
        let v = self
            .headers()
            .get(&Name::Via)
            .ok_or(ParseError::header("Via", "missing"))?;
        let first = crate::lex::split_commas(v).and_then(|p| p.first().map(|s| s.to_string()));
        Via::parse(&first.ok_or(ParseError::header("Via", "unbalanced"))?)
    }
    /// Contact values (or `*`).
    fn contacts(&self) -> Result<Contacts, ParseError> {
        let vals: Vec<&str> = self.headers().get_all(&Name::Contact).collect();
        if vals.len() == 1 && vals[0].trim() == "*" {
            return Ok(Contacts::Star);
        }
        typed::parse_name_addrs(vals.into_iter(), "Contact").map(Contacts::List)
    }
    /// Record-Route values in order.
    fn record_route(&self) -> Result<Vec<NameAddr>, ParseError> {
        typed::parse_name_addrs(self.headers().get_all(&Name::RecordRoute), "Record-Route")
    }
    /// Expires header.
    fn expires(&self) -> Option<u32> {
        self.headers()
            .get(&Name::Expires)
            .and_then(typed::parse_delta_seconds)
    }
    /// Content-Type, lowercased, without parameters.
    fn content_type(&self) -> Option<String> {
        self.headers().get(&Name::ContentType).map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

macro_rules! impl_msg {
    ($t:ty) => {
        impl SipMessage for $t {
            fn headers(&self) -> &Headers {
                &self.headers
            }
            fn headers_mut(&mut self) -> &mut Headers {
                &mut self.headers
            }
            fn body(&self) -> &Bytes {
                &self.body
            }
            fn body_mut(&mut self) -> &mut Bytes {
                &mut self.body
            }
        }
    };
}
impl_msg!(Request);
impl_msg!(Response);

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            version: Version::V2,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Max-Forwards (None if absent).
    pub fn max_forwards(&self) -> Option<u8> {
        self.headers
            .get(&Name::MaxForwards)
            .and_then(|v| v.trim().parse().ok())
    }

    /// The wire form; Content-Length is written from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512 + self.body.len());
        let _ = write!(s, "{} {} SIP/2.0\r\n", self.method, self.uri);
        encode_tail(s, &self.headers, &self.body)
    }
}

impl Response {
    /// A response with no headers and the standard reason phrase.
    pub fn new(code: u16) -> Response {
        Response {
            code,
            reason: crate::reason_phrase(code).to_owned(),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// The wire form; Content-Length is written from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(512 + self.body.len());
        let _ = write!(s, "SIP/2.0 {} {}\r\n", self.code, self.reason);
        encode_tail(s, &self.headers, &self.body)
    }

    /// 1xx
    pub fn is_provisional(&self) -> bool {
        self.code < 200
    }
}

impl Message {
    /// Parses one message. See [`parse`].
    pub fn parse(buf: &Bytes, framing: Framing) -> Result<Message, ParseError> {
        parse(buf, framing)
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }

    /// The header list.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
}

fn encode_tail(mut s: String, headers: &Headers, body: &[u8]) -> Vec<u8> {
    for h in headers {
        if h.name == Name::ContentLength {
            continue;
        }
        s.push_str(h.name.as_str());
        s.push_str(": ");
        s.push_str(&h.value);
        s.push_str("\r\n");
    }
    let _ = write!(s, "Content-Length: {}\r\n\r\n", body.len());
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Finds the end of the header section: the index just past the empty line.
/// Accepts CRLF CRLF, and bare LF LF from lenient peers.
pub(crate) fn header_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Parses a message from `buf` (RFC 3261 §7). Leading CRLFs are skipped
/// (§7.5). With [`Framing::Datagram`] bytes past Content-Length are ignored
/// (RFC 4475 §3.1.1.8) and a missing Content-Length means "rest of the
/// datagram"; with [`Framing::Stream`] Content-Length is required.
///
/// Besides framing and the start line, the headers a transaction needs are
/// checked against their grammar (Via, From, To, Call-ID, CSeq,
/// Max-Forwards, Contact, Route, Record-Route), so a message that parses is
/// safe to route.
pub fn parse(buf: &Bytes, framing: Framing) -> Result<Message, ParseError> {
    if buf.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    let start = buf
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .unwrap_or(buf.len());
    let data = &buf[start..];
    let end = header_end(data).ok_or(ParseError::Incomplete)?;
    let head = std::str::from_utf8(&data[..end]).map_err(|_| ParseError::NotUtf8)?;
    let mut lines = unfold(head).into_iter();
    let first = lines.next().ok_or(ParseError::Incomplete)?;
    let mut headers = Headers::new();
    for line in lines {
        let colon = line.find(':').ok_or(ParseError::HeaderLine)?;
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if !crate::lex::is_token(name) {
            return Err(ParseError::HeaderLine);
        }
        let value = crate::lex::trim_lws(&line[colon + 1..]);
        headers.push(Name::parse(name), value);
    }
    let body = body(buf, start + end, &headers, framing)?;
    check_headers(&headers)?;
    if let Some(rest) = first.strip_prefix("SIP/") {
        parse_status_line(rest, headers, body).map(Message::Response)
    } else {
        parse_request_line(&first, headers, body).map(Message::Request)
    }
}

/// Splits the header section into lines, joining folded lines with one SP
/// (RFC 3261 §7.3.1).
fn unfold(head: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(16);
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(prev) = out.last_mut() {
                prev.push(' ');
                prev.push_str(line.trim_start_matches([' ', '\t']));
                continue;
            }
        }
        out.push(line.to_owned());
    }
    out
}

fn body(buf: &Bytes, at: usize, headers: &Headers, framing: Framing) -> Result<Bytes, ParseError> {
    let mut len: Option<usize> = None;
    for v in headers.get_all(&Name::ContentLength) {
        let v = v.trim();
        if v.is_empty() || v.len() > 9 || !v.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::Framing("Content-Length is not a number"));
        }
        let n: usize = v
            .parse()
            .map_err(|_| ParseError::Framing("bad Content-Length"))?;
        if len.is_some_and(|l| l != n) {
            return Err(ParseError::Framing("conflicting Content-Length values"));
        }
        len = Some(n);
    }
    let avail = buf.len() - at;
    match (len, framing) {
        (Some(n), _) if n > avail => Err(ParseError::Framing("Content-Length exceeds the data")),
        (Some(n), _) => Ok(buf.slice(at..at + n)),
        (None, Framing::Datagram) => Ok(buf.slice(at..)),
        (None, Framing::Stream) => Err(ParseError::Framing("Content-Length required on a stream")),
    }
}

fn parse_version(s: &str) -> Result<Version, ParseError> {
    let err = ParseError::StartLine("bad SIP version");
    let rest = s.strip_prefix("SIP/").ok_or(err.clone())?;
    let (a, b) = rest.split_once('.').ok_or(err.clone())?;
    match (a.parse(), b.parse()) {
        (Ok(a), Ok(b)) if a < 10 && b < 10 => Ok(Version(a, b)),
        _ => Err(err),
    }
}

fn parse_request_line(line: &str, headers: Headers, body: Bytes) -> Result<Request, ParseError> {
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly two
    // single spaces (RFC 4475 §3.1.2.8-10: LWS in the URI, extra or trailing
    // spaces are rejected).
    let mut parts = line.split(' ');
    let (Some(m), Some(u), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine(
            "Request-Line is not 'METHOD URI SIP/2.0'",
        ));
    };
    if !crate::lex::is_token(m) {
        return Err(ParseError::StartLine("bad method"));
    }
    let uri = Uri::parse(u)?;
    if uri.sip().is_some_and(|s| !s.headers.is_empty()) {
        // RFC 4475 §3.1.2.11: headers are not allowed in a Request-URI.
        return Err(ParseError::Uri("headers in Request-URI"));
    }
    let version = parse_version(v)?;
    Ok(Request {
        method: Method::from_token(m),
        uri,
        version,
        headers,
        body,
    })
}

fn parse_status_line(rest: &str, headers: Headers, body: Bytes) -> Result<Response, ParseError> {
    let (ver, rest) = rest
        .split_once(' ')
        .ok_or(ParseError::StartLine("no status code"))?;
    if ver != "2.0" {
        return Err(ParseError::StartLine("unsupported SIP version in response"));
    }
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ParseError::StartLine("status code is not 3 digits"));
    }
    let code: u16 = code
        .parse()
        .map_err(|_| ParseError::StartLine("bad status code"))?;
    if !(100..=699).contains(&code) {
        return Err(ParseError::StartLine("status code out of range"));
    }
    Ok(Response {
        code,
        reason: reason.to_owned(),
        headers,
        body,
    })
}

/// Grammar checks of the headers every element relies on.
fn check_headers(headers: &Headers) -> Result<(), ParseError> {
    for h in headers {
        let v = h.value.as_str();
        match h.name {
            Name::Via => {
                for part in
                    crate::lex::split_commas(v).ok_or(ParseError::header("Via", "unbalanced"))?
                {
                    Via::parse(part)?;
                }
            }
            Name::From => drop(NameAddr::parse(v, "From")?),
            Name::To => drop(NameAddr::parse(v, "To")?),
            Name::Contact if v.trim() != "*" => {
                drop(typed::parse_name_addrs(std::iter::once(v), "Contact")?)
            }
            Name::Route => drop(typed::parse_name_addrs(std::iter::once(v), "Route")?),
            Name::RecordRoute => drop(typed::parse_name_addrs(std::iter::once(v), "Record-Route")?),
            Name::CSeq => drop(CSeq::parse(v)?),
            Name::CallId => typed::check_call_id(v)?,
            Name::MaxForwards => {
                typed::parse_u32(v)
                    .filter(|&n| n <= 255)
                    .ok_or(ParseError::header("Max-Forwards", "not 0..255"))?;
            }
            Name::Expires => {
                typed::parse_delta_seconds(v)
                    .ok_or(ParseError::header("Expires", "not delta-seconds"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Builds a response to `req` (RFC 3261 §8.2.6.2): copies Via, From, To,
/// Call-ID and CSeq, and adds `to_tag` to To if To has no tag yet.
pub fn response_to(req: &Request, code: u16, to_tag: Option<&str>) -> Response {
    let mut r = Response::new(code);
    r.headers.copy_from(&req.headers, &Name::Via);
    r.headers.copy_from(&req.headers, &Name::From);
    // A request without To (RFC 4475 insuf.dat) gets a response without
    // one rather than an empty, unparseable To.
    if let Some(to) = req.headers.get(&Name::To) {
        match to_tag {
            Some(tag) if code > 100 && !has_tag(to) => {
                r.headers.push(Name::To, format!("{to};tag={tag}"))
            }
            _ => r.headers.push(Name::To, to),
        }
    }
    r.headers.copy_from(&req.headers, &Name::CallId);
    r.headers.copy_from(&req.headers, &Name::CSeq);
    r
}

fn has_tag(to: &str) -> bool {
    NameAddr::parse(to, "To").is_ok_and(|a| a.tag().is_some())
}

/// Finds the Call-ID value in raw message bytes without parsing the whole
/// message (used to pick a shard before parsing). Handles the compact form.
pub fn peek_call_id(data: &[u8]) -> Option<&str> {
    let end = header_end(data).unwrap_or(data.len());
    for line in data[..end].split(|&c| c == b'\n') {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            return std::str::from_utf8(line[colon + 1..].trim_ascii()).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\n\
        To: Bob <sip:bob@example.com>\r\n\
        From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33.example.com\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@10.0.0.1>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\nEXTRA";

    #[test]
    fn round_trip() {
        let m = parse(&Bytes::from_static(INVITE.as_bytes()), Framing::Datagram).unwrap();
        let Message::Request(r) = m else { panic!() };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(&r.body[..], b"v=0\n");
        assert_eq!(r.cseq().unwrap().seq, 314159);
        assert_eq!(r.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(r.max_forwards(), Some(70));
        let again = parse(&Bytes::from(r.to_bytes()), Framing::Stream).unwrap();
        assert_eq!(again, Message::Request(r));
    }

    #[test]
    fn status_lines() {
        let ok = |s: &str| {
            parse(
                &Bytes::from(format!("{s}\r\nContent-Length: 0\r\n\r\n")),
                Framing::Datagram,
            )
        };
        assert!(ok("SIP/2.0 100 ").is_ok());
        assert!(ok("SIP/2.0 200 OK").is_ok());
        assert!(ok("SIP/2.0 4294967301 Huge").is_err());
        assert!(ok("SIP/2.0 099 Low").is_err());
        assert!(ok("SIP/3.0 200 OK").is_err());
    }

    #[test]
    fn never_panics_on_prefixes() {
        for i in 0..INVITE.len() {
            let _ = parse(
                &Bytes::copy_from_slice(&INVITE.as_bytes()[..i]),
                Framing::Datagram,
            );
            let _ = parse(
                &Bytes::copy_from_slice(&INVITE.as_bytes()[i..]),
                Framing::Stream,
            );
        }
    }
}
