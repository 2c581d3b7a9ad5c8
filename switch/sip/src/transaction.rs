//! The transaction layer of RFC 3261 §17, sans-IO, with the Accepted state
//! of RFC 6026 on both sides.
//!
//! [`Endpoint`] owns every transaction of one shard. Drive it like this:
//! call a `handle_*` or `send_*`/`respond` method with the current time, then
//! drain [`Endpoint::poll_transmit`] (datagrams/stream writes to make), then
//! [`Endpoint::poll_event`] (what the transaction user must act on), and arm
//! one timer for [`Endpoint::poll_timeout`]; when it fires, call
//! [`Endpoint::handle_timeout`]. Nothing here reads a clock.
//!
//! Client INVITE transaction (§17.1.1.2, Figure 5, with RFC 6026 Figure 5):
//! ```text
//!                 |INVITE from TU
//!  Timer A fires  |INVITE sent
//!  Reset A,       V                      Timer B fires
//!  INVITE sent +-----------+             or Transport Err.
//!    +---------|           |---------------+inform TU
//!    |         |  Calling  |               |
//!    +-------->|           |-------------->|
//!              +-----------+ 2xx           |
//!                 |  |       2xx to TU     |
//!                 |  |1xx                  |
//! 300-699 +-------+  |1xx to TU            |
//! ACK sent|          |                     |
//! resp. to TU        V                     |
//!         |  +-----------+                 |
//!         |  |           | 2xx to TU       |
//!         |  |Proceeding |------------+    |
//!         |  +-----------+            |    |
//!         |  300-699 |                V    |
//!         |  ACK sent|         +----------+|  2xx to TU
//!         |          |         | Accepted ||<-+
//!         V          V         +----------+|--+
//!  +-----------+                Timer M    |
//!  | Completed |---------------+   |       |
//!  +-----------+ Timer D fires |   V       |
//!   300-699: ACK sent          +-> Terminated
//! ```
//! Client non-INVITE (§17.1.2.2, Figure 6): Trying --1xx--> Proceeding
//! --final--> Completed --Timer K--> Terminated; Timer E retransmits
//! (T1 doubling to T2), Timer F (64*T1) times out.
//!
//! Server INVITE (§17.2.1, Figure 7 with RFC 6026): Proceeding (100 sent at
//! once) --2xx--> Accepted (2xx retransmitted until the ACK; Timer L) and
//! --300-699--> Completed (Timer G retransmits, Timer H gives up) --ACK-->
//! Confirmed --Timer I--> Terminated.
//!
//! Server non-INVITE (§17.2.2, Figure 8): Trying --1xx--> Proceeding
//! --final--> Completed --Timer J--> Terminated.

use crate::header::Name;
use crate::message::{parse, response_to, Framing, Message, Request, Response, SipMessage};
use crate::method::Method;
use crate::validate::{check_request, UasPolicy};
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a client INVITE may stay in Proceeding, and a server
/// transaction wait for its TU, before it is given up (guards against
/// leaks; like a proxy's Timer C, RFC 3261 §16.6).
const PROCEEDING_GUARD: Duration = Duration::from_secs(200);

/// A transport kind (RFC 3261 §18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: unreliable, retransmissions on.
    Udp,
    /// TCP: reliable.
    Tcp,
}

impl Transport {
    /// Reliable transports skip retransmissions (§17.1.1.2).
    pub fn reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
    /// The Via transport token.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// The far end of a message: transport and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport.
    pub transport: Transport,
    /// Remote address.
    pub addr: SocketAddr,
}

/// Bytes to send to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub peer: Peer,
    /// The message.
    pub data: Bytes,
}

/// A transaction handle, unique within an [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub u64);

