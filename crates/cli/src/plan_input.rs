//! A plan loaded for execution (trusted, then validated, diagnostics on stderr), and who
//! runs it.

use std::io::Write;
use std::path::{Path, PathBuf};

use mkplan_engine::trust::{self, Trusted};
use mkplan_plan::{Plan, load_file};

/// A plan loaded for execution, with its exact text; diagnostics go to stderr.
pub struct ExecutablePlan {
    pub plan: Plan,
    pub text: String,
    pub path: PathBuf,
}

pub fn load_for_execution(path: &Path) -> Option<ExecutablePlan> {
    // A plan someone else could write is refused like an unreadable one: before it is read.
    if let Err(e) = trust::check(path, Trusted::Plan) {
        eprintln!("mkplan: error: {e}");
        return None;
    }
    let loaded = load_file(path);
    let mut stderr = std::io::stderr().lock();
    for d in loaded.diagnostics.iter() {
        let _ = writeln!(stderr, "{}", d.render(&loaded.source));
    }
    let plan = loaded.plan?;
    Some(ExecutablePlan {
        plan,
        text: loaded.source.text().to_owned(),
        path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
    })
}

/// The person running mkplan, as recorded with runs and decisions.
pub fn operator_name(given: Option<&str>) -> String {
    if let Some(name) = given {
        return name.to_owned();
    }
    for var in ["SUDO_USER", "USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var)
            && !name.is_empty()
        {
            return name;
        }
    }
    format!("uid {}", rustix::process::getuid().as_raw())
}
