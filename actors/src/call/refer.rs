//! Transfers a phone asks for (RFC 3515 REFER, blind transfer): a local
//! user on either leg sends REFER with `Refer-To: <sip:number@...>` in its
//! call.
//! The switch accepts it (202), tells the transferor how it goes with
//! NOTIFYs carrying a `message/sipfrag` (100 Trying, then the target's
//! final status), and calls the number (users' dialplan, the transferor's
//! permissions) as leg C; when it answers it replaces the transferor's leg,
//! who is hung up (when that was leg A, the new party becomes leg A: the
//! call keeps its name, caller and record). If it does not answer, the call
//! stays as it was. A party the transferor had put on hold is re-INVITEd
//! off hold. A Refer-To with `Replaces` is an attended transfer
//! (`attended.rs`).

use super::features::Purpose;
use super::*;

impl Call {
    /// An in-dialog REFER from `leg`.
    pub(super) fn on_refer(&mut self, leg: Leg, tx: TxId, req: Request, ctx: &mut Context<Self>) {
        let refuse = |this: &mut Call, code: u16, reason: &str| this.refuse(tx, &req, code, reason);
        let Some(user) = self.user_of(leg).filter(|_| leg != Leg::C) else {
            return refuse(self, 403, "Transfer Only By A Local User");
        };
        let Some(target) = req
            .headers
            .get(&Name::ReferTo)
            .and_then(|v| NameAddr::parse(v, "Refer-To").ok())
        else {
            return refuse(self, 400, "Missing Refer-To");
        };
        let Some(uri) = target.uri.sip() else {
            return refuse(self, 416, "Unsupported URI Scheme");
        };
        if let Some((_, v)) = uri
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("replaces"))
        {
            return match sip::Replaces::parse(&sip::unescape(v)) {
                Some(replaces) => self.refer_attended(leg, user, tx, req, replaces, ctx),
                None => refuse(self, 400, "Bad Replaces In Refer-To"),
            };
        }
        let Some(number) = uri.user_decoded().map(|u| u.into_owned()) else {
            return refuse(self, 400, "No Number In Refer-To");
        };
        if self.c.is_some() || self.handover_pending || self.takeover.is_some() {
            return refuse(self, 491, "Request Pending");
        }
        let cfg = self.switch.config();
        if let Some(route) = cfg.route_for(&number, config::RouteSource::Users) {
            let (t, _) = cfg.target_at(route, self.switch.now());
            if let Err(class) = cfg.permits(&user, route, t) {
                tracing::info!(call_id = %self.call_id_a(), %user, %number, "transfer refused: {} calls not permitted", class.name());
                return refuse(self, 403, "Not Permitted");
            }
        }
        let Some(from) = self.source.clone() else {
            return refuse(self, 403, "Not Routed");
        };
        // RFC 3892: the target learns who transferred the call.
        let referred_by = req
            .headers
            .get(&Name::ReferredBy)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("<sip:{user}@{}>", self.switch.config().sip.domain));
        self.c_referred_by = Some(referred_by);
        let called = self.call_c(&number, from, Purpose::Transfer, ctx);
        self.c_referred_by = None;
        if let Err(e) = called {
            tracing::info!(call_id = %self.call_id_a(), %number, error = %e, "transfer refused");
            return refuse(self, 403, "Transfer Refused");
        }
        self.c_replaces = leg;
        let mut r = response_to(&req, 202, None);
        r.headers.push(
            Name::Contact,
            format!("<{}>", self.switch.contact(self.a.peer.transport)),
        );
        self.respond(tx, r);
        tracing::info!(call_id = %self.call_id_a(), %user, %number, leg = ?leg, "blind transfer by REFER");
        self.referred = true;
        self.notify_referrer("SIP/2.0 100 Trying", false, ctx);
    }

    /// Answers REFER `req` (server transaction `tx`) with `code` and `reason`.
    pub(super) fn refuse(&mut self, tx: TxId, req: &Request, code: u16, reason: &str) {
        let mut r = response_to(req, code, None);
        r.reason = reason.to_owned();
        self.respond(tx, r);
    }

    /// A NOTIFY with the transfer's progress (`status`, a sipfrag status
    /// line) to the transferor; `done` ends the subscription.
    pub(super) fn notify_referrer(&mut self, status: &str, done: bool, ctx: &mut Context<Self>) {
        let Some((mut n, peer, branch)) = self.leg_request(self.c_replaces, Method::Notify) else {
            return;
        };
        n.headers.push(Name::Event, "refer");
        n.headers.push(
            Name::SubscriptionState,
            if done {
                "terminated;reason=noresource"
            } else {
                "active;expires=60"
            },
        );
        n.headers
            .push(Name::ContentType, "message/sipfrag;version=2.0");
        n.body = Bytes::from(format!("{status}\r\n"));
        self.stray_byes.push(branch);
        self.to_shard(ShardCmd::Request {
            peer,
            req: n,
            owner: ctx.address().recipient(),
        });
    }

    /// The transfer asked for by REFER ended: `code` from the target (200:
    /// it answered and is about to replace the transferor).
    pub(super) fn refer_done(&mut self, code: u16, ctx: &mut Context<Self>) {
        if !std::mem::take(&mut self.referred) {
            return;
        }
        let status = format!("SIP/2.0 {code} {}", sip::reason_phrase(code));
        self.notify_referrer(&status, true, ctx);
    }
}

