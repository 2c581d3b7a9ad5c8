//! jitter: being written.
