//! Dialogs (RFC 3261 §12): the state that in-dialog requests are built
//! from and checked against.

use crate::error::ParseError;
use crate::header::Name;
use crate::message::{Request, Response, SipMessage};
use crate::method::Method;
use crate::typed::{Contacts, NameAddr, Via};
use crate::uri::Uri;

/// Identifies a dialog from our side: Call-ID, local tag, remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// A confirmed or early dialog (§12.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID, local and remote tags.
    pub id: DialogId,
    /// Our URI (From of our requests), with our tag.
    pub local: NameAddr,
    /// The peer's URI (To of our requests), with its tag.
    pub remote: NameAddr,
    /// The last CSeq number we used.
    pub local_seq: u32,
    /// The highest CSeq number the peer used, if any.
    pub remote_seq: Option<u32>,
    /// Where in-dialog requests go: the peer's Contact.
    pub remote_target: Uri,
    /// Route set, in the order our requests carry it.
    pub route_set: Vec<NameAddr>,
}

/// Why an in-dialog request was refused (§12.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogError {
    /// The request or response lacks what a dialog needs.
    Malformed(ParseError),
    /// CSeq lower than a previous request's: answer 500.
    OutOfOrder,
}

impl From<ParseError> for DialogError {
    fn from(e: ParseError) -> Self {
        DialogError::Malformed(e)
    }
}

fn first_contact(m: &impl SipMessage) -> Result<Uri, ParseError> {
    match m.contacts()? {
        Contacts::List(l) if !l.is_empty() => Ok(l[0].uri.clone()),
        _ => Err(ParseError::header("Contact", "missing")),
    }
}

impl Dialog {
    /// The UAC's dialog from our INVITE and a 1xx-with-tag or 2xx
    /// (§12.1.2): route set is the response's Record-Route reversed.
    pub fn uac(invite: &Request, resp: &Response) -> Result<Dialog, ParseError> {
        let local = invite.from()?;
        let remote = resp.to()?;
        let mut route_set = resp.record_route()?;
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id().unwrap_or("").to_owned(),
                local_tag: local.tag().unwrap_or("").to_owned(),
                remote_tag: remote.tag().unwrap_or("").to_owned(),
            },
            local,
            remote,
            local_seq: invite.cseq()?.seq,
            remote_seq: None,
            remote_target: first_contact(resp)?,
            route_set,
        })
    }

    /// The UAS's dialog from a received INVITE and our tag (§12.1.1):
    /// route set is the request's Record-Route in order.
    pub fn uas(invite: &Request, local_tag: &str) -> Result<Dialog, ParseError> {
        let mut local = invite.to()?;
        local.set_param("tag", Some(local_tag));
        let remote = invite.from()?;
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id().unwrap_or("").to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag: remote.tag().unwrap_or("").to_owned(),
            },
            local,
            remote,
            local_seq: rand::random::<u16>() as u32 + 1,
            remote_seq: Some(invite.cseq()?.seq),
            remote_target: first_contact(invite)?,
            route_set: invite.record_route()?,
        })
    }

    /// Builds an in-dialog request (§12.2.1.1). CSeq is incremented except
    /// for ACK (which reuses `local_seq`, the INVITE's) and CANCEL.
    pub fn request(&mut self, method: Method, via: &Via, max_forwards: u8) -> Request {
        if !matches!(method, Method::Ack | Method::Cancel) {
            self.local_seq += 1;
        }
        let mut r = Request::new(method.clone(), self.remote_target.clone());
        r.headers.push(Name::Via, via.to_string());
        r.headers.push(Name::MaxForwards, max_forwards.to_string());
        r.headers.push(Name::From, self.local.to_string());
        r.headers.push(Name::To, self.remote.to_string());
        r.headers.push(Name::CallId, self.id.call_id.clone());
        r.headers
            .push(Name::CSeq, format!("{} {}", self.local_seq, method));
        for route in &self.route_set {
            r.headers.push(Name::Route, route.to_string());
        }
        r
    }

    /// Checks and records a request received in this dialog (§12.2.2):
    /// CSeq must not go backwards (ACK and CANCEL excepted); a target
    /// refresh (re-INVITE, UPDATE) updates the remote target.
    pub fn on_request(&mut self, req: &Request) -> Result<(), DialogError> {
        let seq = req.cseq()?.seq;
        if !matches!(req.method, Method::Ack | Method::Cancel) {
            if self.remote_seq.is_some_and(|r| seq <= r) {
                return Err(DialogError::OutOfOrder);
            }
            self.remote_seq = Some(seq);
        }
        if matches!(req.method, Method::Invite | Method::Update) {
            if let Ok(target) = first_contact(req) {
                self.remote_target = target;
            }
        }
        Ok(())
    }

    /// True if `req` belongs to this dialog (Call-ID and both tags).
    pub fn matches(&self, req: &Request) -> bool {
        req.call_id() == Some(self.id.call_id.as_str())
            && req
                .to()
                .ok()
                .and_then(|t| t.tag().map(str::to_owned))
                .as_deref()
                == Some(self.id.local_tag.as_str())
            && req
                .from()
                .ok()
                .and_then(|f| f.tag().map(str::to_owned))
                .as_deref()
                == Some(self.id.remote_tag.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, response_to, Framing, Message};
    use bytes::Bytes;

    fn invite() -> Request {
        let raw = "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n\
            From: <sip:alice@a.example>;tag=ft\r\nTo: <sip:bob@b.example>\r\nCall-ID: c1\r\n\
            CSeq: 10 INVITE\r\nContact: <sip:alice@10.0.0.1>\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\n\
            Content-Length: 0\r\n\r\n";
        match parse(&Bytes::from(raw), Framing::Datagram).unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn uac_and_uas_views_agree() {
        let inv = invite();
        let mut uas = Dialog::uas(&inv, "tt").unwrap();
        assert_eq!(uas.route_set.len(), 2);
        let mut ok = response_to(&inv, 200, Some("tt"));
        ok.headers.push(Name::Contact, "<sip:bob@10.0.0.2>");
        ok.headers.copy_from(&inv.headers, &Name::RecordRoute);
        let mut uac = Dialog::uac(&inv, &ok).unwrap();
        assert_eq!(uac.id.remote_tag, "tt");
        assert_eq!(uac.route_set[0].uri.to_string(), "sip:p2;lr");
        let via = Via::new(
            "UDP",
            crate::Host::Domain("a.example".into()),
            None,
            "z9hG4bK2",
        );
        let bye = uac.request(Method::Bye, &via, 70);
        assert_eq!(bye.cseq().unwrap().seq, 11);
        assert_eq!(bye.uri.to_string(), "sip:bob@10.0.0.2");
        assert!(uas.matches(&bye));
        uas.on_request(&bye).unwrap();
        assert_eq!(uas.on_request(&bye), Err(DialogError::OutOfOrder));
    }
}