/// What the transaction user must act on.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new request. `tx` is `None` for an ACK to a 2xx, which has no
    /// transaction of its own (§17.1.1.3); the server transaction it
    /// acknowledges has already stopped retransmitting the 2xx.
    Request {
        /// Server transaction to answer on.
        tx: Option<TxId>,
        /// The request.
        req: Request,
        /// Where it came from.
        peer: Peer,
    },
    /// A response on one of our client transactions. Retransmitted 2xx to
    /// an INVITE are absorbed once [`Endpoint::ack_2xx`] gave the ACK.
    Response {
        /// Client transaction.
        tx: TxId,
        /// The response.
        resp: Response,
    },
    /// A CANCEL matched the pending INVITE `invite`; the CANCEL was already
    /// answered 200. The TU should answer the INVITE 487 (§9.2).
    Cancelled {
        /// The INVITE server transaction.
        invite: TxId,
    },
    /// Client: Timer B/F fired (no final response): treat as 408.
    /// Server: Timer L fired with no ACK for our 2xx (§13.3.1.4: send BYE).
    Timeout {
        /// The transaction.
        tx: TxId,
    },
}

/// Timer values (RFC 3261 §17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// RTT estimate, 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval, 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Counters for monitoring; read them with [`Endpoint::stats`].
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Messages that failed to parse.
    pub parse_errors: u64,
    /// Requests refused by the UAS checks (§8.2).
    pub rejected: u64,
    /// Retransmissions we sent.
    pub retransmissions: u64,
    /// Retransmitted requests/responses we absorbed.
    pub absorbed: u64,
    /// Responses that matched no client transaction.
    pub stray_responses: u64,
}

/// Named as RFC 3261 §17 names the four machines.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ClientInvite,
    ClientNonInvite,
    ServerInvite,
    ServerNonInvite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Retransmit,
    Timeout,
}

#[derive(Debug)]
struct Tx {
    kind: Kind,
    state: State,
    key: String,
    peer: Peer,
    /// Client: the request as sent. Server: the request received.
    request: Request,
    /// Client: encoded request. Server: last response sent.
    wire: Bytes,
    /// Client INVITE: the ACK to resend on a retransmitted final response.
    ack: Option<Bytes>,
    interval: Duration,
    retransmit_at: Option<Instant>,
    timeout_at: Option<Instant>,
    /// Server INVITE: `(Call-ID, CSeq)` index entry for the 2xx ACK.
    ack_key: Option<(String, u32)>,
    acked: bool,
    /// Client INVITE: the To tag of the dialog the stored ACK belongs to.
    ack_tag: Option<String>,
}

impl Tx {
    fn new(
        kind: Kind,
        state: State,
        key: String,
        peer: Peer,
        request: Request,
        wire: Bytes,
        t1: Duration,
    ) -> Tx {
        Tx {
            kind,
            state,
            key,
            peer,
            request,
            wire,
            ack: None,
            interval: t1,
            retransmit_at: None,
            timeout_at: None,
            ack_key: None,
            acked: false,
            ack_tag: None,
        }
    }
}

/// The transaction layer of one shard. See the module docs for the drive
/// loop and the state machines.
#[derive(Debug)]
pub struct Endpoint {
    timers: Timers,
    policy: UasPolicy,
    next_id: u64,
    txs: HashMap<TxId, Tx>,
    client_index: HashMap<String, TxId>,
    server_index: HashMap<String, TxId>,
    accepted_index: HashMap<(String, u32), TxId>,
    heap: BinaryHeap<Reverse<(Instant, TxId, Timer)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    user_agent: String,
}

impl Endpoint {
    /// Sets what the endpoint's UAS accepts (option tags, body types).
    pub fn set_policy(&mut self, policy: UasPolicy) {
        self.policy = policy;
    }

