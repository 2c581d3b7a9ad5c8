//! Attended transfer (RFC 3515 REFER whose Refer-To carries `Replaces`,
//! RFC 3891; the flow of RFC 5589 §7). A user with two calls through the
//! switch — the transferee X in call 1, the target Y in call 2 (consulted)
//! — sends REFER in call 1 with `Refer-To: <sip:Y?Replaces=call 2's dialog>`.
//! A proxy would have X send Y an INVITE with Replaces; the switch, being
//! the B2BUA between them, connects them itself, so neither X nor Y needs
//! to support Replaces:
//!
//! 1. Call 1 (where the REFER arrived, on its leg B) finds call 2 by the
//!    dialog's Call-ID (the shard that routes it) and asks it to hand its
//!    far party over ([`HandOver`]). Call 2 gives up Y's leg (dialog, peer,
//!    trunk place), routes Y's Call-ID to call 1, hangs up the transferor's
//!    leg and ends ("transferred").
//! 2. Call 1 takes Y as leg C and re-INVITEs it with an offer from its own
//!    media session (RFC 3261 §14: the dialog continues; only the media
//!    moves). Y may be on another shard: its transactions stay there.
//! 3. Y's 2xx: C replaces B, the transferor gets NOTIFY 200 and BYE, and a
//!    caller left on hold by the transferor is re-INVITEd off hold.
//!
//! A REFER with Replaces from the caller's leg (A) is answered 501 for now.

use super::*;
use crate::shard::FindCall;

/// Asks a call to give up the party on the far side of the transferor's
/// dialog `replaces` (the tags as the transferor sees them, so `to_tag` is
/// the switch's) to call `to`.
#[derive(Message)]
#[rtype(result = "Result<Handed, String>")]
pub(super) struct HandOver {
    replaces: sip::Replaces,
    to: Addr<Call>,
    /// The local user who asked: only a party to the dialog may name it.
    user: String,
}

/// A party handed over: its dialog and what the new call needs to know.
pub(super) struct Handed {
    leg: LegB,
    /// The local user it is, if one (features, CDR).
    user: Option<String>,
    /// Its number, for the CDR and events.
    number: String,
    /// The trunk whose place it holds (moves with it).
    trunk: Option<String>,
}

/// The switch's re-INVITE moving a taken-over party into this call's media.
pub(super) struct Takeover {
    branch: String,
    seq: u32,
    timer: SpawnHandle,
}

impl Call {
    /// REFER from `leg` (its local user `user`) whose Refer-To names the
    /// dialog `replaces`.
    pub(super) fn refer_attended(
        &mut self,
        leg: Leg,
        user: String,
        tx: TxId,
        req: Request,
        replaces: sip::Replaces,
        ctx: &mut Context<Self>,
    ) {
        let refuse = |this: &mut Call, code: u16, reason: &str| this.refuse(tx, &req, code, reason);
        if self.c.is_some()
            || self.takeover.is_some()
            || self.handover_pending
            || self.resuming.is_some()
            || self.room.is_some()
        {
            return refuse(self, 491, "Request Pending");
        }
        // What taking the party over will need, checked before the other
        // call gives it up (that cannot be undone).
        if self.phase != Phase::Up || self.b.is_none() || self.in_ivr() || self.in_queue() {
            return refuse(self, 403, "Not A Two-Party Call");
        }
        if self.anchor.is_none() {
            return refuse(self, 488, "Transfer Needs Anchored Media");
        }
        if self.leg_of(Some(&replaces.call_id)).is_some() {
            return refuse(self, 400, "Replaces Names This Call");
        }
        let Some(shards) = self.switch.shards.get() else {
            return refuse(self, 503, "Not Ready");
        };
        let shard = shards[self.shard_of_leg(Some(&replaces.call_id))].clone();
        let mut r = response_to(&req, 202, None);
        r.headers.push(
            Name::Contact,
            format!("<{}>", self.switch.contact(self.a.peer.transport)),
        );
        self.respond(tx, r);
        self.referred = true;
        self.handover_pending = true;
        self.c_replaces = leg;
        self.notify_referrer("SIP/2.0 100 Trying", false, ctx);
        tracing::info!(call_id = %self.call_id_a(), replaces = %replaces, "attended transfer by REFER");
        let me = ctx.address();
        let ask = async move {
            let other = shard
                .send(FindCall(replaces.call_id.clone()))
                .await
                .ok()
                .flatten()
                .ok_or_else(|| "no such dialog".to_owned())?;
            if other == me {
                return Err("the dialog is this call's".to_owned());
            }
            other
                .send(HandOver {
                    replaces,
                    to: me,
                    user,
                })
                .await
                .map_err(|_| "the other call ended".to_owned())?
        };
        // Not `wait`: the other call may be asking this one at the same time.
        ctx.spawn(ask.into_actor(self).map(|res, this, ctx| match res {
            Ok(handed) => {
                this.handover_pending = false;
                this.take_over(handed, ctx)
            }
            Err(e) => {
                this.handover_pending = false;
                tracing::info!(call_id = %this.call_id_a(), error = %e, "attended transfer failed");
                this.refer_done(481, ctx);
            }
        }));
    }

