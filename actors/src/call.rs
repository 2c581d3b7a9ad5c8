//! The call actor: one B2BUA call. Leg A is the caller's INVITE we answer
//! (UAS); leg B is the INVITE we send to the callee (UAC). Each leg is its
//! own dialog (RFC 3261 §12) with its own Call-ID; the actor relays
//! provisional and final responses, ACKs, BYE and in-dialog requests
//! between them. Media is anchored by default (see `anchor`): each leg's SDP
//! names the switch, and an RTP engine session bridges, transcodes, records
//! and reports DTMF; with `media.anchor = false` SDP passes through.
//!
//! Phases: `Routing` (authenticate, dialplan) → `Calling` (leg B sent) →
//! `Answered` (200 sent to A, waiting for its ACK) → `Up` → `Ending` (BYE
//! sent) → stopped. CANCEL from A in `Calling` cancels B and answers 487.

mod attended;
mod caller_id;
mod failure;
mod features;
mod gateways;
mod ivr;
mod originate;
mod queue;
mod refer;
mod reliable;
mod timer;

pub use failure::InjectPanic;
pub use features::{Supervise, SuperviseMode, Transfer};
pub use originate::{AcdCallback, Originate};

use crate::anchor::{Anchor, Side};
use crate::cdr::{Cdr, Direction, Disposition};
use crate::context::{call_id_for_shard, shard_of, unix_ms, unix_now, Switch};
use crate::registrar::lookup;
use crate::shard::{Shard, ShardCmd};
use actix::prelude::*;
use bytes::Bytes;
use config::{RouteSource, RouteTarget, TrunkAuth};
use media::session::{Event as MediaEvent, LegId, LegOptions, Mode};
use net::rtp_engine::SessionEvent;
use sip::auth::{respond as digest_respond, Challenge, Credentials, Verdict};
use sip::dialog::Dialog;
use sip::transaction::{new_tag, Peer, Transport, TxId};
use sip::{
    response_to, Host, Method, Name, NameAddr, Request, Response, SipMessage, SipUri, Uri, Via,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the shard forwards to a call.
#[derive(Message)]
#[rtype(result = "()")]
pub enum CallEvent {
    /// A request with one of the call's Call-IDs (`tx` None for ACK).
    Request {
        /// Server transaction.
        tx: Option<TxId>,
        /// Request.
        req: Request,
        /// Source.
        peer: Peer,
    },
    /// A response to one of our requests.
    Response {
        /// Client transaction.
        tx: TxId,
        /// Response.
        resp: Response,
    },
    /// Leg A's INVITE was cancelled (the CANCEL is already answered).
    Cancelled,
    /// A transaction timed out.
    Timeout {
        /// Which.
        tx: TxId,
    },
}

/// A call in progress, as `calls.list` shows it.
#[derive(Clone, Debug)]
pub struct CallEntry {
    /// The call actor (for `calls.hangup`).
    pub addr: Addr<Call>,
    /// Caller (From user).
    pub caller: String,
    /// What was dialed.
    pub dialed: String,
    /// Where it goes, once routed.
    pub destination: Option<String>,
    /// When it started, unix ms.
    pub start_ms: u64,
    /// When it was answered, unix ms.
    pub answer_ms: Option<u64>,
}

/// Asks a call to hang up (control socket): BYE to answered legs, or a
/// final response and CANCEL before the answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Hangup {
    /// Why (goes into the CDR).
    pub reason: String,
}

/// An event from the call's media session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MediaMsg(pub SessionEvent);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Click-to-call: the user's phone (leg A) is ringing.
    Originating,
    Routing,
    Calling,
    Answered,
    Up,
    Ending,
}

/// Recording control for one call (feature codes now, the control socket later).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "Result<(), String>")]
pub enum RecordCmd {
    /// Start recording (stereo, or mono if `[media] record = "mono"`).
    Start,
    /// Stop and close the file.
    Stop,
    /// Write silence until resumed.
    Pause,
    /// Record audio again.
    Resume,
}

/// Where this call's recording stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rec {
    Off,
    On,
    Paused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    A,
    B,
    /// The third party of a three-way call.
    C,
}

/// Where a route sends a number.
#[derive(Clone)]
struct Dest {
    uri: Uri,
    peer: Peer,
    to_host: String,
    auth: Option<TrunkAuth>,
    from_domain: Option<String>,
    inband_dtmf: bool,
    /// The trunk, for a trunk gateway.
    trunk: Option<String>,
    /// The number as the trunk wants it (`number_format`).
    number: Option<String>,
}

/// Feature-code digits a user leg has dialed.
#[derive(Default)]
struct Keys {
    digits: String,
    last: Option<Instant>,
    /// After the three-way code: the number so far.
    number: Option<String>,
    timer: Option<SpawnHandle>,
}

/// Who placed the call.
#[derive(Debug, Clone)]
enum Source {
    User(String),
    Trunk(String),
}

struct LegA {
    tx: TxId,
    invite: Request,
    peer: Peer,
    tag: String,
    dialog: Option<Dialog>,
    final_sent: bool,
}

struct LegB {
    invite: Request,
    peer: Peer,
    tx: Option<TxId>,
    dialog: Option<Dialog>,
    provisional: bool,
    /// A CANCEL waits for the first provisional response (§9.1).
    cancel_pending: bool,
    auth: Option<TrunkAuth>,
    auth_tried: bool,
    /// A final non-2xx response ended its INVITE.
    failed: bool,
    /// Reliable provisional responses (RFC 3262): the early dialog PRACKs
    /// go on, and the last RSeq acknowledged.
    early: Option<Dialog>,
    rseq: Option<u32>,
    /// A provisional response other than 100 came (it rang).
    rang: bool,
}

impl LegB {
    fn new(invite: Request, peer: Peer, auth: Option<TrunkAuth>) -> LegB {
        LegB {
            invite,
            peer,
            tx: None,
            dialog: None,
            provisional: false,
            cancel_pending: false,
            auth,
            auth_tried: false,
            failed: false,
            early: None,
            rseq: None,
            rang: false,
        }
    }

    /// RFC 3262 §4: a reliable provisional response (`Require: 100rel`
    /// with an RSeq) is acknowledged with a PRACK on its early dialog, once
    /// per RSeq (a retransmission, or an RSeq not one above the last, gets
    /// none). Returns the PRACK to send.
    fn prack_for(&mut self, resp: &Response, via: &Via) -> Option<Request> {
        let reliable = resp
            .headers
            .get_all(&Name::Require)
            .flat_map(sip::option_tags)
            .any(|t| t.eq_ignore_ascii_case("100rel"));
        if !reliable || resp.code == 100 {
            return None;
        }
        let rseq: u32 = resp.headers.get(&Name::RSeq)?.trim().parse().ok()?;
        let same_dialog = |d: &Dialog| {
            resp.to().ok().and_then(|t| t.tag().map(str::to_owned)) == Some(d.id.remote_tag.clone())
        };
        if !self.early.as_ref().is_some_and(same_dialog) {
            self.early = Some(Dialog::uac(&self.invite, resp).ok()?);
            self.rseq = None;
        }
        if self.rseq.is_some_and(|last| rseq != last + 1) {
            return None;
        }
        self.rseq = Some(rseq);
        let cseq = self.invite.cseq().map_or(1, |c| c.seq);
        let early = self.early.as_mut()?;
        let mut prack = early.request(Method::Prack, via, 70);
        prack
            .headers
            .push(Name::RAck, format!("{rseq} {cseq} INVITE"));
        Some(prack)
    }
}

/// An in-dialog request relayed to the other leg.
struct Relay {
    /// The server transaction to answer.
    server_tx: TxId,
    /// The leg it came from.
    from: Leg,
    /// The request as received.
    request: Request,
    /// The CSeq number it was sent with on the other leg (its ACK reuses it).
    sent_seq: u32,
}

/// The B2BUA call actor.
pub struct Call {
    switch: Arc<Switch>,
    shard: Addr<Shard>,
    shard_index: usize,
    phase: Phase,
    a: LegA,
    b: Option<LegB>,
    cancelled: bool,
    no_answer: Option<SpawnHandle>,
    /// In-dialog requests relayed to the other leg, by the branch we sent
    /// them with: the server transaction to answer and its leg.
    relays: HashMap<String, Relay>,
    /// Transactions whose owner entry the shard keeps past a 2xx (server
    /// INVITEs we answered 2xx, client INVITEs answered 2xx): released at
    /// the end.
    kept_txs: Vec<(usize, TxId)>,
    byes_pending: usize,
    /// Legs whose dialog is over (BYE sent or received), by `Leg as usize`.
    ended: [bool; 3],
    /// Branches of BYEs sent to stray forks of leg B.
    stray_byes: Vec<String>,
    /// Anchored media, when the switch carries the audio.
    anchor: Option<Anchor>,
    /// The conference room this call sits in.
    room: Option<String>,
    /// Digits received, in order (for the log; IVR reads them later).
    digits: String,
    /// Who placed the call, once routed.
    source: Option<Source>,
    /// The local user leg B rings, if it is one.
    b_user: Option<String>,
    /// Feature codes being dialed on legs A and B.
    keys: [Keys; 2],
    /// This call's recording.
    rec: Rec,
    /// A three-way call's third party (same shape as leg B) and its media leg.
    c: Option<LegB>,
    c_media: Option<LegId>,
    c_no_answer: Option<SpawnHandle>,
    /// Three-way or transfer, and whom C rings (number, is a local user).
    c_purpose: features::Purpose,
    c_target: Option<(String, bool)>,
    /// Third parties that are gone: their Call-IDs and transactions are
    /// released at the end, and a late 2xx is still ACKed and hung up.
    c_done: Vec<LegB>,
    /// Call-IDs of given-up INVITEs (CANCEL sent or owed) whose final
    /// response the call waits for before it ends.
    finals_owed: Vec<String>,
    /// For the CDR: when the INVITE came, when it was answered, the final
    /// code leg A got, why it ended, where it went, its recordings.
    start_ms: u64,
    answer_ms: Option<u64>,
    final_code: Option<u16>,
    end_reason: Option<String>,
    destination: Option<String>,
    trunk_out: Option<String>,
    /// The trunk gateway leg B went to last.
    gateway: Option<String>,
    recordings: Vec<String>,
    cdr_written: bool,
    /// `stopped` ran: the call ended normally (else dropping the actor
    /// means it panicked, and `Drop` ends the call).
    finished: bool,
    /// Click-to-call: leg A is the user's phone, called by the switch;
    /// `orig_number` is dialed when it answers.
    originated: bool,
    orig_number: String,
    /// Click-to-call through this trunk (ACD callbacks).
    orig_trunk: Option<String>,
    /// An ACD callback, and whether its offer's outcome was reported.
    orig_acd: Option<originate::AcdCallback>,
    acd_reported: bool,
    a_provisional: bool,
    a_final: bool,
    a_cancel_pending: bool,
    /// The caller is in an IVR flow (leg A answered by the switch).
    ivr: Option<Box<ivr::IvrCall>>,
    /// Flows the caller went through, node by node (for the CDR).
    ivr_path: Vec<String>,
    /// The caller is in an ACD queue (leg A answered by the switch).
    queue: Option<Box<queue::QueueCall>>,
    /// Leg A was answered by the switch itself (IVR, queue), and overflows taken.
    answered_here: bool,
    /// Hang up when the prompt with this tag ends (a feature's confirmation).
    bye_after: Option<u64>,
    overflows: u32,
    /// Leg A's session timer (RFC 4028), if negotiated.
    session: Option<timer::SessionTimer>,
    /// Leg B's session timer (RFC 4028, the switch as UAC).
    session_b: Option<timer::SessionTimer>,
    /// Leg B's trunk gateways left to try.
    failover: Option<gateways::Failover>,
    /// Leg C is a transfer leg B asked for by REFER (it gets NOTIFYs).
    referred: bool,
    /// Trunks whose call limits this call counts against (released at the end).
    trunk_slots: Vec<String>,
    /// Carrier redirects followed.
    redirects: u32,
    /// Attended transfer: the re-INVITE moving a handed party here.
    takeover: Option<attended::Takeover>,
    /// Our re-INVITE taking a leg off hold after a transfer (branch, CSeq, leg).
    resuming: Option<(String, u32, Leg)>,
    /// The leg a transfer's target replaces: the leg whose user asked (B
    /// for the operator's `calls.transfer`).
    c_replaces: Leg,
    /// Leg A's first INVITE, once a transfer replaced leg A: the call's
    /// name, caller and number stay the original caller's.
    orig_a: Option<Request>,
    /// Call-IDs of replaced A legs (forgotten with the call).
    old_a_ids: Vec<String>,
    /// The local user now on leg A, once replaced (None: not a user).
    a_user: Option<String>,
    /// Referred-By for the INVITE of a transfer's target (RFC 3892).
    c_referred_by: Option<String>,
    /// Attended transfer: the other call was asked for its party.
    handover_pending: bool,
    /// Leg A was handed to another call (attended transfer): its Call-ID
    /// is that call's now.
    a_moved: bool,
    /// Reliable 18x to leg A (RFC 3262).
    rel: reliable::Reliable,
}

