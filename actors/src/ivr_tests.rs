use super::*;

const FLOW: &str = r#"
[[users]]
name = "1001"
password = "x"
[[users]]
name = "1002"
password = "x"

[[schedules]]
name = "office"
open = ["mon-fri 09:00-17:00"]

[flows.main]
start = "hours"
[flows.main.nodes.hours]
type = "branch"
schedule = "office"
open = "welcome"
closed = "closed"
[flows.main.nodes.welcome]
type = "play"
prompt = "Welcome ${caller}."
next = "menu"
[flows.main.nodes.menu]
type = "menu"
prompt = "Press 1 for sales, 2 for an account."
options = { "1" = "sales", "2" = "account" }
phrases = { "sales" = "sales" }
invalid_prompt = "Sorry."
timeout_prompt = "Are you there?"
retries = 1
on_failure = "bye"
[flows.main.nodes.account]
type = "collect"
prompt = "Your account number, then hash."
var = "account"
min_digits = 3
max_digits = 6
next = "check"
on_failure = "bye"
[flows.main.nodes.check]
type = "branch"
var = "account"
cases = { "123" = "vip" }
default = "sales"
[flows.main.nodes.vip]
type = "set"
vars = { priority = "10" }
next = "support"
[flows.main.nodes.support]
type = "transfer"
user = "1002"
[flows.main.nodes.sales]
type = "transfer"
prompt = { digits = "${account}" }
user = "1001"
on_failure = "message"
[flows.main.nodes.message]
type = "record"
prompt = "Leave a message."
max_secs = 30
silence_secs = 2
[flows.main.nodes.closed]
type = "hangup"
prompt = "We are closed."
reason = "closed"
[flows.main.nodes.bye]
type = "hangup"
"#;

fn runner(at: &str) -> (Runner, Instant) {
    let cfg = Arc::new(Config::from_str(FLOW, "t.toml").unwrap());
    let at: jiff::Timestamp = at.parse().unwrap();
    let vars = BTreeMap::from([("caller".to_owned(), "555".to_owned())]);
    let r = Runner::new(cfg, "main", vars, Box::new(move || at)).unwrap();
    (r, Instant::now())
}

/// Monday 2026-11-23 10:00 UTC: open.
const OPEN: &str = "2026-11-23T10:00:00Z";

fn play_id(actions: &[Action]) -> u64 {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Play { id, .. } => Some(*id),
            _ => None,
        })
        .expect("a Play action")
}

