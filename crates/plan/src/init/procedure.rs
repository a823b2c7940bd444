//! Which procedure the installed openCryptoki release suggests, and which releases cannot
//! run the offline one at all.

use crate::init::draft::{Procedure, Suggestion};
use crate::init::inventory::{ReleaseFacts, Version};

/// The first release with `pkcshsm_mk_change` (opencryptoki-ep11.md 0, 2).
pub const CONCURRENT_SINCE: Version = Version {
    major: 3,
    minor: 21,
    patch: 0,
};
/// `pkcsep11_migrate` before 3.12.1 cannot work (opencryptoki-ep11.md 0, PR #263).
pub const MIGRATE_USABLE_SINCE: Version = Version {
    major: 3,
    minor: 12,
    patch: 1,
};

/// Which procedure the installed release suggests, and why.
pub fn suggest(release: &ReleaseFacts) -> Suggestion {
    let version = release.version.map(|v| {
        let from = release
            .source
            .as_ref()
            .map(|s| format!(" (read from {})", s.display()))
            .unwrap_or_default();
        format!("openCryptoki {v}{from}")
    });
    let (procedure, why) = match (&release.mk_change_tool, release.version, version) {
        (Some(_), Some(v), Some(text)) if v >= CONCURRENT_SINCE && release.events_disabled => (
            Procedure::Offline,
            format!(
                "{text} has `pkcshsm_mk_change`, but opencryptoki.conf sets `disable-event-support`, without which it cannot work (opencryptoki-ep11.md 2.2)"
            ),
        ),
        (Some(tool), Some(v), Some(text)) if v >= CONCURRENT_SINCE => (
            Procedure::Concurrent,
            format!(
                "{text} has `{}`: the concurrent procedure re-enciphers while applications run",
                tool.display()
            ),
        ),
        (Some(tool), Some(_), Some(text)) => (
            Procedure::Offline,
            format!(
                "`{}` is installed, but {text} is older than {CONCURRENT_SINCE}",
                tool.display()
            ),
        ),
        (Some(tool), _, _) => (
            Procedure::Offline,
            format!(
                "`{}` is installed, but the openCryptoki release could not be read (looked at {}), so it cannot be shown to be {CONCURRENT_SINCE} or newer",
                tool.display(),
                looked_at(release)
            ),
        ),
        (None, _, Some(text)) => (
            Procedure::Offline,
            format!("{text} has no `pkcshsm_mk_change`"),
        ),
        (None, _, None) => (
            Procedure::Offline,
            format!(
                "no `pkcshsm_mk_change` is installed and the openCryptoki release could not be read (looked at {})",
                looked_at(release)
            ),
        ),
    };
    Suggestion { procedure, why }
}

fn looked_at(release: &ReleaseFacts) -> String {
    let all: Vec<String> = release
        .looked_at
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect();
    if all.is_empty() {
        "nothing".to_owned()
    } else {
        all.join(", ")
    }
}

/// A release whose `pkcsep11_migrate` cannot work is refused; a missing tool is a note
/// (the migrate step's preflight refuses it by path).
pub(crate) fn tool_refusal_or_note(release: &ReleaseFacts) -> Result<Option<String>, String> {
    if let Some(v) = release.version
        && v < MIGRATE_USABLE_SINCE
    {
        return Err(format!(
            "openCryptoki {v} is installed: its `pkcsep11_migrate` is broken before {MIGRATE_USABLE_SINCE} (it cannot re-encipher the keys; opencryptoki-ep11.md 0); upgrade openCryptoki first"
        ));
    }
    Ok(release.migrate_tool.is_none().then(|| {
        "`pkcsep11_migrate` was not found in /usr/sbin or /usr/bin: install it before the change (the migrate step's preflight refuses without it)".to_owned()
    }))
}
