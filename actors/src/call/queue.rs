//! A call waiting in an ACD queue: the switch has answered leg A (a route
//! to the queue, or an IVR transfer), the caller hears the queue's music,
//! and the ACD ([`crate::acd::Acd`]) sends offers: each rings every phone
//! of an agent (the caller's number and the queue in its display name and
//! an `X-Queue` header), each phone on its own INVITE and media leg, so a
//! ring-all queue rings several agents at once. The first phone to answer
//! becomes leg B and is bridged; the others are cancelled. No answer, a
//! decline or an unreachable phone is a missed offer and the caller waits
//! for the next. When the call ends the agent's wrap-up starts.

use super::*;
use crate::acd::router::{CallerId, CallerSpec};
use crate::acd::{CallEnded, CancelOffer, Join, Leave, Offer, OfferOutcome, OfferResult};

/// The queue side of a call.
pub(super) struct QueueCall {
    name: String,
    /// Priority, VIP, skills: kept for a callback or an overflow to
    /// another queue.
    spec: CallerSpec,
    /// The caller's id in the ACD, once joined.
    id: Option<CallerId>,
    /// Agents' phones ringing for this caller.
    ringers: Vec<Ringer>,
    /// The agent the caller talks to.
    agent: Option<String>,
    joined_ms: u64,
    answered_ms: Option<u64>,
    /// The announcement being rendered or played.
    announcing: Option<u64>,
    /// The caller asked for a callback: hang up after the confirmation.
    leaving: bool,
    /// The queue's music file, rendered once off the actor (None: not
    /// ready, or the queue plays ringback or nothing).
    music: Option<media::wav::Prompt>,
}

/// One phone of an agent ringing for a waiting caller: its own INVITE and
/// media leg (an extra leg of the anchor until it answers).
struct Ringer {
    agent: String,
    user: String,
    leg: LegB,
    media: LegId,
    /// The offer's ring time.
    timer: SpawnHandle,
}

/// Tags of announcement prompts (IVR prompts count up from 1).
const ANNOUNCE_TAG: u64 = 1 << 62;
/// The tag of queue music played from a file (looped).
const MUSIC_TAG: u64 = (1 << 62) - 1;

impl Call {
    /// Puts the caller in queue `name` (answering them first if needed).
    pub(super) fn join_queue(
        &mut self,
        name: &str,
        spec: CallerSpec,
        inband: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(acd) = self.switch.acd.get().cloned() else {
            return self.fail_a(503, Some("ACD Not Running"), ctx);
        };
        if self.a.dialog.is_none() {
            let Some(body) = self.answer_here(inband, ctx) else {
                return;
            };
            let mut r = self.ok_for_a();
            set_sdp(&mut r, body);
            self.send_ok_a(r, ctx);
        }
        self.destination = Some(format!("queue:{name}"));
        self.queue = Some(Box::new(QueueCall {
            name: name.to_owned(),
            spec: spec.clone(),
            id: None,
            ringers: Vec::new(),
            agent: None,
            joined_ms: unix_ms(),
            answered_ms: None,
            announcing: None,
            leaving: false,
            music: None,
        }));
        self.queue_load_music(ctx);
        let max_wait = self
            .switch
            .config()
            .queues
            .iter()
            .find(|q| q.name == name)
            .map_or(0, |q| q.max_wait_secs);
        if max_wait > 0 {
            let joined = self.queue.as_ref().map(|q| q.joined_ms);
            ctx.run_later(Duration::from_secs(max_wait.into()), move |this, ctx| {
                let still = this.queue.as_ref().is_some_and(|q| {
                    Some(q.joined_ms) == joined
                        && q.agent.is_none()
                        && q.ringers.is_empty()
                        && !q.leaving
                });
                if still {
                    this.queue_overflow("maximum wait", ctx);
                }
            });
        }
        let every = cfg_announce_secs(&self.switch.config(), name);
        if every > 0 {
            let every = Duration::from_secs(every.into());
            ctx.run_interval(every, |this, ctx| this.queue_announce(ctx));
        }
        self.queue_music();
        let (priority, vip) = (spec.priority, spec.vip);
        let join = Join {
            queue: name.to_owned(),
            spec,
            call_id: self.call_id_a(),
            call: ctx.address().recipient(),
            cancel: ctx.address().recipient(),
            overflow: ctx.address().recipient(),
        };
        acd.send(join)
            .into_actor(self)
            .map(|res, this, ctx| match res {
                Ok(Ok(id)) => {
                    if let Some(q) = this.queue.as_mut() {
                        q.id = Some(id);
                    }
                    if this.phase == Phase::Ending {
                        this.queue_finish();
                    }
                }
                Ok(Err(why)) => {
                    tracing::info!(call_id = %this.call_id_a(), %why, "queue refused the caller");
                    this.queue_overflow(&why, ctx);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ACD unreachable");
                    this.hangup(&[Leg::A], ctx);
                }
            })
            .wait(ctx);
        tracing::info!(call_id = %self.call_id_a(), queue = name, priority, vip, "joined queue");
    }

