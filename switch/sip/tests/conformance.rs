//! RFC 4475 and RFC 5118 torture messages: every row of the shared
//! `conformance/INDEX.tsv` is parsed and checked against its verdict.
//! The vectors are read in place (default `../shared/conformance` beside the
//! workspace; `SWITCHBOARD_CONFORMANCE` overrides). A missing folder fails.

use bytes::Bytes;
use sip::validate::{check_request, UasPolicy};
use sip::{parse, Contacts, Framing, Message, Method, Request, SipMessage, Uri};
use std::path::PathBuf;

fn root() -> PathBuf {
    if let Ok(p) = std::env::var("SWITCHBOARD_CONFORMANCE") {
        return PathBuf::from(p);
    }
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    ws.join("../shared/conformance")
}

struct Row {
    file: String,
    expected: String,
    note: String,
}

fn rows() -> Vec<Row> {
    let index = root().join("INDEX.tsv");
    let text = std::fs::read_to_string(&index)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", index.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 5, "bad INDEX row: {l}");
            Row {
                file: f[0].to_owned(),
                expected: f[3].to_owned(),
                note: f[4].to_owned(),
            }
        })
        .collect()
}

/// The bytes of a vector. RFC 5118's printed Content-Length values do not
/// match three bodies (a transcription artifact the INDEX notes); those
/// tests are about IPv6 syntax, so the length is recomputed in memory.
fn load(row: &Row) -> Bytes {
    let raw = std::fs::read(root().join(&row.file)).unwrap();
    if !(row.file.starts_with("rfc5118/") && row.note.contains("Content-Length")) {
        return Bytes::from(raw);
    }
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| {
            if l.starts_with("Content-Length") {
                format!("Content-Length: {}", body.len())
            } else {
                l.to_owned()
            }
        })
        .collect();
    Bytes::from(format!("{}\r\n\r\n{body}", head.join("\r\n")))
}

fn request(m: &Message) -> &Request {
    match m {
        Message::Request(r) => r,
        Message::Response(_) => panic!("expected a request"),
    }
}

