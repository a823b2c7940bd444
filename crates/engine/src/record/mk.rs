//! What `assert_mk` records: every APQN of a CCA token as read (its `mkvps` master-key
//! registers with their states and patterns), and the MK types sysfs does not show.

use serde::{Deserialize, Serialize};

use crate::record::wk::ApqnStatus;
use mkplan_plan::model::TokenId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkTable {
    pub token: Option<TokenId>,
    pub apqns: Vec<ApqnStatus>,
    /// MK types the token declares that sysfs has no line for (SYM): not checked.
    #[serde(default)]
    pub not_shown: Vec<String>,
}
