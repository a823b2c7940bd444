//! `assert_mk`: every APQN of a CCA token, read from sysfs, must show the master-key state
//! the plan asks for, for each MK type the token declares that sysfs prints (AES, APKA,
//! ASYM; zcrypt-sysfs.md 1.6, 1.6b). Read-only and fail-closed: an APQN that cannot be
//! read, is no CCA card, or reads `- -` (after the host's re-reads) fails the step.

use crate::guards::mk::assert_mk;
use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::record::mk::MkTable;
use mkplan_engine::step::{CheckContext, CheckReport, RunContext};
use mkplan_plan::model::{AssertMk, CurrentWk, NewMk, OldMk, StepKind};

fn describe(check: &AssertMk) -> String {
    let current = match check.current {
        CurrentWk::Expected => "the expected current MKs in CUR",
        CurrentWk::New => "the new MKs in CUR",
    };
    let new = match check.new {
        NewMk::Full => ", the new MKs fully loaded in NEW",
        NewMk::Empty => ", NEW empty",
        NewMk::Any => "",
    };
    let old = match check.old {
        OldMk::Expected => ", the previous MKs in OLD",
        OldMk::Any => "",
    };
    format!("{current}{new}{old}")
}

/// `assert_mk`.
pub(crate) struct AssertMkKind;

impl Kind for AssertMkKind {
    type Args = AssertMk;
    type Output = MkTable;

    fn run(check: &AssertMk, cx: &mut RunContext<'_>) -> KindResult<MkTable> {
        let token = &cx.plan.tokens[&check.token];
        match assert_mk(cx.host, token, check) {
            Ok(table) => {
                let unchecked = match table.not_shown.is_empty() {
                    true => String::new(),
                    false => format!(
                        " ({} not shown in sysfs: not checked)",
                        table.not_shown.join(", ")
                    ),
                };
                Ok(Done::new(format!(
                    "all {} APQNs of `{}` show {}{unchecked}",
                    table.apqns.len(),
                    check.token,
                    describe(check)
                ))
                .with(table))
            }
            Err((problems, _)) => Err(Failed::step(problems.join("; "))),
        }
    }

    fn check(check: &AssertMk, cx: &CheckContext<'_>) -> CheckReport {
        let token = &cx.plan.tokens[&check.token];
        match assert_mk(cx.host, token, check) {
            Ok(_) => CheckReport::WillRun(format!(
                "now: every APQN of `{}` shows {}",
                check.token,
                describe(check)
            )),
            // Unreadable, not CCA, or `- -`: a problem now, whatever the TKE will do.
            Err((problems, true)) => CheckReport::Blocked(format!(
                "the MK state cannot be known now, and no TKE action changes that: {}",
                problems.join("; ")
            )),
            Err((problems, false)) => {
                let tke_before = cx.plan.steps[..cx.step.index]
                    .iter()
                    .any(|s| matches!(&s.kind, StepKind::Checkpoint(c) if c.tke.is_some()));
                match tke_before && cx.step.section == mkplan_plan::model::Section::Steps {
                    true => CheckReport::WillRun(format!(
                        "not yet ({}); a TKE checkpoint before it is to bring about {}",
                        problems.join("; "),
                        describe(check)
                    )),
                    false => CheckReport::Blocked(problems.join("; ")),
                }
            }
        }
    }
}
