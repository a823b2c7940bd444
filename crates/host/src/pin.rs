//! Reading a token PIN from its source: an environment variable of mkplan's, a file that
//! only its owner can read, or a no-echo prompt. The PIN exists only as [`Pin`]; errors say
//! where it was looked for, never what it is.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use mkplan_engine::ports::operator::Operator;
use mkplan_engine::ports::pins::{MAX_PIN_LEN, PinError, PinReader};
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::secret::Pin;
use mkplan_plan::model::PinSource;

/// The PIN sources of the host under a root: files are found under it.
#[derive(Debug, Clone)]
pub struct PinSources {
    root: HostRoot,
}

impl PinSources {
    pub fn new(root: HostRoot) -> Self {
        Self { root }
    }
}

impl PinReader for PinSources {
    fn read(
        &self,
        source: &PinSource,
        operator: &dyn Operator,
        what: &str,
    ) -> Result<Pin, PinError> {
        read(source, &self.root, operator, what)
    }
}

pub fn read(
    source: &PinSource,
    root: &HostRoot,
    operator: &dyn Operator,
    what: &str,
) -> Result<Pin, PinError> {
    let what = || what.to_owned();
    let pin = match source {
        PinSource::Env(name) => operator
            .pin_variable(name)
            .ok_or_else(|| PinError::EnvUnset {
                what: what(),
                name: name.clone(),
            })?,
        PinSource::File(path) => read_file(&root.path(path), path)?,
        PinSource::Prompt => {
            if !operator.interactive() {
                return Err(PinError::NoTerminal { what: what() });
            }
            operator
                .ask_secret(&match what().strip_suffix(" SO") {
                    // `token `cca` SO`: the SO PIN a CCA token's `pkcscca` needs.
                    Some(token) => format!("{token} SO PIN: "),
                    None => format!("{} USER PIN: ", what()),
                })
                .ok_or_else(|| PinError::NotEntered { what: what() })?
                .expose()
                .to_owned()
        }
    };
    if pin.is_empty() {
        return Err(PinError::Empty { what: what() });
    }
    if pin.len() > MAX_PIN_LEN || pin.contains(['\n', '\r', '\0']) {
        return Err(PinError::Unusable { what: what() });
    }
    Ok(Pin::new(pin))
}

/// The first line of a file that must be a regular file of mode 0600 or 0400 owned by the
/// user mkplan runs as.
fn read_file(path: &Path, shown: &Path) -> Result<String, PinError> {
    let file = || shown.to_owned();
    let meta = std::fs::symlink_metadata(path).map_err(|source| PinError::FileUnreadable {
        file: file(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(PinError::FileNotRegular { file: file() });
    }
    let mode = meta.mode() & 0o777;
    if !matches!(mode, 0o600 | 0o400) {
        return Err(PinError::FileMode { file: file(), mode });
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(PinError::FileOwner {
            file: file(),
            owner: meta.uid(),
            me,
        });
    }
    let text = mkplan_plan::input::read_to_string(path, mkplan_plan::input::PIN_FILE).map_err(
        |source| PinError::FileUnreadable {
            file: file(),
            source,
        },
    )?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use mkplan_engine::ports::operator::Nobody;

    #[test]
    fn a_pin_file_must_be_private_and_errors_never_show_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let file = dir.path().join("pin");
        std::fs::write(&file, "S3cr3t-PIN-4711\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let source = PinSource::File("/pin".into());
        let err = read(&source, &root, &Nobody, "token")
            .unwrap_err()
            .to_string();
        assert!(err.contains("0644") && !err.contains("S3cr3t"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read(&source, &root, &Nobody, "token").unwrap().expose(),
            "S3cr3t-PIN-4711"
        );
        let err = read(&PinSource::Prompt, &root, &Nobody, "token")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no terminal"));
        let err = read(
            &PinSource::Env("MKPLAN_TEST_UNSET_PIN_VAR".into()),
            &root,
            &Nobody,
            "token",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("MKPLAN_TEST_UNSET_PIN_VAR"));
    }
}
