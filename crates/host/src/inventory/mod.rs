//! What `mkplan init` reads from a host: `opencryptoki.conf`, each EP11 token's
//! `ep11tok.conf`, its APQNs' state in sysfs, the processes that map it (traced to their
//! systemd units), file systems and free space of backup candidates, and the installed
//! openCryptoki release. It only reads and reports; `plan::init` judges.

pub mod ockconf;
pub mod release;
mod space;
pub mod units;

use std::path::{Path, PathBuf};

use crate::procscan;
use crate::zcrypt;
use mkplan_engine::ports::root::HostRoot;
use mkplan_engine::ports::root::token_shm_path;
use mkplan_engine::record::wk::{self, CurState, NewState, WkRegister};
use mkplan_plan::ep11conf::{self, ApqnMode};
use mkplan_plan::init::inventory::{
    ApqnFacts, ApqnList, ConfigFacts, CurFacts, Inventory, NewFacts, ReleaseFacts, SlotFacts,
    TokenKind, UserFacts,
};
use mkplan_plan::model::{Apqn, Wkvp};

pub use units::{CgroupUnits, Placement, UnitOf};

/// `opencryptoki.conf` (opencryptoki-ep11.md 3.1).
pub const OCK_CONF: &str = "/etc/opencryptoki/opencryptoki.conf";
/// Conventional backup places, tried in order when the operator names none.
pub const BACKUP_CANDIDATES: [&str; 4] = [
    "/var/backups/mkplan",
    "/backup/mkplan",
    "/backups/mkplan",
    "/srv/backup/mkplan",
];

