//! IVR call flows: a graph of nodes written in TOML, no code needed.
//!
//! A flow is either a file in `[ivr] flows_dir` (the file's stem names it;
//! its top level is the flow) or a `[flows.NAME]` table in the main file.
//!
//! ```toml
//! start = "menu"
//! [nodes.menu]
//! type = "menu"
//! prompt = "For sales press 1, for support press 2."
//! options = { "1" = "sales", "2" = "support" }
//! on_failure = "bye"
//! [nodes.sales]
//! type = "transfer"
//! user = "1001"
//! [nodes.bye]
//! type = "hangup"
//! prompt = "Goodbye."
//! ```
//!
//! Node types: `play`, `menu` (digits and optionally spoken phrases →
//! node, timeout and invalid-input retries), `collect` (digits into a
//! variable), `speech` (phrases → node), `set`, `branch` (on a variable or
//! a schedule), `transfer` (user, number through the dialplan, or trunk),
//! `record` (a voicemail-style message) and `hangup`. Prompt text may name
//! variables as `${name}` (`${caller}` and `${dialed}` are always set).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One call flow.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// For people reading the config.
    #[serde(default)]
    pub description: String,
    /// The first node.
    pub start: String,
    /// Text-to-speech voice (an espeak-ng voice such as "en-us"); default `[ivr] voice`.
    #[serde(default)]
    pub voice: Option<String>,
    /// The nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// The file it was read from (None: inline in the main file).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// A node of a flow; TOML `type = "..."` picks the kind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Node {
    /// Play prompts, then go on.
    Play(Play),
    /// Offer choices by keypad (and by voice with `speech`).
    Menu(Ask),
    /// Ask for spoken choices (and keypad `options` too).
    Speech(Ask),
    /// Collect digits into a variable.
    Collect(Collect),
    /// Set variables.
    Set(Set),
    /// Choose the next node by a variable or opening hours.
    Branch(Branch),
    /// Send the caller on: user, number or trunk.
    Transfer(Transfer),
    /// Record a message from the caller.
    Record(Record),
    /// End the call.
    Hangup(Hangup),
}

/// What a caller hears: TOML a string (spoken), `{ say = "..", voice = ".." }`,
/// `{ file = "x.wav" }`, `{ digits = "${account}" }` (spoken one by one),
/// `{ silence_ms = 500 }`, or a list of these.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawPrompts")]
pub struct Prompts(pub Vec<PromptPart>);