    /// Tells a waiting caller their place and estimated wait (spoken),
    /// then the music goes on.
    fn queue_announce(&mut self, ctx: &mut Context<Self>) {
        let Some(q) = self.queue.as_ref() else { return };
        let (Some(id), true, None) = (q.id, q.ringers.is_empty(), &q.agent) else {
            return;
        };
        let Some(acd) = self.switch.acd.get().cloned() else {
            return;
        };
        acd.send(crate::acd::Position(id))
            .into_actor(self)
            .map(|res, this, ctx| {
                let Ok(Some((pos, ewt))) = res else { return };
                let wait = match ewt.div_ceil(60) {
                    0 | 1 => "less than a minute".to_owned(),
                    m => format!("about {m} minutes"),
                };
                let text = format!(
                    "You are caller number {pos}. Your estimated waiting time is {wait}. Please stay on the line."
                );
                this.queue_say(text, ctx);
            })
            .spawn(ctx);
    }

    fn queue_say(&mut self, text: String, ctx: &mut Context<Self>) {
        let (Some(q), Some(anchor)) = (self.queue.as_mut(), self.anchor.as_ref()) else {
            return;
        };
        let tag = ANNOUNCE_TAG + unix_ms();
        q.announcing = Some(tag);
        let cfg = self.switch.config();
        let parts = vec![crate::ivr::Part::Say {
            text,
            voice: cfg.ivr.voice.clone(),
        }];
        let rate = anchor.rate_a();
        let renderer = self.switch.prompts.clone();
        let render =
            async move { tokio::task::spawn_blocking(move || renderer.render(&parts, rate)).await };
        ctx.spawn(render.into_actor(self).map(move |res, this, ctx| {
            let Ok((prompt, _)) = res else { return };
            let waiting = this.queue.as_ref().is_some_and(|q| {
                q.announcing == Some(tag) && q.ringers.is_empty() && q.agent.is_none()
            });
            if prompt.samples.is_empty() && this.queue.as_ref().is_some_and(|q| q.leaving) {
                return this.queue_played(tag, ctx);
            }
            if let (true, Some(a)) = (waiting && !prompt.samples.is_empty(), &this.anchor) {
                a.session.play(a.leg_a(), prompt, tag);
            }
        }));
    }

    /// A prompt ended: after an announcement the music goes on (or,
    /// after a callback's confirmation, the call ends).
    pub(super) fn queue_played(&mut self, tag: u64, ctx: &mut Context<Self>) {
        let Some(q) = self.queue.as_mut() else { return };
        if tag == MUSIC_TAG && q.announcing.is_none() && q.agent.is_none() {
            return self.queue_music();
        }
        if q.announcing == Some(tag) {
            q.announcing = None;
            if q.leaving {
                self.end_reason
                    .get_or_insert_with(|| "callback requested".into());
                return self.hangup(&[Leg::A], ctx);
            }
            if q.agent.is_none() {
                self.queue_music();
            }
        }
    }

