//! What `mkplan rehearse` needs of the simulator: a fresh simulated host for the plan with
//! its faults, the simulated TKE operator and the operator who answers PIN prompts, the
//! record that lets `mkplan resume` reopen it, and the end state checked afterwards. The
//! CLI assembles these with the real host adapters into the ports a run uses.

mod faults;
mod operator;
mod pins;
mod record;
mod tke;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use faults::{Faults, OperatorFaults};
pub use operator::RehearsalOperator;
pub use tke::SimulatedTke;

use crate::{SimError, SimProber};
use mkplan_engine::ports::host::HostView;
use mkplan_plan::Plan;
use mkplan_plan::model::PinSource;

/// Where a simulated host keeps its own `mkplan-sim`: this mkplan under that name, so the
/// commands a rehearsal suggests work although `cargo run` built no `mkplan-sim`.
const SIMULATOR_IN_HOST: &str = "usr/bin/mkplan-sim";

/// Why a rehearsal's simulated host could not be made or reopened.
#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    #[error("cannot lay out the simulated host: {0}")]
    Layout(SimError),
    #[error("cannot link `{}`: {error}", link.display())]
    Link { link: PathBuf, error: io::Error },
    #[error("{0}")]
    Io(io::Error),
    #[error("{0}")]
    Record(serde_json::Error),
    #[error("cannot set the fault: {0}")]
    Fault(SimError),
    #[error(
        "the rehearsal's simulated host at `{}` is gone ({error}); a rehearsal can only be resumed while its host is kept",
        root.display()
    )]
    Gone { root: PathBuf, error: io::Error },
}

/// A simulated host a rehearsal runs on.
pub struct Rehearsal {
    /// As given.
    root: PathBuf,
    /// What the plan's PIN sources give (the tokens' PIN, or with `wrong-pin` one they
    /// refuse).
    pin: String,
    /// What the plan's CCA SO PIN sources give, and the variables they are read from.
    so_pin: String,
    so_variables: Vec<String>,
    faults: OperatorFaults,
}

impl Rehearsal {
    /// Lays out a fresh simulated host for `plan` under `root` (empty or missing), with
    /// `keys` key objects per token, and sets its faults. Its stand-ins are links to this
    /// executable. The simulated tokens get the PIN the plan would read, when it is already
    /// there (so a rehearsal can use the operator's own variable), else a random one.
    pub fn create(
        root: &Path,
        plan: &Plan,
        keys: usize,
        faults: Faults,
    ) -> Result<Self, RehearsalError> {
        let pin = plan
            .tokens
            .values()
            .find_map(|t| match &t.pin {
                PinSource::Env(name) => std::env::var(name).ok().filter(|p| !p.is_empty()),
                _ => None,
            })
            .unwrap_or_else(pins::random_pin);
        let standin = std::env::current_exe().map_err(RehearsalError::Io)?;
        eprintln!(
            "REHEARSAL on a simulated EP11 host at {} ({keys} keys per token)",
            root.display()
        );
        crate::init(root, plan, keys, &pin, &standin).map_err(RehearsalError::Layout)?;
        let link = crate::canonical_root(root).join(SIMULATOR_IN_HOST);
        std::os::unix::fs::symlink(&standin, &link)
            .map_err(|error| RehearsalError::Link { link, error })?;
        // What the operator's PIN sources give: the tokens' PIN, or (fault) one they refuse.
        let pin = if faults.operator.wrong_pin {
            format!("{pin}-wrong")
        } else {
            pin
        };
        let so_pin = pins::so_pin(faults.operator.wrong_so_pin);
        pins::provide_pins(plan, root, &pin, &so_pin).map_err(RehearsalError::Io)?;
        let kept = record::RehearsalRecord {
            version: 1,
            pin: pin.clone(),
            operator_faults: faults.operator.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&kept).map_err(RehearsalError::Record)?;
        record::write_private(&record::path(&crate::canonical_root(root)), &bytes)
            .map_err(RehearsalError::Io)?;
        for fault in faults.host {
            crate::set_fault(root, fault).map_err(RehearsalError::Fault)?;
        }
        Ok(Self {
            root: root.to_owned(),
            pin,
            so_pin,
            so_variables: pins::so_variables(plan),
            faults: faults.operator,
        })
    }

    /// The simulated host of a rehearsal that did not finish, for `mkplan resume`: the same
    /// PIN and operator faults again (and the plan's PIN files written again).
    pub fn reopen(root: &Path, plan: &Plan) -> Result<Self, RehearsalError> {
        let text =
            mkplan_plan::input::read_to_string(&record::path(root), mkplan_plan::input::SMALL)
                .map_err(|error| RehearsalError::Gone {
                    root: root.to_owned(),
                    error,
                })?;
        let kept: record::RehearsalRecord =
            serde_json::from_str(&text).map_err(RehearsalError::Record)?;
        let so_pin = pins::so_pin(kept.operator_faults.wrong_so_pin);
        pins::provide_pins(plan, root, &kept.pin, &so_pin).map_err(RehearsalError::Io)?;
        Ok(Self {
            root: root.to_owned(),
            pin: kept.pin,
            so_pin,
            so_variables: pins::so_variables(plan),
            faults: kept.operator_faults,
        })
    }

