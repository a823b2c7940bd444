//! `migrate`: re-encipher every secure key of a token with `pkcsep11_migrate`, driven to the
//! letter of its contract (opencryptoki-ep11.md 1): plain decimal arguments, the PIN on a pty
//! after the exact prompt (never argv or the environment, unless `pin_delivery: env` for
//! openCryptoki < 3.9), and success only when the exit code, the success line and the per-key
//! counts all agree, because the tool exits 0 on some failures (1.4).

use std::path::PathBuf;
use std::time::Instant;

use crate::guards::GuardError;
use crate::guards::backup::{restore_verified, this_runs_backup};
use crate::guards::tools::refuse_while_tools_run;
use crate::guards::users::{describe_users, token_users};
use crate::guards::wk::read_and_evaluate;
use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::ports::host::{HostView, PortError, PtyCommand, PtyError, StoreDrift};
use mkplan_engine::record::backup::RestoreOutput;
use mkplan_engine::record::migrate::{MigrateOutput, MigratePreflight, ToolRun};
use mkplan_engine::record::users::ScanSummary;
use mkplan_engine::state::RunState;
use mkplan_engine::step::{
    AcceptRefused, CheckContext, CheckReport, Interruption, RunContext, UncertainContext,
};
use mkplan_engine::trust::{TrustError, Trusted};
use mkplan_plan::Plan;
use mkplan_plan::model::{AssertWk, CurrentWk, MigrateStep, NewWk, PinDelivery, Token, TokenId};

mod cca;
mod dialog;
mod outcome;

use dialog::Dialog;
pub use outcome::{EXIT_ZERO_FAILURES, KEY_DONE, KEY_STARTED, PIN_PROMPT, SUCCESS_LINE};
use outcome::{Observed, verdict};

/// `migrate`.
pub(crate) struct MigrateKind;

impl Kind for MigrateKind {
    type Args = MigrateStep;
    type Output = MigrateOutput;

    /// A tool stopped half-way leaves the store partly migrated: an operator decides.
    fn interruption(_: &MigrateStep) -> Interruption {
        Interruption::Decide
    }

    fn check(step: &MigrateStep, cx: &CheckContext<'_>) -> CheckReport {
        check(step, cx)
    }

    fn run(step: &MigrateStep, cx: &mut RunContext<'_>) -> KindResult<MigrateOutput> {
        run(step, cx)
    }

    fn describe_uncertain(step: &MigrateStep, cx: &UncertainContext<'_>) -> Vec<String> {
        describe_uncertain(step, cx)
    }

    fn refuse_accept(step: &MigrateStep, cx: &UncertainContext<'_>) -> Result<(), AcceptRefused> {
        refuse_accept(step, cx).map_err(AcceptRefused::new)
    }
}

/// Why the migration is refused before its tool starts.
#[derive(Debug, thiserror::Error)]
pub enum MigrateRefused {
    #[error(transparent)]
    Host(#[from] PortError),
    #[error(
        "`pkcsep11_migrate` is not installed (not on the system path under the host root); install openCryptoki's EP11 tools or name it with `tool:`"
    )]
    NoTool,
    #[error(transparent)]
    Untrusted(#[from] TrustError),
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error(
        "{count} process(es) still use a token, so the migration is refused before the tool starts: {users}"
    )]
    TokenUsers { count: usize, users: String },
    #[error("this run has no verified backup of token `{0}`; the migration is refused")]
    NoBackup(TokenId),
    #[error(transparent)]
    Drifted(#[from] StoreDrift),
    #[error(
        "`pkcscca` is not installed (not on the system path under the host root); install openCryptoki's CCA tools or name it with `tool:`"
    )]
    NoCcaTool,
    #[error(
        "the CCA master keys are not as the migration needs them, so it is refused before `pkcscca` starts: {0}"
    )]
    CcaRegisters(String),
}

