use super::*;
use crate::flow::{Node, PromptPart};
use crate::tests::invalid;

const USERS: &str = r#"
[[users]]
name = "1001"
password = "x"
"#;

fn inline(flow: &str) -> String {
    format!("{USERS}\n[[routes]]\nprefix = \"5\"\nfrom = \"any\"\ntarget = {{ flow = \"main\" }}\n{flow}")
}

const GOOD: &str = r#"
[flows.main]
start = "menu"
[flows.main.nodes.menu]
type = "menu"
prompt = ["Welcome.", { say = "Press 1 for sales.", voice = "en-gb" }, { silence_ms = 200 }]
options = { "1" = "sales", "2" = "ask" }
on_failure = "bye"
[flows.main.nodes.ask]
type = "collect"
var = "account"
next = "sales"
[flows.main.nodes.sales]
type = "transfer"
user = "1001"
on_failure = "bye"
[flows.main.nodes.bye]
type = "hangup"
prompt = "Goodbye ${caller}."
"#;

#[test]
fn an_inline_flow_parses() {
    let c = Config::from_str(&inline(GOOD), "t.toml").unwrap();
    let flow = &c.flows["main"];
    assert_eq!(flow.start, "menu");
    let Node::Menu(m) = &flow.nodes["menu"] else {
        panic!()
    };
    assert_eq!(m.options["1"], "sales");
    assert_eq!(m.timeout_secs, 5);
    assert_eq!(m.retries, 2);
    let p = &m.prompt.as_ref().unwrap().0;
    assert_eq!(p.len(), 3);
    assert_eq!(
        p[1],
        PromptPart::Say {
            say: "Press 1 for sales.".into(),
            voice: Some("en-gb".into())
        }
    );
    assert_eq!(p[2], PromptPart::Silence { silence_ms: 200 });
    let Node::Collect(col) = &flow.nodes["ask"] else {
        panic!()
    };
    assert_eq!(
        (col.min_digits, col.max_digits, col.terminator.as_str()),
        (1, 16, "#")
    );
    assert_eq!(c.routes[0].target, RouteTarget::Flow("main".into()));
}

#[test]
fn flow_errors_name_the_line_and_key() {
    // Unknown node.
    let bad = inline(&GOOD.replace("\"2\" = \"ask\"", "\"2\" = \"nowhere\""));
    let (line, key, msg) = invalid(&bad);
    assert_eq!(key, "flows.main.nodes.menu.options.2");
    assert!(msg.contains("unknown node \"nowhere\""), "{msg}");
    assert_eq!(
        bad.lines().nth(line - 1).unwrap(),
        "options = { \"1\" = \"sales\", \"2\" = \"nowhere\" }"
    );
    // A route to a flow that does not exist.
    let bad = inline(GOOD).replace("flow = \"main\"", "flow = \"other\"");
    let (_, key, msg) = invalid(&bad);
    assert_eq!(
        (key.as_str(), msg.as_str()),
        ("routes[0].target", "unknown flow \"other\"")
    );
    // Not a digit.
    let bad = inline(&GOOD.replace("\"2\" = \"ask\"", "\"22\" = \"ask\""));
    let (_, key, _) = invalid(&bad);
    assert_eq!(key, "flows.main.nodes.menu.options.22");
    // Unknown user.
    let (_, key, msg) = invalid(&inline(&GOOD.replace("user = \"1001\"", "user = \"999\"")));
    assert_eq!(
        (key.as_str(), msg.as_str()),
        ("flows.main.nodes.sales.user", "unknown user \"999\"")
    );
    // Caller input never picks a transfer number.
    let (_, key, _) = invalid(&inline(
        &GOOD.replace("user = \"1001\"", "number = \"${account}\""),
    ));
    assert_eq!(key, "flows.main.nodes.sales.number");
    // Unknown field.
    let (_, key, msg) = invalid(&inline(
        &GOOD.replace("var = \"account\"", "var = \"account\"\nbogus = 1"),
    ));
    assert!(key.starts_with("flows.main.nodes.ask"), "{key}");
    assert!(msg.contains("bogus"), "{msg}");
}

