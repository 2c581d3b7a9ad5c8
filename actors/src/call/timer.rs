//! Session timers (RFC 4028) on both legs.
//!
//! Leg A (the switch as UAS of the caller's INVITE): a caller that
//! supports `timer` gets `Session-Expires` and `Require: timer` in the 2xx:
//! its own interval (at least `[calls] session_min_se_secs`, else 422 with
//! Min-SE, §8.1) or `session_expires_secs`, with the refresher it asked for
//! (default: the caller).
//!
//! Leg B (the switch as UAC): the INVITE says `Supported: timer` and
//! `Session-Expires: session_expires_secs`; a callee whose 2xx carries
//! `Session-Expires` runs the timer with the refresher it chose (§7.2;
//! default the switch).
//!
//! On either leg: when the other side refreshes, every re-INVITE or UPDATE
//! it sends restarts the clock, and without one the switch hangs up both
//! legs a third of the interval (at most 32 s) before it expires (§10).
//! When the switch refreshes it sends an UPDATE at half the interval (a
//! refresh of its own: re-INVITEs it relays to that leg count too) and
//! hangs up if that fails with 408 or 481.

use super::*;
use sip::{Refresher, SessionExpires};

/// A leg's negotiated session timer.
pub(super) struct SessionTimer {
    secs: u32,
    /// The switch is the refresher on this leg. (The `refresher` parameter
    /// names the UAC or UAS of each refresh transaction, so it is written
    /// per message from this.)
    ours: bool,
    timer: Option<SpawnHandle>,
}

impl Call {
    /// Reads leg A's INVITE (§9): the session timer to run, or the 422 to
    /// answer with when its interval is below our minimum.
    pub(super) fn session_check(&mut self) -> Result<(), Response> {
        let cfg = self.switch.config();
        let (default, min_se) = (
            cfg.calls.session_expires_secs,
            cfg.calls.session_min_se_secs,
        );
        if default == 0 {
            return Ok(());
        }
        let h = &self.a.invite.headers;
        let asked = h.get(&Name::SessionExpires).and_then(SessionExpires::parse);
        if let Some(se) = asked.filter(|se| se.secs < min_se) {
            tracing::info!(call_id = %self.call_id_a(), secs = se.secs, min_se, "session interval too small");
            let mut r = response_to(&self.a.invite, 422, Some(&self.a.tag));
            r.headers.push(Name::MinSe, min_se.to_string());
            return Err(r);
        }
        let supported = [Name::Supported, Name::Require]
            .iter()
            .flat_map(|n| h.get_all(n))
            .flat_map(sip::option_tags)
            .any(|t| t.eq_ignore_ascii_case("timer"));
        if !supported {
            return Ok(());
        }
        let their_min = h
            .get(&Name::MinSe)
            .and_then(sip::parse_delta_seconds)
            .unwrap_or(0);
        let secs = asked
            .map_or(default, |se| se.secs)
            .max(their_min)
            .max(min_se)
            .max(1);
        let refresher = asked.and_then(|se| se.refresher).unwrap_or(Refresher::Uac);
        self.session = Some(SessionTimer {
            secs,
            ours: refresher == Refresher::Uas,
            timer: None,
        });
        Ok(())
    }

    /// Leg B's INVITE offers a session timer (§7.1).
    pub(super) fn session_offer_b(&self, invite: &mut Request) {
        let secs = self.switch.config().calls.session_expires_secs;
        if secs == 0 {
            return;
        }
        invite.headers.set(Name::Supported, "100rel, timer");
        invite.headers.push(Name::SessionExpires, secs.to_string());
    }

    /// Leg B answered: the session timer its 2xx asks for (§7.2), if any.
    pub(super) fn session_answered_b(&mut self, resp: &Response, ctx: &mut Context<Self>) {
        self.session_stop(Leg::B, ctx);
        let Some(se) = resp
            .headers
            .get(&Name::SessionExpires)
            .and_then(SessionExpires::parse)
            .filter(|se| se.secs > 0)
        else {
            return;
        };
        let refresher = se.refresher.unwrap_or(Refresher::Uac);
        // Never below our minimum (the callee may not go under Min-SE, §9).
        let secs = se
            .secs
            .max(self.switch.config().calls.session_min_se_secs)
            .max(1);
        tracing::debug!(call_id = %self.call_id_a(), secs, ?refresher, "session timer on leg B");
        self.session_b = Some(SessionTimer {
            secs,
            ours: refresher == Refresher::Uac,
            timer: None,
        });
        self.session_restart(Leg::B, ctx);
    }

    fn timer_slot(&mut self, leg: Leg) -> Option<&mut Option<SessionTimer>> {
        match leg {
            Leg::A => Some(&mut self.session),
            Leg::B => Some(&mut self.session_b),
            Leg::C => None,
        }
    }

    /// `leg`'s Session-Expires for a message of a transaction whose UAC
    /// is the switch (`we_send`: our request) or the leg (our response).
    fn session_expires(&self, leg: Leg, we_send: bool) -> Option<SessionExpires> {
        let s = match leg {
            Leg::A => self.session.as_ref(),
            Leg::B => self.session_b.as_ref(),
            Leg::C => None,
        }?;
        let refresher = if s.ours == we_send {
            Refresher::Uac
        } else {
            Refresher::Uas
        };
        Some(SessionExpires {
            secs: s.secs,
            refresher: Some(refresher),
        })
    }

