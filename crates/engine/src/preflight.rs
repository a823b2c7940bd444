//! The preflight's findings (design rule 9): what must hold *now*, before a run is recorded
//! or any step acts. The engine owns the result and who may write what a run trusts (the
//! plan, approvals files, the state directory); the step kinds add what they need of the host
//! (`mkplan_steps::preflight`), the report its signing key.
//!
//! A stop request (Ctrl-C) while the preflight waits at a PIN prompt ends it as
//! [`Preflight::interrupted`]: no PIN is tried, nothing is a problem, and no run is recorded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::cancel::Cancel;
use crate::secret::Pins;
use crate::trust::{self, TrustError, Trusted};
use mkplan_plan::model::TokenId;

/// How far the preflight goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// `check`: no PIN is asked for or tried, no key is used.
    DryRun,
    /// `run`: PINs are obtained (asked for, if the plan says so) and verified with one login
    /// each; the signing key signs and verifies a probe.
    Run,
}

/// One thing the preflight looked at: what, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub what: String,
    pub text: String,
}

/// What the preflight found, and what `run` carries on with.
#[derive(Default)]
pub struct Preflight {
    pub holds: Vec<Finding>,
    pub problems: Vec<Finding>,
    /// What only holds later, with the step that checks it.
    pub later: Vec<String>,
    /// The PINs verified (`Depth::Run`).
    pub pins: Pins,
    /// Tokens whose adapters or config have a problem above: `check` points their steps at
    /// it instead of saying it again.
    pub unreadable: BTreeSet<TokenId>,
    /// A stop was requested at a prompt (`Depth::Run`): the preflight ended there, and what
    /// it found decides nothing.
    pub interrupted: bool,
}

/// What the preflight looks at besides the plan and the host.
pub struct Scope<'a> {
    /// The plan file, as given.
    pub plan_file: &'a Path,
    /// The approvals files given (`--approvals`).
    pub approvals_files: &'a [PathBuf],
    /// The state directory the run is kept in.
    pub state_dir: &'a Path,
    /// The run's stop flag: a stop request at a PIN prompt interrupts the preflight.
    pub cancel: &'a Cancel,
}

impl Preflight {
    pub fn hold(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.holds.push(Finding {
            what: what.into(),
            text: text.into(),
        });
    }

    pub fn problem(&mut self, what: impl Into<String>, text: impl Into<String>) {
        let finding = Finding {
            what: what.into(),
            text: text.into(),
        };
        if !self.problems.contains(&finding) {
            self.problems.push(finding);
        }
    }
}

/// Like ssh's StrictModes: the plan, the approvals files and the state directory may be
/// written by nobody but root or the operator, nor may any directory above them. (The plan
/// and the approvals files were refused before they were read if not; here they are said
/// with the rest. The migration tool and the signing key are checked where they are found.)
pub fn trusted_files(p: &mut Preflight, scope: &Scope<'_>) {
    let mut files = vec![("plan", scope.plan_file, Trusted::Plan)];
    files.extend(
        scope
            .approvals_files
            .iter()
            .map(|f| ("approvals file", f.as_path(), Trusted::Approvals)),
    );
    files.push(("state directory", scope.state_dir, Trusted::StateDir));
    for (what, path, kind) in files {
        match trust::check(path, kind) {
            Ok(()) => p.hold(
                what,
                format!(
                    "`{}`: nobody but root or you can write it, or a directory above it",
                    path.display()
                ),
            ),
            Err(TrustError::Io { source, .. })
                if kind == Trusted::StateDir && source.kind() == std::io::ErrorKind::NotFound =>
            {
                p.hold(
                    what,
                    format!(
                        "`{}` does not exist yet: `run` creates it, readable by you only (0700), and checks it then",
                        path.display()
                    ),
                );
            }
            Err(e) => p.problem(what, e.to_string()),
        }
    }
}

/// `check` and `run` print the preflight the same way: one line per finding.
pub fn render(p: &Preflight) -> String {
    let mut out = String::new();
    for f in &p.holds {
        out.push_str(&format!("  ok          {}: {}\n", f.what, f.text));
    }
    for f in &p.problems {
        out.push_str(&format!("  PROBLEM     {}: {}\n", f.what, f.text));
    }
    for line in &p.later {
        out.push_str(&format!("  later       {line}\n"));
    }
    out
}
