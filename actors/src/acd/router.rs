//! The ACD's routing core: which waiting caller goes to which agent.
//!
//! Sans-IO and deterministic: events (an agent logs in, becomes free, a
//! caller joins, an offer is answered or missed) and `now` go in;
//! decisions (offer this caller to these agents, stop ringing those) and a
//! deadline come out. The actors around it ring phones, play music and
//! keep time.
//!
//! - A waiting caller's score is `priority * 60 s + waited * aging`
//!   (milliseconds): a priority level is worth a minute of waiting, and a
//!   long wait overtakes a higher priority. VIPs get extra levels. Within a
//!   queue callers are kept in a B-tree by a time-independent key
//!   (`priority * 60 s - joined * aging`), so the best one is the first.
//! - An agent qualifies for a caller when they have every required skill
//!   (the queue's and the caller's) at the minimum proficiency; every
//!   relaxation step the caller has waited past lowers each minimum by one
//!   (a minimum of 0 is no requirement).
//! - When a caller joins (or a relaxation step passes, or a retry is due),
//!   the queue's strategy picks among the available qualified agents; when
//!   an agent becomes free, they get the best-scoring caller they qualify
//!   for across their queues (ties: their first queue).

use config::acd::Strategy;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// An agent's index in the router.
pub type AgentIx = usize;
/// A queue's index in the router.
pub type QueueIx = usize;
/// A caller (the call actor's id for it).
pub type CallerId = u64;

/// A caller not offered again to an agent who missed them for this long
/// (unless the caller has nobody else).
const RETRY: Duration = Duration::from_secs(5);
/// Waiting callers looked at when an agent becomes free, per queue.
const SCAN: usize = 2000;

/// What an agent is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not taking calls.
    LoggedOut,
    /// Waiting for a call.
    Available,
    /// A caller is offered (their phone rings).
    Ringing(CallerId),
    /// Talking.
    OnCall(CallerId),
    /// After-call work until then.
    WrapUp(Instant),
    /// Paused, with the reason.
    Paused(String),
}

/// A decision for the actors to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ring these agents for this caller (several: ring-all).
    Offer {
        /// The caller.
        caller: CallerId,
        /// From this queue.
        queue: QueueIx,
        /// The agents to ring.
        agents: Vec<AgentIx>,
    },
    /// Stop ringing these agents for this caller (someone else answered).
    Cancel {
        /// The caller.
        caller: CallerId,
        /// Whose phones to stop.
        agents: Vec<AgentIx>,
    },
    /// The agent missed too many offers in a row and is paused.
    AutoPaused(AgentIx),
}

/// A queue's routing settings.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// Name.
    pub name: String,
    /// How agents are picked.
    pub strategy: Strategy,
    /// Required skills (names) and minimum proficiency.
    pub skills: Vec<(String, u8)>,
    /// Relaxation steps.
    pub relax_after: Vec<Duration>,
    /// Score per second waited.
    pub aging: u32,
    /// Extra priority levels for VIPs.
    pub vip_priority: u32,
}

impl QueueSpec {
    /// From a `[[queues]]` entry.
    pub fn from_config(q: &config::acd::Queue) -> QueueSpec {
        QueueSpec {
            name: q.name.clone(),
            strategy: q.strategy,
            skills: q.skills.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            relax_after: q
                .relax_after_secs
                .iter()
                .map(|s| Duration::from_secs((*s).into()))
                .collect(),
            aging: q.priority_aging,
            vip_priority: q.vip_priority,
        }
    }
}

/// A caller's routing attributes.
#[derive(Debug, Clone, Default)]
pub struct CallerSpec {
    /// Priority level (higher first).
    pub priority: u32,
    /// A VIP (the queue's `vip_priority` is added).
    pub vip: bool,
    /// Skills this caller needs on top of the queue's.
    pub skills: Vec<(String, u8)>,
}

type Skills = Vec<(u16, u8)>;

struct Agent {
    name: String,
    skills: Skills,
    queues: Vec<QueueIx>,
    status: Status,
    idle_since: Instant,
    calls: u32,
    missed: u32,
}

