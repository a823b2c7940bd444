//! The preflight's look at who may write the files a run trusts — the plan, the approvals
//! files, the state directory — like ssh's StrictModes (`crate::engine::trust`). The migration tool
//! and the signing key are checked where the preflight finds them.

use super::{Preflight, Scope};
use crate::engine::trust::{self, TrustError, Trusted};

/// Like ssh's StrictModes: the plan, the approvals files and the state directory may be
/// written by nobody but root or the operator, nor may any directory above them. (The plan
/// and the approvals files were refused before they were read if not; here they are said
/// with the rest. The migration tool and the signing key are checked where they are found.)
pub(super) fn files(p: &mut Preflight, scope: &Scope<'_>) {
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
