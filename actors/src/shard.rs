//! A SIP endpoint shard: one [`sip::transaction::Endpoint`] per arbiter.
//! The transport hashes each message's Call-ID to a shard; both legs of a
//! call get Call-IDs of the same shard, so a call never leaves its arbiter.

use crate::call::{Call, CallEvent};
use crate::context::Switch;
use crate::registrar::Register;
use actix::prelude::*;
use bytes::Bytes;
use sip::transaction::{Endpoint, Event, Peer, Timers, TxId};
use sip::{response_to, Method, Name, Request, Response, SipMessage};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Bytes received by a transport.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound {
    /// Source.
    pub peer: Peer,
    /// One datagram or framed stream message.
    pub data: Bytes,
}

/// What calls and the registrar ask a shard to do.
#[derive(Message)]
#[rtype(result = "()")]
pub enum ShardCmd {
    /// Answer server transaction `tx`.
    Respond {
        /// Transaction.
        tx: TxId,
        /// Response.
        resp: Response,
    },
    /// Send a request in a new client transaction; events for it go to
    /// `owner`. The request carries its own Via branch.
    Request {
        /// Destination.
        peer: Peer,
        /// Request (not ACK).
        req: Request,
        /// Who gets the responses (a call, the monitor).
        owner: Recipient<CallEvent>,
    },
    /// Send a request nobody waits an answer for (a failed call's BYE or
    /// CANCEL: its actor is gone).
    Detached {
        /// Destination.
        peer: Peer,
        /// Request (not ACK).
        req: Request,
    },
    /// ACK a 2xx on client INVITE transaction `tx`.
    Ack2xx {
        /// Transaction.
        tx: TxId,
        /// Destination.
        peer: Peer,
        /// The ACK.
        ack: Request,
    },
    /// Route requests with this Call-ID to `call`.
    Adopt {
        /// Call-ID of a leg.
        call_id: String,
        /// The call.
        call: Addr<Call>,
    },
    /// The call is over: forget its Call-IDs and the transactions it
    /// still owned (a 2xx-answered INVITE keeps its owner until then, for
    /// Timer L).
    Forget {
        /// Call-IDs of its legs.
        call_ids: Vec<String>,
        /// Server transactions it answered 2xx.
        txs: Vec<TxId>,
        /// The call counted on this shard ends (false: only a leg it took
        /// over from a call on this shard).
        ends_call: bool,
    },
}

/// The call a Call-ID is routed to (any leg's), if any.
#[derive(Message)]
#[rtype(result = "Option<Addr<Call>>")]
pub struct FindCall(pub String);

impl Handler<FindCall> for Shard {
    type Result = Option<Addr<Call>>;

    fn handle(&mut self, FindCall(call_id): FindCall, _: &mut Context<Self>) -> Self::Result {
        self.calls.get(&call_id).cloned()
    }
}

/// Live-call gauge for `status` and tests.
#[derive(Message)]
#[rtype(result = "ShardStats")]
pub struct GetStats;

/// A snapshot of a shard's counters.
#[derive(Debug, Clone, Default, MessageResponse)]
pub struct ShardStats {
    /// Calls in progress.
    pub calls: usize,
    /// Live transactions.
    pub transactions: usize,
    /// Parse errors seen.
    pub parse_errors: u64,
}

/// The shard actor.
pub struct Shard {
    index: usize,
    switch: Arc<Switch>,
    endpoint: Endpoint,
    calls: HashMap<String, Addr<Call>>,
    owners: HashMap<TxId, Recipient<CallEvent>>,
    timer: Option<(Instant, SpawnHandle)>,
    live_calls: usize,
}

impl Shard {
    /// Shard number `index`.
    pub fn new(index: usize, switch: Arc<Switch>) -> Shard {
        let ua = switch.config().sip.user_agent.clone();
        Shard {
            index,
            switch,
            endpoint: Endpoint::new(Timers::default(), &ua),
            calls: HashMap::new(),
            owners: HashMap::new(),
            timer: None,
            live_calls: 0,
        }
    }

