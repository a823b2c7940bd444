//! Which systemd unit a process that uses a token runs in (for `mkplan init`): the real host
//! answers from `/proc/<pid>/cgroup`, the simulated host (whose processes cannot be put in
//! cgroups) from its own records.

use crate::record::users::TokenUser;

/// Where a process runs, for the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A system service (`….service`).
    Unit(String),
    /// No service: a scope, a user manager's unit, or nothing systemd knows; where, if known.
    Outside(Option<String>),
}

/// Tells which unit a token user runs in.
pub trait UnitOf {
    fn unit_of(&self, user: &TokenUser) -> Placement;
}
