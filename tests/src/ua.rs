//! A small test user agent: the `sip` crate's transaction endpoint driven
//! over a real UDP socket, with helpers to register (with digest), call,
//! answer and hang up.

use bytes::Bytes;
use sip::auth::{respond, Challenge};
use sip::transaction::{new_branch, new_tag, Endpoint, Event, Peer, Timers, Transport, TxId};
use sip::{Host, Method, Name, NameAddr, Request, Response, SipMessage, SipUri, Uri, Via};
use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A UA bound to `ip` on a free port.
pub struct Ua {
    sock: UdpSocket,
    ep: Endpoint,
    /// The switch.
    pub switch: SocketAddr,
    /// Our address.
    pub local: SocketAddr,
    requests: VecDeque<(Option<TxId>, Request, Peer)>,
    responses: VecDeque<(TxId, Response)>,
    timeouts: Vec<TxId>,
    seq: u32,
}

/// An SDP offer/answer body with a given audio port.
pub fn sdp(port: u16) -> Bytes {
    Bytes::from(format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    ))
}

impl Ua {
    /// Binds a UDP socket on `ip`, port chosen by the OS.
    pub fn new(ip: &str, switch: SocketAddr) -> Ua {
        let sock = UdpSocket::bind(format!("{ip}:0")).expect("bind ua");
        let local = sock.local_addr().unwrap();
        let t = Timers {
            t1: Duration::from_millis(200),
            ..Timers::default()
        };
        let mut ep = Endpoint::new(t, "test-ua");
        // Like a phone: REFER progress comes as message/sipfrag (RFC 3515),
        // DTMF in INFO as application/dtmf-relay.
        ep.set_policy(sip::validate::UasPolicy {
            accept: &[
                "application/sdp",
                "message/sipfrag",
                "application/dtmf-relay",
                "application/dtmf",
            ],
            ..Default::default()
        });
        Ua {
            sock,
            ep,
            switch,
            local,
            requests: VecDeque::new(),
            responses: VecDeque::new(),
            timeouts: Vec::new(),
            seq: 0,
        }
    }

