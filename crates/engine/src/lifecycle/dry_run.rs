//! The dry run of `check`: every step's read-only check against the live host, in order,
//! after the preflight. A step's check gets a read-only view; nothing is changed.

use crate::events::StepRef;
use crate::ports::host::HostView;
use crate::preflight::Preflight;
use crate::step::{CheckContext, CheckReport, Steps};
use mkplan_plan::model::{ExpectedWkvpStep, Plan, RestoreStep, Section, Step, StepKind};
use mkplan_plan::template::evaluate_condition;

/// One step's verdict.
pub struct Checked<'p> {
    pub step: &'p Step,
    pub report: CheckReport,
}

/// The dry run: each section's verdicts, and where the run would be refused.
pub struct DryRun<'p> {
    pub sections: Vec<(Section, Vec<Checked<'p>>)>,
    /// The preflight (if it found problems), then each main step whose precondition fails.
    pub blocked: Vec<String>,
}

/// Checks every step of `plan` on `host`, with what the preflight found.
pub fn dry_run<'p>(
    plan: &'p Plan,
    steps: &dyn Steps,
    host: &dyn HostView,
    preflight: &Preflight,
) -> DryRun<'p> {
    let mut blocked = Vec::new();
    let problems = preflight.problems.len();
    if problems > 0 {
        blocked.push(format!(
            "the preflight ({problems} problem{})",
            if problems == 1 { "" } else { "s" }
        ));
    }
    let mut sections = Vec::new();
    for (section, list) in [
        (Section::Steps, &plan.steps),
        (Section::Rescue, &plan.rescue),
        (Section::Always, &plan.always),
    ] {
        let mut checked = Vec::new();
        for (i, step) in list.iter().enumerate() {
            let report = check_one(plan, steps, host, step, &list[..i]);
            let report = refer_to_preflight(step, report, preflight);
            // Rescue and always only run after something went wrong; their state now is
            // not a precondition of the run.
            if matches!(report, CheckReport::Blocked(_)) && section == Section::Steps {
                blocked.push(StepRef::of(step).position());
            }
            checked.push(Checked { step, report });
        }
        sections.push((section, checked));
    }
    DryRun { sections, blocked }
}

fn check_one(
    plan: &Plan,
    steps: &dyn Steps,
    host: &dyn HostView,
    step: &Step,
    earlier: &[Step],
) -> CheckReport {
    match step
        .when
        .as_deref()
        .map(|w| (w, evaluate_condition(&plan.template_scope, w)))
    {
        Some((w, Ok(false))) => CheckReport::WouldSkip(format!("`when: {w}` is false")),
        Some((w, Err(e))) => CheckReport::Blocked(format!("`when: {w}` cannot be evaluated: {e}")),
        _ => steps.check(
            step,
            &CheckContext {
                plan,
                step,
                host,
                earlier,
            },
        ),
    }
}

/// A step whose token the preflight found unreadable (no AP bus, a missing or offline APQN,
/// an unreadable config), or whose own problem the preflight already named, points there
/// instead of saying it again.
fn refer_to_preflight(step: &Step, report: CheckReport, checked: &Preflight) -> CheckReport {
    let token = match &step.kind {
        StepKind::AssertWk(a) => Some(&a.token),
        StepKind::AssertMk(a) => Some(&a.token),
        StepKind::Checkpoint(c) => c.until.as_ref().map(|u| u.check.token()),
        StepKind::Migrate(m) => Some(&m.token),
        StepKind::Restore(RestoreStep { token, .. })
        | StepKind::SetExpectedWkvp(ExpectedWkvpStep { token, .. })
        | StepKind::SetExpectedMkvps(ExpectedWkvpStep { token, .. }) => Some(token),
        StepKind::MkReencipher(r) => r.tokens.first(),
        _ => None,
    };
    let said = |text: &str| checked.problems.iter().any(|p| p.text.contains(text));
    match report {
        CheckReport::Blocked(text) if said(&text) => {
            CheckReport::Blocked("see the preflight problem above".to_owned())
        }
        CheckReport::WillRun(_) | CheckReport::Blocked(_)
            if token.is_some_and(|t| checked.unreadable.contains(t)) =>
        {
            CheckReport::CannotSimulate(format!(
                "the adapters or config of token `{}` cannot be read now (see the preflight problems above)",
                token.expect("matched")
            ))
        }
        other => other,
    }
}
