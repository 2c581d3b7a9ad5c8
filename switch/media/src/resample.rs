//! resample: being written.
