//! The simulated tokens' PIN: the one the plan's environment variable holds, else a random
//! one; and the PIN files the plan names, written as an operator's host would have them.

use std::path::Path;

use mkplan_engine::ports::root::HostRoot;
use mkplan_plan::Plan;
use mkplan_plan::model::PinSource;

pub(super) fn random_pin() -> String {
    let mut bytes = [0u8; 9];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    format!("rh-{}", hex::encode(bytes))
}

/// Puts the simulated PIN in every PIN file the plan names, the way an operator's host
/// would (mode 0600). `env` and `prompt` sources are answered by the rehearsal's operator.
pub(super) fn provide_pins(
    plan: &Plan,
    root: &Path,
    pin: &str,
    so_pin: &str,
) -> std::io::Result<()> {
    let sources = plan
        .tokens
        .values()
        .flat_map(|t| std::iter::once((&t.pin, pin)).chain(t.so_pin.as_ref().map(|s| (s, so_pin))));
    for (source, pin) in sources {
        match source {
            PinSource::Env(_) | PinSource::Prompt => {}
            PinSource::File(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                let path = HostRoot::new(root).path(path);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)?;
                std::io::Write::write_all(&mut file, format!("{pin}\n").as_bytes())?;
            }
        }
    }
    Ok(())
}

/// The environment variables the plan reads CCA SO PINs from.
pub(super) fn so_variables(plan: &Plan) -> Vec<String> {
    plan.tokens
        .values()
        .filter_map(|t| match &t.so_pin {
            Some(PinSource::Env(name)) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// What the SO PIN sources give: the simulated tokens' SO PIN, or (fault) one they refuse.
pub(super) fn so_pin(wrong: bool) -> String {
    match wrong {
        true => format!("{}-wrong", crate::DEFAULT_SO_PIN),
        false => crate::DEFAULT_SO_PIN.to_owned(),
    }
}
