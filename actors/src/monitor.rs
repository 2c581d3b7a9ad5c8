//! The monitor: trunk keepalives (OPTIONS) and alert thresholds.
//!
//! Every gateway of a trunk with `outbound.ping_secs` gets an OPTIONS every
//! so often; any final response means it is there. `[alerts]
//! trunk_down_after` pings in a row without one mark the gateway down
//! (`gateway_down` alert, `switchboard_gateway_up` 0): calls skip it until
//! it answers again. With all its gateways down the trunk is down: calls
//! routed to it get 503 at once instead of waiting for Timer B. Every `[alerts]
//! interval_secs` the thresholds are checked; an alert that starts or ends
//! is an `alert.raised` / `alert.cleared` event and flips
//! `switchboard_alert_active{alert,subject}`.

use crate::call::CallEvent;
use crate::context::{shard_of, Switch};
use crate::shard::{GetStats, ShardCmd};
use actix::prelude::*;
use serde_json::json;
use sip::transaction::{new_tag, Peer, Transport};
use sip::{Method, Name, NameAddr, Request, SipMessage, Uri};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One pinged gateway.
#[derive(Default)]
struct Gateway {
    /// Call-ID of the ping waiting for an answer.
    waiting: Option<String>,
    last_sent: Option<Instant>,
    misses: u32,
    down: bool,
}

/// The monitor actor.
pub struct Monitor {
    switch: Arc<Switch>,
    /// By (trunk, gateway address).
    gateways: HashMap<(String, SocketAddr), Gateway>,
    /// Ping Call-ID → (trunk, gateway address).
    pings: HashMap<String, (String, SocketAddr)>,
    /// Store counters at the last check (batches, µs writing).
    store_last: (u64, u64),
    last_check: Instant,
}

impl Monitor {
    /// A monitor for `switch`.
    pub fn new(switch: Arc<Switch>) -> Monitor {
        Monitor {
            switch,
            gateways: HashMap::new(),
            pings: HashMap::new(),
            store_last: (0, 0),
            last_check: Instant::now(),
        }
    }