impl Call {
    /// A call for the INVITE on server transaction `tx`.
    pub fn new(
        switch: Arc<Switch>,
        shard: Addr<Shard>,
        shard_index: usize,
        tx: TxId,
        invite: Request,
        peer: Peer,
    ) -> Call {
        let rel = reliable::Reliable::for_invite(&invite);
        Call {
            switch,
            shard,
            shard_index,
            phase: Phase::Routing,
            a: LegA {
                tx,
                invite,
                peer,
                tag: new_tag(),
                dialog: None,
                final_sent: false,
            },
            b: None,
            cancelled: false,
            no_answer: None,
            relays: HashMap::new(),
            kept_txs: Vec::new(),
            byes_pending: 0,
            ended: [false; 3],
            stray_byes: Vec::new(),
            anchor: None,
            room: None,
            digits: String::new(),
            source: None,
            b_user: None,
            keys: Default::default(),
            rec: Rec::Off,
            c: None,
            c_media: None,
            c_no_answer: None,
            c_purpose: Default::default(),
            c_target: None,
            c_done: Vec::new(),
            finals_owed: Vec::new(),
            start_ms: unix_ms(),
            answer_ms: None,
            final_code: None,
            end_reason: None,
            destination: None,
            trunk_out: None,
            gateway: None,
            recordings: Vec::new(),
            cdr_written: false,
            finished: false,
            originated: false,
            orig_number: String::new(),
            orig_trunk: None,
            orig_acd: None,
            acd_reported: false,
            a_provisional: false,
            a_final: false,
            a_cancel_pending: false,
            ivr: None,
            ivr_path: Vec::new(),
            queue: None,
            answered_here: false,
            bye_after: None,
            overflows: 0,
            session: None,
            session_b: None,
            failover: None,
            referred: false,
            trunk_slots: Vec::new(),
            redirects: 0,
            takeover: None,
            resuming: None,
            c_replaces: Leg::B,
            orig_a: None,
            old_a_ids: Vec::new(),
            a_user: None,
            c_referred_by: None,
            handover_pending: false,
            a_moved: false,
            rel,
        }
    }

    /// Leg A's Call-ID (the call's name in the registry, CDRs and events;
    /// the first A's if a transfer replaced it).
    pub fn call_id_a(&self) -> String {
        self.first_invite().call_id().unwrap_or("").to_owned()
    }

    /// The INVITE that started the call (leg A's first).
    fn first_invite(&self) -> &Request {
        self.orig_a.as_ref().unwrap_or(&self.a.invite)
    }

    fn respond(&mut self, tx: TxId, resp: Response) {
        if tx == self.a.tx && resp.code >= 200 && self.final_code.is_none() {
            self.final_code = Some(resp.code);
        }
        self.to_shard(ShardCmd::Respond { tx, resp });
    }

    /// Which shard's endpoint handles `call_id`: the call's own for the
    /// legs it made, another for a leg taken over from a call on another
    /// shard (attended transfer).
    fn shard_of_leg(&self, call_id: Option<&str>) -> usize {
        match (call_id, self.switch.shards.get()) {
            (Some(id), Some(all)) if all.len() > 1 => shard_of(id, all.len()),
            _ => self.shard_index,
        }
    }

    /// Sends `cmd` to the shard of the Call-ID it is about.
    fn to_shard(&self, cmd: ShardCmd) {
        let i = match &cmd {
            ShardCmd::Respond { resp, .. } => self.shard_of_leg(resp.call_id()),
            ShardCmd::Request { req, .. } | ShardCmd::Detached { req, .. } => {
                self.shard_of_leg(req.call_id())
            }
            ShardCmd::Ack2xx { ack, .. } => self.shard_of_leg(ack.call_id()),
            ShardCmd::Adopt { call_id, .. } => self.shard_of_leg(Some(call_id)),
            ShardCmd::Forget { .. } => self.shard_index,
        };
        match self.switch.shards.get().and_then(|all| all.get(i)) {
            Some(shard) if i != self.shard_index => shard.do_send(cmd),
            _ => self.shard.do_send(cmd),
        }
    }

    /// Keeps a transaction answered 2xx (or a client INVITE past its 2xx)
    /// until the call ends; `call_id` names its leg (and so its shard).
    fn keep_tx(&mut self, call_id: Option<&str>, tx: TxId) {
        let shard = self.shard_of_leg(call_id);
        self.kept_txs.push((shard, tx));
    }

    /// Answers leg A's INVITE with a final `code` (not 2xx) and ends.
    fn fail_a(&mut self, code: u16, reason: Option<&str>, ctx: &mut Context<Self>) {
        if self.ivr.is_some() {
            // Leg A is answered by the IVR: the transfer failed.
            return self.ivr_b_failed(code, ctx);
        }
        if self.answered_here && !self.originated {
            // The switch answered the caller (a queue's overflow to a
            // user that failed): they are hung up.
            self.end_reason.get_or_insert_with(|| {
                format!(
                    "{} could not be reached ({code})",
                    self.destination.clone().unwrap_or_default()
                )
            });
            return self.hangup(&[Leg::A, Leg::B], ctx);
        }
        if self.originated {
            // Click-to-call: the user's phone (leg A) is hung up.
            self.final_code.get_or_insert(code);
            let why = format!("{} could not be reached ({code})", self.orig_number);
            self.end_reason.get_or_insert(why);
            return self.hangup(&[Leg::A, Leg::B], ctx);
        }
        if !self.a.final_sent {
            self.a.final_sent = true;
            let mut r = response_to(&self.a.invite, code, Some(&self.a.tag));
            if let Some(reason) = reason {
                r.reason = reason.to_owned();
            }
            self.respond(self.a.tx, r);
        }
        ctx.stop();
    }

    // ---- routing ------------------------------------------------------

    /// Who is calling: a trunk recognised by source IP (and digest if it
    /// requires one) or a user who proved their password. Anyone else is
    /// challenged (407) and never reaches the dialplan.
    fn authenticate(&mut self) -> Result<Source, Response> {
        let cfg = self.switch.config();
        let req = &self.a.invite;
        let creds: Vec<Credentials> = req
            .headers
            .get_all(&Name::ProxyAuthorization)
            .filter_map(|v| Credentials::parse(v).ok())
            .filter(|c| c.realm == cfg.sip.domain)
            .collect();
        let mut stale = false;
        let mut verify = |user: &str, password: &str| -> bool {
            // The response must be for this Request-URI, or a sniffed
            // Proxy-Authorization could be replayed toward another number.
            let for_this_uri =
                |c: &&Credentials| Uri::parse(&c.uri).is_ok_and(|u| u.same_target(&req.uri));
            creds
                .iter()
                .filter(|c| c.username == user)
                .filter(for_this_uri)
                .any(|c| {
                    let v = self
                        .switch
                        .auth
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .verify(c, "INVITE", password, unix_now());
                    stale |= v == Verdict::Stale;
                    v == Verdict::Ok
                })
        };
        // A call the carrier sends to our registration with it: to the
        // registered username, from one of the trunk's gateways.
        let ruri_user = req.uri.sip().and_then(|u| u.user.clone());
        for t in &cfg.trunks {
            let Some(out) = t.outbound.as_ref().filter(|o| o.register_secs > 0) else {
                continue;
            };
            let from_gateway = out
                .gateways()
                .iter()
                .any(|g| g.host.ip() == self.a.peer.addr.ip());
            let to_us = out
                .auth
                .as_ref()
                .is_some_and(|a| ruri_user.as_deref() == Some(a.username.as_str()));
            if from_gateway && to_us {
                return Ok(Source::Trunk(t.name.clone()));
            }
        }
        for t in &cfg.trunks {
            let Some(inb) = &t.inbound else { continue };
            let by_ip = t.accepts_ip(self.a.peer.addr.ip());
            match &inb.auth {
                None if by_ip => return Ok(Source::Trunk(t.name.clone())),
                Some(a) if (by_ip || inb.from.is_empty()) && verify(&a.username, &a.password) => {
                    return Ok(Source::Trunk(t.name.clone()));
                }
                _ => {}
            }
        }
        for c in &creds {
            if let Some(u) = cfg.user(&c.username) {
                if verify(&u.name, &u.password) {
                    let from_user = req.from().ok().and_then(|f| {
                        f.uri
                            .sip()
                            .and_then(|s| s.user_decoded().map(|u| u.into_owned()))
                    });
                    if from_user.as_deref() != Some(u.name.as_str()) {
                        let mut r = response_to(req, 403, Some(&self.a.tag));
                        r.reason = "From Does Not Match Credentials".into();
                        return Err(r);
                    }
                    return Ok(Source::User(u.name.clone()));
                }
            }
        }
        Err(self.switch.challenge(req, 407, &self.a.tag, stale))
    }

    fn route(&mut self, ctx: &mut Context<Self>) {
        let source = match self.authenticate() {
            Ok(s) => s,
            Err(resp) => {
                self.a.final_sent = true;
                self.respond(self.a.tx, resp);
                return ctx.stop();
            }
        };
        // From here on the attempt is someone's: it gets a CDR.
        self.source = Some(source.clone());
        if let Source::Trunk(t) = &source {
            if !self.take_trunk(t) {
                return self.fail_a(503, Some("Trunk Busy"), ctx);
            }
        }
        if let Source::User(user) = &source {
            let dialed = self
                .a
                .invite
                .uri
                .sip()
                .and_then(|u| u.user_decoded())
                .map(|u| u.into_owned());
            if let Some(op) = dialed.and_then(|d| self.agent_code(&d)) {
                let user = user.clone();
                return self.agent_feature(user, op, ctx);
            }
        }
        // Loop protection: Max-Forwards (RFC 3261 §16.3 step 2 / §8.1.1.6).
        let mf = self.a.invite.max_forwards().unwrap_or(70);
        if mf == 0 {
            return self.fail_a(483, None, ctx);
        }
        let dialed = match self.dialed_number(&source) {
            Some(u) => u,
            None => return self.fail_a(404, Some("No Number Dialed"), ctx),
        };
        // The dialed number ends up in leg B's Request-URI and To: only
        // dialable characters, so escapes like %0D%0A cannot inject headers.
        if dialed.is_empty() || dialed.len() > 64 || !dialed.chars().all(dialable) {
            return self.fail_a(484, Some("Invalid Number"), ctx);
        }
        // §12.1.1: the dialog needs the caller's Contact.
        if !matches!(self.a.invite.contacts(), Ok(sip::Contacts::List(l)) if !l.is_empty()) {
            return self.fail_a(400, Some("Missing Contact"), ctx);
        }
        if let Err(r) = self.session_check() {
            self.a.final_sent = true;
            self.final_code = Some(422);
            self.respond(self.a.tx, r);
            return ctx.stop();
        }
        self.route_to(source, dialed, mf, ctx)
    }