fn said(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .flat_map(|a| match a {
            Action::Play { parts, .. } => parts.clone(),
            _ => vec![],
        })
        .filter_map(|p| match p {
            Part::Say { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

fn path(r: &Runner) -> String {
    r.path()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" > ")
}

#[test]
fn a_menu_choice_by_digit_leads_to_a_transfer() {
    let (mut r, t0) = runner(OPEN);
    let a = r.start(t0);
    assert_eq!(said(&a), ["Welcome 555."]);
    let a = r.played(play_id(&a), t0);
    assert!(
        a.contains(&Action::Listen {
            phrases: vec!["sales".into()]
        }),
        "{a:?}"
    );
    assert_eq!(said(&a), ["Press 1 for sales, 2 for an account."]);
    let id = play_id(&a);
    // The prompt's end starts the 5 s timeout.
    assert_eq!(r.deadline(), None);
    r.played(id, t0);
    assert_eq!(r.deadline(), Some(t0 + Duration::from_secs(5)));
    let a = r.digit('2', t0);
    assert!(a.contains(&Action::StopListening), "{a:?}");
    assert_eq!(said(&a), ["Your account number, then hash."]);
    let id = play_id(&a);
    // Barge-in: a digit during the prompt stops it.
    let a = r.digit('1', t0);
    assert_eq!(a, [Action::StopPlaying]);
    r.played(id, t0); // a late "done" for the stopped prompt changes nothing
    r.digit('2', t0);
    let a = r.digit('3', t0);
    assert!(a.is_empty());
    assert_eq!(r.deadline(), Some(t0 + Duration::from_secs(3)));
    let a = r.digit('#', t0);
    assert_eq!(
        a,
        [Action::Transfer {
            to: TransferTo::User("1002".into()),
            timeout: None
        }]
    );
    assert_eq!(r.vars()["account"], "123");
    assert_eq!(r.vars()["priority"], "10");
    r.transferred();
    assert!(r.done());
    assert_eq!(r.outcome(), Some("transfer:user:1002"));
    assert_eq!(
        path(&r),
        "hours(open) > welcome > menu(2) > account(123) > check > vip > support"
    );
}

#[test]
fn invalid_input_and_timeout_retry_then_give_up() {
    let (mut r, t0) = runner(OPEN);
    let a = r.start(t0);
    // Type-ahead during the welcome: "9" barges in and is an invalid choice.
    let a2 = r.digit('9', t0);
    assert_eq!(a2[0], Action::StopPlaying);
    assert_eq!(
        said(&a2),
        ["Sorry.", "Press 1 for sales, 2 for an account."]
    );
    let _ = a;
    let id = play_id(&a2);
    r.played(id, t0);
    // Nothing pressed: retries (1) are used up: on_failure "bye" hangs up.
    let t1 = t0 + Duration::from_secs(5);
    let a = r.tick(t1);
    assert!(a.contains(&Action::StopListening), "{a:?}");
    assert_eq!(
        a.last(),
        Some(&Action::Hangup {
            reason: "ivr hangup".into()
        })
    );
    assert_eq!(r.outcome(), Some("hangup:bye"));
    assert_eq!(
        path(&r),
        "hours(open) > welcome(barge-in 9) > menu(invalid 9,timeout,gave up) > bye"
    );
}

#[test]
fn a_timeout_plays_the_timeout_prompt() {
    let (mut r, t0) = runner(OPEN);
    let a = r.start(t0);
    let a = r.played(play_id(&a), t0);
    r.played(play_id(&a), t0);
    // Too early: nothing.
    assert!(r.tick(t0 + Duration::from_secs(4)).is_empty());
    let a = r.tick(t0 + Duration::from_secs(5));
    assert_eq!(
        said(&a),
        ["Are you there?", "Press 1 for sales, 2 for an account."]
    );
}

#[test]
fn closed_hours_take_the_closed_branch() {
    // Sunday.
    let (mut r, t0) = runner("2026-11-22T10:00:00Z");
    let a = r.start(t0);
    assert_eq!(said(&a), ["We are closed."]);
    let a = r.played(play_id(&a), t0);
    assert_eq!(
        a,
        [Action::Hangup {
            reason: "closed".into()
        }]
    );
    assert_eq!(path(&r), "hours(closed) > closed");
}

#[test]
fn speech_chooses_and_a_failed_transfer_records_a_message() {
    let (mut r, t0) = runner(OPEN);
    let a = r.start(t0);
    let a = r.played(play_id(&a), t0);
    // Speech during the menu prompt barges in.
    let a2 = r.speech_started(t0);
    assert_eq!(a2, [Action::StopPlaying]);
    let _ = a;
    // Low-confidence or unknown words are no match: a retry.
    let a = r.recognized(Some(("support", 0.9)), t0);
    assert_eq!(said(&a), ["Sorry.", "Press 1 for sales, 2 for an account."]);
    let a = r.recognized(Some(("Sales", 0.8)), t0);
    assert!(a.contains(&Action::StopPlaying));
    assert!(a.contains(&Action::StopListening));
    // The transfer's prompt says the (empty) account digits: nothing; then the transfer.
    let id = play_id(&a);
    let a = r.played(id, t0);
    assert!(matches!(&a[..], [Action::Transfer { to: TransferTo::User(u), .. }] if u == "1001"));
    // Busy: the message node.
    let a = r.transfer_failed(486, t0);
    assert_eq!(said(&a), ["Leave a message."]);
    assert!(matches!(&a[0], Action::Play { parts, .. } if parts.last() == Some(&Part::Beep)));
    let a = r.played(play_id(&a), t0);
    assert_eq!(a, [Action::StartRecording]);
    assert_eq!(r.deadline(), Some(t0 + Duration::from_secs(30)));
    r.speech_started(t0 + Duration::from_secs(1));
    r.speech_ended(t0 + Duration::from_secs(4));
    assert_eq!(r.deadline(), Some(t0 + Duration::from_secs(6)));
    let a = r.tick(t0 + Duration::from_secs(6));
    assert_eq!(
        a,
        [
            Action::StopRecording,
            Action::Hangup {
                reason: "caller left a message".into()
            }
        ]
    );
    assert_eq!(r.outcome(), Some("message:message"));
    assert_eq!(
        path(&r),
        "hours(open) > welcome > menu(no match \"support\",said sales) > sales(failed 486) > message"
    );
}

#[test]
fn a_loop_through_menus_stops_at_the_step_limit() {
    let text = r#"
[ivr]
max_steps = 7
[flows.main]
start = "menu"
[flows.main.nodes.menu]
type = "menu"
prompt = "Press 1 to hear this again."
options = { "1" = "again" }
[flows.main.nodes.again]
type = "play"
prompt = "Again."
next = "menu"
"#;
    let cfg = Arc::new(Config::from_str(text, "t.toml").unwrap());
    let mut r = Runner::new(cfg, "main", BTreeMap::new(), Box::new(jiff::Timestamp::now)).unwrap();
    let t0 = Instant::now();
    let mut a = r.start(t0);
    let mut steps = 0;
    while !r.done() && steps < 20 {
        steps += 1;
        a = r.digit('1', t0);
    }
    assert_eq!(
        a.last(),
        Some(&Action::Hangup {
            reason: "ivr step limit".into()
        })
    );
    assert_eq!(r.path().len(), 7);
    assert_eq!(r.outcome(), Some("hangup:step limit"));
}
