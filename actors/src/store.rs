//! Durable state behind a trait with no RocksDB in its signature (the
//! tikv `engine_traits` idea), so domain actors read clearly and are tested
//! against the real store.
//!
//! Durability policy: every write goes through RocksDB's WAL; with
//! `sync_writes` (the default) each write is fsynced before the call
//! returns, so a registration the switch answered 200 for survives `kill -9`.
//! Records (CDRs and interaction events) go through [`Writer`]: one thread
//! that gathers whatever is queued into one atomic, fsynced batch (group
//! commit), so many calls ending together share one fsync. A call actor
//! waits for its CDR's batch before it answers the BYE that ended the call:
//! a call whose hang-up was acknowledged has a durable record.

use rocksdb::{ColumnFamilyDescriptor, Options, WriteOptions, DB};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Column families, one per kind of record.
pub mod cf {
    /// Registrations: key `user\0contact-uri`, value JSON [`crate::registrar::Binding`].
    pub const REGISTRATIONS: &str = "registrations";
    /// Call detail records: key `end ms (u64 BE) ++ call-id`, value JSON
    /// [`crate::cdr::Cdr`]; a time range is one scan.
    pub const CDRS: &str = "cdrs";
    /// CDR index by queue: key `queue\0 ++ end ms BE ++ call-id`, value the CDR key.
    pub const CDRS_BY_QUEUE: &str = "cdrs_by_queue";
    /// CDR index by agent: key `agent\0 ++ end ms BE ++ call-id`, value the CDR key.
    pub const CDRS_BY_AGENT: &str = "cdrs_by_agent";
    /// Interaction events (queue_log-like): key `ms BE ++ seq BE`, value JSON.
    pub const EVENTS: &str = "events";
    /// Agents' sessions: key agent name, value JSON `{"state", "reason"}`
    /// (logged in, paused with its reason), restored at start.
    pub const AGENTS: &str = "agents";
    /// Queued callbacks: key caller id (u64 BE), value JSON (queue, number,
    /// trunk, when the caller joined, priority); restored at start so a
    /// callback keeps its place across a restart.
    pub const CALLBACKS: &str = "callbacks";
    /// All families, for opening.
    pub const ALL: [&str; 7] = [
        REGISTRATIONS,
        CDRS,
        CDRS_BY_QUEUE,
        CDRS_BY_AGENT,
        EVENTS,
        AGENTS,
        CALLBACKS,
    ];
}

/// Errors from the store: always "we failed", never the peer.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(String);

/// Key/value rows from a scan, in key order.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// One write in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Writes `value` at `key` in family `cf`.
    Put {
        /// Column family.
        cf: &'static str,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Deletes `key` from `cf`.
    Delete {
        /// Column family.
        cf: &'static str,
        /// Key.
        key: Vec<u8>,
    },
}

/// The operations domain actors need.
pub trait Store: Send + Sync {
    /// Writes `value` at `key` in family `cf`.
    fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Deletes `key` from `cf`.
    fn delete(&self, cf: &str, key: &[u8]) -> Result<(), StoreError>;
    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Rows, StoreError>;
    /// Applies `ops` atomically (all or none), synced per the policy.
    fn write(&self, ops: &[Op]) -> Result<(), StoreError>;
    /// Up to `limit` rows with `from <= key < to` (no upper bound if `to`
    /// is None), in key order.
    fn scan_range(
        &self,
        cf: &str,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, StoreError>;
    /// The value at `key`, if any.
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes every key in `from..to` (one range tombstone; compaction
    /// reclaims the space).
    fn delete_range(&self, cf: &str, from: &[u8], to: &[u8]) -> Result<(), StoreError>;
}

/// The RocksDB store.
pub struct RocksStore {
    db: DB,
    sync: bool,
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, sync_writes: bool) -> Result<RocksStore, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = cf::ALL
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)
            .map_err(|e| StoreError(format!("open {}: {e}", path.display())))?;
        Ok(RocksStore {
            db,
            sync: sync_writes,
        })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError(format!("no column family {name}")))
    }

    /// Rows from `from` on while `keep(key, rows so far)` holds.
    fn scan_while(
        &self,
        cf: &str,
        from: &[u8],
        keep: impl Fn(&[u8], usize) -> bool,
    ) -> Result<Rows, StoreError> {
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            self.cf(cf)?,
            rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(|e| StoreError(e.to_string()))?;
            if !keep(&k, out.len()) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn write_opts(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.sync);
        w
    }
}

impl Store for RocksStore {
    fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_cf_opt(self.cf(cf)?, key, value, &self.write_opts())
            .map_err(|e| StoreError(e.to_string()))
    }

    fn delete(&self, cf: &str, key: &[u8]) -> Result<(), StoreError> {
        self.db
            .delete_cf_opt(self.cf(cf)?, key, &self.write_opts())
            .map_err(|e| StoreError(e.to_string()))
    }

    fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Rows, StoreError> {
        self.scan_while(cf, prefix, |k, _| k.starts_with(prefix))
    }

    fn write(&self, ops: &[Op]) -> Result<(), StoreError> {
        let mut batch = rocksdb::WriteBatch::default();
        for op in ops {
            match op {
                Op::Put { cf, key, value } => batch.put_cf(self.cf(cf)?, key, value),
                Op::Delete { cf, key } => batch.delete_cf(self.cf(cf)?, key),
            }
        }
        self.db
            .write_opt(batch, &self.write_opts())
            .map_err(|e| StoreError(e.to_string()))
    }

    fn scan_range(
        &self,
        cf: &str,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Rows, StoreError> {
        self.scan_while(cf, from, |k, n| to.is_none_or(|to| k < to) && n < limit)
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.cf(cf)?, key)
            .map_err(|e| StoreError(e.to_string()))
    }

    fn delete_range(&self, cf: &str, from: &[u8], to: &[u8]) -> Result<(), StoreError> {
        self.db
            .delete_range_cf_opt(self.cf(cf)?, from, to, &self.write_opts())
            .map_err(|e| StoreError(e.to_string()))
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// The records writer: one thread applying queued batches together, one
/// fsync per group (group commit). Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: std::sync::mpsc::Sender<(Vec<Op>, Option<Reply>)>,
    stats: Arc<WriterStats>,
}

