//! `backup` and `restore` of a token store. The backup is verified (read back against its
//! manifest and the live store) before the step succeeds; `restore` takes this run's
//! verified backup and is refused once the new WK is current anywhere (design rule 4: the
//! old WK is gone, old blobs would never work again).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::engine::state::{RunState, StepStatus};
use crate::host::zcrypt::CurState;
use crate::host::{HostRoot, archive, procscan};
use crate::plan::model::{BackupId, Token, TokenId};
use crate::steps::assert_wk::read_all;
use crate::steps::services::{describe_users, token_users};
use crate::steps::{CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess};

pub fn backup(token_id: &TokenId, to: &BackupId, cx: &mut RunContext<'_>) -> StepResult {
    let token = &cx.plan.tokens[token_id];
    let target = &cx.plan.backups[to];
    let store = cx.host.root.path(&token.store);
    let dir = cx.host.root.path(&target.dir);
    std::fs::create_dir_all(&dir).map_err(|e| {
        StepError::failed(format!(
            "cannot create the backup directory `{}`: {e}",
            target.dir.display()
        ))
    })?;
    let stem = format!("{}-{token_id}", cx.run.run_id);
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
    })))
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

/// This run's verified backup of `token` (to `target`), from the journal.
pub fn this_runs_backup<'s>(
    state: &'s RunState,
    token: &TokenId,
    target: Option<&BackupId>,
) -> Option<&'s Value> {
    state
        .succeeded_of_kind("backup")
        .filter(|(_, d)| d["token"] == token.as_str())
        .filter(|(_, d)| target.is_none_or(|t| d["target"] == t.as_str()))
        .filter(|(_, d)| d["record"]["verified"] == true)
        .map(|(_, d)| &d["record"])
        .last()
}

/// Did this run's `migrate` of `token` (possibly) change the store? A migration refused
/// before the tool started did not; one without an outcome may have.
pub fn store_may_have_changed(state: &RunState, token: &TokenId) -> bool {
    state.started_of_kind("migrate").any(|r| match &r.status {
        StepStatus::Started { .. } => true,
        StepStatus::Succeeded { data, .. } | StepStatus::Failed { data, .. } => {
            (data["token"] == token.as_str() || data["token"].is_null())
                && data["tool_started"] != false
        }
        StepStatus::Skipped { .. } => false,
    })
}

/// The refusal of design rule 4, if the new WK is current on any APQN (or the state cannot
/// be read, in which case nobody can say the old WK still exists).
pub fn refuse_if_activated(
    cx_host: &crate::steps::context::Host,
    token: &Token,
) -> Result<(), String> {
    let (statuses, problems) = read_all(cx_host, token);
    if !problems.is_empty() {
        return Err(format!(
            "cannot confirm that the old WK is still current ({}); a restore could make every key unusable, so it is refused",
            problems.join("; ")
        ));
    }
    let activated: Vec<String> = statuses
        .iter()
        .filter(|s| {
            s.cur.state == CurState::Valid
                && s.cur
                    .vp
                    .is_some_and(|vp| vp[..16] == token.wkvp_new.bytes()[..])
        })
        .map(|s| s.apqn.to_string())
        .collect();
    if activated.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "refusing to restore token `{}`: the new WK is already current on {} — the old WK is gone (EP11 has no OLD register), so the backed-up blobs could never be used again. Fix forward instead: finish the migration (activate the new WK on every APQN) and re-run `assert_wk` with `current: new`",
            token.id,
            activated.join(", ")
        ))
    }
}

pub fn restore(token_id: &TokenId, from: &BackupId, cx: &mut RunContext<'_>) -> StepResult {
    let token = &cx.plan.tokens[token_id];
    let Some(record) = this_runs_backup(cx.state, token_id, Some(from)).cloned() else {
        if !store_may_have_changed(cx.state, token_id) {
            return Ok(StepSuccess::new(format!(
                "nothing to restore: this run did not change the store of `{token_id}`"
            )));
        }
        return Err(StepError::failed(format!(
            "token `{token_id}` may have been changed, but this run has no verified backup of it in `{from}`"
        )));
    };
    if !store_may_have_changed(cx.state, token_id) {
        return Ok(StepSuccess::new(format!(
            "nothing to restore: the migration of `{token_id}` never started, so the store is as backed up"
        ))
        .with_data(json!({ "backup": record })));
    }
    restore_from(token, &record, cx)
}

/// openCryptoki keeps a per-token index of objects in POSIX shared memory that outlives
/// its users (opencryptoki-ep11.md 3.3). A restore replaces the store behind openCryptoki's
/// back, so that index would describe objects that no longer exist (seen with openCryptoki
/// 3.8.1: CKR_OBJECT_HANDLE_INVALID for every listed object). Removed while nobody maps it,
/// the next process that starts the token rebuilds it from the restored files.
pub fn discard_token_index(root: &HostRoot, store: &Path) -> Result<Option<PathBuf>, String> {
    let shm = procscan::token_shm_path(root, store);
    match std::fs::remove_file(&shm) {
        Ok(()) => Ok(Some(shm)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot remove the token's stale object index `{}`: {e}",
            shm.display()
        )),
    }
}

/// Restores `token` from a backup record (as journaled by `backup`).
pub fn restore_from(token: &Token, record: &Value, cx: &mut RunContext<'_>) -> StepResult {
    refuse_if_activated(cx.host, token).map_err(StepError::failed)?;
    let (users, _, _) = token_users(cx.host, cx.plan);
    if !users.is_empty() {
        return Err(StepError::failed(format!(
            "refusing to restore token `{}` while processes use it (they would keep a stale view of the store): {}",
            token.id,
            describe_users(&users)
        )));
    }
    let archive = record["archive"].as_str().unwrap_or_default();
    let manifest = record["manifest"].as_str().unwrap_or_default();
    let store = cx.host.root.path(&token.store);
    cx.progress(
        0,
        None,
        format!("restoring `{}` from `{archive}`", token.store.display()),
    );
    let restored = archive::restore(archive.as_ref(), manifest.as_ref(), &store, &cx.run.run_id)
        .map_err(|e| StepError::failed(e.to_string()))?;
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
        "restored {} files of `{}` from `{archive}`, verified against its manifest{kept}",
        restored.files, token.id
    ))
    .with_data(json!({ "token": token.id.as_str(), "backup": record, "restored": restored, "discarded_index": index })))
}

pub fn check_restore(token_id: &TokenId, cx: &CheckContext<'_>) -> CheckReport {
    let token = &cx.plan.tokens[token_id];
    match refuse_if_activated(cx.host, token) {
        Ok(()) => CheckReport::WillRun(format!(
            "would restore `{}` from this run's verified backup, if the run changed it",
            token.store.display()
        )),
        Err(e) => CheckReport::Blocked(e),
    }
}