impl Agent {
    fn level(&self, skill: u16) -> u8 {
        self.skills
            .binary_search_by_key(&skill, |(s, _)| *s)
            .map_or(0, |i| self.skills[i].1)
    }
}

struct Queue {
    spec: QueueSpec,
    skills: Skills,
    members: Vec<AgentIx>,
    /// Waiting callers by (key descending, arrival).
    waiting: BTreeMap<(i64, u64), CallerId>,
    rr_next: usize,
}

struct Caller {
    queue: QueueIx,
    slot: (i64, u64),
    joined: Instant,
    skills: Skills,
    /// Agents ringing for this caller now.
    offered: Vec<AgentIx>,
    /// Agents who missed this caller, and when it may retry them.
    missed_by: Vec<AgentIx>,
    retry_at: Option<Instant>,
    /// Relaxation steps already tried.
    relax_tried: usize,
}

/// The routing state of every queue and agent.
pub struct Router {
    t0: Instant,
    skills: HashMap<String, u16>,
    agents: Vec<Agent>,
    queues: Vec<Queue>,
    callers: HashMap<CallerId, Caller>,
    seq: u64,
    rng: u64,
    auto_pause_after: u32,
}

impl Router {
    /// An empty router; `auto_pause_after` missed offers pause an agent (0 never).
    pub fn new(now: Instant, auto_pause_after: u32) -> Router {
        Router {
            t0: now,
            skills: HashMap::new(),
            agents: Vec::new(),
            queues: Vec::new(),
            callers: HashMap::new(),
            seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            auto_pause_after,
        }
    }

    /// Queues and agents of a config (agents logged out).
    pub fn from_config(cfg: &config::Config, now: Instant) -> Router {
        let mut r = Router::new(now, cfg.acd.auto_pause_after);
        for q in &cfg.queues {
            r.add_queue(QueueSpec::from_config(q));
        }
        for a in &cfg.agents {
            let queues: Vec<QueueIx> = a.queues.iter().filter_map(|q| r.queue_ix(q)).collect();
            let skills: Vec<(String, u8)> = a.skills.iter().map(|(k, v)| (k.clone(), *v)).collect();
            r.add_agent(&a.name, &skills, &queues, now);
        }
        r
    }

    fn skill_set(&mut self, skills: &[(String, u8)]) -> Skills {
        let mut out: Skills = skills
            .iter()
            .map(|(name, level)| {
                let n = self.skills.len() as u16;
                (*self.skills.entry(name.clone()).or_insert(n), *level)
            })
            .collect();
        out.sort_unstable();
        out.dedup_by_key(|(s, _)| *s);
        out
    }

    /// Adds a queue.
    pub fn add_queue(&mut self, spec: QueueSpec) -> QueueIx {
        let skills = self.skill_set(&spec.skills);
        self.queues.push(Queue {
            spec,
            skills,
            members: Vec::new(),
            waiting: BTreeMap::new(),
            rr_next: 0,
        });
        self.queues.len() - 1
    }

    /// Adds an agent (logged out) serving `queues` in that order.
    pub fn add_agent(
        &mut self,
        name: &str,
        skills: &[(String, u8)],
        queues: &[QueueIx],
        now: Instant,
    ) -> AgentIx {
        let skills = self.skill_set(skills);
        let ix = self.agents.len();
        for &q in queues {
            self.queues[q].members.push(ix);
        }
        self.agents.push(Agent {
            name: name.to_owned(),
            skills,
            queues: queues.to_vec(),
            status: Status::LoggedOut,
            idle_since: now,
            calls: 0,
            missed: 0,
        });
        ix
    }

    /// A queue by name.
    pub fn queue_ix(&self, name: &str) -> Option<QueueIx> {
        self.queues.iter().position(|q| q.spec.name == name)
    }

    /// An agent by name.
    pub fn agent_ix(&self, name: &str) -> Option<AgentIx> {
        self.agents.iter().position(|a| a.name == name)
    }

    /// How many agents.
    pub fn agents(&self) -> usize {
        self.agents.len()
    }

    /// How many queues.
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// A queue's name.
    pub fn queue_name(&self, q: QueueIx) -> &str {
        &self.queues[q].spec.name
    }

