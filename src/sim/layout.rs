//! `init`: lays out a simulated host that matches a plan, then starts its processes.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::host::HostRoot;
use crate::host::procscan::token_shm_path;
use crate::plan::model::{Plan, ServiceControl};
use crate::sim::crypto::extend_vp;
use crate::sim::state::{
    self, Card, CommandService, CurRegister, NewRegister, Queue, Register, SimState, TokenRecord,
};
use crate::sim::token::under;
use crate::sim::{SimError, store};

/// The stand-ins `init` installs, as (directory, name): symlinks to `mkplan-sim`, which
/// dispatches on the name it was run as.
pub(crate) const STANDINS: [(&str, &str); 3] = [
    ("usr/sbin", "pkcsep11_migrate"),
    ("usr/bin", "systemctl"),
    ("usr/sbin", "pkcsslotd"),
];
/// Where `probe_keys` looks for libopencryptoki; the simulated host has a placeholder there
/// (rehearsal injects [`crate::sim::SimProber`] instead of loading it).
const LIBRARY_PLACEHOLDER: &str = "usr/lib/opencryptoki/libopencryptoki.so";

pub(crate) fn lay_out(
    root: &Path,
    plan: &Plan,
    keys: usize,
    pin: &str,
    sim_exe: &Path,
) -> Result<(), SimError> {
    if state::state_path(root).exists() {
        return Err(SimError::AlreadyInitialised(root.to_path_buf()));
    }
    let sim_dir = state::sim_dir(root);
    fs::create_dir_all(&sim_dir).map_err(|e| SimError::io(&sim_dir, e))?;
    let lock = state::lock(root)?;
    let state = state_for(plan, sim_exe);
    state::save(root, &state, &lock)?;

    let host = HostRoot::new(root);
    for token in plan.tokens.values() {
        let vp = extend_vp(&token.wkvp_current);
        let objects = store::new_objects(keys, &vp)?;
        store::create(&under(root, &token.store), token.id.as_str(), pin, &objects)?;
        if let Some(config) = &token.config {
            let text = store::ep11tok_conf(
                token.id.as_str(),
                &token.apqns,
                &token.wkvp_current.to_string(),
            );
            write_file(&under(root, config), text.as_bytes())?;
        }
        write_file(&token_shm_path(&host, &token.store), &[0u8; 4096])?;
        write_file(&store::lock_file(root, &under(root, &token.store)), b"")?;
    }
    write_file(
        &root.join("etc/opencryptoki/opencryptoki.conf"),
        crate::sim::ockconf::opencryptoki_conf(plan).as_bytes(),
    )?;
    for (dir, name) in STANDINS {
        link(&root.join(dir).join(name), sim_exe)?;
    }
    for service in &state.commands {
        for argv in [&service.stop, &service.start, &service.is_active] {
            if let Some(program) = argv
                .first()
                .filter(|p| Path::new(p).file_name().is_some_and(|n| n != "systemctl"))
            {
                link(&command_path(root, program), sim_exe)?;
            }
        }
    }
    write_file(
        &root.join(LIBRARY_PLACEHOLDER),
        b"mkplan-sim placeholder: the simulated host has no PKCS#11 library.\n",
    )?;
    for dir in [
        "run/opencryptoki",
        "run/mkplan-sim/units",
        "var/log/mkplan-sim",
    ] {
        fs::create_dir_all(root.join(dir)).map_err(|e| SimError::io(&root.join(dir), e))?;
    }
    Ok(())
}

/// The state of a fresh host: every APQN with CUR valid = its token's `wkvp.current`, NEW
/// empty; cards CEX8P, online, configured.
fn state_for(plan: &Plan, sim_exe: &Path) -> SimState {
    let mut cards = BTreeMap::new();
    let mut apqns = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    for token in plan.tokens.values() {
        let vp = extend_vp(&token.wkvp_current);
        for apqn in &token.apqns {
            cards
                .entry(format!("{:02x}", apqn.adapter()))
                .or_insert_with(|| Card {
                    card_type: "CEX8P".to_owned(),
                    online: true,
                    config: true,
                    chkstop: false,
                });
            apqns.insert(
                apqn.lszcrypt(),
                Queue {
                    adapter: apqn.adapter(),
                    domain: apqn.domain(),
                    token: token.id.to_string(),
                    online: true,
                    config: true,
                    chkstop: false,
                    cur: Register {
                        state: CurRegister::Valid,
                        vp: Some(vp),
                    },
                    new: Register {
                        state: NewRegister::Empty,
                        vp: None,
                    },
                },
            );
        }
        tokens.insert(
            token.id.to_string(),
            TokenRecord {
                slot: u64::from(token.slot.get()),
                store: token.store.clone(),
                config: token.config.clone(),
                apqns: token.apqns.iter().map(|a| a.lszcrypt()).collect(),
                wkvp_new: token.wkvp_new.to_string(),
            },
        );
    }
    let mut units = Vec::new();
    let mut commands = Vec::new();
    for service in plan.services.values() {
        match &service.control {
            ServiceControl::Systemd(list) => units.extend(list.iter().cloned()),
            ServiceControl::Commands {
                stop,
                start,
                is_active,
            } => commands.push(CommandService {
                name: service.id.to_string(),
                stop: stop.clone(),
                start: start.clone(),
                is_active: is_active.clone(),
            }),
        }
    }
    units.sort();
    units.dedup();
    SimState {
        format: state::STATE_FORMAT.to_owned(),
        version: state::VERSION,
        sim_exe: sim_exe.to_path_buf(),
        cards,
        apqns,
        tokens,
        units,
        commands,
    }
}

/// Where a command service's program is installed: its absolute path under the root, or a
/// bare name in `usr/bin` (mkplan looks programs up on a system path under the root).
pub(crate) fn command_path(root: &Path, program: &str) -> PathBuf {
    if program.starts_with('/') {
        under(root, Path::new(program))
    } else {
        root.join("usr/bin").join(program)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    }
    fs::write(path, bytes).map_err(|e| SimError::io(path, e))
}

fn link(at: &Path, target: &Path) -> Result<(), SimError> {
    if let Some(dir) = at.parent() {
        fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    }
    match fs::symlink_metadata(at) {
        Ok(_) => fs::remove_file(at).map_err(|e| SimError::io(at, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SimError::io(at, e)),
    }
    symlink(target, at).map_err(|e| SimError::io(at, e))
}

/// Starts pkcsslotd and every unit and command service, each through a short-lived helper
/// process (`mkplan-sim spawn`), so none of them is a descendant of the caller.
pub(crate) fn start_everything(root: &Path) -> Result<(), SimError> {
    let state = state::load(root)?;
    spawn_helper(root, &state.sim_exe, &["--slotd"])?;
    let names = state
        .units
        .iter()
        .chain(state.commands.iter().map(|c| &c.name));
    for unit in names {
        spawn_helper(root, &state.sim_exe, &["--unit", unit])?;
    }
    Ok(())
}

/// Runs `mkplan-sim spawn --root <root> <what>` and waits for it: it starts the process
/// detached and exits once the process is ready.
pub(crate) fn spawn_helper(root: &Path, sim_exe: &Path, what: &[&str]) -> Result<(), SimError> {
    // `sim_exe` may be the mkplan binary (rehearse): the name selects the simulator.
    let output = crate::sim::procs::clean_command(sim_exe)
        .arg0(crate::sim::SIM_EXE_NAME)
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
