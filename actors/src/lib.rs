//! `actors`: Switchboard's actix actor tree and its RocksDB store.
//!
//! ```text
//! Root (the binary's System)
//! ├── Shard × N     SIP transaction layer; messages dispatched by Call-ID hash
//! │   └── Call      one B2BUA call, started on its shard's arbiter; steers its
//! │                 media session in the RTP engine (net::rtp_engine threads)
//! └── Registrar     REGISTER, digest auth, location service (dashmap + store)
//! ```

pub mod acd;
mod anchor;
pub mod asr;
pub mod call;
pub mod cdr;
pub mod context;
pub mod events;
pub mod ivr;
pub mod metrics;
pub mod monitor;
pub mod prompts;
pub mod registrar;
pub mod shard;
pub mod store;
pub mod trunk_reg;

pub use context::Switch;
