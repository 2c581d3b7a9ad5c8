use super::*;
use crate::acd::{Music, Overflow, Strategy};
use crate::tests::invalid;

const ACD: &str = r#"
[[users]]
name = "1001"
password = "x"
[[users]]
name = "1002"
password = "x"

[acd]
auto_pause_after = 2

[[queues]]
name = "sales"
strategy = "skills"
skills = { spanish = 3 }
relax_after_secs = [30, 60]
overflow = { queue = "support" }
music = { file = "moh.wav" }
callback_key = "1"

[[queues]]
name = "support"
strategy = "ring-all"
overflow = "callback"

[[agents]]
name = "alice"
users = ["1001"]
skills = { spanish = 4, english = 5 }
queues = ["sales", "support"]

[[agents]]
name = "bob"
users = ["1002"]
queues = ["support"]
"#;

#[test]
fn queues_and_agents_parse() {
    let c = Config::from_str(ACD, "t.toml").unwrap();
    assert_eq!(c.acd.auto_pause_after, 2);
    let q = &c.queues[0];
    assert_eq!(q.strategy, Strategy::Skills);
    assert_eq!(q.skills["spanish"], 3);
    assert_eq!(q.overflow, Some(Overflow::Queue("support".into())));
    assert_eq!(
        q.music,
        Music::File {
            file: "moh.wav".into()
        }
    );
    assert_eq!(
        (q.ring_timeout_secs, q.wrap_up_secs, q.announce_secs),
        (15, 10, 60)
    );
    assert_eq!(c.queues[1].strategy, Strategy::RingAll);
    assert_eq!(c.queues[1].overflow, Some(Overflow::Callback));
    assert_eq!(c.agents[0].skills["english"], 5);
}

#[test]
fn acd_errors_name_the_key() {
    let (_, key, msg) = invalid(&ACD.replace("spanish = 4", "spanish = 6"));
    assert_eq!(
        (key.as_str(), msg.as_str()),
        (
            "agents[0].skills.spanish",
            "proficiency 6 is out of range 1..=5"
        )
    );
    let (_, key, msg) = invalid(&ACD.replace("queues = [\"support\"]", "queues = [\"billing\"]"));
    assert_eq!(
        (key.as_str(), msg.as_str()),
        ("agents[1].queues[0]", "unknown queue \"billing\"")
    );
    let (_, key, _) = invalid(&ACD.replace("users = [\"1002\"]", "users = [\"1001\"]"));
    assert_eq!(key, "agents[1].users[0]");
    let (_, key, _) = invalid(&ACD.replace("[30, 60]", "[60, 30]"));
    assert_eq!(key, "queues[0].relax_after_secs");
    let (_, key, msg) =
        invalid(&ACD.replace("strategy = \"ring-all\"", "strategy = \"ring-some\""));
    assert!(key.starts_with("queues[1].strategy"), "{key}: {msg}");
    let (_, key, _) = invalid(&ACD.replace("{ queue = \"support\" }", "{ queue = \"sales\" }"));
    assert_eq!(key, "queues[0].overflow");
}
