//! Semantic checks run after deserialization.

use std::collections::HashMap;

use std::path::Path;

use serde::Deserialize;

use crate::flow::{Flow, FlowContext};
use crate::locate::Doc;
use crate::{Config, ConfigError, RouteSource, RouteTarget};

/// Reads every `*.toml` in `dir` as a flow named after the file, each
/// checked against `config` with errors located in its own file.
pub(crate) fn load_flows(
    config: &mut Config,
    dir: &Path,
    main: &Doc<'_>,
) -> Result<(), ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        main.invalid(
            "ivr.flows_dir",
            format!("cannot read {}: {e}", dir.display()),
        )
    })?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for path in files {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            file: label.clone(),
            source,
        })?;
        let doc = Doc::parse(&text, &label)?;
        let mut flow = Flow::deserialize(doc.deserializer()).map_err(|e| doc.de_error(&e))?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return Err(doc.invalid(
                "",
                format!("flow file name {name:?}: letters, digits, '-' and '_' only"),
            ));
        }
        if config.flows.contains_key(&name) {
            return Err(doc.invalid(
                "",
                format!("flow {name:?} is also defined as [flows.{name}]"),
            ));
        }
        check_flow(config, &flow, &doc, "")?;
        flow.file = Some(path);
        config.flows.insert(name, flow);
    }
    Ok(())
}

/// Checks one flow; `prefix` is its key path in `doc` (`flows.NAME.` inline, "" in its own file).
fn check_flow(
    config: &Config,
    flow: &Flow,
    doc: &Doc<'_>,
    prefix: &str,
) -> Result<(), ConfigError> {
    let users = |u: &str| config.user(u).is_some();
    let trunk = |t: &str| match config.trunk(t) {
        None => Err(format!("unknown trunk {t:?}")),
        Some(t) if t.outbound.is_none() => {
            Err(format!("trunk {:?} has no outbound section", t.name))
        }
        Some(_) => Ok(()),
    };
    let schedule = |s: &str| config.schedules.iter().any(|x| x.name == s);
    let queue = |q: &str| config.queues.iter().any(|x| x.name == q);
    let cx = FlowContext {
        queue: &queue,
        users: &users,
        trunk: &trunk,
        schedule: &schedule,
        prompts_dir: &config.ivr.prompts_dir,
    };
    flow.check(&cx)
        .map_err(|p| doc.invalid(format!("{prefix}{}", p.key), p.message))
}

