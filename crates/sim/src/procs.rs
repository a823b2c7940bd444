//! The simulated host's processes: units (and strays) that map every token's POSIX shm file
//! so `/proc/<pid>/maps` shows it (opencryptoki-ep11.md 4), and the pkcsslotd stand-in with
//! its pid file (3.3, 3.4). Every one is a real process, detached from whoever started it: a
//! new session, stdio on `/dev/null`, cwd `/`, and its starter exits right after it is ready
//! (spawn-and-exit), so it is re-parented away and is never a descendant of mkplan or a test.
//!
//! Who is who is decided from `/proc/<pid>/cmdline`, never from a pid file alone (pids are
//! reused): a unit is `mkplan-sim unit-process --root <root> --unit <unit>`, a stray the same
//! with `--stray`, pkcsslotd is `<root>/usr/sbin/pkcsslotd` with comm `pkcsslotd`.
//!
//! This file starts, finds and stops them; what each one does once it runs is
//! `process_main` (and `read_watcher`).

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::state;
use crate::{SimError, store};
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::ports::root::token_shm_path;

const POLL: Duration = Duration::from_millis(20);
/// How long a start waits for its process to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// systemd's SIGTERM → SIGKILL escalation, shortened.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Size of a token shm file created by a process that finds none.
const SHM_SIZE: u64 = 4096;
/// Set on the pkcsslotd stand-in's daemon copy.
pub(crate) const SLOTD_DAEMON_ENV: &str = "MKPLAN_SIM_SLOTD_DAEMON";

pub(crate) fn unit_pid_file(root: &Path, unit: &str) -> PathBuf {
    root.join("run/mkplan-sim/units")
        .join(format!("{unit}.pid"))
}

pub(crate) fn stray_dir(root: &Path) -> PathBuf {
    root.join("run/mkplan-sim/strays")
}

pub(crate) fn slotd_pid_file(root: &Path) -> PathBuf {
    root.join("run/opencryptoki/pkcsslotd.pid")
}

pub(crate) fn slotd_path(root: &Path) -> PathBuf {
    root.join("usr/sbin/pkcsslotd")
}

pub(crate) fn read_pid(path: &Path) -> Option<i32> {
    mkplan_plan::input::read_to_string(path, mkplan_plan::input::SMALL)
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn proc_file(pid: i32, name: &str) -> Option<Vec<u8>> {
    mkplan_plan::input::read(
        Path::new(&format!("/proc/{pid}/{name}")),
        mkplan_plan::input::PROC_MAPS,
    )
    .ok()
}

/// The process exists and is not a zombie (a stopped unit whose new parent has not reaped
/// it yet is gone for every purpose here).
pub(crate) fn alive(pid: i32) -> bool {
    let Some(stat) = proc_file(pid, "stat") else {
        return false;
    };
    let after_comm = stat
        .iter()
        .rposition(|b| *b == b')')
        .map(|i| &stat[i + 1..]);
    !matches!(
        after_comm.and_then(|rest| rest.iter().find(|b| **b != b' ')),
        Some(b'Z' | b'X') | None
    )
}

pub(crate) fn cmdline(pid: i32) -> Vec<String> {
    proc_file(pid, "cmdline")
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

fn unit_args(root: &Path, unit: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "unit-process".to_owned(),
        "--root".to_owned(),
        root.display().to_string(),
    ];
    match unit {
        Some(unit) => args.extend(["--unit".to_owned(), unit.to_owned()]),
        None => args.push("--stray".to_owned()),
    }
    args
}

fn is_unit_process(pid: i32, root: &Path, unit: Option<&str>) -> bool {
    alive(pid) && cmdline(pid).get(1..) == Some(&unit_args(root, unit)[..])
}

fn is_slotd(pid: i32, root: &Path) -> bool {
    let comm = proc_file(pid, "comm").unwrap_or_default();
    alive(pid)
        && comm.trim_ascii() == b"pkcsslotd"
        && cmdline(pid).first().map(PathBuf::from) == Some(slotd_path(root))
}

/// The pid of the running unit `unit` of this root.
pub(crate) fn unit_pid(root: &Path, unit: &str) -> Option<i32> {
    read_pid(&unit_pid_file(root, unit)).filter(|pid| is_unit_process(*pid, root, Some(unit)))
}

/// pkcsslotd runs: one of its pid files (any release's layout) names a live pkcsslotd, found
/// exactly as mkplan finds the real daemon (`host::slotd`).
pub(crate) fn slotd_running(root: &Path) -> Option<i32> {
    crate::slotd::running(root)
}

/// Starts `command` detached: new session, stdio on /dev/null, cwd `/`. Callers build it
/// with [`clean_command`]: a simulated process inherits nothing from whoever started it.
fn spawn_detached(mut command: Command) -> io::Result<Child> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/");
    // SAFETY: `setsid` is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| rustix::process::setsid().map(drop).map_err(io::Error::from));
    }
    command.spawn()
}

