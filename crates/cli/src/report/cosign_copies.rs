//! After `report cosign`: the report's other copy (the run directory's, or the evidence
//! package under the plan's `report.dir`) gets the co-signatures too, so an auditor who
//! verifies either one sees the same signers.

use std::path::{Path, PathBuf};

use crate::globals::Globals;
use mkplan_engine::journal::read_verified;
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::rundir::{JOURNAL, PLAN_COPY};
use mkplan_engine::state::RunState;
use mkplan_plan::load_file;
use mkplan_report::REPORT_JSON;
use mkplan_report::cosign::{Mirrored, mirror};
use mkplan_report::model::RunReport;

/// Brings every other copy of the report in `dir` up to date, saying what it did; a copy
/// that cannot be updated is a warning naming what to copy by hand (the co-signature in
/// `dir` stands either way).
pub(super) fn update_other_copies(dir: &Path, globals: &Globals) {
    for other in other_copies(dir, globals) {
        match mirror(dir, &other) {
            Ok(Mirrored::Updated) => {
                println!("the copy in `{}` carries it too", other.display())
            }
            Ok(Mirrored::Current) => {}
            Ok(Mirrored::OtherReport) => eprintln!(
                "warning: `{}` holds another report.json than `{}`; its signatures were left as they were",
                other.display(),
                dir.display()
            ),
            Err(e) => eprintln!(
                "warning: the copy in `{}` was not updated ({e}): copy report.dsse.json and report.html from `{}` over it",
                other.display(),
                dir.display()
            ),
        }
    }
}

fn other_copies(dir: &Path, globals: &Globals) -> Vec<PathBuf> {
    let Ok(bytes) = std::fs::read(dir.join(REPORT_JSON)) else {
        return Vec::new();
    };
    let Ok(report) = RunReport::from_bytes(&bytes) else {
        return Vec::new();
    };
    let id = &report.run.id;
    let mut places = Vec::new();
    if let Ok((_, run)) = globals.find_run(id) {
        places.push(run.dir);
    }
    places.extend(package_of(dir, id, globals));
    let here = dir.canonicalize().ok();
    let mut seen = Vec::new();
    places.retain(|place| {
        let real = place.canonicalize().ok();
        let keep = place.join(REPORT_JSON).is_file() && real != here && !seen.contains(&real);
        seen.push(real);
        keep
    });
    places
}

/// Where the plan of the run in `dir` put its evidence package: `report.dir` under the
/// host's root (a rehearsal's simulated host, as `report generate` resolves it).
fn package_of(dir: &Path, id: &str, globals: &Globals) -> Option<PathBuf> {
    let report_dir = load_file(&dir.join(PLAN_COPY)).plan?.report.dir?;
    let journal = read_verified(&dir.join(JOURNAL)).ok()?;
    let state = RunState::replay(&journal.entries);
    let root = if state.rehearsal {
        HostRoot::new(state.host_root)
    } else {
        globals.root()
    };
    Some(root.path(report_dir).join(id))
}
