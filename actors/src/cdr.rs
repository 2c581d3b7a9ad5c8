//! Call detail records: one per call, written once when the call ends.
//!
//! Keys are built for the reports' range scans: the main family is ordered
//! by end time (`end ms as u64 big-endian ++ call-id`), and the by-queue and
//! by-agent families prefix the same key with the queue or agent name. The
//! Call-ID in the key makes a record unique: writing it again overwrites,
//! never doubles.

use crate::store::{cf, Op, Store, StoreError};
use serde::{Deserialize, Serialize};

/// How the call ended, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Answered (whatever ended it later).
    Answered,
    /// The callee was busy (486, 600).
    Busy,
    /// Nobody answered (480, 408, ring timeout).
    NoAnswer,
    /// The caller gave up before an answer (CANCEL).
    Cancelled,
    /// Refused or failed (404, 403, 488, 5xx, ...).
    Failed,
}

impl Disposition {
    /// For a call never answered, from the final code the caller got.
    pub fn of_code(code: u16, cancelled: bool) -> Disposition {
        match code {
            487 if cancelled => Disposition::Cancelled,
            486 | 600 => Disposition::Busy,
            480 | 408 => Disposition::NoAnswer,
            _ if cancelled => Disposition::Cancelled,
            _ => Disposition::Failed,
        }
    }

    /// The snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no_answer",
            Disposition::Cancelled => "cancelled",
            Disposition::Failed => "failed",
        }
    }
}

/// Which way the call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From a trunk.
    Inbound,
    /// From a user to a trunk.
    Outbound,
    /// Between local users (or to a room).
    Internal,
}

/// One call's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cdr {
    /// Leg A's Call-ID.
    pub call_id: String,
    /// Inbound, outbound or internal.
    pub direction: Direction,
    /// The caller's number or user (From's user part).
    pub caller: String,
    /// The caller's display name, if given.
    pub caller_name: Option<String>,
    /// What the caller dialed (the DID for inbound calls).
    pub dialed: String,
    /// Where the call went: a user, `trunk:number`, `room:name`.
    pub destination: Option<String>,
    /// The trunk the call came in on.
    pub trunk: Option<String>,
    /// The trunk the call went out through.
    pub trunk_out: Option<String>,
    /// The trunk gateway that carried it (ip:port).
    #[serde(default)]
    pub gateway: Option<String>,
    /// When the INVITE arrived, unix ms.
    pub start_ms: u64,
    /// When it was answered, unix ms.
    pub answer_ms: Option<u64>,
    /// When it ended, unix ms.
    pub end_ms: u64,
    /// How it ended.
    pub disposition: Disposition,
    /// The final SIP code the caller got (200 when answered).
    pub cause: u16,
    /// Why it ended: "caller hung up", "callee hung up", "media timeout",
    /// "no answer", "busy", ...
    pub reason: String,
    /// Queue the call waited in (ACD).
    pub queue: Option<String>,
    /// Agent who took it (ACD).
    pub agent: Option<String>,
    /// Ring or queue time before the answer, ms.
    pub wait_ms: u64,
    /// Answer to end, ms.
    pub talk_ms: u64,
    /// Recording files of the call.
    pub recordings: Vec<String>,
    /// IVR nodes visited, in order (IVR flows).
    pub ivr_path: Vec<String>,
    /// DTMF digits the parties sent.
    pub digits: String,
}

/// Big-endian end time then Call-ID: the main family's key.
pub fn key(end_ms: u64, call_id: &str) -> Vec<u8> {
    let mut k = end_ms.to_be_bytes().to_vec();
    k.extend_from_slice(call_id.as_bytes());
    k
}

impl Cdr {
    /// This record's key in the main family.
    pub fn key(&self) -> Vec<u8> {
        key(self.end_ms, &self.call_id)
    }

    /// The writes that store this record and its index entries (one batch).
    pub fn ops(&self) -> Vec<Op> {
        let key = self.key();
        let mut ops = Vec::with_capacity(3);
        for (family, name) in [
            (cf::CDRS_BY_QUEUE, &self.queue),
            (cf::CDRS_BY_AGENT, &self.agent),
        ] {
            if let Some(name) = name {
                let mut k = name.as_bytes().to_vec();
                k.push(0);
                k.extend_from_slice(&key);
                ops.push(Op::Put {
                    cf: family,
                    key: k,
                    value: key.clone(),
                });
            }
        }
        ops.push(Op::Put {
            cf: cf::CDRS,
            key,
            value: serde_json::to_vec(self).unwrap_or_default(),
        });
        ops
    }
}