    /// An endpoint with the given timers; `user_agent` goes into the
    /// Server header of responses the layer itself generates.
    pub fn new(timers: Timers, user_agent: &str) -> Endpoint {
        Endpoint {
            timers,
            policy: UasPolicy::default(),
            next_id: 1,
            txs: HashMap::new(),
            client_index: HashMap::new(),
            server_index: HashMap::new(),
            accepted_index: HashMap::new(),
            heap: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            user_agent: user_agent.to_owned(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Live transactions.
    pub fn transaction_count(&self) -> usize {
        self.txs.len()
    }

    /// The request a server transaction was created for.
    pub fn request(&self, tx: TxId) -> Option<&Request> {
        self.txs.get(&tx).map(|t| &t.request)
    }

    /// Next datagram or stream write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id, which))) = self.heap.peek().copied() {
            if self.timer_live(id, which, at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    fn timer_live(&self, id: TxId, which: Timer, at: Instant) -> bool {
        self.txs.get(&id).is_some_and(|t| match which {
            Timer::Retransmit => t.retransmit_at == Some(at),
            Timer::Timeout => t.timeout_at == Some(at),
        })
    }

    fn arm(&mut self, id: TxId, which: Timer, at: Instant) {
        if let Some(t) = self.txs.get_mut(&id) {
            match which {
                Timer::Retransmit => t.retransmit_at = Some(at),
                Timer::Timeout => t.timeout_at = Some(at),
            }
            self.heap.push(Reverse((at, id, which)));
        }
    }

    fn new_id(&mut self) -> TxId {
        self.next_id += 1;
        TxId(self.next_id)
    }

    fn send(&mut self, peer: Peer, data: Bytes) {
        self.transmits.push_back(Transmit { peer, data });
    }

    /// Sends `msg` outside any transaction (ACK to a 2xx, stateless
    /// responses).
    pub fn send_stateless(&mut self, peer: Peer, data: Bytes) {
        self.send(peer, data);
    }

    // ---- client side -------------------------------------------------

    /// Starts a client transaction for `req` (not ACK: see
    /// [`Endpoint::ack_2xx`] and [`Endpoint::send_stateless`]). The request
    /// must carry its top Via with an RFC 3261 branch (see [`new_branch`]).
    pub fn send_request(&mut self, now: Instant, peer: Peer, req: Request) -> TxId {
        let id = self.new_id();
        let invite = req.method == Method::Invite;
        let branch = req
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        let key = client_key(&branch, &req.method);
        let wire = Bytes::from(req.to_bytes());
        let (kind, state) = if invite {
            (Kind::ClientInvite, State::Calling)
        } else {
            (Kind::ClientNonInvite, State::Trying)
        };
        let tx = Tx::new(
            kind,
            state,
            key.clone(),
            peer,
            req,
            wire.clone(),
            self.timers.t1,
        );
        self.txs.insert(id, tx);
        self.client_index.insert(key, id);
        self.send(peer, wire);
        if !peer.transport.reliable() {
            self.arm(id, Timer::Retransmit, now + self.timers.t1);
        }
        self.arm(id, Timer::Timeout, now + 64 * self.timers.t1);
        id
    }

    /// Sends the ACK for a 2xx received on client INVITE transaction `tx`
    /// and keeps it to answer retransmitted 2xx (RFC 6026 Accepted state).
    pub fn ack_2xx(&mut self, tx: TxId, peer: Peer, ack: &Request) {
        let data = Bytes::from(ack.to_bytes());
        if let Some(t) = self.txs.get_mut(&tx) {
            t.ack = Some(data.clone());
            t.ack_tag = ack.to().ok().and_then(|to| to.tag().map(str::to_owned));
        }
        self.send(peer, data);
    }

    fn on_response(&mut self, now: Instant, resp: Response) {
        let branch = resp
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_owned));
        let method = resp.cseq().map(|c| c.method);
        let (Some(branch), Ok(method)) = (branch, method) else {
            self.stats.stray_responses += 1;
            return;
        };
        let Some(&id) = self.client_index.get(&client_key(&branch, &method)) else {
            self.stats.stray_responses += 1;
            return;
        };
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let reliable = tx.peer.transport.reliable();
        let code = resp.code;
        match (tx.kind, tx.state) {
            (Kind::ClientInvite, State::Calling | State::Proceeding) => {
                if code < 200 {
                    if tx.state == State::Calling {
                        // No RFC 3261 UAC timer ends Proceeding; a peer that
                        // never sends a final would leak the transaction. A
                        // guard like a proxy's Timer C (> 3 min, §16.6) ends
                        // it with a Timeout the TU treats as 408.
                        tx.state = State::Proceeding;
                        tx.retransmit_at = None;
                        self.arm(id, Timer::Timeout, now + PROCEEDING_GUARD);
                    }
                } else if code < 300 {
                    tx.state = State::Accepted;
                    tx.retransmit_at = None;
                    self.arm(id, Timer::Timeout, now + 64 * self.timers.t1);
                } else {
                    let ack = Bytes::from(ack_for(&tx.request, &resp).to_bytes());
                    tx.state = State::Completed;
                    tx.retransmit_at = None;
                    tx.ack = Some(ack.clone());
                    let peer = tx.peer;
                    self.send(peer, ack);
                    let wait = if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    };
                    self.arm(id, Timer::Timeout, now + wait);
                }
                self.events.push_back(Event::Response { tx: id, resp });
            }
            (Kind::ClientInvite, State::Accepted) if (200..300).contains(&code) => {
                // A retransmitted 2xx gets the stored ACK; a 2xx with another
                // To tag is a second fork (§13.2.2.4): the TU must ACK it and
                // end that dialog, so it goes up.
                let tag = |m: &Response| m.to().ok().and_then(|t| t.tag().map(str::to_owned));
                match (&tx.ack, &tx.ack_tag) {
                    (Some(ack), Some(t)) if tag(&resp).as_deref() == Some(t.as_str()) => {
                        let (peer, ack) = (tx.peer, ack.clone());
                        self.stats.absorbed += 1;
                        self.send(peer, ack);
                    }
                    _ => self.events.push_back(Event::Response { tx: id, resp }),
                }
            }
            (Kind::ClientInvite, State::Completed) if code >= 300 => {
                if let Some(ack) = tx.ack.clone() {
                    let peer = tx.peer;
                    self.stats.absorbed += 1;
                    self.send(peer, ack);
                }
            }
            (Kind::ClientNonInvite, State::Trying | State::Proceeding) => {
                if code < 200 {
                    tx.state = State::Proceeding;
                } else {
                    tx.state = State::Completed;
                    tx.retransmit_at = None;
                    let wait = if reliable {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    };
                    self.arm(id, Timer::Timeout, now + wait);
                }
                self.events.push_back(Event::Response { tx: id, resp });
            }
            _ => self.stats.absorbed += 1,
        }
    }

    // ---- server side -------------------------------------------------

    /// Feeds one received datagram or framed stream message.
    pub fn handle_input(&mut self, now: Instant, peer: Peer, data: Bytes) {
        let framing = if peer.transport.reliable() {
            Framing::Stream
        } else {
            Framing::Datagram
        };
        match parse(&data, framing) {
            Ok(Message::Response(r)) => self.on_response(now, r),
            Ok(Message::Request(r)) => self.on_request(now, peer, r),
            Err(e) => {
                self.stats.parse_errors += 1;
                if let Some(resp) = bad_request(&data, &e.to_string()) {
                    self.send(peer, Bytes::from(resp.to_bytes()));
                }
            }
        }
    }

    fn on_request(&mut self, now: Instant, peer: Peer, mut req: Request) {
        let Ok(mut via) = req.top_via() else { return };
        if via.param("rport").is_some() || via.host.ip() != Some(peer.addr.ip()) {
            // RFC 3261 §18.2.1 received, RFC 3581 rport.
            if via.param("rport").is_some() {
                via.set_param("rport", Some(&peer.addr.port().to_string()));
            }
            via.set_param("received", Some(&peer.addr.ip().to_string()));
            req.headers.remove_first_value(&Name::Via);
            req.headers.push_front(Name::Via, via.to_string());
        }
        let key = server_key(&req, &via);
        if let Some(&id) = self.server_index.get(&key) {
            return self.on_retransmitted_request(now, id, req);
        }
        if req.method == Method::Ack {
            return self.on_ack_2xx(peer, req);
        }
        if let Err(rej) = check_request(&req, &self.policy) {
            self.stats.rejected += 1;
            let mut r = response_to(&req, rej.code, Some(&new_tag()));
            r.reason = rej.reason.to_owned();
            for (n, v) in rej.headers {
                r.headers.push(n, v);
            }
            let id = self.new_server_tx(now, peer, key, req);
            return self.respond(now, id, r);
        }
        if req.method == Method::Cancel {
            return self.on_cancel(now, peer, key, req, &via);
        }
        let invite = req.method == Method::Invite;
        let id = self.new_server_tx(now, peer, key, req);
        if invite {
            // §17.2.1: answer 100 at once so the client stops Timer A.
            let trying = response_to(&self.txs[&id].request, 100, None);
            self.respond(now, id, trying);
        }
        let req = self.txs[&id].request.clone();
        self.events.push_back(Event::Request {
            tx: Some(id),
            req,
            peer,
        });
    }

    fn new_server_tx(&mut self, now: Instant, peer: Peer, key: String, req: Request) -> TxId {
        let id = self.new_id();
        let invite = req.method == Method::Invite;
        let (kind, state) = if invite {
            (Kind::ServerInvite, State::Proceeding)
        } else {
            (Kind::ServerNonInvite, State::Trying)
        };
        let tx = Tx::new(
            kind,
            state,
            key.clone(),
            peer,
            req,
            Bytes::new(),
            self.timers.t1,
        );
        self.txs.insert(id, tx);
        self.server_index.insert(key, id);
        // Guard: a transaction its TU never answers is dropped (see
        // PROCEEDING_GUARD); a final response re-arms the timer.
        self.arm(id, Timer::Timeout, now + PROCEEDING_GUARD);
        id
    }

    fn on_retransmitted_request(&mut self, now: Instant, id: TxId, req: Request) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        self.stats.absorbed += 1;
        match (req.method == Method::Ack, tx.kind, tx.state) {
            (true, Kind::ServerInvite, State::Completed) => {
                tx.state = State::Confirmed;
                tx.retransmit_at = None;
                let wait = if tx.peer.transport.reliable() {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.arm(id, Timer::Timeout, now + wait);
            }
            (true, Kind::ServerInvite, State::Accepted) => {
                // RFC 2543 peers (no branch cookie) match the INVITE's key
                // with their 2xx ACK too.
                self.stats.absorbed -= 1;
                let peer = tx.peer;
                self.on_ack_2xx(peer, req);
            }
            (true, ..) => {}
            // RFC 6026: a retransmitted INVITE in Accepted is absorbed.
            (false, _, State::Proceeding | State::Trying | State::Completed)
                if !tx.wire.is_empty() =>
            {
                let (peer, wire) = (tx.peer, tx.wire.clone());
                self.send(peer, wire);
            }
            _ => {}
        }
    }

    fn on_ack_2xx(&mut self, peer: Peer, req: Request) {
        let key = match (req.call_id(), req.cseq()) {
            (Some(c), Ok(s)) => (c.to_owned(), s.seq),
            _ => return,
        };
        if let Some(&id) = self.accepted_index.get(&key) {
            if let Some(tx) = self.txs.get_mut(&id) {
                tx.acked = true;
                tx.retransmit_at = None;
            }
        }
        self.events.push_back(Event::Request {
            tx: None,
            req,
            peer,
        });
    }

    fn on_cancel(&mut self, now: Instant, peer: Peer, key: String, req: Request, via: &crate::Via) {
        let invite_key = server_key_parts(&req, via, "INVITE");
        let id = self.new_server_tx(now, peer, key, req);
        let target = self.server_index.get(&invite_key).copied();
        let pending = target
            .and_then(|t| self.txs.get(&t))
            .is_some_and(|t| t.state == State::Proceeding);
        // §9.2: any matching INVITE transaction gets 200; only a pending one
        // is reported (after a final response the CANCEL has no effect).
        let code = if target.is_some() { 200 } else { 481 };
        let resp = response_to(&self.txs[&id].request, code, Some(&new_tag()));
        self.respond(now, id, resp);
        if let (true, Some(invite)) = (pending, target) {
            self.events.push_back(Event::Cancelled { invite });
        }
    }

    /// Sends `resp` on server transaction `tx` (§17.2.1, §17.2.2).
    /// Responses on a finished transaction are dropped.
    pub fn respond(&mut self, now: Instant, tx: TxId, mut resp: Response) {
        let Some(t) = self.txs.get_mut(&tx) else {
            return;
        };
        if !matches!(t.state, State::Proceeding | State::Trying) {
            return;
        }
        if resp.headers.get(&Name::Server).is_none() && resp.code >= 200 {
            resp.headers.push(Name::Server, self.user_agent.clone());
        }
        let data = Bytes::from(resp.to_bytes());
        t.wire = data.clone();
        let (peer, reliable) = (t.peer, t.peer.transport.reliable());
        let code = resp.code;
        match t.kind {
            Kind::ServerInvite if (200..300).contains(&code) => {
                t.state = State::Accepted;
                let key = (
                    t.request.call_id().unwrap_or("").to_owned(),
                    t.request.cseq().map_or(0, |c| c.seq),
                );
                t.ack_key = Some(key.clone());
                self.accepted_index.insert(key, tx);
                // §13.3.1.4: the 2xx is retransmitted (T1 doubling to T2)
                // until the ACK arrives, over any transport.
                self.arm(tx, Timer::Retransmit, now + self.timers.t1);
                self.arm(tx, Timer::Timeout, now + 64 * self.timers.t1);
            }
            Kind::ServerInvite if code >= 300 => {
                t.state = State::Completed;
                if !reliable {
                    self.arm(tx, Timer::Retransmit, now + self.timers.t1);
                }
                self.arm(tx, Timer::Timeout, now + 64 * self.timers.t1);
            }
            Kind::ServerNonInvite if code >= 200 => {
                t.state = State::Completed;
                let wait = if reliable {
                    Duration::ZERO
                } else {
                    64 * self.timers.t1
                };
                self.arm(tx, Timer::Timeout, now + wait);
            }
            Kind::ServerNonInvite => t.state = State::Proceeding,
            _ => {}
        }
        self.send(peer, data);
    }

    // ---- timers ------------------------------------------------------

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id, which))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.timer_live(id, which, at) {
                self.fire(now, id, which);
            }
        }
    }

    fn fire(&mut self, now: Instant, id: TxId, which: Timer) {
        let Some(t) = self.txs.get_mut(&id) else {
            return;
        };
        match which {
            Timer::Retransmit => {
                t.retransmit_at = None;
                if t.kind == Kind::ServerInvite && t.state == State::Accepted && t.acked {
                    return;
                }
                // Timers A, E, G and the 2xx retransmission of §13.3.1.4.
                let next = match (t.kind, t.state) {
                    (Kind::ClientInvite, _) => t.interval * 2,
                    (Kind::ClientNonInvite, State::Proceeding) => self.timers.t2,
                    _ => (t.interval * 2).min(self.timers.t2),
                };
                t.interval = next;
                let (peer, wire) = (t.peer, t.wire.clone());
                self.stats.retransmissions += 1;
                self.send(peer, wire);
                self.arm(id, Timer::Retransmit, now + next);
            }
            Timer::Timeout => {
                t.timeout_at = None;
                let report = match (t.kind, t.state) {
                    (Kind::ClientInvite, State::Calling | State::Proceeding) => true,
                    (Kind::ClientNonInvite, State::Trying | State::Proceeding) => true,
                    (Kind::ServerInvite, State::Accepted) => !t.acked,
                    _ => false,
                };
                if report {
                    self.events.push_back(Event::Timeout { tx: id });
                }
                self.remove(id);
            }
        }
    }

    fn remove(&mut self, id: TxId) {
        if let Some(t) = self.txs.remove(&id) {
            match t.kind {
                Kind::ClientInvite | Kind::ClientNonInvite => self.client_index.remove(&t.key),
                _ => self.server_index.remove(&t.key),
            };
            if let Some(k) = t.ack_key {
                self.accepted_index.remove(&k);
            }
        }
    }
}

