//! A call in an IVR flow: the switch answers leg A itself and the flow's
//! runner ([`crate::ivr::Runner`]) decides what the caller hears and
//! where the call goes. Prompts are rendered off the actor (TTS, WAV) and
//! played by the media session; digits and speech come back as media
//! events. A transfer calls leg B while A hears ringback; when B answers
//! the two are bridged and the call goes on like any other; when B fails
//! the flow continues at the node's `on_failure`.

use super::*;
use crate::ivr::{Action, Runner, TransferTo};
use config::RouteSource;
use media::record::Layout;
use std::collections::BTreeMap;

/// The IVR side of a call.
pub(super) struct IvrCall {
    runner: Runner,
    timer: Option<SpawnHandle>,
    /// The prompt being rendered or played (None once stopped).
    want: Option<u64>,
    /// The tag of the prompt the session plays.
    playing: Option<u64>,
    /// A message is being recorded.
    recording: bool,
    /// A transfer rings leg B.
    transferring: bool,
    /// Speech recognition while a menu listens, and its id.
    listener: Option<(u64, crate::asr::Listener)>,
    listens: u64,
}

impl Call {
    /// Answers the caller and starts flow `name`.
    pub(super) fn start_ivr(
        &mut self,
        name: &str,
        dialed: &str,
        inband: bool,
        ctx: &mut Context<Self>,
    ) {
        // A queue's overflow starts a flow on a call answered already.
        let body = if self.a.dialog.is_none() {
            let Some(body) = self.answer_here(inband, ctx) else {
                return;
            };
            Some(body)
        } else {
            None
        };
        let mut vars = BTreeMap::new();
        let caller = self.caller_id(self.source.as_ref()).number;
        vars.insert("caller".to_owned(), caller);
        vars.insert("dialed".to_owned(), dialed.to_owned());
        if let Some(Source::Trunk(t)) = &self.source {
            vars.insert("trunk".to_owned(), t.clone());
        }
        let switch = self.switch.clone();
        let wall = Box::new(move || switch.now());
        let Some(runner) = Runner::new(self.switch.config(), name, vars, wall) else {
            return self.fail_a(404, None, ctx);
        };
        self.ivr = Some(Box::new(IvrCall {
            runner,
            timer: None,
            want: None,
            playing: None,
            recording: false,
            transferring: false,
            listener: None,
            listens: 0,
        }));
        if let Some(body) = body {
            let mut r = self.ok_for_a();
            set_sdp(&mut r, body);
            self.send_ok_a(r, ctx);
        }
        tracing::info!(call_id = %self.call_id_a(), flow = name, "IVR answered");
        let actions = self.ivr.as_mut().map(|i| i.runner.start(Instant::now()));
        self.ivr_apply(actions.unwrap_or_default(), ctx);
    }

    /// The switch answers leg A itself (IVR, queue): anchors its media and
    /// returns the SDP answer for the 200, or fails leg A and returns None.
    pub(super) fn answer_here(&mut self, inband: bool, ctx: &mut Context<Self>) -> Option<Bytes> {
        if let Err(code) = self.anchor_a(None, inband, ctx) {
            self.fail_a(code, None, ctx);
            return None;
        }
        let Some(anchor) = self.anchor.as_mut() else {
            self.fail_a(488, Some("Media Needs An SDP Offer"), ctx);
            return None;
        };
        match anchor.answer_locally() {
            Ok(b) => {
                self.answered_here = true;
                Some(b)
            }
            Err(e) => {
                tracing::info!(error = %e, "cannot answer the caller's offer");
                self.fail_a(488, None, ctx);
                None
            }
        }
    }

