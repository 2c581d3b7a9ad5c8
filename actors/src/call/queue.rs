//! A call waiting in an ACD queue: the switch has answered leg A (a route
//! to the queue, or an IVR transfer), the caller hears the queue's music,
//! and the ACD ([`crate::acd::Acd`]) sends offers: each rings an agent's
//! phone as leg B (the caller's number and the queue in its display name
//! and an `X-Queue` header). An answer bridges the two; no answer, a
//! decline or an unreachable phone is a missed offer and the caller waits
//! for the next. When the call ends the agent's wrap-up starts.

use super::*;
use crate::acd::router::{CallerId, CallerSpec};
use crate::acd::{CallEnded, CancelOffer, Join, Leave, Offer, OfferOutcome, OfferResult};

/// The queue side of a call.
pub(super) struct QueueCall {
    name: String,
    /// The caller's id in the ACD, once joined.
    id: Option<CallerId>,
    /// The agent whose phone rings (leg B), if any.
    ringing: Option<String>,
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
            id: None,
            ringing: None,
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
                        && q.ringing.is_none()
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
        let (Some(id), None, None) = (q.id, &q.ringing, &q.agent) else {
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
                q.announcing == Some(tag) && q.ringing.is_none() && q.agent.is_none()
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
        if tag == MUSIC_TAG && q.announcing.is_none() && q.ringing.is_none() && q.agent.is_none() {
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
        let (Some(id), None, None, Some(key)) = (q.id, &q.ringing, &q.agent, key) else {
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
        let number = self
            .a
            .invite
            .from()
            .ok()
            .and_then(|f| {
                f.uri
                    .sip()
                    .and_then(|u| u.user_decoded().map(|u| u.into_owned()))
            })
            .unwrap_or_default();
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
            spec: CallerSpec::default(),
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
        let name = q.name.clone();
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
        self.queue = None;
        if let Some(a) = &self.anchor {
            a.session.stop_playing(a.leg_a());
        }
        let reason = format!("queue {name}: {why}");
        match target {
            Some(Overflow::Queue(next)) => {
                self.join_queue(&next, CallerSpec::default(), false, ctx);
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
            if q.announcing.is_none() && q.ringing.is_none() && q.agent.is_none() && !q.leaving {
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

    /// Whether an agent's phone rings for this caller.
    pub(super) fn queue_ringing(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| q.ringing.is_some())
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

    /// Forgets the agent's ringing leg B (its late answers are still
    /// ACKed and hung up, see `c_done`); the caller hears the music again.
    fn drop_offered_b(&mut self, ctx: &mut Context<Self>) {
        self.cancel_no_answer(ctx);
        if let Some(b) = self.b.take() {
            self.c_done.push(b);
        }
        if let Some(a) = self.anchor.as_mut() {
            a.drop_b();
        }
        self.b_user = None;
        self.queue_music();
    }

    /// The agent's phone did not take the call (`code`).
    pub(super) fn queue_b_failed(&mut self, code: u16, ctx: &mut Context<Self>) {
        self.drop_offered_b(ctx);
        let Some(q) = self.queue.as_mut() else { return };
        let Some(agent) = q.ringing.take() else {
            return;
        };
        let caller = q.id;
        tracing::info!(call_id = %self.call_id_a(), %agent, code, "queue: the agent did not answer");
        if let Some(caller) = caller {
            self.acd_send(OfferResult {
                caller,
                agent,
                outcome: OfferOutcome::Missed,
            });
        }
    }

    /// The agent answered: the caller and the agent talk.
    pub(super) fn queue_connected(&mut self, ctx: &mut Context<Self>) {
        let _ = ctx;
        let Some(q) = self.queue.as_mut() else { return };
        let Some(agent) = q.ringing.take() else {
            return;
        };
        q.agent = Some(agent.clone());
        q.answered_ms = Some(unix_ms());
        let caller = q.id;
        if let Some(a) = &self.anchor {
            a.session.stop_playing(a.leg_a());
            a.bridge();
            if self.rec != Rec::Off {
                a.session
                    .set_recording_sides(a.leg_b().map(|b| (a.leg_a(), b)));
            }
        }
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

    /// The display-name prefix for leg B while an agent is offered the call.
    pub(super) fn queue_display(&self) -> Option<&str> {
        let q = self.queue.as_ref()?;
        q.ringing.as_ref().map(|_| q.name.as_str())
    }
}

impl Handler<Offer> for Call {
    type Result = ();

    fn handle(&mut self, offer: Offer, ctx: &mut Context<Self>) {
        let busy = self.phase == Phase::Ending
            || self.b.is_some()
            || self
                .queue
                .as_ref()
                .is_none_or(|q| q.ringing.is_some() || q.agent.is_some());
        if busy {
            // Ringing someone already (ring-all rings one phone per call
            // for now) or gone: the agent is released without a miss.
            self.acd_send(OfferResult {
                caller: offer.caller,
                agent: offer.agent,
                outcome: OfferOutcome::Released,
            });
            return;
        }
        let Some(user) = offer.users.first().cloned() else {
            return;
        };
        if let Some(q) = self.queue.as_mut() {
            q.ringing = Some(offer.agent.clone());
            q.id.get_or_insert(offer.caller);
        }
        tracing::info!(call_id = %self.call_id_a(), agent = %offer.agent, %user, "queue: ringing an agent");
        let Some(source) = self.source.clone() else {
            return;
        };
        let mf = self.switch.config().calls.max_forwards;
        self.call_b(
            &source,
            &RouteTarget::User(user.clone()),
            user,
            mf,
            Some(offer.ring),
            ctx,
        );
    }
}

impl Handler<CancelOffer> for Call {
    type Result = ();

    fn handle(&mut self, c: CancelOffer, ctx: &mut Context<Self>) {
        let ringing = self
            .queue
            .as_ref()
            .is_some_and(|q| q.ringing.as_deref() == Some(c.agent.as_str()));
        if !ringing {
            return;
        }
        if let Some(q) = self.queue.as_mut() {
            q.ringing = None;
        }
        self.cancel_b(ctx);
        self.drop_offered_b(ctx);
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
            if self.queue_ringing() {
                self.cancel_b(ctx);
                self.drop_offered_b(ctx);
            }
            self.queue_overflow(&o.reason, ctx);
        }
    }
}
