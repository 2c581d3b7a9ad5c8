//! The registrar (RFC 3261 §10.3) and the location service it fills.
//!
//! Bindings live in a [`Location`] (a dashmap read by call actors without a
//! mailbox hop) and in the store's `registrations` family, written before
//! the 200 goes out, so they survive a restart.

use crate::context::{unix_now, Switch};
use crate::shard::{Shard, ShardCmd};
use crate::store::{cf, Store};
use actix::prelude::*;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use sip::auth::{Credentials, Verdict};
use sip::transaction::{Peer, Transport, TxId};
use sip::{response_to, Contacts, Host, Name, Request, Response, SipMessage, Uri};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One registered contact of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The Contact URI as registered.
    pub contact: String,
    /// Unix time the binding expires.
    pub expires_at: u64,
    /// Call-ID and CSeq of the REGISTER that set it (§10.3 step 7).
    pub call_id: String,
    /// CSeq of that REGISTER.
    pub cseq: u32,
    /// Where the REGISTER came from: calls to the user go to this flow, so
    /// phones behind NAT are reached.
    pub source: SocketAddr,
    /// "udp" or "tcp".
    pub transport: String,
    /// User-Agent of the phone, for listings.
    pub user_agent: Option<String>,
}

impl Binding {
    /// The phone is behind NAT: its Contact names another address than the
    /// one its REGISTER came from (a host name counts as another).
    pub fn behind_nat(&self) -> bool {
        let Ok(Uri::Sip(u)) = Uri::parse(&self.contact) else {
            return true;
        };
        let default_port = if u.secure { 5061 } else { 5060 };
        match u.host {
            Host::Ip(ip) => {
                ip != self.source.ip() || u.port.unwrap_or(default_port) != self.source.port()
            }
            _ => true,
        }
    }

