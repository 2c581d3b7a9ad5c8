//! Registering with carriers (RFC 3261 §10, the switch as a UAC): every
//! trunk with `outbound.register_secs` sends REGISTER to its registrar as
//! `auth.username`, with the switch's address as the Contact, answers the
//! digest challenge (401/407), and renews at 80 % of the interval the
//! registrar granted (a 423 raises the interval to its Min-Expires). A
//! failure or a registrar that does not answer is retried after 30 s.
//! Each outcome is a `trunk.registered` / `trunk.registration_failed`
//! event and sets `switchboard_trunk_registered{trunk}`; the inbound calls
//! the carrier sends to the registration are recognised in `Call`. When
//! the switch stops ([`Unregister`]), each registration is removed with
//! `Expires: 0` (challenge answered) before the process exits.

use crate::call::CallEvent;
use crate::context::{shard_of, Switch};
use crate::shard::ShardCmd;
use actix::prelude::*;
use serde_json::json;
use sip::auth::{respond, Challenge};
use sip::transaction::{new_tag, Peer, Transport};
use sip::{Method, Name, Request, Response, SipMessage, Uri};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Retry after a failure or silence.
const RETRY: Duration = Duration::from_secs(30);

/// One trunk's registration.
struct Reg {
    call_id: String,
    tag: String,
    cseq: u32,
    /// The interval asked for (raised by a 423).
    secs: u32,
    /// When to send the next REGISTER.
    next: Instant,
    /// A REGISTER is out (sent at); a challenge was answered for it.
    pending: Option<Instant>,
    answered_challenge: bool,
    registered: bool,
}

/// The registrations of all trunks (one actor).
pub struct TrunkRegistrations {
    switch: Arc<Switch>,
    regs: HashMap<String, Reg>,
    /// The switch is stopping: registrations are being removed.
    leaving: bool,
}

/// The switch stops: remove every registration (REGISTER with Expires: 0).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister;

/// Whether a removal is still waiting for the registrar's answer.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Unregistering;

impl TrunkRegistrations {
    /// For `switch`'s trunks.
    pub fn new(switch: Arc<Switch>) -> TrunkRegistrations {
        TrunkRegistrations {
            switch,
            regs: HashMap::new(),
            leaving: false,
        }
    }

