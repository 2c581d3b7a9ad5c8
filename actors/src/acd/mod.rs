//! The ACD: queues of waiting callers and the agents who answer them.
//!
//! [`router`] is the sans-IO routing core (who gets which caller). The
//! [`Acd`] actor owns it: agents log in, out, pause and resume through it
//! (control socket, feature codes), calls join and leave queues through
//! it, and it tells a call which agent's phone to ring. Every decision is
//! an event (`agent.state`, `queue.joined`, `queue.offered`,
//! `queue.answered`, `queue.abandoned`) for the store and reports.

pub mod router;

use crate::context::Switch;
use actix::prelude::*;
use router::{AgentIx, CallerId, CallerSpec, Decision, QueueIx, Router, Status};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an agent does to their session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOp {
    /// Start taking calls.
    Login,
    /// Stop.
    Logout,
    /// Take a break (the reason is reported).
    Pause(String),
    /// Back from the break.
    Resume,
}

/// An agent's session change (control socket, feature code).
#[derive(Message, Debug)]
#[rtype(result = "Result<Value, String>")]
pub struct AgentCmd {
    /// The agent's name, or one of their phones (a user name).
    pub agent: String,
    /// What to do.
    pub op: AgentOp,
}

/// Agents and their state.
#[derive(Message)]
#[rtype(result = "Result<Value, String>")]
pub struct ListAgents;

/// Queues with their figures (`None`: all).
#[derive(Message)]
#[rtype(result = "Result<Value, String>")]
pub struct QueueStats(pub Option<String>);

/// Ring this agent for the caller (sent to the call).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Offer {
    /// The caller's id in the ACD.
    pub caller: CallerId,
    /// The agent.
    pub agent: String,
    /// The phones (local users) to ring.
    pub users: Vec<String>,
    /// The queue (shown on the phone).
    pub queue: String,
    /// Ring at most this long, then [`OfferResult`] missed.
    pub ring: Duration,
}

/// Stop ringing this agent (someone else answered, or the agent left).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CancelOffer {
    /// The caller.
    pub caller: CallerId,
    /// The agent.
    pub agent: String,
}

/// A waiting caller's place and estimated wait (seconds), for announcements.
#[derive(Message)]
#[rtype(result = "Option<(usize, u64)>")]
pub struct Position(pub CallerId);

/// A call joins a queue.
#[derive(Message)]
#[rtype(result = "Result<CallerId, String>")]
pub struct Join {
    /// The queue's name.
    pub queue: String,
    /// Priority, VIP, skills.
    pub spec: CallerSpec,
    /// The call's leg A Call-ID (for events).
    pub call_id: String,
    /// Where offers go.
    pub call: Recipient<Offer>,
    /// Where cancels go.
    pub cancel: Recipient<CancelOffer>,
    /// Where the ACD sends the caller away.
    pub overflow: Recipient<QueueOverflow>,
}

/// The ACD lets a waiting caller go (the last agent left a
/// `leave_when_empty` queue): the call takes the queue's overflow.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct QueueOverflow {
    /// The caller.
    pub caller: CallerId,
    /// Why.
    pub reason: String,
}

/// A caller leaves the queue (hung up, overflowed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// The caller.
    pub caller: CallerId,
    /// Why ("abandoned", "overflow", ...).
    pub reason: String,
}

/// How an offer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferOutcome {
    /// The agent answered: bridged.
    Answered,
    /// Rang out, declined (486/603) or unreachable.
    Missed,
    /// The call could not ring the agent (it rings someone already, or
    /// ended): the agent is free again, no miss counted.
    Released,
}

/// The call reports an offer's outcome.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OfferResult {
    /// The caller.
    pub caller: CallerId,
    /// The agent.
    pub agent: String,
    /// What happened.
    pub outcome: OfferOutcome,
}