    /// The simulated host's root, as a run records it.
    pub fn root(&self) -> PathBuf {
        crate::canonical_root(&self.root)
    }

    /// The operator who answers the simulated PIN prompts.
    pub fn operator(&self) -> RehearsalOperator {
        RehearsalOperator {
            pin: self.pin.clone(),
            so_pin: self.so_pin.clone(),
            so_variables: self.so_variables.clone(),
        }
    }

    /// The probe of the simulated tokens (no PKCS#11 module can open them).
    pub fn prober(&self) -> SimProber {
        SimProber::new(&self.root)
    }

    /// The simulated TKE operator, reading the registers through `host`.
    pub fn tke(&self, host: Arc<dyn HostView>) -> SimulatedTke {
        SimulatedTke {
            root: self.root(),
            faults: self.faults.clone(),
            host,
        }
    }

    /// Says what the simulated end state is; then, when the run `finished` (nothing is left
    /// to resume), stops the simulated processes and removes the host if `remove`, else
    /// says where it is kept. A run that did not finish keeps its host up for `resume`.
    pub fn finish(&self, finished: bool, remove: bool) {
        let root = &self.root;
        match crate::verify(root) {
            Ok(report) => {
                for (token, verdict) in &report.tokens {
                    // EP11 tokens have one WK; CCA tokens a current MK per type.
                    let current = match &verdict.current_wkvp {
                        Some(wkvp) => format!("current WK {wkvp}"),
                        None if !verdict.current_mkvps.is_empty() => {
                            let mks: Vec<String> = verdict
                                .current_mkvps
                                .iter()
                                .map(|(mk, vp)| format!("{mk} {vp}"))
                                .collect();
                            format!("current MKs {}", mks.join(", "))
                        }
                        None => "no current key all APQNs agree on".to_owned(),
                    };
                    eprintln!(
                        "REHEARSAL end state: token `{token}`: {} keys usable, {} unusable, {} objects without a key ({current})",
                        verdict.counts.usable, verdict.counts.unusable, verdict.counts.skipped,
                    );
                }
            }
            Err(e) => eprintln!("REHEARSAL: cannot verify the simulated end state: {e}"),
        }
        if !finished {
            eprintln!(
                "REHEARSAL: the run did not finish; the simulated host stays up at {} for `mkplan resume` (stop it with `{} shutdown --root {}`)",
                root.display(),
                simulator_command(root),
                root.display()
            );
            return;
        }
        // Said first: stopping the processes and removing a large host take seconds, and
        // an operator tailing the output should see why it pauses.
        eprintln!("REHEARSAL: stopping the simulated processes");
        if let Err(e) = crate::shutdown(root) {
            eprintln!("REHEARSAL: stopping the simulated processes failed: {e}");
        }
        if remove {
            eprintln!(
                "REHEARSAL: removing the simulated host at {}",
                root.display()
            );
            remove_host(root);
        } else {
            eprintln!(
                "REHEARSAL: the simulated host is kept at {} (`{} verify --root {}`)",
                root.display(),
                simulator_command(root),
                root.display()
            );
        }
    }
}

/// Removes the simulated host, with a line at most every 1.5 s (a 100,000-key host took
/// 22 s to remove, in silence, on a loaded machine). Best effort, like the removal of a
/// temporary directory: what cannot be removed stays.
fn remove_host(root: &Path) {
    const EVERY: std::time::Duration = std::time::Duration::from_millis(1500);
    let mut removed = 0u64;
    let mut last = std::time::Instant::now();
    let mut tick = || {
        removed += 1;
        if removed.is_multiple_of(256) && last.elapsed() >= EVERY {
            last = std::time::Instant::now();
            eprintln!("REHEARSAL: removing the simulated host: {removed} files removed");
        }
    };
    remove_tree(root, &mut tick);
}

/// Depth first, without following symlinks; `tick` once per entry removed.
fn remove_tree(dir: &Path, tick: &mut dyn FnMut()) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&path, tick);
        } else if std::fs::remove_file(&path).is_ok() {
            tick();
        }
    }
    if std::fs::remove_dir(dir).is_ok() {
        tick();
    }
}

/// How to run `mkplan-sim` for this host: by name when the one on PATH was installed with
/// this mkplan (`cargo install` puts both in one directory), else the host's own.
fn simulator_command(root: &Path) -> String {
    let installed = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(crate::SIM_EXE_NAME)));
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(crate::SIM_EXE_NAME))
            .find(|candidate| candidate.is_file())
    });
    match (installed, on_path) {
        (Some(installed), Some(on_path)) if installed == on_path => crate::SIM_EXE_NAME.to_owned(),
        _ => root.join(SIMULATOR_IN_HOST).display().to_string(),
    }
}