/// What the writer has done, for metrics.
#[derive(Default, Debug)]
pub struct WriterStats {
    /// Batches written (one fsync each).
    pub groups: AtomicU64,
    /// Requests written.
    pub requests: AtomicU64,
    /// Failed groups.
    pub errors: AtomicU64,
    /// Total time spent writing, µs.
    pub write_us: AtomicU64,
}

impl Writer {
    /// Starts the writer thread on `store`. It ends when every clone is dropped.
    pub fn start(store: Arc<dyn Store>, latency: Option<prometheus::Histogram>) -> Writer {
        let (tx, rx) = std::sync::mpsc::channel::<(Vec<Op>, Option<Reply>)>();
        let stats = Arc::new(WriterStats::default());
        let st = stats.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    // Whatever else is queued goes in the same batch.
                    while group.len() < 1024 {
                        match rx.try_recv() {
                            Ok(more) => group.push(more),
                            Err(_) => break,
                        }
                    }
                    let ops: Vec<Op> = group.iter().flat_map(|(o, _)| o.iter().cloned()).collect();
                    let t = std::time::Instant::now();
                    let result = store.write(&ops).map_err(|e| e.to_string());
                    let took = t.elapsed();
                    st.write_us
                        .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
                    if let Some(h) = &latency {
                        h.observe(took.as_secs_f64());
                    }
                    st.groups.fetch_add(1, Ordering::Relaxed);
                    st.requests.fetch_add(group.len() as u64, Ordering::Relaxed);
                    if let Err(e) = &result {
                        st.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, records = group.len(), "records not stored");
                    }
                    for (_, reply) in group {
                        if let Some(reply) = reply {
                            let _ = reply.send(result.clone());
                        }
                    }
                }
            })
            .expect("spawn the store writer");
        Writer { tx, stats }
    }

    /// Queues `ops`; the future resolves once they are durable (or failed).
    pub fn write(
        &self,
        ops: Vec<Op>,
    ) -> impl std::future::Future<Output = Result<(), String>> + 'static {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let sent = self.tx.send((ops, Some(reply))).is_ok();
        async move {
            if !sent {
                return Err("the store writer has stopped".into());
            }
            rx.await
                .unwrap_or_else(|_| Err("the store writer has stopped".into()))
        }
    }

    /// Queues `ops` without waiting.
    pub fn write_later(&self, ops: Vec<Op>) {
        let _ = self.tx.send((ops, None));
    }

    /// Counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_scan_delete_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RocksStore::open(dir.path(), true).unwrap();
            s.put(cf::REGISTRATIONS, b"a\0x", b"1").unwrap();
            s.put(cf::REGISTRATIONS, b"a\0y", b"2").unwrap();
            s.put(cf::REGISTRATIONS, b"b\0z", b"3").unwrap();
            s.delete(cf::REGISTRATIONS, b"a\0y").unwrap();
        }
        let s = RocksStore::open(dir.path(), true).unwrap();
        let rows = s.scan_prefix(cf::REGISTRATIONS, b"a\0").unwrap();
        assert_eq!(rows, vec![(b"a\0x".to_vec(), b"1".to_vec())]);
        assert_eq!(s.scan_prefix(cf::REGISTRATIONS, b"").unwrap().len(), 2);
    }

    #[test]
    fn batches_are_atomic_and_ranges_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), true).unwrap();
        let put = |k: &[u8]| Op::Put {
            cf: cf::CDRS,
            key: k.to_vec(),
            value: k.to_vec(),
        };
        s.write(&[put(b"1"), put(b"2"), put(b"3"), put(b"4")])
            .unwrap();
        let bad = [
            put(b"5"),
            Op::Delete {
                cf: "nope",
                key: b"1".to_vec(),
            },
        ];
        assert!(s.write(&bad).is_err(), "unknown family");
        assert_eq!(s.get(cf::CDRS, b"5").unwrap(), None, "all or none");
        let keys = |r: Rows| r.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(s.scan_range(cf::CDRS, b"2", Some(b"4"), 10).unwrap()),
            [b"2", b"3"]
        );
        assert_eq!(
            keys(s.scan_range(cf::CDRS, b"2", None, 2).unwrap()),
            [b"2", b"3"]
        );
    }

    #[test]
    fn the_writer_groups_and_answers_each_request() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RocksStore::open(dir.path(), true).unwrap());
        let w = Writer::start(store.clone(), None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let futs: Vec<_> = (0..200u32)
            .map(|i| {
                w.write(vec![Op::Put {
                    cf: cf::EVENTS,
                    key: i.to_be_bytes().to_vec(),
                    value: vec![1],
                }])
            })
            .collect();
        for f in futs {
            rt.block_on(f).unwrap();
        }
        assert_eq!(store.scan_prefix(cf::EVENTS, b"").unwrap().len(), 200);
        let st = w.stats();
        assert_eq!(st.requests.load(Ordering::Relaxed), 200);
        assert!(st.groups.load(Ordering::Relaxed) <= 200);
        // The writer thread ends once its sender is gone; let it drop its
        // handle so the database closes before the process exits (RocksDB
        // torn down under a live thread at exit crashed this test once).
        drop(w);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while Arc::strong_count(&store) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "the writer let go of the store"
        );
    }
}