/// One piece of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum PromptPart {
    /// Text spoken by the TTS engine.
    Say {
        /// The text (`${var}` substituted).
        say: String,
        /// Voice for this piece.
        #[serde(default)]
        voice: Option<String>,
    },
    /// A WAV file, relative to `[ivr] prompts_dir`.
    File {
        /// The path.
        file: String,
    },
    /// Digits spoken one by one ("1 2 3 4").
    Digits {
        /// The digits (`${var}` substituted).
        digits: String,
    },
    /// A pause.
    Silence {
        /// Its length.
        silence_ms: u32,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPrompts {
    Text(String),
    One(PromptPart),
    Many(Vec<RawPart>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPart {
    Text(String),
    Part(PromptPart),
}

impl From<RawPrompts> for Prompts {
    fn from(raw: RawPrompts) -> Self {
        let part = |p: RawPart| match p {
            RawPart::Text(say) => PromptPart::Say { say, voice: None },
            RawPart::Part(p) => p,
        };
        Prompts(match raw {
            RawPrompts::Text(say) => vec![PromptPart::Say { say, voice: None }],
            RawPrompts::One(p) => vec![p],
            RawPrompts::Many(v) => v.into_iter().map(part).collect(),
        })
    }
}

fn yes() -> bool {
    true
}

/// `type = "play"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Play {
    /// What is played.
    pub prompt: Prompts,
    /// Where to go after it.
    pub next: String,
    /// A digit stops the prompt (and is kept for the next menu); default true.
    #[serde(default = "yes")]
    pub barge_in: bool,
}

/// `type = "menu"` or `type = "speech"`: the caller chooses by keypad or voice.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    /// The question (repeated on each retry).
    #[serde(default)]
    pub prompt: Option<Prompts>,
    /// Keypad choices: one DTMF digit → node.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Spoken choices: phrase → node (the recognizer's grammar).
    #[serde(default)]
    pub phrases: BTreeMap<String, String>,
    /// Seconds to wait for a choice after the prompt; default 5.
    #[serde(default = "five")]
    pub timeout_secs: u32,
    /// Further attempts after an invalid or missing choice; default 2.
    #[serde(default = "two")]
    pub retries: u32,
    /// Played after an invalid choice (then the prompt again).
    #[serde(default)]
    pub invalid_prompt: Option<Prompts>,
    /// Played when nothing was chosen in time (then the prompt again).
    #[serde(default)]
    pub timeout_prompt: Option<Prompts>,
    /// Where to go when the retries are used up; default: hang up.
    #[serde(default)]
    pub on_failure: Option<String>,
    /// A digit or speech stops the prompt; default true.
    #[serde(default = "yes")]
    pub barge_in: bool,
    /// Lowest recognizer confidence (0.0–1.0) accepted for a phrase; default 0.
    #[serde(default)]
    pub min_confidence: Confidence,
    /// Variable that receives the choice (the digit or the phrase).
    #[serde(default)]
    pub var: Option<String>,
}

/// `type = "collect"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    /// The question.
    #[serde(default)]
    pub prompt: Option<Prompts>,
    /// Variable that receives the digits.
    pub var: String,
    /// Fewest digits accepted; default 1.
    #[serde(default = "one")]
    pub min_digits: usize,
    /// Most digits; input ends at this many; default 16.
    #[serde(default = "sixteen")]
    pub max_digits: usize,
    /// Ends the input early (not stored); default "#"; "" for none.
    #[serde(default = "hash")]
    pub terminator: String,
    /// Seconds to wait for the first digit after the prompt; default 5.
    #[serde(default = "five")]
    pub timeout_secs: u32,
    /// Seconds between digits before the input counts as ended; default 3.
    #[serde(default = "three")]
    pub inter_digit_secs: u32,
    /// Further attempts after too few digits or none; default 2.
    #[serde(default = "two")]
    pub retries: u32,
    /// Played after an invalid input (then the prompt again).
    #[serde(default)]
    pub invalid_prompt: Option<Prompts>,
    /// Where to go with the digits.
    pub next: String,
    /// Where to go when the retries are used up; default: hang up.
    #[serde(default)]
    pub on_failure: Option<String>,
    /// A digit stops the prompt; default true.
    #[serde(default = "yes")]
    pub barge_in: bool,
}

/// `type = "set"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Set {
    /// Variable → value (`${var}` substituted).
    pub vars: BTreeMap<String, String>,
    /// Where to go next.
    pub next: String,
}

/// `type = "branch"`: either `var` with `cases` and `default`, or
/// `schedule` with `open` and `closed`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// The variable compared.
    #[serde(default)]
    pub var: Option<String>,
    /// Value → node.
    #[serde(default)]
    pub cases: BTreeMap<String, String>,
    /// Where any other value (or an unset variable) goes.
    #[serde(default)]
    pub default: Option<String>,
    /// A `[[schedules]]` name.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Where to go while the schedule is open.
    #[serde(default)]
    pub open: Option<String>,
    /// Where to go while it is closed.
    #[serde(default)]
    pub closed: Option<String>,
}

/// `type = "transfer"`: exactly one of `user`, `number` (through the
/// dialplan, as a local user would dial it) or `trunk` with `number`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// Played first.
    #[serde(default)]
    pub prompt: Option<Prompts>,
    /// A local user.
    #[serde(default)]
    pub user: Option<String>,
    /// A number (literal: caller input never chooses where a call goes).
    #[serde(default)]
    pub number: Option<String>,
    /// A trunk `number` is sent to directly.
    #[serde(default)]
    pub trunk: Option<String>,
    /// An ACD queue; the caller's `priority`, `vip` and `skills`
    /// ("spanish:3,english:2") variables go with them.
    #[serde(default)]
    pub queue: Option<String>,
    /// Seconds to ring; default `[calls] no_answer_timeout_secs`.
    #[serde(default)]
    pub timeout_secs: Option<u32>,
    /// Where to go if the transfer fails (busy, no answer, unreachable); default: hang up.
    #[serde(default)]
    pub on_failure: Option<String>,
}

