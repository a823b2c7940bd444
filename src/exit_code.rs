//! Exit codes: a documented, stable contract (README "Exit codes"). Every command maps its
//! outcome to one of these in one place.

/// The command did what was asked: the plan is valid, the run succeeded.
pub const SUCCESS: i32 = 0;
/// The command failed for a reason other than the plan (I/O, internal error).
pub const FAILURE: i32 = 1;
/// The plan is invalid, or the command line is wrong.
pub const INVALID: i32 = 2;
