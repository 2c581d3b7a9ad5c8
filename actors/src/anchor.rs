//! Anchored media for one call: the SDP each leg sees names the switch's
//! address, and the RTP engine's session connects the legs.
//!
//! Offer/answer per RFC 3264, done separately on each leg:
//! - Initial INVITE (offer from A): A's offer is checked against our codecs
//!   (488 if none), leg B gets our own offer listing A's codecs first (so B
//!   picks one A speaks and no transcoding is needed) and then the others.
//! - B's answer (in 18x or 2xx): accepted on leg B, then A's offer is
//!   answered preferring B's codec; if A did not offer it, the session
//!   transcodes.
//! - Re-INVITE/UPDATE with an offer from either side (hold, resume, new
//!   address): the other leg gets a fresh offer with the same direction; its
//!   answer updates that leg and yields the answer to the offerer.
//! - Delayed offer (INVITE without SDP, §5 of RFC 3264 via RFC 3261
//!   §13.2.1): leg B gets our offer with our codecs; once B answers, our
//!   offer to A goes in the 2xx (never in an unreliable 18x) and A's answer
//!   arrives in its ACK.
//! - Extra legs (a three-way call's third party): the switch offers, the
//!   party answers, and later offers from it are answered here; the session
//!   mixes all legs while one is present.

use bytes::Bytes;
use media::codec::Codec;
use media::sdp::{self, Direction, Local, Negotiated, Origin, Sdp, SdpError};
use media::session::{LegId, LegOptions, Mode};
use net::rtp_engine::{LegInfo, SessionHandle};
use std::net::IpAddr;

/// Which side of the B2BUA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    A,
    B,
}

/// An offer in flight through the switch (re-INVITE/UPDATE).
struct Pending {
    from: Side,
    offer: Sdp,
    /// What we offered to the other side.
    local_to: Local,
}

struct LegMedia {
    info: LegInfo,
    origin: Origin,
    neg: Option<Negotiated>,
}

/// The media of one call.
pub(crate) struct Anchor {
    pub(crate) session: SessionHandle,
    ip: IpAddr,
    codecs: Vec<Codec>,
    a: LegMedia,
    b: Option<LegMedia>,
    /// A's initial offer, answered once B's answer is known.
    offer_a: Option<Sdp>,
    /// Our offer on leg B.
    local_b: Option<Local>,
    /// Our answer to A's INVITE, repeated in every 18x/2xx (with a delayed
    /// offer: our offer to A, sent in the 2xx).
    answer_a: Option<Bytes>,
    /// Delayed offer: what we offered A, until its ACK answers.
    local_a: Option<Local>,
    pending: Option<Pending>,
    /// Extra legs (third parties), with what we offered each.
    extra: Vec<(LegMedia, Local)>,
    /// Our offer taking a leg off hold, until it answers.
    resume: Option<(Side, Local)>,
}

fn direction_of(s: &Sdp) -> Direction {
    s.audio.direction
}

impl Anchor {
    /// A session with leg A; `offer` is A's SDP.
    pub(crate) fn new(
        session: SessionHandle,
        ip: IpAddr,
        codecs: Vec<Codec>,
        offer: &[u8],
        opts_a: LegOptions,
    ) -> Result<Anchor, u16> {
        let offer = sdp::parse(offer).map_err(|e| {
            tracing::info!(error = %e, "unusable SDP offer");
            488u16
        })?;
        if !offer
            .audio
            .formats
            .iter()
            .any(|f| codecs.contains(&f.codec))
        {
            return Err(488);
        }
        Anchor::with_leg_a(session, ip, codecs, Some(offer), opts_a)
    }

    /// A session with leg A for an INVITE without an offer (delayed offer).
    pub(crate) fn delayed(
        session: SessionHandle,
        ip: IpAddr,
        codecs: Vec<Codec>,
        opts_a: LegOptions,
    ) -> Result<Anchor, u16> {
        Anchor::with_leg_a(session, ip, codecs, None, opts_a)
    }

    fn with_leg_a(
        session: SessionHandle,
        ip: IpAddr,
        codecs: Vec<Codec>,
        offer_a: Option<Sdp>,
        opts_a: LegOptions,
    ) -> Result<Anchor, u16> {
        let info = session.add_leg(opts_a).map_err(|e| {
            tracing::warn!(error = %e, "no RTP port for leg A");
            503u16
        })?;
        Ok(Anchor {
            session,
            ip,
            codecs,
            a: LegMedia {
                info,
                origin: Origin::new(rand::random::<u32>() as u64),
                neg: None,
            },
            b: None,
            offer_a,
            local_b: None,
            answer_a: None,
            local_a: None,
            pending: None,
            extra: Vec::new(),
            resume: None,
        })
    }

