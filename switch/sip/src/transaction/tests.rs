use super::*;
use crate::{Host, SipUri, Uri, Via};

fn peer(t: Transport, port: u16) -> Peer {
    Peer {
        transport: t,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

fn request(method: Method, t: Transport) -> Request {
    let mut r = Request::new(
        method.clone(),
        Uri::Sip(SipUri::new(
            Some("bob"),
            Host::Domain("b.example".into()),
            None,
        )),
    );
    let via = Via::new(
        t.as_str(),
        Host::Ip([127, 0, 0, 1].into()),
        Some(5080),
        &new_branch(),
    );
    r.headers.push(Name::Via, via.to_string());
    r.headers.push(Name::MaxForwards, "70");
    r.headers.push(Name::From, "<sip:alice@a.example>;tag=ft");
    r.headers.push(Name::To, "<sip:bob@b.example>");
    r.headers.push(Name::CallId, format!("call-{}", new_tag()));
    r.headers.push(Name::CSeq, format!("1 {method}"));
    r.headers.push(Name::Contact, "<sip:alice@127.0.0.1:5080>");
    r
}

/// Two endpoints wired back to back in memory (quinn's `Pair` idea).
struct Pair {
    now: Instant,
    uac: Endpoint,
    uas: Endpoint,
    uac_peer: Peer,
    uas_peer: Peer,
    /// Drop the next n messages the UAS sends (simulated loss).
    drop_from_uas: usize,
    sent_by_uac: usize,
}

impl Pair {
    fn new(t: Transport) -> Pair {
        Pair {
            now: Instant::now(),
            uac: Endpoint::new(Timers::default(), "uac"),
            uas: Endpoint::new(Timers::default(), "uas"),
            uac_peer: peer(t, 5080),
            uas_peer: peer(t, 5060),
            drop_from_uas: 0,
            sent_by_uac: 0,
        }
    }

    fn drive(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.uac.poll_transmit() {
                self.sent_by_uac += 1;
                self.uas.handle_input(self.now, self.uac_peer, t.data);
                moved = true;
            }
            while let Some(t) = self.uas.poll_transmit() {
                moved = true;
                if self.drop_from_uas > 0 {
                    self.drop_from_uas -= 1;
                    continue;
                }
                self.uac.handle_input(self.now, self.uas_peer, t.data);
            }
            if !moved {
                break;
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.uac.poll_timeout(), self.uas.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = t;
                    self.uac.handle_timeout(t);
                    self.uas.handle_timeout(t);
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
    }
}

fn events(e: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

#[test]
fn invite_200_ack_over_udp() {
    let mut p = Pair::new(Transport::Udp);
    let inv = request(Method::Invite, Transport::Udp);
    let ctx = p.uac.send_request(p.now, p.uas_peer, inv);
    p.drive();
    let ev = events(&mut p.uas);
    let Some(Event::Request { tx: Some(stx), .. }) = ev.first().cloned() else {
        panic!("{ev:?}")
    };
    // 100 Trying arrived at the UAC.
    assert!(
        matches!(events(&mut p.uac).as_slice(), [Event::Response { resp, .. }] if resp.code == 100)
    );
    let req = p.uas.request(stx).unwrap().clone();
    let ok = response_to(&req, 200, Some("tt"));
    // Lose the first 200: the UAS retransmits it after T1.
    p.drop_from_uas = 1;
    p.uas.respond(p.now, stx, ok);
    p.drive();
    assert!(events(&mut p.uac).is_empty());
    p.advance(Duration::from_millis(500));
    let ev = events(&mut p.uac);
    let [Event::Response { tx, resp }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!((*tx, resp.code), (ctx, 200));
    let mut ack = ack_for(&p.uac.txs[&ctx].request, resp);
    ack.headers.remove(&Name::Via);
    ack.headers.push_front(
        Name::Via,
        Via::new(
            "UDP",
            Host::Ip([127, 0, 0, 1].into()),
            Some(5080),
            &new_branch(),
        )
        .to_string(),
    );
    let uas_peer = p.uas_peer;
    p.uac.ack_2xx(ctx, uas_peer, &ack);
    p.drive();
    assert!(
        matches!(events(&mut p.uas).as_slice(), [Event::Request { tx: None, req, .. }] if req.method == Method::Ack)
    );
    // No more 2xx retransmissions after the ACK, no timeout event.
    let before = p.uas.stats().retransmissions;
    p.advance(Duration::from_secs(40));
    assert_eq!(p.uas.stats().retransmissions, before);
    assert!(events(&mut p.uas).is_empty());
    assert_eq!(p.uas.transaction_count(), 0);
    assert_eq!(p.uac.transaction_count(), 0);
}

#[test]
fn invite_486_is_acked_by_the_layer() {
    let mut p = Pair::new(Transport::Udp);
    let ctx = p
        .uac
        .send_request(p.now, p.uas_peer, request(Method::Invite, Transport::Udp));
    p.drive();
    let Some(Event::Request {
        tx: Some(stx), req, ..
    }) = events(&mut p.uas).pop()
    else {
        panic!()
    };
    p.uas
        .respond(p.now, stx, response_to(&req, 486, Some("tt")));
    p.drive();
    let ev = events(&mut p.uac);
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Response { tx, resp } if *tx == ctx && resp.code == 486)));
    // The ACK matched the server transaction: no event, no retransmits.
    assert!(events(&mut p.uas).is_empty());
    let before = p.uas.stats().retransmissions;
    p.advance(Duration::from_secs(40));
    assert_eq!(p.uas.stats().retransmissions, before);
    assert_eq!(p.uas.transaction_count() + p.uac.transaction_count(), 0);
}

#[test]
fn timer_a_doubles_and_timer_b_times_out() {
    let mut e = Endpoint::new(Timers::default(), "t");
    let t0 = Instant::now();
    let id = e.send_request(
        t0,
        peer(Transport::Udp, 5060),
        request(Method::Invite, Transport::Udp),
    );
    let mut sends = vec![t0];
    e.poll_transmit();
    while let Some(at) = e.poll_timeout() {
        e.handle_timeout(at);
        if e.poll_transmit().is_some() {
            sends.push(at);
        }
    }
    let gaps: Vec<u64> = sends
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect();
    assert_eq!(gaps, vec![500, 1000, 2000, 4000, 8000, 16000]);
    assert!(matches!(e.poll_event(), Some(Event::Timeout { tx }) if tx == id));
}

#[test]
fn reliable_transport_does_not_retransmit() {
    let mut e = Endpoint::new(Timers::default(), "t");
    let t0 = Instant::now();
    e.send_request(
        t0,
        peer(Transport::Tcp, 5060),
        request(Method::Options, Transport::Tcp),
    );
    assert!(e.poll_transmit().is_some());
    let at = e.poll_timeout().unwrap();
    assert_eq!(at - t0, Duration::from_secs(32));
    e.handle_timeout(at);
    assert!(e.poll_transmit().is_none());
    assert!(matches!(e.poll_event(), Some(Event::Timeout { .. })));
}

#[test]
fn non_invite_retransmissions_cap_at_t2() {
    let mut e = Endpoint::new(Timers::default(), "t");
    let t0 = Instant::now();
    e.send_request(
        t0,
        peer(Transport::Udp, 5060),
        request(Method::Options, Transport::Udp),
    );
    e.poll_transmit();
    let mut last = t0;
    let mut gaps = Vec::new();
    while let Some(at) = e.poll_timeout() {
        e.handle_timeout(at);
        if e.poll_transmit().is_some() {
            gaps.push((at - last).as_millis() as u64);
            last = at;
        }
    }
    assert_eq!(&gaps[..5], &[500, 1000, 2000, 4000, 4000]);
}

#[test]
fn cancel_answers_200_and_reports() {
    let mut p = Pair::new(Transport::Udp);
    let inv = request(Method::Invite, Transport::Udp);
    let mut cancel = inv.clone();
    cancel.method = Method::Cancel;
    cancel.headers.set(Name::CSeq, "1 CANCEL");
    p.uac.send_request(p.now, p.uas_peer, inv);
    p.drive();
    let Some(Event::Request { tx: Some(stx), .. }) = events(&mut p.uas).pop() else {
        panic!()
    };
    let ctx = p.uac.send_request(p.now, p.uas_peer, cancel.clone());
    p.drive();
    assert!(
        matches!(events(&mut p.uas).as_slice(), [Event::Cancelled { invite }] if *invite == stx)
    );
    assert!(events(&mut p.uac)
        .iter()
        .any(|e| matches!(e, Event::Response { tx, resp } if *tx == ctx && resp.code == 200)));
    // A CANCEL for an unknown INVITE gets 481.
    let mut stray = cancel;
    stray.headers.set(
        Name::Via,
        Via::new(
            "UDP",
            Host::Ip([127, 0, 0, 1].into()),
            Some(5080),
            &new_branch(),
        )
        .to_string(),
    );
    let ctx = p.uac.send_request(p.now, p.uas_peer, stray);
    p.drive();
    assert!(events(&mut p.uac)
        .iter()
        .any(|e| matches!(e, Event::Response { tx, resp } if *tx == ctx && resp.code == 481)));
}

#[test]
fn retransmitted_request_gets_last_response() {
    let mut e = Endpoint::new(Timers::default(), "t");
    let now = Instant::now();
    let src = peer(Transport::Udp, 5080);
    let req = request(Method::Options, Transport::Udp);
    let wire = Bytes::from(req.to_bytes());
    e.handle_input(now, src, wire.clone());
    let Some(Event::Request {
        tx: Some(tx), req, ..
    }) = e.poll_event()
    else {
        panic!()
    };
    e.respond(now, tx, response_to(&req, 200, Some("x")));
    let first = e.poll_transmit().unwrap();
    e.handle_input(now, src, wire);
    assert_eq!(e.poll_transmit().unwrap().data, first.data);
    assert!(e.poll_event().is_none());
}

#[test]
fn malformed_request_gets_400_and_responses_are_dropped() {
    let mut e = Endpoint::new(Timers::default(), "t");
    let now = Instant::now();
    let src = peer(Transport::Udp, 5080);
    let bad = "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 99999999999 INVITE\r\n\r\n";
    e.handle_input(now, src, Bytes::from(bad));
    let t = e.poll_transmit().unwrap();
    assert!(t.data.starts_with(b"SIP/2.0 400 "));
    e.handle_input(now, src, Bytes::from("SIP/2.0 4294967301 Huge\r\n\r\n"));
    assert!(e.poll_transmit().is_none());
    assert_eq!(e.stats().parse_errors, 2);
}

#[test]
fn rejected_requests_get_their_code() {
    let mut e = Endpoint::new(Timers::default(), "t");
    let now = Instant::now();
    let mut r = request(Method::Invite, Transport::Udp);
    r.headers.push(Name::Require, "nothingweknow");
    e.handle_input(now, peer(Transport::Udp, 5080), Bytes::from(r.to_bytes()));
    let t = e.poll_transmit().unwrap();
    assert!(t.data.starts_with(b"SIP/2.0 420 "));
    assert!(String::from_utf8_lossy(&t.data).contains("Unsupported: nothingweknow"));
    assert!(e.poll_event().is_none());
}
