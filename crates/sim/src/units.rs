//! Which unit a simulated process runs in. The simulated units are real processes, but this
//! machine cannot put them in systemd cgroups, so `/proc/<pid>/cgroup` says nothing; their
//! command line (`mkplan-sim unit-process --root <root> --unit <unit>`, procs.rs) does.

use std::path::{Path, PathBuf};

use crate::{canonical_root, procs, state};
use mkplan_engine::ports::units::{Placement, UnitOf};
use mkplan_engine::record::users::TokenUser;

/// The simulated host's systemd, as far as `mkplan init` asks it.
pub struct SimUnits {
    root: PathBuf,
}

impl SimUnits {
    pub fn new(root: &Path) -> Self {
        Self {
            root: canonical_root(root),
        }
    }
}

impl UnitOf for SimUnits {
    fn unit_of(&self, user: &TokenUser) -> Placement {
        let cmdline = procs::cmdline(user.pid);
        let root = self.root.display().to_string();
        match cmdline.get(1..) {
            // A command service runs the same way but is no systemd unit.
            Some([verb, flag, at, unit_flag, unit])
                if verb == "unit-process"
                    && flag == "--root"
                    && *at == root
                    && unit_flag == "--unit"
                    && state::load(&self.root).is_ok_and(|s| s.units.contains(unit)) =>
            {
                Placement::Unit(unit.clone())
            }
            _ => Placement::Outside(None),
        }
    }
}

/// Whether `root` is a simulated host (it holds the simulator's state).
pub fn is_simulated_host(root: &Path) -> bool {
    state::state_path(&canonical_root(root)).is_file()
}