    /// Leg A sent no offer: its answer is expected in the ACK.
    pub(crate) fn is_delayed(&self) -> bool {
        self.offer_a.is_none()
    }

    /// Leg A has answered our offer (always true unless delayed).
    pub(crate) fn a_answered(&self) -> bool {
        self.a.neg.is_some()
    }

    /// Leg A's id in the session.
    pub(crate) fn leg_a(&self) -> LegId {
        self.a.info.id
    }

    /// Leg B's id, once it exists.
    pub(crate) fn leg_b(&self) -> Option<LegId> {
        self.b.as_ref().map(|b| b.info.id)
    }

    fn leg(&mut self, side: Side) -> Option<&mut LegMedia> {
        match side {
            Side::A => Some(&mut self.a),
            Side::B => self.b.as_mut(),
        }
    }

    /// `first` (if configured) and then the other configured codecs.
    fn prefer(&self, first: &[Codec]) -> Vec<Codec> {
        let mut v: Vec<Codec> = first
            .iter()
            .copied()
            .filter(|c| self.codecs.contains(c))
            .collect();
        for c in &self.codecs {
            if !v.contains(c) {
                v.push(*c);
            }
        }
        v
    }

    fn local(&self, port: u16, codecs: Vec<Codec>, direction: Direction) -> Local {
        Local {
            addr: self.ip,
            port,
            codecs,
            telephone_event: true,
            ptime: 20,
            direction,
        }
    }

    /// Leg A has its answer (from an early-media 18x or the 2xx).
    pub(crate) fn answered(&self) -> bool {
        self.answer_a.is_some()
    }

    /// Our answer to A's offer, once made.
    pub(crate) fn answer_a(&self) -> Option<Bytes> {
        self.answer_a.clone()
    }

    /// Adds leg B and returns our offer for its INVITE.
    pub(crate) fn offer_b(&mut self, opts_b: LegOptions) -> Result<Bytes, u16> {
        let (first, direction) = match &self.offer_a {
            Some(offer_a) => (
                offer_a.audio.formats.iter().map(|f| f.codec).collect(),
                direction_of(offer_a),
            ),
            None => (Vec::new(), Direction::SendRecv),
        };
        let info = self.session.add_leg(opts_b).map_err(|e| {
            tracing::warn!(error = %e, "no RTP port for leg B");
            503u16
        })?;
        let local = self.local(info.port, self.prefer(&first), direction);
        let mut origin = Origin::new(rand::random::<u32>() as u64);
        let body = sdp::offer(&local, &mut origin);
        self.b = Some(LegMedia {
            info,
            origin,
            neg: None,
        });
        self.local_b = Some(local);
        Ok(Bytes::from(body))
    }

    /// B's answer (first SDP in an 18x or the 2xx): configures leg B and
    /// returns our answer to A (the same one for every later response).
    pub(crate) fn on_b_answer(&mut self, body: &[u8]) -> Result<Bytes, SdpError> {
        let answer = sdp::parse(body)?;
        let local_b = self.local_b.as_ref().ok_or(SdpError::NoAudio)?;
        let neg_b = sdp::accept_answer(&answer, local_b)?;
        let b = self.b.as_mut().ok_or(SdpError::NoAudio)?;
        let changed = b.neg.as_ref() != Some(&neg_b);
        b.neg = Some(neg_b.clone());
        if changed {
            self.session.configure(b.info.id, neg_b.clone());
        }
        if let Some(body) = &self.answer_a {
            return Ok(body.clone());
        }
        let Some(offer_a) = self.offer_a.as_ref() else {
            if self.a.neg.is_some() {
                // Click-to-call: A answered our offer already; bridge them.
                if let Some(b) = self.leg_b() {
                    self.session.set_mode(Mode::Bridge(self.a.info.id, b));
                }
                return Ok(Bytes::new());
            }
            // Delayed offer: our offer to A, preferring B's codec.
            let local_a = self.local(
                self.a.info.port,
                self.prefer(&[neg_b.codec]),
                direction_of(&answer),
            );
            let body = Bytes::from(sdp::offer(&local_a, &mut self.a.origin));
            self.local_a = Some(local_a);
            self.answer_a = Some(body.clone());
            return Ok(body);
        };
        let local_a = self.local(
            self.a.info.port,
            self.prefer(&[neg_b.codec]),
            direction_of(&answer),
        );
        let (body, neg_a) = sdp::answer(offer_a, &local_a, &mut self.a.origin, true)?;
        self.bridge_a(neg_a);
        let body = Bytes::from(body);
        self.answer_a = Some(body.clone());
        Ok(body)
    }