    /// The number leg A dialed: the Request-URI's user, except for a call
    /// to our registration with a trunk, where it is `To`'s (the DID).
    fn dialed_number(&self, source: &Source) -> Option<String> {
        let ruri = self
            .first_invite()
            .uri
            .sip()
            .and_then(|u| u.user_decoded())
            .map(|u| u.into_owned());
        let Source::Trunk(name) = source else {
            return ruri;
        };
        let cfg = self.switch.config();
        let registered_as = cfg
            .trunk(name)
            .and_then(|t| t.outbound.as_ref())
            .filter(|o| o.register_secs > 0)
            .and_then(|o| o.auth.as_ref())
            .map(|a| a.username.clone());
        let dialed = if ruri.is_some() && ruri == registered_as {
            let to = self.first_invite().to().ok()?;
            to.uri
                .sip()
                .and_then(|u| u.user_decoded())
                .map(|u| u.into_owned())
        } else {
            ruri
        };
        let normalize = cfg
            .trunk(name)
            .and_then(|t| t.inbound.as_ref())
            .is_some_and(|i| i.normalize);
        match dialed {
            Some(d) if normalize => Some(cfg.numbering.to_e164(&d)),
            d => d,
        }
    }

    /// Routes `dialed` for `source` by the dialplan and calls leg B.
    fn route_to(&mut self, source: Source, dialed: String, mf: u8, ctx: &mut Context<Self>) {
        let cfg = self.switch.config();
        let kind = match source {
            Source::User(_) => RouteSource::Users,
            Source::Trunk(_) => RouteSource::Trunks,
        };
        let trunk = match &source {
            Source::Trunk(t) => Some(t.as_str()),
            Source::User(_) => None,
        };
        let owned = trunk
            .and_then(|t| cfg.trunk(t))
            .and_then(|t| t.inbound.as_ref())
            .is_none_or(|i| i.owns(&dialed));
        if !owned {
            tracing::info!(%dialed, ?source, "not a number of this trunk");
            self.end_reason = Some("not a number of this trunk".into());
            return self.fail_a(404, Some("Not A Number Of This Trunk"), ctx);
        }
        let Some(route) = cfg.route_for_call(&dialed, kind, trunk) else {
            tracing::info!(%dialed, ?source, "no route");
            return self.fail_a(404, None, ctx);
        };
        let number = route.rewrite(&dialed);
        let (kind_name, who) = match &source {
            Source::User(u) => ("user", u.as_str()),
            Source::Trunk(t) => ("trunk", t.as_str()),
        };
        let (target, closed) = cfg.target_at(route, self.switch.now());
        if closed {
            tracing::info!(%dialed, route = ?route.name, schedule = ?route.schedule, "closed: the route's closed target");
        }
        if let Source::User(user) = &source {
            if let Err(class) = cfg.permits(user, route, target) {
                tracing::info!(%user, %dialed, class = class.name(), "call refused: not permitted for the user");
                self.end_reason = Some(format!("{} calls not permitted", class.name()));
                return self.fail_a(403, Some(forbidden(class)), ctx);
            }
        }
        tracing::debug!(%dialed, %number, source = kind_name, who, route = ?route.name, "routing");
        let inband_a = match &source {
            Source::Trunk(t) => cfg.trunk(t).is_some_and(|t| t.inband_dtmf),
            Source::User(_) => false,
        };
        if let Some(mut entry) = self.switch.calls.get_mut(&self.call_id_a()) {
            entry.dialed = dialed.clone();
        }
        if !self.originated {
            self.publish_start(&format!("{kind_name}:{who}"), &dialed);
        }
        if let RouteTarget::Conference(room) = target {
            if self.originated {
                return self.fail_a(488, Some("Not For Click-To-Call"), ctx);
            }
            self.destination = Some(format!("room:{room}"));
            return self.join_room(room, inband_a, ctx);
        }
        if let RouteTarget::Flow(flow) = target {
            if self.originated {
                return self.fail_a(488, Some("Not For Click-To-Call"), ctx);
            }
            self.destination = Some(format!("flow:{flow}"));
            return self.start_ivr(flow, &dialed, inband_a, ctx);
        }
        if let RouteTarget::Queue(q) = target {
            if self.originated {
                return self.fail_a(488, Some("Not For Click-To-Call"), ctx);
            }
            let spec = crate::acd::router::CallerSpec {
                priority: route.priority,
                vip: route.vip,
                skills: route.skills.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            };
            return self.join_queue(q, spec, inband_a, ctx);
        }
        if let Err(code) = self.anchor_a(None, inband_a, ctx) {
            return self.fail_a(code, None, ctx);
        }
        self.call_b(&source, target, number, mf, None, ctx)
    }

    /// Calls leg B at `target` for `number` (routing decided), ringing for
    /// at most `ring` (default `[calls] no_answer_timeout_secs`).
    fn call_b(
        &mut self,
        source: &Source,
        target: &RouteTarget,
        number: String,
        mf: u8,
        ring: Option<Duration>,
        ctx: &mut Context<Self>,
    ) {
        let cfg = self.switch.config();
        let dests = match target {
            RouteTarget::Trunk(t) => self.trunk_dests(t, &number),
            _ => self.resolve(target, &number).map(|d| vec![d]),
        };
        let mut dests = match dests {
            Ok(d) if !d.is_empty() => d.into_iter(),
            Ok(_) => return self.fail_a(503, Some("Trunk Down"), ctx),
            Err((code, reason)) => return self.fail_a(code, reason, ctx),
        };
        let Some(dest) = dests.next() else { return };
        let rest: Vec<Dest> = dests.collect();
        if let RouteTarget::Trunk(t) = target {
            if !self.take_trunk(t) {
                return self.fail_a(503, Some("Trunk Busy"), ctx);
            }
        }
        self.b_user = match target {
            RouteTarget::User(u) => Some(u.clone()),
            RouteTarget::Users => Some(number.clone()),
            _ => None,
        };
        self.destination = Some(self.b_user.clone().unwrap_or_else(|| number.clone()));
        if let RouteTarget::Trunk(t) = target {
            self.trunk_out = Some(t.clone());
        }
        let inband_b = dest.inband_dtmf;
        let body = match self.anchor.as_mut().map(|a| {
            a.offer_b(LegOptions {
                inband_dtmf: inband_b,
            })
        }) {
            Some(Ok(b)) => Some(b),
            Some(Err(code)) => return self.fail_a(code, None, ctx),
            None => None,
        };
        let peer = dest.peer;
        let mut invite = self.build_b_invite(&dest, &number, source, mf.saturating_sub(1));
        self.session_offer_b(&mut invite);
        if let Some(body) = body {
            invite.headers.set(Name::ContentType, "application/sdp");
            invite.body = body;
        }
        if let Some(mut entry) = self.switch.calls.get_mut(&self.call_id_a()) {
            entry.destination = self.destination.clone();
        }
        self.b = Some(LegB::new(invite.clone(), peer, dest.auth));
        let call_id = invite.call_id().unwrap_or("").to_owned();
        self.to_shard(ShardCmd::Adopt {
            call_id,
            call: ctx.address(),
        });
        self.to_shard(ShardCmd::Request {
            peer,
            req: invite,
            owner: ctx.address().recipient(),
        });
        if self.ivr.is_none() && self.queue.is_none() && !self.answered_here {
            // From an IVR or a queue leg A is answered already and stays Up.
            self.phase = Phase::Calling;
        }
        let timeout = ring.unwrap_or(Duration::from_secs(cfg.calls.no_answer_timeout_secs as u64));
        self.no_answer = Some(ctx.run_later(timeout, |this, ctx| this.on_no_answer(ctx)));
        if let RouteTarget::Trunk(t) = target {
            self.gateway = Some(peer.addr.to_string());
            self.start_failover(t, rest, &number, source, mf, ctx);
        }
    }

    /// Where a route target sends `number`: a registered user's contact or
    /// a trunk's outbound host. Conference and hang-up targets are not
    /// destinations (the caller handles them first).
    fn resolve(
        &self,
        target: &RouteTarget,
        number: &str,
    ) -> Result<Dest, (u16, Option<&'static str>)> {
        let cfg = self.switch.config();
        match target {
            RouteTarget::Hangup { code } => Err((*code, None)),
            RouteTarget::Conference(_) | RouteTarget::Flow(_) | RouteTarget::Queue(_) => {
                Err((404, None))
            }
            RouteTarget::Users | RouteTarget::User(_) => {
                let user = match target {
                    RouteTarget::User(u) => u.as_str(),
                    _ => number,
                };
                if cfg.user(user).is_none() {
                    return Err((404, None));
                }
                let Some(binding) = lookup(&self.switch.location, user).into_iter().next() else {
                    return Err((480, Some("Not Registered")));
                };
                let Ok(uri) = Uri::parse(&binding.contact) else {
                    return Err((480, Some("Bad Contact")));
                };
                let host = self
                    .switch
                    .local_addr(binding.peer().transport)
                    .ip()
                    .to_string();
                Ok(Dest {
                    uri,
                    peer: binding.peer(),
                    to_host: host,
                    auth: None,
                    from_domain: None,
                    inband_dtmf: false,
                    trunk: None,
                    number: None,
                })
            }
            RouteTarget::Trunk(name) => self
                .trunk_dests(name, number)?
                .into_iter()
                .next()
                .ok_or((503, Some("Trunk Down"))),
        }
    }

    /// An INVITE to `dest` for `number`, from the caller (`source`).
    fn build_b_invite(
        &self,
        dest: &Dest,
        number: &str,
        source: &Source,
        max_forwards: u8,
    ) -> Request {
        let Dest {
            uri,
            peer,
            to_host,
            from_domain,
            ..
        } = dest;
        let (uri, peer, from_domain) = (uri.clone(), *peer, from_domain.clone());
        let cfg = self.switch.config();
        let local = self.switch.local_addr(peer.transport);
        let from_host = match from_domain {
            Some(d) => Host::Domain(d),
            None => Host::Ip(local.ip()),
        };
        let queue = self.queue_display().map(str::to_owned);
        let identity = self.identity_headers(dest, source, &from_host, queue.as_deref());
        let number = dest.number.as_deref().unwrap_or(number);
        let to_uri = Uri::parse(&format!("sip:{number}@{to_host}"))
            .unwrap_or_else(|_| Uri::Sip(SipUri::new(None, Host::Ip(peer.addr.ip()), None)));
        let shards = self.switch.shards.get().map_or(1, Vec::len);
        let call_id = call_id_for_shard(self.shard_index, shards, &local.ip().to_string());
        let mut r = Request::new(Method::Invite, uri);
        r.headers.push(Name::Via, self.switch.via(peer).to_string());
        r.headers.push(Name::MaxForwards, max_forwards.to_string());
        for (name, value) in identity {
            r.headers.push(name, value);
        }
        r.headers.push(Name::To, NameAddr::new(to_uri).to_string());
        r.headers.push(Name::CallId, call_id);
        r.headers.push(Name::CSeq, "1 INVITE");
        r.headers.push(
            Name::Contact,
            format!("<{}>", self.switch.contact(peer.transport)),
        );
        r.headers.push(
            Name::Allow,
            "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK",
        );
        r.headers.push(Name::Supported, "100rel");
        r.headers.push(Name::UserAgent, cfg.sip.user_agent.clone());
        if let Some(q) = queue {
            r.headers.push(Name::Other("X-Queue".into()), q);
        }
        copy_body(&self.a.invite, &mut r);
        r
    }