impl Call {
    /// The transfer's target (leg C, answered) replaces leg A: the old A
    /// (the transferor) is hung up; the call keeps its first INVITE as its
    /// name, caller and number.
    pub(super) fn replace_a(
        &mut self,
        dialog: Dialog,
        resp: &Response,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        let media = self.c_media.ok_or("no media leg")?;
        let anchor = self.anchor.as_mut().ok_or("no media")?;
        anchor
            .promote_extra_to_a(media, resp.body())
            .map_err(|e| e.to_string())?;
        let mut c = self.c.take().ok_or("no leg C")?;
        if let Some(tx) = c.tx.take() {
            // Its INVITE transaction is released with the call.
            let call_id = c.invite.call_id().map(str::to_owned);
            self.keep_tx(call_id.as_deref(), tx);
        }
        if !self.ended[Leg::A as usize] {
            if let Some(mut d) = self.a.dialog.take() {
                let peer = self.a.peer;
                self.bye_aside(&mut d, peer, ctx);
            }
        }
        // The session timer was the old A's.
        self.session_stop(Leg::A, ctx);
        let old = std::mem::replace(&mut self.a.invite, c.invite);
        self.old_a_ids.push(old.call_id().unwrap_or("").to_owned());
        self.orig_a.get_or_insert(old);
        self.a.peer = c.peer;
        self.a.tag = dialog.id.local_tag.clone();
        self.a.dialog = Some(dialog);
        self.a.final_sent = true;
        self.a.tx = TxId(u64::MAX);
        self.c_media = None;
        self.ended[Leg::A as usize] = false;
        self.ended[Leg::C as usize] = false;
        let (to, is_user) = self.c_target.take().unwrap_or_default();
        self.a_user = is_user.then(|| to.clone());
        tracing::info!(call_id = %self.call_id_a(), %to, "transfer: answered, the other party is now with {to}");
        self.switch.publish(
            "call.transfer",
            serde_json::json!({"call_id": self.call_id_a(), "to": to, "result": "answered"}),
        );
        Ok(())
    }

    /// After a transfer, `leg` may still be on hold (the transferor held
    /// it while dialing or consulting): a re-INVITE with sendrecv.
    pub(super) fn resume_held(&mut self, leg: Leg, ctx: &mut Context<Self>) {
        let side = if leg == Leg::A { Side::A } else { Side::B };
        let Some(body) = self.anchor.as_mut().and_then(|a| a.resume_offer(side)) else {
            return;
        };
        let Some((mut invite, peer, branch)) = self.leg_request(leg, Method::Invite) else {
            return;
        };
        let seq = invite.cseq().map_or(0, |c| c.seq);
        set_sdp(&mut invite, body);
        self.resuming = Some((branch, seq, leg));
        tracing::info!(call_id = %self.call_id_a(), leg = ?leg, "taking the other party off hold");
        self.to_shard(ShardCmd::Request {
            peer,
            req: invite,
            owner: ctx.address().recipient(),
        });
    }

    /// Whether `branch` is the off-hold re-INVITE's.
    pub(super) fn is_resume(&self, branch: &str) -> bool {
        self.resuming.as_ref().is_some_and(|r| r.0 == branch)
    }

    /// The answer to the off-hold re-INVITE.
    pub(super) fn on_resume_response(&mut self, tx: TxId, resp: Response) {
        if resp.code < 200 {
            return;
        }
        let Some((_, seq, leg)) = self.resuming.take() else {
            return;
        };
        let Some(anchor) = self.anchor.as_mut() else {
            return;
        };
        if resp.code >= 300 {
            anchor.abandon_resume();
            return tracing::info!(call_id = %self.call_id_a(), code = resp.code, "the other party stays on hold");
        }
        if let Err(e) = anchor.on_resume_answer(resp.body()) {
            tracing::info!(call_id = %self.call_id_a(), error = %e, "unusable answer taking a party off hold");
        }
        self.ack_reinvite(leg, tx, seq);
    }
}
