//! Design rule 8, live: is a migration tool rewriting a token right now? Asked of `/proc`
//! and nowhere else: a tool left over from a killed mkplan counts like one started by hand.

use crate::guards::GuardError;
use mkplan_engine::ports::host::{HostView, RunningTool};
use mkplan_plan::model::{Plan, StepKind, Token};

/// Every process that runs a migration tool against `token` (whoever started it).
pub fn running_tools(host: &dyn HostView, plan: &Plan, token: &Token) -> Vec<RunningTool> {
    let own_tools: Vec<String> = plan
        .all_steps()
        .filter_map(|s| match &s.kind {
            StepKind::Migrate(m) => m.tool.as_ref(),
            _ => None,
        })
        .filter_map(|tool| Some(tool.file_name()?.to_string_lossy().into_owned()))
        .collect();
    host.running_tools(token.slot.get(), &token.store, &own_tools)
}

/// The refusal of design rule 8 for `action` (e.g. "restore token `ep11`"), if a migration
/// tool runs against the token: every such process with its pid and argv, and how to wait
/// for it or stop it.
pub fn refuse_while_tools_run(
    host: &dyn HostView,
    plan: &Plan,
    token: &Token,
    action: &str,
) -> Result<(), GuardError> {
    let tools = running_tools(host, plan, token);
    let Some(first) = tools.first() else {
        return Ok(());
    };
    Err(GuardError::ToolsRunning {
        action: action.to_owned(),
        token: token.id.clone(),
        slot: token.slot,
        tools: tools.iter().map(RunningTool::describe).collect(),
        hint: first.hint(),
    })
}
