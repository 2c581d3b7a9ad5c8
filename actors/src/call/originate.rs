//! Click-to-call (`calls.originate`): the switch rings a user's phone as
//! leg A (the switch is the UAC there, RFC 3261 §13.2) with its own offer;
//! when the phone answers, it dials the number as that user would (the
//! users' dialplan) as leg B while the user hears ringback; when B answers
//! the two are bridged, and from then on it is a call like any other.
//! If B fails, the user's phone is hung up; the CDR names the user as the
//! caller and the number as dialed.

use super::*;
use crate::registrar::lookup;

/// Starts a click-to-call on a shard (the Call-ID hashes to it).
#[derive(Message)]
#[rtype(result = "Result<String, String>")]
pub struct Originate {
    /// The local user whose phone rings first.
    pub user: String,
    /// The number dialed once the user answers.
    pub number: String,
    /// Dial it through this trunk instead of the users' dialplan.
    pub trunk: Option<String>,
    /// An ACD callback: the user is an agent, offered this caller.
    pub acd: Option<AcdCallback>,
}

/// The ACD side of a callback call.
#[derive(Debug, Clone)]
pub struct AcdCallback {
    /// The callback's caller id in the ACD.
    pub caller: crate::acd::router::CallerId,
    /// The agent.
    pub agent: String,
    /// The queue.
    pub queue: String,
}

impl Call {
    /// A click-to-call from `user` to `number`, to run on shard `index`.
    pub fn originate(
        switch: Arc<Switch>,
        shard: Addr<Shard>,
        index: usize,
        user: &str,
        number: &str,
        trunk: Option<String>,
        acd: Option<AcdCallback>,
    ) -> Result<Call, String> {
        if number.is_empty() || number.len() > 64 || !number.chars().all(dialable) {
            return Err(format!("{number:?} is not a number"));
        }
        let cfg = switch.config();
        cfg.user(user).ok_or_else(|| format!("no user {user}"))?;
        if trunk.is_none() && acd.is_none() {
            // Click-to-call dials as the user: their permissions hold.
            let route = cfg
                .route_for(number, config::RouteSource::Users)
                .ok_or_else(|| format!("no route for {number}"))?;
            let (target, _) = cfg.target_at(route, switch.now());
            cfg.permits(user, route, target)
                .map_err(|c| format!("{user} may not place {} calls", c.name()))?;
        }
        let binding = lookup(&switch.location, user)
            .into_iter()
            .next()
            .ok_or_else(|| format!("{user} is not registered"))?;
        let contact = Uri::parse(&binding.contact).map_err(|e| format!("{user}'s contact: {e}"))?;
        let peer = binding.peer();
        let local = switch.local_addr(peer.transport);
        let shards = switch.shards.get().map_or(1, Vec::len);
        let call_id = call_id_for_shard(index, shards, &local.ip().to_string());
        let tag = new_tag();
        // The phone shows what it is about to call.
        let mut from = NameAddr::new(Uri::Sip(SipUri::new(
            Some(number),
            Host::Ip(local.ip()),
            None,
        )));
        from.display = Some(match &acd {
            Some(cb) => format!("Callback {number} ({})", cb.queue),
            None => format!("Call to {number}"),
        });
        from.set_param("tag", Some(&tag));
        let to = NameAddr::new(Uri::Sip(SipUri::new(
            Some(user),
            Host::Ip(local.ip()),
            None,
        )));
        let mut invite = Request::new(Method::Invite, contact);
        invite.headers.push(Name::Via, switch.via(peer).to_string());
        invite
            .headers
            .push(Name::MaxForwards, cfg.calls.max_forwards.to_string());
        invite.headers.push(Name::From, from.to_string());
        invite.headers.push(Name::To, to.to_string());
        invite.headers.push(Name::CallId, call_id);
        invite.headers.push(Name::CSeq, "1 INVITE");
        invite.headers.push(
            Name::Contact,
            format!("<{}>", switch.contact(peer.transport)),
        );
        invite.headers.push(
            Name::Allow,
            "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE",
        );
        invite
            .headers
            .push(Name::UserAgent, cfg.sip.user_agent.clone());
        let mut call = Call::new(switch, shard, index, TxId(u64::MAX), invite, peer);
        call.a.tag = tag;
        call.a.final_sent = true;
        call.originated = true;
        call.orig_number = number.to_owned();
        call.orig_trunk = trunk;
        call.orig_acd = acd;
        call.source = Some(Source::User(user.to_owned()));
        Ok(call)
    }

    /// Rings the user's phone with the switch's offer.
    pub(super) fn ring_user(&mut self, ctx: &mut Context<Self>) {
        let Some(engine) = self.switch.media.clone() else {
            tracing::info!(call_id = %self.call_id_a(), "click-to-call needs anchored media");
            self.final_code = Some(503);
            return ctx.stop();
        };
        let addr = ctx.address();
        let session = engine.session(Box::new(move |ev| addr.do_send(MediaMsg(ev))));
        let anchor = Anchor::delayed(session, engine.ip(), self.codecs(), LegOptions::default());
        let mut anchor = match anchor {
            Ok(a) => a,
            Err(code) => {
                self.final_code = Some(code);
                return ctx.stop();
            }
        };
        set_sdp(&mut self.a.invite, anchor.offer_a());
        self.anchor = Some(anchor);
        self.phase = Phase::Originating;
        let (user, number) = match &self.source {
            Some(Source::User(u)) => (u.clone(), self.orig_number.clone()),
            _ => return ctx.stop(),
        };
        tracing::info!(call_id = %self.call_id_a(), %user, %number, "click-to-call: ringing the user");
        self.publish_start(&format!("user:{user}"), &number);
        self.to_shard(ShardCmd::Request {
            peer: self.a.peer,
            req: self.a.invite.clone(),
            owner: ctx.address().recipient(),
        });
        let timeout = Duration::from_secs(self.switch.config().calls.no_answer_timeout_secs.into());
        self.no_answer = Some(ctx.run_later(timeout, |this, ctx| this.on_no_answer(ctx)));
    }