/// `type = "record"`: a voicemail-style message after a beep.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Played before the beep.
    #[serde(default)]
    pub prompt: Option<Prompts>,
    /// Beep before recording; default true.
    #[serde(default = "yes")]
    pub beep: bool,
    /// Longest message; default 120.
    #[serde(default = "two_minutes")]
    pub max_secs: u32,
    /// Stop after this much silence once the caller has spoken; 0 never; default 5.
    #[serde(default = "five")]
    pub silence_secs: u32,
    /// A digit that ends the message; default "#".
    #[serde(default = "hash")]
    pub terminator: String,
    /// Variable that receives the file's path.
    #[serde(default)]
    pub var: Option<String>,
    /// Where to go after it; default: hang up.
    #[serde(default)]
    pub next: Option<String>,
}

/// `type = "hangup"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hangup {
    /// Played before hanging up.
    #[serde(default)]
    pub prompt: Option<Prompts>,
    /// Why, for the CDR; default "ivr hangup".
    #[serde(default)]
    pub reason: Option<String>,
}

/// A confidence 0.0–1.0, kept in thousandths (so configs compare exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "f64")]
pub struct Confidence(pub u16);

impl TryFrom<f64> for Confidence {
    type Error = String;

    fn try_from(v: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&v) {
            Ok(Confidence((v * 1000.0).round() as u16))
        } else {
            Err(format!("confidence {v} is out of range 0.0..=1.0"))
        }
    }
}

impl Confidence {
    /// As a fraction.
    pub fn get(self) -> f32 {
        f32::from(self.0) / 1000.0
    }
}

fn one() -> usize {
    1
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn five() -> u32 {
    5
}
fn sixteen() -> usize {
    16
}
fn two_minutes() -> u32 {
    120
}
fn hash() -> String {
    "#".into()
}

impl Node {
    /// Whether the node waits for the caller (a loop through one can end).
    pub fn waits_for_caller(&self) -> bool {
        matches!(
            self,
            Node::Menu(_) | Node::Speech(_) | Node::Collect(_) | Node::Record(_)
        )
    }

    /// Whether the call leaves the flow here (or may: a transfer).
    pub fn is_exit(&self) -> bool {
        match self {
            Node::Transfer(_) | Node::Hangup(_) => true,
            Node::Record(r) => r.next.is_none(),
            Node::Menu(a) | Node::Speech(a) => a.on_failure.is_none(),
            Node::Collect(c) => c.on_failure.is_none(),
            _ => false,
        }
    }

    /// The nodes it can go to, with the key naming each (for errors).
    pub fn edges(&self) -> Vec<(String, &str)> {
        fn map<'a>(out: &mut Vec<(String, &'a str)>, field: &str, m: &'a BTreeMap<String, String>) {
            for (k, v) in m {
                out.push((format!("{field}.{k}"), v.as_str()));
            }
        }
        let mut out: Vec<(String, &str)> = Vec::new();
        match self {
            Node::Play(p) => return vec![("next".into(), p.next.as_str())],
            Node::Menu(a) | Node::Speech(a) => {
                map(&mut out, "options", &a.options);
                map(&mut out, "phrases", &a.phrases);
                if let Some(f) = &a.on_failure {
                    out.push(("on_failure".into(), f));
                }
            }
            Node::Collect(c) => {
                out.push(("next".into(), &c.next));
                if let Some(f) = &c.on_failure {
                    out.push(("on_failure".into(), f));
                }
            }
            Node::Set(s) => out.push(("next".into(), &s.next)),
            Node::Branch(b) => {
                map(&mut out, "cases", &b.cases);
                for (k, v) in [
                    ("default", &b.default),
                    ("open", &b.open),
                    ("closed", &b.closed),
                ] {
                    if let Some(v) = v {
                        out.push((k.into(), v));
                    }
                }
            }
            Node::Transfer(t) => {
                if let Some(f) = &t.on_failure {
                    out.push(("on_failure".into(), f));
                }
            }
            Node::Record(r) => {
                if let Some(n) = &r.next {
                    out.push(("next".into(), n));
                }
            }
            Node::Hangup(_) => {}
        }
        out
    }

    /// Every prompt of the node, with its key.
    pub fn prompts(&self) -> Vec<(&'static str, &Prompts)> {
        fn add<'a>(
            out: &mut Vec<(&'static str, &'a Prompts)>,
            k: &'static str,
            p: &'a Option<Prompts>,
        ) {
            if let Some(p) = p {
                out.push((k, p));
            }
        }
        let mut out = Vec::new();
        match self {
            Node::Play(p) => out.push(("prompt", &p.prompt)),
            Node::Menu(a) | Node::Speech(a) => {
                add(&mut out, "prompt", &a.prompt);
                add(&mut out, "invalid_prompt", &a.invalid_prompt);
                add(&mut out, "timeout_prompt", &a.timeout_prompt);
            }
            Node::Collect(c) => {
                add(&mut out, "prompt", &c.prompt);
                add(&mut out, "invalid_prompt", &c.invalid_prompt);
            }
            Node::Transfer(t) => add(&mut out, "prompt", &t.prompt),
            Node::Record(r) => add(&mut out, "prompt", &r.prompt),
            Node::Hangup(h) => add(&mut out, "prompt", &h.prompt),
            Node::Set(_) | Node::Branch(_) => {}
        }
        out
    }
}

