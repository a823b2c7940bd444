//! [`LinuxHost`]: the host ports for a real Linux on Z, each a call into the adapter that
//! does it. A rehearsal uses the very same adapters, rooted at the simulated host.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::inventory::ockconf;
use crate::services::{self, Verb};
use crate::{archive, fsutil, process, procscan, pty, slotd, store, tools, zcrypt};
use mkplan_engine::cancel::Cancel;
use mkplan_engine::ports::host::{
    BackupComparison, CommandError, CommandSpec, HostActions, HostView, OckSlot, OnCancel,
    PortError, Program, Progress, PtyCommand, PtyDialog, PtyError, PtyExit, ReadOnlyCommand,
    RunningTool, ServiceUnit, ServiceVerb, SlotDaemon, StoreDrift,
};
use mkplan_engine::ports::root::{HostRoot, token_shm_path};
use mkplan_engine::record::backup::{BackupRecord, JournaledBackup, RestoreRecord};
use mkplan_engine::record::command::Finished;
use mkplan_engine::record::pkcscca::PkcsccaSummary;
use mkplan_engine::record::users::ScanResult;
use mkplan_engine::record::wk::ApqnStatus;
use mkplan_engine::trust::{self, TrustError, Trusted};
use mkplan_plan::input;
use mkplan_plan::model::Apqn;

/// The host under `root`, with its processes in `proc_dir` (always the real `/proc`:
/// processes are real even on a simulated host).
#[derive(Debug, Clone)]
pub struct LinuxHost {
    root: HostRoot,
    proc_dir: PathBuf,
}

impl LinuxHost {
    pub fn new(root: HostRoot) -> Self {
        Self {
            root,
            proc_dir: PathBuf::from("/proc"),
        }
    }

    /// The program of a command under the root (a script runs in the system's `/bin/sh`).
    fn command(&self, spec: &CommandSpec) -> Result<Command, CommandError> {
        let mut command = match &spec.program {
            Program::Shell(script) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(script);
                c
            }
            Program::Argv(argv) => {
                let program = tools::resolve(&self.root, &argv[0])
                    .map_err(|e| CommandError::NotFound(e.into()))?;
                let mut c = Command::new(program);
                c.args(&argv[1..]);
                c
            }
        };
        command.envs(&spec.env);
        for name in &spec.scrub_env {
            command.env_remove(name);
        }
        Ok(command)
    }
}

fn port_error(e: impl ToString) -> PortError {
    PortError::new(e.to_string())
}

impl HostView for LinuxHost {
    fn root(&self) -> &HostRoot {
        &self.root
    }

    fn ap_bus_present(&self) -> bool {
        self.root.path("/sys/bus/ap").is_dir()
    }

    fn read_apqn(&self, apqn: Apqn) -> Result<ApqnStatus, PortError> {
        zcrypt::read_apqn(&self.root, apqn).map_err(port_error)
    }

    fn read_config(&self, config: &Path) -> io::Result<String> {
        input::read_to_string(config, input::CONFIG)
    }

    fn token_users(&self, stores: &[&Path]) -> ScanResult {
        let own = procscan::own_family(&self.proc_dir);
        let mut all = ScanResult::default();
        for store in stores {
            let shm = token_shm_path(&self.root, store);
            let result = procscan::scan(&self.proc_dir, &shm, &own);
            all.scanned = all.scanned.max(result.scanned);
            all.unreadable = all.unreadable.max(result.unreadable);
            for user in result.users {
                if !all.users.iter().any(|u| u.pid == user.pid) {
                    all.users.push(user);
                }
            }
        }
        all
    }

    fn running_tools(&self, slot: u16, store: &Path, also: &[String]) -> Vec<RunningTool> {
        procscan::running_tools(&self.proc_dir, &self.root, slot, store, also)
    }

    fn slot_daemon(&self) -> Result<SlotDaemon, PortError> {
        slotd::find(&self.root, &self.proc_dir).map_err(port_error)
    }

    fn find_program(&self, name: &str) -> Option<PathBuf> {
        tools::find(&self.root, name)
    }

    fn resolve_program(&self, program: &str) -> Result<PathBuf, PortError> {
        Ok(tools::resolve(&self.root, program)?)
    }