    /// Sends what the endpoint produced, dispatches its events and re-arms
    /// the timer (the poll order documented on `Endpoint`).
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while let Some(t) = self.endpoint.poll_transmit() {
            self.switch.sender.send(t);
        }
        while let Some(ev) = self.endpoint.poll_event() {
            self.dispatch(ev, ctx);
            while let Some(t) = self.endpoint.poll_transmit() {
                self.switch.sender.send(t);
            }
        }
        // Keep one actix timer at the earliest deadline: re-arm only when a
        // new deadline is earlier (most are later: now + T1 or 64*T1); the
        // timer callback re-arms for whatever is next.
        let Some(next) = self.endpoint.poll_timeout() else {
            return;
        };
        if self.timer.as_ref().is_some_and(|(at, _)| *at <= next) {
            return;
        }
        if let Some((_, h)) = self.timer.take() {
            ctx.cancel_future(h);
        }
        let delay = next.saturating_duration_since(Instant::now());
        let h = ctx.run_later(delay, |this, ctx| {
            this.timer = None;
            this.endpoint.handle_timeout(Instant::now());
            this.pump(ctx);
        });
        self.timer = Some((next, h));
    }

    fn dispatch(&mut self, ev: Event, ctx: &mut Context<Self>) {
        let m = &self.switch.metrics;
        match &ev {
            Event::Request { req, .. } => m
                .sip_requests
                .with_label_values(&["in", method_label(&req.method)])
                .inc(),
            Event::Response { resp, .. } => m
                .sip_responses
                .with_label_values(&["in", &resp.code.to_string()])
                .inc(),
            _ => {}
        }
        match ev {
            Event::Request { tx, req, peer } => self.on_request(tx, req, peer, ctx),
            Event::Response { tx, resp } => {
                // A client INVITE's owner outlives its first 2xx: a second
                // fork's 2xx must reach the call too (released by Forget).
                let invite_2xx =
                    resp.code < 300 && resp.cseq().is_ok_and(|c| c.method == Method::Invite);
                let done = resp.code >= 200 && !invite_2xx;
                let owner = if done {
                    self.owners.remove(&tx)
                } else {
                    self.owners.get(&tx).cloned()
                };
                if let Some(call) = owner {
                    call.do_send(CallEvent::Response { tx, resp });
                }
            }
            Event::Cancelled { invite } => {
                if let Some(call) = self.owners.get(&invite) {
                    call.do_send(CallEvent::Cancelled);
                }
            }
            Event::Timeout { tx } => {
                if let Some(call) = self.owners.remove(&tx) {
                    call.do_send(CallEvent::Timeout { tx });
                }
            }
        }
    }

    fn on_request(&mut self, tx: Option<TxId>, req: Request, peer: Peer, ctx: &mut Context<Self>) {
        if let Some(call) = req.call_id().and_then(|c| self.calls.get(c)) {
            if let Some(tx) = tx {
                self.owners.insert(tx, call.clone().recipient());
            }
            call.do_send(CallEvent::Request { tx, req, peer });
            return;
        }
        let Some(tx) = tx else { return }; // stray ACK
        let in_dialog = req.to().is_ok_and(|t| t.tag().is_some());
        let now = Instant::now();
        match req.method {
            _ if in_dialog => self.reply(now, tx, &req, 481),
            Method::Register => {
                if let Some(r) = self.switch.registrar.get() {
                    r.do_send(Register {
                        tx,
                        req,
                        peer,
                        shard: ctx.address(),
                    });
                }
            }
            Method::Invite => {
                let cfg = self.switch.config();
                if self.live_calls as u32 >= cfg.calls.max_calls / self.shard_count() as u32 {
                    return self.reply(now, tx, &req, 503);
                }
                let call_id = req.call_id().unwrap_or("").to_owned();
                let shard = ctx.address();
                let call = Call::new(self.switch.clone(), shard, self.index, tx, req, peer).start();
                self.owners.insert(tx, call.clone().recipient());
                self.calls.insert(call_id, call);
                self.live_calls += 1;
            }
            Method::Options => {
                let mut r = response_to(&req, 200, Some(&sip::transaction::new_tag()));
                r.headers.push(
                    Name::Allow,
                    "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE",
                );
                r.headers.push(Name::Accept, "application/sdp");
                self.send_response(now, tx, r);
            }
            _ => {
                let mut r = response_to(&req, 405, Some(&sip::transaction::new_tag()));
                r.headers.push(
                    Name::Allow,
                    "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, UPDATE",
                );
                self.send_response(now, tx, r);
            }
        }
    }

    fn reply(&mut self, now: Instant, tx: TxId, req: &Request, code: u16) {
        self.send_response(
            now,
            tx,
            response_to(req, code, Some(&sip::transaction::new_tag())),
        );
    }

    /// Answers a server transaction (counted by status code).
    fn send_response(&mut self, now: Instant, tx: TxId, resp: sip::Response) {
        self.switch
            .metrics
            .sip_responses
            .with_label_values(&["out", &resp.code.to_string()])
            .inc();
        self.endpoint.respond(now, tx, resp);
    }

    fn shard_count(&self) -> usize {
        self.switch.shards.get().map_or(1, Vec::len)
    }
}

