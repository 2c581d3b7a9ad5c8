//! rtcp: being written.