    /// Once a second: pings due, and the thresholds when their interval is up.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let cfg = self.switch.config();
        let now = Instant::now();
        let pinged: Vec<(String, Peer, u32)> = cfg
            .trunks
            .iter()
            .filter_map(|t| {
                let out = t.outbound.as_ref().filter(|o| o.ping_secs > 0)?;
                let transport = match out.transport {
                    config::Transport::Udp => Transport::Udp,
                    config::Transport::Tcp => Transport::Tcp,
                };
                Some(out.gateways().into_iter().map(move |g| {
                    let peer = Peer {
                        transport,
                        addr: g.host,
                    };
                    (t.name.clone(), peer, out.ping_secs)
                }))
            })
            .flatten()
            .collect();
        // Gateways no longer pinged (a reload) are forgotten, and up.
        let known: Vec<(String, SocketAddr)> = self.gateways.keys().cloned().collect();
        for key in known {
            if !pinged
                .iter()
                .any(|(n, p, _)| *n == key.0 && p.addr == key.1)
            {
                self.gateways.remove(&key);
                self.switch.gateways_down.remove(&key);
                self.alert("gateway_down", &gateway_subject(&key), false, json!({}));
                self.trunk_state(&key.0);
            }
        }
        for (name, peer, every) in pinged {
            let key = (name.clone(), peer.addr);
            let g = self.gateways.entry(key.clone()).or_default();
            let due = g
                .last_sent
                .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(every.into()));
            if !due {
                continue;
            }
            if let Some(missed) = g.waiting.take() {
                self.pings.remove(&missed);
                g.misses += 1;
                if !g.down && g.misses >= cfg.alerts.trunk_down_after {
                    g.down = true;
                    let misses = g.misses;
                    tracing::warn!(trunk = %name, gateway = %peer.addr, misses, "gateway down: OPTIONS unanswered");
                    self.switch.gateways_down.insert(key.clone(), ());
                    self.switch
                        .metrics
                        .gateway_up
                        .with_label_values(&[&name, &peer.addr.to_string()])
                        .set(0);
                    let subject = gateway_subject(&key);
                    self.alert(
                        "gateway_down",
                        &subject,
                        true,
                        json!({ "unanswered": misses }),
                    );
                    self.trunk_state(&name);
                }
            }
            self.ping(&key, peer, ctx);
        }
        if now.duration_since(self.last_check)
            >= Duration::from_secs(cfg.alerts.interval_secs.into())
        {
            self.last_check = now;
            self.check(ctx);
        }
    }

    /// A trunk is down when every gateway pinged is; up when one answers.
    fn trunk_state(&mut self, trunk: &str) {
        let mut gws = self
            .gateways
            .iter()
            .filter(|(k, _)| k.0 == trunk)
            .peekable();
        let pinged = gws.peek().is_some();
        let all_down = pinged && gws.all(|(_, g)| g.down);
        if pinged {
            self.switch
                .metrics
                .trunk_up
                .with_label_values(&[trunk])
                .set(i64::from(!all_down));
        }
        let was = self.switch.trunks_down.contains_key(trunk);
        if all_down && !was {
            tracing::warn!(%trunk, "trunk down: no gateway answers OPTIONS");
            self.switch.trunks_down.insert(trunk.to_owned(), ());
            self.alert("trunk_down", trunk, true, json!({}));
        } else if !all_down && was {
            tracing::info!(%trunk, "trunk up again");
            self.switch.trunks_down.remove(trunk);
            self.alert("trunk_down", trunk, false, json!({}));
        }
    }

    fn ping(&mut self, key: &(String, SocketAddr), peer: Peer, ctx: &mut Context<Self>) {
        let Some(shards) = self.switch.shards.get() else {
            return;
        };
        let local = self.switch.local_addr(peer.transport);
        let call_id = format!("ping-{}@{}", new_tag(), local.ip());
        let uri = format!("sip:{}", peer.addr);
        let Ok(target) = Uri::parse(&uri) else { return };
        let mut req = Request::new(Method::Options, target.clone());
        req.headers
            .push(Name::Via, self.switch.via(peer).to_string());
        req.headers.push(Name::MaxForwards, "70");
        let mut from = NameAddr::new(
            Uri::parse(&format!("sip:switchboard@{}", local.ip())).unwrap_or(target.clone()),
        );
        from.set_param("tag", Some(&new_tag()));
        req.headers.push(Name::From, from.to_string());
        req.headers
            .push(Name::To, NameAddr::new(target).to_string());
        req.headers.push(Name::CallId, call_id.clone());
        req.headers.push(Name::CSeq, "1 OPTIONS");
        req.headers
            .push(Name::UserAgent, self.switch.config().sip.user_agent.clone());
        let shard = &shards[shard_of(&call_id, shards.len())];
        shard.do_send(ShardCmd::Request {
            peer,
            req,
            owner: ctx.address().recipient(),
        });
        let g = self.gateways.entry(key.clone()).or_default();
        g.waiting = Some(call_id.clone());
        g.last_sent = Some(Instant::now());
        self.pings.insert(call_id, key.clone());
    }

    /// An answer to a ping: the gateway is there.
    fn answered(&mut self, call_id: &str) {
        let Some(key) = self.pings.remove(call_id) else {
            return;
        };
        let Some(g) = self.gateways.get_mut(&key) else {
            return;
        };
        g.waiting = None;
        g.misses = 0;
        let was_down = std::mem::replace(&mut g.down, false);
        self.switch
            .metrics
            .gateway_up
            .with_label_values(&[&key.0, &key.1.to_string()])
            .set(1);
        if was_down {
            tracing::info!(trunk = %key.0, gateway = %key.1, "gateway up again");
            self.switch.gateways_down.remove(&key);
            self.alert("gateway_down", &gateway_subject(&key), false, json!({}));
        }
        self.trunk_state(&key.0);
    }

    /// The thresholds other than trunks.
    fn check(&mut self, ctx: &mut Context<Self>) {
        let a = self.switch.config().alerts.clone();
        if a.calls_active_max > 0 {
            let n = self.switch.calls.len() as u64;
            let over = n > a.calls_active_max.into();
            self.alert(
                "calls_active",
                "switch",
                over,
                json!({ "value": n, "max": a.calls_active_max }),
            );
        }
        let w = self.switch.records.stats();
        let (groups, us) = (w.groups.load(Relaxed), w.write_us.load(Relaxed));
        let (g0, us0) = std::mem::replace(&mut self.store_last, (groups, us));
        if a.store_write_ms_max > 0 && groups > g0 {
            let avg_ms = (us - us0) as f64 / (groups - g0) as f64 / 1000.0;
            let over = avg_ms > a.store_write_ms_max as f64;
            self.alert(
                "store_write_slow",
                "store",
                over,
                json!({ "avg_ms": avg_ms, "max_ms": a.store_write_ms_max }),
            );
        }
        if let Some(acd) = self.switch.acd.get() {
            let (wait_max, sl_min) = (a.queue_wait_secs_max, a.queue_service_level_min_pct);
            let stats = acd.send(crate::acd::QueueStats(None));
            ctx.spawn(stats.into_actor(self).map(move |res, this, _| {
                let Ok(Ok(serde_json::Value::Array(queues))) = res else {
                    return;
                };
                for q in queues {
                    let name = q["queue"].as_str().unwrap_or("").to_owned();
                    if wait_max > 0 {
                        let wait = q["longest_wait_s"].as_u64().unwrap_or(0);
                        this.alert(
                            "queue_wait",
                            &name,
                            wait > u64::from(wait_max),
                            json!({ "longest_wait_s": wait, "max_s": wait_max }),
                        );
                    }
                    if sl_min > 0 {
                        if let Some(sl) = q["service_level_pct"].as_f64() {
                            this.alert(
                                "queue_service_level",
                                &name,
                                sl < f64::from(sl_min),
                                json!({ "service_level_pct": sl, "min_pct": sl_min }),
                            );
                        }
                    }
                }
            }));
        }
        if a.shard_lag_ms_max > 0 {
            for (i, shard) in self.switch.shards.get().into_iter().flatten().enumerate() {
                let t = Instant::now();
                let probe = tokio::time::timeout(Duration::from_secs(5), shard.send(GetStats));
                let max = a.shard_lag_ms_max;
                ctx.spawn(probe.into_actor(self).map(move |_, this, _| {
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    let over = ms > max as f64;
                    this.alert(
                        "shard_lag",
                        &format!("shard{i}"),
                        over,
                        json!({ "lag_ms": ms, "max_ms": max }),
                    );
                }));
            }
        }
    }

    /// Deletes CDRs and events older than `[store]`'s retention, off the
    /// actor's thread.
    fn expire_records(&self) {
        let cfg = self.switch.config();
        let day_ms = 86_400_000u64;
        let now = crate::context::unix_ms();
        let cutoff = |days: u32| (days > 0).then(|| now.saturating_sub(u64::from(days) * day_ms));
        let (cdrs, events) = (
            cutoff(cfg.store.cdr_retention_days),
            cutoff(cfg.store.event_retention_days),
        );
        if cdrs.is_none() && events.is_none() {
            return;
        }
        let store = self.switch.store.clone();
        tokio::task::spawn_blocking(move || {
            match crate::cdr::expire(store.as_ref(), cdrs, events) {
                Ok(0) => {}
                Ok(n) => tracing::info!(cdrs = n, "expired CDRs past their retention"),
                Err(e) => tracing::warn!(error = %e, "expiring old records failed"),
            }
        });
    }

    /// Raises or clears alert `name` on `subject` when its state changes.
    fn alert(&mut self, name: &str, subject: &str, active: bool, detail: serde_json::Value) {
        let key = (name.to_owned(), subject.to_owned());
        let was = self.switch.alerts.contains_key(&key);
        if active == was {
            return;
        }
        let g = self
            .switch
            .metrics
            .alert_active
            .with_label_values(&[name, subject]);
        let data = json!({ "alert": name, "subject": subject, "detail": detail });
        if active {
            g.set(1);
            tracing::warn!(alert = name, subject, %detail, "alert raised");
            self.switch.alerts.insert(key, data.clone());
            self.switch.publish("alert.raised", data);
        } else {
            g.set(0);
            tracing::info!(alert = name, subject, "alert cleared");
            self.switch.alerts.remove(&key);
            self.switch.publish("alert.cleared", data);
        }
    }
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |this, ctx| this.tick(ctx));
        // Retention: a minute after start, then hourly.
        ctx.run_later(Duration::from_secs(60), |this, ctx| {
            this.expire_records();
            ctx.run_interval(Duration::from_secs(3600), |this, _| this.expire_records());
        });
    }
}

impl Handler<CallEvent> for Monitor {
    type Result = ();

    fn handle(&mut self, ev: CallEvent, _: &mut Context<Self>) {
        if let CallEvent::Response { resp, .. } = ev {
            if resp.code >= 200 {
                if let Some(id) = resp.call_id() {
                    let id = id.to_owned();
                    self.answered(&id);
                }
            }
        }
    }
}

/// The alert subject of a gateway: `trunk/ip:port`.
fn gateway_subject(key: &(String, SocketAddr)) -> String {
    format!("{}/{}", key.0, key.1)
}