#[test]
fn loops_without_exit_are_refused() {
    // A menu whose every path comes back to it and whose failure does too.
    let flow = r#"
[flows.main]
start = "a"
[flows.main.nodes.a]
type = "menu"
prompt = "Press 1."
options = { "1" = "b" }
on_failure = "a"
[flows.main.nodes.b]
type = "play"
prompt = "You pressed 1."
next = "a"
"#;
    let (_, key, msg) = invalid(&inline(flow));
    assert!(msg.contains("loop without exit"), "{msg}");
    assert!(
        key == "flows.main.nodes.a" || key == "flows.main.nodes.b",
        "{key}"
    );
    // Play → set → play: spins without waiting, even with an exit elsewhere.
    let flow = r#"
[flows.main]
start = "a"
[flows.main.nodes.a]
type = "play"
prompt = "Hello."
next = "b"
[flows.main.nodes.b]
type = "branch"
var = "x"
cases = { "1" = "bye" }
default = "a"
[flows.main.nodes.bye]
type = "hangup"
"#;
    let (_, _, msg) = invalid(&inline(flow));
    assert!(msg.contains("without waiting for the caller"), "{msg}");
    // The same loop through a menu is fine.
    let ok = flow.replace(
        "type = \"play\"\nprompt = \"Hello.\"\nnext = \"b\"",
        "type = \"menu\"\nprompt = \"Hello.\"\noptions = { \"1\" = \"b\" }\non_failure = \"bye\"",
    );
    Config::from_str(&inline(&ok), "t.toml").unwrap();
}

#[test]
fn flow_files_are_read_and_checked_in_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::create_dir(dir.path().join("prompts")).unwrap();
    let wav = dir.path().join("prompts/hello.wav");
    std::fs::write(&wav, b"RIFF\0\0\0\0WAVEfmt ").unwrap();
    let main = dir.path().join("switchboard.toml");
    std::fs::write(
        &main,
        format!("{USERS}\n[ivr]\nflows_dir = \"flows\"\nprompts_dir = \"prompts\"\n[[routes]]\nnumber = \"500\"\nfrom = \"any\"\ntarget = {{ flow = \"sales\" }}\n"),
    )
    .unwrap();
    let flow = "start = \"hi\"\n\n[nodes.hi]\ntype = \"play\"\nprompt = { file = \"hello.wav\" }\nnext = \"bye\"\n\n[nodes.bye]\ntype = \"hangup\"\n";
    std::fs::write(flows.join("sales.toml"), flow).unwrap();
    let c = Config::from_file(&main).unwrap();
    assert_eq!(
        c.flows["sales"].file.as_deref(),
        Some(flows.join("sales.toml").as_path())
    );
    assert_eq!(c.ivr.prompts_dir, dir.path().join("prompts"));
    // A missing WAV: that flow file, the prompt's line.
    std::fs::remove_file(&wav).unwrap();
    let err = Config::from_file(&main).unwrap_err().to_string();
    let want = format!(
        "{}:5: nodes.hi.prompt: WAV file {}",
        flows.join("sales.toml").display(),
        wav.display()
    );
    assert!(err.starts_with(&want), "{err}");
    // Not a WAV.
    std::fs::write(&wav, b"hello there, not a wav").unwrap();
    let err = Config::from_file(&main).unwrap_err().to_string();
    assert!(err.contains("is not a WAV file"), "{err}");
    // An unknown node in a flow file.
    std::fs::write(&wav, b"RIFF\0\0\0\0WAVEfmt ").unwrap();
    std::fs::write(
        flows.join("sales.toml"),
        flow.replace("next = \"bye\"", "next = \"by\""),
    )
    .unwrap();
    let err = Config::from_file(&main).unwrap_err().to_string();
    assert!(
        err.ends_with("sales.toml:6: nodes.hi.next: unknown node \"by\""),
        "{err}"
    );
}