    fn runnable(&self, path: &Path) -> Result<(), PortError> {
        Ok(tools::runnable(path)?)
    }

    fn check_trusted(&self, path: &Path, what: Trusted) -> Result<(), TrustError> {
        trust::check(path, what)
    }

    fn pkcs11_module(&self, given: Option<&Path>) -> Result<PathBuf, PortError> {
        Ok(tools::pkcs11_module(&self.root, given)?)
    }

    fn dir_mode(&self, dir: &Path) -> Option<u32> {
        fsutil::mode(dir)
    }

    fn store_is_dir(&self, store: &Path) -> io::Result<bool> {
        fsutil::is_dir(store)
    }

    fn compare_with_backup(
        &self,
        store: &Path,
        backup: &JournaledBackup,
    ) -> Result<BackupComparison, PortError> {
        store::compare_with_backup(store, backup)
    }

    fn store_matches_backup(
        &self,
        store: &Path,
        backup: &JournaledBackup,
    ) -> Result<u64, StoreDrift> {
        store::matches_backup(store, backup)
    }

    fn object_changes(&self, store: &Path, backup: &JournaledBackup) -> Option<(usize, usize)> {
        store::object_changes(store, backup)
    }

    fn object_count(&self, store: &Path) -> Option<u64> {
        store::object_count(store)
    }

    fn service_active(
        &self,
        unit: &ServiceUnit<'_>,
        deadline: Instant,
        cancel: &Cancel,
    ) -> Result<bool, PortError> {
        services::run(&self.root, unit, Verb::IsActive, deadline, cancel).map(|code| code == 0)
    }

    fn ock_slots(&self) -> Result<Vec<OckSlot>, PortError> {
        let path = self
            .root
            .path(Path::new(ockconf::CONF_DIR).join("opencryptoki.conf"));
        let text = mkplan_plan::input::read_to_string(&path, mkplan_plan::input::SMALL)
            .map_err(|e| PortError::new(format!("`{}`: {e}", path.display())))?;
        let conf = ockconf::parse(&text)
            .map_err(|e| PortError::new(format!("`{}`: {e}", path.display())))?;
        Ok(conf
            .slots
            .iter()
            .map(|s| OckSlot {
                slot: s.slot,
                stdll: s.stdll.clone(),
                confname: s.confname.clone(),
                ep11: s.kind() == mkplan_plan::init::inventory::TokenKind::Ep11,
            })
            .collect())
    }

    fn run_read_only(
        &self,
        command: &ReadOnlyCommand,
        deadline: Option<Instant>,
    ) -> Result<Finished, CommandError> {
        let command = self.command(command.spec())?;
        process::run(
            command,
            deadline,
            &Cancel::new(),
            OnCancel::Kill,
            &mut || {},
        )
        .map_err(CommandError::Spawn)
    }
}

impl HostActions for LinuxHost {
    fn change_service(
        &self,
        unit: &ServiceUnit<'_>,
        verb: ServiceVerb,
        deadline: Instant,
        cancel: &Cancel,
    ) -> Result<i32, PortError> {
        services::run(&self.root, unit, verb.into(), deadline, cancel)
    }

    fn run_command(
        &self,
        command: &CommandSpec,
        deadline: Option<Instant>,
        cancel: &Cancel,
        on_cancel: OnCancel,
        on_waiting: &mut dyn FnMut(),
    ) -> Result<Finished, CommandError> {
        let command = self.command(command)?;
        process::run(command, deadline, cancel, on_cancel, on_waiting).map_err(CommandError::Spawn)
    }

    fn parse_pkcscca_output(&self, transcript: &str) -> Result<PkcsccaSummary, String> {
        crate::pkcscca::parse_migrate_output(transcript).map_err(|e| e.to_string())
    }

    fn run_on_pty(
        &self,
        command: &PtyCommand<'_>,
        dialog: &mut dyn PtyDialog,
        deadline: Option<Instant>,
        cancel: &Cancel,
    ) -> Result<PtyExit, PtyError> {
        pty::run(command, dialog, deadline, cancel)
    }

    fn create_private_dirs(&self, dir: &Path) -> io::Result<()> {
        mkplan_engine::access::create_private_dirs(dir)
    }