/// `program` with an empty environment. Whoever starts a simulated process (a rehearsal,
/// an operator's shell, a test) may hold a PIN in a variable, and a long-lived process
/// would show it in `/proc/<pid>/environ` for its lifetime; none of them needs one.
pub(crate) fn clean_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.env_clear();
    command
}

fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Spawns a unit (or, with `None`, a stray) and waits until it has mapped the shm files and
/// written its pid file. The caller should exit soon after, so the process is re-parented.
pub(crate) fn spawn_unit(root: &Path, sim_exe: &Path, unit: Option<&str>) -> Result<i32, SimError> {
    let mut command = clean_command(sim_exe);
    // `sim_exe` may be the mkplan binary (rehearse): the name selects the simulator.
    command.arg0(crate::SIM_EXE_NAME);
    command.args(unit_args(root, unit));
    let mut child = spawn_detached(command).map_err(|e| SimError::io(sim_exe, e))?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let ready = || match unit {
        Some(unit) => unit_pid(root, unit) == Some(pid),
        None => stray_dir(root).join(format!("{pid}.pid")).exists(),
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    wait_until(deadline, || {
        ready() || matches!(child.try_wait(), Ok(Some(_)))
    });
    if ready() {
        return Ok(pid);
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(SimError::Process(format!(
        "the simulated process for `{}` did not become ready",
        unit.unwrap_or("stray")
    )))
}

/// SIGTERM, wait, then SIGKILL: true when the process is gone.
pub(crate) fn terminate(pid: i32, grace: Duration) -> bool {
    let Some(target) = Pid::from_raw(pid) else {
        return true;
    };
    let _ = rustix::process::kill_process(target, Signal::TERM);
    if wait_until(Instant::now() + grace, || !alive(pid)) {
        return true;
    }
    let _ = rustix::process::kill_process(target, Signal::KILL);
    wait_until(Instant::now() + Duration::from_secs(5), || !alive(pid))
}

/// Stops unit `unit` (SIGTERM, escalating to SIGKILL after a grace period, like systemd).
pub(crate) fn stop_unit(root: &Path, unit: &str) -> bool {
    let ok = unit_pid(root, unit).is_none_or(|pid| terminate(pid, STOP_GRACE));
    if ok {
        let _ = fs::remove_file(unit_pid_file(root, unit));
    }
    ok
}

/// What `C_Initialize` leaves in a process (opencryptoki-ep11.md 4): every token's shm file
/// mapped (created as the token would) and its lock file open, until the process ends.
/// Returns the open files, which the caller keeps.
pub(crate) fn attach_tokens(
    root: &Path,
    state: &state::SimState,
) -> Result<Vec<fs::File>, SimError> {
    let host = HostRoot::new(root);
    let mut keep = Vec::new();
    for record in state.tokens.values() {
        let shm = token_shm_path(&host, &record.store);
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&shm)
            .map_err(|e| SimError::io(&shm, e))?;
        let len = file.metadata().map_err(|e| SimError::io(&shm, e))?.len();
        if len < SHM_SIZE {
            file.set_len(SHM_SIZE).map_err(|e| SimError::io(&shm, e))?;
        }
        // SAFETY: a fresh shared read-only mapping of a file we hold; never dereferenced.
        unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                SHM_SIZE as usize,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                &file,
                0,
            )
        }
        .map_err(|e| SimError::io(&shm, e.into()))?;
        let lock = store::lock_file(root, &crate::token::under(root, &record.store));
        if let Some(dir) = lock.parent() {
            let _ = fs::create_dir_all(dir);
        }
        keep.extend(
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .ok(),
        );
        keep.push(file);
    }
    Ok(keep)
}

