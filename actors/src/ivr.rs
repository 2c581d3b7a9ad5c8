//! The IVR runner: one caller's walk through a flow ([`config::flow`]).
//!
//! Sans-IO: digits, speech results, "prompt done", "transfer failed" and
//! `now` go in; actions (play, stop, listen, record, transfer, hang up)
//! and a deadline come out. The call actor does the I/O. The runner holds
//! the config it started with, so a reload never changes a flow under a
//! caller who is in it.

use config::flow::{Ask, Collect, Flow, Node, PromptPart, Prompts};
use config::Config;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A piece of audio to play, resolved to text or a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// Spoken by the TTS engine in `voice`.
    Say {
        /// The text.
        text: String,
        /// The voice.
        voice: String,
    },
    /// A WAV file.
    File(PathBuf),
    /// Silence.
    Silence(u32),
    /// The beep before a message is recorded.
    Beep,
}

/// Where a transfer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTo {
    /// A local user.
    User(String),
    /// A number through the dialplan (as a local user dials it).
    Number(String),
    /// An ACD queue.
    Queue(String),
    /// A number sent to a trunk.
    Trunk {
        /// The trunk.
        trunk: String,
        /// The number.
        number: String,
    },
}

/// What the call actor should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Play these parts (one prompt); `id` comes back in [`Runner::played`].
    Play {
        /// Which play this is.
        id: u64,
        /// The audio, in order.
        parts: Vec<Part>,
    },
    /// Stop the prompt playing.
    StopPlaying,
    /// Start recognizing speech against these phrases.
    Listen {
        /// The grammar.
        phrases: Vec<String>,
    },
    /// Stop recognizing.
    StopListening,
    /// Start recording the caller's message.
    StartRecording,
    /// Stop it (the file is kept).
    StopRecording,
    /// Send the caller on; the answer is [`Runner::transfer_failed`] or the call leaves the flow.
    Transfer {
        /// Where.
        to: TransferTo,
        /// Ring for at most this long.
        timeout: Option<Duration>,
    },
    /// End the call.
    Hangup {
        /// For the CDR.
        reason: String,
    },
}

/// What the runner waits for.
#[derive(Debug, Clone, PartialEq)]
enum Wait {
    /// Not started, or left the flow.
    Idle,
    /// A play node's prompt; then `next`.
    Playing,
    /// A menu/speech/collect prompt is playing (input may barge in).
    Prompting,
    /// Waiting for input until the deadline.
    Input,
    /// Speech has started: waiting for its result.
    Hearing,
    /// A transfer/record/hang-up node's prompt; then its action.
    Announcing,
    /// Recording a message.
    Recording {
        /// Hard stop.
        until: Instant,
        /// Stop on silence after speech.
        quiet_until: Option<Instant>,
    },
    /// A transfer is under way.
    Transferring,
    /// The call left the flow (transferred or hung up).
    Done,
}

/// One step of a caller's path, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// The node.
    pub node: String,
    /// What the caller did there: a digit, digits, a phrase, "timeout", "invalid", ...
    pub input: Option<String>,
}

impl std::fmt::Display for Visit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.input {
            Some(i) => write!(f, "{}({i})", self.node),
            None => f.write_str(&self.node),
        }
    }
}

/// Most digits kept from type-ahead (pressed before a menu asks).
const TYPEAHEAD_MAX: usize = 32;
/// How long a started utterance may take before its result.
const UTTERANCE_MAX: Duration = Duration::from_secs(15);

/// A caller in a flow.
pub struct Runner {
    cfg: Arc<Config>,
    flow_name: String,
    node: String,
    vars: BTreeMap<String, String>,
    wait: Wait,
    deadline: Option<Instant>,
    attempts: u32,
    steps: u32,
    typeahead: String,
    /// Digits of a collect node so far.
    collected: String,
    listening: bool,
    play_id: u64,
    path: Vec<Visit>,
    outcome: Option<String>,
    wall: WallClock,
}