    /// Click-to-call: our offer to A (the switch calls the user's phone).
    pub(crate) fn offer_a(&mut self) -> Bytes {
        let local_a = self.local(self.a.info.port, self.codecs.clone(), Direction::SendRecv);
        let body = Bytes::from(sdp::offer(&local_a, &mut self.a.origin));
        self.local_a = Some(local_a);
        body
    }

    /// Delayed offer: A's answer (from its ACK) to the offer in our 2xx;
    /// click-to-call: the user's phone's answer in its 2xx.
    pub(crate) fn on_a_answer(&mut self, body: &[u8]) -> Result<(), SdpError> {
        let answer = sdp::parse(body)?;
        let local_a = self.local_a.take().ok_or(SdpError::NoAudio)?;
        let neg_a = sdp::accept_answer(&answer, &local_a)?;
        self.bridge_a(neg_a);
        Ok(())
    }

    /// Leg A's media is negotiated: configure it and bridge it with B.
    fn bridge_a(&mut self, neg_a: Negotiated) {
        if let Some(neg_b) = self.b.as_ref().and_then(|b| b.neg.as_ref()) {
            if neg_a.codec != neg_b.codec {
                tracing::debug!(a = ?neg_a.codec, b = ?neg_b.codec, "transcoding");
            }
        }
        self.session.configure(self.a.info.id, neg_a.clone());
        self.a.neg = Some(neg_a);
        if let Some(b) = self.leg_b() {
            self.session.set_mode(Mode::Bridge(self.a.info.id, b));
        }
    }

    /// Adds an extra leg (a third party) and returns its id and our offer,
    /// with the caller's codec first so it is relayed where it can be.
    pub(crate) fn offer_extra(&mut self, opts: LegOptions) -> Result<(LegId, Bytes), u16> {
        let current: Vec<Codec> = self.a.neg.as_ref().map(|n| n.codec).into_iter().collect();
        let info = self.session.add_leg(opts).map_err(|e| {
            tracing::warn!(error = %e, "no RTP port for an extra leg");
            503u16
        })?;
        let local = self.local(info.port, self.prefer(&current), Direction::SendRecv);
        let mut origin = Origin::new(rand::random::<u32>() as u64);
        let body = sdp::offer(&local, &mut origin);
        let id = info.id;
        self.extra.push((
            LegMedia {
                info,
                origin,
                neg: None,
            },
            local,
        ));
        Ok((id, Bytes::from(body)))
    }

    /// The extra leg's answer to our offer: it joins the mix.
    pub(crate) fn on_extra_answer(&mut self, leg: LegId, body: &[u8]) -> Result<(), SdpError> {
        self.accept_extra(leg, body)?;
        self.session.set_mode(Mode::Conference);
        Ok(())
    }

    /// Where extra leg `leg` is in `extra`.
    fn extra_index(&self, leg: LegId) -> Result<usize, SdpError> {
        self.extra
            .iter()
            .position(|(m, _)| m.info.id == leg)
            .ok_or(SdpError::NoAudio)
    }

    /// The extra leg's answer to our offer: configures it; returns its index.
    fn accept_extra(&mut self, leg: LegId, body: &[u8]) -> Result<usize, SdpError> {
        let answer = sdp::parse(body)?;
        let i = self.extra_index(leg)?;
        let neg = sdp::accept_answer(&answer, &self.extra[i].1)?;
        self.session.configure(leg, neg.clone());
        self.extra[i].0.neg = Some(neg);
        Ok(i)
    }

    /// A transfer's target answered: the extra leg replaces leg B (the
    /// old B leaves the session) and is bridged with A.
    pub(crate) fn promote_extra(&mut self, leg: LegId, body: &[u8]) -> Result<(), SdpError> {
        let i = self.accept_extra(leg, body)?;
        let (m, local) = self.extra.remove(i);
        if let Some(old) = self.b.replace(m) {
            self.session.remove_leg(old.info.id);
        }
        self.local_b = Some(local);
        self.pending = None;
        self.session.set_mode(Mode::Bridge(self.a.info.id, leg));
        // A stereo recording keeps the caller left, now with the new callee right.
        self.session
            .set_recording_sides(Some((self.a.info.id, leg)));
        Ok(())
    }

