//! The host as steps and the preflight see it. [`HostView`] only reads: a step's `check`
//! gets nothing else, so a dry run cannot write, and the only programs it can run are a
//! service's is-active query and a command the plan itself marks `read_only`
//! ([`ReadOnlyCommand`]). [`HostActions`] adds what changes the system; only the executor in
//! run mode hands it out.
//!
//! Paths are resolved under the host root by the caller, as each method says, exactly where
//! the steps resolved them before there were ports.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cancel::Cancel;
use crate::ports::root::HostRoot;
use crate::record::backup::{BackupRecord, JournaledBackup, RestoreRecord};
use crate::record::command::Finished;
use crate::record::pkcscca::PkcsccaSummary;
use crate::record::users::ScanResult;
use crate::record::wk::ApqnStatus;
use crate::secret::Pin;
use crate::trust::{TrustError, Trusted};
use mkplan_plan::model::{Apqn, CommandStep, ServiceControl};

/// How far a long host operation is: `(done, total once known, what it is doing)`, in files.
/// Called at most a few times a second.
pub type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>, &str);

/// What a host adapter could not do, in words that name what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PortError(String);

impl PortError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Everything a step's `check` and the preflight may ask of the host. No method writes.
pub trait HostView: Send + Sync {
    fn root(&self) -> &HostRoot;

    /// Whether the AP bus exists (`/sys/bus/ap`): an IBM Z host with the zcrypt driver.
    fn ap_bus_present(&self) -> bool;
    /// The APQN's card and queue as sysfs shows them.
    fn read_apqn(&self, apqn: Apqn) -> Result<ApqnStatus, PortError>;
    /// A token's `ep11tok.conf` (`config` resolved under the root), bounded.
    fn read_config(&self, config: &Path) -> io::Result<String>;

    /// Every process, other than mkplan and its children, that maps one of the tokens whose
    /// stores (as the plan names them) are given; one pass over `/proc` per store.
    fn token_users(&self, stores: &[&Path]) -> ScanResult;
    /// Every process that runs a migration tool against the token in `slot` whose store is
    /// `store` (as the plan names it); `also` are tool names a plan gives in `tool:`.
    fn running_tools(&self, slot: u16, store: &Path, also: &[String]) -> Vec<RunningTool>;
    /// The running pkcsslotd, confirmed through `/proc`.
    fn slot_daemon(&self) -> Result<SlotDaemon, PortError>;

    /// `name` on the system path under the root.
    fn find_program(&self, name: &str) -> Option<PathBuf>;
    /// A plan's argv[0] under the root: an absolute path, or a bare name on the system path.
    fn resolve_program(&self, program: &str) -> Result<PathBuf, PortError>;
    /// Whether `path` is a regular file this user may execute.
    fn runnable(&self, path: &Path) -> Result<(), PortError>;
    /// Like ssh's StrictModes: nobody but root or the operator can change `path`.
    fn check_trusted(&self, path: &Path, what: Trusted) -> Result<(), TrustError>;
    /// openCryptoki's PKCS#11 library: `given` (as the plan names it) under the root, else
    /// the first of the usual places that exists.
    fn pkcs11_module(&self, given: Option<&Path>) -> Result<PathBuf, PortError>;

    /// The permission bits of `dir`, if it can be looked at.
    fn dir_mode(&self, dir: &Path) -> Option<u32>;
    /// Whether the token store `store` (resolved) is a directory.
    fn store_is_dir(&self, store: &Path) -> io::Result<bool>;
    /// Whether `store` (resolved) is the store the journaled `backup` holds, compared file
    /// by file and by hash with its manifest, which counts only if it is the journaled one.
    /// The archive is not read: a restore checks it as it extracts.
    fn compare_with_backup(
        &self,
        store: &Path,
        backup: &JournaledBackup,
    ) -> Result<BackupComparison, PortError>;
    /// Cheap proof that `store` (resolved) is still what was backed up: every file of the
    /// journaled manifest has its size and mtime, and there are no others. The number of
    /// files checked.
    fn store_matches_backup(
        &self,
        store: &Path,
        backup: &JournaledBackup,
    ) -> Result<u64, StoreDrift>;
    /// How many key object files of `store` (resolved) differ from the journaled backup:
    /// (changed, objects in the backup); `None` without a readable journaled manifest.
    fn object_changes(&self, store: &Path, backup: &JournaledBackup) -> Option<(usize, usize)>;
    /// Objects listed in `TOK_OBJ/OBJ.IDX` of `store` (resolved).
    fn object_count(&self, store: &Path) -> Option<u64>;

