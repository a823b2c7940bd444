//! The execution engine: runs a validated plan step by step with a durable journal,
//! Ansible-style rescue/always, checkpoints with identity, interruption and resume. It emits
//! events; the journal, logs, progress and recap consume them.

pub mod access;
pub mod approvals;
pub mod cancel;
pub mod clock;
pub mod crash_hooks;
pub mod digest;
pub mod end_state;
pub mod error;
pub mod events;
pub mod executor;
pub mod journal;
pub mod keylist;
pub mod lifecycle;
pub mod lock;
pub mod origin;
pub mod outcome;
pub mod ports;
pub mod preflight;
pub mod record;
pub mod recorder;
pub mod retention;
pub mod rundir;
pub mod secret;
pub mod signed_approval;
pub mod sinks;
pub mod state;
pub mod stdio;
pub mod step;
pub mod summary;
pub mod trust;
