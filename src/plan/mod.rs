//! The pure decision core. `plan(spec, state, observed, now)` says what to do
//! now and when to be called again. It reads no clock, cluster or network:
//! the controller observes, plans, then writes the new state before acting,
//! so a restart resumes from the state without repeating an action.

mod lifecycle;
mod state;

pub use lifecycle::plan;
pub use state::*;

#[cfg(test)]
mod invariants;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod robust_tests;
#[cfg(test)]
mod sim;
