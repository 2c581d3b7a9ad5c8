//! In-call features a local user dials as DTMF (`[features]`): recording
//! on/off and pause/resume, and three-way calling. The third party is leg C,
//! a UAC dialog like leg B (RFC 3261 §12/§13); once it answers, the media
//! session mixes A, B and C, and when C leaves, A and B are bridged again.
//! When A or B hangs up, the whole call ends, C included.

use super::*;

/// What leg C is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Purpose {
    /// A third party mixed with A and B.
    #[default]
    ThreeWay,
    /// B's replacement: when it answers, B is hung up.
    Transfer,
    /// A supervisor listening, whispering to B, or barged in.
    Supervise(SuperviseMode),
}

/// How a supervisor joins a call (leg B is the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuperviseMode {
    /// Hears both parties; nobody hears them.
    #[default]
    Listen,
    /// Hears both; only the agent (leg B) hears them (coaching).
    Whisper,
    /// Everyone hears everyone.
    Barge,
}

/// A supervisor joins a call (`calls.monitor`): their phone (a local
/// user) rings; when answered they listen, whisper or barge. Sent again
/// with another mode while connected, it switches modes.
#[derive(Message)]
#[rtype(result = "Result<String, String>")]
pub struct Supervise {
    /// The supervisor's user (phone).
    pub user: String,
    /// How.
    pub mode: SuperviseMode,
}

impl Handler<Supervise> for Call {
    type Result = Result<String, String>;

    fn handle(&mut self, s: Supervise, ctx: &mut Context<Self>) -> Self::Result {
        if let (Purpose::Supervise(_), Some(c)) = (self.c_purpose, self.c.as_ref()) {
            if c.dialog.is_some() {
                self.c_purpose = Purpose::Supervise(s.mode);
                self.apply_supervision();
                return Ok("mode changed".into());
            }
            return Err("the supervisor's phone is ringing".into());
        }
        let cfg = self.switch.config();
        if cfg.user(&s.user).is_none() {
            return Err(format!("no user {}", s.user));
        }
        self.call_c(
            &s.user,
            Source::User(s.user.clone()),
            Purpose::Supervise(s.mode),
            ctx,
        )?;
        Ok("ringing the supervisor".into())
    }
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::ThreeWay => "three-way",
            Purpose::Transfer => "transfer",
            Purpose::Supervise(_) => "supervision",
        }
    }
}

/// Transfers the caller to `to` (control socket `calls.transfer`): `to` is
/// called (users' dialplan, showing the caller); when it answers, the
/// callee is hung up and the caller talks to `to`. Until then the call
/// goes on; if `to` does not answer, nothing changes. The outcome is a
/// `call.transfer` event.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Transfer {
    /// The number to transfer to.
    pub to: String,
}

impl Handler<Transfer> for Call {
    type Result = Result<(), String>;

    fn handle(&mut self, Transfer { to }: Transfer, ctx: &mut Context<Self>) -> Self::Result {
        let from = self.source.clone().ok_or("the call is not routed")?;
        self.call_c(&to, from, Purpose::Transfer, ctx)
    }
}

impl Call {
    /// The local user on `leg`, if it is one: features are never taken from
    /// a trunk's leg, so an outside caller cannot record or dial out.
    pub(super) fn user_of(&self, leg: Leg) -> Option<String> {
        match leg {
            Leg::A if self.orig_a.is_some() => self.a_user.clone(),
            Leg::A => match &self.source {
                Some(Source::User(u)) => Some(u.clone()),
                _ => None,
            },
            Leg::B => self.b_user.clone(),
            Leg::C => None,
        }
    }