/// The tool: as the step names it, else `pkcsep11_migrate` (`pkcscca` for a CCA token) on
/// the system path, under the host root; nobody but root or the operator may be able to change it (it gets the PIN).
pub fn tool_path(
    host: &dyn HostView,
    plan: &Plan,
    step: &MigrateStep,
) -> Result<PathBuf, MigrateRefused> {
    if plan.tokens[&step.token].is_cca() {
        return cca::tool_path(host, step);
    }
    let tool = match &step.tool {
        Some(tool) => host.resolve_program(&tool.display().to_string())?,
        None => host
            .find_program("pkcsep11_migrate")
            .ok_or(MigrateRefused::NoTool)?,
    };
    host.check_trusted(&tool, Trusted::Tool)?;
    Ok(tool)
}

/// Design rule 1's part every migration tool shares, live, right before it starts
/// (`tool` names it): pkcsslotd runs (the tools go through libopencryptoki, reference 3.4),
/// no migration tool or process uses the token, and this run has a verified backup the store
/// still matches. The APQNs are left for the caller's check.
fn common_preflight(
    cx: &mut RunContext<'_>,
    step: &MigrateStep,
    token: &Token,
    tool: &str,
) -> Result<MigratePreflight, MigrateRefused> {
    let daemon = cx.host.slot_daemon()?.pid;
    refuse_while_tools_run(
        cx.host,
        cx.plan,
        token,
        &format!("start `{tool}` on token `{}`", token.id),
    )?;
    let scan = ScanSummary::from(token_users(cx.host, cx.plan));
    if !scan.users.is_empty() {
        return Err(MigrateRefused::TokenUsers {
            count: scan.users.len(),
            users: describe_users(&scan.users),
        });
    }
    let backup = this_runs_backup(cx.state, &step.token, None)
        .ok_or_else(|| MigrateRefused::NoBackup(step.token.clone()))?;
    // Cheap proof that the store is still what was backed up.
    let unchanged = cx
        .host
        .store_matches_backup(&cx.host.root().path(&token.store), &backup)?;
    Ok(MigratePreflight {
        pkcsslotd_pid: Some(daemon),
        token_users: Some(scan),
        backup: Some(backup.archive),
        store_files_checked: Some(unchanged),
        apqns: None,
    })
}

/// Design rule 1, live, right before `pkcsep11_migrate` starts.
fn preflight(
    cx: &mut RunContext<'_>,
    step: &MigrateStep,
    token: &Token,
) -> Result<MigratePreflight, MigrateRefused> {
    let checks = common_preflight(cx, step, token, "pkcsep11_migrate")?;
    let committed = AssertWk {
        token: step.token.clone(),
        current: CurrentWk::Expected,
        new: NewWk::Committed,
    };
    let table = read_and_evaluate(cx.host, cx.plan, &committed)?;
    Ok(MigratePreflight {
        apqns: Some(table),
        ..checks
    })
}

