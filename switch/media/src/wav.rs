//! wav: being written.