impl Runner {
    /// A caller about to enter flow `name` of `cfg`, with variables set
    /// (`caller`, `dialed`).
    pub fn new(
        cfg: Arc<Config>,
        name: &str,
        vars: BTreeMap<String, String>,
        wall: WallClock,
    ) -> Option<Runner> {
        let start = cfg.flows.get(name)?.start.clone();
        Some(Runner {
            cfg,
            flow_name: name.to_owned(),
            node: start,
            vars,
            wait: Wait::Idle,
            deadline: None,
            attempts: 0,
            steps: 0,
            typeahead: String::new(),
            collected: String::new(),
            listening: false,
            play_id: 0,
            path: Vec::new(),
            outcome: None,
            wall,
        })
    }

    fn flow(&self) -> &Flow {
        &self.cfg.flows[&self.flow_name]
    }

    fn node(&self) -> &Node {
        &self.flow().nodes[&self.node]
    }

    /// The flow's name.
    pub fn flow_name(&self) -> &str {
        &self.flow_name
    }

    /// When [`Runner::tick`] is due.
    pub fn deadline(&self) -> Option<Instant> {
        match self.wait {
            Wait::Recording { until, quiet_until } => {
                Some(quiet_until.map_or(until, |q| q.min(until)))
            }
            _ => self.deadline,
        }
    }

    /// The caller's path so far.
    pub fn path(&self) -> &[Visit] {
        &self.path
    }

    /// How the flow ended ("transfer:user:1001", "hangup", ...), once it has.
    pub fn outcome(&self) -> Option<&str> {
        self.outcome.as_deref()
    }

    /// The variables.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Whether the caller has left the flow.
    pub fn done(&self) -> bool {
        self.wait == Wait::Done
    }

