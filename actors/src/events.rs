//! The event stream: what happens in the switch (calls starting, answered,
//! ended; registrations), fanned out to control-socket subscribers and kept
//! in the store's `events` family (a queue_log-like interaction history).

use crate::store::{cf, Op};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Dotted kind: `call.start`, `call.answer`, `call.end`, `registration`, ...
    pub kind: String,
    /// Unix ms.
    pub ts_ms: u64,
    /// Kind-specific fields.
    pub data: serde_json::Value,
}

impl Event {
    /// Whether a subscription to `kinds` wants this event: an empty list
    /// takes all; `call` takes `call.*`.
    pub fn matches(&self, kinds: &[String]) -> bool {
        kinds.is_empty()
            || kinds.iter().any(|k| {
                self.kind == *k
                    || (self.kind.starts_with(k.as_str())
                        && self.kind.as_bytes().get(k.len()) == Some(&b'.'))
            })
    }
}

/// The bus: a broadcast channel (slow subscribers lose the oldest events,
/// never slow the switch) plus the store.
pub struct Events {
    tx: tokio::sync::broadcast::Sender<Arc<Event>>,
    seq: AtomicU64,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: tokio::sync::broadcast::channel(4096).0,
            seq: AtomicU64::new(0),
        }
    }
}

impl Events {
    /// Publishes an event and queues it for the store (`records`).
    pub fn publish(&self, records: &crate::store::Writer, kind: &str, data: serde_json::Value) {
        let ev = Event {
            kind: kind.to_owned(),
            ts_ms: crate::context::unix_ms(),
            data,
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut key = ev.ts_ms.to_be_bytes().to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        records.write_later(vec![Op::Put {
            cf: cf::EVENTS,
            key,
            value: serde_json::to_vec(&ev).unwrap_or_default(),
        }]);
        let _ = self.tx.send(Arc::new(ev));
    }

    /// A new subscription.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_match_by_dotted_prefix() {
        let ev = Event {
            kind: "call.end".into(),
            ts_ms: 0,
            data: serde_json::Value::Null,
        };
        assert!(ev.matches(&[]));
        assert!(ev.matches(&["call".into()]));
        assert!(ev.matches(&["call.end".into()]));
        assert!(!ev.matches(&["call.start".into()]));
        assert!(!ev.matches(&["cal".into()]));
        assert!(!ev.matches(&["registration".into()]));
    }
}