    /// Agents of a queue waiting for a call.
    pub fn available(&self, q: QueueIx) -> usize {
        self.queues[q]
            .members
            .iter()
            .filter(|&&a| self.agents[a].status == Status::Available)
            .count()
    }

    /// New settings for the queue of that name (a reload): the next
    /// decision uses them; callers keep their place.
    pub fn update_queue(&mut self, spec: QueueSpec) {
        let Some(q) = self.queue_ix(&spec.name) else {
            return;
        };
        let skills = self.skill_set(&spec.skills);
        let queue = &mut self.queues[q];
        queue.skills = skills;
        queue.spec = spec;
    }

    /// An agent's name.
    pub fn agent_name(&self, a: AgentIx) -> &str {
        &self.agents[a].name
    }

    /// An agent's status.
    pub fn status(&self, a: AgentIx) -> &Status {
        &self.agents[a].status
    }

    /// Calls an agent took since logging in.
    pub fn calls_taken(&self, a: AgentIx) -> u32 {
        self.agents[a].calls
    }

    /// Callers waiting (not ringing an agent) in a queue.
    pub fn waiting(&self, q: QueueIx) -> usize {
        self.queues[q].waiting.len()
    }

    /// Agents of a queue logged in (any status but logged out).
    pub fn logged_in(&self, q: QueueIx) -> usize {
        self.queues[q]
            .members
            .iter()
            .filter(|&&a| self.agents[a].status != Status::LoggedOut)
            .count()
    }

    fn ms(&self, t: Instant) -> i64 {
        t.saturating_duration_since(self.t0).as_millis() as i64
    }

    fn key(&self, q: QueueIx, priority: u32, vip: bool, joined: Instant) -> i64 {
        let spec = &self.queues[q].spec;
        let level = i64::from(priority) + if vip { i64::from(spec.vip_priority) } else { 0 };
        level * 60_000 - i64::from(spec.aging) * self.ms(joined)
    }

    /// A waiting caller's place in their queue (1 = next), if waiting.
    pub fn position(&self, caller: CallerId) -> Option<usize> {
        let c = self.callers.get(&caller)?;
        let slot = (-c.slot.0, c.slot.1);
        self.queues[c.queue]
            .waiting
            .keys()
            .position(|k| *k == slot)
            .map(|i| i + 1)
    }

    /// A waiting caller's score now (higher goes first).
    pub fn score(&self, caller: CallerId, now: Instant) -> Option<i64> {
        let c = self.callers.get(&caller)?;
        let aging = i64::from(self.queues[c.queue].spec.aging);
        Some(c.slot.0 + aging * self.ms(now))
    }

    /// Relaxation steps passed for a caller who joined at `joined`.
    fn steps(&self, q: QueueIx, joined: Instant, now: Instant) -> usize {
        let waited = now.saturating_duration_since(joined);
        self.queues[q]
            .spec
            .relax_after
            .iter()
            .take_while(|d| **d <= waited)
            .count()
    }

    fn qualifies(&self, a: AgentIx, c: &Caller, now: Instant) -> bool {
        let steps = self.steps(c.queue, c.joined, now) as i32;
        let agent = &self.agents[a];
        self.queues[c.queue]
            .skills
            .iter()
            .chain(&c.skills)
            .all(|&(s, min)| i32::from(agent.level(s)) >= i32::from(min) - steps)
    }

    /// Proficiency an agent brings to a caller's required skills.
    fn fit(&self, a: AgentIx, c: &Caller) -> u32 {
        let agent = &self.agents[a];
        let req: Vec<u16> = self.queues[c.queue]
            .skills
            .iter()
            .chain(&c.skills)
            .map(|(s, _)| *s)
            .collect();
        if req.is_empty() {
            agent.skills.iter().map(|(_, l)| u32::from(*l)).sum()
        } else {
            req.iter().map(|s| u32::from(agent.level(*s))).sum()
        }
    }

    // ---- agents -------------------------------------------------------

    /// The agent logs in: available now.
    pub fn login(&mut self, a: AgentIx, now: Instant) -> Vec<Decision> {
        if self.agents[a].status != Status::LoggedOut {
            return Vec::new();
        }
        let agent = &mut self.agents[a];
        agent.calls = 0;
        agent.missed = 0;
        self.make_available(a, now)
    }