    /// The peer to send requests for this binding to.
    pub fn peer(&self) -> Peer {
        let transport = if self.transport == "tcp" {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        Peer {
            transport,
            addr: self.source,
        }
    }
}

/// Registered contacts by user name.
pub type Location = Arc<DashMap<String, Vec<Binding>>>;

/// Live (unexpired) bindings of `user`, newest first.
pub fn lookup(location: &Location, user: &str) -> Vec<Binding> {
    let now = unix_now();
    let mut v: Vec<Binding> = location
        .get(user)
        .map(|b| b.iter().filter(|b| b.expires_at > now).cloned().collect())
        .unwrap_or_default();
    v.sort_by_key(|b| std::cmp::Reverse(b.expires_at));
    v
}

/// Loads bindings saved by an earlier run into a new [`Location`].
pub fn load(store: &dyn Store) -> Location {
    let location: Location = Arc::new(DashMap::new());
    let now = unix_now();
    match store.scan_prefix(cf::REGISTRATIONS, b"") {
        Ok(rows) => {
            for (k, v) in rows {
                let user = k
                    .split(|&c| c == 0)
                    .next()
                    .map(|u| String::from_utf8_lossy(u).into_owned());
                match (user, serde_json::from_slice::<Binding>(&v)) {
                    (Some(user), Ok(b)) if b.expires_at > now => {
                        location.entry(user).or_default().push(b)
                    }
                    (_, Ok(_)) => {
                        let _ = store.delete(cf::REGISTRATIONS, &k);
                    }
                    (_, Err(e)) => tracing::warn!(error = %e, "skipping unreadable registration"),
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot load registrations"),
    }
    location
}

fn key(user: &str, contact: &str) -> Vec<u8> {
    let mut k = user.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(contact.as_bytes());
    k
}

/// A REGISTER on server transaction `tx` of `shard`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    /// Transaction to answer on.
    pub tx: TxId,
    /// The request.
    pub req: Request,
    /// Its source.
    pub peer: Peer,
    /// The shard that owns `tx`.
    pub shard: Addr<Shard>,
}

/// The registrar actor.
pub struct Registrar {
    switch: Arc<Switch>,
    store: Arc<dyn Store>,
    last_keepalive: std::time::Instant,
}

impl Registrar {
    /// A registrar writing to `store`.
    pub fn new(switch: Arc<Switch>, store: Arc<dyn Store>) -> Self {
        Registrar {
            switch,
            store,
            last_keepalive: std::time::Instant::now(),
        }
    }

    fn handle_register(&mut self, req: &Request, peer: Peer) -> Response {
        let cfg = self.switch.config();
        let to = match req.to() {
            Ok(t) => t,
            Err(_) => return reject(req, 400, "Bad To"),
        };
        // RFC 4475 §3.3.4: the AOR must be a SIP or SIPS URI.
        let Some(aor) = to.uri.sip() else {
            return reject(req, 400, "To Is Not A SIP URI");
        };
        let Some(user) = aor.user_decoded().map(|u| u.into_owned()) else {
            return reject(req, 400, "No User In To");
        };
        // §10.3 steps 3-4: authenticate, and the credentials must be the AOR's.
        let creds = req
            .headers
            .get_all(&Name::Authorization)
            .filter_map(|v| Credentials::parse(v).ok())
            .find(|c| {
                c.realm == cfg.sip.domain
                    && Uri::parse(&c.uri).is_ok_and(|u| u.same_target(&req.uri))
            });
        let stale = match creds {
            None => false,
            Some(c) => {
                let Some(u) = cfg.user(&c.username) else {
                    return self.challenge(req, false);
                };
                let verdict = self
                    .switch
                    .auth
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .verify(&c, req.method.as_str(), &u.password, unix_now());
                match verdict {
                    Verdict::Ok if c.username == user => {
                        return self.update_bindings(req, peer, &user)
                    }
                    Verdict::Ok => return reject(req, 403, "Credentials Do Not Match The AOR"),
                    Verdict::Stale => true,
                    Verdict::Invalid(e) => {
                        tracing::info!(user = %c.username, source = %peer.addr, error = %e, "REGISTER auth failed");
                        false
                    }
                }
            }
        };
        self.challenge(req, stale)
    }

    fn challenge(&self, req: &Request, stale: bool) -> Response {
        self.switch
            .challenge(req, 401, &sip::transaction::new_tag(), stale)
    }

    /// §10.3 steps 6-8.
    fn update_bindings(&mut self, req: &Request, peer: Peer, user: &str) -> Response {
        let cfg = self.switch.config().registrar.clone();
        let now = unix_now();
        let call_id = req.call_id().unwrap_or("").to_owned();
        let cseq = req.cseq().map_or(0, |c| c.seq);
        let header_expires = req.expires();
        let contacts = match req.contacts() {
            Ok(c) => c,
            Err(_) => return reject(req, 400, "Bad Contact"),
        };
        let mut current = lookup(&self.switch.location, user);
        match contacts {
            Contacts::Star => {
                if header_expires != Some(0) || req.headers.count(&Name::Contact) != 1 {
                    return reject(req, 400, "Contact * Needs Expires: 0");
                }
                for b in current.drain(..) {
                    if let Err(e) = self.store.delete(cf::REGISTRATIONS, &key(user, &b.contact)) {
                        return self.store_failed(req, e);
                    }
                }
            }
            Contacts::List(list) => {
                for c in list {
                    if !matches!(c.uri, Uri::Sip(_)) {
                        return reject(req, 400, "Contact Is Not A SIP URI");
                    }
                    let contact = c.uri.to_string();
                    let expires = c
                        .param("expires")
                        .and_then(sip::parse_delta_seconds)
                        .or(header_expires)
                        .unwrap_or(cfg.default_expires);
                    if expires > 0 && expires < cfg.min_expires {
                        let mut r = response_to(req, 423, Some(&sip::transaction::new_tag()));
                        r.headers
                            .push(Name::MinExpires, cfg.min_expires.to_string());
                        return r;
                    }
                    let expires = expires.min(cfg.max_expires);
                    let existing = current.iter().position(|b| b.contact == contact);
                    if let Some(i) = existing {
                        if current[i].call_id == call_id && current[i].cseq >= cseq {
                            continue; // §10.3 step 7: an old or repeated REGISTER
                        }
                        current.remove(i);
                    }
                    if expires == 0 {
                        if let Err(e) = self.store.delete(cf::REGISTRATIONS, &key(user, &contact)) {
                            return self.store_failed(req, e);
                        }
                        continue;
                    }
                    let b = Binding {
                        contact: contact.clone(),
                        expires_at: now + expires as u64,
                        call_id: call_id.clone(),
                        cseq,
                        source: peer.addr,
                        transport: if peer.transport == Transport::Tcp {
                            "tcp".into()
                        } else {
                            "udp".into()
                        },
                        user_agent: req.headers.get(&Name::UserAgent).map(str::to_owned),
                    };
                    let json = serde_json::to_vec(&b).unwrap_or_default();
                    if let Err(e) = self
                        .store
                        .put(cf::REGISTRATIONS, &key(user, &contact), &json)
                    {
                        return self.store_failed(req, e);
                    }
                    current.push(b);
                }
            }
        }
        let mut r = response_to(req, 200, Some(&sip::transaction::new_tag()));
        for b in &current {
            r.headers.push(
                Name::Contact,
                format!(
                    "<{}>;expires={}",
                    b.contact,
                    b.expires_at.saturating_sub(now)
                ),
            );
        }
        self.switch.publish(
            "registration",
            serde_json::json!({
                "user": user,
                "contacts": current.iter().map(|b| &b.contact).collect::<Vec<_>>(),
            }),
        );
        if current.is_empty() {
            self.switch.location.remove(user);
        } else {
            self.switch.location.insert(user.to_owned(), current);
        }
        r
    }

    fn store_failed(&self, req: &Request, e: crate::store::StoreError) -> Response {
        tracing::error!(error = %e, "registration not stored");
        reject(req, 500, "Store Failure")
    }

    /// Drops expired bindings from memory and the store.
    /// Every `keepalive_secs`: a keep-alive down each TCP flow and each UDP
    /// flow behind NAT, so the phone's NAT binding stays open for calls.
    fn keepalives(&mut self) {
        let secs = self.switch.config().registrar.keepalive_secs;
        // Checked every second: half a second early is on time.
        let due = Duration::from_secs(secs.into()).saturating_sub(Duration::from_millis(500));
        if secs == 0 || self.last_keepalive.elapsed() < due {
            return;
        }
        self.last_keepalive = std::time::Instant::now();
        let now = unix_now();
        let mut sent = 0usize;
        for entry in self.switch.location.iter() {
            for b in entry.value().iter().filter(|b| b.expires_at > now) {
                let peer = b.peer();
                if peer.transport == Transport::Udp && !b.behind_nat() {
                    continue;
                }
                sent += usize::from(self.switch.sender.keepalive(peer));
            }
        }
        if sent > 0 {
            tracing::debug!(sent, "keep-alives");
        }
    }

    fn purge(&mut self) {
        let now = unix_now();
        let mut dead = Vec::new();
        for mut entry in self.switch.location.iter_mut() {
            let user = entry.key().clone();
            entry.value_mut().retain(|b| {
                let keep = b.expires_at > now;
                if !keep {
                    dead.push(key(&user, &b.contact));
                }
                keep
            });
        }
        self.switch.location.retain(|_, v| !v.is_empty());
        for k in dead {
            let _ = self.store.delete(cf::REGISTRATIONS, &k);
        }
        self.switch
            .auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .purge(now);
    }
}

fn reject(req: &Request, code: u16, reason: &str) -> Response {
    let mut r = response_to(req, code, Some(&sip::transaction::new_tag()));
    r.reason = reason.to_owned();
    r
}

impl Actor for Registrar {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(15), |this, _| this.purge());
        ctx.run_interval(Duration::from_secs(1), |this, _| this.keepalives());
    }
}

impl Handler<Register> for Registrar {
    type Result = ();

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) {
        let resp = self.handle_register(&msg.req, msg.peer);
        msg.shard.do_send(ShardCmd::Respond { tx: msg.tx, resp });
    }
}