    /// Whether a service unit is active (its is-active query exits 0).
    fn service_active(
        &self,
        unit: &ServiceUnit<'_>,
        deadline: Instant,
        cancel: &Cancel,
    ) -> Result<bool, PortError>;
    /// The slots `opencryptoki.conf` (under the root) configures.
    fn ock_slots(&self) -> Result<Vec<OckSlot>, PortError>;
    /// Runs a command the plan marks read-only, killed if it outlives `deadline`.
    fn run_read_only(
        &self,
        command: &ReadOnlyCommand,
        deadline: Option<Instant>,
    ) -> Result<Finished, CommandError>;
}

/// What only the executor in run mode may do.
pub trait HostActions: HostView {
    /// Runs a service's stop or start command; its exit code.
    fn change_service(
        &self,
        unit: &ServiceUnit<'_>,
        verb: ServiceVerb,
        deadline: Instant,
        cancel: &Cancel,
    ) -> Result<i32, PortError>;
    /// Runs a command to its end; `on_waiting` is called once if a stop was requested and
    /// the command is waited for.
    fn run_command(
        &self,
        command: &CommandSpec,
        deadline: Option<Instant>,
        cancel: &Cancel,
        on_cancel: OnCancel,
        on_waiting: &mut dyn FnMut(),
    ) -> Result<Finished, CommandError>;
    /// Runs a tool on a pty, in its own session, dying with mkplan; `dialog` reads its output
    /// and answers its prompt.
    fn run_on_pty(
        &self,
        command: &PtyCommand<'_>,
        dialog: &mut dyn PtyDialog,
        deadline: Option<Instant>,
        cancel: &Cancel,
    ) -> Result<PtyExit, PtyError>;

    /// The transcript of one `pkcscca -m keys` run, parsed as the tool prints it (the
    /// format is the host's tool's, so its parser lives with the host). An error: output
    /// the tool does not print, so the outcome is unknown.
    fn parse_pkcscca_output(&self, transcript: &str) -> Result<PkcsccaSummary, String>;

    /// Creates `dir` and any parent it needs, each its owner's only (0700).
    fn create_private_dirs(&self, dir: &Path) -> io::Result<()>;
    /// Removes what an interrupted backup of run `run_id` left in `dir`.
    fn clear_partials(&self, dir: &Path, run_id: &str) -> Result<(), PortError>;
    /// Archives `store` into `dir` as `<stem>.tar.gz` with its manifest, read back and
    /// verified.
    fn backup_store(
        &self,
        store: &Path,
        dir: &Path,
        stem: &str,
        progress: Progress<'_>,
    ) -> Result<BackupRecord, PortError>;
    /// Removes all but the newest `keep` backups of `token` in `dir` (never `current`).
    fn prune_backups(
        &self,
        dir: &Path,
        token: &str,
        keep: u32,
        current: &Path,
    ) -> Result<Vec<PathBuf>, PortError>;
    /// Restores `store` (resolved) from the journaled backup, only if its archive and
    /// manifest are the journaled ones.
    fn restore_store(
        &self,
        backup: &JournaledBackup,
        store: &Path,
        run_id: &str,
        progress: Progress<'_>,
    ) -> Result<RestoreRecord, PortError>;
    /// Removes openCryptoki's stale object index of the token whose store (as the plan names
    /// it) was replaced; the file removed, if there was one.
    fn discard_token_index(&self, store: &Path) -> Result<Option<PathBuf>, PortError>;
    /// Copies `from` to a new file `to` (both resolved).
    fn copy_file(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Replaces `path` (resolved) with `bytes` atomically, keeping its mode and owner.
    fn replace_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
}

/// The live store beside a backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupComparison {
    /// Regular files in the backup.
    pub files: u64,
    /// How the store differs from the backup, if it does.
    pub difference: Option<String>,
}

