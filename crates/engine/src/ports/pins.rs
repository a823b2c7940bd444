//! Where a token PIN comes from.

use crate::ports::operator::Operator;
use crate::secret::Pin;
use mkplan_plan::model::PinSource;

/// Reads a PIN from the source the plan names: an environment variable of mkplan's (through
/// the operator), a file only its owner can read (under the host root), or a no-echo prompt.
/// Errors say where it was looked for, never what it is.
pub trait PinReader: Send + Sync {
    /// `what` names the PIN in messages (`token `ep11``, `report-signing token`).
    fn read(&self, source: &PinSource, operator: &dyn Operator, what: &str) -> Result<Pin, String>;
}