    /// A response from the user's phone to our INVITE.
    pub(super) fn on_a_response(&mut self, tx: TxId, resp: Response, ctx: &mut Context<Self>) {
        self.a.tx = tx;
        let code = resp.code;
        if code < 200 {
            self.a_provisional = true;
            if std::mem::take(&mut self.a_cancel_pending) {
                let req = cancel_for(&self.a.invite);
                self.to_shard(ShardCmd::Request {
                    peer: self.a.peer,
                    req,
                    owner: ctx.address().recipient(),
                });
            }
            return;
        }
        if code >= 300 {
            self.acd_callback_result(crate::acd::OfferOutcome::Missed);
            self.a_final = true;
            if self.phase != Phase::Ending {
                self.final_code = Some(code);
                self.end_reason = Some(format!("the user did not answer ({code})"));
            }
            tracing::info!(call_id = %self.call_id_a(), code, "click-to-call: the user did not answer");
            if self.byes_pending == 0 {
                ctx.stop();
            }
            return;
        }
        if self.a.dialog.is_some() {
            let (invite, peer) = (self.a.invite.clone(), self.a.peer);
            return self.ack_and_bye(&invite, peer, tx, &resp, ctx);
        }
        self.a_final = true;
        self.cancel_no_answer(ctx);
        let mut dialog = match Dialog::uac(&self.a.invite, &resp) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(call_id = %self.call_id_a(), error = %e, "click-to-call: bad 2xx");
                return ctx.stop();
            }
        };
        let peer = self.a.peer;
        let ack = dialog.request(Method::Ack, &self.switch.via(peer), 70);
        self.to_shard(ShardCmd::Ack2xx { tx, peer, ack });
        self.kept_txs.push((self.shard_index, tx));
        self.a.dialog = Some(dialog);
        if self.phase == Phase::Ending {
            // Hung up while it rang: the answer crossed our CANCEL.
            return self.hangup_now(&[Leg::A], ctx);
        }
        self.acd_callback_result(crate::acd::OfferOutcome::Answered);
        let answered = match self.anchor.as_mut() {
            Some(a) => a.on_a_answer(resp.body()).map_err(|e| e.to_string()),
            None => Err("no media".into()),
        };
        if let Err(e) = answered {
            tracing::info!(call_id = %self.call_id_a(), error = %e, "click-to-call: unusable answer");
            self.end_reason = Some("no SDP answer".into());
            return self.hangup(&[Leg::A], ctx);
        }
        if let Some(a) = &self.anchor {
            a.session
                .play_tone(a.leg_a(), media::tone::ToneKind::Ringback);
        }
        let (Some(Source::User(user)), number) = (self.source.clone(), self.orig_number.clone())
        else {
            return;
        };
        tracing::info!(call_id = %self.call_id_a(), %user, %number, "click-to-call: the user answered, dialing");
        self.phase = Phase::Routing;
        let mf = self.switch.config().calls.max_forwards;
        if let Some(trunk) = self.orig_trunk.clone() {
            // A callback goes out through the queue's trunk.
            self.destination = Some(number.clone());
            self.trunk_out = Some(trunk.clone());
            return self.call_b(
                &Source::User(user),
                &RouteTarget::Trunk(trunk),
                number,
                mf,
                None,
                ctx,
            );
        }
        self.route_to(Source::User(user), number, mf, ctx);
    }

    /// Tells the ACD how a callback's offer to the agent went (once).
    fn acd_callback_result(&mut self, outcome: crate::acd::OfferOutcome) {
        let Some(cb) = self.orig_acd.as_ref() else {
            return;
        };
        if self.acd_reported {
            return;
        }
        self.acd_reported = true;
        if let Some(acd) = self.switch.acd.get() {
            acd.do_send(crate::acd::OfferResult {
                caller: cb.caller,
                agent: cb.agent.clone(),
                outcome,
            });
        }
    }

    /// A callback's call is over: the agent's wrap-up starts.
    pub(super) fn acd_callback_end(&mut self) {
        let Some(cb) = self.orig_acd.take() else {
            return;
        };
        if !self.acd_reported {
            self.acd_reported = true;
            if let Some(acd) = self.switch.acd.get() {
                acd.do_send(crate::acd::OfferResult {
                    caller: cb.caller,
                    agent: cb.agent.clone(),
                    outcome: crate::acd::OfferOutcome::Missed,
                });
            }
            return;
        }
        if let (Some(acd), Some(t)) = (self.switch.acd.get(), self.answer_ms) {
            acd.do_send(crate::acd::CallEnded {
                agent: cb.agent,
                queue: cb.queue,
                talk_ms: unix_ms().saturating_sub(t),
            });
        }
    }

    /// Leg B answered a click-to-call: the two talk.
    pub(super) fn originate_connected(&mut self, ctx: &mut Context<Self>) {
        if let Some(a) = &self.anchor {
            a.session.stop_playing(a.leg_a());
        }
        self.phase = Phase::Up;
        self.now_answered(ctx);
    }
}