fn client_key(branch: &str, method: &Method) -> String {
    let m = if *method == Method::Ack {
        "INVITE"
    } else {
        method.as_str()
    };
    format!("{branch}|{m}")
}

/// §17.2.3 matching: branch + sent-by + method (ACK matches INVITE); for
/// RFC 2543 requests (no magic cookie) Call-ID, From tag, CSeq number and
/// top Via instead. Call-ID and CSeq number are added to the RFC 3261 key
/// too: retransmissions, ACK and CANCEL carry the same ones, and it keeps
/// clients that reuse a branch for new requests (RFC 4475's vectors do)
/// from having their requests taken as retransmissions.
fn server_key(req: &Request, via: &crate::Via) -> String {
    let m = match req.method {
        Method::Ack => "INVITE",
        ref m => m.as_str(),
    };
    server_key_parts(req, via, m)
}

fn server_key_parts(req: &Request, via: &crate::Via, method: &str) -> String {
    let sent_by = format!("{}:{}", via.host, via.port.unwrap_or(0));
    let seq = req.cseq().map_or(0, |c| c.seq);
    let call_id = req.call_id().unwrap_or("");
    if via.has_rfc3261_branch() {
        format!(
            "{}|{sent_by}|{method}|{call_id}|{seq}",
            via.branch().unwrap_or("")
        )
    } else {
        let from_tag = req
            .from()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned))
            .unwrap_or_default();
        format!("2543|{call_id}|{from_tag}|{seq}|{sent_by}|{method}")
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): same Request-URI,
/// Call-ID, From, CSeq number and top Via as the INVITE, To from the
/// response, Route copied.
pub fn ack_for(invite: &Request, resp: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    if let Some(v) = invite.headers.get(&Name::Via) {
        let top = crate::lex::split_commas(v).and_then(|p| p.first().map(|s| s.to_string()));
        ack.headers.push(Name::Via, top.unwrap_or_default());
    }
    ack.headers.push(Name::MaxForwards, "70");
    ack.headers.copy_from(&invite.headers, &Name::From);
    ack.headers.copy_from(&resp.headers, &Name::To);
    ack.headers.copy_from(&invite.headers, &Name::CallId);
    let seq = invite.cseq().map_or(1, |c| c.seq);
    ack.headers.push(Name::CSeq, format!("{seq} ACK"));
    ack.headers.copy_from(&invite.headers, &Name::Route);
    ack
}

/// A fresh RFC 3261 branch: the magic cookie and 64 random bits.
pub fn new_branch() -> String {
    format!("{}{:016x}", crate::BRANCH_COOKIE, rand::random::<u64>())
}

/// A fresh tag (§19.3): 64 random bits.
pub fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A 400 for a request that failed to parse, built from whatever Via,
/// From, To, Call-ID and CSeq lines can be read (RFC 4475 §3.1.2).
/// Returns None for responses (they are dropped) or when no Via is found.
fn bad_request(data: &[u8], why: &str) -> Option<Response> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.find(|l| !l.is_empty())?;
    if first.starts_with("SIP/") {
        return None;
    }
    let mut r = Response::new(400);
    r.reason = format!(
        "Bad Request ({})",
        why.chars().filter(|c| !c.is_control()).collect::<String>()
    );
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        let name = Name::parse(n.trim());
        if matches!(
            name,
            Name::Via | Name::From | Name::To | Name::CallId | Name::CSeq
        ) {
            r.headers.push(name, v.trim());
        }
    }
    r.headers.get(&Name::Via)?;
    Some(r)
}

#[cfg(test)]
mod tests;
