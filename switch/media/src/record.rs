//! record: being written.