fn sip_user(u: &Uri) -> String {
    u.sip()
        .and_then(|s| s.user_decoded())
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

/// Field checks for valid messages: the parse must be right, not just Ok.
fn check_fields(name: &str, m: &Message) {
    match name {
        "wsinv.dat" => {
            let r = request(m);
            assert_eq!(r.method, Method::Invite);
            assert_eq!(r.to().unwrap().tag(), Some("1918181833n"));
            assert_eq!(r.from().unwrap().tag(), Some("98asjd8"));
            assert_eq!(r.max_forwards(), Some(68));
            assert_eq!(r.cseq().unwrap().seq, 9);
            let vias = r.vias().unwrap();
            assert_eq!(vias.len(), 3);
            assert_eq!(vias[1].transport, "TCP");
            assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
            assert_eq!(r.headers.get(&sip::Name::Subject), Some(""));
            assert_eq!(
                r.headers.get(&sip::Name::parse("NewFangledHeader")),
                Some("newfangled value continued newfangled value")
            );
            let Contacts::List(c) = r.contacts().unwrap() else {
                panic!()
            };
            assert_eq!(c[0].display.as_deref(), Some("Quoted string \"\""));
            assert_eq!(c[0].param("q"), Some("0.33"));
            assert_eq!(r.body.len(), 150);
        }
        "intmeth.dat" => {
            let r = request(m);
            assert_eq!(
                r.method.as_str(),
                "!interesting-Method0123456789_*+`.%indeed'~"
            );
            assert_eq!(
                r.to().unwrap().display.as_deref(),
                Some("BEL:\x07 NUL:\0 DEL:\x7f")
            );
        }
        "esc01.dat" => {
            let r = request(m);
            assert_eq!(sip_user(&r.uri), "sips:user@example.com");
            assert_eq!(sip_user(&r.to().unwrap().uri), "user");
            assert_eq!(sip_user(&r.from().unwrap().uri), "I have spaces");
        }
        "escnull.dat" => {
            let Contacts::List(c) = request(m).contacts().unwrap() else {
                panic!()
            };
            assert_eq!(c.len(), 2);
            assert_ne!(c[0].uri, c[1].uri);
        }
        "esc02.dat" => {
            let r = request(m);
            assert_eq!(r.method.as_str(), "RE%47IST%45R");
            let Contacts::List(c) = r.contacts().unwrap() else {
                panic!()
            };
            assert_eq!(c.len(), 2);
        }
        "lwsdisp.dat" => assert_eq!(
            request(m).from().unwrap().display.as_deref(),
            Some("caller")
        ),
        "longreq.dat" => assert!(request(m).headers.iter().any(|h| h.value.len() > 500)),
        "dblreq.dat" => {
            let r = request(m);
            assert_eq!(r.method, Method::Register);
            assert!(r.body.is_empty());
        }
        "semiuri.dat" => assert_eq!(
            request(m).uri.sip().unwrap().user.as_deref(),
            Some("user;par=u%40example.net")
        ),
        "transports.dat" => {
            let t: Vec<String> = request(m)
                .vias()
                .unwrap()
                .into_iter()
                .map(|v| v.transport)
                .collect();
            assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
        }
        "mpart01.dat" => {
            let r = request(m);
            assert_eq!(r.content_type().as_deref(), Some("multipart/mixed"));
            assert_eq!(
                r.body.len(),
                r.headers
                    .get(&sip::Name::ContentLength)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            );
        }
        "unreason.dat" => {
            let Message::Response(r) = m else { panic!() };
            assert_eq!(r.code, 200);
            assert!(r.reason.starts_with("= 2**3 * 5**2"));
        }
        "noreason.dat" => {
            let Message::Response(r) = m else { panic!() };
            assert_eq!((r.code, r.reason.as_str()), (100, ""));
        }
        "inv2543.dat" => {
            let r = request(m);
            assert!(r.from().unwrap().tag().is_none());
            assert!(!r.body.is_empty(), "body is the rest of the datagram");
        }
        "ipv6-good" | "port-ambiguous" => {
            let u = request(m).uri.sip().unwrap().clone();
            assert!(matches!(u.host, sip::Host::Ip(std::net::IpAddr::V6(_))));
            assert_eq!(u.port, None, ":5070 inside [] is part of the address");
        }
        "port-unambiguous" => assert_eq!(request(m).uri.sip().unwrap().port, Some(5070)),
        "via-received-param-with-delim" | "via-received-param-no-delim" => {
            let v = request(m).top_via().unwrap();
            let rec = v.param("received").unwrap().trim_matches(['[', ']']);
            assert!(rec.parse::<std::net::Ipv6Addr>().is_ok(), "{rec}");
        }
        "mult-ip-in-header" => {
            let vias = request(m).vias().unwrap();
            assert_eq!(vias.len(), 3);
            assert_eq!(vias[0].port, Some(6050));
        }
        "ipv4-mapped-ipv6"
        | "ipv6-bug-abnf-3-colons"
        | "ipv6-correct-abnf-2-colons"
        | "ipv6-in-sdp"
        | "mult-ip-in-sdp" => {
            assert!(request(m).top_via().is_ok());
        }
        _ => {}
    }
}

fn semantic_code(m: &Message) -> Option<u16> {
    check_request(request(m), &UasPolicy::default())
        .err()
        .map(|r| r.code)
}

#[test]
fn every_index_row_gets_its_verdict() {
    let rows = rows();
    assert!(rows.len() >= 60, "INDEX.tsv has {} rows", rows.len());
    let mut checked = 0;
    for row in &rows {
        let name = row.file.rsplit('/').next().unwrap().to_owned();
        let data = load(row);
        let parsed = parse(&data, Framing::Datagram);
        let ctx = format!(
            "{} ({}): {:?}",
            row.file,
            row.expected,
            parsed.as_ref().err()
        );
        let exp = row.expected.as_str();
        match exp {
            "n/a" => continue,
            "valid" => {
                let m = parsed.as_ref().unwrap_or_else(|e| panic!("{ctx}: {e}"));
                check_fields(&name, m);
            }
            "invalid:reject-or-accept" => {}
            e if e.starts_with("invalid:") => match &parsed {
                Err(_) => {}
                Ok(m @ Message::Request(_)) => assert_eq!(semantic_code(m), Some(400), "{ctx}"),
                Ok(_) => panic!("{ctx}: response should not parse"),
            },
            "semantic:error;unverified" => assert!(parsed.is_err(), "{ctx}"),
            e => {
                let m = parsed
                    .as_ref()
                    .unwrap_or_else(|err| panic!("{ctx}: must parse: {err}"));
                let code = match m {
                    Message::Request(_) => semantic_code(m),
                    Message::Response(_) => None,
                };
                match e.trim_start_matches("semantic:") {
                    "400-or-fallback" => assert!(matches!(code, None | Some(400)), "{ctx}"),
                    "416-or-404" => assert!(matches!(code, Some(416 | 404)), "{ctx}"),
                    "406-or-400" => assert!(matches!(code, Some(406 | 400)), "{ctx}"),
                    "400-at-registrar" => {
                        assert_eq!(code, None, "{ctx}");
                        assert!(
                            request(m).to().unwrap().uri.sip().is_none(),
                            "{ctx}: To is not SIP"
                        );
                    }
                    "483-at-proxy" => assert_eq!(request(m).max_forwards(), Some(0), "{ctx}"),
                    "200-or-401-or-405" => assert_eq!(code, None, "{ctx}"),
                    "discard" => assert!(matches!(m, Message::Response(_)), "{ctx}"),
                    "200" => {
                        assert_eq!(code, None, "{ctx}");
                        let Contacts::List(c) = request(m).contacts().unwrap() else {
                            panic!("{ctx}")
                        };
                        let uri = c[0].uri.sip().unwrap();
                        match name.as_str() {
                            "cparam01.dat" => {
                                assert_eq!(c[0].param("unknownparam"), Some(""), "contact-param");
                                assert!(uri.param("unknownparam").is_none(), "not a URI param");
                            }
                            "cparam02.dat" => assert_eq!(uri.param("unknownparam"), Some(None)),
                            "regescrt.dat" => assert_eq!(uri.headers[0].0, "Route"),
                            _ => {}
                        }
                    }
                    n => {
                        let want: u16 = n
                            .parse()
                            .unwrap_or_else(|_| panic!("{ctx}: unknown verdict"));
                        assert_eq!(code, Some(want), "{ctx}");
                    }
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 60, "checked {checked}");
}

/// The parser never panics: every prefix and a few mutations of every vector.
#[test]
fn no_panic_on_truncation_or_mutation() {
    for row in rows() {
        let data = load(&row);
        for i in 0..data.len() {
            let _ = parse(&data.slice(..i), Framing::Datagram);
            let _ = parse(&data.slice(i..), Framing::Stream);
        }
        let mut v = data.to_vec();
        for i in (0..v.len()).step_by(7) {
            v[i] = v[i].wrapping_add(0x55);
            let _ = parse(&Bytes::from(v.clone()), Framing::Datagram);
        }
    }
}
