//! A checkpoint's `until`, read live with the guard of the step kind it names: `assert_wk`
//! (an EP11 token's WK registers and `ep11tok.conf`) or `assert_mk` (a CCA token's MK
//! registers per declared type). Both fail closed: what cannot be read is unknown, never
//! taken for a state.

use crate::guards::GuardError;
use crate::guards::mk::assert_mk;
use crate::guards::wk::read_and_evaluate;
use mkplan_engine::ports::host::HostView;
use mkplan_engine::record::mk::MkTable;
use mkplan_engine::record::wk::WkTable;
use mkplan_plan::model::{CurrentWk, Plan, Token, UntilCheck};

/// What an `until` that holds read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UntilRead {
    Wk(WkTable),
    Mk(MkTable),
}

/// Reads every APQN of the check's token and judges it. `Err`: every problem, as
/// `WkUnknown` when no TKE action can make the check hold (unreadable, `- -`, wrong card).
pub fn evaluate(
    host: &dyn HostView,
    plan: &Plan,
    check: &UntilCheck,
) -> Result<UntilRead, GuardError> {
    match check {
        UntilCheck::Wk(wk) => read_and_evaluate(host, plan, wk).map(UntilRead::Wk),
        UntilCheck::Mk(mk) => {
            let token = plan
                .tokens
                .get(&mk.token)
                .ok_or_else(|| GuardError::UnknownToken(mk.token.clone()))?;
            match assert_mk(host, token, mk) {
                Ok(table) => Ok(UntilRead::Mk(table)),
                Err((problems, true)) => Err(GuardError::WkUnknown(problems)),
                Err((problems, false)) => Err(GuardError::WkDiffers(problems)),
            }
        }
    }
}

/// What the TKE is waited for, in words: the new WK or MKs current (and, for CCA, NEW
/// empty) on every APQN of `token`.
pub fn awaited(check: &UntilCheck, token: &Token) -> String {
    let apqns = token
        .apqns
        .iter()
        .map(|a| a.lszcrypt())
        .collect::<Vec<_>>()
        .join(", ");
    let what = match (check, check.current()) {
        (UntilCheck::Wk(_), CurrentWk::New) => format!("the new WK {} current", token.wkvp_new),
        (UntilCheck::Wk(_), CurrentWk::Expected) => {
            format!("the new WK {} committed", token.wkvp_new)
        }
        (UntilCheck::Mk(_), CurrentWk::New) => format!("the new MKs ({}) set", mk_list(token)),
        (UntilCheck::Mk(_), CurrentWk::Expected) => {
            format!("the new MKs ({}) fully loaded", mk_list(token))
        }
    };
    format!(
        "the TKE: {what} on every APQN of token `{}` ({apqns})",
        token.id
    )
}

/// `AES 0x…, APKA 0x…`: a CCA token's new patterns.
pub fn mk_list(token: &Token) -> String {
    token
        .mks
        .iter()
        .map(|(mk, pair)| format!("{mk} {}", pair.new))
        .collect::<Vec<_>>()
        .join(", ")
}
