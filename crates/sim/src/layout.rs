//! `init`: lays out a simulated host from its description (`HostSpec`), then starts its
//! processes.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::cca::{self, CcaQueue, KeyRegister, MkRegisters, MkType, Mkvp};
use crate::crypto::extend_vp;
use crate::host_spec::{CcaSpec, HostSpec, TokenSpec};
use crate::procs::spawn_helper;
use crate::state::{
    self, Card, CommandService, CurRegister, NewRegister, Queue, Register, SimState, TokenKind,
    TokenRecord,
};
use crate::token::under;
use crate::{SimError, cca_store, store};
use mkplan_engine::ports::root::{HostRoot, token_shm_path};
use mkplan_plan::model::{Apqn, Wkvp};

/// The stand-ins `init` installs, as (directory, name): symlinks to `mkplan-sim`, which
/// dispatches on the name it was run as.
pub(crate) const STANDINS: [(&str, &str); 5] = [
    ("usr/sbin", "pkcsep11_migrate"),
    ("usr/bin", "systemctl"),
    ("usr/sbin", "pkcsslotd"),
    ("usr/sbin", "pkcshsm_mk_change"),
    ("usr/sbin", "pkcscca"),
];
/// Where `probe_keys` looks for libopencryptoki; the simulated host has a placeholder there
/// (rehearsal injects [`crate::SimProber`] instead of loading it).
const LIBRARY_PLACEHOLDER: &str = "usr/lib/opencryptoki/libopencryptoki.so";

pub(crate) fn lay_out(
    root: &Path,
    spec: &HostSpec,
    keys: usize,
    pins: (&str, &str),
    sim_exe: &Path,
) -> Result<(), SimError> {
    spec.check()?;
    if state::state_path(root).exists() {
        return Err(SimError::AlreadyInitialised(root.to_path_buf()));
    }
    let sim_dir = state::sim_dir(root);
    fs::create_dir_all(&sim_dir).map_err(|e| SimError::io(&sim_dir, e))?;
    let lock = state::lock(root)?;
    let state = state_for(spec, sim_exe);
    crate::persist::save(root, &state, &lock)?;

    let host = HostRoot::new(root);
    for token in &spec.tokens {
        let (objects, config) = token_contents(token, keys)?;
        let (user_pin, so_pin) = pins;
        store::create_with_pins(
            &under(root, &token.store),
            token.label(),
            user_pin,
            so_pin,
            objects,
        )?;
        if let (Some(path), Some(text)) = (&token.config, config) {
            write_file(&under(root, path), text.as_bytes())?;
        }
        write_file(&token_shm_path(&host, &token.store), &[0u8; 4096])?;
        write_file(&store::lock_file(root, &under(root, &token.store)), b"")?;
    }
    write_file(
        &root.join("etc/opencryptoki/opencryptoki.conf"),
        crate::ockconf::opencryptoki_conf(spec).as_bytes(),
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
        "var/lock/opencryptoki",
        "var/lib/opencryptoki/HSM_MK_CHANGE",
    ] {
        fs::create_dir_all(root.join(dir)).map_err(|e| SimError::io(&root.join(dir), e))?;
    }
    Ok(())
}

/// A token's objects (EP11: made as they are written), sealed under its current WK or MKs,
/// and its config file's text.
type Objects = Box<dyn Iterator<Item = Result<store::SimObject, SimError>>>;

