//! Reliable provisional responses to the caller (RFC 3262 §3, the UAS
//! side). A caller whose INVITE says `Require: 100rel` gets its 18x with
//! `Require: 100rel` and an `RSeq`, sent again at T1, 2·T1, 4·T1, ... until
//! its PRACK (answered 200) or for 64·T1 (then the call fails with 500).
//! One at a time: an 18x arriving meanwhile waits for the PRACK (the
//! newest is kept). A 2xx waits for the PRACK of a reliable 18x that
//! carried SDP. PRACKs never reach the callee: each leg's reliability is
//! its own (leg B's is in `LegB::prack_for`).

use super::*;

/// RFC 3261 T1.
const T1: Duration = Duration::from_millis(500);

/// A reliable 18x sent and not yet acknowledged.
struct Pending {
    rseq: u32,
    resp: Response,
    with_sdp: bool,
    first: Instant,
}

/// Leg A's reliable provisional responses.
#[derive(Default)]
pub(super) struct Reliable {
    /// The caller requires 100rel.
    on: bool,
    next_rseq: u32,
    pending: Option<Pending>,
    /// A later 18x waiting for the pending one's PRACK.
    queued: Option<Response>,
    /// The 2xx waiting for the pending one's PRACK.
    deferred_ok: Option<Response>,
}

impl Reliable {
    /// What the caller's INVITE asks for.
    pub(super) fn for_invite(invite: &Request) -> Reliable {
        let on = invite
            .headers
            .get_all(&Name::Require)
            .flat_map(sip::option_tags)
            .any(|t| t.eq_ignore_ascii_case("100rel"));
        Reliable {
            on,
            // §3: the first RSeq is between 1 and 2**31 - 1.
            next_rseq: 1 + rand::random::<u32>() % 0x3fff_ffff,
            ..Default::default()
        }
    }
}

impl Call {
    /// An 18x for leg A: reliable when the caller requires it.
    pub(super) fn provisional_a(&mut self, r: Response, ctx: &mut Context<Self>) {
        if !self.rel.on {
            return self.respond(self.a.tx, r);
        }
        if self.rel.pending.is_some() {
            self.rel.queued = Some(r);
            return;
        }
        self.send_reliable(r, ctx);
    }

    fn send_reliable(&mut self, mut r: Response, ctx: &mut Context<Self>) {
        let rseq = self.rel.next_rseq;
        self.rel.next_rseq = rseq.wrapping_add(1);
        r.headers.push(Name::Require, "100rel");
        r.headers.push(Name::RSeq, rseq.to_string());
        self.rel.pending = Some(Pending {
            rseq,
            resp: r.clone(),
            with_sdp: !r.body().is_empty(),
            first: Instant::now(),
        });
        self.respond(self.a.tx, r);
        ctx.run_later(T1, move |this, ctx| this.resend_reliable(rseq, T1, ctx));
    }

    /// The retransmission timer of reliable 18x `rseq`, last waited `after`.
    fn resend_reliable(&mut self, rseq: u32, after: Duration, ctx: &mut Context<Self>) {
        let final_out = self.a.final_sent && self.rel.deferred_ok.is_none();
        let Some(p) = self.rel.pending.as_ref().filter(|p| p.rseq == rseq) else {
            return;
        };
        if final_out {
            // A final response went out (a failure, CANCEL): no more 18x.
            self.rel.pending = None;
            return;
        }
        if p.first.elapsed() >= 64 * T1 {
            tracing::info!(call_id = %self.call_id_a(), rseq, "no PRACK from the caller");
            self.rel.pending = None;
            self.end_reason
                .get_or_insert_with(|| "no PRACK from the caller".into());
            if self.withdraw_ok_a(500) {
                // The callee answered; the caller never got the 2xx.
                return self.hangup(&[Leg::B], ctx);
            }
            return self.fail_a(500, Some("No PRACK"), ctx);
        }
        let r = p.resp.clone();
        let left = (64 * T1).saturating_sub(p.first.elapsed());
        self.respond(self.a.tx, r);
        // Doubling, but checked again at the 64·T1 deadline.
        let next = (after * 2).min(left.max(Duration::from_millis(10)));
        ctx.run_later(next, move |this, ctx| {
            this.resend_reliable(rseq, after * 2, ctx)
        });
    }

    /// PRACK from the caller (§3): acknowledges the pending reliable 18x
    /// (200, then what waited for it goes out), anything else is 481.
    pub(super) fn on_prack_a(&mut self, tx: TxId, req: Request, ctx: &mut Context<Self>) {
        let invite_seq = self.a.invite.cseq().map(|c| c.seq).ok();
        let rack = req.headers.get(&Name::RAck).and_then(|v| {
            let mut it = v.split_whitespace();
            let rseq = it.next()?.parse::<u32>().ok()?;
            let seq = it.next()?.parse::<u32>().ok()?;
            let method = it.next()?;
            Some((rseq, seq, method.eq_ignore_ascii_case("INVITE")))
        });
        let ours =
            req.to().ok().and_then(|t| t.tag().map(str::to_owned)) == Some(self.a.tag.clone());
        let acked = match (&self.rel.pending, rack) {
            (Some(p), Some((rseq, seq, true))) => ours && p.rseq == rseq && Some(seq) == invite_seq,
            _ => false,
        };
        if !acked {
            return self.respond(tx, response_to(&req, 481, None));
        }
        self.rel.pending = None;
        self.respond(tx, response_to(&req, 200, None));
        if let Some(ok) = self.rel.deferred_ok.take() {
            self.rel.queued = None;
            return self.respond(self.a.tx, ok);
        }
        if let Some(next) = self.rel.queued.take() {
            if !self.a.final_sent {
                self.send_reliable(next, ctx);
            }
        }
    }

    /// The call ends while the caller's 2xx waits for a PRACK: the 2xx is
    /// never sent; the INVITE gets `code` instead (true if so).
    pub(super) fn withdraw_ok_a(&mut self, code: u16) -> bool {
        if self.rel.deferred_ok.take().is_none() {
            return false;
        }
        self.rel.pending = None;
        self.rel.queued = None;
        let r = response_to(&self.a.invite, code, Some(&self.a.tag));
        self.a.dialog = None;
        self.ended[Leg::A as usize] = true;
        self.respond(self.a.tx, r);
        true
    }

    /// The 2xx for leg A: held while a reliable 18x with SDP waits for its
    /// PRACK (§3).
    pub(super) fn ok_to_a(&mut self, r: Response) {
        if self.rel.pending.as_ref().is_some_and(|p| p.with_sdp) {
            self.rel.deferred_ok = Some(r);
            return;
        }
        self.rel.pending = None;
        self.rel.queued = None;
        self.respond(self.a.tx, r);
    }
}