/// Why the store is no longer what was backed up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreDrift {
    #[error("cannot use this run's backup manifest: {0}")]
    Manifest(String),
    #[error(
        "`{0}` is in the backup but no longer in the store: the store changed after the backup"
    )]
    Missing(String),
    #[error("`{0}` changed after the backup; take a new backup before migrating")]
    Changed(String),
    #[error("the store has {live} files but the backup {checked}: it changed after the backup")]
    Count { live: u64, checked: u64 },
}

/// A process that runs a migration tool against a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTool {
    pub pid: i32,
    /// `/proc/<pid>/cmdline`, one element per argument.
    pub argv: Vec<String>,
    /// Why it concerns the token: its slot argument, or what it maps.
    pub why: String,
}

impl RunningTool {
    /// `pid 123 `/usr/sbin/pkcsep11_migrate -slot 4 …` (its `-slot` is 4)`.
    pub fn describe(&self) -> String {
        format!("pid {} `{}` ({})", self.pid, self.argv.join(" "), self.why)
    }

    /// How to wait for it or stop it.
    pub fn hint(&self) -> String {
        let concurrent = self
            .argv
            .first()
            .is_some_and(|argv0| argv0.ends_with("pkcshsm_mk_change"));
        if concurrent {
            // It ignores SIGINT and SIGTERM by design; killed half-way, it leaves an
            // operation neither finalize nor cancel accepts (opencryptoki-ep11.md 2.1).
            return format!(
                "wait for it to end (`tail --pid={} -f /dev/null`); do NOT kill it: stopped half-way, pkcshsm_mk_change leaves an operation that neither finalize nor cancel accepts",
                self.pid
            );
        }
        format!(
            "wait for it to end (`tail --pid={pid} -f /dev/null`), or stop it (`kill {pid}`: a tool stopped half-way leaves the store partly migrated, which `mkplan resume --retry-step` restores from the verified backup first)",
            pid = self.pid
        )
    }
}

/// A running pkcsslotd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotDaemon {
    pub pid: u32,
    /// The pid file that named it, as the host sees it.
    pub pid_file: PathBuf,
    /// Its executable, from `/proc/<pid>/exe` (or `comm` when that cannot be read).
    pub exe: String,
}

/// One thing that is stopped and started: a systemd unit, or a command-driven service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceUnit<'a> {
    pub name: &'a str,
    pub control: &'a ServiceControl,
    /// Variables the service must not inherit (the plan's PIN variables).
    pub scrub_env: &'a [&'a str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceVerb {
    Stop,
    Start,
}

/// What to do when a stop is requested while a program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCancel {
    /// Stop the child (it only reads).
    Kill,
    /// Wait for it: stopping it half-way could leave key material half-rewritten.
    Wait,
}

/// What a command step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// argv[0] is found under the host root like every tool (`/` on a real system).
    Argv(Vec<String>),
    /// A script for the system's `/bin/sh -c`; what it calls is its own to name.
    Shell(String),
}

/// A program to run, with the environment it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub program: Program,
    pub env: BTreeMap<String, String>,
    /// Variables it must not inherit (the plan's PIN variables).
    pub scrub_env: Vec<String>,
}

