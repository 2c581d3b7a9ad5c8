//! Session timers on leg A (RFC 4028, the switch as UAS of the caller's
//! INVITE). A caller that supports `timer` gets `Session-Expires` and
//! `Require: timer` in the 2xx: its own interval (at least
//! `[calls] session_min_se_secs`, else 422 with Min-SE, §8.1) or
//! `session_expires_secs`, with the refresher it asked for (default: the
//! caller). When the caller refreshes, every re-INVITE or UPDATE it sends
//! restarts the clock; without one, the switch hangs up both legs a third
//! of the interval (at most 32 s) before it expires (§10). When the switch
//! is the refresher it sends an UPDATE at half the interval and hangs up if
//! that fails.

use super::*;
use sip::{Refresher, SessionExpires};

/// Leg A's negotiated session timer.
pub(super) struct SessionTimer {
    secs: u32,
    refresher: Refresher,
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
            .max(min_se);
        let refresher = asked.and_then(|se| se.refresher).unwrap_or(Refresher::Uac);
        self.session = Some(SessionTimer {
            secs,
            refresher,
            timer: None,
        });
        Ok(())
    }

    /// Session-Expires and Require: timer for a 2xx to leg A (§9).
    pub(super) fn session_headers(&self, r: &mut Response) {
        if let Some(s) = &self.session {
            let se = SessionExpires {
                secs: s.secs,
                refresher: Some(s.refresher),
            };
            r.headers.push(Name::SessionExpires, se.to_string());
            r.headers.push(Name::Require, "timer");
        }
    }

    /// (Re)starts the clock: the session was set up or refreshed.
    pub(super) fn session_restart(&mut self, ctx: &mut Context<Self>) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        if let Some(h) = s.timer.take() {
            ctx.cancel_future(h);
        }
        let secs = u64::from(s.secs);
        s.timer = Some(match s.refresher {
            Refresher::Uac => {
                // §10: the BYE goes out before expiry, by a third of the
                // interval or 32 s, whichever is less.
                let at = Duration::from_millis(secs * 1000 - (secs * 1000 / 3).min(32_000));
                ctx.run_later(at, |this, ctx| this.session_expired(ctx))
            }
            Refresher::Uas => ctx.run_later(Duration::from_millis(secs * 500), |this, ctx| {
                this.session_refresh(ctx)
            }),
        });
    }

    /// No session timer any more (leg A was replaced by a transfer).
    pub(super) fn session_stop(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.session.take().and_then(|s| s.timer) {
            ctx.cancel_future(h);
        }
    }

    /// Leg A sent a re-INVITE or UPDATE: as refresher, the session goes on.
    pub(super) fn session_refreshed_by_a(&mut self, ctx: &mut Context<Self>) {
        if self
            .session
            .as_ref()
            .is_some_and(|s| s.refresher == Refresher::Uac)
        {
            self.session_restart(ctx);
        }
    }

    /// The caller did not refresh in time: both legs are hung up.
    fn session_expired(&mut self, ctx: &mut Context<Self>) {
        if self.phase == Phase::Ending {
            return;
        }
        let secs = self.session.as_ref().map_or(0, |s| s.secs);
        tracing::info!(call_id = %self.call_id_a(), secs, "session timer expired");
        self.end_reason = Some("session timer expired".into());
        self.hangup(&[Leg::A, Leg::B], ctx);
    }

    /// The switch refreshes: an UPDATE to the caller (no SDP); the clock
    /// restarts on its 2xx, and runs out if none comes.
    fn session_refresh(&mut self, ctx: &mut Context<Self>) {
        let (Some(s), Some(d)) = (self.session.as_ref(), self.a.dialog.as_mut()) else {
            return;
        };
        if self.phase == Phase::Ending || self.ended[Leg::A as usize] {
            return;
        }
        let se = SessionExpires {
            secs: s.secs,
            refresher: Some(Refresher::Uas),
        };
        let secs = u64::from(s.secs);
        let via = self.switch.via(self.a.peer);
        let mut u = d.request(Method::Update, &via, 70);
        u.headers.push(
            Name::Contact,
            format!("<{}>", self.switch.contact(self.a.peer.transport)),
        );
        u.headers.push(Name::SessionExpires, se.to_string());
        u.headers.push(Name::Supported, "timer");
        self.to_shard(ShardCmd::Request {
            peer: self.a.peer,
            req: u,
            owner: ctx.address().recipient(),
        });
        // Until the answer comes: the rest of the interval.
        let left = Duration::from_millis(
            (secs * 1000 - (secs * 1000 / 3).min(32_000)).saturating_sub(secs * 500),
        );
        let h = ctx.run_later(left, |this, ctx| this.session_expired(ctx));
        if let Some(s) = self.session.as_mut() {
            s.timer = Some(h);
        }
    }

    /// The answer to our refreshing UPDATE: 408 or 481 mean the session is
    /// gone (§10); any other final answer shows the caller is there (one
    /// that does not take UPDATE answers 405 or 501), so the clock restarts.
    pub(super) fn session_update_answered(&mut self, code: u16, ctx: &mut Context<Self>) {
        if matches!(code, 408 | 481) {
            return self.session_expired(ctx);
        }
        self.session_restart(ctx);
    }
}
