//! dtmf: being written.
