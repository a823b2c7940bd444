//! `mkplan report generate RUN`: build and sign a finished run's report again, from its
//! journal and the plan copy whose digest the run recorded.

use std::path::Path;

use crate::error::CliError;
use crate::exit_code;
use crate::globals::Globals;
use crate::report::{after_run, fail};
use mkplan_engine::digest::sha256_hex;
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::rundir::PLAN_COPY;
use mkplan_host::terminal::Terminal;
use mkplan_plan::load_file;
use mkplan_report::REPORT_JSON;

pub(super) fn again(run: &str, force: bool, globals: &Globals) -> Result<(), CliError> {
    let run_dir = match globals.find_run(run) {
        Ok((_, dir)) => dir,
        Err(e) => return Err(fail(&e.to_string())),
    };
    if run_dir.dir.join(REPORT_JSON).exists() && !force {
        return Err(fail(&format!(
            "run {run} already has a report; `--force` replaces it"
        )));
    }
    let loaded = load_file(&run_dir.plan_copy());
    let Some(plan) = loaded.plan else {
        return Err(fail(&format!(
            "the plan copy `{}` no longer validates with this mkplan",
            run_dir.plan_copy().display()
        )));
    };
    let digest = sha256_hex(loaded.source.text().as_bytes());
    if run_dir.recorded_digest().map_err(anyhow::Error::from)? != digest {
        return Err(fail(&format!(
            "`{PLAN_COPY}` of run {run} does not match its recorded digest: it was changed"
        )));
    }
    // A signing token's PIN prompt ends cleanly on Ctrl-C (and the echo comes back on).
    let cancel = mkplan_engine::cancel::Cancel::install(exit_code::FAILURE)?;
    let operator = Terminal::detect(false, &cancel);
    let state = mkplan_engine::journal::read_verified(&run_dir.journal())
        .map(|v| mkplan_engine::state::RunState::replay(&v.entries))
        .ok();
    let mut plan = plan;
    let root = match state {
        Some(s) if s.rehearsal => {
            plan.report.sign = None;
            // A removed simulated host gets no copy (it would recreate the host's directory).
            if !Path::new(&s.host_root).is_dir() {
                plan.report.dir = None;
            }
            HostRoot::new(s.host_root)
        }
        _ => globals.root(),
    };
    if after_run(&plan, &run_dir.dir, &root, operator.as_ref(), None) {
        Ok(())
    } else {
        Err(CliError::FailedSaid)
    }
}