/// What is wrong with a flow: the key path inside it and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowProblem {
    /// Key path inside the flow, e.g. `nodes.menu.options.3`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> FlowProblem {
    FlowProblem {
        key: key.into(),
        message: message.into(),
    }
}

/// What a flow may refer to outside itself.
pub struct FlowContext<'a> {
    /// Local users.
    pub users: &'a dyn Fn(&str) -> bool,
    /// Trunks with an outbound section (Err: why not).
    pub trunk: &'a dyn Fn(&str) -> Result<(), String>,
    /// Schedules.
    pub schedule: &'a dyn Fn(&str) -> bool,
    /// ACD queues.
    pub queue: &'a dyn Fn(&str) -> bool,
    /// Where WAV prompts are.
    pub prompts_dir: &'a Path,
}

impl Flow {
    /// Checks the flow: every node named exists, values are in range, WAV
    /// files exist, users/trunks/schedules exist, and no loop lacks an exit.
    pub fn check(&self, cx: &FlowContext<'_>) -> Result<(), FlowProblem> {
        if !self.nodes.contains_key(&self.start) {
            return Err(problem("start", format!("unknown node {:?}", self.start)));
        }
        for (name, node) in &self.nodes {
            let at = |k: &str| format!("nodes.{name}.{k}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                return Err(problem(
                    format!("nodes.{name}"),
                    "node names are letters, digits, '-' and '_'",
                ));
            }
            for (key, to) in node.edges() {
                if !self.nodes.contains_key(to) {
                    return Err(problem(at(&key), format!("unknown node {to:?}")));
                }
            }
            for (key, prompts) in node.prompts() {
                check_prompts(prompts, cx.prompts_dir).map_err(|(i, m)| {
                    let k = if prompts.0.len() > 1 {
                        format!("{key}[{i}]")
                    } else {
                        key.into()
                    };
                    problem(at(&k), m)
                })?;
            }
            check_node(node, cx).map_err(|p| problem(at(&p.key), p.message))?;
        }
        self.check_loops()
    }

    /// A set of nodes the caller can get into and never out of: from some
    /// reachable node no exit (transfer, hang-up, give-up) is reachable, or
    /// a cycle never waits for the caller (it would spin forever).
    fn check_loops(&self) -> Result<(), FlowProblem> {
        let reachable = self.reachable_from(&self.start);
        // Nodes from which an exit is reachable: fixpoint over edges.
        let mut exits: HashSet<&str> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.is_exit())
            .map(|(k, _)| k.as_str())
            .collect();
        loop {
            let before = exits.len();
            for (name, node) in &self.nodes {
                if !exits.contains(name.as_str())
                    && node.edges().iter().any(|(_, to)| exits.contains(to))
                {
                    exits.insert(name);
                }
            }
            if exits.len() == before {
                break;
            }
        }
        for name in &reachable {
            if !exits.contains(name) {
                return Err(problem(
                    format!("nodes.{name}"),
                    format!(
                        "loop without exit: from {name:?} no path leads to a transfer, a hang-up or an on_failure"
                    ),
                ));
            }
        }
        // A cycle among nodes that never wait (play, set, branch) spins.
        let instant: Vec<&str> = reachable
            .iter()
            .copied()
            .filter(|n| !self.nodes[*n].waits_for_caller())
            .collect();
        for &n in &instant {
            let mut seen = HashSet::new();
            let mut stack = vec![n];
            while let Some(cur) = stack.pop() {
                for (_, to) in self.nodes[cur].edges() {
                    if self.nodes[to].waits_for_caller() {
                        continue;
                    }
                    if to == n {
                        return Err(problem(
                            format!("nodes.{n}"),
                            format!(
                                "loop without exit: {n:?} comes back to itself without waiting for the caller"
                            ),
                        ));
                    }
                    if seen.insert(to) {
                        stack.push(to);
                    }
                }
            }
        }
        Ok(())
    }

    fn reachable_from<'a>(&'a self, start: &'a str) -> Vec<&'a str> {
        let mut seen: HashSet<&str> = HashSet::from([start]);
        let mut order = vec![start];
        let mut i = 0;
        while i < order.len() {
            for (_, to) in self.nodes[order[i]].edges() {
                if seen.insert(to) {
                    order.push(to);
                }
            }
            i += 1;
        }
        order
    }
}