    /// Session-Expires and Require: timer for a 2xx to `leg`'s session
    /// refresh or leg A's INVITE (§9).
    pub(super) fn session_headers(&self, leg: Leg, r: &mut Response) {
        if let Some(se) = self.session_expires(leg, false) {
            r.headers.push(Name::SessionExpires, se.to_string());
            r.headers.push(Name::Require, "timer");
        }
    }

    /// Session-Expires and Supported: timer for a re-INVITE or UPDATE the
    /// switch sends to `leg` (§7.4: the session timer goes on).
    pub(super) fn session_request_headers(&self, leg: Leg, r: &mut Request) {
        if let Some(se) = self.session_expires(leg, true) {
            r.headers.set(Name::SessionExpires, se.to_string());
            r.headers.set(Name::Supported, "timer");
        }
    }

    /// (Re)starts `leg`'s clock: the session was set up or refreshed.
    pub(super) fn session_restart(&mut self, leg: Leg, ctx: &mut Context<Self>) {
        let Some(Some(s)) = self.timer_slot(leg) else {
            return;
        };
        let old = s.timer.take();
        let secs = u64::from(s.secs);
        let ours = s.ours;
        if let Some(h) = old {
            ctx.cancel_future(h);
        }
        let h = if ours {
            ctx.run_later(Duration::from_millis(secs * 500), move |this, ctx| {
                this.session_refresh(leg, ctx)
            })
        } else {
            // §10: the BYE goes out before expiry, by a third of the
            // interval or 32 s, whichever is less.
            let at = Duration::from_millis(secs * 1000 - (secs * 1000 / 3).min(32_000));
            ctx.run_later(at, move |this, ctx| this.session_expired(leg, ctx))
        };
        if let Some(Some(s)) = self.timer_slot(leg) {
            s.timer = Some(h);
        }
    }

    /// No session timer on `leg` any more (it was replaced by a transfer).
    pub(super) fn session_stop(&mut self, leg: Leg, ctx: &mut Context<Self>) {
        if let Some(h) = self
            .timer_slot(leg)
            .and_then(Option::take)
            .and_then(|s| s.timer)
        {
            ctx.cancel_future(h);
        }
    }

    /// `leg` sent a re-INVITE or UPDATE: if it is the refresher, the
    /// session goes on.
    pub(super) fn session_refreshed_by(&mut self, leg: Leg, ctx: &mut Context<Self>) {
        if matches!(self.timer_slot(leg), Some(Some(s)) if !s.ours) {
            self.session_restart(leg, ctx);
        }
    }

    /// `leg`'s session was not refreshed in time: both legs are hung up.
    fn session_expired(&mut self, leg: Leg, ctx: &mut Context<Self>) {
        if self.phase == Phase::Ending {
            return;
        }
        let Some(Some(s)) = self.timer_slot(leg) else {
            return;
        };
        let secs = s.secs;
        tracing::info!(call_id = %self.call_id_a(), ?leg, secs, "session timer expired");
        self.end_reason = Some("session timer expired".into());
        self.hangup(&[Leg::A, Leg::B], ctx);
    }

    /// The switch refreshes: an UPDATE to `leg` (no SDP); the clock
    /// restarts on its 2xx, and runs out if none comes.
    fn session_refresh(&mut self, leg: Leg, ctx: &mut Context<Self>) {
        if self.phase == Phase::Ending || self.ended[leg as usize] {
            return;
        }
        let Some(Some(s)) = self.timer_slot(leg) else {
            return;
        };
        let secs = u64::from(s.secs);
        let Some(se) = self.session_expires(leg, true) else {
            return;
        };
        let Some((mut u, peer, _)) = self.leg_request(leg, Method::Update) else {
            return;
        };
        u.headers.push(Name::SessionExpires, se.to_string());
        u.headers.push(Name::Supported, "timer");
        self.to_shard(ShardCmd::Request {
            peer,
            req: u,
            owner: ctx.address().recipient(),
        });
        // Until the answer comes: the rest of the interval.
        let left = Duration::from_millis(
            (secs * 1000 - (secs * 1000 / 3).min(32_000)).saturating_sub(secs * 500),
        );
        let h = ctx.run_later(left, move |this, ctx| this.session_expired(leg, ctx));
        if let Some(Some(s)) = self.timer_slot(leg) {
            s.timer = Some(h);
        }
    }

    /// The answer to our refreshing UPDATE on `leg`: 408 or 481 mean the
    /// session is gone (§10); any other final answer shows the party is
    /// there (one that does not take UPDATE answers 405 or 501), so the
    /// clock restarts.
    pub(super) fn session_update_answered(&mut self, leg: Leg, code: u16, ctx: &mut Context<Self>) {
        if matches!(code, 408 | 481) {
            return self.session_expired(leg, ctx);
        }
        self.session_restart(leg, ctx);
    }
}