    /// Carries out the runner's actions, then sets its timer.
    fn ivr_apply(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for action in actions {
            let Some(ivr) = self.ivr.as_mut() else { return };
            let Some(anchor) = self.anchor.as_ref() else {
                return;
            };
            let leg = anchor.leg_a();
            match action {
                Action::Play { id, parts } => {
                    ivr.want = Some(id);
                    let rate = anchor.rate_a();
                    let renderer = self.switch.prompts.clone();
                    let render = async move {
                        tokio::task::spawn_blocking(move || renderer.render(&parts, rate)).await
                    };
                    ctx.spawn(render.into_actor(self).map(move |res, this, ctx| match res {
                        Ok((prompt, errors)) => {
                            for e in errors {
                                tracing::warn!(call_id = %this.call_id_a(), error = %e, "IVR prompt");
                            }
                            this.ivr_prompt_ready(id, prompt, ctx)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "IVR prompt rendering failed");
                            this.ivr_prompt_ready(id, media::wav::Prompt::new(rate, Vec::new()), ctx)
                        }
                    }));
                }
                Action::StopPlaying => {
                    ivr.want = None;
                    ivr.playing = None;
                    anchor.session.stop_playing(leg);
                }
                Action::Listen { phrases } => {
                    let cfg = self.switch.config();
                    let Some(engine) = crate::asr::recognizer(&cfg) else {
                        tracing::debug!("IVR: speech input is off ([ivr] asr)");
                        continue;
                    };
                    ivr.listens += 1;
                    let id = ivr.listens;
                    let listener = crate::asr::Listener::start(
                        engine,
                        phrases,
                        cfg.ivr.language.clone(),
                        id,
                        ctx.address().recipient(),
                    );
                    anchor.session.tap(leg, Some(listener.tap()));
                    ivr.listener = Some((id, listener));
                }
                Action::StopListening => {
                    if ivr.listener.take().is_some() {
                        anchor.session.tap(leg, None);
                    }
                }
                Action::StartRecording => self.ivr_record_message(),
                Action::StopRecording => {
                    ivr.recording = false;
                    anchor.session.stop_recording();
                    anchor.session.detect_speech(leg, false);
                }
                Action::Transfer { to, timeout } => self.ivr_transfer(to, timeout, ctx),
                Action::Hangup { reason } => {
                    self.end_reason.get_or_insert(reason);
                    self.ivr_finish();
                    return self.hangup(&[Leg::A, Leg::B], ctx);
                }
            }
        }
        self.ivr_schedule(ctx);
    }

    fn ivr_schedule(&mut self, ctx: &mut Context<Self>) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        if let Some(h) = ivr.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = ivr.runner.deadline() {
            let wait = at.saturating_duration_since(Instant::now());
            ivr.timer = Some(ctx.run_later(wait, |this, ctx| {
                let Some(ivr) = this.ivr.as_mut() else { return };
                ivr.timer = None;
                let actions = ivr.runner.tick(Instant::now());
                this.ivr_apply(actions, ctx);
            }));
        }
    }

    fn ivr_prompt_ready(&mut self, id: u64, prompt: media::wav::Prompt, ctx: &mut Context<Self>) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        if ivr.want != Some(id) || self.phase == Phase::Ending {
            return; // stopped (barge-in) before it was ready
        }
        if prompt.samples.is_empty() {
            let actions = ivr.runner.played(id, Instant::now());
            return self.ivr_apply(actions, ctx);
        }
        ivr.playing = Some(id);
        if let Some(a) = &self.anchor {
            a.session.play(a.leg_a(), prompt, id);
        }
    }

    /// A prompt ended on leg `leg`.
    pub(super) fn ivr_played(&mut self, leg: LegId, tag: u64, ctx: &mut Context<Self>) {
        let is_a = self.anchor.as_ref().is_some_and(|a| a.leg_a() == leg);
        let Some(ivr) = self.ivr.as_mut() else { return };
        if !is_a || ivr.playing != Some(tag) {
            return;
        }
        ivr.playing = None;
        ivr.want = None;
        let actions = ivr.runner.played(tag, Instant::now());
        self.ivr_apply(actions, ctx);
    }

    /// What the recognition thread heard.
    fn ivr_heard(&mut self, id: u64, heard: crate::asr::Heard, ctx: &mut Context<Self>) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        if ivr.listener.as_ref().is_none_or(|(l, _)| *l != id) {
            return; // an earlier listening spell
        }
        let now = Instant::now();
        let actions = match heard {
            crate::asr::Heard::Started => ivr.runner.speech_started(now),
            crate::asr::Heard::Final(Some((text, conf))) => {
                ivr.runner.recognized(Some((&text, conf)), now)
            }
            crate::asr::Heard::Final(None) | crate::asr::Heard::Failed(_) => {
                ivr.runner.recognized(None, now)
            }
        };
        self.ivr_apply(actions, ctx);
    }

    /// Whether digits from leg A go to the flow.
    pub(super) fn in_ivr(&self) -> bool {
        self.ivr.is_some()
    }

    pub(super) fn ivr_digit(&mut self, d: char, ctx: &mut Context<Self>) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        let actions = ivr.runner.digit(d, Instant::now());
        self.ivr_apply(actions, ctx);
    }

    pub(super) fn ivr_speech(&mut self, started: bool, ctx: &mut Context<Self>) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        let now = Instant::now();
        let actions = if started {
            ivr.runner.speech_started(now)
        } else {
            ivr.runner.speech_ended(now);
            Vec::new()
        };
        self.ivr_apply(actions, ctx);
    }

    /// A voicemail-style message: leg A's audio into its own file.
    fn ivr_record_message(&mut self) {
        let cfg = self.switch.config();
        let Some(anchor) = self.anchor.as_ref() else {
            return;
        };
        if self.rec != Rec::Off {
            // One recording per session: the message takes its place.
            anchor.session.stop_recording();
            self.rec = Rec::Off;
        }
        let dir = std::path::PathBuf::from(&cfg.media.recordings);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create recordings directory");
        }
        let path = dir.join(format!(
            "{}-{}-message.wav",
            unix_now(),
            self.file_safe_id()
        ));
        tracing::info!(call_id = %self.call_id_a(), path = %path.display(), "IVR: recording a message");
        anchor.session.record(path.clone(), Layout::Mono, None);
        anchor.session.detect_speech(anchor.leg_a(), true);
        let p = path.display().to_string();
        self.recordings.push(p.clone());
        if let Some(ivr) = self.ivr.as_mut() {
            ivr.recording = true;
            ivr.runner.message_saved(&p);
        }
    }

    /// Starts a transfer out of the flow.
    fn ivr_transfer(&mut self, to: TransferTo, ring: Option<Duration>, ctx: &mut Context<Self>) {
        let cfg = self.switch.config();
        let (target, number) = match to {
            TransferTo::Queue(q) => return self.ivr_to_queue(&q, ctx),
            TransferTo::User(u) => (RouteTarget::User(u.clone()), u),
            TransferTo::Trunk { trunk, number } => (RouteTarget::Trunk(trunk), number),
            TransferTo::Number(n) => {
                let Some(route) = cfg.route_for_call(&n, RouteSource::Users, None) else {
                    tracing::info!(call_id = %self.call_id_a(), number = %n, "IVR transfer: no route");
                    return self.ivr_b_failed(404, ctx);
                };
                let (target, _) = cfg.target_at(route, self.switch.now());
                (target.clone(), route.rewrite(&n))
            }
        };
        match &target {
            RouteTarget::Flow(f) => return self.ivr_goto_flow(f, ctx),
            RouteTarget::Queue(q) => return self.ivr_to_queue(q, ctx),
            RouteTarget::Conference(_) => return self.ivr_b_failed(488, ctx),
            RouteTarget::Hangup { code } => return self.ivr_b_failed(*code, ctx),
            _ => {}
        }
        let Some(source) = self.source.clone() else {
            return;
        };
        if let Some(ivr) = self.ivr.as_mut() {
            ivr.transferring = true;
        }
        tracing::info!(call_id = %self.call_id_a(), ?target, %number, "IVR: transferring");
        if let Some(a) = &self.anchor {
            a.session
                .play_tone(a.leg_a(), media::tone::ToneKind::Ringback);
        }
        let mf = self
            .a
            .invite
            .max_forwards()
            .unwrap_or(cfg.calls.max_forwards);
        self.call_b(&source, &target, number, mf, ring, ctx);
    }

    /// The flow hands the caller to an ACD queue, with the caller's
    /// `priority`, `vip` and `skills` variables.
    fn ivr_to_queue(&mut self, queue: &str, ctx: &mut Context<Self>) {
        let Some(ivr) = self.ivr.as_mut() else { return };
        let vars = ivr.runner.vars().clone();
        ivr.runner.transferred_to_queue();
        self.ivr_finish();
        let spec = crate::acd::router::CallerSpec {
            priority: vars
                .get("priority")
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0),
            vip: vars
                .get("vip")
                .is_some_and(|v| matches!(v.trim().to_lowercase().as_str(), "1" | "yes" | "true")),
            skills: vars
                .get("skills")
                .map(|s| {
                    s.split(',')
                        .filter_map(|kv| {
                            let (k, v) = kv.split_once(':')?;
                            Some((k.trim().to_owned(), v.trim().parse().ok()?))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        self.join_queue(queue, spec, false, ctx);
    }

    /// A transfer to a number routed to another flow: the caller goes on there.
    fn ivr_goto_flow(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(old) = self.ivr.as_ref() else { return };
        let vars = old.runner.vars().clone();
        let switch = self.switch.clone();
        let wall = Box::new(move || switch.now());
        let Some(runner) = Runner::new(self.switch.config(), name, vars, wall) else {
            return self.ivr_b_failed(404, ctx);
        };
        self.ivr_finish_as(&format!("flow:{name}"));
        self.destination = Some(format!("flow:{name}"));
        if let Some(ivr) = self.ivr.as_mut() {
            ivr.runner = runner;
            ivr.transferring = false;
            let actions = ivr.runner.start(Instant::now());
            self.ivr_apply(actions, ctx);
        }
    }

    /// Leg B of a transfer failed (`code`): forget it, back to the flow.
    pub(super) fn ivr_b_failed(&mut self, code: u16, ctx: &mut Context<Self>) {
        self.cancel_no_answer(ctx);
        if let Some(b) = self.b.take() {
            // Late responses from it are still ACKed/hung up (c_done).
            self.c_done.push(b);
        }
        if let Some(a) = self.anchor.as_mut() {
            a.drop_b();
            a.session.stop_playing(a.leg_a());
        }
        self.b_user = None;
        self.trunk_out = None;
        tracing::info!(call_id = %self.call_id_a(), code, "IVR: transfer failed");
        let Some(ivr) = self.ivr.as_mut() else { return };
        ivr.transferring = false;
        ivr.playing = None;
        let actions = ivr.runner.transfer_failed(code, Instant::now());
        if let Some(flow) = self.ivr.as_ref().map(|i| i.runner.flow_name().to_owned()) {
            self.destination = Some(format!("flow:{flow}"));
        }
        self.ivr_apply(actions, ctx);
    }

    /// Ends an answered leg B on its own (a BYE whose answer is absorbed).
    pub(super) fn hangup_b_only(&mut self, ctx: &mut Context<Self>) {
        let Some(peer) = self.peer_of(Leg::B) else {
            return;
        };
        if let Some(mut d) = self.b.as_mut().and_then(|b| b.dialog.take()) {
            self.bye_aside(&mut d, peer, ctx);
        }
    }

    /// Whether a transfer from the IVR is ringing.
    pub(super) fn ivr_transferring(&self) -> bool {
        self.ivr.as_ref().is_some_and(|i| i.transferring)
    }

    /// Leg B answered the transfer: bridge, and the flow is over.
    pub(super) fn ivr_connected(&mut self, ctx: &mut Context<Self>) {
        let Some(mut ivr) = self.ivr.take() else {
            return;
        };
        if let Some(h) = ivr.timer.take() {
            ctx.cancel_future(h);
        }
        ivr.runner.transferred();
        self.ivr = Some(ivr);
        self.ivr_finish();
        self.bridge_answered_b();
        tracing::info!(call_id = %self.call_id_a(), destination = ?self.destination, "IVR: transfer answered");
        self.switch.publish(
            "call.transfer",
            serde_json::json!({ "call_id": self.call_id_a(), "destination": self.destination, "from": "ivr" }),
        );
    }

    /// The flow is over (or the caller left it): its path goes to the CDR
    /// and the event stream.
    pub(super) fn ivr_finish(&mut self) {
        self.ivr_finish_as("");
        if let Some(mut ivr) = self.ivr.take() {
            if ivr.listener.take().is_some() {
                if let Some(a) = &self.anchor {
                    a.session.tap(a.leg_a(), None);
                }
            }
            if ivr.recording {
                ivr.recording = false;
                if let Some(a) = &self.anchor {
                    a.session.stop_recording();
                }
            }
        }
    }

    /// Records the current flow's path and outcome (`outcome` if the runner
    /// has none).
    fn ivr_finish_as(&mut self, outcome: &str) {
        let Some(ivr) = self.ivr.as_ref() else { return };
        let r = &ivr.runner;
        let outcome = r.outcome().map(str::to_owned).unwrap_or_else(|| {
            if outcome.is_empty() {
                "abandoned".into()
            } else {
                outcome.into()
            }
        });
        let path: Vec<String> = r.path().iter().map(ToString::to_string).collect();
        self.ivr_path
            .extend(path.iter().map(|p| format!("{}:{p}", r.flow_name())));
        self.switch.publish(
            "ivr.end",
            serde_json::json!({
                "call_id": self.call_id_a(),
                "flow": r.flow_name(),
                "path": path,
                "outcome": outcome,
                "vars": r.vars(),
            }),
        );
    }

    /// The path so far, for a CDR written while the caller is in the flow.
    pub(super) fn ivr_path_now(&self) -> Vec<String> {
        let mut out = self.ivr_path.clone();
        if let Some(ivr) = &self.ivr {
            let r = &ivr.runner;
            out.extend(r.path().iter().map(|v| format!("{}:{v}", r.flow_name())));
        }
        out
    }
}

impl Handler<crate::asr::AsrMsg> for Call {
    type Result = ();

    fn handle(&mut self, msg: crate::asr::AsrMsg, ctx: &mut Context<Self>) {
        self.ivr_heard(msg.id, msg.heard, ctx);
    }
}