    /// A digit from the waiting caller: the queue's callback key asks to
    /// be called back (the caller keeps their place and hangs up).
    pub(super) fn queue_digit(&mut self, d: char, ctx: &mut Context<Self>) {
        let Some(q) = self.queue.as_ref() else { return };
        let cfg = self.switch.config();
        let key = cfg
            .queues
            .iter()
            .find(|x| x.name == q.name)
            .map(|x| x.callback_key.clone());
        let (Some(id), true, None, Some(key)) = (q.id, q.ringers.is_empty(), &q.agent, key) else {
            return;
        };
        if key.is_empty() || !key.starts_with(d) || q.leaving {
            return;
        }
        self.queue_request_callback(id, ctx);
    }

    /// Asks the ACD to turn this waiting caller into a callback; on
    /// success the caller hears a confirmation and the call ends. False if
    /// there is no number to call back.
    fn queue_request_callback(&mut self, id: CallerId, ctx: &mut Context<Self>) -> bool {
        let Some(acd) = self.switch.acd.get().cloned() else {
            return false;
        };
        // The caller's real number (a trusted carrier's asserted identity).
        let number = self.caller_id(self.source.as_ref()).number;
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '+') {
            tracing::info!(call_id = %self.call_id_a(), "callback refused: no number to call back");
            return false;
        }
        if let Some(q) = self.queue.as_mut() {
            q.leaving = true;
        }
        let msg = crate::acd::RequestCallback {
            caller: id,
            number: number.clone(),
            spec: self
                .queue
                .as_ref()
                .map(|q| q.spec.clone())
                .unwrap_or_default(),
        };
        acd.send(msg)
            .into_actor(self)
            .map(move |res, this, ctx| {
                if !matches!(res, Ok(Ok(()))) {
                    tracing::info!(result = ?res.map(|r| r.err()), "callback not taken");
                    if let Some(q) = this.queue.as_mut() {
                        q.leaving = false;
                    }
                    return;
                }
                if let Some(q) = this.queue.as_mut() {
                    // The ACD keeps the place: no Leave when this call ends.
                    q.id = None;
                }
                let spaced: Vec<String> = number.chars().map(|c| c.to_string()).collect();
                let text = format!(
                    "Thank you. You keep your place in the queue, and we will call you back at {}. Goodbye.",
                    spaced.join(" ")
                );
                this.queue_say(text, ctx);
            })
            .spawn(ctx);
        true
    }

    /// The caller cannot wait here (the queue is full or empty, the
    /// maximum wait passed, the last agent left): the queue's overflow.
    pub(super) fn queue_overflow(&mut self, why: &str, ctx: &mut Context<Self>) {
        let Some(q) = self.queue.as_ref() else { return };
        let (name, spec) = (q.name.clone(), q.spec.clone());
        let id = q.id;
        let cfg = self.switch.config();
        self.overflows += 1;
        let target = if self.overflows > 3 {
            None // overflow chains end somewhere
        } else {
            cfg.queues
                .iter()
                .find(|x| x.name == name)
                .and_then(|x| x.overflow.clone())
        };
        tracing::info!(call_id = %self.call_id_a(), queue = %name, why, ?target, "queue overflow");
        use config::acd::Overflow;
        if let (Some(Overflow::Callback), Some(id)) = (&target, id) {
            if self.queue_request_callback(id, ctx) {
                return;
            }
        }
        if let Some(id) = id {
            self.acd_send(Leave {
                caller: id,
                reason: why.to_owned(),
            });
        }
        self.drop_ringers(ctx);
        self.queue = None;
        if let Some(a) = &self.anchor {
            a.session.stop_playing(a.leg_a());
        }
        let reason = format!("queue {name}: {why}");
        match target {
            Some(Overflow::Queue(next)) => {
                self.join_queue(&next, spec, false, ctx);
            }
            Some(Overflow::User(user)) => {
                let Some(source) = self.source.clone() else {
                    return;
                };
                self.destination = Some(user.clone());
                let mf = cfg.calls.max_forwards;
                self.call_b(
                    &source,
                    &RouteTarget::User(user.clone()),
                    user,
                    mf,
                    None,
                    ctx,
                );
            }
            Some(Overflow::Flow(flow)) => {
                let dialed = self
                    .switch
                    .calls
                    .get(&self.call_id_a())
                    .map(|e| e.dialed.clone())
                    .unwrap_or_default();
                self.destination = Some(format!("flow:{flow}"));
                self.start_ivr(&flow, &dialed, false, ctx);
            }
            Some(Overflow::Hangup(_)) | Some(Overflow::Callback) | None => {
                self.end_reason.get_or_insert(reason);
                self.hangup(&[Leg::A], ctx);
            }
        }
    }

    /// Renders the queue's music file off the actor (file I/O, resampling;
    /// then kept in memory) and starts it; ringback plays until it is ready.
    fn queue_load_music(&mut self, ctx: &mut Context<Self>) {
        let (Some(q), Some(a)) = (&self.queue, &self.anchor) else {
            return;
        };
        let cfg = self.switch.config();
        let Some(config::acd::Music::File { file }) = cfg
            .queues
            .iter()
            .find(|x| x.name == q.name)
            .map(|x| &x.music)
        else {
            return;
        };
        let parts = vec![crate::ivr::Part::File(cfg.ivr.prompts_dir.join(file))];
        let (rate, renderer, queue) = (a.rate_a(), self.switch.prompts.clone(), q.name.clone());
        let render =
            async move { tokio::task::spawn_blocking(move || renderer.render(&parts, rate)).await };
        ctx.spawn(render.into_actor(self).map(move |res, this, _| {
            let prompt = match res {
                Ok((p, errors)) if errors.is_empty() && !p.samples.is_empty() => p,
                other => {
                    tracing::warn!(queue = %queue, result = ?other.map(|r| r.1), "queue music: ringback instead");
                    return;
                }
            };
            let Some(q) = this.queue.as_mut().filter(|q| q.name == queue) else { return };
            q.music = Some(prompt);
            if q.announcing.is_none() && q.agent.is_none() && !q.leaving {
                this.queue_music();
            }
        }));
    }

    /// What a waiting caller hears: the queue's music.
    fn queue_music(&self) {
        let (Some(q), Some(a)) = (&self.queue, &self.anchor) else {
            return;
        };
        let cfg = self.switch.config();
        match cfg
            .queues
            .iter()
            .find(|x| x.name == q.name)
            .map(|x| &x.music)
        {
            Some(config::acd::Music::Named(n)) if n == "none" => a.session.stop_playing(a.leg_a()),
            // Played whole and again (queue_played), from memory.
            Some(config::acd::Music::File { .. }) => match &q.music {
                Some(p) => a.session.play(a.leg_a(), p.clone(), MUSIC_TAG),
                None => a
                    .session
                    .play_tone(a.leg_a(), media::tone::ToneKind::Ringback),
            },
            _ => a
                .session
                .play_tone(a.leg_a(), media::tone::ToneKind::Ringback),
        }
    }

    /// Whether the caller is in a queue (waiting or ringing an agent).
    pub(super) fn in_queue(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| q.agent.is_none())
    }

    fn acd_send<M>(&self, msg: M)
    where
        M: Message<Result = ()> + Send + 'static,
        crate::acd::Acd: Handler<M>,
    {
        if let Some(acd) = self.switch.acd.get() {
            acd.do_send(msg);
        }
    }

    /// Rings one of the agent's phones (`user`) with its own INVITE and
    /// media leg; it rings for at most `ring`.
    fn ring_phone(
        &mut self,
        agent: &str,
        user: &str,
        ring: Duration,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        let source = self.source.clone().ok_or("no caller")?;
        let dest = self
            .resolve(&RouteTarget::User(user.to_owned()), user)
            .map_err(|(code, why)| format!("{code} {}", why.unwrap_or("")))?;
        let anchor = self.anchor.as_mut().ok_or("media not anchored")?;
        let (media, body) = anchor
            .offer_extra(LegOptions {
                inband_dtmf: dest.inband_dtmf,
            })
            .map_err(|code| format!("no media leg ({code})"))?;
        let mf = self.switch.config().calls.max_forwards;
        let mut invite = self.build_b_invite(&dest, user, &source, mf.saturating_sub(1));
        set_sdp(&mut invite, body);
        let call_id = invite.call_id().unwrap_or("").to_owned();
        self.to_shard(ShardCmd::Adopt {
            call_id: call_id.clone(),
            call: ctx.address(),
        });
        self.to_shard(ShardCmd::Request {
            peer: dest.peer,
            req: invite.clone(),
            owner: ctx.address().recipient(),
        });
        let timer = {
            let call_id = call_id.clone();
            ctx.run_later(ring, move |this, ctx| {
                this.ringer_failed(&call_id, 480, true, ctx);
            })
        };
        let ringer = Ringer {
            agent: agent.to_owned(),
            user: user.to_owned(),
            leg: LegB::new(invite, dest.peer, None),
            media,
            timer,
        };
        if let Some(q) = self.queue.as_mut() {
            q.ringers.push(ringer);
        }
        Ok(())
    }

    /// Whether `call_id` is a phone ringing for this caller.
    pub(super) fn is_ringer(&self, call_id: Option<&str>) -> bool {
        let Some(call_id) = call_id else { return false };
        self.queue.as_ref().is_some_and(|q| {
            q.ringers
                .iter()
                .any(|r| r.leg.invite.call_id() == Some(call_id))
        })
    }

    /// The ringing phone whose INVITE transaction is `tx`, by Call-ID.
    pub(super) fn ringer_with_tx(&self, tx: TxId) -> Option<String> {
        let q = self.queue.as_ref()?;
        q.ringers
            .iter()
            .find(|r| r.leg.tx == Some(tx))
            .map(|r| r.leg.invite.call_id().unwrap_or("").to_owned())
    }

    /// Takes a ringing phone out of the list (its ring timer stops).
    fn take_ringer(&mut self, call_id: &str, ctx: &mut Context<Self>) -> Option<Ringer> {
        let q = self.queue.as_mut()?;
        let i = q
            .ringers
            .iter()
            .position(|r| r.leg.invite.call_id() == Some(call_id))?;
        let r = q.ringers.remove(i);
        ctx.cancel_future(r.timer);
        Some(r)
    }

    /// Takes a ringing phone out of the offer: its media leg leaves the
    /// session, its INVITE is cancelled if `cancel` (at its first
    /// provisional response if none came yet, §9.1) and a late 2xx is
    /// still ACKed and hung up (`c_done`). Returns its agent.
    fn drop_ringer(
        &mut self,
        call_id: &str,
        cancel: bool,
        ctx: &mut Context<Self>,
    ) -> Option<(String, String)> {
        let Ringer {
            agent,
            user,
            mut leg,
            media,
            ..
        } = self.take_ringer(call_id, ctx)?;
        if let Some(a) = self.anchor.as_mut() {
            a.remove_extra(media);
        }
        if cancel && !leg.failed {
            if leg.provisional {
                self.to_shard(ShardCmd::Request {
                    peer: leg.peer,
                    req: cancel_for(&leg.invite),
                    owner: ctx.address().recipient(),
                });
            } else {
                leg.cancel_pending = true;
            }
            self.finals_owed.push(call_id.to_owned());
        }
        self.c_done.push(leg);
        Some((agent, user))
    }

    /// Cancels every phone ringing for this caller (the call ends, goes
    /// elsewhere, or an agent answered).
    pub(super) fn drop_ringers(&mut self, ctx: &mut Context<Self>) {
        let ids: Vec<String> = self.queue.as_ref().map_or(Vec::new(), |q| {
            q.ringers
                .iter()
                .map(|r| r.leg.invite.call_id().unwrap_or("").to_owned())
                .collect()
        });
        for id in ids {
            self.drop_ringer(&id, true, ctx);
        }
    }

    /// A phone did not take the call (`code`: no answer, declined,
    /// unreachable); when none of the agent's phones rings any more the
    /// offer is missed and the caller waits on.
    pub(super) fn ringer_failed(
        &mut self,
        call_id: &str,
        code: u16,
        cancel: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some((agent, user)) = self.drop_ringer(call_id, cancel, ctx) else {
            return;
        };
        tracing::info!(call_id = %self.call_id_a(), %agent, %user, code, "queue: the agent's phone did not answer");
        self.report_missed(&agent);
    }

    /// A response to a ringing phone's INVITE.
    pub(super) fn on_ringer_response(&mut self, tx: TxId, resp: Response, ctx: &mut Context<Self>) {
        let call_id = resp.call_id().unwrap_or("").to_owned();
        let Some(q) = self.queue.as_mut() else { return };
        let Some(r) = q
            .ringers
            .iter_mut()
            .find(|r| r.leg.invite.call_id() == Some(call_id.as_str()))
        else {
            return;
        };
        r.leg.tx = Some(tx);
        if resp.code < 200 {
            r.leg.provisional = true;
            return;
        }
        if resp.code >= 300 {
            r.leg.failed = true;
            return self.ringer_failed(&call_id, resp.code, false, ctx);
        }
        if let Some(r) = self.take_ringer(&call_id, ctx) {
            self.ringer_answered(r, tx, resp, ctx);
        }
    }

    /// A phone answered: it becomes leg B, the agent talks to the caller,
    /// every other phone stops ringing.
    fn ringer_answered(&mut self, r: Ringer, tx: TxId, resp: Response, ctx: &mut Context<Self>) {
        let Ringer {
            agent,
            user,
            mut leg,
            media,
            ..
        } = r;
        let (invite, peer) = (leg.invite.clone(), leg.peer);
        let usable = self.phase != Phase::Ending
            && self.b.is_none()
            && self.queue.as_ref().is_some_and(|q| q.agent.is_none());
        if !usable {
            if let Some(a) = self.anchor.as_mut() {
                a.remove_extra(media);
            }
            self.c_done.push(leg);
            return self.ack_and_bye(&invite, peer, tx, &resp, ctx);
        }
        let mut dialog = match Dialog::uac(&invite, &resp) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "bad 2xx from an agent's phone");
                if let Some(a) = self.anchor.as_mut() {
                    a.remove_extra(media);
                }
                self.c_done.push(leg);
                return self.report_missed(&agent);
            }
        };
        let ack = dialog.request(Method::Ack, &self.switch.via(peer), 70);
        self.to_shard(ShardCmd::Ack2xx { tx, peer, ack });
        // The phone's media leg (an extra leg of the anchor) becomes leg B.
        let promoted = match self.anchor.as_mut() {
            Some(a) => a
                .promote_extra(media, resp.body())
                .map_err(|e| e.to_string()),
            None => Err("no media".to_owned()),
        };
        if let Err(e) = promoted {
            tracing::info!(error = %e, %agent, "unusable answer from an agent's phone");
            if let Some(a) = self.anchor.as_mut() {
                a.remove_extra(media);
            }
            self.bye_aside(&mut dialog, peer, ctx);
            self.c_done.push(leg);
            return self.report_missed(&agent);
        }
        leg.dialog = Some(dialog);
        self.b = Some(leg);
        self.b_user = Some(user.clone());
        self.ended[Leg::B as usize] = false;
        self.destination = Some(user.clone());
        if let Some(mut entry) = self.switch.calls.get_mut(&self.call_id_a()) {
            entry.destination = Some(user);
        }
        self.drop_ringers(ctx);
        self.queue_connected(agent);
    }

    fn report_missed(&mut self, agent: &str) {
        let Some(q) = self.queue.as_ref() else { return };
        if q.ringers.iter().any(|x| x.agent == agent) {
            return;
        }
        if let Some(caller) = q.id {
            self.acd_send(OfferResult {
                caller,
                agent: agent.to_owned(),
                outcome: OfferOutcome::Missed,
            });
        }
    }

    /// The agent answered: the caller and the agent talk.
    fn queue_connected(&mut self, agent: String) {
        let Some(q) = self.queue.as_mut() else { return };
        q.agent = Some(agent.clone());
        q.answered_ms = Some(unix_ms());
        let caller = q.id;
        self.bridge_answered_b();
        tracing::info!(call_id = %self.call_id_a(), %agent, "queue: answered by an agent");
        if let Some(caller) = caller {
            self.acd_send(OfferResult {
                caller,
                agent,
                outcome: OfferOutcome::Answered,
            });
        }
    }

    /// The call is over: the ACD forgets the caller (abandoned if they were
    /// still waiting) or starts the agent's wrap-up.
    pub(super) fn queue_finish(&mut self) {
        let Some(q) = self.queue.as_mut() else { return };
        let Some(id) = q.id.take() else { return };
        match &q.agent {
            Some(agent) => {
                let msg = CallEnded {
                    agent: agent.clone(),
                    queue: q.name.clone(),
                    talk_ms: q.answered_ms.map_or(0, |t| unix_ms().saturating_sub(t)),
                };
                self.acd_send(msg);
            }
            None => self.acd_send(Leave {
                caller: id,
                reason: "abandoned".into(),
            }),
        }
    }

    /// For the CDR: queue, agent, wait (ms), when the agent answered.
    pub(super) fn queue_cdr(&self) -> Option<(String, Option<String>, u64, Option<u64>)> {
        let q = self.queue.as_ref()?;
        let wait = q
            .answered_ms
            .unwrap_or_else(unix_ms)
            .saturating_sub(q.joined_ms);
        Some((q.name.clone(), q.agent.clone(), wait, q.answered_ms))
    }

    /// The display-name prefix for an agent's phone offered the call.
    pub(super) fn queue_display(&self) -> Option<&str> {
        let q = self.queue.as_ref()?;
        q.agent.is_none().then_some(q.name.as_str())
    }

    /// The Call-IDs and transactions of phones still ringing (released
    /// with the call's).
    pub(super) fn ringer_legs(&self) -> impl Iterator<Item = &LegB> {
        self.queue
            .iter()
            .flat_map(|q| q.ringers.iter().map(|r| &r.leg))
    }
}