/// Returns the first problem found, located in `doc`.
pub(crate) fn check(config: &Config, doc: &Doc<'_>) -> Result<(), ConfigError> {
    for (name, flow) in &config.flows {
        if flow.file.is_none() {
            check_flow(config, flow, doc, &format!("flows.{name}."))?;
        }
    }
    if config.ivr.asr == crate::AsrEngine::Websocket && !config.ivr.asr_url.starts_with("ws://") {
        return Err(doc.invalid(
            "ivr.asr_url",
            "asr = \"websocket\" needs asr_url = \"ws://host:port/path\"",
        ));
    }
    if config.ivr.tts == crate::TtsEngine::Websocket && !config.ivr.tts_url.starts_with("ws://") {
        return Err(doc.invalid(
            "ivr.tts_url",
            "tts = \"websocket\" needs tts_url = \"ws://host:port/path\"",
        ));
    }
    check_acd(config, doc)?;
    if config.ivr.max_steps == 0 {
        return Err(doc.invalid("ivr.max_steps", "must be at least 1"));
    }
    let sip = &config.sip;
    if sip.listen.is_empty() {
        return Err(doc.invalid("sip.listen", "at least one listen address is required"));
    }
    if !(1..=64).contains(&sip.shards) {
        return Err(doc.invalid(
            "sip.shards",
            format!("{} is out of range 1..=64", sip.shards),
        ));
    }
    if sip.domain.is_empty() {
        return Err(doc.invalid("sip.domain", "must not be empty"));
    }
    if sip.digest_algorithms.is_empty() {
        return Err(doc.invalid(
            "sip.digest_algorithms",
            "at least one algorithm is required",
        ));
    }

    let n = &config.numbering;
    for (key, value, max) in [
        ("numbering.country_code", &n.country_code, 3),
        ("numbering.national_prefix", &n.national_prefix, 4),
        ("numbering.international_prefix", &n.international_prefix, 4),
    ] {
        if value.len() > max || !value.bytes().all(|c| c.is_ascii_digit()) {
            let msg = format!("{value:?} is not a number of at most {max} digits");
            return Err(doc.invalid(key, msg));
        }
    }

    let r = &config.registrar;
    // Report at whichever of the two keys the file actually sets.
    let pick = |a: &'static str, b: &'static str| if doc.has(b) { b } else { a };
    if r.min_expires > r.default_expires {
        let key = pick("registrar.min_expires", "registrar.default_expires");
        let msg = format!(
            "min_expires ({}) is greater than default_expires ({})",
            r.min_expires, r.default_expires
        );
        return Err(doc.invalid(key, msg));
    }
    if r.default_expires > r.max_expires {
        let key = pick("registrar.max_expires", "registrar.default_expires");
        let msg = format!(
            "default_expires ({}) is greater than max_expires ({})",
            r.default_expires, r.max_expires
        );
        return Err(doc.invalid(key, msg));
    }

    if !config.http.listen.is_empty() && config.http.listen.parse::<std::net::SocketAddr>().is_err()
    {
        return Err(doc.invalid(
            "http.listen",
            format!("{:?} is not an ip:port address", config.http.listen),
        ));
    }

    if config.alerts.interval_secs == 0 || config.alerts.interval_secs > 3600 {
        return Err(doc.invalid(
            "alerts.interval_secs",
            format!("{} is out of range 1..=3600", config.alerts.interval_secs),
        ));
    }
    if config.alerts.trunk_down_after == 0 {
        return Err(doc.invalid("alerts.trunk_down_after", "must be at least 1"));
    }

    if config.calls.max_forwards == 0 {
        return Err(doc.invalid("calls.max_forwards", "must be at least 1"));
    }

    let f = &config.features;
    let codes = f.codes();
    for (i, (key, code)) in codes.iter().enumerate() {
        let path = format!("features.{key}");
        if code.len() > 8 || !code.chars().all(|c| "0123456789*#ABCD".contains(c)) {
            return Err(doc.invalid(
                path,
                format!("{code:?} must be 1 to 8 DTMF digits (0-9, *, #, A-D)"),
            ));
        }
        if let Some((other, _)) = codes[..i]
            .iter()
            .find(|(_, o)| o.starts_with(*code) || code.starts_with(*o))
        {
            return Err(doc.invalid(
                path,
                format!("{code:?} clashes with features.{other} (one is a prefix of the other)"),
            ));
        }
    }
    if f.inter_digit_secs == 0 || f.inter_digit_secs > 30 {
        return Err(doc.invalid(
            "features.inter_digit_secs",
            format!("{} is out of range 1..=30", f.inter_digit_secs),
        ));
    }

    let m = &config.media;
    if m.port_min < 1024 || m.port_min >= m.port_max {
        let key = pick("media.port_min", "media.port_max");
        return Err(doc.invalid(
            key,
            format!(
                "port range {}..={} must start at 1024 or above and hold at least one even/odd pair",
                m.port_min, m.port_max
            ),
        ));
    }
    if m.opus_complexity > 10 {
        return Err(doc.invalid(
            "media.opus_complexity",
            format!("{} is out of range 0..=10", m.opus_complexity),
        ));
    }
    if m.codecs.is_empty() {
        return Err(doc.invalid("media.codecs", "at least one codec is required"));
    }
    for (i, c) in m.codecs.iter().enumerate() {
        if !crate::CODEC_NAMES.iter().any(|n| n.eq_ignore_ascii_case(c)) {
            return Err(doc.invalid(
                format!("media.codecs[{i}]"),
                format!(
                    "unknown codec {c:?}; known: {}",
                    crate::CODEC_NAMES.join(", ")
                ),
            ));
        }
    }

    let mut seen = HashMap::new();
    for (i, user) in config.users.iter().enumerate() {
        let key = format!("users[{i}].name");
        if user.name.is_empty() {
            return Err(doc.invalid(key, "user name must not be empty"));
        }
        if let Some(c) = user.name.chars().find(|&c| !is_sip_user_char(c)) {
            return Err(doc.invalid(
                key,
                format!(
                    "user name {:?} contains {c:?}, which is not allowed in a SIP user part",
                    user.name
                ),
            ));
        }
        if let Some(first) = seen.insert(user.name.as_str(), i) {
            let line = doc.line_of(&format!("users[{first}].name"));
            return Err(doc.invalid(
                key,
                format!(
                    "duplicate user name {:?} (first defined on line {line})",
                    user.name
                ),
            ));
        }
        if user.password.is_empty() {
            return Err(doc.invalid(format!("users[{i}].password"), "password must not be empty"));
        }
    }

    let mut seen = HashMap::new();
    for (i, trunk) in config.trunks.iter().enumerate() {
        let key = format!("trunks[{i}].name");
        if trunk.name.is_empty() {
            return Err(doc.invalid(key, "trunk name must not be empty"));
        }
        if let Some(first) = seen.insert(trunk.name.as_str(), i) {
            let line = doc.line_of(&format!("trunks[{first}].name"));
            return Err(doc.invalid(
                key,
                format!(
                    "duplicate trunk name {:?} (first defined on line {line})",
                    trunk.name
                ),
            ));
        }
        match &trunk.inbound {
            None if trunk.outbound.is_none() => {
                return Err(doc.invalid(
                    format!("trunks[{i}]"),
                    format!("trunk {:?} has neither inbound nor outbound", trunk.name),
                ));
            }
            Some(inbound) if inbound.from.is_empty() && inbound.auth.is_none() => {
                return Err(doc.invalid(
                    format!("trunks[{i}].inbound"),
                    "inbound needs `from` addresses, `auth`, or both",
                ));
            }
            _ => {}
        }
        if let Some(out) = &trunk.outbound {
            if out.host.is_some() != out.gateways.is_empty() {
                return Err(doc.invalid(
                    format!("trunks[{i}].outbound"),
                    "outbound needs either `host` or `gateways` (not both)",
                ));
            }
            if out.register_secs > 0 && out.auth.is_none() {
                return Err(doc.invalid(
                    format!("trunks[{i}].outbound.register_secs"),
                    "registering needs `auth` (the username and password to register with)",
                ));
            }
            if let Some(g) = out.gateways.iter().position(|g| g.weight == 0) {
                return Err(doc.invalid(
                    format!("trunks[{i}].outbound.gateways[{g}].weight"),
                    "weight must be at least 1",
                ));
            }
        }
    }

    let mut seen = HashMap::new();
    for (i, route) in config.routes.iter().enumerate() {
        let digits = [
            ("prefix", route.prefix.as_deref()),
            ("number", route.number.as_deref()),
            ("prepend", Some(route.prepend.as_str())),
        ];
        for (field, value) in digits {
            let Some(value) = value else { continue };
            if let Some(c) = value
                .chars()
                .find(|c| !matches!(c, '0'..='9' | '*' | '#' | '+'))
            {
                let msg =
                    format!("{value:?} contains {c:?}; only digits, '*', '#' and '+' are allowed");
                return Err(doc.invalid(format!("routes[{i}].{field}"), msg));
            }
        }
        let given = [
            route.prefix.is_some(),
            route.number.is_some(),
            route.pattern.is_some(),
        ];
        let field = match given {
            [true, false, false] => "prefix",
            [false, true, false] => "number",
            [false, false, true] => "pattern",
            [false, false, false] => {
                return Err(doc.invalid(
                    format!("routes[{i}]"),
                    "a route needs one of prefix, number or pattern",
                ))
            }
            _ => {
                let key = if route.pattern.is_some() {
                    "pattern"
                } else {
                    "number"
                };
                return Err(doc.invalid(
                    format!("routes[{i}].{key}"),
                    "give only one of prefix, number and pattern",
                ));
            }
        };
        if let Some(t) = &route.trunk {
            if doc.has(&format!("routes[{i}].from")) && route.from == RouteSource::Users {
                return Err(doc.invalid(
                    format!("routes[{i}].from"),
                    "a route for a trunk serves that trunk's calls, not users'",
                ));
            }
            match config.trunk(t) {
                Some(tr) if tr.inbound.is_some() => {}
                Some(_) => {
                    return Err(doc.invalid(
                        format!("routes[{i}].trunk"),
                        format!("trunk {t:?} has no inbound section: no calls come from it"),
                    ))
                }
                None => {
                    return Err(
                        doc.invalid(format!("routes[{i}].trunk"), format!("unknown trunk {t:?}"))
                    )
                }
            }
        }
        let what = route.matcher();
        if let Some(first) = seen.insert((what.clone(), route.from, route.trunk.clone()), i) {
            let line = doc.line_of(&format!("routes[{first}].{field}"));
            let msg = format!(
                "duplicate route for {what} and the same `from`/`trunk` (first defined on line {line})"
            );
            return Err(doc.invalid(format!("routes[{i}].{field}"), msg));
        }
        check_target(config, doc, &format!("routes[{i}].target"), &route.target)?;
        let queue_attrs = route.priority > 0 || route.vip || !route.skills.is_empty();
        if queue_attrs && !matches!(route.target, RouteTarget::Queue(_)) {
            return Err(doc.invalid(
                format!("routes[{i}].target"),
                "priority, vip and skills are for a route to a queue",
            ));
        }
        for (skill, level) in &route.skills {
            if !(1..=5).contains(level) {
                return Err(doc.invalid(
                    format!("routes[{i}].skills.{skill}"),
                    format!("proficiency {level} is out of range 1..=5"),
                ));
            }
        }
        match (&route.schedule, &route.closed) {
            (Some(name), Some(closed)) => {
                if !config.schedules.iter().any(|s| s.name == *name) {
                    return Err(doc.invalid(
                        format!("routes[{i}].schedule"),
                        format!("unknown schedule {name:?}"),
                    ));
                }
                check_target(config, doc, &format!("routes[{i}].closed"), closed)?;
            }
            (Some(_), None) => {
                return Err(doc.invalid(
                    format!("routes[{i}].schedule"),
                    "a route with a schedule needs `closed`, the target outside its hours",
                ))
            }
            (None, Some(_)) => {
                return Err(
                    doc.invalid(format!("routes[{i}].closed"), "`closed` needs a `schedule`")
                )
            }
            (None, None) => {}
        }
    }
    let mut names = HashMap::new();
    for (i, s) in config.schedules.iter().enumerate() {
        if let Some(first) = names.insert(s.name.as_str(), i) {
            let line = doc.line_of(&format!("schedules[{first}].name"));
            return Err(doc.invalid(
                format!("schedules[{i}].name"),
                format!(
                    "duplicate schedule {:?} (first defined on line {line})",
                    s.name
                ),
            ));
        }
        if let Err((field, msg)) = s.compile() {
            return Err(doc.invalid(format!("schedules[{i}].{field}"), msg));
        }
    }
    Ok(())
}