/// A method as a metric label: the known ones by name, anything else (a
/// peer may invent methods) as "OTHER", so labels stay few.
fn method_label(m: &Method) -> &str {
    const KNOWN: [&str; 14] = [
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "INFO",
        "UPDATE",
        "PRACK",
        "REFER",
        "NOTIFY",
        "SUBSCRIBE",
        "MESSAGE",
        "PUBLISH",
    ];
    let name = m.as_str();
    if KNOWN.contains(&name) {
        name
    } else {
        "OTHER"
    }
}

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(usize::MAX);
    }
}

impl Handler<Inbound> for Shard {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        self.endpoint
            .handle_input(Instant::now(), msg.peer, msg.data);
        self.pump(ctx);
    }
}

impl Handler<ShardCmd> for Shard {
    type Result = ();

    fn handle(&mut self, msg: ShardCmd, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match msg {
            ShardCmd::Respond { tx, resp } => {
                let invite_2xx =
                    resp.code < 300 && resp.cseq().is_ok_and(|c| c.method == Method::Invite);
                if resp.code >= 200 && !invite_2xx {
                    self.owners.remove(&tx);
                }
                self.send_response(now, tx, resp);
            }
            ShardCmd::Request { peer, req, owner } => {
                self.switch
                    .metrics
                    .sip_requests
                    .with_label_values(&["out", method_label(&req.method)])
                    .inc();
                let tx = self.endpoint.send_request(now, peer, req);
                self.owners.insert(tx, owner);
            }
            ShardCmd::Detached { peer, req } => {
                self.switch
                    .metrics
                    .sip_requests
                    .with_label_values(&["out", method_label(&req.method)])
                    .inc();
                self.endpoint.send_request(now, peer, req);
            }
            ShardCmd::Ack2xx { tx, peer, ack } => {
                self.switch
                    .metrics
                    .sip_requests
                    .with_label_values(&["out", "ACK"])
                    .inc();
                self.endpoint.ack_2xx(tx, peer, &ack)
            }
            ShardCmd::Adopt { call_id, call } => {
                self.calls.insert(call_id, call);
            }
            ShardCmd::Forget {
                call_ids,
                txs,
                ends_call,
            } => {
                for c in call_ids {
                    self.calls.remove(&c);
                }
                for t in txs {
                    self.owners.remove(&t);
                }
                if ends_call {
                    self.live_calls = self.live_calls.saturating_sub(1);
                }
            }
        }
        self.pump(ctx);
    }
}

impl Handler<crate::call::Originate> for Shard {
    type Result = Result<String, String>;

    fn handle(&mut self, msg: crate::call::Originate, ctx: &mut Context<Self>) -> Self::Result {
        let call = Call::originate(
            self.switch.clone(),
            ctx.address(),
            self.index,
            &msg.user,
            &msg.number,
            msg.trunk,
            msg.acd,
        )?;
        let call_id = call.call_id_a();
        let addr = call.start();
        self.calls.insert(call_id.clone(), addr);
        self.live_calls += 1;
        Ok(call_id)
    }
}

impl Handler<GetStats> for Shard {
    type Result = ShardStats;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> ShardStats {
        ShardStats {
            calls: self.live_calls,
            transactions: self.endpoint.transaction_count(),
            parse_errors: self.endpoint.stats().parse_errors,
        }
    }
}
