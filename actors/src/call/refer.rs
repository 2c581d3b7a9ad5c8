//! Transfers a phone asks for (RFC 3515 REFER, blind transfer): the called
//! user (leg B) sends REFER with `Refer-To: <sip:number@...>` in its call.
//! The switch accepts it (202), tells the transferor how it goes with
//! NOTIFYs carrying a `message/sipfrag` (100 Trying, then the target's
//! final status), and calls the number (users' dialplan, the transferor's
//! permissions) as leg C; when it answers it replaces the transferor, who
//! is hung up. If it does not answer, the call stays as it was.
//! A Refer-To with `Replaces` is an attended transfer (`attended.rs`).
//! Not yet: REFER from the caller's leg (501).

use super::features::Purpose;
use super::*;

impl Call {
    /// An in-dialog REFER from `leg`.
    pub(super) fn on_refer(&mut self, leg: Leg, tx: TxId, req: Request, ctx: &mut Context<Self>) {
        let refuse = |this: &mut Call, code: u16, reason: &str| {
            let mut r = response_to(&req, code, None);
            r.reason = reason.to_owned();
            this.respond(tx, r);
        };
        let Some(user) = self.b_user.clone().filter(|_| leg == Leg::B) else {
            return refuse(self, 501, "Transfer Only By The Called User");
        };
        let Some(target) = req
            .headers
            .get(&Name::ReferTo)
            .and_then(|v| NameAddr::parse(v, "Refer-To").ok())
        else {
            return refuse(self, 400, "Missing Refer-To");
        };
        let Some(uri) = target.uri.sip() else {
            return refuse(self, 416, "Unsupported URI Scheme");
        };
        if let Some((_, v)) = uri
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("replaces"))
        {
            return match sip::Replaces::parse(&sip::unescape(v)) {
                Some(replaces) => self.refer_attended(leg, tx, req, replaces, ctx),
                None => refuse(self, 400, "Bad Replaces In Refer-To"),
            };
        }
        let Some(number) = uri.user_decoded().map(|u| u.into_owned()) else {
            return refuse(self, 400, "No Number In Refer-To");
        };
        if self.c.is_some() {
            return refuse(self, 491, "Request Pending");
        }
        let cfg = self.switch.config();
        if let Some(route) = cfg.route_for(&number, config::RouteSource::Users) {
            let (t, _) = cfg.target_at(route, self.switch.now());
            if let Err(class) = cfg.permits(&user, route, t) {
                tracing::info!(call_id = %self.call_id_a(), %user, %number, "transfer refused: {} calls not permitted", class.name());
                return refuse(self, 403, "Not Permitted");
            }
        }
        let Some(from) = self.source.clone() else {
            return refuse(self, 403, "Not Routed");
        };
        if let Err(e) = self.call_c(&number, from, Purpose::Transfer, ctx) {
            tracing::info!(call_id = %self.call_id_a(), %number, error = %e, "transfer refused");
            return refuse(self, 403, "Transfer Refused");
        }
        let mut r = response_to(&req, 202, None);
        r.headers.push(
            Name::Contact,
            format!("<{}>", self.switch.contact(self.a.peer.transport)),
        );
        self.respond(tx, r);
        tracing::info!(call_id = %self.call_id_a(), %user, %number, "blind transfer by REFER");
        self.referred = true;
        self.notify_referrer("SIP/2.0 100 Trying", false, ctx);
    }

    /// A NOTIFY with the transfer's progress (`status`, a sipfrag status
    /// line) to the transferor (leg B); `done` ends the subscription.
    pub(super) fn notify_referrer(&mut self, status: &str, done: bool, ctx: &mut Context<Self>) {
        let Some(b) = self.b.as_mut() else { return };
        let peer = b.peer;
        let via = self.switch.via(peer);
        let Some(d) = b.dialog.as_mut() else { return };
        let mut n = d.request(Method::Notify, &via, 70);
        n.headers.push(Name::Event, "refer");
        n.headers.push(
            Name::SubscriptionState,
            if done {
                "terminated;reason=noresource"
            } else {
                "active;expires=60"
            },
        );
        n.headers.push(
            Name::Contact,
            format!("<{}>", self.switch.contact(peer.transport)),
        );
        n.headers
            .push(Name::ContentType, "message/sipfrag;version=2.0");
        n.body = Bytes::from(format!("{status}\r\n"));
        self.stray_byes.push(via.branch().unwrap_or("").to_owned());
        self.to_shard(ShardCmd::Request {
            peer,
            req: n,
            owner: ctx.address().recipient(),
        });
    }

    /// The transfer asked for by REFER ended: `code` from the target (200:
    /// it answered and is about to replace the transferor).
    pub(super) fn refer_done(&mut self, code: u16, ctx: &mut Context<Self>) {
        if !std::mem::take(&mut self.referred) {
            return;
        }
        let status = format!("SIP/2.0 {code} {}", sip::reason_phrase(code));
        self.notify_referrer(&status, true, ctx);
    }
}
