//! `backup` of a token store: the whole store archived, read back and verified against its
//! manifest and the live store before the step succeeds. What the journal records of it
//! (the archive's and the manifest's SHA-256) is all a later `restore` trusts.

use crate::guards::backup::writable_by_others;
use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::record::backup::BackupOutput;
use mkplan_engine::step::{CheckContext, CheckReport, RunContext};
use mkplan_plan::model::BackupStep;

/// `backup`.
pub(crate) struct BackupKind;

impl Kind for BackupKind {
    type Args = BackupStep;
    type Output = BackupOutput;

    fn check(step: &BackupStep, cx: &CheckContext<'_>) -> CheckReport {
        check(step, cx)
    }

    fn run(step: &BackupStep, cx: &mut RunContext<'_>) -> KindResult<BackupOutput> {
        backup(step, cx)
    }
}

fn backup(step: &BackupStep, cx: &mut RunContext<'_>) -> KindResult<BackupOutput> {
    let (token_id, to) = (&step.token, &step.to);
    let token = &cx.plan.tokens[token_id];
    let target = &cx.plan.backups[to];
    let store = cx.host.root().path(&token.store);
    let dir = cx.host.root().path(&target.dir);
    // A new backup directory (and any parent it needs) is its owner's only: 0700.
    cx.host.create_private_dirs(&dir).map_err(|e| {
        Failed::step(format!(
            "cannot create the backup directory `{}`: {e}",
            target.dir.display()
        ))
    })?;
    let warnings: Vec<String> = writable_by_others(cx.host, &dir, &target.dir)
        .into_iter()
        .collect();
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
    cx.host
        .clear_partials(&dir, &cx.run.run_id)
        .map_err(|e| Failed::step(e.to_string()))?;
    let stem = format!("{run}-{token_id}");
    cx.progress(0, None, format!("archiving `{}`", token.store.display()));
    let host = cx.host;
    let record = host
        .backup_store(&store, &dir, &stem, &mut |done, total, what| {
            cx.progress(done, total, what)
        })
        .map_err(|e| Failed::step(e.to_string()))?;
    if !record.verified {
        return Err(Failed::step("the backup was written but not verified"));
    }
    let pruned = match target.keep {
        Some(keep) => cx
            .host
            .prune_backups(&dir, token_id.as_str(), keep, &record.archive)
            .map_err(|e| {
                Failed::step(format!(
                    "the backup is made and verified, but pruning older ones failed: {e}"
                ))
            })?,
        None => Vec::new(),
    };
    let summary = format!(
        "{} files ({} bytes) archived to `{}` and verified; sha256 {}",
        record.files,
        record.bytes,
        record.archive.display(),
        record.archive_sha256
    );
    Ok(Done::new(summary).with(BackupOutput {
        token: token_id.clone(),
        target: to.clone(),
        record,
        pruned,
        warnings,
    }))
}

fn check(step: &BackupStep, cx: &CheckContext<'_>) -> CheckReport {
    let (token, to) = (&cx.plan.tokens[&step.token], &step.to);
    let store = cx.host.root().path(&token.store);
    match cx.host.store_is_dir(&store) {
        Ok(true) => CheckReport::WillRun(format!(
            "would archive `{}` to `{}` and verify it",
            token.store.display(),
            cx.plan.backups[to].dir.display()
        )),
        Ok(false) => {
            CheckReport::Blocked(format!("`{}` is not a directory", token.store.display()))
        }
        Err(e) => CheckReport::Blocked(format!(
            "cannot read the store `{}`: {e}",
            token.store.display()
        )),
    }
}