impl Handler<Offer> for Call {
    type Result = ();

    fn handle(&mut self, offer: Offer, ctx: &mut Context<Self>) {
        let busy = self.phase == Phase::Ending
            || self.b.is_some()
            || self.queue.as_ref().is_none_or(|q| {
                q.agent.is_some() || q.leaving || q.ringers.iter().any(|r| r.agent == offer.agent)
            });
        if busy {
            // Answered or gone: the agent is released without a miss.
            self.acd_send(OfferResult {
                caller: offer.caller,
                agent: offer.agent,
                outcome: OfferOutcome::Released,
            });
            return;
        }
        if let Some(q) = self.queue.as_mut() {
            q.id.get_or_insert(offer.caller);
        }
        let mut rung = 0;
        for user in &offer.users {
            match self.ring_phone(&offer.agent, user, offer.ring, ctx) {
                Ok(()) => {
                    rung += 1;
                    tracing::info!(call_id = %self.call_id_a(), agent = %offer.agent, %user, "queue: ringing an agent");
                }
                Err(e) => {
                    tracing::info!(call_id = %self.call_id_a(), agent = %offer.agent, %user, error = %e, "queue: cannot ring the agent's phone");
                }
            }
        }
        if rung == 0 {
            // No phone of the agent can ring (not registered): a miss.
            self.acd_send(OfferResult {
                caller: offer.caller,
                agent: offer.agent,
                outcome: OfferOutcome::Missed,
            });
        }
    }
}