    /// The agent logs out (a ringing offer is withdrawn: the caller waits again).
    pub fn logout(&mut self, a: AgentIx, now: Instant) -> Vec<Decision> {
        let out = self.withdraw(a, now);
        self.agents[a].status = Status::LoggedOut;
        out
    }

    /// The agent pauses (a ringing offer is withdrawn).
    pub fn pause(&mut self, a: AgentIx, reason: &str, now: Instant) -> Vec<Decision> {
        if self.agents[a].status == Status::LoggedOut {
            return Vec::new();
        }
        let out = self.withdraw(a, now);
        if !matches!(self.agents[a].status, Status::OnCall(_)) {
            self.agents[a].status = Status::Paused(reason.to_owned());
        }
        out
    }

    /// A paused agent resumes.
    pub fn resume(&mut self, a: AgentIx, now: Instant) -> Vec<Decision> {
        if !matches!(self.agents[a].status, Status::Paused(_)) {
            return Vec::new();
        }
        self.agents[a].missed = 0;
        self.make_available(a, now)
    }

    /// An agent who was ringing for a caller stops (logout, pause).
    fn withdraw(&mut self, a: AgentIx, now: Instant) -> Vec<Decision> {
        let Status::Ringing(c) = self.agents[a].status.clone() else {
            return Vec::new();
        };
        let mut out = vec![Decision::Cancel {
            caller: c,
            agents: vec![a],
        }];
        self.agents[a].status = Status::Available;
        out.extend(self.drop_offer(c, a, now));
        out
    }

    /// The agent's call ended: wrap-up for `wrap_up`, then available.
    pub fn call_ended(&mut self, a: AgentIx, wrap_up: Duration, now: Instant) -> Vec<Decision> {
        if !matches!(self.agents[a].status, Status::OnCall(_)) {
            return Vec::new();
        }
        if wrap_up.is_zero() {
            return self.make_available(a, now);
        }
        self.agents[a].status = Status::WrapUp(now + wrap_up);
        Vec::new()
    }

    fn make_available(&mut self, a: AgentIx, now: Instant) -> Vec<Decision> {
        let agent = &mut self.agents[a];
        agent.status = Status::Available;
        agent.idle_since = now;
        self.match_agent(a, now).into_iter().collect()
    }

    /// The best caller for a free agent, offered.
    fn match_agent(&mut self, a: AgentIx, now: Instant) -> Option<Decision> {
        let mut best: Option<(i64, CallerId)> = None;
        for &q in &self.agents[a].queues {
            let aging = i64::from(self.queues[q].spec.aging) * self.ms(now);
            for (&(neg_key, _), &id) in self.queues[q].waiting.iter().take(SCAN) {
                let score = -neg_key + aging;
                if best.is_some_and(|(s, _)| s >= score) {
                    break; // the rest of this queue scores lower
                }
                let c = &self.callers[&id];
                let shunned = c.missed_by.contains(&a) && c.retry_at.is_some_and(|t| now < t);
                if !shunned && self.qualifies(a, c, now) {
                    best = Some((score, id));
                    break;
                }
            }
        }
        let (_, id) = best?;
        let q = self.callers[&id].queue;
        Some(self.offer(id, q, vec![a]))
    }

    // ---- callers ------------------------------------------------------

    /// A caller joins queue `q`; they are offered at once if an agent is free.
    pub fn join(
        &mut self,
        id: CallerId,
        q: QueueIx,
        spec: &CallerSpec,
        now: Instant,
    ) -> Vec<Decision> {
        self.join_at(id, q, spec, now, now)
    }

    /// A caller who joined at `joined` (a callback restored after a
    /// restart keeps its place) is waiting again at `now`.
    pub fn join_at(
        &mut self,
        id: CallerId,
        q: QueueIx,
        spec: &CallerSpec,
        joined: Instant,
        now: Instant,
    ) -> Vec<Decision> {
        let skills = self.skill_set(&spec.skills);
        let key = self.key(q, spec.priority, spec.vip, joined);
        self.seq += 1;
        self.queues[q].waiting.insert((-key, self.seq), id);
        self.callers.insert(
            id,
            Caller {
                queue: q,
                slot: (key, self.seq),
                joined,
                skills,
                offered: Vec::new(),
                missed_by: Vec::new(),
                retry_at: None,
                relax_tried: 0,
            },
        );
        self.match_caller(id, now).into_iter().collect()
    }

