//! `backup` of a token store: the whole store archived, read back and verified against its
//! manifest and the live store before the step succeeds. What the journal records of it
//! (the archive's and the manifest's SHA-256) is all a later `restore` trusts.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::state::RunState;
use crate::host::archive::{self, ArchiveError, Journaled, Manifest};
use crate::plan::model::{BackupId, TokenId};
use crate::steps::{CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess};

pub fn backup(token_id: &TokenId, to: &BackupId, cx: &mut RunContext<'_>) -> StepResult {
    let token = &cx.plan.tokens[token_id];
    let target = &cx.plan.backups[to];
    let store = cx.host.root.path(&token.store);
    let dir = cx.host.root.path(&target.dir);
    // A new backup directory (and any parent it needs) is its owner's only: 0700.
    crate::engine::access::create_private_dirs(&dir).map_err(|e| {
        StepError::failed(format!(
            "cannot create the backup directory `{}`: {e}",
            target.dir.display()
        ))
    })?;
    let warnings: Vec<String> = writable_by_others(&dir, &target.dir).into_iter().collect();
    for warning in &warnings {
        cx.notice(format!("warning: {warning}"));
    }
    // A repeated attempt (after an interruption) never meets the files of an earlier one.
    let attempt = cx
        .state
        .record(cx.step_ref().section, cx.step.index)
        .map_or(1, |r| r.attempts);
    let run = match attempt {
        0 | 1 => cx.run.run_id.clone(),
        n => format!("{}.{n}", cx.run.run_id),
    };
    archive::clear_partials(&dir, &cx.run.run_id).map_err(|e| StepError::failed(e.to_string()))?;
    let stem = format!("{run}-{token_id}");
    cx.progress(0, None, format!("archiving `{}`", token.store.display()));
    let record =
        archive::backup(&store, &dir, &stem).map_err(|e| StepError::failed(e.to_string()))?;
    if !record.verified {
        return Err(StepError::failed("the backup was written but not verified"));
    }
    let pruned = match target.keep {
        Some(keep) => {
            archive::prune(&dir, token_id.as_str(), keep, &record.archive).map_err(|e| {
                StepError::failed(format!(
                    "the backup is made and verified, but pruning older ones failed: {e}"
                ))
            })?
        }
        None => Vec::new(),
    };
    let summary = format!(
        "{} files ({} bytes) archived to `{}` and verified; sha256 {}",
        record.files,
        record.bytes,
        record.archive.display(),
        record.archive_sha256
    );
    Ok(StepSuccess::new(summary).with_data(json!({
        "token": token_id.as_str(),
        "target": to.as_str(),
        "record": record,
        "pruned": pruned,
        "warnings": warnings,
    })))
}

/// A warning when group or others may write the backup directory: they could replace a
/// backup (a restore then refuses it, since its digests are not the journaled ones).
pub fn writable_by_others(dir: &Path, shown: &Path) -> Option<String> {
    let mode = std::fs::metadata(dir).ok()?.mode() & 0o7777;
    (mode & 0o022 != 0).then(|| {
        format!(
            "the backup directory `{}` has mode {mode:04o}: group or others can write it and could replace a backup; a restore takes only the files whose SHA-256 this run journaled, but make it private (chmod go-w {})",
            shown.display(),
            shown.display()
        )
    })
}

/// A verified backup as the `backup` step journaled it: where it is and the digests a
/// restore must find again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournaledBackup {
    pub archive: PathBuf,
    pub manifest: PathBuf,
    pub archive_sha256: String,
    pub manifest_sha256: String,
    pub verified: bool,
}

impl JournaledBackup {
    pub fn digests(&self) -> Journaled<'_> {
        Journaled {
            archive_sha256: &self.archive_sha256,
            manifest_sha256: &self.manifest_sha256,
        }
    }

    /// The manifest, only if it is the journaled one.
    pub fn manifest(&self) -> Result<Manifest, ArchiveError> {
        archive::read_journaled_manifest(&self.manifest, &self.manifest_sha256)
    }

    /// The manifest, only if it and the archive are both the journaled ones.
    pub fn verified_manifest(&self) -> Result<Manifest, ArchiveError> {
        archive::read_journaled_backup(&self.archive, &self.manifest, self.digests())
    }
}

/// This run's last verified backup of `token` (to `target`), from the journal.
pub fn this_runs_backup(
    state: &RunState,
    token: &TokenId,
    target: Option<&BackupId>,
) -> Option<JournaledBackup> {
    state
        .succeeded_of_kind("backup")
        .filter(|(_, d)| d["token"] == token.as_str())
        .filter(|(_, d)| target.is_none_or(|t| d["target"] == t.as_str()))
        .filter_map(|(_, d)| JournaledBackup::deserialize(&d["record"]).ok())
        .filter(|b| b.verified)
        .last()
}

pub fn check_backup(token_id: &TokenId, to: &BackupId, cx: &CheckContext<'_>) -> CheckReport {
    let token = &cx.plan.tokens[token_id];
    let store = cx.host.root.path(&token.store);
    match std::fs::metadata(&store) {
        Ok(m) if m.is_dir() => CheckReport::WillRun(format!(
            "would archive `{}` to `{}` and verify it",
            token.store.display(),
            cx.plan.backups[to].dir.display()
        )),
        Ok(_) => CheckReport::Blocked(format!("`{}` is not a directory", token.store.display())),
        Err(e) => CheckReport::Blocked(format!(
            "cannot read the store `{}`: {e}",
            token.store.display()
        )),
    }
}