    // ---- leg B responses --------------------------------------------

    fn on_b_response(&mut self, tx: TxId, resp: Response, ctx: &mut Context<Self>) {
        let via = self.b.as_ref().map(|b| self.switch.via(b.peer));
        let Some(b) = self.b.as_mut() else { return };
        b.tx = Some(tx);
        let code = resp.code;
        if code < 200 {
            b.provisional = true;
            b.rang |= code > 100;
            if let Some(prack) = via.and_then(|v| b.prack_for(&resp, &v)) {
                let peer = b.peer;
                self.to_shard(ShardCmd::Request {
                    peer,
                    req: prack,
                    owner: ctx.address().recipient(),
                });
            }
            let Some(b) = self.b.as_mut() else { return };
            if std::mem::take(&mut b.cancel_pending) {
                return self.cancel_b(ctx);
            }
            if code == 100 {
                return;
            }
            if self.cancelled || self.a.final_sent {
                return;
            }
            if code == 180 || code == 183 {
                let mut r = response_to(&self.a.invite, code, Some(&self.a.tag));
                r.headers.push(
                    Name::Contact,
                    format!("<{}>", self.switch.contact(self.a.peer.transport)),
                );
                if self.anchor.is_some() {
                    // With a delayed offer ours goes in the 2xx only: an
                    // unreliable 18x cannot carry it (RFC 3261 §13.2.1).
                    let delayed = self.anchor.as_ref().is_some_and(Anchor::is_delayed);
                    if !resp.body().is_empty() {
                        match self.anchor.as_mut().map(|a| a.on_b_answer(resp.body())) {
                            Some(Ok(body)) if !delayed => set_sdp(&mut r, body),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::info!(error = %e, "unusable early-media SDP from leg B")
                            }
                            None => {}
                        }
                    }
                } else {
                    copy_body(&resp, &mut r);
                }
                self.provisional_a(r, ctx);
            }
            return;
        }
        if code < 300 {
            return self.on_b_answered(tx, resp, ctx);
        }
        if (code == 401 || code == 407) && !b.auth_tried && b.auth.is_some() && !self.cancelled {
            return self.retry_with_auth(Leg::B, &resp, ctx);
        }
        if (code == 408 || (500..600).contains(&code)) && self.fail_over(code, true, ctx) {
            return;
        }
        if (300..400).contains(&code) && self.follow_redirect(&resp, ctx) {
            return;
        }
        let Some(b) = self.b.as_mut() else { return };
        b.failed = true;
        self.cancel_no_answer(ctx);
        if self.cancelled {
            return ctx.stop();
        }
        // Leg B's reason phrase travels with its code; a mapped code gets
        // its own standard phrase.
        let code_a = map_failure(code);
        let reason = (code_a == code).then(|| resp.reason.clone());
        self.fail_a(code_a, reason.as_deref(), ctx);
    }

    fn on_b_answered(&mut self, tx: TxId, resp: Response, ctx: &mut Context<Self>) {
        self.cancel_no_answer(ctx);
        let Some(b) = self.b.as_mut() else { return };
        if b.dialog.is_some() {
            // A 2xx from a second fork (another To tag, §13.2.2.4): ACK it
            // and end that dialog at once; the call stays with the first.
            let (invite, peer) = (b.invite.clone(), b.peer);
            return self.ack_and_bye(&invite, peer, tx, &resp, ctx);
        }
        let mut dialog = match Dialog::uac(&b.invite, &resp) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "bad 2xx on leg B");
                return self.fail_a(502, Some("Bad Answer From Callee"), ctx);
            }
        };
        // PRACKs on the early dialog used CSeq numbers after the INVITE's.
        if let Some(early) = &b.early {
            dialog.local_seq = dialog.local_seq.max(early.local_seq);
        }
        b.dialog = Some(dialog);
        self.session_answered_b(&resp, ctx);
        let answer = match self.anchor.as_mut() {
            // The answer came in a 183 already and the 2xx does not repeat it.
            Some(anchor) if resp.body().is_empty() && anchor.answered() => anchor.answer_a(),
            Some(anchor) => match anchor.on_b_answer(resp.body()) {
                Ok(body) => Some(body),
                Err(e) => {
                    tracing::info!(error = %e, "unusable SDP answer from leg B");
                    None
                }
            },
            None => None,
        };
        let Some(b) = self.b.as_mut() else { return };
        let via = self.switch.via(b.peer);
        let peer = b.peer;
        let ack = b.dialog.as_mut().map(|d| d.request(Method::Ack, &via, 70));
        if let Some(ack) = ack {
            self.to_shard(ShardCmd::Ack2xx { tx, peer, ack });
        }
        let a_answered_here =
            self.originated || self.ivr.is_some() || self.queue.is_some() || self.answered_here;
        if self.cancelled || (self.a.final_sent && !a_answered_here) || self.ended[Leg::A as usize]
        {
            // 200 crossed our CANCEL (or leg A is gone): hang leg B up.
            return self.hangup(&[Leg::B], ctx);
        }
        if self.anchor.is_some() && answer.is_none() && self.originated {
            // No usable answer: no audio; both legs go.
            self.end_reason = Some("no usable SDP answer".into());
            return self.hangup(&[Leg::A, Leg::B], ctx);
        }
        if self.originated {
            return self.originate_connected(ctx);
        }
        if self.ivr.is_some() {
            if self.anchor.is_some() && answer.is_none() {
                self.hangup_b_only(ctx);
                return self.ivr_b_failed(488, ctx);
            }
            return self.ivr_connected(ctx);
        }
        if self.answered_here {
            // A queue's overflow reached a user: the two talk.
            self.bridge_answered_b();
            return;
        }
        if self.anchor.is_some() && answer.is_none() {
            // No usable answer: the call cannot carry audio.
            self.hangup(&[Leg::B], ctx);
            self.a.final_sent = true;
            let r = response_to(&self.a.invite, 488, Some(&self.a.tag));
            return self.respond(self.a.tx, r);
        }
        let mut r = self.ok_for_a();
        match answer {
            Some(body) => set_sdp(&mut r, body),
            None => copy_body(&resp, &mut r),
        }
        self.send_ok_a(r, ctx);
    }

    /// ACKs a 2xx we do not want (a second fork, a third party that comes
    /// too late) and ends that dialog with a BYE whose answer is absorbed.
    fn ack_and_bye(
        &mut self,
        invite: &Request,
        peer: Peer,
        tx: TxId,
        resp: &Response,
        ctx: &mut Context<Self>,
    ) {
        let Ok(mut dialog) = Dialog::uac(invite, resp) else {
            return;
        };
        let ack = dialog.request(Method::Ack, &self.switch.via(peer), 70);
        self.to_shard(ShardCmd::Ack2xx { tx, peer, ack });
        self.bye_aside(&mut dialog, peer, ctx);
    }

    /// Sends a BYE outside the call's own hang-up (its answer does not
    /// count towards `byes_pending`).
    fn bye_aside(&mut self, dialog: &mut Dialog, peer: Peer, ctx: &mut Context<Self>) {
        let via = self.switch.via(peer);
        self.stray_byes.push(via.branch().unwrap_or("").to_owned());
        let bye = dialog.request(Method::Bye, &via, 70);
        self.to_shard(ShardCmd::Request {
            peer,
            req: bye,
            owner: ctx.address().recipient(),
        });
    }

    /// Leg B answered a call the switch had answered itself (IVR, queue,
    /// overflow): the prompt or music stops, A and B are bridged, and a
    /// recording follows the two.
    fn bridge_answered_b(&self) {
        if let Some(a) = &self.anchor {
            a.session.stop_playing(a.leg_a());
            a.bridge();
            if self.rec != Rec::Off {
                a.session
                    .set_recording_sides(a.leg_b().map(|b| (a.leg_a(), b)));
            }
        }
    }

    /// A 200 for leg A's INVITE, with our Contact and Allow.
    fn ok_for_a(&self) -> Response {
        let mut r = response_to(&self.a.invite, 200, Some(&self.a.tag));
        r.headers.push(
            Name::Contact,
            format!("<{}>", self.switch.contact(self.a.peer.transport)),
        );
        r.headers.push(
            Name::Allow,
            "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE",
        );
        self.session_headers(Leg::A, &mut r);
        r
    }

    /// Answers leg A with `r` (a 200): its dialog starts, recording and the
    /// maximum-duration timer too.
    fn send_ok_a(&mut self, r: Response, ctx: &mut Context<Self>) {
        self.a.dialog = Dialog::uas(&self.a.invite, &self.a.tag).ok();
        self.a.final_sent = true;
        self.kept_txs.push((self.shard_index, self.a.tx));
        self.ok_to_a(r);
        self.phase = Phase::Answered;
        self.session_restart(Leg::A, ctx);
        self.now_answered(ctx);
    }

    /// The call is answered (leg B took it): recording, the maximum
    /// duration, the registry and the event.
    fn now_answered(&mut self, ctx: &mut Context<Self>) {
        let now = unix_ms();
        self.answer_ms = Some(now);
        if let Some(mut entry) = self.switch.calls.get_mut(&self.call_id_a()) {
            entry.answer_ms = Some(now);
        }
        self.switch.publish(
            "call.answer",
            serde_json::json!({ "call_id": self.call_id_a(), "destination": self.destination }),
        );
        if let Err(e) = self.start_recording(false) {
            tracing::debug!(call_id = %self.call_id_a(), error = %e, "not recorded");
        }
        let max = self.switch.config().calls.max_duration_secs;
        if max > 0 {
            // Both ends may vanish without a BYE; nothing else would end the call.
            ctx.run_later(Duration::from_secs(max as u64), |this, ctx| {
                tracing::info!(call_id = %this.call_id_a(), "maximum call duration reached");
                this.end_reason
                    .get_or_insert_with(|| "maximum duration".into());
                this.hangup(&[Leg::A, Leg::B], ctx);
            });
        }
    }

    fn retry_with_auth(&mut self, leg: Leg, resp: &Response, ctx: &mut Context<Self>) {
        let via = self.peer_of(leg).map(|p| self.switch.via(p));
        let Some(b) = self.out_mut(leg) else { return };
        let Some(auth) = b.auth.clone() else { return };
        let Some(via) = via else { return };
        b.auth_tried = true;
        let (hname, aname) = if resp.code == 401 {
            (Name::WwwAuthenticate, Name::Authorization)
        } else {
            (Name::ProxyAuthenticate, Name::ProxyAuthorization)
        };
        let Some(ch) = resp
            .headers
            .get_all(&hname)
            .find_map(|v| Challenge::parse(v).ok())
        else {
            if leg == Leg::C {
                tracing::info!(call_id = %self.call_id_a(), "three-way: trunk authentication failed");
                return self.drop_c(ctx);
            }
            return self.fail_a(503, Some("Trunk Authentication Failed"), ctx);
        };
        let uri = b.invite.uri.to_string();
        let creds = digest_respond(
            &ch,
            "INVITE",
            &uri,
            &auth.username,
            &auth.password,
            &new_tag(),
            1,
        );
        let mut inv = b.invite.clone();
        inv.headers.remove(&Name::Via);
        inv.headers.push_front(Name::Via, via.to_string());
        let seq = inv.cseq().map_or(1, |c| c.seq) + 1;
        inv.headers.set(Name::CSeq, format!("{seq} INVITE"));
        inv.headers.push(aname, creds.to_header_value());
        b.invite = inv.clone();
        // A new INVITE: §9.1 applies afresh to its provisional responses.
        b.provisional = false;
        b.cancel_pending = false;
        let peer = b.peer;
        self.to_shard(ShardCmd::Request {
            peer,
            req: inv,
            owner: ctx.address().recipient(),
        });
    }

    fn on_no_answer(&mut self, ctx: &mut Context<Self>) {
        self.no_answer = None;
        if self.ivr_transferring() {
            self.cancel_b(ctx);
            return self.ivr_b_failed(480, ctx);
        }
        if self.answered_here && self.b.as_ref().is_some_and(|b| b.dialog.is_none()) {
            self.cancel_b(ctx);
            return self.fail_a(480, None, ctx);
        }
        if self.phase == Phase::Originating {
            self.end_reason
                .get_or_insert_with(|| "the user did not answer".into());
            self.final_code.get_or_insert(480);
            return self.hangup(&[Leg::A], ctx);
        }
        if self.phase != Phase::Calling {
            return;
        }
        if self.originated {
            return self.fail_a(480, None, ctx);
        }
        if !self.a.final_sent {
            self.a.final_sent = true;
            let mut r = response_to(&self.a.invite, 480, Some(&self.a.tag));
            r.reason = "No Answer".into();
            self.respond(self.a.tx, r);
        }
        self.abandon_b(ctx);
    }

    /// Leg A is answered already (487 or 480): cancel leg B and wait, at
    /// most Timer B, for its final response, so a 2xx crossing the CANCEL
    /// is still ACKed and hung up.
    fn abandon_b(&mut self, ctx: &mut Context<Self>) {
        self.cancelled = true;
        self.cancel_no_answer(ctx);
        if self.b.is_some() && self.phase == Phase::Calling {
            self.cancel_b(ctx);
            ctx.run_later(Duration::from_secs(33), |_, ctx| ctx.stop());
        } else {
            ctx.stop();
        }
    }

    fn cancel_no_answer(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.no_answer.take() {
            ctx.cancel_future(h);
        }
    }

    /// CANCEL leg B's INVITE (§9.1: same branch, R-URI, Call-ID, From, To,
    /// CSeq number).
    fn cancel_b(&mut self, ctx: &mut Context<Self>) {
        self.cancel_out(Leg::B, ctx)
    }

    /// CANCEL leg B's or C's INVITE.
    fn cancel_out(&mut self, leg: Leg, ctx: &mut Context<Self>) {
        let Some(b) = self.out_mut(leg) else { return };
        if !b.provisional {
            b.cancel_pending = true;
            return;
        }
        let c = cancel_for(&b.invite);
        let peer = b.peer;
        self.to_shard(ShardCmd::Request {
            peer,
            req: c,
            owner: ctx.address().recipient(),
        });
    }

    // ---- in-dialog ----------------------------------------------------

    fn leg_of(&self, call_id: Option<&str>) -> Option<Leg> {
        let call_id = call_id?;
        if call_id == self.a.invite.call_id().unwrap_or("") {
            Some(Leg::A)
        } else if self
            .b
            .as_ref()
            .is_some_and(|b| b.invite.call_id() == Some(call_id))
        {
            Some(Leg::B)
        } else if self
            .c
            .as_ref()
            .is_some_and(|c| c.invite.call_id() == Some(call_id))
        {
            Some(Leg::C)
        } else {
            None
        }
    }

    /// Leg B or C (the legs the switch called).
    fn out_mut(&mut self, leg: Leg) -> Option<&mut LegB> {
        match leg {
            Leg::A => None,
            Leg::B => self.b.as_mut(),
            Leg::C => self.c.as_mut(),
        }
    }

    fn dialog_mut(&mut self, leg: Leg) -> Option<&mut Dialog> {
        match leg {
            Leg::A => self.a.dialog.as_mut(),
            _ => self.out_mut(leg).and_then(|b| b.dialog.as_mut()),
        }
    }

    fn peer_of(&self, leg: Leg) -> Option<Peer> {
        match leg {
            Leg::A => Some(self.a.peer),
            Leg::B => self.b.as_ref().map(|b| b.peer),
            Leg::C => self.c.as_ref().map(|c| c.peer),
        }
    }

    fn on_request(&mut self, tx: Option<TxId>, req: Request, ctx: &mut Context<Self>) {
        let Some(leg) = self.leg_of(req.call_id()) else {
            // A leg this call gave up (an old B after a transfer, a dropped
            // third party): its dialog is gone (§12.2.2).
            if let Some(tx) = tx {
                self.respond(tx, response_to(&req, 481, Some(&new_tag())));
            }
            return;
        };
        if req.method == Method::Prack && leg == Leg::A {
            // Hop by hop (RFC 3262): answered here, in the early dialog too.
            if let Some(tx) = tx {
                self.on_prack_a(tx, req, ctx);
            }
            return;
        }
        // §12.2.2: a request belongs to the dialog only with its Call-ID and
        // both tags; anything else is 481 (and cannot end or re-route the call).
        let matches = self.dialog_mut(leg).is_some_and(|d| d.matches(&req));
        if req.method == Method::Ack {
            if matches && leg == Leg::A && self.phase == Phase::Answered {
                self.phase = Phase::Up;
                tracing::debug!(call_id = %self.call_id_a(), "call up");
                self.on_ack_answer(&req, ctx);
            }
            return;
        }
        let Some(tx) = tx else { return };
        let in_order = matches
            && self
                .dialog_mut(leg)
                .is_some_and(|d| d.on_request(&req).is_ok());
        if !matches || self.ended[leg as usize] {
            let r = response_to(&req, 481, Some(&new_tag()));
            return self.respond(tx, r);
        }
        if !in_order {
            let r = response_to(&req, 500, None);
            return self.respond(tx, r);
        }
        if req.method == Method::Bye {
            let r = response_to(&req, 200, None);
            self.ended[leg as usize] = true;
            if leg == Leg::C {
                self.respond(tx, r);
                tracing::info!(call_id = %self.call_id_a(), "three-way: third party hung up");
                return self.drop_c(ctx);
            }
            let (other, by) = match leg {
                Leg::A => (Leg::B, "caller hung up"),
                _ => (Leg::A, "callee hung up"),
            };
            self.end_reason.get_or_insert_with(|| by.to_owned());
            if self.originated && self.answer_ms.is_none() {
                // Click-to-call: the user gave up while the number rang.
                self.cancelled = true;
                self.final_code.get_or_insert(487);
            }
            // The CDR is durable before the BYE is answered: a hang-up the
            // caller saw acknowledged always has its record.
            return self.write_cdr_then(ctx, move |this, ctx| {
                this.respond(tx, r);
                this.hangup_now(&[other], ctx);
            });
        }
        if self.phase == Phase::Ending {
            let r = response_to(&req, 481, None);
            return self.respond(tx, r);
        }
        if req.method == Method::Refer {
            return self.on_refer(leg, tx, req, ctx);
        }
        if let Some(digit) = info_digit(&req) {
            tracing::info!(call_id = %self.call_id_a(), leg = ?leg, %digit, "dtmf by INFO");
            if leg == Leg::A && (self.in_ivr() || self.in_queue()) {
                // The switch is the other end: the digit is its own.
                self.digits.push(digit);
                self.respond(tx, response_to(&req, 200, None));
                return if self.in_ivr() {
                    self.ivr_digit(digit, ctx)
                } else {
                    self.queue_digit(digit, ctx)
                };
            }
            if leg != Leg::C {
                // Feature codes work by INFO too; the INFO is still relayed.
                self.digits.push(digit);
                self.on_feature_digit(leg, digit, ctx);
            }
        }
        if leg != Leg::C && matches!(req.method, Method::Invite | Method::Update) {
            self.session_refreshed_by(leg, ctx);
            if req.method == Method::Update && req.body().is_empty() {
                // A session refresh without an offer: answered here.
                return self.answer_in_dialog(leg, tx, req);
            }
        }
        if leg == Leg::C && req.method == Method::Invite && self.takeover.is_some() {
            // Our re-INVITE to this party is pending (§14.1).
            return self.respond(tx, response_to(&req, 491, None));
        }
        if self.b.as_ref().is_none_or(|b| b.dialog.is_none()) || leg == Leg::C {
            // The call ends at the switch (a conference room), or the
            // request is the third party's: nobody to relay to, so the
            // switch answers itself.
            return self.answer_in_dialog(leg, tx, req);
        }
        self.relay(leg, tx, req, ctx);
    }

    /// Sends a copy of an in-dialog request (re-INVITE, UPDATE, INFO, ...)
    /// to the other leg; its response comes back in `on_relay_response`.
    fn relay(&mut self, from: Leg, tx: TxId, req: Request, ctx: &mut Context<Self>) {
        let to = if from == Leg::A { Leg::B } else { Leg::A };
        let Some((mut out, peer, branch)) = self.leg_request(to, req.method.clone()) else {
            let r = response_to(&req, 481, None);
            return self.respond(tx, r);
        };
        if matches!(req.method, Method::Invite | Method::Update) {
            // It refreshes `to`'s session too (§7.4).
            self.session_request_headers(to, &mut out);
        }
        let side = if from == Leg::A { Side::A } else { Side::B };
        let reoffer = match self.anchor.as_mut() {
            Some(a) if !req.body().is_empty() && is_sdp(&req) => Some(a.reoffer(side, req.body())),
            _ => None,
        };
        match reoffer {
            Some(Ok(body)) => set_sdp(&mut out, body),
            Some(Err(e)) => {
                tracing::info!(error = %e, "unusable SDP in re-offer");
                let r = response_to(&req, 488, None);
                return self.respond(tx, r);
            }
            None => copy_body(&req, &mut out),
        }
        let sent_seq = out.cseq().map_or(0, |c| c.seq);
        self.relays.insert(
            branch,
            Relay {
                server_tx: tx,
                from,
                request: req,
                sent_seq,
            },
        );
        self.to_shard(ShardCmd::Request {
            peer,
            req: out,
            owner: ctx.address().recipient(),
        });
    }

    fn on_relay_response(
        &mut self,
        tx: TxId,
        resp: Response,
        relay: Relay,
        ctx: &mut Context<Self>,
    ) {
        let mut restart = None;
        let Relay {
            server_tx,
            from,
            request: orig,
            sent_seq,
        } = relay;
        let mut r = response_to(&orig, resp.code, None);
        r.reason = resp.reason.clone();
        if resp.code < 300 && orig.method == Method::Invite {
            let to = if from == Leg::A { Leg::B } else { Leg::A };
            self.ack_reinvite(to, tx, sent_seq);
            r.headers.push(
                Name::Contact,
                format!("<{}>", self.switch.contact(self.a.peer.transport)),
            );
            self.keep_tx(orig.call_id(), server_tx);
        }
        if resp.code < 300 && matches!(orig.method, Method::Invite | Method::Update) {
            self.session_headers(from, &mut r);
            // Our request to the other leg refreshed its session too.
            let to = if from == Leg::A { Leg::B } else { Leg::A };
            if matches!(
                (to, &self.session, &self.session_b),
                (Leg::A, Some(_), _) | (Leg::B, _, Some(_))
            ) {
                restart = Some(to);
            }
        }
        let reanswer = match self.anchor.as_mut() {
            Some(a) if resp.code < 300 && !resp.body().is_empty() => Some(a.reanswer(resp.body())),
            Some(a) => {
                a.abandon_reoffer();
                None
            }
            None => None,
        };
        match reanswer {
            Some(Ok(body)) => set_sdp(&mut r, body),
            Some(Err(e)) => tracing::info!(error = %e, "unusable SDP answer to a re-offer"),
            None if self.anchor.is_none() => copy_body(&resp, &mut r),
            None => {}
        }
        self.respond(server_tx, r);
        if let Some(leg) = restart {
            self.session_restart(leg, ctx);
        }
    }

    /// A request in `leg`'s dialog with a fresh Via (and our Contact when
    /// it is a target refresh or a NOTIFY): the request, where it goes, and
    /// its Via branch (how its responses are told apart).
    fn leg_request(&mut self, leg: Leg, method: Method) -> Option<(Request, Peer, String)> {
        let peer = self.peer_of(leg)?;
        let via = self.switch.via(peer);
        let contact = format!("<{}>", self.switch.contact(peer.transport));
        let mut r = self.dialog_mut(leg)?.request(method.clone(), &via, 70);
        if matches!(method, Method::Invite | Method::Update | Method::Notify) {
            r.headers.push(Name::Contact, contact);
        }
        Some((r, peer, via.branch().unwrap_or("").to_owned()))
    }

    /// ACKs the 2xx (client transaction `tx`) to our re-INVITE with CSeq
    /// `seq` on `leg`; the transaction is kept until the call ends.
    fn ack_reinvite(&mut self, leg: Leg, tx: TxId, seq: u32) {
        let Some((mut ack, peer, _)) = self.leg_request(leg, Method::Ack) else {
            return;
        };
        // The ACK carries the re-INVITE's CSeq, not the dialog's latest.
        ack.headers.set(Name::CSeq, format!("{seq} ACK"));
        let call_id = ack.call_id().map(str::to_owned);
        self.to_shard(ShardCmd::Ack2xx { tx, peer, ack });
        self.keep_tx(call_id.as_deref(), tx);
    }

    /// Sends BYE on each of `legs` that has a live dialog, and stops when
    /// every BYE is answered (or after Timer F). Legs already ended (BYE
    /// glare) are skipped.
    fn hangup(&mut self, legs: &[Leg], ctx: &mut Context<Self>) {
        if self.answer_ms.is_some() && !self.cdr_written {
            // An answered call the switch ends: its record first.
            let legs = legs.to_vec();
            return self.write_cdr_then(ctx, move |this, ctx| this.hangup_now(&legs, ctx));
        }
        self.hangup_now(legs, ctx)
    }

    fn hangup_now(&mut self, legs: &[Leg], ctx: &mut Context<Self>) {
        let first = self.phase != Phase::Ending;
        if first {
            if let Some(a) = &self.anchor {
                if self.rec != Rec::Off {
                    a.session.stop_recording();
                }
            }
            self.rec = Rec::Off;
            // The agent is free (wrap-up) now, not when the BYEs are answered.
            self.queue_finish();
        }
        self.phase = Phase::Ending;
        self.cancel_no_answer(ctx);
        // A three-way call's third party goes with the call.
        let ringing_c = self.c.as_ref().is_some_and(|c| c.dialog.is_none());
        if ringing_c {
            self.cancel_out(Leg::C, ctx);
            self.drop_c(ctx);
        }
        let with_c: Vec<Leg>;
        let legs = if self.c.is_some() && !legs.contains(&Leg::C) {
            with_c = legs.iter().copied().chain([Leg::C]).collect();
            &with_c[..]
        } else {
            legs
        };
        // Agents' phones ringing for a queued caller are cancelled; the
        // call waits for their final responses.
        self.drop_ringers(ctx);
        let mut ringing = !self.finals_owed.is_empty();
        for &leg in legs {
            if leg == Leg::A && self.withdraw_ok_a(480) {
                // The caller's 2xx was still waiting for its PRACK.
                continue;
            }
            if self.ended[leg as usize] {
                continue;
            }
            let Some(peer) = self.peer_of(leg) else {
                self.ended[leg as usize] = true;
                continue;
            };
            if self.dialog_mut(leg).is_none() && self.ring_cancelled(leg, ctx) {
                // Not answered yet: cancelled; its final response (or a 2xx
                // crossing the CANCEL, then hung up) ends the wait.
                ringing = true;
                continue;
            }
            self.ended[leg as usize] = true;
            let via = self.switch.via(peer);
            if let Some(d) = self.dialog_mut(leg) {
                let bye = d.request(Method::Bye, &via, 70);
                self.byes_pending += 1;
                self.to_shard(ShardCmd::Request {
                    peer,
                    req: bye,
                    owner: ctx.address().recipient(),
                });
            }
        }
        if self.byes_pending == 0 && !ringing {
            return ctx.stop();
        }
        if first {
            // Give up waiting for the BYEs' answers after Timer F.
            ctx.run_later(Duration::from_secs(33), |_, ctx| ctx.stop());
        }
    }
}

