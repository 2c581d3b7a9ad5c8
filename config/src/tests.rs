use super::*;

/// Parses `text`, expecting an `Invalid` error; returns (line, key, message).
pub(crate) fn invalid(text: &str) -> (usize, String, String) {
    match Config::from_str(text, "t.toml") {
        Err(ConfigError::Invalid {
            file,
            line,
            key,
            message,
        }) => {
            assert_eq!(file, "t.toml");
            (line, key, message)
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn assert_at(text: &str, line: usize, key: &str) -> String {
    let (l, k, msg) = invalid(text);
    assert_eq!((l, k.as_str()), (line, key), "message: {msg}");
    msg
}

#[test]
fn embedded_default_parses() {
    let c = Config::embedded_default();
    assert_eq!(c.sip, Sip::default());
    assert_eq!(c.store, Store::default());
    assert_eq!(c.log, Log::default());
    assert_eq!(c.registrar, Registrar::default());
    assert_eq!(c.numbering, numbering::Numbering::default());
    assert_eq!(c.calls, Calls::default());
    assert_eq!(c.media, Media::default());
    let names: Vec<_> = c.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["1001", "1002", "1003"]);
    let demo = c.trunk("demo").unwrap();
    assert!(demo.accepts_ip("127.0.0.2".parse().unwrap()));
    assert_eq!(
        demo.outbound.as_ref().unwrap().host,
        Some("127.0.0.1:5070".parse().unwrap())
    );
    assert_eq!(c.routes.len(), 7);
    let abroad = c.route_for("90044123", RouteSource::Users).unwrap();
    assert_eq!(
        c.permits("1001", abroad, &abroad.target),
        Err(CallClass::International)
    );
    assert_eq!(
        c.route_for("501", RouteSource::Users).unwrap().target,
        RouteTarget::Queue("demo".into())
    );
    assert_eq!(c.agents.len(), 2);
    assert_eq!(
        c.route_for("500", RouteSource::Trunks).unwrap().target,
        RouteTarget::Flow("demo".into())
    );
    assert_eq!(c.flows["demo"].nodes.len(), 5);
    assert_eq!(
        c.route_for("800", RouteSource::Users).unwrap().target,
        RouteTarget::Conference("800".into())
    );
    let out = c.route_for("9555", RouteSource::Users).unwrap();
    assert_eq!(out.target, RouteTarget::Trunk("demo".into()));
    assert_eq!(out.rewrite("9555"), "555");
    assert_eq!(
        c.route_for("1002", RouteSource::Users).unwrap().target,
        RouteTarget::Users
    );
    assert_eq!(
        c.route_for("9555", RouteSource::Trunks)
            .unwrap()
            .name
            .as_deref(),
        Some("inbound")
    );
}

#[test]
fn empty_is_defaults() {
    let c = Config::from_str("", "empty").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.sip.listen.len(), 2);
    assert_eq!(c.sip.domain, "switchboard");
    assert_eq!(c.sip.user_agent, "Switchboard/0.1");
    assert_eq!(c.sip.shards, 1);
    assert_eq!(c.store.path, PathBuf::from("switchboard-data"));
    assert!(c.store.sync_writes);
    assert_eq!(
        (c.log.format, c.log.level.as_str()),
        (LogFormat::Human, "info")
    );
    assert_eq!(
        (
            c.registrar.min_expires,
            c.registrar.default_expires,
            c.registrar.max_expires
        ),
        (60, 3600, 3600)
    );
    assert_eq!(
        (
            c.calls.no_answer_timeout_secs,
            c.calls.max_forwards,
            c.calls.max_calls
        ),
        (60, 70, 100_000)
    );
    assert!(c.users.is_empty() && c.trunks.is_empty() && c.routes.is_empty());
}

#[test]
fn parses_all_forms() {
    let c = Config::from_str(
        r#"
[sip]
listen = ["tcp:[::1]:5060"]
[log]
format = "json"
[[trunks]]
name = "carrier"
inbound = { from = ["192.0.2.0/24", "2001:db8::/32"], auth = { username = "u", password = "p" } }
outbound = { host = "[2001:db8::1]:5060", transport = "tcp", from_domain = "example.com" }
[[routes]]
prefix = "+1"
from = "any"
target = { hangup = 403 }
[[routes]]
prefix = "*"
target = { user = "1001" }
[[users]]
name = "1001"
password = "x"
"#,
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.sip.listen, ["tcp:[::1]:5060".parse::<Listen>().unwrap()]);
    assert_eq!(c.sip.listen[0].to_string(), "tcp:[::1]:5060");
    assert_eq!(c.log.format, LogFormat::Json);
    let t = &c.trunks[0];
    assert!(t.accepts_ip("192.0.2.77".parse().unwrap()));
    assert!(t.accepts_ip("::ffff:192.0.2.1".parse().unwrap()));
    assert!(t.accepts_ip("2001:db8:1::5".parse().unwrap()));
    assert!(!t.accepts_ip("192.0.3.1".parse().unwrap()));
    assert_eq!(
        c.trunk_for_ip("192.0.2.1".parse().unwrap())
            .map(|t| t.name.as_str()),
        Some("carrier")
    );
    assert_eq!(t.outbound.as_ref().unwrap().transport, Transport::Tcp);
    assert_eq!(c.routes[0].target, RouteTarget::Hangup { code: 403 });
    assert_eq!(c.routes[1].target, RouteTarget::User("1001".into()));
    assert_eq!(c.routes[1].from, RouteSource::Users);
}

#[test]
fn route_for_longest_prefix_and_source() {
    let c = Config::from_str(
        r#"
[[users]]
name = "1001"
password = "x"
[[routes]]
name = "all-users"
prefix = ""
target = "users"
[[routes]]
name = "nine"
prefix = "9"
from = "any"
target = { hangup = 404 }
[[routes]]
name = "ninety-users"
prefix = "90"
target = { user = "1001" }
[[routes]]
name = "ninety-trunks"
prefix = "90"
from = "trunks"
target = { hangup = 486 }
[[routes]]
name = "ninety-any"
prefix = "90"
from = "any"
target = { hangup = 480 }
"#,
        "t.toml",
    )
    .unwrap();
    let name = |dialed, src| c.route_for(dialed, src).and_then(|r| r.name.as_deref());
    assert_eq!(name("1001", RouteSource::Users), Some("all-users"));
    assert_eq!(name("91", RouteSource::Users), Some("nine"));
    assert_eq!(name("901", RouteSource::Users), Some("ninety-users"));
    assert_eq!(name("901", RouteSource::Trunks), Some("ninety-trunks"));
    assert_eq!(name("91", RouteSource::Trunks), Some("nine"));
    assert_eq!(name("1001", RouteSource::Trunks), None);
    assert_eq!(name("8", RouteSource::Any), Some("all-users"));
    assert_eq!(name("9", RouteSource::Any), Some("nine"));
    // Ties go to the first route listed.
    assert_eq!(name("90", RouteSource::Any), Some("ninety-users"));
}

#[test]
fn rewrite_strips_then_prepends() {
    let route = |strip, prepend: &str| Route {
        name: None,
        prefix: Some(String::new()),
        number: None,
        pattern: None,
        trunk: None,
        schedule: None,
        closed: None,
        from: RouteSource::Users,
        target: RouteTarget::Users,
        priority: 0,
        vip: false,
        skills: Default::default(),
        class: None,
        strip,
        prepend: prepend.into(),
    };
    assert_eq!(route(1, "").rewrite("9555"), "555");
    assert_eq!(route(2, "+1").rewrite("00555"), "+1555");
    assert_eq!(route(9, "0").rewrite("12"), "0");
}

#[test]
fn duplicate_users() {
    let msg = assert_at(
        "[[users]]\nname = \"1001\"\npassword = \"a\"\n\n[[users]]\nname = \"1001\"\npassword = \"b\"\n",
        6,
        "users[1].name",
    );
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn duplicate_trunks() {
    let text = r#"
[[trunks]]
name = "t"
outbound = { host = "127.0.0.1:5070" }
[[trunks]]
name = "t"
outbound = { host = "127.0.0.1:5071" }
"#;
    assert_at(text, 6, "trunks[1].name");
}

#[test]
fn bad_user_names() {
    assert_at(
        "[[users]]\nname = \"\"\npassword = \"a\"\n",
        2,
        "users[0].name",
    );
    let msg = assert_at(
        "\n[[users]]\npassword = \"a\"\nname = \"a b\"\n",
        4,
        "users[0].name",
    );
    assert!(msg.contains("' '"), "{msg}");
    assert_at(
        "[[users]]\nname = \"alice;x=1+2\"\npassword = \"\"\n",
        3,
        "users[0].password",
    );
}

const TRUNK: &str = "[[trunks]]\nname = \"in\"\ninbound = { from = [\"10.0.0.1\"] }\n";

#[test]
fn route_target_errors() {
    let r = |target: &str| format!("{TRUNK}[[routes]]\nprefix = \"1\"\ntarget = {target}\n");
    let msg = assert_at(&r("{ user = \"9999\" }"), 6, "routes[0].target");
    assert!(msg.contains("unknown user"), "{msg}");
    let msg = assert_at(&r("{ trunk = \"nope\" }"), 6, "routes[0].target");
    assert!(msg.contains("unknown trunk"), "{msg}");
    let msg = assert_at(&r("{ trunk = \"in\" }"), 6, "routes[0].target");
    assert!(msg.contains("no outbound"), "{msg}");
    assert_at(&r("{ hangup = 200 }"), 6, "routes[0].target");
    assert_at(&r("{ hangup = 700 }"), 6, "routes[0].target");
    Config::from_str(&r("{ hangup = 699 }"), "t").unwrap();
    // Unknown variant is a deserialization error at the same place.
    assert_at(&r("\"nobody\""), 6, "routes[0].target");
}

#[test]
fn trunk_without_direction() {
    assert_at("[[trunks]]\nname = \"x\"\n", 1, "trunks[0]");
    assert_at(
        "[[trunks]]\nname = \"x\"\n[trunks.inbound]\nfrom = []\n",
        3,
        "trunks[0].inbound",
    );
}

#[test]
fn registrar_order() {
    assert_at(
        "[registrar]\nmin_expires = 60\n\ndefault_expires = 30\n",
        4,
        "registrar.default_expires",
    );
    assert_at(
        "[registrar]\nmin_expires = 4000\n",
        2,
        "registrar.min_expires",
    );
    assert_at(
        "[registrar]\nmax_expires = 100\n",
        2,
        "registrar.max_expires",
    );
    assert_at(
        "[registrar]\nmax_expires = 100\ndefault_expires = 200\n",
        3,
        "registrar.default_expires",
    );
}

#[test]
fn sip_section_errors() {
    assert_at("# comment\n[sip]\nlisten = []\n", 3, "sip.listen");
    assert_at("[sip]\nshards = 0\n", 2, "sip.shards");
    assert_at("[sip]\nshards = 65\n", 2, "sip.shards");
    let msg = assert_at(
        "[sip]\nlisten = [\n  \"udp:127.0.0.1:5060\",\n  \"sctp:127.0.0.1:5060\",\n]\n",
        4,
        "sip.listen[1]",
    );
    assert!(msg.contains("sctp"), "{msg}");
}

#[test]
fn bad_prefixes() {
    let r = |prefix: &str| format!("[[routes]]\ntarget = \"users\"\nprefix = \"{prefix}\"\n");
    assert_at(&r("9a"), 3, "routes[0].prefix");
    assert_at(&r("1 2"), 3, "routes[0].prefix");
    Config::from_str(&r("+*#0123456789"), "t").unwrap();
    let msg = assert_at(
        "[[routes]]\nprefix = \"1\"\ntarget = \"users\"\nprepend = \"x\"\n",
        4,
        "routes[0].prepend",
    );
    assert!(msg.contains("'x'"), "{msg}");
    let dup = "[[routes]]\nprefix = \"1\"\ntarget = \"users\"\n[[routes]]\nprefix = \"1\"\ntarget = \"users\"\n";
    assert_at(dup, 5, "routes[1].prefix");
}

#[test]
fn deserialization_errors_are_located() {
    let msg = assert_at("[sip]\ndomain = \"x\"\nbogus = 1\n", 3, "sip.bogus");
    assert!(msg.contains("unknown field"), "{msg}");
    assert_at("\n\nnonsense = true\n", 3, "nonsense");
    assert_at("[calls]\nmax_forwards = 300\n", 2, "calls.max_forwards");
    assert_at("[store]\nsync_writes = \"yes\"\n", 2, "store.sync_writes");
    let text =
        format!("{TRUNK}[[trunks]]\nname = \"o\"\n[trunks.outbound]\nhost = \"127.0.0.1\"\n");
    let msg = assert_at(&text, 7, "trunks[1].outbound.host");
    assert_eq!(
        msg,
        "invalid socket address \"127.0.0.1\" (expected host:port)"
    );
    assert_at(
        "[[trunks]]\nname = \"x\"\ninbound = { from = [\"10.0.0.0/33\"] }\n",
        3,
        "trunks[0].inbound.from[0]",
    );
    let msg = assert_at("[[users]]\nname = \"1001\"\n", 1, "users[0].password");
    assert!(msg.contains("missing field"), "{msg}");
    assert_at("[sip]\ndomain = \"unterminated\n", 2, "sip.domain");
}

#[test]
fn error_display() {
    let text = "[[trunks]]\nname = \"o\"\n\n[trunks.outbound]\nhost = \"127.0.0.1\"\n";
    let e = Config::from_str(text, "sb.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "sb.toml:5: trunks[0].outbound.host: invalid socket address \"127.0.0.1\" (expected host:port)"
    );
    // An error outside any key has an empty key path and no key part.
    let e = ConfigError::Invalid {
        file: "sb.toml".into(),
        line: 2,
        key: String::new(),
        message: "bad".into(),
    };
    assert_eq!(e.to_string(), "sb.toml:2: bad");
    let e = Config::from_str("\n[sip\n", "sb.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "sb.toml:2: sip: unclosed table, expected `]`"
    );
    let e = Config::from_file(Path::new("/nonexistent/sb.toml")).unwrap_err();
    assert!(matches!(&e, ConfigError::Io { file, .. } if file == "/nonexistent/sb.toml"));
    assert!(e.to_string().starts_with("/nonexistent/sb.toml: "), "{e}");
}

#[test]
fn from_file_reads() {
    let path = std::env::temp_dir().join(format!(
        "switchboard-config-test-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, "[sip]\nshards = 99\n").unwrap();
    let e = Config::from_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2: sip.shards: 99 is out of range 1..=64",
            path.display()
        )
    );
}

#[test]
fn digest_algorithms_parse_and_validate() {
    let c = Config::from_str(
        "[sip]\ndigest_algorithms = [\"SHA-256\", \"MD5\"]\n",
        "a.toml",
    )
    .unwrap();
    assert_eq!(
        c.sip.digest_algorithms,
        [DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
    );
    let e = Config::from_str("[sip]\ndigest_algorithms = []\n", "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("a.toml:2: sip.digest_algorithms"), "{e}");
    let e = Config::from_str("[sip]\n\ndigest_algorithms = [\"SHA1\"]\n", "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("a.toml:3: sip.digest_algorithms"), "{e}");
}

#[test]
fn media_errors_name_the_key() {
    let e = Config::from_str("[media]\ncodecs = [\"PCMU\", \"GSM\"]\n", "m.toml").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("m.toml:2") && msg.contains("media.codecs[1]") && msg.contains("GSM"),
        "{msg}"
    );
    let e =
        Config::from_str("[media]\nport_min = 40000\nport_max = 30000\n", "m.toml").unwrap_err();
    assert!(e.to_string().contains("media.port_max"), "{e}");
    let e = Config::from_str(
        "[[routes]]\nprefix = \"8\"\ntarget = { conference = \"a b\" }\n",
        "m.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("routes[0].target"), "{e}");
}

#[test]
fn feature_codes_validate() {
    let c = Config::embedded_default();
    assert_eq!(c.features, Features::default());
    assert_eq!(c.features.codes().len(), 3);
    let msg = assert_at("[features]\nrecord = \"*1x\"\n", 2, "features.record");
    assert!(msg.contains("DTMF digits"), "{msg}");
    let msg = assert_at(
        "[features]\nrecord = \"*1\"\nthree_way = \"*12\"\n",
        3,
        "features.three_way",
    );
    assert!(msg.contains("features.record"), "{msg}");
    assert_at(
        "[features]\ninter_digit_secs = 0\n",
        2,
        "features.inter_digit_secs",
    );
    let off = Config::from_str("[features]\nthree_way = \"\"\n", "t.toml").unwrap();
    assert_eq!(off.features.codes().len(), 2);
}

#[test]
fn number_ranges_patterns_and_trunks() {
    let text = r#"
[[users]]
name = "1001"
password = "x"

[[users]]
name = "1002"
password = "x"

[[trunks]]
name = "a"
inbound = { from = ["10.0.0.1"] }

[[trunks]]
name = "b"
inbound = { from = ["10.0.0.2"] }

[[routes]]
name = "range"
pattern = "400-800-1xxx"
from = "trunks"
target = { user = "1001" }

[[routes]]
name = "sales"
pattern = "400-800-12xx"
from = "trunks"
target = { user = "1002" }

[[routes]]
name = "ceo"
number = "4008001234"
from = "trunks"
target = { hangup = 403 }

[[routes]]
name = "b-only"
pattern = "400-800-1xxx"
trunk = "b"
from = "trunks"
target = { hangup = 486 }

[[routes]]
name = "rest"
prefix = "400"
from = "trunks"
target = { hangup = 404 }
"#;
    let c = Config::from_str(text, "t.toml").unwrap();
    let name = |dialed, trunk| {
        c.route_for_call(dialed, RouteSource::Trunks, trunk)
            .and_then(|r| r.name.as_deref())
    };
    assert_eq!(name("4008001000", Some("a")), Some("range"));
    assert_eq!(
        name("4008001200", Some("a")),
        Some("sales"),
        "more literal digits"
    );
    assert_eq!(
        name("4008001234", Some("a")),
        Some("ceo"),
        "exact beats patterns"
    );
    assert_eq!(
        name("4008001000", Some("b")),
        Some("b-only"),
        "the trunk's own route"
    );
    assert_eq!(
        name("4008002000", Some("a")),
        Some("rest"),
        "prefix as the fallback"
    );
    assert_eq!(name("5000", Some("a")), None);
}

#[test]
fn route_matcher_errors_are_located() {
    let base = "[[routes]]\ntarget = \"users\"\n";
    let msg = assert_at(
        &format!("{base}pattern = \"40x-a\"\n"),
        3,
        "routes[0].pattern",
    );
    assert!(msg.contains("not allowed"), "{msg}");
    let msg = assert_at(
        &format!("{base}prefix = \"4\"\nnumber = \"4\"\n"),
        4,
        "routes[0].number",
    );
    assert!(msg.contains("only one"), "{msg}");
    let msg = assert_at(base, 1, "routes[0]");
    assert!(msg.contains("one of prefix, number or pattern"), "{msg}");
    assert_at(
        &format!("{base}prefix = \"4\"\ntrunk = \"nope\"\n"),
        4,
        "routes[0].trunk",
    );
}

#[test]
fn schedule_errors_are_located() {
    let sched = "[[schedules]]\nname = \"office\"\ntimezone = \"Mars/Base\"\nopen = [\"mon 08:00-18:00\"]\n";
    assert_at(sched, 3, "schedules[0].timezone");
    let bad_open = "[[schedules]]\nname = \"office\"\nopen = [\"moon 08:00-18:00\"]\n";
    assert_at(bad_open, 3, "schedules[0].open");
    let route = "[[schedules]]\nname = \"office\"\nopen = [\"mon 08:00-18:00\"]\n\n\
                 [[routes]]\nprefix = \"4\"\ntarget = \"users\"\nschedule = \"office\"\n";
    let msg = assert_at(route, 8, "routes[0].schedule");
    assert!(msg.contains("needs `closed`"), "{msg}");
    let unknown = format!("{route}closed = {{ hangup = 480 }}\n")
        .replace("schedule = \"office\"", "schedule = \"other\"");
    let msg = assert_at(&unknown, 8, "routes[0].schedule");
    assert!(msg.contains("unknown schedule"), "{msg}");
}

#[test]
fn max_forwards_must_be_positive() {
    assert_at("[calls]\nmax_forwards = 0\n", 2, "calls.max_forwards");
}

#[test]
fn call_classes_and_user_permissions() {
    let text = "[[trunks]]\nname = \"t\"\noutbound = { host = \"127.0.0.1:5070\" }\n\n\
        [[users]]\nname = \"1\"\npassword = \"p\"\n\n\
        [[users]]\nname = \"2\"\npassword = \"p\"\nmay_call = \"international\"\n\n\
        [[routes]]\nprefix = \"00\"\ntarget = { trunk = \"t\" }\nclass = \"international\"\n\n\
        [[routes]]\nprefix = \"0\"\ntarget = { trunk = \"t\" }\n\n\
        [[routes]]\nprefix = \"1\"\ntarget = \"users\"\n";
    let c = Config::from_str(text, "t.toml").unwrap();
    let check = |user: &str, number: &str| {
        let r = c.route_for(number, RouteSource::Users).unwrap();
        c.permits(user, r, &r.target)
    };
    assert_eq!(check("1", "0044"), Err(CallClass::International));
    assert_eq!(check("1", "030"), Ok(()), "national by default");
    assert_eq!(check("1", "12"), Ok(()));
    assert_eq!(check("2", "0044"), Ok(()));
    let bad = text.replace("may_call = \"international\"", "may_call = \"world\"");
    let msg = assert_at(&bad, 12, "users[1].may_call");
    assert!(msg.contains("unknown variant"), "{msg}");
}

#[test]
fn trunk_gateways() {
    let text = "[[trunks]]\nname = \"c\"\n[trunks.outbound]\ngateways = [\n  { host = \"127.0.0.1:5070\", priority = 2 },\n  { host = \"127.0.0.1:5080\", weight = 3 },\n]\n";
    let c = Config::from_str(text, "t.toml").unwrap();
    let g = c.trunk("c").unwrap().outbound.as_ref().unwrap().gateways();
    assert_eq!(
        g.iter()
            .map(|g| (g.host.port(), g.priority, g.weight))
            .collect::<Vec<_>>(),
        [(5070, 2, 1), (5080, 1, 3)]
    );
    let both = text.replace("gateways = [", "host = \"127.0.0.1:5060\"\ngateways = [");
    let msg = assert_at(&both, 3, "trunks[0].outbound");
    assert!(msg.contains("either `host` or `gateways`"), "{msg}");
    assert_at(
        &text.replace("weight = 3", "weight = 0"),
        6,
        "trunks[0].outbound.gateways[1].weight",
    );
    assert_at(
        &text.replace("5080", "x"),
        6,
        "trunks[0].outbound.gateways[1].host",
    );
}

#[test]
fn trunk_number_ranges() {
    let text = "[[trunks]]\nname = \"c\"\ninbound = { from = [\"10.0.0.1\"], numbers = [\"400-800-1xxx\", \"4930123456.\"] }\n";
    let c = Config::from_str(text, "t.toml").unwrap();
    let inb = c.trunk("c").unwrap().inbound.as_ref().unwrap();
    assert!(inb.owns("4008001234"));
    assert!(inb.owns("49301234567"));
    assert!(!inb.owns("4008002234"));
    assert!(!inb.owns("110"));
    let bad = text.replace("1xxx", "1xq");
    assert_at(&bad, 3, "trunks[0].inbound.numbers");
}

#[test]
fn numbering_is_checked_and_used_by_trunks() {
    assert_at(
        "[numbering]\ncountry_code = \"+49\"\n",
        2,
        "numbering.country_code",
    );
    assert_at(
        "[numbering]\ncountry_code = \"49\"\ninternational_prefix = \"0x\"\n",
        3,
        "numbering.international_prefix",
    );
    let c = Config::from_str(
        "[numbering]\ncountry_code = \"49\"\n\n[[trunks]]\nname = \"c\"\ninbound = { from = [\"192.0.2.1\"], normalize = true }\noutbound = { host = \"192.0.2.1:5060\", number_format = \"e164\" }\n",
        "t.toml",
    )
    .unwrap();
    let t = c.trunk("c").unwrap();
    assert!(t.inbound.as_ref().unwrap().normalize);
    let f = t.outbound.as_ref().unwrap().number_format;
    assert_eq!(c.numbering.format("030123", f), "+4930123");
    let bad = "[[trunks]]\nname = \"c\"\noutbound = { host = \"192.0.2.1:5060\", number_format = \"e.164\" }\n";
    let (line, _, msg) = invalid(bad);
    assert_eq!(line, 3, "{msg}");
}
