//! Reading a token PIN from its source: an environment variable of mkplan's, a file that
//! only its owner can read, or a no-echo prompt. The PIN exists only as [`Pin`]; errors say
//! where it was looked for, never what it is.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use mkplan_engine::ports::operator::Operator;
use mkplan_engine::ports::pins::PinReader;
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
    fn read(&self, source: &PinSource, operator: &dyn Operator, what: &str) -> Result<Pin, String> {
        read(source, &self.root, operator, what)
    }
}

/// openCryptoki refuses PINs of 128 characters or more (reference 1.3).
const MAX_PIN_LEN: usize = 127;

pub fn read(
    source: &PinSource,
    root: &HostRoot,
    operator: &dyn Operator,
    what: &str,
) -> Result<Pin, String> {
    let pin = match source {
        PinSource::Env(name) => operator.pin_variable(name).ok_or_else(|| {
            format!("the {what} PIN comes from the environment variable `{name}`, which is not set (or not UTF-8)")
        })?,
        PinSource::File(path) => read_file(&root.path(path), path)?,
        PinSource::Prompt => {
            if !operator.interactive() {
                return Err(format!(
                    "the {what} PIN is to be typed at a prompt, but there is no terminal (hint: use `pin: {{env: …}}` or `{{file: …}}` for unattended runs)"
                ));
            }
            operator
                .ask_secret(&format!("{what} USER PIN: "))
                .ok_or_else(|| format!("no {what} PIN was entered"))?
                .expose()
                .to_owned()
        }
    };
    if pin.is_empty() {
        return Err(format!("the {what} PIN is empty"));
    }
    if pin.len() > MAX_PIN_LEN || pin.contains(['\n', '\r', '\0']) {
        return Err(format!(
            "the {what} PIN is longer than {MAX_PIN_LEN} characters or contains a line break, which openCryptoki cannot take"
        ));
    }
    Ok(Pin::new(pin))
}

/// The first line of a file that must be a regular file of mode 0600 or 0400 owned by the
/// user mkplan runs as.
fn read_file(path: &Path, shown: &Path) -> Result<String, String> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot read the PIN file `{}`: {e}", shown.display()))?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "the PIN file `{}` is not a regular file",
            shown.display()
        ));
    }
    let mode = meta.mode() & 0o777;
    if !matches!(mode, 0o600 | 0o400) {
        return Err(format!(
            "the PIN file `{}` has mode {mode:04o}; it must be 0600 or 0400 (hint: chmod 600 {})",
            shown.display(),
            shown.display()
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "the PIN file `{}` is owned by uid {}, not by the user mkplan runs as (uid {me})",
            shown.display(),
            meta.uid()
        ));
    }
    let text = mkplan_plan::input::read_to_string(path, mkplan_plan::input::PIN_FILE)
        .map_err(|e| format!("cannot read the PIN file `{}`: {e}", shown.display()))?;
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
        let err = read(&source, &root, &Nobody, "token").unwrap_err();
        assert!(err.contains("0644") && !err.contains("S3cr3t"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read(&source, &root, &Nobody, "token").unwrap().expose(),
            "S3cr3t-PIN-4711"
        );
        let err = read(&PinSource::Prompt, &root, &Nobody, "token").unwrap_err();
        assert!(err.contains("no terminal"));
        let err = read(
            &PinSource::Env("MKPLAN_TEST_UNSET_PIN_VAR".into()),
            &root,
            &Nobody,
            "token",
        )
        .unwrap_err();
        assert!(err.contains("MKPLAN_TEST_UNSET_PIN_VAR"));
    }
}