impl Call {
    /// Counts this call against trunk `t`'s limits (once); false if they
    /// are reached.
    fn take_trunk(&mut self, t: &str) -> bool {
        if self.trunk_slots.iter().any(|x| x == t) {
            return true;
        }
        if !self.switch.trunk_take(t) {
            tracing::info!(call_id = %self.call_id_a(), trunk = %t, "trunk call limit reached");
            self.end_reason = Some(format!("trunk {t} busy (call limit)"));
            return false;
        }
        self.trunk_slots.push(t.to_owned());
        true
    }

    /// A final response to a given-up INVITE came: an ending call whose
    /// BYEs are answered may stop now.
    fn final_owed_came(&mut self, call_id: Option<&str>, ctx: &mut Context<Self>) {
        let Some(id) = call_id else { return };
        let before = self.finals_owed.len();
        self.finals_owed.retain(|x| x != id);
        let b_settled = self
            .b
            .as_ref()
            .is_none_or(|b| b.dialog.is_some() || b.failed);
        if before != self.finals_owed.len()
            && self.finals_owed.is_empty()
            && self.phase == Phase::Ending
            && self.byes_pending == 0
            && b_settled
        {
            ctx.stop();
        }
    }

    /// Hanging up `leg` before it answered: its INVITE is cancelled (or
    /// will be, at its first provisional response, §9.1). False if it has
    /// no INVITE outstanding.
    fn ring_cancelled(&mut self, leg: Leg, ctx: &mut Context<Self>) -> bool {
        match leg {
            Leg::A if self.originated && !self.a_final => {
                if self.a_provisional {
                    self.to_shard(ShardCmd::Request {
                        peer: self.a.peer,
                        req: cancel_for(&self.a.invite),
                        owner: ctx.address().recipient(),
                    });
                } else {
                    self.a_cancel_pending = true;
                }
                true
            }
            Leg::B
                if self
                    .b
                    .as_ref()
                    .is_some_and(|b| !b.failed && b.dialog.is_none()) =>
            {
                self.cancelled = true;
                self.cancel_b(ctx);
                true
            }
            _ => false,
        }
    }
}