fn run(step: &MigrateStep, cx: &mut RunContext<'_>) -> KindResult<MigrateOutput> {
    let token = &cx.plan.tokens[&step.token];
    let refused =
        |message: String| Failed::with(message, MigrateOutput::stopped(&step.token, false));
    if token.is_cca() {
        let restored_first = match cx.retrying_uncertain {
            true => Some(restore_first(step, token, cx)?),
            false => None,
        };
        return cca::run(step, cx, restored_first);
    }
    let tool = tool_path(cx.host, cx.plan, step).map_err(|e| refused(e.to_string()))?;
    // What the retry of an interrupted migration restored first, for the journal.
    let restored_first = if cx.retrying_uncertain {
        Some(restore_first(step, token, cx)?)
    } else {
        None
    };
    let checks = match preflight(cx, step, token) {
        Ok(checks) => checks,
        Err(message) => {
            let output = MigrateOutput::refused_in_preflight(&step.token, restored_first);
            return Err(Failed::with(message, output));
        }
    };
    let pin = cx
        .token_pin(token)
        .map_err(|e| match cx.cancel.requested() {
            // Ctrl-C at the PIN prompt: the tool never started.
            true => Failed::Interrupted,
            false => refused(e.to_string()),
        })?;
    let total = cx.host.object_count(&cx.host.root().path(&token.store));
    let argv = format!(
        "{} -slot {} -adapter {} -domain {}",
        tool.display(),
        token.slot,
        step.apqn.adapter(),
        step.apqn.domain()
    );
    let mut scrub_env = vec!["PKCS11_USER_PIN".to_owned()];
    scrub_env.extend(cx.plan.pin_variables().into_iter().map(str::to_owned));
    let command = PtyCommand {
        program: &tool,
        args: vec![
            "-slot".to_owned(),
            token.slot.get().to_string(),
            "-adapter".to_owned(),
            step.apqn.adapter().to_string(),
            "-domain".to_owned(),
            step.apqn.domain().to_string(),
        ],
        scrub_env,
        secret_env: (step.pin_delivery == PinDelivery::Env).then_some(("PKCS11_USER_PIN", &*pin)),
        outlives_mkplan: false,
    };
    let (host, deadline, cancel) = (cx.host, cx.deadline, cx.cancel);
    let mut dialog = Dialog {
        cx,
        pin: &pin,
        observed: Observed::default(),
        total,
        awaiting_prompt: step.pin_delivery == PinDelivery::Prompt,
    };
    let started = Instant::now();
    let ended = host.run_on_pty(&command, &mut dialog, deadline, cancel);
    let observed = dialog.observed;
    let exit = match ended {
        Ok(exit) => exit,
        Err(PtyError::Spawn(e)) => return Err(refused(format!("cannot start `{argv}`: {e}"))),
        Err(PtyError::SendPin(e)) => {
            return Err(Failed::with(
                format!("cannot give the PIN to the tool: {e}"),
                MigrateOutput::stopped(&step.token, true),
            ));
        }
    };
    let verdict = verdict(&observed, exit.exit_code, exit.signal, exit.timed_out, step);
    let run = ToolRun {
        tool,
        argv,
        apqn: step.apqn.lszcrypt(),
        pin_delivery: match step.pin_delivery {
            PinDelivery::Env => "env",
            PinDelivery::Prompt => "prompt",
        },
        exit_code: exit.exit_code,
        signal: exit.signal,
        timed_out: exit.timed_out,
        keys_started: observed.started,
        keys_reenciphered: observed.succeeded,
        objects_listed: total,
        success_line: observed.success_line,
        duration_ms: started.elapsed().as_millis() as u64,
        output: observed.lines,
        output_lines_dropped: observed.dropped_lines,
    };
    let output = MigrateOutput::ran(&step.token, run, checks, restored_first);
    match verdict {
        Ok(summary) => Ok(Done::new(summary).with(output)),
        Err(message) => Err(Failed::with(message, output)),
    }
}

/// A half-migrated store cannot be migrated again (reference 1.5): a retry puts the
/// verified backup back first. What that restore recorded.
fn restore_first(
    step: &MigrateStep,
    token: &Token,
    cx: &mut RunContext<'_>,
) -> Result<RestoreOutput, Failed<MigrateOutput>> {
    let refused =
        |message: String| Failed::with(message, MigrateOutput::stopped(&step.token, false));
    let backup = this_runs_backup(cx.state, &step.token, None).ok_or_else(|| {
        refused("cannot retry: this run has no verified backup to restore first".to_owned())
    })?;
    cx.notice("retrying an interrupted migration: restoring the verified backup first");
    match restore_verified(token, &backup, cx) {
        Ok(done) => Ok(done.output.expect("a restore records what it did")),
        Err(Failed::Step { message, .. }) => Err(refused(format!(
            "restoring before the retry failed: {message}"
        ))),
        Err(Failed::Denied(reason)) => Err(Failed::Denied(reason)),
        Err(Failed::Interrupted) => Err(Failed::Interrupted),
        Err(Failed::Park { .. } | Failed::Halt { .. }) => Err(refused(
            "restoring before the retry did not complete".to_owned(),
        )),
    }
}