/// Starts the pkcsslotd daemon copy (argv[0] is the root's `usr/sbin/pkcsslotd`, so its
/// comm is `pkcsslotd`) and waits for its pid file. `Ok(None)`: it was already running.
pub(crate) fn start_slotd(root: &Path) -> Result<Option<i32>, SimError> {
    if slotd_running(root).is_some() {
        return Ok(None);
    }
    let program = slotd_path(root);
    let mut command = clean_command(&program);
    command.env(SLOTD_DAEMON_ENV, "1");
    let mut child = spawn_detached(command).map_err(|e| SimError::io(&program, e))?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let deadline = Instant::now() + READY_TIMEOUT;
    if wait_until(deadline, || {
        slotd_running(root) == Some(pid) || matches!(child.try_wait(), Ok(Some(_)))
    }) && slotd_running(root) == Some(pid)
    {
        return Ok(Some(pid));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(SimError::Process(
        "the pkcsslotd stand-in did not start".to_owned(),
    ))
}

/// Stops pkcsslotd of this root (only a process that is this root's stand-in).
pub(crate) fn stop_slotd(root: &Path) -> bool {
    match read_pid(&slotd_pid_file(root)).filter(|pid| is_slotd(*pid, root)) {
        Some(pid) => terminate(pid, STOP_GRACE),
        None => true,
    }
}

/// Stops every stray of this root.
pub(crate) fn stop_strays(root: &Path) {
    for entry in fs::read_dir(stray_dir(root))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Some(pid) = read_pid(&entry.path()).filter(|pid| is_unit_process(*pid, root, None)) {
            terminate(pid, Duration::from_secs(2));
        }
        let _ = fs::remove_file(entry.path());
    }
}

/// Stops every process of this root: units, strays, pkcsslotd, and (as a safety net) any
/// process whose command line is one of this root's simulated processes.
pub(crate) fn shutdown(root: &Path) -> Result<(), SimError> {
    let units_dir = root.join("run/mkplan-sim/units");
    for entry in fs::read_dir(&units_dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(unit) = name.strip_suffix(".pid") {
            stop_unit(root, unit);
        }
    }
    stop_strays(root);
    stop_apps(root);
    stop_watchers(root);
    stop_slotd(root);
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let mut left = Vec::new();
    for entry in fs::read_dir("/proc")
        .map_err(|e| SimError::io(Path::new("/proc"), e))?
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        let argv = cmdline(pid);
        let ours = argv.first().map(PathBuf::from) == Some(slotd_path(root))
            || (argv.get(1).is_some_and(|a| {
                ["unit-process", "app-process", "read-watcher"].contains(&a.as_str())
            }) && argv
                .windows(2)
                .any(|w| w[0] == "--root" && Path::new(&w[1]) == root));
        if ours && !terminate(pid, Duration::from_secs(2)) {
            left.push(pid);
        }
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(SimError::Process(format!(
            "processes {left:?} of this root did not end"
        )))
    }
}