fn token_contents(token: &TokenSpec, keys: usize) -> Result<(Objects, Option<String>), SimError> {
    if let Some(ep11) = &token.ep11 {
        let objects: Objects = Box::new(store::new_objects_lazily(
            keys,
            extend_vp(&ep11.wkvp_current),
        ));
        let config = if ep11.expected_wkvp {
            store::ep11tok_conf(&token.name, &token.apqns, &ep11.wkvp_current.to_string())
        } else {
            let full = store::ep11tok_conf(&token.name, &token.apqns, "");
            full.lines()
                .filter(|l| !l.starts_with("EXPECTED_WKVP"))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        return Ok((objects, Some(config)));
    }
    let cca = token.cca.as_ref().expect("checked: a token is EP11 or CCA");
    let current: BTreeMap<MkType, Mkvp> = cca.mks.iter().map(|(mk, p)| (*mk, p.current)).collect();
    let objects: Objects = Box::new(cca_store::new_objects(keys, &current)?.into_iter().map(Ok));
    let expected = if cca.expected_mkvps {
        current
    } else {
        BTreeMap::new()
    };
    Ok((
        objects,
        Some(cca_store::ccatok_conf(&token.name, &expected)),
    ))
}

/// The state of a fresh host: every EP11 APQN with CUR valid = its token's current WK and
/// NEW empty; every CCA APQN with CUR valid = its token's current MK of each of its MK
/// types, OLD as given (else invalid), NEW empty, and the other MK types never loaded;
/// cards CEX8P or CEX8C, online, configured.
fn state_for(spec: &HostSpec, sim_exe: &Path) -> SimState {
    let mut cards = BTreeMap::new();
    let mut apqns = BTreeMap::new();
    let mut cca_apqns = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    for token in &spec.tokens {
        let card_type = if token.cca.is_some() {
            "CEX8C"
        } else {
            "CEX8P"
        };
        for apqn in &token.apqns {
            cards
                .entry(format!("{:02x}", apqn.adapter()))
                .or_insert_with(|| Card {
                    card_type: card_type.to_owned(),
                    online: true,
                    config: true,
                    chkstop: false,
                });
            if let Some(ep11) = &token.ep11 {
                apqns.insert(
                    apqn.lszcrypt(),
                    ep11_queue(*apqn, &token.name, &ep11.wkvp_current),
                );
            } else if let Some(cca) = &token.cca {
                cca_apqns.insert(apqn.lszcrypt(), cca_queue(*apqn, &token.name, cca));
            }
        }
        tokens.insert(token.name.clone(), token_record(token));
    }
    SimState {
        format: state::STATE_FORMAT.to_owned(),
        version: state::VERSION,
        sim_exe: sim_exe.to_path_buf(),
        cards,
        apqns,
        tokens,
        units: spec.units.clone(),
        commands: spec
            .commands
            .iter()
            .map(|c| CommandService {
                name: c.name.clone(),
                stop: c.stop.clone(),
                start: c.start.clone(),
                is_active: c.is_active.clone(),
            })
            .collect(),
        cca_apqns,
        absent_slots: spec.absent_slots.clone(),
        apps: spec.apps.clone(),
        cca_sysfs: spec.cca_sysfs,
    }
}

/// What the stand-ins keep of a token: its kind, slot, paths, APQNs and the patterns `tke
/// load` loads by default.
fn token_record(token: &TokenSpec) -> TokenRecord {
    TokenRecord {
        kind: if token.cca.is_some() {
            TokenKind::Cca
        } else {
            TokenKind::Ep11
        },
        slot: token.slot,
        store: token.store.clone(),
        config: token.config.clone(),
        apqns: token.apqns.iter().map(|a| a.lszcrypt()).collect(),
        wkvp_new: token
            .ep11
            .as_ref()
            .map(|e| e.wkvp_new.to_string())
            .unwrap_or_default(),
        cca_new: token
            .cca
            .iter()
            .flat_map(|c| c.mks.iter().map(|(mk, p)| (*mk, p.new)))
            .collect(),
    }
}

fn ep11_queue(apqn: Apqn, token: &str, current: &Wkvp) -> Queue {
    Queue {
        adapter: apqn.adapter(),
        domain: apqn.domain(),
        token: token.to_owned(),
        online: true,
        config: true,
        chkstop: false,
        cur: Register {
            state: CurRegister::Valid,
            vp: Some(extend_vp(current)),
        },
        new: Register {
            state: NewRegister::Empty,
            vp: None,
        },
        read_fault: None,
    }
}

fn cca_queue(apqn: Apqn, token: &str, cca: &CcaSpec) -> CcaQueue {
    let registers = cca
        .mks
        .iter()
        .map(|(mk, patterns)| {
            let registers = MkRegisters {
                new: cca::NewRegister::EMPTY,
                cur: KeyRegister::valid(patterns.current),
                old: patterns
                    .old
                    .map_or(KeyRegister::INVALID, KeyRegister::valid),
            };
            (*mk, registers)
        })
        .collect();
    CcaQueue {
        adapter: apqn.adapter(),
        domain: apqn.domain(),
        token: token.to_owned(),
        online: true,
        config: true,
        chkstop: false,
        registers,
        read_fault: None,
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
    for app in state.apps.iter().filter(|a| !a.in_unit) {
        spawn_helper(root, &state.sim_exe, &["--app", &app.name])?;
    }
    Ok(())
}
