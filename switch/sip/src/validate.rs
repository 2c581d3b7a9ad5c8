//! UAS request checks of RFC 3261 §8.2, in the order the RFC gives them,
//! each mapped to the response a UAS sends.

use crate::header::Name;
use crate::message::{Request, SipMessage, Version};
use crate::method::Method;
use crate::typed::option_tags;
use crate::uri::Uri;

/// A request the UAS core refuses: the response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Status code.
    pub code: u16,
    /// Reason phrase (more precise than the standard one).
    pub reason: &'static str,
    /// Extra header fields for the response (Unsupported, Accept, ...).
    pub headers: Vec<(Name, String)>,
}

impl Rejection {
    fn new(code: u16, reason: &'static str) -> Self {
        Rejection {
            code,
            reason,
            headers: Vec::new(),
        }
    }
}

/// What this UAS supports.
#[derive(Debug, Clone)]
pub struct UasPolicy {
    /// Option tags we support (for Require, §8.2.2.3).
    pub supported: &'static [&'static str],
    /// Body types we accept (§8.2.3).
    pub accept: &'static [&'static str],
}

impl Default for UasPolicy {
    fn default() -> Self {
        UasPolicy {
            supported: &["100rel", "timer", "path", "outbound", "gruu"],
            // SDP, and DTMF in INFO (application/dtmf-relay, application/dtmf).
            accept: &[
                "application/sdp",
                "application/dtmf-relay",
                "application/dtmf",
            ],
        }
    }
}

/// Checks a request before a UAS processes it (RFC 3261 §8.2.1–§8.2.3 plus
/// the RFC 4475 expectations): version (505), mandatory headers present
/// once (400), known method (501), CSeq method (400), URI scheme (416),
/// Require (420), body type (415), Accept (406).
pub fn check_request(req: &Request, policy: &UasPolicy) -> Result<(), Rejection> {
    if req.version != Version::V2 {
        return Err(Rejection::new(505, "Version Not Supported"));
    }
    for name in [Name::To, Name::From, Name::CallId, Name::CSeq] {
        match req.headers.count(&name) {
            0 => return Err(Rejection::new(400, "Missing Mandatory Header")),
            1 => {}
            _ => return Err(Rejection::new(400, "Duplicated Single-Value Header")),
        }
    }
    if req.headers.count(&Name::MaxForwards) > 1 {
        return Err(Rejection::new(400, "Duplicated Max-Forwards"));
    }
    if req.headers.count(&Name::Via) == 0 {
        return Err(Rejection::new(400, "Missing Via"));
    }
    if let Method::Other(_) = req.method {
        return Err(Rejection::new(501, "Not Implemented"));
    }
    match req.cseq() {
        Ok(c) if c.method == req.method => {}
        Ok(_) => return Err(Rejection::new(400, "CSeq Method Mismatch")),
        Err(_) => return Err(Rejection::new(400, "Bad CSeq")),
    }
    if let Uri::Other { .. } = req.uri {
        return Err(Rejection::new(416, "Unsupported URI Scheme"));
    }
    if !matches!(req.method, Method::Ack | Method::Cancel) {
        let unknown: Vec<&str> = req
            .headers
            .get_all(&Name::Require)
            .flat_map(option_tags)
            .filter(|t| !policy.supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unknown.is_empty() {
            let mut r = Rejection::new(420, "Bad Extension");
            r.headers.push((Name::Unsupported, unknown.join(", ")));
            return Err(r);
        }
    }
    if !req.body.is_empty() {
        let ok = req
            .content_type()
            .is_some_and(|ct| policy.accept.iter().any(|a| a.eq_ignore_ascii_case(&ct)));
        if !ok && req.method != Method::Ack {
            let mut r = Rejection::new(415, "Unsupported Media Type");
            r.headers.push((Name::Accept, policy.accept.join(", ")));
            return Err(r);
        }
    }
    if req.method == Method::Invite {
        let accepts: Vec<String> = req
            .headers
            .get_all(&Name::Accept)
            .flat_map(|v| v.split(','))
            .map(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|t| !t.is_empty())
            .collect();
        let acceptable = |t: &str| {
            t == "*/*"
                || t == "application/*"
                || policy.accept.iter().any(|a| a.eq_ignore_ascii_case(t))
        };
        if !accepts.is_empty() && !accepts.iter().any(|t| acceptable(t)) {
            let mut r = Rejection::new(406, "Not Acceptable");
            r.headers.push((
                Name::Warning,
                "399 switchboard \"only application/sdp\"".into(),
            ));
            return Err(r);
        }
    }
    Ok(())
}