    /// The far party of the other call is ours: leg C, re-INVITEd onto this
    /// call's media.
    fn take_over(&mut self, handed: Handed, ctx: &mut Context<Self>) {
        let Handed {
            mut leg,
            user,
            number,
            trunk,
        } = handed;
        if let Some(t) = trunk {
            // Its place on the trunk moves with it (released when this call ends).
            self.trunk_slots.push(t);
        }
        let peer = leg.peer;
        let usable = self.phase == Phase::Up && self.c.is_none() && self.b.is_some();
        let offer = match self.anchor.as_mut() {
            Some(a) if usable => a
                .offer_extra(LegOptions { inband_dtmf: false })
                .map_err(|code| format!("no media leg ({code})")),
            _ => Err("the call is no longer up".to_owned()),
        };
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let (media, body) = match offer {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(call_id = %self.call_id_a(), error = %e, "attended transfer: hanging up the handed party");
                self.bye_aside(dialog, peer, ctx);
                self.c_done.push(leg);
                return self.refer_done(503, ctx);
            }
        };
        self.c = Some(leg);
        let Some((mut invite, peer, branch)) = self.leg_request(Leg::C, Method::Invite) else {
            return;
        };
        set_sdp(&mut invite, body);
        let seq = invite.cseq().map_or(0, |c| c.seq);
        self.c_media = Some(media);
        self.c_purpose = features::Purpose::Transfer;
        // c_replaces: the REFER's leg, set when it came.
        self.c_target = Some((
            user.clone().unwrap_or_else(|| number.clone()),
            user.is_some(),
        ));
        self.ended[Leg::C as usize] = false;
        let timer = ctx.run_later(Duration::from_secs(32), |this, ctx| {
            if this.takeover.is_some() {
                this.takeover_failed(408, ctx);
            }
        });
        self.takeover = Some(Takeover { branch, seq, timer });
        tracing::info!(call_id = %self.call_id_a(), %number, "attended transfer: moving {number} onto this call");
        self.to_shard(ShardCmd::Request {
            peer,
            req: invite,
            owner: ctx.address().recipient(),
        });
    }

    /// Whether `branch` is the takeover re-INVITE's.
    pub(super) fn is_takeover(&self, branch: &str) -> bool {
        self.takeover.as_ref().is_some_and(|t| t.branch == branch)
    }

    /// The handed party answered the re-INVITE.
    pub(super) fn on_takeover_response(
        &mut self,
        tx: TxId,
        resp: Response,
        ctx: &mut Context<Self>,
    ) {
        if resp.code < 200 {
            return;
        }
        let Some(t) = self.takeover.take() else {
            return;
        };
        ctx.cancel_future(t.timer);
        if resp.code >= 300 {
            self.takeover = Some(t);
            return self.takeover_failed(resp.code, ctx);
        }
        if self.c.as_ref().is_none_or(|c| c.dialog.is_none()) {
            // The party hung up meanwhile.
            return self.refer_done(487, ctx);
        }
        self.ack_reinvite(Leg::C, tx, t.seq);
        let Some(c) = self.c.as_mut() else { return };
        let peer = c.peer;
        let Some(dialog) = c.dialog.take() else {
            return;
        };
        if self.phase != Phase::Up {
            // The caller left meanwhile: the handed party goes too.
            if let Some(c) = self.c.as_mut() {
                c.dialog = Some(dialog);
            }
            return self.hangup(&[Leg::C], ctx);
        }
        let mut spare = dialog.clone();
        if let Err(e) = self.complete_transfer(dialog, &resp, ctx) {
            tracing::info!(call_id = %self.call_id_a(), error = %e, "attended transfer: hanging up the handed party");
            self.bye_aside(&mut spare, peer, ctx);
            self.drop_c(ctx);
        }
    }

    /// The re-INVITE failed or went unanswered: the handed party is hung
    /// up (its old call is gone), the transferor keeps the caller.
    fn takeover_failed(&mut self, code: u16, ctx: &mut Context<Self>) {
        let Some(t) = self.takeover.take() else {
            return;
        };
        ctx.cancel_future(t.timer);
        tracing::info!(call_id = %self.call_id_a(), code, "attended transfer: the handed party refused the media");
        if let Some(mut c) = self.c.take() {
            if let Some(d) = c.dialog.as_mut() {
                self.bye_aside(d, c.peer, ctx);
            }
            self.c = Some(c);
        }
        self.refer_done(code, ctx);
        self.drop_c(ctx);
    }
}