/// A CDR query: ended in `since_ms..until_ms`, optionally of one queue or agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Earliest end time, unix ms (inclusive).
    #[serde(default)]
    pub since_ms: u64,
    /// Latest end time, unix ms (exclusive); None: now and later.
    #[serde(default)]
    pub until_ms: Option<u64>,
    /// Only this queue's calls.
    #[serde(default)]
    pub queue: Option<String>,
    /// Only this agent's calls.
    #[serde(default)]
    pub agent: Option<String>,
    /// At most this many (default 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The records matching `q`, oldest first.
pub fn query(store: &dyn Store, q: &Query) -> Result<Vec<Cdr>, StoreError> {
    let limit = q.limit.unwrap_or(1000);
    let from = q.since_ms.to_be_bytes();
    let to = q.until_ms.map(u64::to_be_bytes);
    let decode = |v: &[u8]| serde_json::from_slice::<Cdr>(v).ok();
    let index = match (&q.queue, &q.agent) {
        (Some(queue), _) => Some((cf::CDRS_BY_QUEUE, queue)),
        (None, Some(agent)) => Some((cf::CDRS_BY_AGENT, agent)),
        (None, None) => None,
    };
    let Some((family, name)) = index else {
        let rows = store.scan_range(cf::CDRS, &from, to.as_ref().map(|t| &t[..]), limit)?;
        return Ok(rows.iter().filter_map(|(_, v)| decode(v)).collect());
    };
    let prefixed = |t: &[u8]| {
        let mut k = name.as_bytes().to_vec();
        k.push(0);
        k.extend_from_slice(t);
        k
    };
    let upper = match &to {
        Some(t) => prefixed(t),
        // Just past every key with this name's prefix.
        None => prefixed(&[0xff; 9]),
    };
    // With both filters the agent is checked on each record, so the limit
    // applies after that check.
    let both = q.queue.is_some() && q.agent.is_some();
    let scan_limit = if both { usize::MAX } else { limit };
    let rows = store.scan_range(family, &prefixed(&from), Some(&upper), scan_limit)?;
    let mut out = Vec::with_capacity(rows.len().min(limit));
    for (_, main_key) in rows {
        if out.len() >= limit {
            break;
        }
        if let Some(c) = store.get(cf::CDRS, &main_key)?.as_deref().and_then(decode) {
            if q.agent.is_none() || c.agent == q.agent {
                out.push(c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RocksStore;

    pub(super) fn cdr(call_id: &str, end_ms: u64, queue: Option<&str>, agent: Option<&str>) -> Cdr {
        Cdr {
            call_id: call_id.into(),
            direction: Direction::Inbound,
            caller: "5551234".into(),
            caller_name: None,
            dialed: "4008001000".into(),
            destination: Some("1001".into()),
            trunk: Some("carrier".into()),
            trunk_out: None,
            gateway: None,
            start_ms: end_ms - 10_000,
            answer_ms: Some(end_ms - 8_000),
            end_ms,
            disposition: Disposition::Answered,
            cause: 200,
            reason: "caller hung up".into(),
            queue: queue.map(Into::into),
            agent: agent.map(Into::into),
            wait_ms: 2_000,
            talk_ms: 8_000,
            recordings: vec![],
            ivr_path: vec![],
            digits: String::new(),
        }
    }

    #[test]
    fn ranges_by_time_queue_and_agent() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), false).unwrap();
        let all = [
            cdr("a", 1_000, Some("sales"), Some("alice")),
            cdr("b", 2_000, Some("support"), Some("alice")),
            cdr("c", 3_000, Some("sales"), Some("bob")),
            cdr("d", 4_000, None, None),
        ];
        for c in &all {
            s.write(&c.ops()).unwrap();
        }
        // Written twice: still one record.
        s.write(&all[0].ops()).unwrap();
        let ids = |v: Vec<Cdr>| v.into_iter().map(|c| c.call_id).collect::<Vec<_>>();
        let q = |since_ms, until_ms| Query {
            since_ms,
            until_ms,
            ..Default::default()
        };
        assert_eq!(ids(query(&s, &q(0, None)).unwrap()), ["a", "b", "c", "d"]);
        assert_eq!(ids(query(&s, &q(2_000, Some(4_000))).unwrap()), ["b", "c"]);
        let sales = Query {
            queue: Some("sales".into()),
            ..Default::default()
        };
        assert_eq!(ids(query(&s, &sales).unwrap()), ["a", "c"]);
        let alice_late = Query {
            agent: Some("alice".into()),
            since_ms: 1_500,
            ..Default::default()
        };
        assert_eq!(ids(query(&s, &alice_late).unwrap()), ["b"]);
        let sales_bob = Query {
            queue: Some("sales".into()),
            agent: Some("bob".into()),
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(
            ids(query(&s, &sales_bob).unwrap()),
            ["c"],
            "limit after the agent filter"
        );
        let limited = Query {
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(ids(query(&s, &limited).unwrap()), ["a"]);
        assert_eq!(query(&s, &q(0, None)).unwrap()[0], all[0], "round trip");
    }

    #[test]
    fn dispositions_from_codes() {
        assert_eq!(Disposition::of_code(487, true), Disposition::Cancelled);
        assert_eq!(Disposition::of_code(486, false), Disposition::Busy);
        assert_eq!(Disposition::of_code(480, false), Disposition::NoAnswer);
        assert_eq!(Disposition::of_code(404, false), Disposition::Failed);
    }
}

/// Deletes CDRs (and their index entries) that ended before `cutoff_ms`,
/// and events from before `events_cutoff_ms` (None: keep). The index
/// families are keyed by name first, so their old entries are found by
/// scanning them (the main family is ordered by time: one range delete).
pub fn expire(
    store: &dyn Store,
    cutoff_ms: Option<u64>,
    events_cutoff_ms: Option<u64>,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    if let Some(cutoff) = cutoff_ms {
        let old = store.scan_range(cf::CDRS, &[], Some(&cutoff.to_be_bytes()), usize::MAX)?;
        removed = old.len();
        for family in [cf::CDRS_BY_QUEUE, cf::CDRS_BY_AGENT] {
            let stale: Vec<Op> = store
                .scan_prefix(family, b"")?
                .into_iter()
                .filter(|(_, main_key)| {
                    main_key
                        .get(..8)
                        .is_some_and(|t| t < &cutoff.to_be_bytes()[..])
                })
                .map(|(key, _)| Op::Delete { cf: family, key })
                .collect();
            store.write(&stale)?;
        }
        store.delete_range(cf::CDRS, &[0u8; 8], &cutoff.to_be_bytes())?;
    }
    if let Some(cutoff) = events_cutoff_ms {
        store.delete_range(cf::EVENTS, &[0u8; 8], &cutoff.to_be_bytes())?;
    }
    Ok(removed)
}

#[cfg(test)]
mod retention {
    use super::*;
    use crate::store::RocksStore;

    #[test]
    fn old_records_expire_with_their_index_entries() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), false).unwrap();
        for (id, end) in [("old", 1_000u64), ("new", 5_000)] {
            let mut c = super::tests::cdr(id, end, None, None);
            c.queue = Some("sales".into());
            s.write(&c.ops()).unwrap();
        }
        s.write(&[Op::Put {
            cf: cf::EVENTS,
            key: [1_000u64.to_be_bytes(), 0u64.to_be_bytes()].concat(),
            value: b"{}".to_vec(),
        }])
        .unwrap();
        assert_eq!(expire(&s, Some(2_000), Some(2_000)).unwrap(), 1);
        let left: Vec<String> = query(&s, &Query::default())
            .unwrap()
            .into_iter()
            .map(|c| c.call_id)
            .collect();
        assert_eq!(left, ["new"]);
        let sales = Query {
            queue: Some("sales".into()),
            ..Default::default()
        };
        assert_eq!(query(&s, &sales).unwrap().len(), 1);
        assert_eq!(
            s.scan_prefix(cf::CDRS_BY_QUEUE, b"").unwrap().len(),
            1,
            "index entry gone too"
        );
        assert!(s.scan_prefix(cf::EVENTS, b"").unwrap().is_empty());
    }
}
