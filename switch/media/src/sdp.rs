//! sdp: being written.
