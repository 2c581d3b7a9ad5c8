//! ACD acceptance 1: three baresip agents with different skills, sipp
//! callers (from the carrier's address) of different priorities and
//! required skills. One test per strategy; each runs two phases:
//!
//! - **Priorities and skills** (the same for every strategy): four callers
//!   wait while no agent is logged in: 601 (english, priority 1) first,
//!   then 603 (billing ≥ 4, priority 3), 604 (spanish ≥ 3, priority 3) and
//!   602 (english, priority 5). Alice logs in and takes 602, the highest
//!   priority, though 601 waited longer; bob takes 604 and carol 603 (the
//!   only ones qualified); 601 goes to alice when her call ends. After it
//!   alice has taken 2 calls and bob and carol 1, and they became free in
//!   the order alice, bob, carol.
//! - **The strategy**: callers to 601 (everyone qualifies) one after the
//!   other, each answered by the agent the strategy picks.

use e2e::baresip::Baresip;
use e2e::switch::SwitchProc;
use serde_json::Value;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Agents in config (round-robin) order carol, alice, bob.
fn config(strategy: &str) -> String {
    format!(
        r#"
[[queues]]
name = "q"
strategy = "{strategy}"
announce_secs = 0
ring_timeout_secs = 8
wrap_up_secs = 0

[[agents]]
name = "carol"
users = ["1003"]
skills = {{ english = 3, billing = 5 }}
queues = ["q"]

[[agents]]
name = "alice"
users = ["1001"]
skills = {{ english = 5, billing = 2 }}
queues = ["q"]

[[agents]]
name = "bob"
users = ["1002"]
skills = {{ english = 2, spanish = 4 }}
queues = ["q"]

[[routes]]
number = "601"
from = "trunks"
target = {{ queue = "q" }}
priority = 1
skills = {{ english = 1 }}

[[routes]]
number = "602"
from = "trunks"
target = {{ queue = "q" }}
priority = 5
skills = {{ english = 1 }}

[[routes]]
number = "603"
from = "trunks"
target = {{ queue = "q" }}
priority = 3
skills = {{ billing = 4 }}

[[routes]]
number = "604"
from = "trunks"
target = {{ queue = "q" }}
priority = 3
skills = {{ spanish = 3 }}
"#
    )
}

struct Center {
    dir: tempfile::TempDir,
    sw: SwitchProc,
    /// alice, bob, carol.
    phones: Vec<Baresip>,
    _lock: std::fs::File,
}

/// A switch with queue `q` run by `strategy` and the three agents' phones
/// registered (agents logged out).
fn center(strategy: &str) -> Center {
    e2e::require("sipp");
    let lock = e2e::heavy_lock();
    let (dir, sw) = e2e::media::media_switch(&config(strategy));
    let wav = dir.path().join("tone.wav");
    e2e::tone_wav(&wav, 60);
    let port = sw.addr().port();
    let phones: Vec<Baresip> = ["1001", "1002", "1003"]
        .iter()
        .map(|u| Baresip::start(&dir.path().join(u), u, "secret", port, &wav))
        .collect();
    for p in &phones {
        assert!(
            p.wait_log("200 OK", Duration::from_secs(10)),
            "baresip did not register:\n{}",
            p.log()
        );
    }
    Center {
        dir,
        sw,
        phones,
        _lock: lock,
    }
}

impl Center {
    /// A sipp caller from the carrier dials `number` and hangs up `hold`
    /// after the switch answered (the wait in the queue counts).
    fn call(&self, number: &str, hold: Duration) -> JoinHandle<e2e::sipp::SippStats> {
        let dir = self.dir.path().to_owned();
        let remote = self.sw.addr().to_string();
        let (number, hold) = (number.to_owned(), hold.as_millis().to_string());
        std::thread::spawn(move || {
            e2e::sipp::run_trunk_call(
                &dir,
                &remote,
                &["-sn", "uac", "-s", &number, "-d", &hold, "-timeout", "40"],
                Duration::from_secs(50),
            )
        })
    }