/// What cannot be read at all: without `opencryptoki.conf` there is no token to plan for.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read `{path}`: {source}; is openCryptoki installed (under --root)?")]
    NoConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}`: {source}; pkcsslotd would not start with it")]
    Config {
        path: PathBuf,
        source: ockconf::OckConfError,
    },
}

/// Where to read.
pub struct Sources<'a> {
    pub root: &'a HostRoot,
    /// The real `/proc` (the simulated host's processes are real too).
    pub proc_dir: &'a Path,
    pub units: &'a dyn UnitOf,
    /// `--backup-dir`; the conventional places when empty.
    pub backup_dirs: &'a [PathBuf],
}

/// Reads everything `mkplan init` needs.
pub fn read(sources: &Sources<'_>) -> Result<Inventory, InventoryError> {
    let root = sources.root;
    let conf_path = root.path(OCK_CONF);
    let text = mkplan_plan::input::read_to_string(&conf_path, mkplan_plan::input::CONFIG).map_err(
        |source| InventoryError::NoConfig {
            path: conf_path.clone(),
            source,
        },
    )?;
    let conf = ockconf::parse(&text).map_err(|source| InventoryError::Config {
        path: conf_path.clone(),
        source,
    })?;
    let exclude = procscan::own_family(sources.proc_dir);
    let mut scanned = 0;
    let mut unreadable = 0;
    let mut slots = Vec::new();
    for entry in &conf.slots {
        let mut facts = slot_facts(root, entry);
        if facts.kind == TokenKind::Ep11 {
            let shm = token_shm_path(root, &facts.store);
            let scan = procscan::scan(sources.proc_dir, &shm, &exclude);
            scanned = scanned.max(scan.scanned);
            unreadable = unreadable.max(scan.unreadable);
            facts.users = scan
                .users
                .iter()
                .map(|user| {
                    let (unit, outside) = match sources.units.unit_of(user) {
                        Placement::Unit(unit) => (Some(unit), None),
                        Placement::Outside(place) => (None, place),
                    };
                    UserFacts {
                        pid: user.pid,
                        command: user.command.clone(),
                        unit,
                        outside,
                    }
                })
                .collect();
        }
        slots.push(facts);
    }
    let backup_dirs: Vec<(PathBuf, bool)> = if sources.backup_dirs.is_empty() {
        BACKUP_CANDIDATES
            .iter()
            .map(|d| (PathBuf::from(d), false))
            .collect()
    } else {
        sources
            .backup_dirs
            .iter()
            .map(|d| (d.clone(), true))
            .collect()
    };
    Ok(Inventory {
        read_at: mkplan_engine::clock::now(),
        host_name: mkplan_plan::input::read_to_string(
            &root.path("/etc/hostname"),
            mkplan_plan::input::SMALL,
        )
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty()),
        root: root.dir().to_path_buf(),
        ock_conf: PathBuf::from(OCK_CONF),
        slots,
        release: ReleaseFacts {
            events_disabled: !conf.event_support,
            ..release::read(root)
        },
        scanned,
        unreadable,
        backups: backup_dirs
            .into_iter()
            .map(|(dir, given)| space::backup_facts(root, dir, given))
            .collect(),
    })
}

fn slot_facts(root: &HostRoot, entry: &ockconf::SlotEntry) -> SlotFacts {
    let kind = entry.kind();
    let store = entry.store();
    let config = entry.config();
    let mut notes = Vec::new();
    if entry
        .confname
        .as_deref()
        .is_some_and(|c| c.starts_with('/'))
    {
        notes.push(format!(
            "`confname` is the absolute path `{}`: the EP11 token builds `/etc/opencryptoki/<confname>` (opencryptoki-ep11.md 3.1); a plain file name is safer",
            config.display()
        ));
    }
    let (config_facts, apqns) = if kind == TokenKind::Ep11 {
        let facts = token_config(root, &config);
        let apqns = match &facts {
            ConfigFacts::Ep11 {
                apqns: ApqnList::Allowlist(list),
                ..
            } => list.iter().map(|a| apqn_facts(root, *a)).collect(),
            ConfigFacts::Ep11 {
                apqns: ApqnList::Any,
                ..
            } => ep11_apqns(root),
            _ => Vec::new(),
        };
        (facts, apqns)
    } else {
        (ConfigFacts::NotRead, Vec::new())
    };
    let (store_bytes, store_fs) = if kind == TokenKind::Ep11 {
        space::store_facts(&root.path(&store))
    } else {
        (None, None)
    };
    SlotFacts {
        slot: entry.slot,
        line: entry.line,
        stdll: entry.stdll.clone(),
        kind,
        tokname: entry.tokname.clone(),
        store,
        config,
        config_facts,
        apqns,
        users: Vec::new(),
        store_bytes,
        store_fs,
        notes,
    }
}

/// `ep11tok.conf` as the token reads it (opencryptoki-ep11.md 3.2).
fn token_config(root: &HostRoot, config: &Path) -> ConfigFacts {
    let text =
        match mkplan_plan::input::read_to_string(&root.path(config), mkplan_plan::input::CONFIG) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return ConfigFacts::Missing,
            Err(e) => {
                return ConfigFacts::Invalid {
                    line: None,
                    message: e.to_string(),
                };
            }
        };
    match ep11conf::parse(&text) {
        Ok(parsed) => ConfigFacts::Ep11 {
            apqns: match parsed.apqns {
                ApqnMode::Allowlist(list) => ApqnList::Allowlist(list),
                ApqnMode::Any => ApqnList::Any,
            },
            expected_wkvp: parsed.expected_wkvp,
        },
        Err(e) => ConfigFacts::Invalid {
            line: e.line,
            message: e.message,
        },
    }
}

/// One APQN's gates and registers from sysfs.
fn apqn_facts(root: &HostRoot, apqn: Apqn) -> ApqnFacts {
    match zcrypt::read_apqn(root, apqn) {
        Ok(status) => ApqnFacts {
            apqn,
            problems: wk::unusable(&status),
            cur: cur_facts(status.cur),
            new: new_facts(status.new),
        },
        Err(e) => ApqnFacts {
            apqn,
            problems: vec![e.to_string()],
            cur: CurFacts::Unknown,
            new: NewFacts::Unknown,
        },
    }
}

fn wkvp(vp: Option<[u8; 32]>) -> Option<Wkvp> {
    vp.and_then(|vp| Wkvp::parse(&hex::encode(&vp[..16])).ok().map(|(w, _)| w))
}

fn cur_facts(register: WkRegister<CurState>) -> CurFacts {
    match (register.state, wkvp(register.vp)) {
        (CurState::Valid, Some(w)) => CurFacts::Valid(w),
        (CurState::Invalid, _) => CurFacts::Invalid,
        _ => CurFacts::Unknown,
    }
}

fn new_facts(register: WkRegister<NewState>) -> NewFacts {
    match (register.state, wkvp(register.vp)) {
        (NewState::Empty, _) => NewFacts::Empty,
        (NewState::Uncommitted, Some(w)) => NewFacts::Uncommitted(w),
        (NewState::Committed, Some(w)) => NewFacts::Committed(w),
        _ => NewFacts::Unknown,
    }
}

/// For `APQN_ANY`: every queue in `/sys/bus/ap/devices` (`XX.YYYY`, zcrypt-sysfs.md 1.1)
/// whose card is EP11, online or not (an offline one is reported, not skipped).
fn ep11_apqns(root: &HostRoot) -> Vec<ApqnFacts> {
    let Ok(entries) = std::fs::read_dir(root.path("/sys/bus/ap/devices")) else {
        return Vec::new();
    };
    let mut apqns: Vec<Apqn> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let (card, domain) = name.split_once('.')?;
            let card = u8::from_str_radix(card, 16).ok()?;
            let domain = u8::try_from(u16::from_str_radix(domain, 16).ok()?).ok()?;
            Some(Apqn::new(card, domain))
        })
        .collect();
    apqns.sort();
    apqns
        .into_iter()
        .filter(|a| zcrypt::read_apqn(root, *a).is_ok_and(|s| s.ep11))
        .map(|a| apqn_facts(root, a))
        .collect()
}
