//! Durable state behind a trait with no RocksDB in its signature (the
//! tikv `engine_traits` idea), so domain actors read clearly and are tested
//! against the real store.
//!
//! Durability policy: every write goes through RocksDB's WAL; with
//! `sync_writes` (the default) each write is fsynced before the call
//! returns, so a registration the switch answered 200 for survives `kill -9`.

use rocksdb::{ColumnFamilyDescriptor, Options, WriteOptions, DB};
use std::path::Path;

/// Column families, one per kind of record.
pub mod cf {
    /// Registrations: key `user\0contact-uri`, value JSON [`crate::registrar::Binding`].
    pub const REGISTRATIONS: &str = "registrations";
    /// Call detail records (issue 4 fills this).
    pub const CDRS: &str = "cdrs";
    /// Interaction events (issue 4).
    pub const EVENTS: &str = "events";
    /// All families, for opening.
    pub const ALL: [&str; 3] = [REGISTRATIONS, CDRS, EVENTS];
}

/// Errors from the store: always "we failed", never the peer.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(String);

/// Key/value rows from a scan, in key order.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// The operations domain actors need.
pub trait Store: Send + Sync {
    /// Writes `value` at `key` in family `cf`.
    fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Deletes `key` from `cf`.
    fn delete(&self, cf: &str, key: &[u8]) -> Result<(), StoreError>;
    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Rows, StoreError>;
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
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            self.cf(cf)?,
            rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(|e| StoreError(e.to_string()))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
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
}
