//! Who uses a token right now: the processes that map it (opencryptoki-ep11.md 4), other
//! than mkplan and its children.

use mkplan_engine::ports::host::HostView;
use mkplan_engine::record::users::{ScanResult, TokenUser};
use mkplan_plan::model::Plan;

/// Every process (other than mkplan and its children) that uses any of the plan's tokens.
pub fn token_users(host: &dyn HostView, plan: &Plan) -> ScanResult {
    let stores: Vec<&std::path::Path> = plan.tokens.values().map(|t| t.store.as_path()).collect();
    host.token_users(&stores)
}

pub fn describe_users(users: &[TokenUser]) -> String {
    users
        .iter()
        .map(|u| {
            format!(
                "pid {} `{}`{} maps `{}`",
                u.pid,
                u.command,
                u.unit
                    .as_deref()
                    .map(|n| format!(" (unit {n})"))
                    .unwrap_or_default(),
                u.matched
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
