//! Live guards that several step kinds share, each answering from the host and the whole
//! journal, never from one attempt alone. No step file imports another: what two kinds
//! share lives here.

pub mod backup;
pub mod mk;
pub mod mk_change;
pub mod mk_list;
pub mod resume;
pub mod tools;
pub mod until;
pub mod users;
pub mod wk;

use crate::kind::Failed;
use mkplan_plan::model::{Slot, TokenId};

/// Why a guard refuses, or cannot tell: each says what is in the way and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Design rule 8: a migration tool is rewriting the token.
    #[error(
        "refusing to {action}: a migration tool is rewriting token `{token}` (slot {slot}) right now: {}; hint: {hint}",
        tools.join("; ")
    )]
    ToolsRunning {
        action: String,
        token: TokenId,
        slot: Slot,
        /// Each process, with its pid and argv.
        tools: Vec<String>,
        hint: String,
    },
    #[error("token `{0}` is not in the plan")]
    UnknownToken(TokenId),
    /// The wrapping-key state differs from what a step expects: every APQN that differs.
    #[error("{}", .0.join("; "))]
    WkDiffers(Vec<String>),
    /// The state cannot be judged now, and no TKE action will change that: an APQN could
    /// not be read, a register reads `- -` (offline, or an interrupted read that lasted), or a
    /// card or queue is offline, deconfigured, check-stopped or of the wrong kind.
    #[error("{}", .0.join("; "))]
    WkUnknown(Vec<String>),
    /// Design rule 4 cannot be checked.
    #[error(
        "cannot confirm that the old WK is still current ({}); a restore could make every key unusable, so it is refused",
        .0.join("; ")
    )]
    WkUnreadable(Vec<String>),
    /// Design rule 4: the old WK is gone.
    #[error(
        "refusing to restore token `{token}`: the new WK is already current on {} — the old WK is gone (EP11 has no OLD register), so the backed-up blobs could never be used again. Fix forward instead: finish the migration (activate the new WK on every APQN) and re-run `assert_wk` with `current: new`",
        apqns.join(", ")
    )]
    Activated { token: TokenId, apqns: Vec<String> },
    /// Design rule 4 for CCA: the previous MK is in neither CUR nor OLD (or cannot be read).
    #[error(
        "refusing to restore CCA token `{token}`: {}. A CCA restore after the set is safe only while the OLD register still holds the previous MK; fix forward instead",
        problems.join("; ")
    )]
    PreviousMkGone {
        token: TokenId,
        problems: Vec<String>,
    },
}

/// A guard's refusal fails the step with its text.
impl<O> From<GuardError> for Failed<O> {
    fn from(error: GuardError) -> Self {
        Failed::step(error)
    }
}