    /// A caller leaves (hung up, overflowed, to be called back): agents
    /// ringing for them stop and look for another caller.
    pub fn leave(&mut self, id: CallerId, now: Instant) -> Vec<Decision> {
        let Some(c) = self.callers.remove(&id) else {
            return Vec::new();
        };
        self.queues[c.queue].waiting.remove(&(-c.slot.0, c.slot.1));
        let mut out = Vec::new();
        if !c.offered.is_empty() {
            for &a in &c.offered {
                if self.agents[a].status == Status::Ringing(id) {
                    self.agents[a].status = Status::Available;
                }
            }
            out.push(Decision::Cancel {
                caller: id,
                agents: c.offered.clone(),
            });
            for &a in &c.offered {
                if self.agents[a].status == Status::Available {
                    out.extend(self.match_agent(a, now));
                }
            }
        }
        out
    }

    /// An available qualified agent for a waiting caller, per the strategy.
    fn match_caller(&mut self, id: CallerId, now: Instant) -> Option<Decision> {
        let c = self.callers.get(&id)?;
        if !c.offered.is_empty() {
            return None;
        }
        let q = c.queue;
        let retrying = c.retry_at.is_some_and(|t| now < t);
        let mut cands: Vec<AgentIx> = self.queues[q]
            .members
            .iter()
            .copied()
            .filter(|&a| self.agents[a].status == Status::Available && self.qualifies(a, c, now))
            .collect();
        if retrying {
            cands.retain(|a| !c.missed_by.contains(a));
        }
        if cands.is_empty() {
            return None;
        }
        let idle = |a: &AgentIx| self.agents[*a].idle_since;
        let agents = match self.queues[q].spec.strategy {
            Strategy::LongestIdle => vec![*cands.iter().min_by_key(|a| (idle(a), **a))?],
            Strategy::FewestCalls => {
                vec![*cands
                    .iter()
                    .min_by_key(|a| (self.agents[**a].calls, idle(a), **a))?]
            }
            Strategy::Skills => {
                vec![*cands.iter().max_by_key(|a| {
                    (
                        self.fit(**a, c),
                        std::cmp::Reverse(idle(a)),
                        std::cmp::Reverse(**a),
                    )
                })?]
            }
            Strategy::RingAll => cands,
            Strategy::Random => {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                vec![cands[(self.rng % cands.len() as u64) as usize]]
            }
            Strategy::RoundRobin => {
                let members = &self.queues[q].members;
                let start = self.queues[q].rr_next % members.len().max(1);
                let pick = (0..members.len())
                    .map(|i| (start + i) % members.len())
                    .find(|&i| cands.contains(&members[i]))?;
                let agent = members[pick];
                self.queues[q].rr_next = pick + 1;
                vec![agent]
            }
        };
        Some(self.offer(id, q, agents))
    }

    fn offer(&mut self, id: CallerId, q: QueueIx, agents: Vec<AgentIx>) -> Decision {
        for &a in &agents {
            self.agents[a].status = Status::Ringing(id);
        }
        if let Some(c) = self.callers.get_mut(&id) {
            c.offered = agents.clone();
            self.queues[q].waiting.remove(&(-c.slot.0, c.slot.1));
        }
        Decision::Offer {
            caller: id,
            queue: q,
            agents,
        }
    }

    /// Agent `a` answered caller `id`: the others ringing for them stop.
    pub fn answered(&mut self, id: CallerId, a: AgentIx) -> Vec<Decision> {
        let Some(c) = self.callers.remove(&id) else {
            return Vec::new();
        };
        self.queues[c.queue].waiting.remove(&(-c.slot.0, c.slot.1));
        let agent = &mut self.agents[a];
        agent.status = Status::OnCall(id);
        agent.calls += 1;
        agent.missed = 0;
        let others: Vec<AgentIx> = c.offered.iter().copied().filter(|&o| o != a).collect();
        for &o in &others {
            if self.agents[o].status == Status::Ringing(id) {
                self.agents[o].status = Status::Available;
            }
        }
        if others.is_empty() {
            Vec::new()
        } else {
            vec![Decision::Cancel {
                caller: id,
                agents: others,
            }]
        }
    }

