//! The monitor: trunk keepalives (OPTIONS) and alert thresholds.
//!
//! Trunks with `outbound.ping_secs` get an OPTIONS every so often; any
//! final response means the carrier is there. `[alerts] trunk_down_after`
//! pings in a row without one mark the trunk down: calls routed to it get
//! 503 at once instead of waiting for Timer B. Every `[alerts]
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
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One pinged trunk.
#[derive(Default)]
struct Trunk {
    /// Call-ID of the ping waiting for an answer.
    waiting: Option<String>,
    last_sent: Option<Instant>,
    misses: u32,
    down: bool,
}

/// The monitor actor.
pub struct Monitor {
    switch: Arc<Switch>,
    trunks: HashMap<String, Trunk>,
    /// Ping Call-ID → trunk.
    pings: HashMap<String, String>,
    /// Store counters at the last check (batches, µs writing).
    store_last: (u64, u64),
    last_check: Instant,
}

impl Monitor {
    /// A monitor for `switch`.
    pub fn new(switch: Arc<Switch>) -> Monitor {
        Monitor {
            switch,
            trunks: HashMap::new(),
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
                let peer = Peer {
                    transport,
                    addr: out.host,
                };
                Some((t.name.clone(), peer, out.ping_secs))
            })
            .collect();
        // Trunks no longer pinged (a reload) are forgotten, and up.
        let names: Vec<String> = self.trunks.keys().cloned().collect();
        for name in names {
            if !pinged.iter().any(|(n, _, _)| *n == name) {
                self.trunks.remove(&name);
                self.switch.trunks_down.remove(&name);
                self.alert("trunk_down", &name, false, json!({}));
            }
        }
        for (name, peer, every) in pinged {
            let t = self.trunks.entry(name.clone()).or_default();
            let due = t
                .last_sent
                .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(every.into()));
            if !due {
                continue;
            }
            if let Some(missed) = t.waiting.take() {
                self.pings.remove(&missed);
                t.misses += 1;
                if !t.down && t.misses >= cfg.alerts.trunk_down_after {
                    t.down = true;
                    let misses = t.misses;
                    tracing::warn!(trunk = %name, misses, "trunk down: OPTIONS unanswered");
                    self.switch.trunks_down.insert(name.clone(), ());
                    self.switch
                        .metrics
                        .trunk_up
                        .with_label_values(&[&name])
                        .set(0);
                    self.alert("trunk_down", &name, true, json!({ "unanswered": misses }));
                }
            }
            self.ping(&name, peer, ctx);
        }
        if now.duration_since(self.last_check)
            >= Duration::from_secs(cfg.alerts.interval_secs.into())
        {
            self.last_check = now;
            self.check(ctx);
        }
    }

    fn ping(&mut self, trunk: &str, peer: Peer, ctx: &mut Context<Self>) {
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
        let t = self.trunks.entry(trunk.to_owned()).or_default();
        t.waiting = Some(call_id.clone());
        t.last_sent = Some(Instant::now());
        self.pings.insert(call_id, trunk.to_owned());
    }

    /// An answer to a ping: the trunk is there.
    fn answered(&mut self, call_id: &str) {
        let Some(name) = self.pings.remove(call_id) else {
            return;
        };
        let Some(t) = self.trunks.get_mut(&name) else {
            return;
        };
        t.waiting = None;
        t.misses = 0;
        self.switch
            .metrics
            .trunk_up
            .with_label_values(&[&name])
            .set(1);
        if std::mem::replace(&mut t.down, false) {
            tracing::info!(trunk = %name, "trunk up again");
            self.switch.trunks_down.remove(&name);
            self.alert("trunk_down", &name, false, json!({}));
        }
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
