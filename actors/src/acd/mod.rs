//! The ACD: queues of waiting callers and the agents who answer them.
//!
//! [`router`] is the sans-IO routing core (who gets which caller).

pub mod router;