impl Handler<HandOver> for Call {
    type Result = Result<Handed, String>;

    /// Gives up the far party of the transferor's dialog and ends this call.
    fn handle(&mut self, h: HandOver, ctx: &mut Context<Self>) -> Self::Result {
        let r = &h.replaces;
        let names = |d: &Dialog| {
            d.id.call_id == r.call_id
                && ((d.id.local_tag == r.to_tag && d.id.remote_tag == r.from_tag)
                    // Some phones write the tags the other way round.
                    || (d.id.local_tag == r.from_tag && d.id.remote_tag == r.to_tag))
        };
        let transferor = [Leg::A, Leg::B]
            .into_iter()
            .find(|&l| self.dialog_mut(l).is_some_and(|d| names(d)))
            .ok_or("no such dialog")?;
        // RFC 3891 §3: only the user of that dialog may have it replaced;
        // a confirmed dialog is not replaced for `early-only`.
        if self.user_of(transferor).as_deref() != Some(h.user.as_str()) {
            return Err("the dialog is not the transferor's".into());
        }
        if r.early_only {
            return Err("early-only, and the dialog is confirmed".into());
        }
        if self.phase != Phase::Up
            || self.room.is_some()
            || self.c.is_some()
            || self.takeover.is_some()
            || self.handover_pending
            || self.referred
            || self.resuming.is_some()
            || !self.relays.is_empty()
            || !h.to.connected()
        {
            return Err("the other call is busy".into());
        }
        let far = if transferor == Leg::A { Leg::B } else { Leg::A };
        if self.ended[far as usize] || self.dialog_mut(far).is_none() {
            return Err("the other party is not connected".into());
        }
        let handed = match far {
            Leg::B => {
                let mut leg = self.b.take().ok_or("no leg B")?;
                // Its INVITE transaction stays ours (released with this call).
                if let Some(tx) = leg.tx.take() {
                    let call_id = leg.invite.call_id().map(str::to_owned);
                    self.keep_tx(call_id.as_deref(), tx);
                }
                let trunk = self.trunk_out.clone().filter(|t| self.give_trunk_slot(t));
                let number = self.destination.clone().unwrap_or_default();
                Handed {
                    leg,
                    user: self.b_user.take(),
                    number,
                    trunk,
                }
            }
            _ => {
                let dialog = self.a.dialog.take();
                let mut leg = LegB::new(self.a.invite.clone(), self.a.peer, None);
                leg.dialog = dialog;
                self.a_moved = true;
                let (user, trunk) = match &self.source {
                    Some(Source::User(u)) => (Some(u.clone()), None),
                    Some(Source::Trunk(t)) => (None, Some(t.clone())),
                    None => (None, None),
                };
                let trunk = trunk.filter(|t| self.give_trunk_slot(t));
                Handed {
                    leg,
                    user,
                    number: self.caller_id(self.source.as_ref()).number,
                    trunk,
                }
            }
        };
        self.ended[far as usize] = true;
        // Requests from the far party now go to the new call.
        self.to_shard(ShardCmd::Adopt {
            call_id: handed.leg.invite.call_id().unwrap_or("").to_owned(),
            call: h.to,
        });
        if let Some(a) = &self.anchor {
            a.session.set_mode(media::session::Mode::Idle);
        }
        tracing::info!(call_id = %self.call_id_a(), number = %handed.number, "attended transfer: handing {} over", handed.number);
        self.end_reason = Some("transferred".into());
        self.hangup(&[transferor], ctx);
        Ok(handed)
    }
}

impl Call {
    /// Takes trunk `t` off this call's places (it moves to another call).
    fn give_trunk_slot(&mut self, t: &str) -> bool {
        match self.trunk_slots.iter().position(|x| x == t) {
            Some(i) => {
                self.trunk_slots.swap_remove(i);
                true
            }
            None => false,
        }
    }
}