/// A route's target (or `closed` target) names things that exist.
fn check_target(
    config: &Config,
    doc: &Doc<'_>,
    key: &str,
    target: &RouteTarget,
) -> Result<(), ConfigError> {
    match target {
        RouteTarget::User(name) if config.user(name).is_none() => {
            Err(doc.invalid(key, format!("unknown user {name:?}")))
        }
        RouteTarget::Trunk(name) => match config.trunk(name) {
            None => Err(doc.invalid(key, format!("unknown trunk {name:?}"))),
            Some(t) if t.outbound.is_none() => {
                Err(doc.invalid(key, format!("trunk {name:?} has no outbound section")))
            }
            Some(_) => Ok(()),
        },
        RouteTarget::Conference(name)
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            Err(doc.invalid(
                key,
                format!("conference name {name:?} must be letters, digits, '-', '_' or '.'"),
            ))
        }
        RouteTarget::Queue(name) if !config.queues.iter().any(|q| q.name == *name) => {
            Err(doc.invalid(key, format!("unknown queue {name:?}")))
        }
        RouteTarget::Flow(name) if !config.flows.contains_key(name) => {
            Err(doc.invalid(key, format!("unknown flow {name:?}")))
        }
        RouteTarget::Hangup { code } if !(400..=699).contains(code) => {
            Err(doc.invalid(key, format!("hangup code {code} is out of range 400..=699")))
        }
        _ => Ok(()),
    }
}

