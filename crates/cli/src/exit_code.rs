//! Exit codes: a documented, stable contract (README "Exit codes"). Every command maps its
//! outcome to one of these in one place.

/// The command did what was asked: the plan is valid, the run succeeded.
pub const SUCCESS: i32 = 0;
/// The command failed for a reason other than the plan (I/O other than reading the plan,
/// internal error).
pub const FAILURE: i32 = 1;
/// 2: invalid plan, unreadable plan file, or wrong command line. A plan that cannot be read
/// (missing, no permission, not UTF-8, too large) or trusted (others could write it), and
/// an approvals file that cannot, are reported like an invalid plan: the operator named the
/// wrong thing, and nothing was attempted.
pub const INVALID: i32 = 2;
/// `check` or `run`/`resume`: a precondition does not hold (the host, or a state directory
/// or signing key others could write); nothing was changed.
pub const PRECONDITION: i32 = 3;
/// A checkpoint was denied: the run was aborted (its rescue and always steps ran).
pub const ABORTED: i32 = 4;
/// `resume`: a step was interrupted half-way and needs `--retry-step` or `--accept-step`.
pub const NEEDS_DECISION: i32 = 5;
/// `run`/`resume`: the run parked at a checkpoint with `park: true` to wait for work outside
/// this host (the TKE activation); nothing failed and nothing is half-done; `mkplan resume
/// RUN` continues it once that work is done.
pub const PARKED: i32 = 6;
/// `report verify`: every signature verifies, but co-signatures the plan requires are
/// missing (`report cosign` adds them).
pub const INCOMPLETE: i32 = 7;
