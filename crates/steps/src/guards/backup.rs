//! This run's verified backup of a token, from the journal (design rule 7: the archive and
//! manifest whose SHA-256 the run journaled are all a restore trusts); whether a migration
//! of the token may have started; and the restore from that backup, which `restore` and a
//! retried `migrate` share.

use std::path::Path;

use crate::guards::tools::refuse_while_tools_run;
use crate::guards::users::{describe_users, token_users};
use crate::guards::wk::refuse_if_activated;
use crate::kind::{Done, Failed, KindResult};
use mkplan_engine::ports::host::HostView;
use mkplan_engine::record::Record;
use mkplan_engine::record::backup::{
    BackupOutput, DiscardedIndex, JournaledBackup, RestoreAction, RestoreOutput,
};
use mkplan_engine::record::migrate::MigrateOutput;
use mkplan_engine::state::{RunState, StepRecord, StepStatus};
use mkplan_engine::step::RunContext;
use mkplan_plan::model::KindName;
use mkplan_plan::model::{BackupId, Plan, StepKind, Token, TokenId};

/// This run's last verified backup of `token` (to `target`), from the journal.
pub fn this_runs_backup(
    state: &RunState,
    token: &TokenId,
    target: Option<&BackupId>,
) -> Option<JournaledBackup> {
    state
        .succeeded::<BackupOutput>()
        .filter(|(_, b)| b.token == *token)
        .filter(|(_, b)| target.is_none_or(|t| b.target == *t))
        .filter(|(_, b)| b.record.verified)
        .map(|(_, b)| JournaledBackup::from(&b.record))
        .last()
}

/// The token a step of this plan migrates, by its journal position.
fn migrated_token<'p>(plan: &'p Plan, record: &StepRecord) -> Option<&'p TokenId> {
    match &plan.step_at(record.step.section, record.step.index)?.kind {
        StepKind::Migrate(m) => Some(&m.token),
        _ => None,
    }
}

/// Did any attempt of any `migrate` of `token` in this run (possibly) start the tool? Every
/// attempt counts: one interrupted without an outcome may have, one refused before the tool
/// started did not. Only the journal is asked; callers that can, compare the store too.
pub fn migration_may_have_started(plan: &Plan, state: &RunState, token: &TokenId) -> bool {
    state
        .started_of_kind(KindName::Migrate)
        .filter(|r| migrated_token(plan, r).is_none_or(|t| t == token))
        .flat_map(|r| r.earlier.iter().chain(std::iter::once(&r.status)))
        .any(|status| match status {
            StepStatus::Started { .. } => true,
            // A record that cannot be read says nothing: the tool may have started.
            StepStatus::Succeeded { output, .. } | StepStatus::Failed { output, .. } => {
                MigrateOutput::of(output).is_none_or(MigrateOutput::may_have_started)
            }
            StepStatus::Skipped { .. } => false,
        })
}

/// A warning when group or others may write the backup directory: they could replace a
/// backup (a restore then refuses it, since its digests are not the journaled ones).
pub fn writable_by_others(host: &dyn HostView, dir: &Path, shown: &Path) -> Option<String> {
    let mode = host.dir_mode(dir)?;
    (mode & 0o022 != 0).then(|| {
        format!(
            "the backup directory `{}` has mode {mode:04o}: group or others can write it and could replace a backup; a restore takes only the files whose SHA-256 this run journaled, but make it private (chmod go-w {})",
            shown.display(),
            shown.display()
        )
    })
}

/// A refusal to use the backup; when group or others can write its directory, it says so
/// (the likely way its files were replaced).
pub(crate) fn refused<O>(
    host: &dyn HostView,
    backup: &JournaledBackup,
    e: impl ToString,
) -> Failed<O> {
    let shared = backup
        .manifest
        .parent()
        .and_then(|dir| writable_by_others(host, dir, dir))
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    Failed::step(format!("{}{shared}", e.to_string()))
}

/// Restores `token` from this run's journaled backup, whatever the store holds now.
pub(crate) fn restore_verified(
    token: &Token,
    backup: &JournaledBackup,
    cx: &mut RunContext<'_>,
) -> KindResult<RestoreOutput> {
    refuse_while_tools_run(
        cx.host,
        cx.plan,
        token,
        &format!("restore token `{}`", token.id),
    )
    .map_err(Failed::step)?;
    refuse_if_activated(cx.host, token).map_err(Failed::step)?;
    let users = token_users(cx.host, cx.plan).users;
    if !users.is_empty() {
        return Err(Failed::step(format!(
            "refusing to restore token `{}` while processes use it (they would keep a stale view of the store): {}",
            token.id,
            describe_users(&users)
        )));
    }
    let store = cx.host.root().path(&token.store);
    cx.progress(
        0,
        None,
        format!(
            "restoring `{}` from `{}`",
            token.store.display(),
            backup.archive.display()
        ),
    );
    let host = cx.host;
    let run_id = cx.run.run_id.clone();
    let restored = host
        .restore_store(backup, &store, &run_id, &mut |done, total, what| {
            cx.progress(done, total, what)
        })
        .map_err(|e| refused(cx.host, backup, e))?;
    let index = cx.host.discard_token_index(&token.store).map_err(|e| {
        Failed::step(format!(
            "the store was restored, but {e}; remove it before starting any application"
        ))
    })?;
    let kept = restored
        .replaced
        .as_ref()
        .map(|p| format!("; the replaced store is kept at `{}`", p.display()))
        .unwrap_or_default();
    Ok(Done::new(format!(
        "restored {} files of `{}` from `{}`, verified against its manifest (SHA-256 {}, as journaled){kept}",
        restored.files,
        token.id,
        backup.archive.display(),
        backup.archive_sha256
    ))
    .with(RestoreOutput {
        token: token.id.clone(),
        action: RestoreAction::Restored,
        backup: Some(backup.clone()),
        restored: Some(restored),
        discarded_index: Some(DiscardedIndex(index)),
        differed: None,
    }))
}