    /// A digit from leg A or B: feature codes, or the number after the
    /// three-way code.
    pub(super) fn on_feature_digit(&mut self, leg: Leg, digit: char, ctx: &mut Context<Self>) {
        if self.phase != Phase::Up || self.room.is_some() || self.user_of(leg).is_none() {
            return;
        }
        let cfg = self.switch.config();
        let gap = Duration::from_secs(cfg.features.inter_digit_secs.into());
        let now = Instant::now();
        let k = &mut self.keys[leg as usize];
        let stale = k.last.is_some_and(|t| now.duration_since(t) > gap);
        k.last = Some(now);
        if let Some(number) = k.number.as_mut() {
            if digit == '#' {
                return self.dial_c(leg, ctx);
            }
            if number.len() < 32 {
                number.push(digit);
            }
            return self.arm_key_timer(leg, gap, ctx);
        }
        if stale {
            k.digits.clear();
        }
        k.digits.push(digit);
        let hit = cfg
            .features
            .codes()
            .into_iter()
            .find(|(_, code)| k.digits.ends_with(code))
            .map(|(key, _)| key);
        if k.digits.len() > 8 {
            k.digits.drain(..k.digits.len() - 8);
        }
        let Some(feature) = hit else { return };
        k.digits.clear();
        let call_id = self.call_id_a();
        tracing::info!(%call_id, leg = ?leg, feature, "feature code");
        let cmd = match feature {
            "record" if self.rec == Rec::Off => RecordCmd::Start,
            "record" => RecordCmd::Stop,
            "record_pause" if self.rec == Rec::Paused => RecordCmd::Resume,
            "record_pause" => RecordCmd::Pause,
            _ => {
                if self.c.is_some() || self.anchor.is_none() {
                    tracing::info!(%call_id, "three-way: not available on this call");
                    return;
                }
                self.keys[leg as usize].number = Some(String::new());
                return self.arm_key_timer(leg, gap, ctx);
            }
        };
        if let Err(e) = self.record_cmd(cmd) {
            tracing::info!(%call_id, ?cmd, error = %e, "recording control refused");
        }
    }

    /// The number after the three-way code ends with '#' or a pause.
    fn arm_key_timer(&mut self, leg: Leg, gap: Duration, ctx: &mut Context<Self>) {
        if let Some(h) = self.keys[leg as usize].timer.take() {
            ctx.cancel_future(h);
        }
        let h = ctx.run_later(gap, move |this, ctx| {
            this.keys[leg as usize].timer = None;
            this.dial_c(leg, ctx);
        });
        self.keys[leg as usize].timer = Some(h);
    }

    /// Recording control: start, stop, pause (silence), resume.
    pub(super) fn record_cmd(&mut self, cmd: RecordCmd) -> Result<(), String> {
        if !matches!(self.phase, Phase::Answered | Phase::Up) {
            return Err("the call is not answered".into());
        }
        let call_id = self.call_id_a();
        let session = self.anchor.as_ref().map(|a| a.session.clone());
        let session = session.ok_or("the call's media is not anchored")?;
        match (cmd, self.rec) {
            (RecordCmd::Start, _) => return self.start_recording(true),
            (_, Rec::Off) => return Err("not recording".into()),
            (RecordCmd::Stop, _) => {
                session.stop_recording();
                self.rec = Rec::Off;
            }
            (RecordCmd::Pause, Rec::On) => {
                session.pause_recording(true);
                self.rec = Rec::Paused;
            }
            (RecordCmd::Resume, Rec::Paused) => {
                session.pause_recording(false);
                self.rec = Rec::On;
            }
            (RecordCmd::Pause, _) => return Err("already paused".into()),
            (RecordCmd::Resume, _) => return Err("not paused".into()),
        }
        tracing::info!(%call_id, ?cmd, "recording control");
        Ok(())
    }

    /// Calls the number dialed after the three-way code, as the user on
    /// `by` would (the dialplan for users), offering a new media leg.
    fn dial_c(&mut self, by: Leg, ctx: &mut Context<Self>) {
        let k = &mut self.keys[by as usize];
        if let Some(h) = k.timer.take() {
            ctx.cancel_future(h);
        }
        let number = k.number.take().unwrap_or_default();
        let Some(user) = self.user_of(by) else { return };
        if number.is_empty() {
            return;
        }
        if let Err(e) = self.call_c(&number, Source::User(user), Purpose::ThreeWay, ctx) {
            tracing::info!(call_id = %self.call_id_a(), %number, error = %e, "three-way refused");
        }
    }

