//! `assert_wk`: every APQN of the token, read from sysfs, must show the wrapping-key state
//! the plan asks for (zcrypt-sysfs.md 1.5, 1.7), and the token's `ep11tok.conf` must agree
//! with the plan (opencryptoki-ep11.md 3.2). Read-only; the same check
//! ([`read_and_evaluate`]) serves `check`, `run`, checkpoints' `until`, and the live re-checks
//! of other steps.

use crate::guards::GuardError;
use crate::guards::wk::read_and_evaluate;
use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::record::wk::WkTable;
use mkplan_engine::step::{CheckContext, CheckReport, RunContext};
use mkplan_plan::model::{AssertWk, CurrentWk, NewWk, StepKind};

fn describe(check: &AssertWk) -> String {
    let current = match check.current {
        CurrentWk::Expected => "the expected current WK",
        CurrentWk::New => "the new WK as current",
    };
    let new = match check.new {
        NewWk::Committed => "the new WK committed",
        NewWk::Uncommitted => "the new WK loaded, uncommitted",
        NewWk::Empty => "an empty NEW register",
        NewWk::Any => "any known NEW register state",
    };
    format!("{current} and {new}")
}

/// `assert_wk`.
pub(crate) struct AssertWkKind;

impl Kind for AssertWkKind {
    type Args = AssertWk;
    type Output = WkTable;

    fn run(check: &AssertWk, cx: &mut RunContext<'_>) -> KindResult<WkTable> {
        match read_and_evaluate(cx.host, cx.plan, check) {
            Ok(table) => Ok(Done::new(format!(
                "all {} APQNs of `{}` show {}",
                table.apqns.len(),
                check.token,
                describe(check)
            ))
            .with(table)),
            Err(problems) => Err(Failed::step(problems)),
        }
    }

    fn check(check: &AssertWk, cx: &CheckContext<'_>) -> CheckReport {
        match read_and_evaluate(cx.host, cx.plan, check) {
            Ok(_) => CheckReport::WillRun(format!(
                "now: every APQN of `{}` shows {}",
                check.token,
                describe(check)
            )),
            // Unreadable, offline or `- -`: a problem now, whatever the TKE will do.
            Err(problems @ GuardError::WkUnknown(_)) => CheckReport::Blocked(format!(
                "the WK state cannot be known now, and no TKE action changes that: {problems}"
            )),
            Err(problems) => {
                // A TKE checkpoint earlier in the plan is expected to bring the state about.
                let after_tke = cx
                    .earlier
                    .iter()
                    .any(|s| matches!(&s.kind, StepKind::Checkpoint(c) if c.tke.is_some()));
                if after_tke {
                    CheckReport::WillRun(format!(
                        "does not hold yet, as expected before the earlier TKE checkpoint: {problems}"
                    ))
                } else {
                    CheckReport::Blocked(problems.to_string())
                }
            }
        }
    }
}
