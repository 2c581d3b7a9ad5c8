//! rtp: being written.
