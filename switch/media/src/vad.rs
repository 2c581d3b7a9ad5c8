//! vad: being written.