/// RFC 3261 `user`: alphanumerics, `mark` and `user-unreserved` characters (no escapes).
fn is_sip_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Queues and agents: names, skills, references.
fn check_acd(config: &Config, doc: &Doc<'_>) -> Result<(), ConfigError> {
    let skill_levels = |key: String, skills: &std::collections::BTreeMap<String, u8>| {
        for (skill, level) in skills {
            if !is_name(skill) {
                return Err(doc.invalid(
                    format!("{key}.{skill}"),
                    "skill names are letters, digits, '-', '_', '.'",
                ));
            }
            if !(1..=5).contains(level) {
                return Err(doc.invalid(
                    format!("{key}.{skill}"),
                    format!("proficiency {level} is out of range 1..=5"),
                ));
            }
        }
        Ok(())
    };
    let mut queues: HashMap<&str, usize> = HashMap::new();
    for (i, q) in config.queues.iter().enumerate() {
        let at = |k: &str| format!("queues[{i}].{k}");
        if !is_name(&q.name) {
            return Err(doc.invalid(at("name"), "queue names are letters, digits, '-', '_', '.'"));
        }
        if let Some(first) = queues.insert(&q.name, i) {
            let line = doc.line_of(&format!("queues[{first}].name"));
            return Err(doc.invalid(
                at("name"),
                format!(
                    "duplicate queue {:?} (first defined on line {line})",
                    q.name
                ),
            ));
        }
        skill_levels(at("skills"), &q.skills)?;
        if q.relax_after_secs.windows(2).any(|w| w[0] >= w[1]) {
            return Err(doc.invalid(at("relax_after_secs"), "must be increasing"));
        }
        if !(1..=600).contains(&q.ring_timeout_secs) {
            return Err(doc.invalid(
                at("ring_timeout_secs"),
                format!("{} is out of range 1..=600", q.ring_timeout_secs),
            ));
        }
        if q.wrap_up_secs > 3600 {
            return Err(doc.invalid(
                at("wrap_up_secs"),
                format!("{} is out of range 0..=3600", q.wrap_up_secs),
            ));
        }
        if !(q.callback_key.is_empty()
            || (q.callback_key.len() == 1 && "0123456789*#".contains(&q.callback_key)))
        {
            return Err(doc.invalid(
                at("callback_key"),
                format!("{:?} is not one DTMF digit", q.callback_key),
            ));
        }
        if let Some(t) = &q.callback_trunk {
            match config.trunk(t) {
                None => {
                    return Err(doc.invalid(at("callback_trunk"), format!("unknown trunk {t:?}")))
                }
                Some(tr) if tr.outbound.is_none() => {
                    return Err(doc.invalid(
                        at("callback_trunk"),
                        format!("trunk {t:?} has no outbound section"),
                    ))
                }
                Some(_) => {}
            }
        }
        if q.priority_aging > 1000 {
            return Err(doc.invalid(at("priority_aging"), "at most 1000"));
        }
        if let crate::acd::Music::Named(m) = &q.music {
            if m != "ringback" && m != "none" {
                return Err(doc.invalid(
                    at("music"),
                    format!("{m:?}: \"ringback\", \"none\" or {{ file = \"...\" }}"),
                ));
            }
        }
    }
    for (i, q) in config.queues.iter().enumerate() {
        use crate::acd::Overflow;
        let key = format!("queues[{i}].overflow");
        match &q.overflow {
            Some(Overflow::Queue(n)) if n == &q.name => {
                return Err(doc.invalid(key, "a queue cannot overflow into itself"));
            }
            Some(Overflow::Queue(n)) if !queues.contains_key(n.as_str()) => {
                return Err(doc.invalid(key, format!("unknown queue {n:?}")));
            }
            Some(Overflow::User(u)) if config.user(u).is_none() => {
                return Err(doc.invalid(key, format!("unknown user {u:?}")));
            }
            Some(Overflow::Flow(f)) if !config.flows.contains_key(f) => {
                return Err(doc.invalid(key, format!("unknown flow {f:?}")));
            }
            Some(Overflow::Hangup(c)) if !(400..=699).contains(c) => {
                return Err(doc.invalid(key, format!("hangup code {c} is out of range 400..=699")));
            }
            _ => {}
        }
    }
    let mut agents: HashMap<&str, usize> = HashMap::new();
    let mut phones: HashMap<&str, usize> = HashMap::new();
    for (i, a) in config.agents.iter().enumerate() {
        let at = |k: &str| format!("agents[{i}].{k}");
        if !is_name(&a.name) {
            return Err(doc.invalid(at("name"), "agent names are letters, digits, '-', '_', '.'"));
        }
        if let Some(first) = agents.insert(&a.name, i) {
            let line = doc.line_of(&format!("agents[{first}].name"));
            return Err(doc.invalid(
                at("name"),
                format!(
                    "duplicate agent {:?} (first defined on line {line})",
                    a.name
                ),
            ));
        }
        if a.users.is_empty() {
            return Err(doc.invalid(at("users"), "an agent needs at least one phone (a user)"));
        }
        for (k, u) in a.users.iter().enumerate() {
            if config.user(u).is_none() {
                return Err(doc.invalid(
                    format!("agents[{i}].users[{k}]"),
                    format!("unknown user {u:?}"),
                ));
            }
            if let Some(other) = phones.insert(u, i) {
                return Err(doc.invalid(
                    format!("agents[{i}].users[{k}]"),
                    format!(
                        "user {u:?} is already agent {:?}'s phone",
                        config.agents[other].name
                    ),
                ));
            }
        }
        skill_levels(at("skills"), &a.skills)?;
        if a.queues.is_empty() {
            return Err(doc.invalid(at("queues"), "an agent serves at least one queue"));
        }
        for (k, q) in a.queues.iter().enumerate() {
            if !queues.contains_key(q.as_str()) {
                return Err(doc.invalid(
                    format!("agents[{i}].queues[{k}]"),
                    format!("unknown queue {q:?}"),
                ));
            }
        }
    }
    Ok(())
}
