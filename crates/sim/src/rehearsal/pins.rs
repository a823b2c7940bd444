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
pub(super) fn provide_pins(plan: &Plan, root: &Path, pin: &str) -> std::io::Result<()> {
    for token in plan.tokens.values() {
        match &token.pin {
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
