//! What `init` writes: a new plan file, or `--check`'s lines of drift.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::CliError;
use crate::plan_input::load_for_execution;
use mkplan_plan::diagnostic::escape_for_terminal;
use mkplan_plan::init;

/// `--check`: the plan must be valid; each disagreement with the host is one line.
pub(super) fn check(plan: &Path, inventory: &init::Inventory) -> Result<(), CliError> {
    let Some(loaded) = load_for_execution(plan) else {
        return Err(CliError::InvalidSaid);
    };
    let found = init::drift(&loaded.plan, inventory);
    for line in &found {
        println!("drift: {}", escape_for_terminal(line));
    }
    let (plan, at) = (plan.display(), &inventory.read_at);
    if found.is_empty() {
        println!("init --check: `{plan}` matches the host (read at {at})");
        Ok(())
    } else {
        eprintln!(
            "init --check: `{plan}` disagrees with the host in {} place(s)",
            found.len()
        );
        Err(CliError::PreconditionsFail)
    }
}

/// A new file (mode 0644: a plan is no secret, and only its owner may change it).
pub(super) fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
