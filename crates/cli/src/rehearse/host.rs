//! The rehearsal's host: the real adapters rooted at the simulated tree, with the
//! simulator's prober, TKE operator and PINs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::CliError;
use mkplan_engine::ports::Ports;
use mkplan_engine::ports::operator::Operator;
use mkplan_engine::ports::root::HostRoot;
use mkplan_host::linux::LinuxHost;
use mkplan_host::pin::PinSources;
use mkplan_host::signing::Pkcs11Signer;
use mkplan_plan::model::Plan;
use mkplan_sim::rehearsal::Rehearsal;

/// The ports of a rehearsal on `rehearsal`'s simulated host: the real adapters rooted at
/// it, the simulator's prober (no PKCS#11 module can open a simulated EP11 token) and its
/// TKE operator, which reads the registers through those adapters.
pub(super) fn simulated_host(rehearsal: &Rehearsal) -> Ports {
    let host_root = HostRoot::new(rehearsal.root());
    let host = Arc::new(LinuxHost::new(host_root.clone()));
    Ports {
        tke: Some(Arc::new(rehearsal.tke(host.clone()))),
        host,
        keys: Arc::new(rehearsal.prober()),
        pins: Arc::new(PinSources::new(host_root)),
        signing: Arc::new(Pkcs11Signer),
    }
}

/// For `mkplan resume` of a rehearsal: the same simulated host, operator and PINs again.
pub fn resume_host(plan: &Plan, root: &Path) -> anyhow::Result<(Ports, Box<dyn Operator>)> {
    let rehearsal = Rehearsal::reopen(root, plan)?;
    Ok((simulated_host(&rehearsal), Box::new(rehearsal.operator())))
}

/// Where the simulated host is laid out: `--root` (never `/`), else a new temporary
/// directory (`true`: removed at the end unless `--keep`). It must be empty.
pub(super) fn simulated_root(given: Option<&Path>) -> Result<(PathBuf, bool), CliError> {
    let (root, temporary) = match given {
        Some(root) if root == Path::new("/") => {
            return Err(CliError::Invalid(
                "a rehearsal never runs against the real root `/`; give --root an empty directory, or none".to_owned(),
            ));
        }
        Some(root) => (root.to_owned(), false),
        None => (
            tempfile::Builder::new()
                .prefix("mkplan-rehearsal-")
                .tempdir()
                .map_err(anyhow::Error::from)?
                .keep(),
            true,
        ),
    };
    let occupied = root.exists()
        && std::fs::read_dir(&root)
            .map_err(anyhow::Error::from)?
            .next()
            .is_some();
    if occupied {
        return Err(CliError::Invalid(format!(
            "`{}` is not empty; a rehearsal needs a fresh simulated host",
            root.display()
        )));
    }
    Ok((root, temporary))
}