impl Handler<CancelOffer> for Call {
    type Result = ();

    fn handle(&mut self, c: CancelOffer, ctx: &mut Context<Self>) {
        let ids: Vec<String> = self.queue.as_ref().map_or(Vec::new(), |q| {
            q.ringers
                .iter()
                .filter(|r| r.agent == c.agent)
                .map(|r| r.leg.invite.call_id().unwrap_or("").to_owned())
                .collect()
        });
        for id in ids {
            self.drop_ringer(&id, true, ctx);
        }
    }
}

/// A queue's announcement interval (0: none).
fn cfg_announce_secs(cfg: &config::Config, queue: &str) -> u32 {
    cfg.queues
        .iter()
        .find(|q| q.name == queue)
        .map_or(0, |q| q.announce_secs)
}

impl Handler<crate::acd::QueueOverflow> for Call {
    type Result = ();

    fn handle(&mut self, o: crate::acd::QueueOverflow, ctx: &mut Context<Self>) {
        let ours = self
            .queue
            .as_ref()
            .is_some_and(|q| q.id == Some(o.caller) && q.agent.is_none());
        if ours {
            if let Some(q) = self.queue.as_mut() {
                // The ACD has let the caller go already.
                q.id = None;
            }
            self.queue_overflow(&o.reason, ctx);
        }
    }
}