fn is_digit(s: &str) -> bool {
    s.len() == 1 && "0123456789*#ABCD".contains(s)
}

fn is_var(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_node(node: &Node, cx: &FlowContext<'_>) -> Result<(), FlowProblem> {
    match node {
        Node::Menu(a) | Node::Speech(a) => {
            for k in a.options.keys() {
                if !is_digit(k) {
                    return Err(problem(
                        format!("options.{k}"),
                        format!("{k:?} is not one DTMF digit (0-9, *, #, A-D)"),
                    ));
                }
            }
            for k in a.phrases.keys() {
                let ok = !k.trim().is_empty()
                    && k.len() <= 64
                    && k.chars()
                        .all(|c| c.is_alphabetic() || c == ' ' || c == '\'');
                if !ok {
                    return Err(problem(
                        format!("phrases.{k}"),
                        format!("{k:?}: a phrase is words (letters, spaces, apostrophes)"),
                    ));
                }
            }
            if a.options.is_empty() && a.phrases.is_empty() {
                return Err(problem(
                    "options",
                    "needs at least one of `options` and `phrases`",
                ));
            }
            if matches!(node, Node::Speech(_)) && a.phrases.is_empty() {
                return Err(problem("phrases", "a speech node needs `phrases`"));
            }
            if !(1..=60).contains(&a.timeout_secs) {
                return Err(problem(
                    "timeout_secs",
                    format!("{} is out of range 1..=60", a.timeout_secs),
                ));
            }
            if a.retries > 10 {
                return Err(problem(
                    "retries",
                    format!("{} is out of range 0..=10", a.retries),
                ));
            }
            if let Some(v) = &a.var {
                if !is_var(v) {
                    return Err(problem(
                        "var",
                        format!("{v:?}: variable names are letters, digits and '_'"),
                    ));
                }
            }
        }
        Node::Collect(c) => {
            if !is_var(&c.var) {
                return Err(problem(
                    "var",
                    format!("{:?}: variable names are letters, digits and '_'", c.var),
                ));
            }
            if c.min_digits == 0 || c.min_digits > c.max_digits || c.max_digits > 64 {
                return Err(problem(
                    "min_digits",
                    format!(
                        "need 1 <= min_digits ({}) <= max_digits ({}) <= 64",
                        c.min_digits, c.max_digits
                    ),
                ));
            }
            if !(c.terminator.is_empty() || is_digit(&c.terminator)) {
                return Err(problem(
                    "terminator",
                    format!("{:?} is not one DTMF digit", c.terminator),
                ));
            }
            if !(1..=60).contains(&c.timeout_secs) || !(1..=60).contains(&c.inter_digit_secs) {
                return Err(problem("timeout_secs", "timeouts are 1..=60 seconds"));
            }
            if c.retries > 10 {
                return Err(problem(
                    "retries",
                    format!("{} is out of range 0..=10", c.retries),
                ));
            }
        }
        Node::Set(s) => {
            for k in s.vars.keys() {
                if !is_var(k) {
                    return Err(problem(
                        format!("vars.{k}"),
                        format!("{k:?}: variable names are letters, digits and '_'"),
                    ));
                }
            }
        }
        Node::Branch(b) => match (&b.var, &b.schedule) {
            (Some(v), None) => {
                if !is_var(v) {
                    return Err(problem(
                        "var",
                        format!("{v:?}: variable names are letters, digits and '_'"),
                    ));
                }
                if b.default.is_none() {
                    return Err(problem("default", "a branch on a variable needs `default`"));
                }
                if b.open.is_some() || b.closed.is_some() {
                    return Err(problem(
                        "open",
                        "`open`/`closed` go with `schedule`, not `var`",
                    ));
                }
            }
            (None, Some(s)) => {
                if !(cx.schedule)(s) {
                    return Err(problem("schedule", format!("unknown schedule {s:?}")));
                }
                if b.open.is_none() || b.closed.is_none() {
                    return Err(problem(
                        "schedule",
                        "a branch on a schedule needs `open` and `closed`",
                    ));
                }
                if !b.cases.is_empty() || b.default.is_some() {
                    return Err(problem(
                        "cases",
                        "`cases`/`default` go with `var`, not `schedule`",
                    ));
                }
            }
            _ => {
                return Err(problem(
                    "var",
                    "a branch needs exactly one of `var` and `schedule`",
                ))
            }
        },
        Node::Transfer(t) => {
            let dialable = |n: &str| {
                !n.is_empty()
                    && n.len() <= 32
                    && n.chars().all(|c| c.is_ascii_digit() || "*#+".contains(c))
            };
            if let Some(q) = &t.queue {
                if t.user.is_some() || t.number.is_some() || t.trunk.is_some() {
                    return Err(problem(
                        "queue",
                        "a transfer needs exactly one of `user`, `number` and `queue`",
                    ));
                }
                if !(cx.queue)(q) {
                    return Err(problem("queue", format!("unknown queue {q:?}")));
                }
                return Ok(());
            }
            match (&t.user, &t.number, &t.trunk) {
                (Some(u), None, None) => {
                    if !(cx.users)(u) {
                        return Err(problem("user", format!("unknown user {u:?}")));
                    }
                }
                (None, Some(n), trunk) => {
                    if !dialable(n) {
                        return Err(problem(
                            "number",
                            format!("{n:?} is not a number (digits, *, #, +; variables are not allowed)"),
                        ));
                    }
                    if let Some(tr) = trunk {
                        (cx.trunk)(tr).map_err(|m| problem("trunk", m))?;
                    }
                }
                (None, None, Some(_)) => {
                    return Err(problem("trunk", "a transfer to a trunk needs `number`"))
                }
                _ => {
                    return Err(problem(
                        "user",
                        "a transfer needs exactly one of `user` and `number` (with `trunk`)",
                    ))
                }
            }
            if let Some(s) = t.timeout_secs {
                if !(1..=600).contains(&s) {
                    return Err(problem(
                        "timeout_secs",
                        format!("{s} is out of range 1..=600"),
                    ));
                }
            }
        }
        Node::Record(r) => {
            if !(1..=3600).contains(&r.max_secs) {
                return Err(problem(
                    "max_secs",
                    format!("{} is out of range 1..=3600", r.max_secs),
                ));
            }
            if !(r.terminator.is_empty() || is_digit(&r.terminator)) {
                return Err(problem(
                    "terminator",
                    format!("{:?} is not one DTMF digit", r.terminator),
                ));
            }
            if let Some(v) = &r.var {
                if !is_var(v) {
                    return Err(problem(
                        "var",
                        format!("{v:?}: variable names are letters, digits and '_'"),
                    ));
                }
            }
        }
        Node::Play(_) | Node::Hangup(_) => {}
    }
    Ok(())
}

/// Index of the bad part and why.
fn check_prompts(prompts: &Prompts, dir: &Path) -> Result<(), (usize, String)> {
    if prompts.0.is_empty() {
        return Err((0, "an empty prompt list".into()));
    }
    for (i, part) in prompts.0.iter().enumerate() {
        match part {
            PromptPart::Say { say, .. } if say.trim().is_empty() => {
                return Err((i, "nothing to say".into()));
            }
            PromptPart::Say { say, .. } if say.len() > 4000 => {
                return Err((i, "text longer than 4000 characters".into()));
            }
            PromptPart::File { file } => check_wav(&dir.join(file)).map_err(|m| (i, m))?,
            PromptPart::Silence { silence_ms } if *silence_ms > 60_000 => {
                return Err((i, "silence longer than 60 s".into()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The file exists and is a RIFF/WAVE file.
fn check_wav(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut head = [0u8; 12];
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("WAV file {}: {e}", path.display()))?;
    f.read_exact(&mut head)
        .ok()
        .filter(|_| &head[..4] == b"RIFF" && &head[8..] == b"WAVE")
        .ok_or_else(|| format!("{} is not a WAV file", path.display()))
}

/// Replaces `${name}` with the variable's value ("" when unset).
pub fn substitute(text: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                out.push_str(&vars(&after[..j]).unwrap_or_default());
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}
