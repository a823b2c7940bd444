//! `restore` of a token store from this run's verified backup, and only from the archive and
//! manifest whose SHA-256 the run journaled (design rule 7). Whether there is anything to
//! restore is decided by comparing the live store with that manifest, file by file and by
//! hash; a restore is refused once the new WK is current anywhere (rule 4) and while a
//! migration tool rewrites the token (rule 8).

use crate::guards::backup::{
    migration_may_have_started, refused, restore_verified, this_runs_backup, writable_by_others,
};
use crate::guards::tools::refuse_while_tools_run;
use crate::guards::wk::refuse_if_activated;
use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::ports::host::PortError;
use mkplan_engine::record::backup::{RestoreAction, RestoreOutput};
use mkplan_engine::step::{
    AcceptRefused, CheckContext, CheckReport, Interruption, RunContext, UncertainContext,
};
use mkplan_plan::model::RestoreStep;

/// `restore`.
pub(crate) struct RestoreKind;

impl Kind for RestoreKind {
    type Args = RestoreStep;
    type Output = RestoreOutput;

    /// It may have replaced the store half-way: an operator decides.
    fn interruption(_: &RestoreStep) -> Interruption {
        Interruption::Decide
    }

    fn check(step: &RestoreStep, cx: &CheckContext<'_>) -> CheckReport {
        check(step, cx)
    }

    fn run(step: &RestoreStep, cx: &mut RunContext<'_>) -> KindResult<RestoreOutput> {
        restore(step, cx)
    }

    fn describe_uncertain(step: &RestoreStep, cx: &UncertainContext<'_>) -> Vec<String> {
        describe_uncertain(step, cx)
    }

    fn refuse_accept(step: &RestoreStep, cx: &UncertainContext<'_>) -> Result<(), AcceptRefused> {
        refuse_accept(step, cx).map_err(AcceptRefused::new)
    }
}

fn nothing_to_restore(step: &RestoreStep, action: RestoreAction) -> RestoreOutput {
    RestoreOutput {
        token: step.token.clone(),
        action,
        backup: None,
        restored: None,
        discarded_index: None,
        differed: None,
    }
}

fn restore(step: &RestoreStep, cx: &mut RunContext<'_>) -> KindResult<RestoreOutput> {
    let (token_id, from) = (&step.token, &step.from);
    let token = &cx.plan.tokens[token_id];
    refuse_while_tools_run(
        cx.host,
        cx.plan,
        token,
        &format!("restore token `{token_id}`"),
    )
    .map_err(Failed::step)?;
    let Some(backup) = this_runs_backup(cx.state, token_id, Some(from)) else {
        if migration_may_have_started(cx.plan, cx.state, token_id) {
            return Err(Failed::step(format!(
                "token `{token_id}` may have been re-enciphered by this run, but this run has no verified backup of it in `{from}`"
            )));
        }
        return Ok(Done::new(format!(
            "nothing to restore: this run made no backup of `{token_id}` in `{from}` and started no migration of it"
        ))
        .with(nothing_to_restore(step, RestoreAction::Nothing)));
    };
    let store = cx.host.root().path(&token.store);
    // One pass over the archive: this comparison reads only the manifest (and only if it is
    // the journaled one). The restore reads the archive once, refusing one of another size
    // than journaled before extracting, stopping past the journaled file bytes, and checking
    // both digests before it swaps anything in; a store already identical to the manifest
    // needs no archive at all.
    let comparison = cx
        .host
        .compare_with_backup(&store, &backup)
        .map_err(|e| refused(cx.host, &backup, e))?;
    let shared = backup
        .manifest
        .parent()
        .and_then(|dir| writable_by_others(cx.host, dir, dir));
    if let Some(warning) = &shared {
        // Used all the same: whatever is read from there counts only if it has the
        // journaled digest.
        cx.notice(format!("warning: {warning}"));
    }
    let Some(difference) = comparison.difference else {
        return Ok(Done::new(format!(
            "nothing to restore: the store of `{token_id}` is identical to this run's verified backup ({} files compared by SHA-256)",
            comparison.files
        ))
        .with(RestoreOutput {
            backup: Some(backup),
            ..nothing_to_restore(step, RestoreAction::Unchanged)
        }));
    };
    cx.notice(format!(
        "the store of `{token_id}` differs from its verified backup ({difference}): restoring it"
    ));
    let mut done = restore_verified(token, &backup, cx)?;
    if let Some(output) = &mut done.output {
        output.differed = Some(difference);
    }
    Ok(done)
}

/// Why `--accept-step` must not take an interrupted restore as done: accepting a half-done
/// one would start services on a store that is not the backup, so it is complete only if
/// the store is identical to the backup.
fn refuse_accept(step: &RestoreStep, cx: &UncertainContext<'_>) -> Result<(), NotRestored> {
    let token = &cx.plan.tokens[&step.token];
    let backup =
        this_runs_backup(cx.state, &token.id, Some(&step.from)).ok_or(NotRestored::NoBackup)?;
    let store = cx.host.root().path(&token.store);
    let comparison = cx.host.compare_with_backup(&store, &backup)?;
    match comparison.difference {
        None => Ok(()),
        Some(difference) => Err(NotRestored::Differs(difference)),
    }
}

/// Why an interrupted restore is not known to be complete.
#[derive(Debug, thiserror::Error)]
enum NotRestored {
    #[error("this run has no verified backup to compare the store with")]
    NoBackup,
    #[error(transparent)]
    Host(#[from] PortError),
    #[error("the store is not the backup ({0}), so the restore did not complete")]
    Differs(String),
}

/// What is known about an interrupted restore: whether the store is the backup.
fn describe_uncertain(step: &RestoreStep, cx: &UncertainContext<'_>) -> Vec<String> {
    vec![
        match refuse_accept(step, cx) {
            Ok(()) => "compared with the backup: the store is identical to it".to_owned(),
            Err(e) => format!("compared with the backup: {e}"),
        },
        "--retry-step restores the verified backup again; --accept-step takes the restore as complete (refused unless the store is identical to the backup)".to_owned(),
    ]
}

fn check(step: &RestoreStep, cx: &CheckContext<'_>) -> CheckReport {
    let token = &cx.plan.tokens[&step.token];
    match refuse_if_activated(cx.host, token) {
        Ok(()) => CheckReport::WillRun(format!(
            "would restore `{}` from this run's verified backup if the store then differs from it",
            token.store.display()
        )),
        Err(e) => CheckReport::Blocked(e.to_string()),
    }
}