/// Why `--accept-step` must not take an interrupted migration as done: accepting a
/// half-done one would activate a WK that part of the store is not under, so it is complete
/// only if every key object changed from the backup.
fn refuse_accept(step: &MigrateStep, cx: &UncertainContext<'_>) -> Result<(), NotMigrated> {
    match store_changes(cx.host, &cx.plan.tokens[&step.token], cx.state) {
        Some((changed, objects)) if changed == objects && objects > 0 => Ok(()),
        Some((changed, objects)) => Err(NotMigrated::Partly { changed, objects }),
        None => Err(NotMigrated::Incomparable),
    }
}

/// Why an interrupted migration is not known to be complete.
#[derive(Debug, thiserror::Error)]
enum NotMigrated {
    #[error(
        "only {changed} of {objects} key object files differ from the backup, so the migration did not complete"
    )]
    Partly { changed: usize, objects: usize },
    #[error("the store cannot be compared with this run's backup")]
    Incomparable,
}

/// How much of the store differs from this run's verified backup: (object files that
/// changed, object files in the backup). `None` without a backup or a readable manifest.
fn store_changes(host: &dyn HostView, token: &Token, state: &RunState) -> Option<(usize, usize)> {
    let backup = this_runs_backup(state, &token.id, None)?;
    host.object_changes(&host.root().path(&token.store), &backup)
}

/// What resume says about a migration interrupted half-way: how much of the store differs
/// from this run's verified backup.
fn describe_uncertain(step: &MigrateStep, cx: &UncertainContext<'_>) -> Vec<String> {
    let (host, state) = (cx.host, cx.state);
    let token = &cx.plan.tokens[&step.token];
    let Some(backup) = this_runs_backup(state, &token.id, None) else {
        return vec!["this run has no verified backup of the token".to_owned()];
    };
    let mut lines = vec![format!(
        "the store may be partly migrated; the verified backup is `{}`",
        backup.archive.display()
    )];
    match store_changes(host, token, state) {
        Some((changed, objects)) => {
            let verdict = match changed {
                0 => "no key object changed",
                n if n == objects => "every key object changed",
                _ => "some key objects changed",
            };
            lines.push(format!(
                "compared with the backup: {verdict} ({changed} of {objects} object files differ)"
            ));
        }
        None => lines.push("(the backup's manifest cannot be read)".to_owned()),
    }
    lines.push("--retry-step restores the verified backup first, then runs the tool again; --accept-step takes the migration as complete (refused unless every key object changed)".to_owned());
    lines
}

fn check(step: &MigrateStep, cx: &CheckContext<'_>) -> CheckReport {
    let token = &cx.plan.tokens[&step.token];
    if token.is_cca() {
        return match cca::tool_path(cx.host, step) {
            Ok(tool) => CheckReport::CannotSimulate(format!(
                "would run `{} {}` for each of {} after re-checking pkcsslotd, token users, this run's backup and the CCA master keys of every APQN; re-enciphering cannot be simulated",
                tool.display(),
                cca::args(
                    token,
                    step.mks
                        .first()
                        .copied()
                        .unwrap_or(mkplan_plan::model::CcaMk::Aes)
                )
                .join(" "),
                step.mks
                    .iter()
                    .map(|mk| mk.key())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) => CheckReport::Blocked(e.to_string()),
        };
    }
    match tool_path(cx.host, cx.plan, step) {
        Ok(tool) => CheckReport::CannotSimulate(format!(
            "would run `{} -slot {} -adapter {} -domain {}` after re-checking pkcsslotd, token users, this run's backup and every APQN; re-enciphering cannot be simulated",
            tool.display(),
            cx.plan.tokens[&step.token].slot,
            step.apqn.adapter(),
            step.apqn.domain()
        )),
        Err(e) => CheckReport::Blocked(e.to_string()),
    }
}