/// Spawns `mkplan-sim <args>` detached and waits until `ready` (or the process died).
fn spawn_ready(
    sim_exe: &Path,
    args: &[String],
    ready: impl Fn(i32) -> bool,
    what: &str,
) -> Result<i32, SimError> {
    let mut command = clean_command(sim_exe);
    command.arg0(crate::SIM_EXE_NAME);
    command.args(args);
    let mut child = spawn_detached(command).map_err(|e| SimError::io(sim_exe, e))?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let deadline = Instant::now() + READY_TIMEOUT;
    wait_until(deadline, || {
        ready(pid) || matches!(child.try_wait(), Ok(Some(_)))
    });
    if ready(pid) {
        return Ok(pid);
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(SimError::Process(format!(
        "the simulated process for `{what}` did not become ready"
    )))
}

/// Runs `mkplan-sim spawn --root <root> <what>` and waits for it: it starts the process
/// detached and exits once the process is ready.
pub(crate) fn spawn_helper(root: &Path, sim_exe: &Path, what: &[&str]) -> Result<(), SimError> {
    // `sim_exe` may be the mkplan binary (rehearse): the name selects the simulator.
    let output = clean_command(sim_exe)
        .arg0(crate::SIM_EXE_NAME)
        .arg("spawn")
        .arg("--root")
        .arg(root)
        .args(what)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| SimError::io(sim_exe, e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SimError::Process(format!(
            "`mkplan-sim spawn {}` failed: {}",
            what.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn app_args(root: &Path, name: &str) -> Vec<String> {
    [
        "app-process",
        "--root",
        &root.display().to_string(),
        "--app",
        name,
    ]
    .map(str::to_owned)
    .to_vec()
}

pub(crate) fn app_pid_file(root: &Path, name: &str) -> PathBuf {
    root.join("run/mkplan-sim/apps").join(format!("{name}.pid"))
}

/// The pid of the running standalone app `name`.
pub(crate) fn app_pid(root: &Path, name: &str) -> Option<i32> {
    read_pid(&app_pid_file(root, name))
        .filter(|pid| alive(*pid) && cmdline(*pid).get(1..) == Some(&app_args(root, name)[..]))
}

/// Spawns the standalone app `name` (recorded in the state) and waits for its pid file.
pub(crate) fn spawn_app(root: &Path, sim_exe: &Path, name: &str) -> Result<i32, SimError> {
    spawn_ready(
        sim_exe,
        &app_args(root, name),
        |pid| app_pid(root, name) == Some(pid),
        name,
    )
}

/// Records the standalone app (if new) and starts it (if not running).
pub(crate) fn start_app(
    root: &Path,
    name: &str,
    tokens: &[String],
    interval_ms: Option<u64>,
) -> Result<(), SimError> {
    let sim_exe = {
        let lock = state::lock(root)?;
        let mut state = state::load(root)?;
        if let Some(unknown) = tokens.iter().find(|t| !state.tokens.contains_key(*t)) {
            return Err(SimError::Usage(format!(
                "no token `{unknown}` on this host"
            )));
        }
        match state.apps.iter_mut().find(|a| a.name == name) {
            Some(app) if app.in_unit => {
                return Err(SimError::Usage(format!(
                    "`{name}` is a unit's app: start the unit"
                )));
            }
            Some(app) => {
                if !tokens.is_empty() {
                    app.tokens = tokens.to_vec();
                }
                if let Some(ms) = interval_ms {
                    app.interval_ms = ms.max(1);
                }
            }
            None => state.apps.push(crate::host_spec::AppSpec {
                name: name.to_owned(),
                in_unit: false,
                tokens: tokens.to_vec(),
                interval_ms: interval_ms
                    .unwrap_or(crate::host_spec::DEFAULT_INTERVAL_MS)
                    .max(1),
            }),
        }
        if name.is_empty() || name.contains('/') {
            return Err(SimError::Usage(format!("`{name}` is not an app name")));
        }
        crate::persist::save(root, &state, &lock)?;
        state.sim_exe
    };
    if app_pid(root, name).is_none() {
        spawn_helper(root, &sim_exe, &["--app", name])?;
    }
    Ok(())
}

/// Stops the standalone app `name`.
pub(crate) fn stop_app(root: &Path, name: &str) -> Result<(), SimError> {
    let ok = app_pid(root, name).is_none_or(|pid| terminate(pid, STOP_GRACE));
    let _ = fs::remove_file(app_pid_file(root, name));
    if ok {
        Ok(())
    } else {
        Err(SimError::Process(format!("the app `{name}` did not stop")))
    }
}

fn stop_apps(root: &Path) {
    for entry in fs::read_dir(root.join("run/mkplan-sim/apps"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(app) = name.strip_suffix(".pid") {
            let _ = stop_app(root, app);
        }
    }
}

fn watcher_args(root: &Path, apqn: mkplan_plan::model::Apqn) -> Vec<String> {
    [
        "read-watcher",
        "--root",
        &root.display().to_string(),
        "--apqn",
        &apqn.lszcrypt(),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn watcher_pid(root: &Path, apqn: mkplan_plan::model::Apqn) -> Option<i32> {
    read_pid(&crate::read_watcher::watcher_pid_file(root, apqn))
        .filter(|pid| alive(*pid) && cmdline(*pid).get(1..) == Some(&watcher_args(root, apqn)[..]))
}

/// Spawns the read watcher of the APQN's interrupted-read fault and waits until it watches.
pub(crate) fn spawn_watcher(
    root: &Path,
    sim_exe: &Path,
    apqn: mkplan_plan::model::Apqn,
) -> Result<i32, SimError> {
    let _ = fs::remove_file(crate::read_watcher::watcher_pid_file(root, apqn));
    spawn_ready(
        sim_exe,
        &watcher_args(root, apqn),
        |pid| watcher_pid(root, apqn) == Some(pid),
        "read watcher",
    )
}

/// Stops the APQN's read watcher, if one runs.
pub(crate) fn stop_watcher(root: &Path, apqn: mkplan_plan::model::Apqn) {
    if let Some(pid) = watcher_pid(root, apqn) {
        terminate(pid, Duration::from_secs(2));
    }
    let _ = fs::remove_file(crate::read_watcher::watcher_pid_file(root, apqn));
}

/// Stops every read watcher of this root.
pub(crate) fn stop_watchers(root: &Path) {
    for entry in fs::read_dir(root.join("run/mkplan-sim/watchers"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let apqn = name.strip_suffix(".pid").and_then(|n| {
            mkplan_plan::model::Apqn::from_plan_value(&serde_json::Value::String(n.to_owned())).ok()
        });
        if let Some(apqn) = apqn {
            stop_watcher(root, apqn);
        }
    }
}