impl CommandSpec {
    /// What a `command` step runs.
    pub fn of(step: &CommandStep, scrub_env: &[&str]) -> Self {
        let program = if step.shell {
            Program::Shell(step.argv[0].clone())
        } else {
            Program::Argv(step.argv.clone())
        };
        Self {
            program,
            env: step.env.clone(),
            scrub_env: scrub_env.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// A command the plan marks `read_only`: the only kind a dry run may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnlyCommand(CommandSpec);

impl ReadOnlyCommand {
    /// The step's command, if the plan marks it read-only.
    pub fn of(step: &CommandStep, scrub_env: &[&str]) -> Option<Self> {
        step.read_only
            .then(|| Self(CommandSpec::of(step, scrub_env)))
    }

    pub fn spec(&self) -> &CommandSpec {
        &self.0
    }

    /// `pkcshsm_mk_change list [--id ID]` (`tool` as the plan names it, or its bare name):
    /// it only reads the operation files (opencryptoki-ep11.md 2.5), so a dry run may run it.
    pub fn mk_change_list(tool: &str, id: Option<&str>, scrub_env: &[&str]) -> Self {
        let mut argv = vec![tool.to_owned(), "list".to_owned()];
        if let Some(id) = id {
            argv.extend(["--id".to_owned(), id.to_owned()]);
        }
        Self(CommandSpec {
            program: Program::Argv(argv),
            env: BTreeMap::new(),
            scrub_env: scrub_env.iter().map(|s| (*s).to_owned()).collect(),
        })
    }
}

/// One slot of `opencryptoki.conf`, as far as the concurrent change asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OckSlot {
    pub slot: u16,
    /// Its STDLL as written (`libpkcs11_ep11.so`).
    pub stdll: String,
    /// Its token config file, as written (relative names are under `/etc/opencryptoki`).
    pub confname: Option<String>,
    /// `libpkcs11_ep11.so` (any directory or suffix).
    pub ep11: bool,
}

/// Why a program did not run.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Its argv[0] is not under the host root.
    #[error("{0}")]
    NotFound(PortError),
    /// It could not be started.
    #[error("{0}")]
    Spawn(io::Error),
}

/// A tool run on a pty.
pub struct PtyCommand<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    /// Variables it must not inherit.
    pub scrub_env: Vec<String>,
    /// A variable that carries the PIN, for old tools that read it from there.
    pub secret_env: Option<(&'a str, &'a Pin)>,
    /// The tool must be left to finish even if mkplan dies (`pkcshsm_mk_change`: stopped
    /// half-way it leaves an operation neither finalize nor cancel accepts): no parent-death
    /// signal, SIGHUP and SIGPIPE ignored, and never stopped at a deadline.
    pub outlives_mkplan: bool,
}

/// What to type at a prompt.
pub enum Reply<'a> {
    /// A secret, once the time has passed (the tool turns echo off first).
    Secret(&'a Pin, Duration),
    /// A plain answer, such as `y` or `n`.
    Text(&'static str),
    /// End of input (Ctrl-D): the tool gives up without a secret.
    Eof,
}

/// The step's side of a dialog with a tool on a pty.
pub trait PtyDialog {
    /// The prompts to wait for now (none while nothing is awaited).
    fn prompts(&self) -> Vec<String>;
    /// One of the prompts came: what to type.
    fn answer(&mut self, prompt: &str) -> Reply<'_>;
    /// One line of output, as it came.
    fn line(&mut self, line: &str);
    /// Output that came with something else: before the prompt, or at the end.
    fn rest(&mut self, text: &str);
    /// A stop was requested while the tool runs (called once): it is waited for.
    fn stop_requested(&mut self);
}

/// How a tool on a pty ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtyExit {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// It outlived the deadline and was stopped.
    pub timed_out: bool,
}

/// Why a dialog on a pty failed before the tool ended (what the pty said).
#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    /// The tool could not be started.
    #[error("{0}")]
    Spawn(String),
    /// The PIN could not be typed: the tool had started.
    #[error("{0}")]
    SendPin(String),
}

impl fmt::Debug for PtyCommand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PtyCommand")
            .field("program", &self.program)
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}
