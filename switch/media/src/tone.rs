//! tone: being written.