/// An agent's call ended (wrap-up follows).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallEnded {
    /// The agent.
    pub agent: String,
    /// The queue the call came from (its wrap-up time).
    pub queue: String,
    /// How long the agent talked, ms (the queue's handle time).
    pub talk_ms: u64,
}

struct Waiting {
    call_id: String,
    queue: QueueIx,
    joined: Instant,
    /// The waiting call (None for a callback).
    offer: Option<Recipient<Offer>>,
    cancel: Option<Recipient<CancelOffer>>,
    overflow: Option<Recipient<QueueOverflow>>,
    /// A callback: the number to call back, through this trunk.
    callback: Option<(String, Option<String>)>,
}

/// A waiting caller asks to be called back (the call then hangs up).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct RequestCallback {
    /// The caller.
    pub caller: CallerId,
    /// The number to call back.
    pub number: String,
    /// Routing attributes (kept with the callback).
    pub spec: CallerSpec,
}

#[derive(Default, Clone, Copy)]
struct QueueFigures {
    joined: u64,
    answered: u64,
    answered_in_sl: u64,
    abandoned: u64,
    /// Total wait of answered callers, ms.
    answered_wait_ms: u64,
    /// Calls handled and their total talk time, ms (the estimated wait).
    handled: u64,
    handled_ms: u64,
}

/// The ACD actor (one per switch).
pub struct Acd {
    switch: Arc<Switch>,
    config: Arc<config::Config>,
    router: Router,
    callers: HashMap<CallerId, Waiting>,
    figures: Vec<QueueFigures>,
    next_caller: CallerId,
    timer: Option<SpawnHandle>,
    startup: Vec<Decision>,
}