    /// Enters the start node.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let start = self.node.clone();
        self.enter(&start, now, &mut out);
        out
    }

    fn note(&mut self, input: impl Into<String>) {
        if let Some(v) = self.path.last_mut() {
            let input = input.into();
            v.input = Some(match v.input.take() {
                Some(prev) => format!("{prev},{input}"),
                None => input,
            });
        }
    }

    fn play(&mut self, prompts: &[&Prompts], beep: bool, out: &mut Vec<Action>) {
        self.play_id += 1;
        let mut parts: Vec<Part> = prompts.iter().flat_map(|p| self.resolve(p)).collect();
        if beep {
            parts.push(Part::Beep);
        }
        out.push(Action::Play {
            id: self.play_id,
            parts,
        });
    }

    fn resolve(&self, prompts: &Prompts) -> Vec<Part> {
        let flow = self.flow();
        let voice = flow.voice.as_deref().unwrap_or(&self.cfg.ivr.voice);
        let vars = |k: &str| self.vars.get(k).cloned();
        prompts
            .0
            .iter()
            .map(|p| match p {
                PromptPart::Say { say, voice: v } => Part::Say {
                    text: config::flow::substitute(say, &vars),
                    voice: v.clone().unwrap_or_else(|| voice.to_owned()),
                },
                PromptPart::Digits { digits } => {
                    let d = config::flow::substitute(digits, &vars);
                    let spaced: Vec<String> = d
                        .chars()
                        .map(|c| match c {
                            '*' => "star".to_owned(),
                            '#' => "pound".to_owned(),
                            c => c.to_string(),
                        })
                        .collect();
                    Part::Say {
                        text: spaced.join(" "),
                        voice: voice.to_owned(),
                    }
                }
                PromptPart::File { file } => Part::File(self.cfg.ivr.prompts_dir.join(file)),
                PromptPart::Silence { silence_ms } => Part::Silence(*silence_ms),
            })
            .collect()
    }

    fn stop_listening(&mut self, out: &mut Vec<Action>) {
        if std::mem::take(&mut self.listening) {
            out.push(Action::StopListening);
        }
    }

    /// Runs nodes from `name` until one waits for something.
    fn enter(&mut self, name: &str, now: Instant, out: &mut Vec<Action>) {
        let mut name = name.to_owned();
        loop {
            self.steps += 1;
            if self.steps > self.cfg.ivr.max_steps {
                tracing::warn!(flow = %self.flow_name, node = %name, "IVR step limit reached");
                return self.leave("hangup:step limit", "ivr step limit", out);
            }
            self.node = name.clone();
            self.path.push(Visit {
                node: name.clone(),
                input: None,
            });
            self.deadline = None;
            self.attempts = 0;
            let node = self.node().clone();
            match node {
                Node::Set(s) => {
                    for (k, v) in &s.vars {
                        let value =
                            config::flow::substitute(v, &|k: &str| self.vars.get(k).cloned());
                        self.vars.insert(k.clone(), value);
                    }
                    name = s.next.clone();
                }
                Node::Branch(b) => {
                    name = if let Some(s) = &b.schedule {
                        let open = self
                            .cfg
                            .schedules
                            .iter()
                            .find(|x| x.name == *s)
                            .and_then(|x| x.compile().ok())
                            .is_none_or(|c| c.is_open((self.wall)()));
                        self.note(if open { "open" } else { "closed" });
                        if open {
                            b.open.clone()
                        } else {
                            b.closed.clone()
                        }
                        .unwrap_or_default()
                    } else {
                        let v = b.var.as_ref().and_then(|v| self.vars.get(v));
                        let to = v.and_then(|v| b.cases.get(v)).or(b.default.as_ref());
                        to.cloned().unwrap_or_default()
                    };
                }
                Node::Play(p) => {
                    self.play(&[&p.prompt], false, out);
                    self.wait = Wait::Playing;
                    return;
                }
                Node::Menu(a) | Node::Speech(a) => return self.ask(&a, None, now, out),
                Node::Collect(c) => {
                    self.collected.clear();
                    return self.collect_prompt(&c, None, now, out);
                }
                Node::Transfer(t) => {
                    match &t.prompt {
                        Some(p) => {
                            self.play(&[p], false, out);
                            self.wait = Wait::Announcing;
                        }
                        None => self.announced(now, out),
                    }
                    return;
                }
                Node::Record(r) => {
                    match &r.prompt {
                        Some(p) => self.play(&[p], r.beep, out),
                        None if r.beep => self.play(&[], true, out),
                        None => return self.announced(now, out),
                    }
                    self.wait = Wait::Announcing;
                    return;
                }
                Node::Hangup(h) => {
                    match &h.prompt {
                        Some(p) => {
                            self.play(&[p], false, out);
                            self.wait = Wait::Announcing;
                        }
                        None => self.announced(now, out),
                    }
                    return;
                }
            }
        }
    }

    /// A menu or speech node: take type-ahead, else prompt (after `lead`, an
    /// invalid/timeout prompt on a retry).
    fn ask(&mut self, a: &Ask, lead: Option<&Prompts>, now: Instant, out: &mut Vec<Action>) {
        if lead.is_none() && self.attempts == 0 {
            if let Some(d) = self.typeahead.chars().next() {
                self.typeahead.remove(0);
                return self.choose_digit(a, d, now, out);
            }
        }
        self.typeahead.clear();
        if !a.phrases.is_empty() && !self.listening {
            self.listening = true;
            out.push(Action::Listen {
                phrases: a.phrases.keys().cloned().collect(),
            });
        }
        let prompts: Vec<&Prompts> = lead.into_iter().chain(a.prompt.as_ref()).collect();
        if prompts.is_empty() {
            self.wait = Wait::Input;
            self.deadline = Some(now + Duration::from_secs(a.timeout_secs.into()));
        } else {
            self.play(&prompts, false, out);
            self.wait = Wait::Prompting;
            self.deadline = None;
        }
    }

    fn collect_prompt(
        &mut self,
        c: &Collect,
        lead: Option<&Prompts>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if lead.is_none() && self.attempts == 0 && !self.typeahead.is_empty() {
            let typed = std::mem::take(&mut self.typeahead);
            self.wait = Wait::Input;
            for d in typed.chars() {
                self.collect_digit(c, d, now, out);
                if self.wait != Wait::Input {
                    return;
                }
            }
            return;
        }
        self.typeahead.clear();
        let prompts: Vec<&Prompts> = lead.into_iter().chain(c.prompt.as_ref()).collect();
        if prompts.is_empty() {
            self.wait = Wait::Input;
            self.deadline = Some(now + Duration::from_secs(c.timeout_secs.into()));
        } else {
            self.play(&prompts, false, out);
            self.wait = Wait::Prompting;
            self.deadline = None;
        }
    }

    /// The prompt of a transfer/record/hang-up node is over: act.
    fn announced(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.node().clone() {
            Node::Transfer(t) => {
                let to = match (&t.user, &t.number, &t.trunk) {
                    _ if t.queue.is_some() => {
                        TransferTo::Queue(t.queue.clone().unwrap_or_default())
                    }
                    (Some(u), _, _) => TransferTo::User(u.clone()),
                    (None, Some(n), Some(tr)) => TransferTo::Trunk {
                        trunk: tr.clone(),
                        number: n.clone(),
                    },
                    (None, Some(n), None) => TransferTo::Number(n.clone()),
                    _ => return self.leave("hangup:bad transfer", "ivr transfer", out),
                };
                self.wait = Wait::Transferring;
                out.push(Action::Transfer {
                    to,
                    timeout: t.timeout_secs.map(|s| Duration::from_secs(s.into())),
                });
            }
            Node::Record(r) => {
                out.push(Action::StartRecording);
                self.wait = Wait::Recording {
                    until: now + Duration::from_secs(r.max_secs.into()),
                    quiet_until: None,
                };
            }
            Node::Hangup(h) => {
                let reason = h.reason.unwrap_or_else(|| "ivr hangup".into());
                self.leave(&format!("hangup:{}", self.node), &reason, out);
            }
            _ => {}
        }
    }

    fn leave(&mut self, outcome: &str, reason: &str, out: &mut Vec<Action>) {
        self.stop_listening(out);
        self.outcome = Some(outcome.to_owned());
        self.wait = Wait::Done;
        self.deadline = None;
        out.push(Action::Hangup {
            reason: reason.to_owned(),
        });
    }

    /// Prompt `id` has finished playing.
    pub fn played(&mut self, id: u64, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if id != self.play_id {
            return out;
        }
        match self.wait {
            Wait::Playing => {
                if let Node::Play(p) = self.node().clone() {
                    self.enter(&p.next, now, &mut out);
                }
            }
            Wait::Prompting => {
                self.wait = Wait::Input;
                let secs = match self.node() {
                    Node::Menu(a) | Node::Speech(a) => a.timeout_secs,
                    Node::Collect(c) if !self.collected.is_empty() => c.inter_digit_secs,
                    Node::Collect(c) => c.timeout_secs,
                    _ => 5,
                };
                self.deadline = Some(now + Duration::from_secs(secs.into()));
            }
            Wait::Announcing => self.announced(now, &mut out),
            _ => {}
        }
        out
    }

    /// A DTMF digit from the caller.
    pub fn digit(&mut self, d: char, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match (self.wait.clone(), self.node().clone()) {
            (Wait::Playing, Node::Play(p)) => {
                if self.typeahead.len() < TYPEAHEAD_MAX {
                    self.typeahead.push(d);
                }
                if p.barge_in {
                    self.note(format!("barge-in {d}"));
                    out.push(Action::StopPlaying);
                    self.enter(&p.next, now, &mut out);
                }
            }
            (Wait::Prompting, Node::Menu(a) | Node::Speech(a)) if a.barge_in => {
                out.push(Action::StopPlaying);
                self.choose_digit(&a, d, now, &mut out);
            }
            (Wait::Input | Wait::Hearing, Node::Menu(a) | Node::Speech(a)) => {
                self.choose_digit(&a, d, now, &mut out)
            }
            (Wait::Prompting, Node::Collect(c)) if c.barge_in => {
                out.push(Action::StopPlaying);
                self.wait = Wait::Input;
                self.collect_digit(&c, d, now, &mut out);
            }
            (Wait::Input, Node::Collect(c)) => self.collect_digit(&c, d, now, &mut out),
            (Wait::Recording { .. }, Node::Record(r)) if r.terminator.starts_with(d) => {
                self.note(format!("ended by {d}"));
                self.recorded(&r, now, &mut out);
            }
            (Wait::Announcing | Wait::Playing, _) if self.typeahead.len() < TYPEAHEAD_MAX => {
                self.typeahead.push(d);
            }
            _ => {}
        }
        out
    }

    fn choose_digit(&mut self, a: &Ask, d: char, now: Instant, out: &mut Vec<Action>) {
        let key = d.to_string();
        match a.options.get(&key) {
            Some(next) => {
                self.note(key.clone());
                if let Some(v) = &a.var {
                    self.vars.insert(v.clone(), key);
                }
                self.stop_listening(out);
                let next = next.clone();
                self.enter(&next, now, out);
            }
            None => {
                self.note(format!("invalid {d}"));
                self.retry(true, now, out);
            }
        }
    }

    fn collect_digit(&mut self, c: &Collect, d: char, now: Instant, out: &mut Vec<Action>) {
        if c.terminator.starts_with(d) {
            return self.collect_done(c, now, out);
        }
        self.collected.push(d);
        if self.collected.len() >= c.max_digits {
            return self.collect_done(c, now, out);
        }
        self.deadline = Some(now + Duration::from_secs(c.inter_digit_secs.into()));
    }

    fn collect_done(&mut self, c: &Collect, now: Instant, out: &mut Vec<Action>) {
        let digits = std::mem::take(&mut self.collected);
        if digits.len() < c.min_digits {
            self.note(format!("invalid {digits}"));
            return self.retry(true, now, out);
        }
        self.note(digits.clone());
        self.vars.insert(c.var.clone(), digits);
        self.enter(&c.next, now, out);
    }

    /// An invalid choice (or none in time): the prompt again, or give up.
    fn retry(&mut self, invalid: bool, now: Instant, out: &mut Vec<Action>) {
        self.attempts += 1;
        self.deadline = None;
        match self.node().clone() {
            Node::Menu(a) | Node::Speech(a) => {
                if self.attempts > a.retries {
                    return self.fail(a.on_failure.as_deref(), now, out);
                }
                let lead = if invalid {
                    &a.invalid_prompt
                } else {
                    &a.timeout_prompt
                };
                if lead.is_none() && a.prompt.is_none() {
                    self.wait = Wait::Input;
                    self.deadline = Some(now + Duration::from_secs(a.timeout_secs.into()));
                    return;
                }
                self.ask(&a, lead.as_ref(), now, out);
            }
            Node::Collect(c) => {
                self.collected.clear();
                if self.attempts > c.retries {
                    return self.fail(c.on_failure.as_deref(), now, out);
                }
                let lead = if invalid {
                    c.invalid_prompt.as_ref()
                } else {
                    None
                };
                if lead.is_none() && c.prompt.is_none() {
                    self.wait = Wait::Input;
                    self.deadline = Some(now + Duration::from_secs(c.timeout_secs.into()));
                    return;
                }
                self.collect_prompt(&c, lead, now, out);
            }
            _ => {}
        }
    }

    fn fail(&mut self, on_failure: Option<&str>, now: Instant, out: &mut Vec<Action>) {
        self.stop_listening(out);
        self.note("gave up");
        match on_failure {
            Some(n) => {
                let n = n.to_owned();
                self.enter(&n, now, out)
            }
            None => self.leave(&format!("hangup:{}", self.node), "ivr: no valid input", out),
        }
    }

    /// The deadline passed.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.deadline().is_none_or(|d| now < d) {
            return out;
        }
        match (self.wait.clone(), self.node().clone()) {
            (Wait::Input | Wait::Hearing, Node::Menu(_) | Node::Speech(_)) => {
                self.note("timeout");
                self.retry(false, now, &mut out);
            }
            (Wait::Input, Node::Collect(c)) => {
                if self.collected.is_empty() {
                    self.note("timeout");
                    self.retry(false, now, &mut out);
                } else {
                    self.collect_done(&c, now, &mut out);
                }
            }
            (Wait::Recording { .. }, Node::Record(r)) => self.recorded(&r, now, &mut out),
            _ => self.deadline = None,
        }
        out
    }

    fn recorded(&mut self, r: &config::flow::Record, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::StopRecording);
        match &r.next {
            Some(n) => self.enter(n, now, out),
            None => self.leave(
                &format!("message:{}", self.node),
                "caller left a message",
                out,
            ),
        }
    }

    /// The recorded message's file (for `var`).
    pub fn message_saved(&mut self, path: &str) {
        if let Node::Record(r) = self.node().clone() {
            if let Some(v) = &r.var {
                self.vars.insert(v.clone(), path.to_owned());
            }
        }
    }

    /// The caller started speaking.
    pub fn speech_started(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match (&self.wait, self.node()) {
            (Wait::Prompting, Node::Menu(a) | Node::Speech(a)) if self.listening && a.barge_in => {
                out.push(Action::StopPlaying);
                self.wait = Wait::Hearing;
                self.deadline = Some(now + UTTERANCE_MAX);
            }
            (Wait::Input, Node::Menu(_) | Node::Speech(_)) if self.listening => {
                self.wait = Wait::Hearing;
                self.deadline = Some(now + UTTERANCE_MAX);
            }
            (Wait::Recording { until, .. }, _) => {
                self.wait = Wait::Recording {
                    until: *until,
                    quiet_until: None,
                };
            }
            _ => {}
        }
        out
    }

    /// The caller stopped speaking.
    pub fn speech_ended(&mut self, now: Instant) {
        if let (Wait::Recording { until, .. }, Node::Record(r)) = (&self.wait, self.node()) {
            if r.silence_secs > 0 {
                self.wait = Wait::Recording {
                    until: *until,
                    quiet_until: Some(now + Duration::from_secs(r.silence_secs.into())),
                };
            }
        }
    }

    /// The recognizer's final result for an utterance (None: nothing matched).
    pub fn recognized(&mut self, text: Option<(&str, f32)>, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let (Wait::Prompting | Wait::Input | Wait::Hearing, Node::Menu(a) | Node::Speech(a)) =
            (self.wait.clone(), self.node().clone())
        else {
            return out;
        };
        let phrase = text.and_then(|(t, conf)| {
            let t = t.trim().to_lowercase();
            (conf >= a.min_confidence.get())
                .then(|| a.phrases.keys().find(|p| p.to_lowercase() == t))
                .flatten()
                .cloned()
        });
        match phrase {
            Some(p) => {
                if self.wait == Wait::Prompting {
                    out.push(Action::StopPlaying);
                }
                self.note(format!("said {p}"));
                if let Some(v) = &a.var {
                    self.vars.insert(v.clone(), p.clone());
                }
                self.stop_listening(&mut out);
                let next = a.phrases[&p].clone();
                self.enter(&next, now, &mut out);
            }
            None if self.wait == Wait::Prompting => {}
            None => {
                self.note(format!("no match {:?}", text.map_or("", |t| t.0)));
                self.retry(true, now, &mut out);
            }
        }
        out
    }

    /// The transfer failed (busy, no answer, unreachable): `on_failure` or hang up.
    pub fn transfer_failed(&mut self, code: u16, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.wait != Wait::Transferring {
            return out;
        }
        self.note(format!("failed {code}"));
        if let Node::Transfer(t) = self.node().clone() {
            match &t.on_failure {
                Some(n) => self.enter(n, now, &mut out),
                None => self.leave(
                    &format!("hangup:{}", self.node),
                    "transfer failed",
                    &mut out,
                ),
            }
        }
        out
    }

    /// The caller went to a queue: they have left the flow.
    pub fn transferred_to_queue(&mut self) {
        self.wait = Wait::Transferring;
        self.transferred();
    }

    /// The transfer was answered: the caller has left the flow.
    pub fn transferred(&mut self) {
        if self.wait != Wait::Transferring {
            return;
        }
        let target = match self.node() {
            Node::Transfer(t) => match (&t.user, &t.number, &t.trunk) {
                _ if t.queue.is_some() => format!("queue:{}", t.queue.clone().unwrap_or_default()),
                (Some(u), _, _) => format!("user:{u}"),
                (_, Some(n), Some(tr)) => format!("trunk:{tr}:{n}"),
                (_, Some(n), _) => format!("number:{n}"),
                _ => String::new(),
            },
            _ => String::new(),
        };
        self.outcome = Some(format!("transfer:{target}"));
        self.wait = Wait::Done;
    }
}

/// The wall clock schedules are read on (the switch's, which tests may set).
pub type WallClock = Box<dyn Fn() -> jiff::Timestamp + Send>;

#[cfg(test)]
#[path = "ivr_tests.rs"]
mod tests;