    fn peer(&self) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: self.switch,
        }
    }

    fn via(&self) -> Via {
        Via::new(
            "UDP",
            Host::Ip(self.local.ip()),
            Some(self.local.port()),
            &new_branch(),
        )
    }

    /// A request out of dialog: `method` to `uri`, From `from_user`.
    pub fn new_request(&mut self, method: Method, uri: &str, from_user: &str, to: &str) -> Request {
        self.seq += 1;
        let mut r = Request::new(method.clone(), Uri::parse(uri).expect("uri"));
        r.headers.push(Name::Via, self.via().to_string());
        r.headers.push(Name::MaxForwards, "70");
        r.headers.push(
            Name::From,
            format!("<sip:{from_user}@{}>;tag={}", self.local.ip(), new_tag()),
        );
        r.headers.push(Name::To, format!("<{to}>"));
        r.headers.push(Name::CallId, format!("{}@test", new_tag()));
        r.headers.push(Name::CSeq, format!("{} {method}", self.seq));
        r.headers
            .push(Name::Contact, format!("<sip:{from_user}@{}>", self.local));
        r
    }

    /// Sends a request in a client transaction.
    pub fn send(&mut self, req: Request) -> TxId {
        let p = self.peer();
        let tx = self.ep.send_request(Instant::now(), p, req);
        self.flush();
        tx
    }

    /// Sends raw bytes to the switch.
    pub fn send_raw(&self, data: &[u8]) {
        self.sock.send_to(data, self.switch).unwrap();
    }

    /// Receives one raw datagram (bypassing the endpoint).
    pub fn recv_raw(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = vec![0u8; 65535];
        self.sock
            .recv_from(&mut buf)
            .ok()
            .map(|(n, _)| buf[..n].to_vec())
    }

    fn flush(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            let _ = self.sock.send_to(&t.data, t.peer.addr);
        }
        while let Some(ev) = self.ep.poll_event() {
            match ev {
                Event::Request { tx, req, peer } => self.requests.push_back((tx, req, peer)),
                Event::Response { tx, resp } => self.responses.push_back((tx, resp)),
                Event::Cancelled { invite } => {
                    let req = self.ep.request(invite).cloned();
                    if let Some(req) = req {
                        let mut c = req.clone();
                        c.method = Method::Cancel;
                        self.requests.push_back((Some(invite), c, self.peer()));
                    }
                }
                Event::Timeout { tx } => self.timeouts.push(tx),
            }
        }
    }

    /// Runs the endpoint for up to `d` (or until a message arrives).
    fn pump(&mut self, d: Duration) {
        let now = Instant::now();
        let wait = self
            .ep
            .poll_timeout()
            .map_or(d, |t| t.saturating_duration_since(now).min(d));
        self.sock
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = vec![0u8; 65535];
        if let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            let peer = Peer {
                transport: Transport::Udp,
                addr: from,
            };
            self.ep
                .handle_input(Instant::now(), peer, Bytes::copy_from_slice(&buf[..n]));
        }
        self.ep.handle_timeout(Instant::now());
        self.flush();
    }

    /// Waits for the next response on `tx`.
    pub fn response(&mut self, tx: TxId, timeout: Duration) -> Option<Response> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.responses.iter().position(|(t, _)| *t == tx) {
                return self.responses.remove(i).map(|(_, r)| r);
            }
            if self.timeouts.contains(&tx) {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.pump(left.min(Duration::from_millis(50)));
        }
    }

    /// Waits for the final response on `tx`, returning every response seen.
    pub fn final_response(&mut self, tx: TxId, timeout: Duration) -> Vec<Response> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(r) = self.response(tx, deadline.saturating_duration_since(Instant::now())) {
            let done = r.code >= 200;
            seen.push(r);
            if done {
                break;
            }
        }
        seen
    }

    /// Waits for an incoming request.
    pub fn request(&mut self, timeout: Duration) -> Option<(Option<TxId>, Request)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((tx, r, _)) = self.requests.pop_front() {
                return Some((tx, r));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.pump(left.min(Duration::from_millis(50)));
        }
    }

    /// Answers server transaction `tx`.
    pub fn respond(&mut self, tx: TxId, resp: Response) {
        self.ep.respond(Instant::now(), tx, resp);
        self.flush();
    }

    /// Sends an ACK for a 2xx on `tx` built from the dialog fields.
    pub fn ack(&mut self, tx: TxId, invite: &Request, ok: &Response) {
        self.ack_with(tx, invite, ok, Bytes::new());
    }

    /// Sends an ACK for a 2xx on `tx` carrying `sdp` (the answer to an
    /// offer in the 2xx, for an INVITE sent without one); empty: no body.
    pub fn ack_with(&mut self, tx: TxId, invite: &Request, ok: &Response, sdp: Bytes) {
        let mut d = sip::dialog::Dialog::uac(invite, ok).expect("dialog");
        let mut ack = d.request(Method::Ack, &self.via(), 70);
        if !sdp.is_empty() {
            ack.headers.push(Name::ContentType, "application/sdp");
            ack.body = sdp;
        }
        let p = self.peer();
        self.ep.ack_2xx(tx, p, &ack);
        self.flush();
    }

    /// OPTIONS to the switch; the final status code.
    pub fn options(&mut self, timeout: Duration) -> Option<u16> {
        let sw = self.switch;
        let r = self.new_request(
            Method::Options,
            &format!("sip:{sw}"),
            "probe",
            &format!("sip:{sw}"),
        );
        let tx = self.send(r);
        self.final_response(tx, timeout).last().map(|r| r.code)
    }

    /// REGISTER `user` with `password` (answering one 401 challenge);
    /// returns the final response.
    pub fn register(&mut self, user: &str, password: &str, expires: u32) -> Option<Response> {
        let sw = self.switch;
        let aor = format!("sip:{user}@{}", sw.ip());
        let mut req = self.new_request(Method::Register, &format!("sip:{}", sw.ip()), user, &aor);
        req.headers
            .set(Name::From, format!("<{aor}>;tag={}", new_tag()));
        req.headers.push(Name::Expires, expires.to_string());
        let tx = self.send(req.clone());
        let first = self.final_response(tx, Duration::from_secs(5)).pop()?;
        if first.code != 401 {
            return Some(first);
        }
        let ch = first
            .headers
            .get_all(&Name::WwwAuthenticate)
            .find_map(|v| Challenge::parse(v).ok())?;
        let creds = respond(
            &ch,
            "REGISTER",
            &req.uri.to_string(),
            user,
            password,
            &new_tag(),
            1,
        );
        self.seq += 1;
        req.headers
            .set(Name::CSeq, format!("{} REGISTER", self.seq));
        req.headers.set(Name::Via, self.via().to_string());
        req.headers
            .push(Name::Authorization, creds.to_header_value());
        let tx = self.send(req);
        self.final_response(tx, Duration::from_secs(5)).pop()
    }

    /// An INVITE to `number` at the switch with an SDP offer.
    pub fn invite(&mut self, from_user: &str, number: &str) -> Request {
        let sw = self.switch;
        let uri = format!("sip:{number}@{sw}");
        let mut r = self.new_request(Method::Invite, &uri, from_user, &uri);
        r.headers.push(Name::ContentType, "application/sdp");
        r.body = sdp(40000);
        r
    }

    /// Adds Proxy-Authorization answering the 407 `challenge` to a copy of
    /// `req` with a new branch and CSeq.
    pub fn with_proxy_auth(
        &mut self,
        req: &Request,
        challenge: &Response,
        user: &str,
        password: &str,
    ) -> Request {
        let ch = challenge
            .headers
            .get_all(&Name::ProxyAuthenticate)
            .find_map(|v| Challenge::parse(v).ok())
            .expect("challenge");
        let creds = respond(
            &ch,
            req.method.as_str(),
            &req.uri.to_string(),
            user,
            password,
            &new_tag(),
            1,
        );
        let mut r = req.clone();
        self.seq += 1;
        r.headers
            .set(Name::CSeq, format!("{} {}", self.seq, req.method));
        r.headers.set(Name::Via, self.via().to_string());
        r.headers
            .push(Name::ProxyAuthorization, creds.to_header_value());
        r
    }

    /// A CANCEL for a pending INVITE (§9.1).
    pub fn cancel_for(&self, invite: &Request) -> Request {
        let mut c = Request::new(Method::Cancel, invite.uri.clone());
        c.headers.copy_from(&invite.headers, &Name::Via);
        c.headers.push(Name::MaxForwards, "70");
        c.headers.copy_from(&invite.headers, &Name::From);
        c.headers.copy_from(&invite.headers, &Name::To);
        c.headers.copy_from(&invite.headers, &Name::CallId);
        c.headers
            .push(Name::CSeq, format!("{} CANCEL", invite.cseq().unwrap().seq));
        c
    }

    /// A request in dialog `d` (as either side), with a fresh Via.
    pub fn in_dialog(&self, d: &mut sip::dialog::Dialog, method: Method) -> Request {
        d.request(method, &self.via(), 70)
    }

    /// A BYE in the dialog established by `invite` / `ok`.
    pub fn bye(&mut self, invite: &Request, ok: &Response) -> Request {
        let mut d = sip::dialog::Dialog::uac(invite, ok).expect("dialog");
        d.request(Method::Bye, &self.via(), 70)
    }

    /// A response to `req` with our Contact (and an SDP answer for 2xx to
    /// INVITE).
    pub fn answer(&self, req: &Request, code: u16, tag: &str) -> Response {
        let mut r = sip::response_to(req, code, Some(tag));
        let mut c = NameAddr::new(Uri::Sip(SipUri::new(
            Some("callee"),
            Host::Ip(self.local.ip()),
            Some(self.local.port()),
        )));
        c.params.clear();
        r.headers.push(Name::Contact, c.to_string());
        if code == 200 && req.method == Method::Invite {
            r.headers.push(Name::ContentType, "application/sdp");
            r.body = sdp(40002);
        }
        r
    }
}

/// A BYE from the callee side of the dialog `inv` started (our To tag `tag`).
pub fn bye_as_callee(ua: &mut Ua, inv: &sip::Request, tag: &str) -> sip::transaction::TxId {
    let mut d = sip::dialog::Dialog::uas(inv, tag).unwrap();
    let bye = ua.in_dialog(&mut d, sip::Method::Bye);
    ua.send(bye)
}