impl Acd {
    /// The ACD of the switch's queues and agents (logged out unless
    /// `[acd] login_at_start`).
    pub fn new(switch: Arc<Switch>) -> Acd {
        let config = switch.config();
        let now = Instant::now();
        let mut router = Router::from_config(&config, now);
        // Decisions made while restoring state, carried out once running.
        let mut startup = Vec::new();
        if config.acd.login_at_start {
            for a in 0..config.agents.len() {
                startup.extend(router.login(a, now));
            }
        }
        // Callbacks keep their place across a restart.
        let mut callers = HashMap::new();
        let mut next_caller = 1;
        let mut figures = vec![QueueFigures::default(); config.queues.len()];
        match switch.store.scan_prefix(crate::store::cf::CALLBACKS, b"") {
            Ok(rows) => {
                let unix_now = crate::context::unix_ms();
                for (k, v) in rows {
                    let Ok(id) = <[u8; 8]>::try_from(k.as_slice()).map(CallerId::from_be_bytes)
                    else {
                        continue;
                    };
                    let v: Value = serde_json::from_slice(&v).unwrap_or_default();
                    let Some(q) = v["queue"].as_str().and_then(|q| router.queue_ix(q)) else {
                        continue;
                    };
                    let ago = Duration::from_millis(
                        unix_now.saturating_sub(v["joined_ms"].as_u64().unwrap_or(unix_now)),
                    );
                    let joined = now.checked_sub(ago).unwrap_or(now);
                    let spec = CallerSpec {
                        priority: v["priority"].as_u64().unwrap_or(0) as u32,
                        vip: v["vip"].as_bool().unwrap_or(false),
                        skills: serde_json::from_value(v["skills"].clone()).unwrap_or_default(),
                    };
                    let number = v["number"].as_str().unwrap_or("").to_owned();
                    let trunk = v["trunk"].as_str().map(str::to_owned);
                    callers.insert(
                        id,
                        Waiting {
                            call_id: v["call_id"].as_str().unwrap_or("").to_owned(),
                            queue: q,
                            joined,
                            offer: None,
                            cancel: None,
                            overflow: None,
                            callback: Some((number, trunk)),
                        },
                    );
                    // Agents are not logged in yet: nothing is offered here.
                    let _ = router.join_at(id, q, &spec, joined, now);
                    if let Some(f) = figures.get_mut(q) {
                        f.joined += 1;
                    }
                    next_caller = next_caller.max(id + 1);
                }
                if !callers.is_empty() {
                    tracing::info!(callbacks = callers.len(), "queued callbacks restored");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read queued callbacks"),
        }
        // Agents who were logged in (or paused) when the switch stopped still are.
        match switch.store.scan_prefix(crate::store::cf::AGENTS, b"") {
            Ok(rows) => {
                for (k, v) in rows {
                    let name = String::from_utf8_lossy(&k);
                    let Some(a) = router.agent_ix(&name) else {
                        continue;
                    };
                    let v: Value = serde_json::from_slice(&v).unwrap_or_default();
                    match v["state"].as_str() {
                        Some("logged_in") => {
                            startup.extend(router.login(a, now));
                        }
                        Some("paused") => {
                            startup.extend(router.login(a, now));
                            startup.extend(router.pause(
                                a,
                                v["reason"].as_str().unwrap_or("break"),
                                now,
                            ));
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read agents' sessions"),
        }
        Acd {
            figures,
            switch,
            config,
            router,
            callers,
            next_caller,
            timer: None,
            startup,
        }
    }

    /// New queue settings after a reload: strategies, skills and timers of
    /// existing queues change for the next decision; new queues and agents
    /// are added (removed ones stay until a restart).
    fn refresh_config(&mut self) {
        let cfg = self.switch.config();
        if Arc::ptr_eq(&cfg, &self.config) {
            return;
        }
        let now = Instant::now();
        for q in &cfg.queues {
            let spec = router::QueueSpec::from_config(q);
            if self.router.queue_ix(&q.name).is_some() {
                self.router.update_queue(spec);
            } else {
                self.router.add_queue(spec);
                self.figures.push(QueueFigures::default());
            }
        }
        for a in &cfg.agents {
            if self.router.agent_ix(&a.name).is_none() {
                let queues: Vec<QueueIx> = a
                    .queues
                    .iter()
                    .filter_map(|q| self.router.queue_ix(q))
                    .collect();
                let skills: Vec<(String, u8)> =
                    a.skills.iter().map(|(k, v)| (k.clone(), *v)).collect();
                self.router.add_agent(&a.name, &skills, &queues, now);
            }
        }
        self.config = cfg;
    }

    fn agent_cfg(&self, a: AgentIx) -> Option<&config::acd::Agent> {
        let name = self.router.agent_name(a);
        self.config.agents.iter().find(|x| x.name == name)
    }

    fn queue_cfg(&self, q: QueueIx) -> Option<&config::acd::Queue> {
        let name = self.router.queue_name(q);
        self.config.queues.iter().find(|x| x.name == name)
    }

    /// An agent by name or by one of their phones.
    fn find_agent(&self, who: &str) -> Option<AgentIx> {
        self.router.agent_ix(who).or_else(|| {
            let a = self
                .config
                .agents
                .iter()
                .find(|a| a.users.iter().any(|u| u == who))?;
            self.router.agent_ix(&a.name)
        })
    }

    fn state_json(status: &Status) -> (&'static str, Option<String>) {
        match status {
            Status::LoggedOut => ("logged_out", None),
            Status::Available => ("available", None),
            Status::Ringing(_) => ("ringing", None),
            Status::OnCall(_) => ("on_call", None),
            Status::WrapUp(_) => ("wrap_up", None),
            Status::Paused(r) => ("paused", Some(r.clone())),
        }
    }

    /// Keeps an agent's session (logged in, paused, out) across restarts.
    fn persist_session(&self, a: AgentIx) {
        let (state, reason) = match self.router.status(a) {
            Status::LoggedOut => ("logged_out", None),
            Status::Paused(r) => ("paused", Some(r.clone())),
            _ => ("logged_in", None),
        };
        let value = json!({"state": state, "reason": reason})
            .to_string()
            .into_bytes();
        self.switch.records.write_later(vec![crate::store::Op::Put {
            cf: crate::store::cf::AGENTS,
            key: self.router.agent_name(a).as_bytes().to_vec(),
            value,
        }]);
    }

    fn publish_state(&self, a: AgentIx) {
        let (state, reason) = Self::state_json(self.router.status(a));
        self.switch.publish(
            "agent.state",
            json!({"agent": self.router.agent_name(a), "state": state, "reason": reason}),
        );
    }

    /// Carries out the router's decisions.
    fn apply(&mut self, decisions: Vec<Decision>, ctx: &mut Context<Self>) {
        for d in decisions {
            match d {
                Decision::Offer {
                    caller,
                    queue,
                    agents,
                } => {
                    let Some(w) = self.callers.get(&caller) else {
                        continue;
                    };
                    let ring = self.queue_cfg(queue).map_or(15, |q| q.ring_timeout_secs);
                    if let Some((number, trunk)) = w.callback.clone() {
                        self.call_back(caller, queue, &agents, number, trunk, ctx);
                        continue;
                    }
                    let Some(offer) = w.offer.clone() else {
                        continue;
                    };
                    for a in agents {
                        let users = self
                            .agent_cfg(a)
                            .map(|c| c.users.clone())
                            .unwrap_or_default();
                        let agent = self.router.agent_name(a).to_owned();
                        self.switch.publish(
                            "queue.offered",
                            json!({"call_id": w.call_id, "queue": self.router.queue_name(queue), "agent": agent}),
                        );
                        offer.do_send(Offer {
                            caller,
                            agent,
                            users,
                            queue: self.router.queue_name(queue).to_owned(),
                            ring: Duration::from_secs(ring.into()),
                        });
                        self.publish_state(a);
                    }
                }
                Decision::Cancel { caller, agents } => {
                    for a in agents {
                        if let Some(cancel) =
                            self.callers.get(&caller).and_then(|w| w.cancel.as_ref())
                        {
                            cancel.do_send(CancelOffer {
                                caller,
                                agent: self.router.agent_name(a).to_owned(),
                            });
                        }
                        self.publish_state(a);
                    }
                }
                Decision::AutoPaused(a) => {
                    tracing::info!(
                        agent = self.router.agent_name(a),
                        "agent paused after missed offers"
                    );
                    self.persist_session(a);
                    self.publish_state(a);
                }
            }
        }
        self.update_metrics();
        self.schedule(ctx);
    }

    /// A callback offered to `agents`: the first one's phone rings
    /// (click-to-call: then the caller's number is dialed); the others are
    /// released.
    fn call_back(
        &mut self,
        caller: CallerId,
        queue: QueueIx,
        agents: &[AgentIx],
        number: String,
        trunk: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let Some((&first, rest)) = agents.split_first() else {
            return;
        };
        for &a in rest {
            let d = self.router.released(caller, a, now);
            self.apply(d, ctx);
        }
        let agent = self.router.agent_name(first).to_owned();
        let user = self.agent_cfg(first).and_then(|c| c.users.first().cloned());
        let shards = self.switch.shards.get().cloned().unwrap_or_default();
        let (Some(user), Some(shard)) = (
            user,
            shards.get(caller as usize % shards.len().max(1)).cloned(),
        ) else {
            return;
        };
        let queue_name = self.router.queue_name(queue).to_owned();
        tracing::info!(%agent, %number, queue = %queue_name, "callback: ringing the agent");
        self.publish_state(first);
        let msg = crate::call::Originate {
            user,
            number,
            trunk,
            acd: Some(crate::call::AcdCallback {
                caller,
                agent: agent.clone(),
                queue: queue_name,
            }),
        };
        shard
            .send(msg)
            .into_actor(self)
            .map(move |res, this, ctx| {
                if let Ok(Ok(_)) = res {
                    return;
                }
                // The agent's phone cannot be rung (not registered): a miss.
                tracing::info!(%agent, result = ?res.map(|r| r.err()), "callback: the agent cannot be rung");
                if let Some(a) = this.router.agent_ix(&agent) {
                    let d = this.router.missed(caller, a, Instant::now());
                    this.publish_state(a);
                    this.apply(d, ctx);
                }
            })
            .spawn(ctx);
    }

    /// After agent `a` logged out: in their `leave_when_empty` queues with
    /// nobody logged in any more, waiting callers are let go (overflow).
    fn empty_queues_let_go(&mut self, a: AgentIx, ctx: &mut Context<Self>) {
        let queues: Vec<QueueIx> = self
            .agent_cfg(a)
            .map(|c| {
                c.queues
                    .iter()
                    .filter_map(|q| self.router.queue_ix(q))
                    .collect()
            })
            .unwrap_or_default();
        let now = Instant::now();
        for q in queues {
            let leave = self.queue_cfg(q).is_some_and(|c| c.leave_when_empty);
            if !leave || self.router.logged_in(q) > 0 {
                continue;
            }
            let ids: Vec<CallerId> = self
                .callers
                .iter()
                .filter(|(_, w)| w.queue == q && w.overflow.is_some())
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                let d = self.router.leave(id, now);
                self.apply(d, ctx);
                if let Some(w) = self.callers.remove(&id) {
                    if let Some(o) = w.overflow {
                        o.do_send(QueueOverflow {
                            caller: id,
                            reason: "no agents".into(),
                        });
                    }
                }
            }
        }
    }

    fn callback_key(caller: CallerId) -> Vec<u8> {
        caller.to_be_bytes().to_vec()
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = self.router.deadline() {
            let wait = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(wait, |this, ctx| {
                this.timer = None;
                let wrapping: Vec<AgentIx> = (0..this.router.agents())
                    .filter(|&a| matches!(this.router.status(a), Status::WrapUp(_)))
                    .collect();
                let d = this.router.tick(Instant::now());
                // Wrap-ups that ended are state changes too.
                for a in wrapping {
                    if !matches!(this.router.status(a), Status::WrapUp(_)) {
                        this.publish_state(a);
                    }
                }
                this.apply(d, ctx);
            }));
        }
    }

    /// Per queue: callers waiting (callbacks included) and the longest
    /// wait in seconds, in one pass over the callers.
    fn waiting_by_queue(&self, now: Instant) -> Vec<(usize, u64)> {
        let mut out = vec![(0, 0); self.router.queues()];
        for w in self.callers.values() {
            if let Some((count, longest)) = out.get_mut(w.queue) {
                *count += 1;
                *longest = (*longest).max(now.saturating_duration_since(w.joined).as_secs());
            }
        }
        out
    }

    fn queue_json(&self, q: QueueIx, waiting: (usize, u64)) -> Value {
        let (count, longest) = waiting;
        let f = self.figures.get(q).copied().unwrap_or_default();
        let sl = if f.answered == 0 {
            Value::Null
        } else {
            json!((f.answered_in_sl as f64 * 1000.0 / f.answered as f64).round() / 10.0)
        };
        let cfg = self.queue_cfg(q);
        json!({
            "queue": self.router.queue_name(q),
            "strategy": cfg.map(|c| format!("{:?}", c.strategy)),
            "waiting": count,
            "longest_wait_s": longest,
            "agents_logged_in": self.router.logged_in(q),
            "agents_available": self.router.available(q),
            "joined": f.joined,
            "answered": f.answered,
            "abandoned": f.abandoned,
            "service_level_pct": sl,
            "average_wait_s": f.answered_wait_ms.checked_div(f.answered).unwrap_or(0) / 1000,
        })
    }
}

impl Acd {
    /// Queue and agent gauges (every second and after changes).
    fn update_metrics(&self) {
        let m = &self.switch.metrics;
        let now = Instant::now();
        let waiting = self.waiting_by_queue(now);
        for (q, &(count, longest)) in waiting.iter().enumerate() {
            let name = self.router.queue_name(q);
            m.queue_waiting.with_label_values(&[name]).set(count as i64);
            m.queue_longest_wait
                .with_label_values(&[name])
                .set(longest as i64);
            if let Some(f) = self.figures.get(q).filter(|f| f.answered > 0) {
                m.queue_service_level
                    .with_label_values(&[name])
                    .set(f.answered_in_sl as f64 / f.answered as f64);
            }
        }
        let mut counts: HashMap<&str, i64> = [
            "logged_out",
            "available",
            "ringing",
            "on_call",
            "wrap_up",
            "paused",
        ]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
        for a in 0..self.router.agents() {
            *counts
                .entry(Self::state_json(self.router.status(a)).0)
                .or_default() += 1;
        }
        for (state, n) in counts {
            m.agents.with_label_values(&[state]).set(n);
        }
    }

    fn count(&self, q: QueueIx, outcome: &str) {
        self.switch
            .metrics
            .queue_calls
            .with_label_values(&[self.router.queue_name(q), outcome])
            .inc();
    }
}

impl Actor for Acd {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let startup = std::mem::take(&mut self.startup);
        self.apply(startup, ctx);
        self.update_metrics();
        ctx.run_interval(Duration::from_secs(1), |this, _| this.update_metrics());
    }
}

impl Handler<AgentCmd> for Acd {
    type Result = Result<Value, String>;

    fn handle(&mut self, cmd: AgentCmd, ctx: &mut Context<Self>) -> Self::Result {
        self.refresh_config();
        let a = self
            .find_agent(&cmd.agent)
            .ok_or_else(|| format!("no agent {:?}", cmd.agent))?;
        let now = Instant::now();
        let d = match &cmd.op {
            AgentOp::Login => self.router.login(a, now),
            AgentOp::Logout => self.router.logout(a, now),
            AgentOp::Pause(reason) => {
                if *self.router.status(a) == Status::LoggedOut {
                    return Err(format!("{} is not logged in", self.router.agent_name(a)));
                }
                self.router.pause(a, reason, now)
            }
            AgentOp::Resume => {
                if !matches!(self.router.status(a), Status::Paused(_)) {
                    return Err(format!("{} is not paused", self.router.agent_name(a)));
                }
                self.router.resume(a, now)
            }
        };
        tracing::info!(agent = self.router.agent_name(a), op = ?cmd.op, "agent");
        if cmd.op == AgentOp::Logout {
            self.empty_queues_let_go(a, ctx);
        }
        self.persist_session(a);
        self.publish_state(a);
        self.apply(d, ctx);
        let (state, reason) = Self::state_json(self.router.status(a));
        Ok(json!({"agent": self.router.agent_name(a), "state": state, "reason": reason}))
    }
}

impl Handler<ListAgents> for Acd {
    type Result = Result<Value, String>;

    fn handle(&mut self, _: ListAgents, _: &mut Context<Self>) -> Self::Result {
        self.refresh_config();
        let rows: Vec<Value> = (0..self.router.agents())
            .map(|a| {
                let (state, reason) = Self::state_json(self.router.status(a));
                let cfg = self.agent_cfg(a);
                json!({
                    "agent": self.router.agent_name(a),
                    "state": state,
                    "reason": reason,
                    "phones": cfg.map(|c| c.users.clone()),
                    "queues": cfg.map(|c| c.queues.clone()),
                    "skills": cfg.map(|c| c.skills.clone()),
                    "calls": self.router.calls_taken(a),
                })
            })
            .collect();
        Ok(Value::Array(rows))
    }
}

impl Handler<QueueStats> for Acd {
    type Result = Result<Value, String>;

    fn handle(&mut self, QueueStats(name): QueueStats, _: &mut Context<Self>) -> Self::Result {
        self.refresh_config();
        let now = Instant::now();
        match name {
            Some(n) => {
                let q = self
                    .router
                    .queue_ix(&n)
                    .ok_or_else(|| format!("no queue {n:?}"))?;
                Ok(self.queue_json(q, self.waiting_by_queue(now)[q]))
            }
            None => {
                let waiting = self.waiting_by_queue(now);
                Ok(Value::Array(
                    waiting
                        .iter()
                        .enumerate()
                        .map(|(q, w)| self.queue_json(q, *w))
                        .collect(),
                ))
            }
        }
    }
}

impl Handler<Join> for Acd {
    type Result = Result<CallerId, String>;

    fn handle(&mut self, j: Join, ctx: &mut Context<Self>) -> Self::Result {
        self.refresh_config();
        let q = self
            .router
            .queue_ix(&j.queue)
            .ok_or_else(|| format!("no queue {:?}", j.queue))?;
        if let Some(cfg) = self.queue_cfg(q) {
            if !cfg.join_empty && self.router.logged_in(q) == 0 {
                return Err("nobody is logged in".into());
            }
            if cfg.max_callers > 0 && self.router.waiting(q) >= cfg.max_callers as usize {
                return Err("the queue is full".into());
            }
        }
        let id = self.next_caller;
        self.next_caller += 1;
        let now = Instant::now();
        self.callers.insert(
            id,
            Waiting {
                call_id: j.call_id.clone(),
                queue: q,
                joined: now,
                offer: Some(j.call),
                cancel: Some(j.cancel),
                overflow: Some(j.overflow),
                callback: None,
            },
        );
        if let Some(f) = self.figures.get_mut(q) {
            f.joined += 1;
        }
        self.count(q, "joined");
        self.switch.publish(
            "queue.joined",
            json!({"call_id": j.call_id, "queue": j.queue, "priority": j.spec.priority, "vip": j.spec.vip}),
        );
        let d = self.router.join(id, q, &j.spec, now);
        self.apply(d, ctx);
        Ok(id)
    }
}

impl Handler<Leave> for Acd {
    type Result = ();

    fn handle(&mut self, l: Leave, ctx: &mut Context<Self>) {
        if !self.callers.contains_key(&l.caller) {
            return;
        }
        // The router first: its cancels still reach the call (it may be
        // ringing an agent), then the caller is forgotten.
        let d = self.router.leave(l.caller, Instant::now());
        self.apply(d, ctx);
        let Some(w) = self.callers.remove(&l.caller) else {
            return;
        };
        if let Some(f) = self.figures.get_mut(w.queue) {
            f.abandoned += u64::from(l.reason == "abandoned");
        }
        if l.reason == "abandoned" {
            self.count(w.queue, "abandoned");
        }
        self.switch.publish(
            "queue.abandoned",
            json!({
                "call_id": w.call_id,
                "queue": self.router.queue_name(w.queue),
                "reason": l.reason,
                "wait_s": w.joined.elapsed().as_secs(),
            }),
        );
    }
}

impl Handler<OfferResult> for Acd {
    type Result = ();

    fn handle(&mut self, r: OfferResult, ctx: &mut Context<Self>) {
        let Some(a) = self.router.agent_ix(&r.agent) else {
            return;
        };
        let now = Instant::now();
        match r.outcome {
            OfferOutcome::Answered => {
                let d = self.router.answered(r.caller, a);
                self.apply(d, ctx);
                if let Some(w) = self.callers.remove(&r.caller) {
                    if w.callback.is_some() {
                        // The agent took the callback: it is done.
                        self.switch
                            .records
                            .write_later(vec![crate::store::Op::Delete {
                                cf: crate::store::cf::CALLBACKS,
                                key: Self::callback_key(r.caller),
                            }]);
                    }
                    let waited = now.saturating_duration_since(w.joined);
                    let sl = self.queue_cfg(w.queue).map_or(20, |q| q.service_level_secs);
                    if let Some(f) = self.figures.get_mut(w.queue) {
                        f.answered += 1;
                        f.answered_wait_ms += waited.as_millis() as u64;
                        f.answered_in_sl += u64::from(waited <= Duration::from_secs(sl.into()));
                    }
                    self.count(w.queue, "answered");
                    self.switch.publish(
                        "queue.answered",
                        json!({
                            "call_id": w.call_id,
                            "queue": self.router.queue_name(w.queue),
                            "agent": r.agent,
                            "wait_ms": waited.as_millis() as u64,
                        }),
                    );
                }
                self.publish_state(a);
            }
            OfferOutcome::Released => {
                let d = self.router.released(r.caller, a, now);
                self.publish_state(a);
                self.apply(d, ctx);
            }
            OfferOutcome::Missed => {
                tracing::info!(agent = %r.agent, caller = r.caller, "offer missed");
                let d = self.router.missed(r.caller, a, now);
                self.publish_state(a);
                self.apply(d, ctx);
            }
        }
    }
}

impl Handler<RequestCallback> for Acd {
    type Result = Result<(), String>;

    fn handle(&mut self, r: RequestCallback, _: &mut Context<Self>) -> Self::Result {
        let w = self.callers.get_mut(&r.caller).ok_or("not waiting")?;
        if self.router.position(r.caller).is_none() {
            return Err("an agent is being offered the call".into());
        }
        let queue = self.router.queue_name(w.queue).to_owned();
        let trunk = self
            .config
            .queues
            .iter()
            .find(|q| q.name == queue)
            .and_then(|q| q.callback_trunk.clone());
        w.offer = None;
        w.cancel = None;
        w.overflow = None;
        w.callback = Some((r.number.clone(), trunk.clone()));
        let joined_ms =
            crate::context::unix_ms().saturating_sub(w.joined.elapsed().as_millis() as u64);
        let value = json!({
            "queue": queue,
            "number": r.number,
            "trunk": trunk,
            "joined_ms": joined_ms,
            "call_id": w.call_id,
            "priority": r.spec.priority,
            "vip": r.spec.vip,
            "skills": r.spec.skills,
        });
        self.switch.records.write_later(vec![crate::store::Op::Put {
            cf: crate::store::cf::CALLBACKS,
            key: Self::callback_key(r.caller),
            value: value.to_string().into_bytes(),
        }]);
        tracing::info!(number = %r.number, %queue, "callback requested");
        self.switch.publish("queue.callback", value);
        Ok(())
    }
}

impl Handler<Position> for Acd {
    type Result = Option<(usize, u64)>;

    fn handle(&mut self, Position(caller): Position, _: &mut Context<Self>) -> Self::Result {
        let pos = self.router.position(caller)?;
        let q = self.callers.get(&caller)?.queue;
        // Average handle time (3 minutes until calls have been handled),
        // shared among the agents logged in.
        let f = self.figures.get(q).copied().unwrap_or_default();
        let aht_ms = f.handled_ms.checked_div(f.handled).unwrap_or(180_000);
        let agents = self.router.logged_in(q).max(1) as u64;
        Some((pos, pos as u64 * aht_ms / agents / 1000))
    }
}

impl Handler<CallEnded> for Acd {
    type Result = ();

    fn handle(&mut self, e: CallEnded, ctx: &mut Context<Self>) {
        if let Some(f) = self
            .router
            .queue_ix(&e.queue)
            .and_then(|q| self.figures.get_mut(q))
        {
            f.handled += 1;
            f.handled_ms += e.talk_ms;
        }
        let Some(a) = self.router.agent_ix(&e.agent) else {
            return;
        };
        let wrap = self
            .agent_cfg(a)
            .and_then(|c| c.wrap_up_secs)
            .or_else(|| {
                self.config
                    .queues
                    .iter()
                    .find(|q| q.name == e.queue)
                    .map(|q| q.wrap_up_secs)
            })
            .unwrap_or(0);
        let d = self
            .router
            .call_ended(a, Duration::from_secs(wrap.into()), Instant::now());
        self.publish_state(a);
        self.apply(d, ctx);
    }
}
