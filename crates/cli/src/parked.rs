//! What `run` and `resume` print when a run parks (exit 6) or halts (exit 1): what it waits
//! for, what the TKE administrator does, and the exact `mkplan resume` line to type later.

use mkplan_engine::approvals::flag_key;
use mkplan_engine::events::StepRef;
use mkplan_engine::record::mk_change::ReencipherOutput;
use mkplan_engine::state::RunState;
use mkplan_plan::Plan;
use mkplan_plan::model::{StepKind, TkeAction};

use crate::globals::Globals;

/// `mkplan [--state-dir D] [--root R] resume RUN`, from the globals in force.
fn resume_command(globals: &Globals, run_id: &str) -> String {
    let mut line = "mkplan".to_owned();
    if let Some(dir) = &globals.state_dir {
        line.push_str(&format!(" --state-dir {}", dir.display()));
    }
    if let Some(root) = globals
        .root
        .as_ref()
        .filter(|r| r.as_path() != std::path::Path::new("/"))
    {
        line.push_str(&format!(" --root {}", root.display()));
    }
    line.push_str(&format!(" resume {run_id}"));
    line
}

/// The park text, on stderr.
pub fn print_parked(
    plan: &Plan,
    state: &RunState,
    globals: &Globals,
    step: &StepRef,
    waiting_for: &[String],
) {
    let run_id = &state.run_id;
    eprintln!();
    eprintln!(
        "PARKED at {} `{}` (run {run_id})",
        step.position(),
        step.name
    );
    eprintln!();
    let operations: Vec<String> = state
        .succeeded::<ReencipherOutput>()
        .filter_map(|(_, r)| {
            let id = r.operation.as_ref()?;
            let mut new: Vec<String> = (!r.new_wkvp.is_empty())
                .then(|| format!("WK 0x{}", r.new_wkvp))
                .into_iter()
                .collect();
            new.extend(r.new_cca_mkvps.iter().map(|(mk, vp)| format!("{mk} MK 0x{vp}")));
            Some(format!(
                "operation {id} ({}): every key also has a blob under the new {}, and the applications keep running on the current keys",
                r.tokens.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", "),
                new.join(" and ")
            ))
        })
        .collect();
    for line in &operations {
        eprintln!("{line}.");
    }
    if !operations.is_empty() {
        eprintln!(
            "While it waits, each token uses one APQN only (no failover between adapters): do not leave it parked longer than needed."
        );
        eprintln!();
    }
    eprintln!("Waiting for:");
    for line in waiting_for {
        eprintln!("  {line}");
    }
    let checkpoint = plan.step_at(step.section, step.index);
    if let Some(StepKind::Checkpoint(c)) = checkpoint.map(|s| &s.kind) {
        eprintln!();
        eprintln!("For the TKE administrator:");
        for line in c.say.trim().lines() {
            eprintln!("  {line}");
        }
        if c.tke == Some(TkeAction::Activate) {
            eprintln!(
                "  Activate (CCA: set) on ALL of the token's APQNs, together; if other hosts' runs use them, only when each of them is parked too."
            );
            eprintln!(
                "  Activation is final: from then on the change can only go forward (cancel is refused)."
            );
        }
    }
    let key = checkpoint.map_or_else(|| step.position(), flag_key);
    let resume = resume_command(globals, run_id);
    eprintln!();
    eprintln!(
        "Then, on this host (a reboot in between is fine; resume re-checks every APQN and the operation first):"
    );
    eprintln!("  {resume} --approve {key}=NAME");
    if !operations.is_empty() {
        eprintln!(
            "To abandon the change instead (only before any APQN is activated; the plan's rescue cancels the operation):"
        );
        eprintln!("  {resume} --deny {key}=NAME");
    }
    eprintln!();
    eprintln!("run {run_id} parked (exit 6)");
}

/// The halt text, on stderr.
pub fn print_halted(state: &RunState, globals: &Globals, step: &StepRef, reason: &str) {
    eprintln!(
        "HALTED at {} `{}` (run {}): {reason}",
        step.position(),
        step.name,
        state.run_id
    );
    eprintln!(
        "  rescue was not run (it cannot undo this); once the cause is fixed: {}",
        resume_command(globals, &state.run_id)
    );
}