    /// A new offer from an extra leg (hold, refresh): answered here.
    pub(crate) fn answer_extra_reoffer(
        &mut self,
        leg: LegId,
        body: &[u8],
    ) -> Result<Bytes, SdpError> {
        let offer = sdp::parse(body)?;
        let i = self.extra_index(leg)?;
        let current: Vec<Codec> = self.extra[i]
            .0
            .neg
            .as_ref()
            .map(|n| n.codec)
            .into_iter()
            .collect();
        let local = self.local(
            self.extra[i].0.info.port,
            self.prefer(&current),
            Direction::SendRecv,
        );
        let m = &mut self.extra[i].0;
        let (out, neg) = sdp::answer(&offer, &local, &mut m.origin, true)?;
        self.session.configure(leg, neg.clone());
        m.neg = Some(neg);
        Ok(Bytes::from(out))
    }

    /// Drops an extra leg; without extra legs the call is a bridge again.
    pub(crate) fn remove_extra(&mut self, leg: LegId) {
        let Ok(i) = self.extra_index(leg) else {
            return;
        };
        self.extra.remove(i);
        self.session.remove_leg(leg);
        let joined = self.extra.iter().any(|(m, _)| m.neg.is_some());
        if !joined {
            if let Some(b) = self.leg_b() {
                self.session.set_mode(Mode::Bridge(self.a.info.id, b));
            }
        }
    }

    /// The PCM rate of leg A's codec (prompts are rendered at it).
    pub(crate) fn rate_a(&self) -> media::audio::Rate {
        self.a
            .neg
            .as_ref()
            .map_or(media::audio::Rate::Nb8k, |n| n.codec.pcm_rate())
    }

    /// Connects A and B (A was answered by the switch, e.g. an IVR, before
    /// B existed).
    pub(crate) fn bridge(&self) {
        if let Some(b) = self.leg_b() {
            self.session.set_mode(Mode::Bridge(self.a.info.id, b));
        }
    }

    /// Forgets leg B (a transfer from the IVR that failed): its port is
    /// released and a later `offer_b` starts afresh.
    pub(crate) fn drop_b(&mut self) {
        if let Some(b) = self.b.take() {
            self.session.remove_leg(b.info.id);
        }
        self.local_b = None;
        self.pending = None;
    }

    /// Answers A's offer on our own (the call ends at the switch: a
    /// conference, a prompt) and returns the answer.
    pub(crate) fn answer_locally(&mut self) -> Result<Bytes, SdpError> {
        let offer_a = self.offer_a.as_ref().ok_or(SdpError::NoAudio)?;
        let local_a = self.local(self.a.info.port, self.codecs.clone(), Direction::SendRecv);
        let (body, neg_a) = sdp::answer(offer_a, &local_a, &mut self.a.origin, false)?;
        self.session.configure(self.a.info.id, neg_a.clone());
        self.a.neg = Some(neg_a);
        let body = Bytes::from(body);
        self.answer_a = Some(body.clone());
        Ok(body)
    }

    /// A new offer from A when the switch itself is the other end (a
    /// conference): answered here, keeping A's codec if it still offers it.
    pub(crate) fn answer_reoffer_locally(&mut self, body: &[u8]) -> Result<Bytes, SdpError> {
        let offer = sdp::parse(body)?;
        let current: Vec<Codec> = self.a.neg.as_ref().map(|n| n.codec).into_iter().collect();
        let local = self.local(self.a.info.port, self.prefer(&current), Direction::SendRecv);
        let (out, neg) = sdp::answer(&offer, &local, &mut self.a.origin, true)?;
        self.session.configure(self.a.info.id, neg.clone());
        self.a.neg = Some(neg);
        let out = Bytes::from(out);
        self.answer_a = Some(out.clone());
        Ok(out)
    }