    fn state(&self, agent: &str) -> String {
        let all = self.sw.ctl_json(&["agents", "list"]);
        let a = all
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["agent"] == agent)
            .cloned()
            .unwrap_or(Value::Null);
        a["state"].as_str().unwrap_or("?").to_owned()
    }

    /// Waits until `check` holds (polling the switch), or panics with `what`.
    fn wait_for(&self, what: &str, limit: Duration, check: impl Fn(&Center) -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut sipp = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("uac-errors") {
                sipp += &std::fs::read_to_string(e.path()).unwrap_or_default();
            }
        }
        panic!(
            "{what}: agents {}\nsipp errors: {sipp}\n{}",
            self.sw.ctl_json(&["agents", "list"]),
            self.sw.log_tail()
        );
    }

    fn waiting(&self) -> u64 {
        self.sw.ctl_json(&["queues", "stats", "q"])[0]["waiting"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Queue CDRs, oldest first.
    fn queue_cdrs(&self, n: usize) -> Vec<Value> {
        let mut v: Vec<Value> = self
            .sw
            .cdrs(n)
            .into_iter()
            .filter(|c| c["queue"] == "q")
            .collect();
        v.sort_by_key(|c| c["start_ms"].as_u64());
        v
    }

    /// Phase 1 (see the module doc).
    fn priorities_and_skills(&self) {
        let holds = [("601", 5.5), ("603", 7.5), ("604", 6.0), ("602", 2.5)];
        let mut callers = Vec::new();
        for (i, (number, hold)) in holds.iter().enumerate() {
            callers.push(self.call(number, Duration::from_secs_f64(*hold)));
            let n = i as u64 + 1;
            self.wait_for("caller joins", Duration::from_secs(5), |c| c.waiting() == n);
        }
        self.sw.ctl_json(&["agents", "login", "alice"]);
        self.wait_for("alice answers", Duration::from_secs(5), |c| {
            c.state("alice") == "on_call"
        });
        self.sw.ctl_json(&["agents", "login", "bob"]);
        self.sw.ctl_json(&["agents", "login", "carol"]);
        for c in callers {
            let stats = c.join().unwrap();
            assert_eq!(
                (stats.successful, stats.failed),
                (1, 0),
                "{stats:?}\n{}",
                self.sw.log_tail()
            );
        }
        let cdrs = self.queue_cdrs(4);
        let agent_of = |number: &str| {
            let c = cdrs
                .iter()
                .find(|c| c["dialed"] == number)
                .unwrap_or_else(|| panic!("no CDR for {number}: {cdrs:?}"));
            // The switch answered at the join; the agent after the wait.
            let taken = c["answer_ms"].as_u64().unwrap_or(u64::MAX / 2)
                + c["wait_ms"].as_u64().unwrap_or(0);
            (c["agent"].as_str().unwrap_or("-").to_owned(), taken)
        };
        let (a602, t602) = agent_of("602");
        let (a601, t601) = agent_of("601");
        assert_eq!(a602, "alice", "the highest priority first");
        assert_eq!(agent_of("604").0, "bob", "spanish: only bob qualifies");
        assert_eq!(agent_of("603").0, "carol", "billing 4: only carol");
        assert_eq!(a601, "alice", "the first agent free takes the last caller");
        assert!(t602 < t601, "602 answered before 601, which came first");
        self.wait_for("all free", Duration::from_secs(5), |c| {
            ["alice", "bob", "carol"]
                .iter()
                .all(|a| c.state(a) == "available")
        });
        for p in &self.phones {
            assert!(p.log().contains("Call established"), "{}", p.log());
        }
    }

    /// Phase 2: `n` callers to 601 one after another; the agent of each.
    fn one_by_one(&self, n: usize) -> Vec<String> {
        let mut agents = Vec::new();
        for i in 0..n {
            let stats = self.call("601", Duration::from_millis(900)).join().unwrap();
            assert_eq!(stats.successful, 1, "call {i}: {stats:?}");
            let cdrs = self.queue_cdrs(5 + i);
            let agent = cdrs.last().unwrap()["agent"]
                .as_str()
                .unwrap_or("-")
                .to_owned();
            self.wait_for("the agent is free", Duration::from_secs(5), |c| {
                c.state(&agent) == "available"
            });
            agents.push(agent);
        }
        agents
    }
}

#[test]
fn longest_idle_gives_the_caller_to_the_agent_free_the_longest() {
    let c = center("longest-idle");
    c.priorities_and_skills();
    assert_eq!(c.one_by_one(4), ["alice", "bob", "carol", "alice"]);
}

#[test]
fn fewest_calls_gives_the_caller_to_the_agent_with_the_fewest_calls() {
    let c = center("fewest-calls");
    c.priorities_and_skills();
    // bob and carol have 1 call (bob free longer), alice 2.
    assert_eq!(c.one_by_one(4), ["bob", "carol", "alice", "bob"]);
}

#[test]
fn round_robin_takes_the_agents_in_turn() {
    let c = center("round-robin");
    c.priorities_and_skills();
    // Config order: carol, alice, bob.
    assert_eq!(c.one_by_one(4), ["carol", "alice", "bob", "carol"]);
}

#[test]
fn skills_gives_the_caller_to_the_most_proficient_agent() {
    let c = center("skills");
    c.priorities_and_skills();
    // english: alice 5, carol 3, bob 2.
    assert_eq!(c.one_by_one(3), ["alice", "alice", "alice"]);
}

#[test]
fn random_spreads_callers_over_the_agents() {
    let c = center("random");
    c.priorities_and_skills();
    let got = c.one_by_one(12);
    let distinct: std::collections::BTreeSet<&str> = got.iter().map(String::as_str).collect();
    // All twelve to one agent: 3 × 3^-12 ≈ 6e-6 by chance.
    assert!(distinct.len() >= 2, "{got:?}");
    let in_turn: Vec<&str> = ["alice", "bob", "carol"]
        .into_iter()
        .cycle()
        .take(12)
        .collect();
    assert_ne!(got, in_turn, "longest-idle order: not random");
}

#[test]
fn ring_all_rings_every_agent_and_the_first_answer_wins() {
    let c = center("ring-all");
    c.priorities_and_skills();
    let before: Vec<usize> = c
        .phones
        .iter()
        .map(|p| p.log().matches("answering call").count())
        .collect();
    let agents = c.one_by_one(2);
    for (i, p) in c.phones.iter().enumerate() {
        let rang = p.log().matches("answering call").count() - before[i];
        assert_eq!(rang, 2, "every phone rang for both callers:\n{}", p.log());
    }
    // Each caller talked to one agent; the others were released.
    let log = std::fs::read_to_string(c.sw.dir.join("switch.log")).unwrap();
    assert_eq!(
        log.matches("queue: answered by an agent").count(),
        4 + 2,
        "{agents:?}"
    );
    for a in ["alice", "bob", "carol"] {
        assert_eq!(c.state(a), "available");
    }
}
