//! Paths in normal form. Validation compares paths as written (it never touches the host),
//! so `.`, `..` and empty components are refused: with them, a backup directory or signing
//! key could sit inside a token store and not look like it
//! (`/var/backups/../lib/opencryptoki/ep11tok`).

use std::path::PathBuf;

use crate::diagnostic::Diagnostic;
use crate::lower::Lowering;

impl Lowering {
    /// `path` when it is in normal form; otherwise an error at `pointer` naming the
    /// component and the normalised path. `what` names the path in the message.
    pub(super) fn normal_path(&mut self, path: &str, what: &str, pointer: &str) -> Option<PathBuf> {
        let Some(problem) = abnormal_component(path) else {
            return Some(PathBuf::from(path));
        };
        self.errors.push(
            Diagnostic::error("path", format!("{what} `{path}` has {problem}"))
                .with_pointer(pointer)
                .with_note(
                    "validation compares paths as written, without the host, so a detour could hide that one path is inside another",
                )
                .with_hint(format!("write the normalised path `{}`", normalised(path))),
        );
        None
    }
}

/// What is wrong with `path`'s components, if anything. A trailing `/` is allowed.
fn abnormal_component(path: &str) -> Option<&'static str> {
    let inner = path.strip_prefix('/').unwrap_or(path);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if inner.is_empty() {
        return None;
    }
    inner.split('/').find_map(|component| match component {
        "." => Some("a `.` component"),
        ".." => Some("a `..` component"),
        "" => Some("an empty component (`//`)"),
        _ => None,
    })
}

/// `path` with `.` and empty components dropped and each `..` taking away the component
/// before it, lexically (as the path is compared).
fn normalised(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detours_are_found_and_normalised() {
        assert_eq!(abnormal_component("/var/lib/opencryptoki/ep11tok"), None);
        assert_eq!(abnormal_component("/var/backups/"), None);
        assert_eq!(abnormal_component("/"), None);
        assert_eq!(abnormal_component("/var/../lib"), Some("a `..` component"));
        assert_eq!(abnormal_component("/var/./lib"), Some("a `.` component"));
        assert_eq!(
            abnormal_component("/var//lib"),
            Some("an empty component (`//`)")
        );
        assert_eq!(abnormal_component("/var/lib/.."), Some("a `..` component"));
        assert_eq!(
            normalised("/var/backups/../lib/opencryptoki/./ep11tok//x"),
            "/var/lib/opencryptoki/ep11tok/x"
        );
        assert_eq!(normalised("/../x"), "/x");
        assert_eq!(normalised("/a/.."), "/");
    }
}