    /// Calls `number` as leg C (routed by the users' dialplan, `from` as
    /// the caller it shows) for a three-way call or a transfer.
    pub(super) fn call_c(
        &mut self,
        number: &str,
        from: Source,
        purpose: Purpose,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        let call_id = self.call_id_a();
        if self.phase != Phase::Up {
            return Err("the call is not up".into());
        }
        if self.c.is_some() || self.handover_pending || self.takeover.is_some() {
            return Err("a three-way call or transfer is already in progress".into());
        }
        if self.room.is_some() || self.b.is_none() {
            return Err("not a two-party call".into());
        }
        // The number ends up in a Request-URI and To: dialable characters only.
        if number.is_empty() || number.len() > 64 || !number.chars().all(dialable) {
            return Err(format!("{number:?} is not a number"));
        }
        let cfg = self.switch.config();
        let route = cfg
            .route_for(number, RouteSource::Users)
            .ok_or_else(|| format!("no route for {number}"))?;
        let (route_target, _) = cfg.target_at(route, self.switch.now());
        if let Source::User(user) = &from {
            if let Err(class) = cfg.permits(user, route, route_target) {
                return Err(format!("{user} may not place {} calls", class.name()));
            }
        }
        let target = route.rewrite(number);
        let dest = match self.resolve(route_target, &target) {
            Ok(d) if !matches!(route_target, RouteTarget::Conference(_)) => d,
            Ok(_) => return Err(format!("{number} is a conference room")),
            Err((code, reason)) => {
                return Err(format!(
                    "{number} cannot be called ({code} {})",
                    reason.unwrap_or("")
                ))
            }
        };
        let anchor = self
            .anchor
            .as_mut()
            .ok_or("the call's media is not anchored")?;
        let (media, body) = anchor
            .offer_extra(LegOptions {
                inband_dtmf: dest.inband_dtmf,
            })
            .map_err(|code| format!("no media leg ({code})"))?;
        let mut invite = self.build_b_invite(&dest, &target, &from, cfg.calls.max_forwards);
        if let Some(by) = &self.c_referred_by {
            invite.headers.push(Name::ReferredBy, by.clone());
        }
        set_sdp(&mut invite, body);
        let peer = dest.peer;
        self.c = Some(LegB::new(invite.clone(), peer, dest.auth));
        self.c_media = Some(media);
        self.c_purpose = purpose;
        self.c_target = Some((
            target.clone(),
            matches!(route_target, RouteTarget::Users | RouteTarget::User(_)),
        ));
        if let RouteTarget::User(u) = route_target {
            self.c_target = Some((u.clone(), true));
        }
        self.ended[Leg::C as usize] = false;
        self.c_replaces = Leg::B;
        tracing::info!(%call_id, %number, "{}: calling {target}", purpose.name());
        self.to_shard(ShardCmd::Adopt {
            call_id: invite.call_id().unwrap_or("").to_owned(),
            call: ctx.address(),
        });
        self.to_shard(ShardCmd::Request {
            peer,
            req: invite,
            owner: ctx.address().recipient(),
        });
        let timeout = Duration::from_secs(cfg.calls.no_answer_timeout_secs.into());
        self.c_no_answer = Some(ctx.run_later(timeout, |this, ctx| {
            this.c_no_answer = None;
            if this.c.as_ref().is_some_and(|c| c.dialog.is_none()) {
                tracing::info!(call_id = %this.call_id_a(), "{}: no answer", this.c_purpose.name());
                this.c_failed(480, ctx);
                this.cancel_out(Leg::C, ctx);
                this.drop_c(ctx);
            }
        }));
        Ok(())
    }

    /// Leg C did not answer: a transfer's outcome is reported.
    fn c_failed(&mut self, code: u16, ctx: &mut Context<Self>) {
        if self.c_purpose == Purpose::Transfer {
            self.refer_done(code, ctx);
            let to = self.c_target.as_ref().map(|t| t.0.clone());
            self.switch.publish(
                "call.transfer",
                serde_json::json!({"call_id": self.call_id_a(), "to": to, "result": "failed", "code": code}),
            );
        }
    }

