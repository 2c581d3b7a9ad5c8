//! ACD configuration: `[acd]`, `[[queues]]` and `[[agents]]`.
//!
//! ```toml
//! [[queues]]
//! name = "sales"
//! strategy = "longest-idle"
//! skills = { spanish = 3 }        # required, with minimum proficiency 1-5
//! relax_after_secs = [30, 60]     # each step lowers every minimum by one
//!
//! [[agents]]
//! name = "alice"
//! users = ["1001"]                # the phones she answers on
//! skills = { english = 5, spanish = 4 }
//! queues = ["sales"]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[acd]`: settings for every queue and agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Acd {
    /// An agent who lets this many offers in a row go unanswered is paused
    /// (reason "missed offers"); 0 never. Default 3.
    pub auto_pause_after: u32,
    /// Agents logged in when the switch starts; default false (they log in).
    pub login_at_start: bool,
    /// Dialed from an agent's phone: log in; default "*11" ("" off).
    pub login_code: String,
    /// Log out; default "*12".
    pub logout_code: String,
    /// Pause, or resume when paused; default "*13".
    pub pause_code: String,
}

impl Default for Acd {
    fn default() -> Self {
        Acd {
            auto_pause_after: 3,
            login_at_start: false,
            login_code: "*11".into(),
            logout_code: "*12".into(),
            pause_code: "*13".into(),
        }
    }
}

/// How a queue picks among available agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The agent idle longest (since their last call ended or they became available).
    #[default]
    LongestIdle,
    /// The next agent after the one offered last, in member order.
    RoundRobin,
    /// Every available agent at once; the first to answer takes the call.
    RingAll,
    /// The agent who has taken the fewest calls since logging in.
    FewestCalls,
    /// Any available agent.
    Random,
    /// The agent with the most proficiency in the queue's (and caller's)
    /// skills; ties go to the longest idle.
    Skills,
}

/// What a queue plays to waiting callers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Music {
    /// `"ringback"` or `"none"`.
    Named(String),
    /// `{ file = "moh.wav" }`, relative to `[ivr] prompts_dir`, looped.
    File {
        /// The WAV.
        file: String,
    },
}

impl Default for Music {
    fn default() -> Self {
        Music::Named("ringback".into())
    }
}

/// `[[queues]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    /// Its name (route targets and flows name it).
    pub name: String,
    /// How agents are chosen; default longest-idle.
    #[serde(default)]
    pub strategy: Strategy,
    /// Skills an agent needs, with minimum proficiency (1-5).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Waiting times (s) at which every required minimum drops by one (a
    /// skill whose minimum reaches 0 is no longer required).
    #[serde(default)]
    pub relax_after_secs: Vec<u32>,
    /// Seconds an offered agent's phone rings before the next agent; default 15.
    #[serde(default = "fifteen")]
    pub ring_timeout_secs: u32,
    /// After-call work before the agent gets the next call; default 10.
    #[serde(default = "ten")]
    pub wrap_up_secs: u32,
    /// Longest wait before `overflow`; 0 none. Default 0.
    #[serde(default)]
    pub max_wait_secs: u32,
    /// Most callers waiting; a caller beyond it goes to `overflow`; 0 none.
    #[serde(default)]
    pub max_callers: u32,
    /// Where callers go on max wait/length or an empty queue
    /// (`{ queue = ".." }`, `{ user = ".." }`, `{ flow = ".." }`,
    /// `{ hangup = 486 }`, `"callback"`); default: hang up.
    #[serde(default)]
    pub overflow: Option<Overflow>,
    /// Answered within this many seconds counts for the service level; default 20.
    #[serde(default = "twenty")]
    pub service_level_secs: u32,
    /// What waiting callers hear; default ringback.
    #[serde(default)]
    pub music: Music,
    /// Seconds between position and estimated-wait announcements; 0 none. Default 60.
    #[serde(default = "sixty")]
    pub announce_secs: u32,
    /// A digit a waiting caller presses to be called back instead; "" off. Default "".
    #[serde(default)]
    pub callback_key: String,
    /// Callbacks are dialed through this trunk (else through the users'
    /// dialplan, as the agent would dial the caller's number).
    #[serde(default)]
    pub callback_trunk: Option<String>,
    /// Callers may join while no agent is logged in; default true.
    #[serde(default = "yes")]
    pub join_empty: bool,
    /// Waiting callers leave (to `overflow`) when the last agent logs out; default false.
    #[serde(default)]
    pub leave_when_empty: bool,
    /// Score a waiting caller gains per second (priority aging); default 1.
    /// A caller's score is `priority * 60 + seconds waited * priority_aging`:
    /// one priority level is worth a minute of waiting.
    #[serde(default = "one")]
    pub priority_aging: u32,
    /// Priority levels a VIP caller gets on top of theirs; default 50.
    #[serde(default = "fifty")]
    pub vip_priority: u32,
}

/// Where a queue sends callers it cannot keep.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// Another queue.
    Queue(String),
    /// A user.
    User(String),
    /// An IVR flow (e.g. a message).
    Flow(String),
    /// Hang up with this code (before the answer) or BYE (after).
    Hangup(u16),
    /// Offer a callback: the caller keeps their place and is called back.
    Callback,
}

/// `[[agents]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Their name (ctl and reports).
    pub name: String,
    /// The local users (registered phones) offers ring; at least one.
    pub users: Vec<String>,
    /// Skill → proficiency 1-5.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Queues they serve, in their order of preference.
    pub queues: Vec<String>,
    /// Wrap-up time overriding the queue's.
    #[serde(default)]
    pub wrap_up_secs: Option<u32>,
}

fn fifteen() -> u32 {
    15
}
fn ten() -> u32 {
    10
}
fn twenty() -> u32 {
    20
}
fn sixty() -> u32 {
    60
}
fn fifty() -> u32 {
    50
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
