//! `restore` of a token store from this run's verified backup, and only from the archive and
//! manifest whose SHA-256 the run journaled (design rule 7). Whether there is anything to
//! restore is decided by comparing the live store with that manifest, file by file and by
//! hash; a restore is refused once the new WK is current anywhere (rule 4) and while a
//! migration tool rewrites the token (rule 8).

use serde_json::json;

use crate::engine::ports::host::BackupCheck;
use crate::engine::record::backup::{NOTHING, UNCHANGED};
use crate::engine::step::{
    CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess, UncertainContext,
};
use crate::plan::model::{BackupId, TokenId};
use crate::steps::guards::backup::{
    migration_may_have_started, refused, restore_verified, this_runs_backup, writable_by_others,
};
use crate::steps::guards::tools::refuse_while_tools_run;
use crate::steps::guards::wk::refuse_if_activated;

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
    let store = cx.host.root().path(&token.store);
    // The manifest and the archive are read once, and only if both are the journaled ones.
    let comparison = cx
        .host
        .compare_with_backup(&store, &backup, BackupCheck::ArchiveToo)
        .map_err(|e| refused(cx.host, &backup, e))?;
    let shared = backup
        .manifest
        .parent()
        .and_then(|dir| writable_by_others(cx.host, dir, dir));
    if let Some(warning) = &shared {
        // Used all the same: both digests are the journaled ones, and the files are read
        // once, so nobody can swap them in from here on.
        cx.notice(format!("warning: {warning}"));
    }
    let Some(difference) = comparison.difference else {
        return Ok(StepSuccess::new(format!(
            "nothing to restore: the store of `{token_id}` is identical to this run's verified backup ({} files compared by SHA-256)",
            comparison.files
        ))
        .with_data(json!({ "token": token_id.as_str(), "action": UNCHANGED, "backup": backup })));
    };
    cx.notice(format!(
        "the store of `{token_id}` differs from its verified backup ({difference}): restoring it"
    ));
    let mut done = restore_verified(token, &backup, cx)?;
    done.data["differed"] = json!(difference);
    Ok(done)
}

/// Why `--accept-step` must not take an interrupted restore as done: accepting a half-done
/// one would start services on a store that is not the backup, so it is complete only if
/// the store is identical to the backup.
pub fn refuse_accept(
    token: &TokenId,
    from: &BackupId,
    cx: &UncertainContext<'_>,
) -> Result<(), String> {
    let token = &cx.plan.tokens[token];
    let backup = this_runs_backup(cx.state, &token.id, Some(from))
        .ok_or("this run has no verified backup to compare the store with")?;
    let store = cx.host.root().path(&token.store);
    let comparison = cx
        .host
        .compare_with_backup(&store, &backup, BackupCheck::ManifestOnly)
        .map_err(|e| e.to_string())?;
    match comparison.difference {
        None => Ok(()),
        Some(e) => Err(format!(
            "the store is not the backup ({e}), so the restore did not complete"
        )),
    }
}

/// What is known about an interrupted restore: whether the store is the backup.
pub fn describe_uncertain(
    token: &TokenId,
    from: &BackupId,
    cx: &UncertainContext<'_>,
) -> Vec<String> {
    vec![
        match refuse_accept(token, from, cx) {
            Ok(()) => "compared with the backup: the store is identical to it".to_owned(),
            Err(e) => format!("compared with the backup: {e}"),
        },
        "--retry-step restores the verified backup again; --accept-step takes the restore as complete (refused unless the store is identical to the backup)".to_owned(),
    ]
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
