//! `restore` of a token store from this run's verified backup, and only from the archive and
//! manifest whose SHA-256 the run journaled (design rule 7). Whether there is anything to
//! restore is decided by comparing the live store with that manifest, file by file and by
//! hash; a restore is refused once the new WK is current anywhere (rule 4) and while a
//! migration tool rewrites the token (rule 8).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::engine::ports::root::HostRoot;
use crate::host::archive;
use crate::plan::model::{BackupId, Token, TokenId};
use crate::steps::backup::{JournaledBackup, this_runs_backup, writable_by_others};
use crate::steps::guards::{
    migration_may_have_started, refuse_if_activated, refuse_while_tools_run,
};
use crate::steps::services::{describe_users, token_users};
use crate::steps::{CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess};

/// What a `restore` step did, as its data records it (`action`).
pub const RESTORED: &str = "restored";
/// The store was identical to the backup: nothing was written.
pub const UNCHANGED: &str = "unchanged";
/// There was no backup, and no migration of the token started.
pub const NOTHING: &str = "nothing";

pub fn restore(token_id: &TokenId, from: &BackupId, cx: &mut RunContext<'_>) -> StepResult {
    let token = &cx.plan.tokens[token_id];
    refuse_while_tools_run(
        cx.host,
        cx.plan,
        token,
        &format!("restore token `{token_id}`"),
    )
    .map_err(StepError::failed)?;
    let Some(backup) = this_runs_backup(cx.state, token_id, Some(from)) else {
        if migration_may_have_started(cx.plan, cx.state, token_id) {
            return Err(StepError::failed(format!(
                "token `{token_id}` may have been re-enciphered by this run, but this run has no verified backup of it in `{from}`"
            )));
        }
        return Ok(StepSuccess::new(format!(
            "nothing to restore: this run made no backup of `{token_id}` in `{from}` and started no migration of it"
        ))
        .with_data(json!({ "token": token_id.as_str(), "action": NOTHING })));
    };
    let manifest = backup
        .verified_manifest()
        .map_err(|e| refused(&backup, e))?;
    let shared = backup
        .manifest
        .parent()
        .and_then(|dir| writable_by_others(dir, dir));
    if let Some(warning) = &shared {
        // Used all the same: both digests are the journaled ones, and the files are read
        // once, so nobody can swap them in from here on.
        cx.notice(format!("warning: {warning}"));
    }
    let store = cx.host.root.path(&token.store);
    let difference = match archive::compare_live(&store, &manifest) {
        Ok(()) => {
            return Ok(StepSuccess::new(format!(
                "nothing to restore: the store of `{token_id}` is identical to this run's verified backup ({} files compared by SHA-256)",
                manifest.files
            ))
            .with_data(json!({ "token": token_id.as_str(), "action": UNCHANGED, "backup": backup })));
        }
        Err(difference) => difference.to_string(),
    };
    cx.notice(format!(
        "the store of `{token_id}` differs from its verified backup ({difference}): restoring it"
    ));
    let mut done = restore_from(token, &backup, cx)?;
    done.data["differed"] = json!(difference);
    Ok(done)
}

/// A refusal to use the backup; when group or others can write its directory, it says so
/// (the likely way its files were replaced).
fn refused(backup: &JournaledBackup, e: archive::ArchiveError) -> StepError {
    let shared = backup
        .manifest
        .parent()
        .and_then(|dir| writable_by_others(dir, dir))
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    StepError::failed(format!("{e}{shared}"))
}

/// openCryptoki keeps a per-token index of objects in POSIX shared memory that outlives
/// its users (opencryptoki-ep11.md 3.3). A restore replaces the store behind openCryptoki's
/// back, so that index would describe objects that no longer exist (seen with openCryptoki
/// 3.8.1: CKR_OBJECT_HANDLE_INVALID for every listed object). Removed while nobody maps it,
/// the next process that starts the token rebuilds it from the restored files.
pub fn discard_token_index(root: &HostRoot, store: &Path) -> Result<Option<PathBuf>, String> {
    let shm = crate::engine::ports::root::token_shm_path(root, store);
    match std::fs::remove_file(&shm) {
        Ok(()) => Ok(Some(shm)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot remove the token's stale object index `{}`: {e}",
            shm.display()
        )),
    }
}

/// Restores `token` from this run's journaled backup, whatever the store holds now.
pub fn restore_from(
    token: &Token,
    backup: &JournaledBackup,
    cx: &mut RunContext<'_>,
) -> StepResult {
    refuse_while_tools_run(
        cx.host,
        cx.plan,
        token,
        &format!("restore token `{}`", token.id),
    )
    .map_err(StepError::failed)?;
    refuse_if_activated(cx.host, token).map_err(StepError::failed)?;
    let (users, _, _) = token_users(cx.host, cx.plan);
    if !users.is_empty() {
        return Err(StepError::failed(format!(
            "refusing to restore token `{}` while processes use it (they would keep a stale view of the store): {}",
            token.id,
            describe_users(&users)
        )));
    }
    let store = cx.host.root.path(&token.store);
    cx.progress(
        0,
        None,
        format!(
            "restoring `{}` from `{}`",
            token.store.display(),
            backup.archive.display()
        ),
    );
    let restored = archive::restore(
        &backup.archive,
        &backup.manifest,
        &store,
        &cx.run.run_id,
        backup.digests(),
    )
    .map_err(|e| refused(backup, e))?;
    let index = discard_token_index(&cx.host.root, &token.store).map_err(|e| {
        StepError::failed(format!(
            "the store was restored, but {e}; remove it before starting any application"
        ))
    })?;
    let kept = restored
        .replaced
        .as_ref()
        .map(|p| format!("; the replaced store is kept at `{}`", p.display()))
        .unwrap_or_default();
    Ok(StepSuccess::new(format!(
        "restored {} files of `{}` from `{}`, verified against its manifest (SHA-256 {}, as journaled){kept}",
        restored.files,
        token.id,
        backup.archive.display(),
        backup.archive_sha256
    ))
    .with_data(json!({
        "token": token.id.as_str(),
        "action": RESTORED,
        "backup": backup,
        "restored": restored,
        "discarded_index": index,
    })))
}

pub fn check_restore(token_id: &TokenId, cx: &CheckContext<'_>) -> CheckReport {
    let token = &cx.plan.tokens[token_id];
    match refuse_if_activated(cx.host, token) {
        Ok(()) => CheckReport::WillRun(format!(
            "would restore `{}` from this run's verified backup if the store then differs from it",
            token.store.display()
        )),
        Err(e) => CheckReport::Blocked(e),
    }
}