    fn clear_partials(&self, dir: &Path, run_id: &str) -> Result<(), PortError> {
        archive::clear_partials(dir, run_id)
            .map(|_| ())
            .map_err(port_error)
    }

    fn backup_store(
        &self,
        store: &Path,
        dir: &Path,
        stem: &str,
        progress: Progress<'_>,
    ) -> Result<BackupRecord, PortError> {
        archive::backup_reporting(store, dir, stem, progress).map_err(port_error)
    }

    fn prune_backups(
        &self,
        dir: &Path,
        token: &str,
        keep: u32,
        current: &Path,
    ) -> Result<Vec<PathBuf>, PortError> {
        archive::prune(dir, token, keep, current).map_err(port_error)
    }

    fn restore_store(
        &self,
        backup: &JournaledBackup,
        store: &Path,
        run_id: &str,
        progress: Progress<'_>,
    ) -> Result<RestoreRecord, PortError> {
        // A substituted archive of another size is refused before anything is extracted:
        // the digests, checked as the archive streams into the staging directory, catch
        // the rest, but only once its content has been written out.
        if let Some(journaled_bytes) = backup.archive_bytes {
            let bytes = std::fs::symlink_metadata(&backup.archive)
                .map_err(|e| port_error(format!("`{}`: {e}", backup.archive.display())))?
                .len();
            if bytes != journaled_bytes {
                return Err(port_error(archive::ArchiveError::NotJournaled {
                    detail: format!(
                        "archive `{}` is {bytes} bytes, this run journaled {journaled_bytes}",
                        backup.archive.display()
                    ),
                }));
            }
        }
        let journaled = archive::Journaled {
            archive_sha256: &backup.archive_sha256,
            manifest_sha256: &backup.manifest_sha256,
            file_bytes: backup.file_bytes,
        };
        let from = (backup.archive.as_path(), backup.manifest.as_path());
        archive::restore_reporting(from, store, run_id, journaled, progress).map_err(port_error)
    }

    fn discard_token_index(&self, store: &Path) -> Result<Option<PathBuf>, PortError> {
        store::discard_token_index(&self.root, store)
    }

    fn copy_file(&self, from: &Path, to: &Path) -> io::Result<()> {
        fsutil::copy(from, to)
    }

    fn replace_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        fsutil::replace(path, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_store(store: &Path, key: &[u8]) {
        std::fs::create_dir_all(store.join("TOK_OBJ")).unwrap();
        std::fs::write(store.join("TOK_OBJ/OBJ00001"), key).unwrap();
        std::fs::write(store.join("TOK_OBJ/OBJ.IDX"), b"OBJ00001\n").unwrap();
    }

    /// An archive swapped for one of another size is refused before a byte of it is
    /// extracted: no staging directory, the store as it was.
    #[test]
    fn an_archive_of_another_size_is_refused_before_anything_is_extracted() {
        let dir = tempfile::tempdir().unwrap();
        let host = LinuxHost::new(HostRoot::new(dir.path()));
        let store = dir.path().join("ep11tok");
        let backups = dir.path().join("backups");
        std::fs::create_dir(&backups).unwrap();
        write_store(&store, b"the journaled key");
        let record = host
            .backup_store(&store, &backups, "run-ep11tok", &mut |_, _, _| {})
            .unwrap();
        // Another store's archive, put under the journaled name.
        let other = dir.path().join("other/ep11tok");
        write_store(&other, &[7u8; 4096]);
        let other_backups = dir.path().join("other-backups");
        std::fs::create_dir(&other_backups).unwrap();
        let substitute = archive::backup(&other, &other_backups, "run-ep11tok").unwrap();
        assert_ne!(substitute.archive_bytes, record.archive_bytes);
        std::fs::copy(&substitute.archive, &record.archive).unwrap();
        std::fs::write(store.join("TOK_OBJ/OBJ00001"), b"changed since").unwrap();

        let err = host
            .restore_store(
                &JournaledBackup::from(&record),
                &store,
                "run",
                &mut |_, _, _| {},
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("this run journaled {}", record.archive_bytes))
                && err.contains("nothing was restored"),
            "{err}"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.contains("restore")), "{names:?}");
        assert_eq!(
            std::fs::read(store.join("TOK_OBJ/OBJ00001")).unwrap(),
            b"changed since"
        );
    }
}
