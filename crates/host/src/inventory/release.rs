//! Which openCryptoki release is installed, and whether its MK-change tools are: from the
//! package database or the shipped ChangeLog, never from `opencryptoki.conf`'s `version`
//! line (that is the file's format: Debian's 3.8.1 ships `version opencryptoki-3.1`).

use std::io::Read;
use std::path::{Path, PathBuf};

use mkplan_engine::ports::root::HostRoot;
use mkplan_plan::init::inventory::{ReleaseFacts, Version};

/// dpkg's database (Debian, Ubuntu).
const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// The upstream ChangeLog, newest release first: plain in RPM packages, gzipped in Debian's.
const CHANGELOGS: [&str; 2] = [
    "/usr/share/doc/opencryptoki/ChangeLog",
    "/usr/share/doc/opencryptoki/changelog.gz",
];
const TOOL_DIRS: [&str; 2] = ["/usr/sbin", "/usr/bin"];
/// A ChangeLog is read this far; its first entry is at the top.
const CHANGELOG_HEAD: u64 = 64 * 1024;
const STATUS_HEAD: u64 = 64 * 1024 * 1024;

/// Finds the release in one kind of file.
type VersionReader = fn(&str) -> Option<Version>;

/// Reads what is installed under `root`.
pub fn read(root: &HostRoot) -> ReleaseFacts {
    let mut facts = ReleaseFacts {
        mk_change_tool: tool(root, "pkcshsm_mk_change"),
        migrate_tool: tool(root, "pkcsep11_migrate"),
        ..ReleaseFacts::default()
    };
    let sources = std::iter::once((DPKG_STATUS, dpkg_version as VersionReader)).chain(
        CHANGELOGS
            .iter()
            .map(|p| (*p, changelog_version as VersionReader)),
    );
    for (path, parse) in sources {
        facts.looked_at.push(PathBuf::from(path));
        if let Some(version) = text(&root.path(path)).as_deref().and_then(parse) {
            facts.version = Some(version);
            facts.source = Some(PathBuf::from(path));
            break;
        }
    }
    facts
}

fn tool(root: &HostRoot, name: &str) -> Option<PathBuf> {
    TOOL_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| root.path(path).is_file())
}

/// The head of a file (a package database is read further than a ChangeLog's first
/// entry needs); a truncated read only risks "unknown", never a wrong release.
fn text(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let limit = if path.ends_with("status") {
        STATUS_HEAD
    } else {
        CHANGELOG_HEAD
    };
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file)
            .take(limit)
            .read_to_end(&mut bytes)
            .ok()?;
    } else {
        file.take(limit).read_to_end(&mut bytes).ok()?;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The `Version:` of the installed `opencryptoki` package: `[epoch:]upstream[-revision]`,
/// upstream cut at `+`/`~` (`3.8.1+dfsg-3.2+b3` → 3.8.1).
pub fn dpkg_version(status: &str) -> Option<Version> {
    status.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
        };
        if field("Package") != Some("opencryptoki") || !field("Status")?.ends_with(" installed") {
            return None;
        }
        let version = field("Version")?;
        let upstream = version.split_once(':').map_or(version, |(_, v)| v);
        let upstream = upstream.split(['-', '+', '~']).next()?;
        numbers(upstream)
    })
}

/// The first `* opencryptoki X.Y.Z` / `+ openCryptoki X.Y.Z` heading of the ChangeLog.
pub fn changelog_version(log: &str) -> Option<Version> {
    log.lines().find_map(|line| {
        let heading = line.trim_start_matches(['*', '+', ' ']);
        let name = heading.get(..12)?;
        if !name.eq_ignore_ascii_case("opencryptoki") {
            return None;
        }
        numbers(heading[12..].trim())
    })
}

/// `3.21` or `3.21.0` (more parts are ignored).
fn numbers(text: &str) -> Option<Version> {
    let mut parts = text.split('.').map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = match parts.next() {
        Some(p) => p.ok()?,
        None => 0,
    };
    Some(Version {
        major,
        minor,
        patch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> Option<Version> {
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    #[test]
    fn reads_the_installed_package_only() {
        let status = include_str!("../../../../tests/fixtures/init/dpkg-status");
        assert_eq!(dpkg_version(status), v(3, 8, 1));
        let removed = status.replace("install ok installed", "deinstall ok config-files");
        assert_eq!(dpkg_version(&removed), None);
        assert_eq!(
            dpkg_version(
                "Package: opencryptoki\nStatus: install ok installed\nVersion: 1:3.21.0-1\n"
            ),
            v(3, 21, 0)
        );
    }

    #[test]
    fn reads_the_first_changelog_heading() {
        assert_eq!(
            changelog_version("* opencryptoki 3.8.1\n- Fix TPM\n* opencryptoki 3.8.0\n"),
            v(3, 8, 1)
        );
        assert_eq!(
            changelog_version("+ openCryptoki 3.21.0\n- EP11 and CCA: Support concurrent\n"),
            v(3, 21, 0)
        );
        assert_eq!(changelog_version("nothing here\n"), None);
    }
}