    /// Once a second: registrations due (and trunks dropped by a reload).
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.leaving {
            return;
        }
        let cfg = self.switch.config();
        let now = Instant::now();
        let wanted: Vec<String> = cfg
            .trunks
            .iter()
            .filter(|t| t.outbound.as_ref().is_some_and(|o| o.register_secs > 0))
            .map(|t| t.name.clone())
            .collect();
        self.regs.retain(|name, _| wanted.contains(name));
        for name in wanted {
            let local = self.switch.local_addr(Transport::Udp);
            let reg = self.regs.entry(name.clone()).or_insert_with(|| Reg {
                call_id: format!("reg-{}@{}", new_tag(), local.ip()),
                tag: new_tag(),
                cseq: 0,
                secs: 0,
                next: now,
                pending: None,
                answered_challenge: false,
                registered: false,
            });
            if let Some(sent) = reg.pending {
                if now.duration_since(sent) > Duration::from_secs(32) {
                    // Timer F passed without a final response.
                    reg.pending = None;
                    reg.next = now + RETRY;
                    self.failed(&name, 408);
                }
                continue;
            }
            if reg.next <= now {
                self.send(&name, None, ctx);
            }
        }
    }

    /// Sends REGISTER for trunk `name` (with `auth`: the Authorization
    /// header answering a challenge).
    fn send(&mut self, name: &str, auth: Option<(Name, String)>, ctx: &mut Context<Self>) {
        let cfg = self.switch.config();
        let Some(out) = cfg.trunk(name).and_then(|t| t.outbound.as_ref()) else {
            return;
        };
        let (Some(registrar), Some(creds)) = (out.registrar(), out.auth.as_ref()) else {
            return;
        };
        let Some(shards) = self.switch.shards.get() else {
            return;
        };
        let transport = match out.transport {
            config::Transport::Udp => Transport::Udp,
            config::Transport::Tcp => Transport::Tcp,
        };
        let peer = Peer {
            transport,
            addr: registrar,
        };
        let Some(reg) = self.regs.get_mut(name) else {
            return;
        };
        if reg.secs == 0 {
            reg.secs = out.register_secs;
        }
        reg.cseq += 1;
        let domain = out
            .from_domain
            .clone()
            .unwrap_or_else(|| registrar.ip().to_string());
        let aor = format!("sip:{}@{domain}", creds.username);
        let Ok(uri) = Uri::parse(&format!("sip:{domain}")) else {
            return;
        };
        let local = self.switch.local_addr(transport);
        let mut contact = format!("<sip:{}@{}>", creds.username, local);
        if transport == Transport::Tcp {
            contact = format!("<sip:{}@{};transport=tcp>", creds.username, local);
        }
        let mut req = Request::new(Method::Register, uri);
        req.headers
            .push(Name::Via, self.switch.via(peer).to_string());
        req.headers.push(Name::MaxForwards, "70");
        req.headers
            .push(Name::From, format!("<{aor}>;tag={}", reg.tag));
        req.headers.push(Name::To, format!("<{aor}>"));
        req.headers.push(Name::CallId, reg.call_id.clone());
        req.headers
            .push(Name::CSeq, format!("{} REGISTER", reg.cseq));
        req.headers.push(Name::Contact, contact);
        let expires = if self.leaving { 0 } else { reg.secs };
        req.headers.push(Name::Expires, expires.to_string());
        req.headers
            .push(Name::UserAgent, cfg.sip.user_agent.clone());
        reg.answered_challenge = auth.is_some();
        if let Some((h, v)) = auth {
            req.headers.push(h, v);
        }
        reg.pending = Some(Instant::now());
        let shard = &shards[shard_of(&reg.call_id, shards.len())];
        shard.do_send(ShardCmd::Request {
            peer,
            req,
            owner: ctx.address().recipient(),
        });
    }

    fn on_response(&mut self, resp: Response, ctx: &mut Context<Self>) {
        if resp.code < 200 {
            return;
        }
        let Some(call_id) = resp.call_id() else {
            return;
        };
        let Some(name) = self
            .regs
            .iter()
            .find(|(_, r)| r.call_id == call_id)
            .map(|(n, _)| n.clone())
        else {
            return;
        };
        let cfg = self.switch.config();
        let out = cfg.trunk(&name).and_then(|t| t.outbound.clone());
        let Some(reg) = self.regs.get_mut(&name) else {
            return;
        };
        if resp.cseq().map_or(true, |c| c.seq != reg.cseq) {
            return; // an answer to an older REGISTER
        }
        reg.pending = None;
        let now = Instant::now();
        match resp.code {
            200..=299 if self.leaving => {
                reg.registered = false;
                self.switch
                    .metrics
                    .trunk_registered
                    .with_label_values(&[&name])
                    .set(0);
                tracing::info!(trunk = %name, "registration with the carrier removed");
                self.switch
                    .publish("trunk.unregistered", json!({"trunk": name}));
            }
            _ if self.leaving && !matches!(resp.code, 401 | 407) => {
                reg.registered = false;
                tracing::info!(trunk = %name, code = resp.code, "the carrier refused to remove the registration");
            }
            200..=299 => {
                let granted = granted_secs(&resp).unwrap_or(reg.secs).max(1);
                reg.next = now + Duration::from_millis(u64::from(granted) * 800);
                let first = !std::mem::replace(&mut reg.registered, true);
                self.switch
                    .metrics
                    .trunk_registered
                    .with_label_values(&[&name])
                    .set(1);
                if first {
                    tracing::info!(trunk = %name, expires = granted, "registered with the carrier");
                }
                self.switch.publish(
                    "trunk.registered",
                    json!({"trunk": name, "expires": granted}),
                );
            }
            401 | 407 if !reg.answered_challenge => {
                let header = if resp.code == 401 {
                    Name::WwwAuthenticate
                } else {
                    Name::ProxyAuthenticate
                };
                let challenge = resp
                    .headers
                    .get_all(&header)
                    .find_map(|v| Challenge::parse(v).ok());
                let (Some(ch), Some(creds), Some(out)) =
                    (challenge, out.as_ref().and_then(|o| o.auth.clone()), out)
                else {
                    reg.next = now + RETRY;
                    return self.failed(&name, resp.code);
                };
                let domain = out.from_domain.clone().unwrap_or_else(|| {
                    out.registrar()
                        .map_or(String::new(), |r| r.ip().to_string())
                });
                let c = respond(
                    &ch,
                    "REGISTER",
                    &format!("sip:{domain}"),
                    &creds.username,
                    &creds.password,
                    &new_tag(),
                    1,
                );
                let h = if resp.code == 401 {
                    Name::Authorization
                } else {
                    Name::ProxyAuthorization
                };
                self.send(&name, Some((h, c.to_header_value())), ctx);
            }
            423 => {
                // Interval too brief (§10.2.8): ask for Min-Expires.
                let min = resp
                    .headers
                    .get(&Name::MinExpires)
                    .and_then(sip::parse_delta_seconds);
                match min {
                    Some(m) if m > reg.secs => {
                        reg.secs = m;
                        self.send(&name, None, ctx);
                    }
                    _ => {
                        reg.next = now + RETRY;
                        self.failed(&name, 423);
                    }
                }
            }
            code => {
                reg.next = now + RETRY;
                self.failed(&name, code);
            }
        }
    }

    fn failed(&mut self, name: &str, code: u16) {
        if let Some(r) = self.regs.get_mut(name) {
            r.registered = false;
        }
        tracing::warn!(trunk = %name, code, "registration with the carrier failed; retrying in 30 s");
        self.switch
            .metrics
            .trunk_registered
            .with_label_values(&[name])
            .set(0);
        self.switch.publish(
            "trunk.registration_failed",
            json!({"trunk": name, "code": code}),
        );
    }
}