    /// Agent `a` did not take the offer of `id` (no answer, declined, phone
    /// unreachable): the agent is free again (or auto-paused after too many
    /// misses), the caller waits for someone else.
    pub fn missed(&mut self, id: CallerId, a: AgentIx, now: Instant) -> Vec<Decision> {
        if self.agents[a].status != Status::Ringing(id) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let agent = &mut self.agents[a];
        agent.missed += 1;
        if self.auto_pause_after > 0 && agent.missed >= self.auto_pause_after {
            agent.status = Status::Paused("missed offers".into());
            out.push(Decision::AutoPaused(a));
        } else {
            agent.status = Status::Available;
        }
        if let Some(c) = self.callers.get_mut(&id) {
            c.missed_by.push(a);
            c.retry_at = Some(now + RETRY);
        }
        out.extend(self.drop_offer(id, a, now));
        if self.agents[a].status == Status::Available {
            out.extend(self.match_agent(a, now));
        }
        out
    }

    /// Agent `a` could not be rung for `id` (the call was busy ringing
    /// another): free again, no miss counted.
    pub fn released(&mut self, id: CallerId, a: AgentIx, now: Instant) -> Vec<Decision> {
        if self.agents[a].status != Status::Ringing(id) {
            return Vec::new();
        }
        self.agents[a].status = Status::Available;
        let mut out = self.drop_offer(id, a, now);
        if self.agents[a].status == Status::Available {
            out.extend(self.match_agent(a, now));
        }
        out
    }

    /// Agent `a` no longer rings for `id`; if nobody does, the caller waits
    /// again and is offered to someone else if possible.
    fn drop_offer(&mut self, id: CallerId, a: AgentIx, now: Instant) -> Vec<Decision> {
        let Some(c) = self.callers.get_mut(&id) else {
            return Vec::new();
        };
        c.offered.retain(|&o| o != a);
        if !c.offered.is_empty() {
            return Vec::new();
        }
        let (q, slot) = (c.queue, c.slot);
        self.queues[q].waiting.insert((-slot.0, slot.1), id);
        self.match_caller(id, now).into_iter().collect()
    }

    // ---- time -----------------------------------------------------------

    /// When [`Router::tick`] has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        let wrap = self.agents.iter().filter_map(|a| match a.status {
            Status::WrapUp(t) => Some(t),
            _ => None,
        });
        let callers = self
            .callers
            .values()
            .filter(|c| c.offered.is_empty())
            .filter_map(|c| {
                let relax = self.queues[c.queue]
                    .spec
                    .relax_after
                    .get(c.relax_tried)
                    .map(|d| c.joined + *d);
                match (relax, c.retry_at) {
                    (Some(r), Some(t)) => Some(r.min(t)),
                    (r, t) => r.or(t),
                }
            });
        wrap.chain(callers).min()
    }

    /// Wrap-ups that ended, relaxation steps and retries that are due.
    pub fn tick(&mut self, now: Instant) -> Vec<Decision> {
        let mut out = Vec::new();
        for a in 0..self.agents.len() {
            if matches!(self.agents[a].status, Status::WrapUp(t) if t <= now) {
                out.extend(self.make_available(a, now));
            }
        }
        let due: Vec<CallerId> = self
            .callers
            .iter()
            .filter(|(_, c)| c.offered.is_empty())
            .filter(|(_, c)| {
                let steps = self.steps(c.queue, c.joined, now);
                steps > c.relax_tried || c.retry_at.is_some_and(|t| t <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let steps = self
                .callers
                .get(&id)
                .map(|c| self.steps(c.queue, c.joined, now));
            if let (Some(c), Some(steps)) = (self.callers.get_mut(&id), steps) {
                c.relax_tried = steps;
                if c.retry_at.is_some_and(|t| t <= now) {
                    c.retry_at = None;
                    c.missed_by.clear();
                }
            }
            out.extend(self.match_caller(id, now));
        }
        out
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
