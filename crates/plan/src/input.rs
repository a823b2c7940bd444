//! Reading input files with a size limit. Whatever a path names — a huge file, a device
//! such as `/dev/zero`, a pipe that never ends — mkplan reads at most the limit plus one
//! byte, and refuses it when there is more: a wrong path must never exhaust the memory of
//! the machine whose keys are being changed. Every file mkplan takes in (plans, approvals,
//! PIN files, `ep11tok.conf`, manifests, journals, reports, keys, sysfs and `/proc`
//! entries, the simulator's records) goes through here.
//!
//! Errors are `io::Error`s (kind `FileTooLarge` for a refusal), so each caller reports them
//! in its own words, with the path, as it reports any other read error.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// How much of one kind of file mkplan reads, and what to call it in the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    /// What is limited, in the plural (`plans`).
    pub what: &'static str,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// A plan (the largest realistic one is a few KiB): the YAML reader's own limit.
pub const PLAN: Limit = Limit {
    bytes: crate::yaml::MAX_PLAN_BYTES as u64,
    what: "plans",
};
/// An approvals file.
pub const APPROVALS: Limit = Limit {
    bytes: MIB,
    what: "approvals files",
};
/// A PIN file (openCryptoki takes at most 127 characters).
pub const PIN_FILE: Limit = Limit {
    bytes: 4 * KIB,
    what: "PIN files",
};
/// `ep11tok.conf`.
pub const CONFIG: Limit = Limit {
    bytes: MIB,
    what: "token configuration files",
};
/// A backup's manifest (one entry per file of the store, about 200 bytes each: millions of
/// objects). Generous: a backup whose manifest could not be read back could not be restored.
pub const MANIFEST: Limit = Limit {
    bytes: 1024 * MIB,
    what: "backup manifests",
};
/// A run's journal (it holds the key inventories).
pub const JOURNAL: Limit = Limit {
    bytes: 256 * MIB,
    what: "journals",
};
/// `report.json` and the other report artefacts.
pub const REPORT: Limit = Limit {
    bytes: 256 * MIB,
    what: "report files",
};
/// A PEM key or a signature.
pub const KEY: Limit = Limit {
    bytes: 64 * KIB,
    what: "key and signature files",
};
/// A sysfs attribute, a pid file, a digest file, a lock file's holder, a `/proc` status
/// entry: a line or a few.
pub const SMALL: Limit = Limit {
    bytes: 64 * KIB,
    what: "status files",
};
/// `/proc/<pid>/maps` (bounded by `vm.max_map_count`, some MiB at most).
pub const PROC_MAPS: Limit = Limit {
    bytes: 64 * MIB,
    what: "process memory maps",
};
/// `/etc/passwd`, `/etc/group`.
pub const ACCOUNTS: Limit = Limit {
    bytes: 64 * MIB,
    what: "account databases",
};
/// A token store's files (an object index, one object, the token data) and the
/// simulator's records.
pub const STORE_FILE: Limit = Limit {
    bytes: 64 * MIB,
    what: "token store files",
};

/// The whole file at `path`, if it is no larger than `limit`.
pub fn read(path: &Path, limit: Limit) -> io::Result<Vec<u8>> {
    read_from(File::open(path)?, limit)
}

/// The whole file at `path` as UTF-8 text, if it is no larger than `limit`.
pub fn read_to_string(path: &Path, limit: Limit) -> io::Result<String> {
    String::from_utf8(read(path, limit)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Everything `reader` gives, if it is no more than `limit`.
pub fn read_from(reader: impl Read, limit: Limit) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(limit.bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit.bytes {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// The refusal: what was too large and what the limit is.
pub fn too_large(limit: Limit) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "larger than {}: {} larger than that are refused, and nothing of it was used",
            human(limit.bytes),
            limit.what
        ),
    )
}

/// `4 MiB (4194304 bytes)`, `4 KiB (4096 bytes)`, `12 bytes`.
fn human(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB ({bytes} bytes)", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB ({bytes} bytes)", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Limit = Limit {
        bytes: 4,
        what: "test files",
    };

    #[test]
    fn reads_up_to_the_limit_and_refuses_one_byte_more() {
        assert_eq!(read_from(&b"abcd"[..], TINY).unwrap(), b"abcd");
        let error = read_from(&b"abcde"[..], TINY).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(
            error.to_string(),
            "larger than 4 bytes: test files larger than that are refused, and nothing of it was used"
        );
    }

    #[test]
    fn an_endless_device_is_refused_without_reading_it_all() {
        let error = read(Path::new("/dev/zero"), PLAN).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::FileTooLarge);
        assert!(error.to_string().contains("4 MiB"), "{error}");
    }
}