/// The interval the registrar granted: our Contact's `expires` in the 2xx
/// (the only Contact we register), else its Expires header.
fn granted_secs(resp: &Response) -> Option<u32> {
    let from_contact = match resp.contacts() {
        Ok(sip::Contacts::List(l)) => l
            .iter()
            .find_map(|c| c.param("expires").and_then(sip::parse_delta_seconds)),
        _ => None,
    };
    from_contact.or_else(|| {
        resp.headers
            .get(&Name::Expires)
            .and_then(sip::parse_delta_seconds)
    })
}

impl Actor for TrunkRegistrations {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |this, ctx| this.tick(ctx));
    }
}

impl Handler<Unregister> for TrunkRegistrations {
    type Result = ();

    fn handle(&mut self, _: Unregister, ctx: &mut Context<Self>) {
        self.leaving = true;
        let names: Vec<String> = self
            .regs
            .iter()
            .filter(|(_, r)| r.registered || r.pending.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            if let Some(r) = self.regs.get_mut(&name) {
                r.registered = true;
            }
            self.send(&name, None, ctx);
        }
    }
}

impl Handler<Unregistering> for TrunkRegistrations {
    type Result = bool;

    fn handle(&mut self, _: Unregistering, _: &mut Context<Self>) -> bool {
        self.regs
            .values()
            .any(|r| r.registered && r.pending.is_some())
    }
}

impl Handler<CallEvent> for TrunkRegistrations {
    type Result = ();

    fn handle(&mut self, ev: CallEvent, ctx: &mut Context<Self>) {
        match ev {
            CallEvent::Response { resp, .. } => self.on_response(resp, ctx),
            CallEvent::Timeout { .. } => {
                // Timer F: the tick notices the REGISTER went unanswered.
            }
            _ => {}
        }
    }
}
