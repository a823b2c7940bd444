//! What `mkplan init` read from a host: plain data that `host::inventory` fills and the plan
//! writer and the drift check judge. Nothing here decides; nothing here does I/O.

use std::path::PathBuf;

use crate::model::{Apqn, Wkvp};

/// Everything read, with where it was read from.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// RFC 3339, UTC.
    pub read_at: String,
    /// `/etc/hostname` of the host, if it has one.
    pub host_name: Option<String>,
    /// The host root the paths below are under (`/` on a real host).
    pub root: PathBuf,
    /// `opencryptoki.conf`, as the host sees it.
    pub ock_conf: PathBuf,
    pub slots: Vec<SlotFacts>,
    pub release: ReleaseFacts,
    /// Processes looked at in `/proc` and how many could not be read.
    pub scanned: usize,
    pub unreadable: usize,
    pub backups: Vec<BackupFacts>,
}

/// What kind of token a slot's STDLL makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    Ep11,
    Cca,
    /// Any other STDLL (soft, ICA, TPM, ICSF): no HSM master key to change.
    Other,
}

/// One `slot N { … }` of `opencryptoki.conf` and, for EP11, what its token uses.
#[derive(Debug, Clone)]
pub struct SlotFacts {
    pub slot: u16,
    /// `opencryptoki.conf` line of `slot N`.
    pub line: usize,
    pub stdll: String,
    pub kind: TokenKind,
    /// `tokname`, if set.
    pub tokname: Option<String>,
    /// The token's data store as openCryptoki derives it (opencryptoki-ep11.md 3.3).
    pub store: PathBuf,
    /// The token's configuration file (`confname` under `/etc/opencryptoki`).
    pub config: PathBuf,
    pub config_facts: ConfigFacts,
    /// The APQNs the token uses (its allow-list, or every EP11 APQN for `APQN_ANY`), read
    /// from sysfs. Empty unless the configuration was read.
    pub apqns: Vec<ApqnFacts>,
    /// Processes that map the token (its STDLL or its shm file).
    pub users: Vec<UserFacts>,
    /// Bytes of the regular files in the store, and the file system it is on.
    pub store_bytes: Option<u64>,
    pub store_fs: Option<u64>,
    /// Things worth a reviewer's eye (an absolute `confname`, …).
    pub notes: Vec<String>,
}

/// The token's configuration file, as the token would read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFacts {
    Ep11 {
        apqns: ApqnList,
        expected_wkvp: Option<Wkvp>,
    },
    Missing,
    Invalid {
        line: Option<usize>,
        message: String,
    },
    /// Not an EP11 token: its file is not interpreted.
    NotRead,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApqnList {
    Allowlist(Vec<Apqn>),
    Any,
}

/// One APQN's state in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApqnFacts {
    pub apqn: Apqn,
    /// Why the APQN cannot be used (offline, check-stopped, not EP11, unreadable); empty
    /// when it can.
    pub problems: Vec<String>,
    pub cur: CurFacts,
    pub new: NewFacts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurFacts {
    Valid(Wkvp),
    Invalid,
    /// `- -` (offline, or the query failed), or not read.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewFacts {
    Empty,
    Uncommitted(Wkvp),
    Committed(Wkvp),
    Unknown,
}

/// A process that maps a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFacts {
    pub pid: i32,
    pub command: String,
    /// The systemd unit it runs in (`….service`), if any.
    pub unit: Option<String>,
    /// Where it runs when that is not a service (a `….scope`, a user's manager).
    pub outside: Option<String>,
}

/// The installed openCryptoki release and its MK-change tools.
#[derive(Debug, Clone, Default)]
pub struct ReleaseFacts {
    pub version: Option<Version>,
    /// Where the version was read.
    pub source: Option<PathBuf>,
    /// Where it was looked for.
    pub looked_at: Vec<PathBuf>,
    /// `pkcshsm_mk_change` (the concurrent procedure's tool, 3.21+), if installed.
    pub mk_change_tool: Option<PathBuf>,
    /// `pkcsep11_migrate` (the offline procedure's tool), if installed.
    pub migrate_tool: Option<PathBuf>,
    /// `opencryptoki.conf` sets `disable-event-support`: `pkcshsm_mk_change` cannot work.
    pub events_disabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A directory a backup could go to.
#[derive(Debug, Clone)]
pub struct BackupFacts {
    /// As the host sees it.
    pub dir: PathBuf,
    /// Named by the operator (`--backup-dir`), not one of the conventional places.
    pub given: bool,
    /// The nearest directory that exists (the backup step creates the rest).
    pub existing: PathBuf,
    pub fs: Option<u64>,
    /// Why nothing can be written there, if so.
    pub not_writable: Option<String>,
    pub free_bytes: Option<u64>,
}