    /// A transfer's target answered: it becomes leg B, the old B is hung up.
    pub(super) fn complete_transfer(
        &mut self,
        dialog: Dialog,
        resp: &Response,
        ctx: &mut Context<Self>,
    ) -> Result<(), String> {
        // The transferor hears of the answer before it is hung up.
        self.refer_done(200, ctx);
        if self.c_replaces == Leg::A {
            self.replace_a(dialog, resp, ctx)?;
            self.resume_held(Leg::B, ctx);
            return Ok(());
        }
        let media = self.c_media.ok_or("no media leg")?;
        let anchor = self.anchor.as_mut().ok_or("no media")?;
        anchor
            .promote_extra(media, resp.body())
            .map_err(|e| e.to_string())?;
        if let Some(mut old) = self.b.take() {
            if !self.ended[Leg::B as usize] {
                if let Some(d) = old.dialog.as_mut() {
                    let peer = old.peer;
                    self.bye_aside(d, peer, ctx);
                }
            }
            self.c_done.push(old);
        }
        let mut c = self.c.take().ok_or("no leg C")?;
        c.dialog = Some(dialog);
        self.b = Some(c);
        // The session timer was the old B's.
        self.session_stop(Leg::B, ctx);
        self.c_media = None;
        self.ended[Leg::B as usize] = false;
        self.ended[Leg::C as usize] = false;
        let (to, is_user) = self.c_target.take().unwrap_or_default();
        self.b_user = is_user.then(|| to.clone());
        self.destination = Some(to.clone());
        if let Some(mut entry) = self.switch.calls.get_mut(&self.call_id_a()) {
            entry.destination = Some(to.clone());
        }
        tracing::info!(call_id = %self.call_id_a(), %to, "transfer: answered, the caller is now with {to}");
        self.switch.publish(
            "call.transfer",
            serde_json::json!({"call_id": self.call_id_a(), "to": to, "result": "answered"}),
        );
        self.resume_held(Leg::A, ctx);
        Ok(())
    }

    /// A response to leg C's INVITE.
    pub(super) fn on_c_response(&mut self, tx: TxId, resp: Response, ctx: &mut Context<Self>) {
        let call_id = self.call_id_a();
        let Some(c) = self.c.as_mut() else { return };
        c.tx = Some(tx);
        let code = resp.code;
        if code < 200 {
            c.provisional = true;
            if std::mem::take(&mut c.cancel_pending) {
                self.cancel_out(Leg::C, ctx);
            }
            return;
        }
        if code >= 300 {
            if (code == 401 || code == 407) && !c.auth_tried && c.auth.is_some() {
                return self.retry_with_auth(Leg::C, &resp, ctx);
            }
            tracing::info!(%call_id, code, "{}: no answer from the far end", self.c_purpose.name());
            self.c_failed(code, ctx);
            return self.drop_c(ctx);
        }
        if c.dialog.is_some() {
            // A second fork's 2xx.
            let (invite, peer) = (c.invite.clone(), c.peer);
            return self.ack_and_bye(&invite, peer, tx, &resp, ctx);
        }
        if let Some(h) = self.c_no_answer.take() {
            ctx.cancel_future(h);
        }
        let mut dialog = match Dialog::uac(&c.invite, &resp) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(%call_id, error = %e, "three-way: bad 2xx");
                return self.drop_c(ctx);
            }
        };
        let peer = c.peer;
        let ack = dialog.request(Method::Ack, &self.switch.via(peer), 70);
        self.to_shard(ShardCmd::Ack2xx { tx, peer, ack });
        if self.c_purpose == Purpose::Transfer && self.phase == Phase::Up {
            let mut spare = dialog.clone();
            if let Err(e) = self.complete_transfer(dialog, &resp, ctx) {
                tracing::info!(%call_id, error = %e, "transfer: hanging up the target");
                self.c_failed(488, ctx);
                self.bye_aside(&mut spare, peer, ctx);
                self.drop_c(ctx);
            }
            return;
        }
        let joined = match (self.anchor.as_mut(), self.c_media) {
            _ if self.phase != Phase::Up => Err("the call is ending".to_owned()),
            (Some(anchor), Some(media)) => anchor
                .on_extra_answer(media, resp.body())
                .map_err(|e| e.to_string()),
            _ => Err("no media".to_owned()),
        };
        match joined {
            Ok(()) => {
                tracing::info!(%call_id, "{}: the third party joined", self.c_purpose.name());
                if let Some(c) = self.c.as_mut() {
                    c.dialog = Some(dialog);
                }
                self.apply_supervision();
            }
            Err(e) => {
                tracing::info!(%call_id, error = %e, "three-way: hanging up the third party");
                self.c_failed(488, ctx);
                self.bye_aside(&mut dialog, peer, ctx);
                self.drop_c(ctx);
            }
        }
    }

    /// A supervisor's leg C: the session's mode for listen/whisper/barge.
    fn apply_supervision(&self) {
        let Purpose::Supervise(mode) = self.c_purpose else {
            return;
        };
        let (Some(anchor), Some(sup)) = (self.anchor.as_ref(), self.c_media) else {
            return;
        };
        let heard_by = match mode {
            SuperviseMode::Listen => None,
            SuperviseMode::Whisper => anchor.leg_b(),
            SuperviseMode::Barge => {
                return anchor.session.set_mode(media::session::Mode::Conference);
            }
        };
        tracing::info!(call_id = %self.call_id_a(), ?mode, "supervision");
        anchor.session.set_mode(media::session::Mode::Supervise {
            supervisor: sup,
            heard_by,
        });
    }

    /// Leg C is gone (or given up): its media leaves the mix and A and B
    /// are bridged again. Its Call-ID stays known until the call ends.
    pub(super) fn drop_c(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.c_no_answer.take() {
            ctx.cancel_future(h);
        }
        if let (Some(media), Some(anchor)) = (self.c_media.take(), self.anchor.as_mut()) {
            anchor.remove_extra(media);
        }
        if let Some(c) = self.c.take() {
            self.c_done.push(c);
        }
        self.c_target = None;
        self.ended[Leg::C as usize] = false;
    }
}