/// The reason phrase of a 403 for a call of `class` the user may not place.
fn forbidden(class: config::CallClass) -> &'static str {
    match class {
        config::CallClass::International => "International Calls Not Permitted",
        config::CallClass::National => "External Calls Not Permitted",
        config::CallClass::Internal => "Not Permitted",
    }
}

/// A character a dialed number may hold: anything else could end up as
/// header syntax in the Request-URI or To of the leg it is sent on.
/// The digit of an INFO carrying DTMF (`application/dtmf-relay`:
/// `Signal=5`, or `application/dtmf`: `5`), as phones send it (no RFC; the
/// de-facto format of Cisco and others).
fn info_digit(req: &Request) -> Option<char> {
    if req.method != Method::Info {
        return None;
    }
    let body = std::str::from_utf8(req.body()).ok()?;
    let value = match req.content_type()?.as_str() {
        "application/dtmf-relay" => body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    let mut chars = value.chars();
    let d = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && matches!(d, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(d)
}

fn dialable(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+*#._-".contains(c)
}

/// A CANCEL for `inv` (§9.1: same branch, R-URI, Call-ID, From, To, CSeq number).
fn cancel_for(inv: &Request) -> Request {
    let mut c = Request::new(Method::Cancel, inv.uri.clone());
    if let Ok(v) = inv.top_via() {
        c.headers.push(Name::Via, v.to_string());
    }
    c.headers.push(Name::MaxForwards, "70");
    c.headers.copy_from(&inv.headers, &Name::From);
    c.headers.copy_from(&inv.headers, &Name::To);
    c.headers.copy_from(&inv.headers, &Name::CallId);
    c.headers.push(
        Name::CSeq,
        format!("{} CANCEL", inv.cseq().map_or(1, |s| s.seq)),
    );
    c.headers.copy_from(&inv.headers, &Name::Route);
    c
}

/// Sets an SDP body.
fn set_sdp(msg: &mut impl SipMessage, body: Bytes) {
    msg.headers_mut().set(Name::ContentType, "application/sdp");
    *msg.body_mut() = body;
}

/// The message's body is SDP (a missing Content-Type is taken as SDP, RFC 3261 §13.2.1).
fn is_sdp(msg: &impl SipMessage) -> bool {
    msg.headers().get(&Name::ContentType).is_none_or(|ct| {
        ct.trim()
            .to_ascii_lowercase()
            .starts_with("application/sdp")
    })
}

/// Copies body and Content-Type from one message to another.
fn copy_body(from: &impl SipMessage, to: &mut impl SipMessage) {
    if !from.body().is_empty() {
        if let Some(ct) = from.headers().get(&Name::ContentType) {
            to.headers_mut().set(Name::ContentType, ct.to_owned());
        }
        *to.body_mut() = from.body().clone();
    }
}

/// The failure code leg A gets for leg B's final `code`: the common ones
/// pass unchanged (486, 480, 404, 408, 487, 603 ...), server errors of the
/// far end become 502/503 so the caller sees where it failed.
fn map_failure(code: u16) -> u16 {
    match code {
        300..=399 => 480,
        401 | 407 => 403,
        500 | 501 | 505 | 513 => 502,
        c => c,
    }
}

impl Actor for Call {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let caller = self
            .a
            .invite
            .from()
            .ok()
            .and_then(|f| f.uri.sip().and_then(|u| u.user.clone()))
            .unwrap_or_default();
        let (caller, dialed) = match &self.source {
            Some(Source::User(u)) if self.originated => (u.clone(), self.orig_number.clone()),
            _ => (caller, String::new()),
        };
        self.switch.calls.insert(
            self.call_id_a(),
            CallEntry {
                addr: ctx.address(),
                caller,
                dialed,
                destination: None,
                start_ms: self.start_ms,
                answer_ms: None,
            },
        );
        if self.originated {
            return self.ring_user(ctx);
        }
        self.route(ctx);
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.ivr_finish();
        self.queue_finish();
        self.acd_callback_end();
        self.release(Some(ctx.address()));
    }
}

impl Handler<CallEvent> for Call {
    type Result = ();

    fn handle(&mut self, ev: CallEvent, ctx: &mut Context<Self>) {
        match ev {
            CallEvent::Request { tx, req, .. } => self.on_request(tx, req, ctx),
            CallEvent::Response { tx, resp } => {
                let branch = resp
                    .top_via()
                    .ok()
                    .and_then(|v| v.branch().map(str::to_owned))
                    .unwrap_or_default();
                let method = resp.cseq().map(|c| c.method).unwrap_or(Method::Options);
                if self.is_takeover(&branch) {
                    return self.on_takeover_response(tx, resp, ctx);
                }
                if self.is_resume(&branch) {
                    return self.on_resume_response(tx, resp);
                }
                if self.relays.contains_key(&branch) {
                    if resp.code >= 200 {
                        if let Some(relay) = self.relays.remove(&branch) {
                            self.on_relay_response(tx, resp, relay, ctx);
                        }
                    }
                    return;
                }
                if let Some(i) = self.stray_byes.iter().position(|b| *b == branch) {
                    if resp.code >= 200 {
                        self.stray_byes.swap_remove(i);
                    }
                    return;
                }
                if method == Method::Invite && resp.code >= 200 {
                    self.final_owed_came(resp.call_id(), ctx);
                }
                match method {
                    Method::Invite if self.is_ringer(resp.call_id()) => {
                        self.on_ringer_response(tx, resp, ctx)
                    }
                    Method::Invite if self.leg_of(resp.call_id()) == Some(Leg::B) => {
                        self.on_b_response(tx, resp, ctx)
                    }
                    Method::Invite
                        if self.originated && self.leg_of(resp.call_id()) == Some(Leg::A) =>
                    {
                        self.on_a_response(tx, resp, ctx)
                    }
                    Method::Invite if self.leg_of(resp.call_id()) == Some(Leg::C) => {
                        self.on_c_response(tx, resp, ctx)
                    }
                    Method::Invite if resp.code < 200 => {
                        // A third party given up before its first provisional
                        // response: its CANCEL can go now (§9.1).
                        let owed = self
                            .c_done
                            .iter_mut()
                            .find(|c| c.invite.call_id() == resp.call_id())
                            .and_then(|c| {
                                std::mem::take(&mut c.cancel_pending)
                                    .then(|| (cancel_for(&c.invite), c.peer))
                            });
                        if let Some((req, peer)) = owed {
                            self.to_shard(ShardCmd::Request {
                                peer,
                                req,
                                owner: ctx.address().recipient(),
                            });
                        }
                    }
                    Method::Invite if (200..300).contains(&resp.code) => {
                        // A third party that answers after it was given up.
                        // Its transaction is kept past the 2xx: released
                        // with the call's.
                        let late = self
                            .c_done
                            .iter_mut()
                            .find(|c| c.invite.call_id() == resp.call_id())
                            .map(|c| {
                                c.tx = Some(tx);
                                (c.invite.clone(), c.peer)
                            });
                        if let Some((invite, peer)) = late {
                            self.ack_and_bye(&invite, peer, tx, &resp, ctx);
                        }
                    }
                    Method::Update if resp.code >= 200 => {
                        if let Some(leg @ (Leg::A | Leg::B)) = self.leg_of(resp.call_id()) {
                            self.session_update_answered(leg, resp.code, ctx)
                        }
                    }
                    Method::Bye if resp.code >= 200 => {
                        self.byes_pending = self.byes_pending.saturating_sub(1);
                        if self.byes_pending == 0 && self.finals_owed.is_empty() {
                            ctx.stop();
                        }
                    }
                    _ => {}
                }
            }
            CallEvent::Cancelled => {
                if self.withdraw_ok_a(487) {
                    // Answered, but the 2xx still waited for a PRACK.
                    self.end_reason
                        .get_or_insert_with(|| "caller cancelled".into());
                    return self.hangup(&[Leg::B], ctx);
                }
                if self.a.final_sent {
                    return;
                }
                self.end_reason
                    .get_or_insert_with(|| "caller cancelled".into());
                let r = response_to(&self.a.invite, 487, Some(&self.a.tag));
                self.a.final_sent = true;
                self.respond(self.a.tx, r);
                self.abandon_b(ctx);
            }
            CallEvent::Timeout { tx } => {
                if self.a.tx == tx && self.phase == Phase::Answered {
                    // §13.3.1.4: no ACK for our 2xx: end the call, both legs.
                    self.end_reason.get_or_insert_with(|| "no ACK".into());
                    return self.hangup(&[Leg::A, Leg::B], ctx);
                }
                let b_tx = self.b.as_ref().and_then(|b| b.tx);
                if self.ivr_transferring() && b_tx == Some(tx) {
                    return self.ivr_b_failed(408, ctx);
                }
                if let Some(ringer) = self.ringer_with_tx(tx) {
                    return self.ringer_failed(&ringer, 408, false, ctx);
                }
                if self.answered_here && self.phase == Phase::Up && b_tx == Some(tx) {
                    return self.fail_a(408, None, ctx);
                }
                match self.phase {
                    Phase::Calling => self.fail_a(408, None, ctx),
                    Phase::Ending => {
                        self.byes_pending = self.byes_pending.saturating_sub(1);
                        if self.byes_pending == 0 {
                            ctx.stop();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Handler<Hangup> for Call {
    type Result = ();

    fn handle(&mut self, Hangup { reason }: Hangup, ctx: &mut Context<Self>) {
        self.end_reason.get_or_insert(reason);
        match self.phase {
            _ if self.originated => {
                if self.answer_ms.is_none() {
                    // Ended before anyone talked: a cancelled attempt.
                    self.cancelled = true;
                    self.final_code.get_or_insert(487);
                }
                self.hangup(&[Leg::A, Leg::B], ctx)
            }
            Phase::Originating | Phase::Routing | Phase::Calling => {
                if !self.a.final_sent {
                    self.a.final_sent = true;
                    let r = response_to(&self.a.invite, 480, Some(&self.a.tag));
                    self.respond(self.a.tx, r);
                }
                self.abandon_b(ctx);
            }
            Phase::Answered | Phase::Up => self.hangup(&[Leg::A, Leg::B], ctx),
            Phase::Ending => {}
        }
    }
}

impl Handler<RecordCmd> for Call {
    type Result = Result<(), String>;

    fn handle(&mut self, cmd: RecordCmd, _: &mut Context<Self>) -> Self::Result {
        self.record_cmd(cmd)
    }
}

impl Handler<MediaMsg> for Call {
    type Result = ();

    fn handle(&mut self, MediaMsg(ev): MediaMsg, ctx: &mut Context<Self>) {
        let call_id = self.call_id_a();
        let c_media = self.c_media;
        let side = |leg| match &self.anchor {
            Some(a) if a.leg_a() == leg => "a",
            Some(a) if a.leg_b() == Some(leg) => "b",
            _ if c_media == Some(leg) => "c",
            _ => "?",
        };
        match ev {
            SessionEvent::Media(MediaEvent::Digit { leg, digit }) => {
                self.digits.push(digit.digit);
                let from = match &self.anchor {
                    Some(a) if a.leg_a() == leg => Some(Leg::A),
                    Some(a) if a.leg_b() == Some(leg) => Some(Leg::B),
                    _ => None,
                };
                tracing::info!(
                    %call_id,
                    leg = side(leg),
                    digit = %digit.digit,
                    duration_ms = digit.duration_ms,
                    source = ?digit.source,
                    "dtmf"
                );
                if from == Some(Leg::A) && self.in_ivr() {
                    return self.ivr_digit(digit.digit, ctx);
                }
                if from == Some(Leg::A) && self.in_queue() {
                    return self.queue_digit(digit.digit, ctx);
                }
                if let Some(from) = from {
                    self.on_feature_digit(from, digit.digit, ctx);
                }
            }
            SessionEvent::Media(MediaEvent::MediaTimeout { leg }) if c_media == Some(leg) => {
                tracing::info!(%call_id, "three-way: media timeout, hanging up the third party");
                let peer = self.peer_of(Leg::C);
                let dialog = self.c.as_mut().and_then(|c| c.dialog.take());
                if let (Some(mut d), Some(peer)) = (dialog, peer) {
                    self.bye_aside(&mut d, peer, ctx);
                }
                self.drop_c(ctx);
            }
            SessionEvent::Media(MediaEvent::MediaTimeout { leg }) => {
                tracing::info!(%call_id, leg = side(leg), "media timeout: no RTP, hanging up");
                if self.phase == Phase::Up || self.phase == Phase::Answered {
                    self.end_reason
                        .get_or_insert_with(|| "media timeout".into());
                    self.hangup(&[Leg::A, Leg::B], ctx);
                }
            }
            SessionEvent::Media(MediaEvent::Latched { leg, addr }) => {
                tracing::debug!(%call_id, leg = side(leg), %addr, "RTP source latched");
            }
            SessionEvent::Media(MediaEvent::Speech { leg, event }) => {
                tracing::debug!(%call_id, leg = side(leg), ?event, "speech");
                if self.in_ivr() && side(leg) == "a" {
                    let started = matches!(event, media::vad::VadEvent::SpeechStart);
                    self.ivr_speech(started, ctx);
                }
            }
            // Tapped audio goes to its tap on the media thread, never here.
            SessionEvent::Media(MediaEvent::Audio { .. }) => {}
            SessionEvent::Media(MediaEvent::PlaybackDone { leg, tag }) => {
                if self.bye_after == Some(tag) {
                    return self.hangup(&[Leg::A], ctx);
                }
                self.ivr_played(leg, tag, ctx);
                self.queue_played(tag, ctx);
            }
            SessionEvent::Recorded { path, result } => match result {
                Ok(info) => tracing::info!(
                    %call_id,
                    path = %path.display(),
                    duration_ms = info.duration_ms,
                    "recording saved"
                ),
                Err(e) => {
                    tracing::warn!(%call_id, path = %path.display(), error = %e, "recording failed")
                }
            },
        }
    }
}

impl Call {
    /// Anchors leg A's media in `session` (a new one when None). Without an
    /// SDP offer (or with anchoring off) the call's SDP passes through.
    fn anchor_a(
        &mut self,
        session: Option<net::rtp_engine::SessionHandle>,
        inband_dtmf: bool,
        ctx: &mut Context<Self>,
    ) -> Result<(), u16> {
        let Some(engine) = self.switch.media.clone() else {
            return Ok(());
        };
        if self.anchor.is_some() {
            // Click-to-call: leg A is anchored already.
            return Ok(());
        }
        let delayed = self.a.invite.body().is_empty();
        if !delayed && !is_sdp(&self.a.invite) {
            tracing::debug!(call_id = %self.call_id_a(), "body is not SDP: media not anchored");
            return Ok(());
        }
        let session = session.unwrap_or_else(|| {
            let addr = ctx.address();
            engine.session(Box::new(move |ev| addr.do_send(MediaMsg(ev))))
        });
        let codecs = self.codecs();
        let opts = LegOptions { inband_dtmf };
        let anchor = if delayed {
            Anchor::delayed(session, engine.ip(), codecs, opts)?
        } else {
            Anchor::new(session, engine.ip(), codecs, self.a.invite.body(), opts)?
        };
        self.anchor = Some(anchor);
        Ok(())
    }

    /// This call's record as it stands now (end time now).
    fn cdr(&self) -> Cdr {
        let end_ms = unix_ms();
        let queued = self.queue_cdr();
        let id = self.caller_id(self.source.as_ref());
        let caller = id.number;
        let dialed = match &self.source {
            Some(source) => self.dialed_number(source),
            None => self
                .first_invite()
                .uri
                .sip()
                .and_then(|u| u.user_decoded().map(|u| u.into_owned())),
        }
        .unwrap_or_default();
        let (caller, dialed) = match &self.source {
            Some(Source::User(u)) if self.originated => (u.clone(), self.orig_number.clone()),
            _ => (caller, dialed),
        };
        let direction = match (&self.source, self.b_user.is_some() || self.room.is_some()) {
            (Some(Source::Trunk(_)), _) => Direction::Inbound,
            (_, false) if self.trunk_out.is_some() => Direction::Outbound,
            _ => Direction::Internal,
        };
        let cause = if self.answer_ms.is_some() {
            200
        } else {
            self.final_code.unwrap_or(500)
        };
        let disposition = match self.answer_ms {
            Some(_) => Disposition::Answered,
            None => Disposition::of_code(cause, self.cancelled),
        };
        let reason = self
            .end_reason
            .clone()
            .unwrap_or_else(|| match disposition {
                Disposition::Answered => "hung up".into(),
                Disposition::Busy => "busy".into(),
                Disposition::NoAnswer => "no answer".into(),
                Disposition::Cancelled => "caller cancelled".into(),
                Disposition::Failed => format!("failed ({cause})"),
            });
        let answer_or_end = self.answer_ms.unwrap_or(end_ms);
        Cdr {
            call_id: self.call_id_a(),
            direction,
            caller,
            caller_name: id.name,
            dialed,
            destination: self.destination.clone(),
            trunk: match &self.source {
                Some(Source::Trunk(t)) => Some(t.clone()),
                _ => None,
            },
            trunk_out: self.trunk_out.clone(),
            gateway: self.gateway.clone(),
            start_ms: self.start_ms,
            answer_ms: self.answer_ms,
            end_ms,
            disposition,
            cause,
            reason,
            wait_ms: queued
                .as_ref()
                .map_or(answer_or_end.saturating_sub(self.start_ms), |q| q.2),
            // A queued call talks from the agent's answer.
            talk_ms: match &queued {
                Some((_, _, _, agent_ms)) => agent_ms.map_or(0, |a| end_ms.saturating_sub(a)),
                None => self.answer_ms.map_or(0, |a| end_ms.saturating_sub(a)),
            },
            agent: queued.as_ref().and_then(|q| q.1.clone()),
            queue: queued.map(|q| q.0),
            recordings: self.recordings.clone(),
            ivr_path: self.ivr_path_now(),
            digits: self.digits.clone(),
        }
    }

    /// The call's record is written: counted and published.
    fn ended_call(&self, cdr: &Cdr) {
        let direction = match cdr.direction {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
        };
        self.switch
            .metrics
            .calls_total
            .with_label_values(&[direction, cdr.disposition.as_str()])
            .inc();
        self.switch
            .publish("call.end", serde_json::to_value(cdr).unwrap_or_default());
    }

    /// Writes the CDR (once) and runs `then` when it is durable; the actor
    /// takes no other message meanwhile. A store that does not answer in
    /// 2 s is logged and the call goes on.
    fn write_cdr_then(
        &mut self,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) {
        if std::mem::replace(&mut self.cdr_written, true) {
            return then(self, ctx);
        }
        let cdr = self.cdr();
        let write = self.switch.records.write(cdr.ops());
        self.ended_call(&cdr);
        let write = tokio::time::timeout(Duration::from_secs(2), write);
        ctx.wait(write.into_actor(self).map(move |res, this, ctx| {
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(call_id = %this.call_id_a(), error = %e, "CDR not stored")
                }
                Err(_) => tracing::error!(call_id = %this.call_id_a(), "CDR write took over 2 s"),
            }
            then(this, ctx)
        }));
    }

    /// Delayed offer: leg A's answer to the offer in our 2xx comes in its
    /// ACK (RFC 3261 §13.2.1). Without a usable one the call has no audio
    /// and is hung up.
    fn on_ack_answer(&mut self, ack: &Request, ctx: &mut Context<Self>) {
        let Some(anchor) = self.anchor.as_mut() else {
            return;
        };
        if !anchor.is_delayed() || anchor.a_answered() || self.room.is_some() {
            return;
        }
        let result = if ack.body().is_empty() || !is_sdp(ack) {
            Err("the ACK carries no SDP answer".to_owned())
        } else {
            anchor.on_a_answer(ack.body()).map_err(|e| e.to_string())
        };
        if let Err(e) = result {
            tracing::info!(call_id = %self.call_id_a(), error = %e, "delayed offer not answered: hanging up");
            self.end_reason
                .get_or_insert_with(|| "no SDP answer".into());
            self.hangup(&[Leg::A, Leg::B], ctx);
        }
    }

    /// The `call.start` event.
    fn publish_start(&self, source: &str, dialed: &str) {
        self.switch.publish(
            "call.start",
            serde_json::json!({
                "call_id": self.call_id_a(),
                "source": source,
                "dialed": dialed,
                "originate": self.originated,
            }),
        );
    }

    /// The configured codecs, in order.
    fn codecs(&self) -> Vec<media::codec::Codec> {
        self.switch
            .config()
            .media
            .codecs
            .iter()
            .filter_map(|c| {
                media::codec::Codec::ALL
                    .into_iter()
                    .find(|k| k.name().eq_ignore_ascii_case(c))
            })
            .collect()
    }

    /// Records the call: on answer if the config says so (`on_demand`
    /// false), or when asked (stereo unless the config says mono).
    fn start_recording(&mut self, on_demand: bool) -> Result<(), String> {
        let cfg = self.switch.config();
        let layout = match cfg.media.record {
            config::RecordMode::Off if !on_demand => return Ok(()),
            config::RecordMode::Mono => media::record::Layout::Mono,
            config::RecordMode::Off | config::RecordMode::Stereo => media::record::Layout::Stereo,
        };
        let Some(anchor) = &self.anchor else {
            return Err("the call's media is not anchored".into());
        };
        if self.room.is_some() {
            // A room's media is shared by its callers: not one call's recording.
            return Err("a conference room is not recorded per call".into());
        }
        if self.rec != Rec::Off {
            return Err("already recording".into());
        }
        let dir = std::path::PathBuf::from(&cfg.media.recordings);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create recordings directory");
            return Err(format!("cannot create {}: {e}", dir.display()));
        }
        let path = dir.join(format!("{}-{}.wav", unix_now(), self.file_safe_id()));
        let sides = anchor.leg_b().map(|b| (anchor.leg_a(), b));
        tracing::info!(call_id = %self.call_id_a(), path = %path.display(), "recording started");
        self.recordings.push(path.display().to_string());
        anchor.session.record(path, layout, sides);
        self.rec = Rec::On;
        Ok(())
    }

    /// Leg A's Call-ID as a file name part.
    fn file_safe_id(&self) -> String {
        self.call_id_a()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect()
    }

    /// Routes the call into a conference room: answered by the switch, mixed
    /// with everyone else in the room.
    fn join_room(&mut self, room: &str, inband_dtmf: bool, ctx: &mut Context<Self>) {
        let Some(engine) = self.switch.media.clone() else {
            return self.fail_a(503, Some("Conferences Need Anchored Media"), ctx);
        };
        let session = {
            let mut entry = self.switch.rooms.entry(room.to_owned()).or_insert_with(|| {
                let switch = self.switch.clone();
                let handle = engine.session(Box::new(move |ev| {
                    let leg = match &ev {
                        SessionEvent::Media(
                            MediaEvent::Digit { leg, .. }
                            | MediaEvent::MediaTimeout { leg }
                            | MediaEvent::PlaybackDone { leg, .. }
                            | MediaEvent::Speech { leg, .. }
                            | MediaEvent::Latched { leg, .. }
                            | MediaEvent::Audio { leg, .. },
                        ) => *leg,
                        SessionEvent::Recorded { .. } => return,
                    };
                    if let Some(owner) = switch.leg_owners.get(&leg) {
                        owner.do_send(MediaMsg(ev));
                    }
                }));
                handle.set_mode(Mode::Conference);
                (handle, 0)
            });
            entry.1 += 1;
            entry.0.clone()
        };
        self.room = Some(room.to_owned());
        if let Err(code) = self.anchor_a(Some(session), inband_dtmf, ctx) {
            return self.fail_a(code, None, ctx);
        }
        let Some(anchor) = self.anchor.as_mut() else {
            return self.fail_a(488, Some("Conference Needs An SDP Offer"), ctx);
        };
        self.switch
            .leg_owners
            .insert(anchor.leg_a(), ctx.address().recipient());
        let body = match anchor.answer_locally() {
            Ok(b) => b,
            Err(e) => {
                tracing::info!(error = %e, "cannot answer for the conference");
                return self.fail_a(488, None, ctx);
            }
        };
        let mut r = self.ok_for_a();
        set_sdp(&mut r, body);
        self.send_ok_a(r, ctx);
        tracing::info!(call_id = %self.call_id_a(), room, "joined conference");
    }

    /// Answers an in-dialog request from leg A when there is no leg B: a
    /// re-INVITE/UPDATE offer (hold, resume, session refresh) is answered
    /// from the switch's side; anything else gets 200.
    fn answer_in_dialog(&mut self, leg: Leg, tx: TxId, req: Request) {
        let mut r = response_to(&req, 200, None);
        if matches!(req.method, Method::Invite | Method::Update) {
            let transport = self
                .peer_of(leg)
                .map_or(self.a.peer.transport, |p| p.transport);
            r.headers.push(
                Name::Contact,
                format!("<{}>", self.switch.contact(transport)),
            );
            let c_media = self.c_media.filter(|_| leg == Leg::C);
            if let Some(anchor) = self.anchor.as_mut() {
                let body = if !req.body().is_empty() && is_sdp(&req) {
                    let answered = match c_media {
                        Some(m) => anchor.answer_extra_reoffer(m, req.body()),
                        None => anchor.answer_reoffer_locally(req.body()),
                    };
                    match answered {
                        Ok(b) => Some(b),
                        Err(e) => {
                            tracing::info!(error = %e, "unusable SDP in re-offer");
                            return self.respond(tx, response_to(&req, 488, None));
                        }
                    }
                } else if req.method == Method::Invite && c_media.is_none() {
                    // An INVITE without an offer: our current description.
                    anchor.answer_a()
                } else {
                    None
                };
                if let Some(body) = body {
                    set_sdp(&mut r, body);
                }
            }
            if req.method == Method::Invite {
                self.keep_tx(req.call_id(), tx);
            }
            self.session_headers(leg, &mut r);
        }
        self.respond(tx, r);
    }

    /// Takes this call's leg out of its room; the last one out closes the room.
    fn leave_room(&mut self) {
        let Some(room) = self.room.take() else { return };
        if let Some(a) = &self.anchor {
            a.session.remove_leg(a.leg_a());
            self.switch.leg_owners.remove(&a.leg_a());
        }
        self.switch.rooms.remove_if_mut(&room, |_, v| {
            v.1 = v.1.saturating_sub(1);
            v.1 == 0
        });
    }
}