    /// An offer from `from` in a re-INVITE/UPDATE: returns the offer to send
    /// to the other side.
    pub(crate) fn reoffer(&mut self, from: Side, body: &[u8]) -> Result<Bytes, SdpError> {
        let offer = sdp::parse(body)?;
        let to = match from {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        let current = self.leg(to).and_then(|l| l.neg.as_ref().map(|n| n.codec));
        let mut first: Vec<Codec> = current.into_iter().collect();
        first.extend(offer.audio.formats.iter().map(|f| f.codec));
        let codecs = self.prefer(&first);
        let direction = direction_of(&offer);
        let ip = self.ip;
        let leg = self.leg(to).ok_or(SdpError::NoAudio)?;
        let local = Local {
            addr: ip,
            port: leg.info.port,
            codecs,
            telephone_event: true,
            ptime: 20,
            direction,
        };
        let out = sdp::offer(&local, &mut leg.origin);
        self.pending = Some(Pending {
            from,
            offer,
            local_to: local,
        });
        Ok(Bytes::from(out))
    }

    /// The other side's answer to [`Anchor::reoffer`]: updates both legs and
    /// returns the answer for the offerer.
    pub(crate) fn reanswer(&mut self, body: &[u8]) -> Result<Bytes, SdpError> {
        let p = self.pending.take().ok_or(SdpError::NoAudio)?;
        let answer = sdp::parse(body)?;
        let neg_to = sdp::accept_answer(&answer, &p.local_to)?;
        let to = match p.from {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        let session = self.session.clone();
        if let Some(l) = self.leg(to) {
            session.configure(l.info.id, neg_to.clone());
            l.neg = Some(neg_to.clone());
        }
        let current = self
            .leg(p.from)
            .and_then(|l| l.neg.as_ref().map(|n| n.codec));
        let mut first: Vec<Codec> = current.into_iter().collect();
        first.push(neg_to.codec);
        let codecs = self.prefer(&first);
        let ip = self.ip;
        let leg = self.leg(p.from).ok_or(SdpError::NoAudio)?;
        let local = Local {
            addr: ip,
            port: leg.info.port,
            codecs,
            telephone_event: true,
            ptime: 20,
            direction: direction_of(&answer),
        };
        let (out, neg_from) = sdp::answer(&p.offer, &local, &mut leg.origin, true)?;
        session.configure(leg.info.id, neg_from.clone());
        leg.neg = Some(neg_from);
        Ok(Bytes::from(out))
    }

    /// `side` on hold (our direction towards it is not sendrecv, e.g. after
    /// a transferor held it): our offer taking it off hold; None if it is
    /// not held.
    pub(crate) fn resume_offer(&mut self, side: Side) -> Option<Bytes> {
        let (port, codec) = {
            let l = self.leg(side)?;
            let neg = l.neg.as_ref()?;
            if neg.direction == Direction::SendRecv {
                return None;
            }
            (l.info.port, neg.codec)
        };
        let local = self.local(port, self.prefer(&[codec]), Direction::SendRecv);
        let body = sdp::offer(&local, &mut self.leg(side)?.origin);
        self.resume = Some((side, local));
        Some(Bytes::from(body))
    }

    /// The answer to [`Anchor::resume_offer`].
    pub(crate) fn on_resume_answer(&mut self, body: &[u8]) -> Result<(), SdpError> {
        let (side, local) = self.resume.take().ok_or(SdpError::NoAudio)?;
        let neg = sdp::accept_answer(&sdp::parse(body)?, &local)?;
        let session = self.session.clone();
        let l = self.leg(side).ok_or(SdpError::NoAudio)?;
        session.configure(l.info.id, neg.clone());
        l.neg = Some(neg);
        Ok(())
    }

    /// The held leg refused to come off hold.
    pub(crate) fn abandon_resume(&mut self) {
        self.resume = None;
    }

    /// A transfer's target replaces leg A (the transferor was the caller's
    /// side): the extra leg becomes A, the old A leaves the session, and
    /// the new A is bridged with B.
    pub(crate) fn promote_extra_to_a(&mut self, leg: LegId, body: &[u8]) -> Result<(), SdpError> {
        let i = self.accept_extra(leg, body)?;
        let (m, _) = self.extra.remove(i);
        let old = std::mem::replace(&mut self.a, m);
        self.session.remove_leg(old.info.id);
        self.offer_a = None;
        self.local_a = None;
        self.answer_a = None;
        self.pending = None;
        if let Some(b) = self.leg_b() {
            self.session.set_mode(Mode::Bridge(leg, b));
            self.session.set_recording_sides(Some((leg, b)));
        }
        Ok(())
    }

    /// The re-offer failed (error response): forget it.
    pub(crate) fn abandon_reoffer(&mut self) {
        self.pending = None;
    }
}