impl Call {
    /// An agent feature code the caller dialed (`[acd]` login/logout/pause).
    pub(super) fn agent_code(&self, dialed: &str) -> Option<&'static str> {
        let cfg = self.switch.config();
        let a = &cfg.acd;
        let found = [
            (&a.login_code, "login"),
            (&a.logout_code, "logout"),
            (&a.pause_code, "pause"),
        ]
        .into_iter()
        .find(|(code, _)| !code.is_empty() && code.as_str() == dialed)
        .map(|(_, op)| op);
        found
    }

    /// An agent dialed a feature code from their phone: the ACD is told,
    /// the switch answers, says the outcome and hangs up.
    pub(super) fn agent_feature(
        &mut self,
        user: String,
        op: &'static str,
        ctx: &mut Context<Self>,
    ) {
        let Some(acd) = self.switch.acd.get().cloned() else {
            return self.fail_a(503, Some("ACD Not Running"), ctx);
        };
        let status = if op == "pause" {
            // Pause, or resume when paused.
            None
        } else {
            Some(op)
        };
        let fut = async move {
            let cmd = |op| crate::acd::AgentCmd {
                agent: user.clone(),
                op,
            };
            match status {
                Some("login") => acd.send(cmd(crate::acd::AgentOp::Login)).await,
                Some(_) => acd.send(cmd(crate::acd::AgentOp::Logout)).await,
                None => match acd.send(cmd(crate::acd::AgentOp::Resume)).await {
                    Ok(Err(_)) => {
                        acd.send(cmd(crate::acd::AgentOp::Pause("break".into())))
                            .await
                    }
                    other => other,
                },
            }
        };
        self.destination = Some(format!("agent:{op}"));
        fut.into_actor(self)
            .map(|res, this, ctx| {
                let text = match res {
                    Ok(Ok(v)) => {
                        let state = v["state"].as_str().unwrap_or("").replace('_', " ");
                        format!(
                            "Agent {}, you are {state}.",
                            v["agent"].as_str().unwrap_or("")
                        )
                    }
                    Ok(Err(e)) => format!("Sorry: {e}."),
                    Err(_) => "Sorry, that did not work.".into(),
                };
                tracing::info!(call_id = %this.call_id_a(), %text, "agent feature code");
                this.say_and_hang_up(text, ctx);
            })
            .wait(ctx);
    }

    /// Answers, says `text`, hangs up.
    fn say_and_hang_up(&mut self, text: String, ctx: &mut Context<Self>) {
        let Some(body) = self.answer_here(false, ctx) else {
            return;
        };
        let mut r = self.ok_for_a();
        set_sdp(&mut r, body);
        self.send_ok_a(r, ctx);
        let Some(anchor) = self.anchor.as_ref() else {
            return;
        };
        let tag = 1 << 61;
        self.bye_after = Some(tag);
        let parts = vec![crate::ivr::Part::Say {
            text,
            voice: self.switch.config().ivr.voice.clone(),
        }];
        let rate = anchor.rate_a();
        let renderer = self.switch.prompts.clone();
        let render =
            async move { tokio::task::spawn_blocking(move || renderer.render(&parts, rate)).await };
        ctx.spawn(
            render
                .into_actor(self)
                .map(move |res, this, ctx| match (res, &this.anchor) {
                    (Ok((prompt, _)), Some(a)) if !prompt.samples.is_empty() => {
                        a.session.play(a.leg_a(), prompt, tag);
                    }
                    _ => this.hangup(&[Leg::A], ctx),
                }),
        );
    }
}
