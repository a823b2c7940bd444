//! `migrate`: re-encipher every secure key of a token with `pkcsep11_migrate`, driven to the
//! letter of its contract (opencryptoki-ep11.md 1): plain decimal arguments, the PIN on a pty
//! after the exact prompt (never argv or the environment, unless `pin_delivery: env` for
//! openCryptoki < 3.9), and success only when the exit code, the success line and the per-key
//! counts all agree, because the tool exits 0 on some failures (1.4).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rexpect::error::Error as PtyError;
use rexpect::reader::{Options, ReadUntil};
use serde_json::{Value, json};

use crate::host::{process, slotd, tools};
use crate::plan::model::{AssertWk, CurrentWk, MigrateStep, NewWk, PinDelivery, Token};
use crate::steps::assert_wk::read_and_evaluate;
use crate::steps::backup::{JournaledBackup, this_runs_backup};
use crate::steps::guards::refuse_while_tools_run;
use crate::steps::restore::restore_from;
use crate::steps::services::{describe_users, token_users};
use crate::steps::{CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess};

mod outcome;

pub use outcome::{EXIT_ZERO_FAILURES, KEY_DONE, KEY_STARTED, PIN_PROMPT, SUCCESS_LINE};
use outcome::{Observed, verdict};

const READ_SLICE_MS: u64 = 250;
/// The tool prints the prompt and then turns echo off with a flush that discards input
/// already waiting (reference 1.3); a PIN sent at once can be lost, and the tool then waits
/// for it until the step times out. openCryptoki's own test scripts wait before answering.
const PROMPT_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

pub fn tool_path(
    cx_root: &crate::engine::ports::root::HostRoot,
    step: &MigrateStep,
) -> Result<PathBuf, String> {
    let tool = match &step.tool {
        Some(tool) => tools::resolve(cx_root, &tool.display().to_string()),
        None => tools::find(cx_root, "pkcsep11_migrate").ok_or_else(|| {
            "`pkcsep11_migrate` is not installed (not on the system path under the host root); install openCryptoki's EP11 tools or name it with `tool:`".to_owned()
        }),
    }?;
    // It is given the token's PIN: nobody but root or the operator may be able to change it.
    crate::engine::trust::check(&tool, crate::engine::trust::Trusted::Tool)
        .map_err(|e| e.to_string())?;
    Ok(tool)
}

/// Design rule 1, live, right before the tool starts.
fn preflight(cx: &mut RunContext<'_>, step: &MigrateStep, token: &Token) -> Result<Value, String> {
    // pkcsslotd must run: the tool goes through libopencryptoki (reference 3.4).
    let daemon = slotd::find(&cx.host.root, &cx.host.proc_dir)
        .map_err(|e| e.to_string())?
        .pid;
    refuse_while_tools_run(
        cx.host,
        cx.plan,
        token,
        &format!("start `pkcsep11_migrate` on token `{}`", token.id),
    )?;
    let (users, scanned, unreadable) = token_users(cx.host, cx.plan);
    if !users.is_empty() {
        return Err(format!(
            "{} process(es) still use a token, so the migration is refused before the tool starts: {}",
            users.len(),
            describe_users(&users)
        ));
    }
    let backup = this_runs_backup(cx.state, &step.token, None).ok_or_else(|| {
        format!(
            "this run has no verified backup of token `{}`; the migration is refused",
            step.token
        )
    })?;
    let unchanged = store_matches_manifest(&cx.host.root.path(&token.store), &backup)?;
    let committed = AssertWk {
        token: step.token.clone(),
        current: CurrentWk::Expected,
        new: NewWk::Committed,
    };
    let table = read_and_evaluate(cx.host, cx.plan, &committed)?;
    Ok(json!({
        "pkcsslotd_pid": daemon,
        "token_users": { "scanned": scanned, "unreadable": unreadable, "users": [] },
        "backup": backup.archive,
        "store_files_checked": unchanged,
        "apqns": table,
    }))
}

/// Cheap proof that the store is still what was backed up: every file of the (journaled)
/// manifest has its size and mtime, and there are no others. Returns the number of files
/// checked.
fn store_matches_manifest(store: &Path, backup: &JournaledBackup) -> Result<u64, String> {
    let manifest = backup
        .manifest()
        .map_err(|e| format!("cannot use this run's backup manifest: {e}"))?;
    let parent = store.parent().unwrap_or(store);
    let mut checked = 0;
    for file in &manifest.regular_files {
        let meta = std::fs::metadata(parent.join(&file.path)).map_err(|_| {
            format!("`{}` is in the backup but no longer in the store: the store changed after the backup", file.path)
        })?;
        use std::os::unix::fs::MetadataExt;
        if meta.len() != file.size || meta.mtime() != file.mtime {
            return Err(format!(
                "`{}` changed after the backup; take a new backup before migrating",
                file.path
            ));
        }
        checked += 1;
    }
    let live = count_files(store);
    if live != checked {
        return Err(format!(
            "the store has {live} files but the backup {checked}: it changed after the backup"
        ));
    }
    Ok(checked)
}

fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

/// Objects listed in `TOK_OBJ/OBJ.IDX` (one name per line): the progress bar's length.
fn object_count(store: &Path) -> Option<u64> {
    let text = crate::plan::input::read_to_string(
        &store.join("TOK_OBJ/OBJ.IDX"),
        crate::plan::input::STORE_FILE,
    )
    .ok()?;
    Some(text.lines().filter(|l| !l.trim().is_empty()).count() as u64)
}

pub fn run(step: &MigrateStep, cx: &mut RunContext<'_>) -> StepResult {
    let token = &cx.plan.tokens[&step.token];
    let refused = |message: String, data: Value| {
        let mut data = data;
        data["token"] = json!(step.token.as_str());
        data["tool_started"] = json!(false);
        StepError::failed_with(message, data)
    };
    let tool = tool_path(&cx.host.root, step).map_err(|e| refused(e, json!({})))?;
    // What the retry of an interrupted migration restored first, for the journal.
    let mut restored_first = Value::Null;
    if cx.retrying_uncertain {
        // A half-migrated store cannot be migrated again (reference 1.5): back to the backup.
        let backup = this_runs_backup(cx.state, &step.token, None).ok_or_else(|| {
            refused(
                "cannot retry: this run has no verified backup to restore first".to_owned(),
                json!({}),
            )
        })?;
        cx.notice("retrying an interrupted migration: restoring the verified backup first");
        let restored = restore_from(token, &backup, cx).map_err(|e| match e {
            StepError::Failed { message, .. } => refused(
                format!("restoring before the retry failed: {message}"),
                json!({}),
            ),
            denied => denied,
        })?;
        restored_first = restored.data;
    }
    let checks = preflight(cx, step, token)
        .map_err(|e| refused(e, json!({ "restored_first": restored_first })))?;
    let pin = cx
        .token_pin(token)
        .map_err(|e| match cx.cancel.requested() {
            // Ctrl-C at the PIN prompt: the tool never started.
            true => StepError::Interrupted,
            false => refused(e, json!({})),
        })?;
    let store = cx.host.root.path(&token.store);
    let total = object_count(&store);

    let mut command = Command::new(&tool);
    command.args([
        "-slot".to_owned(),
        token.slot.get().to_string(),
        "-adapter".to_owned(),
        step.apqn.adapter().to_string(),
        "-domain".to_owned(),
        step.apqn.domain().to_string(),
    ]);
    command.env_remove("PKCS11_USER_PIN");
    for name in cx.plan.pin_variables() {
        command.env_remove(name);
    }
    if step.pin_delivery == PinDelivery::Env {
        command.env("PKCS11_USER_PIN", pin.expose());
    }
    let argv = format!(
        "{} -slot {} -adapter {} -domain {}",
        tool.display(),
        token.slot,
        step.apqn.adapter(),
        step.apqn.domain()
    );
    // On its pty the tool leads its own session; it must not outlive mkplan (rule 8). This
    // thread spawns it and waits for it, so the parent-death signal fits its lifetime.
    process::die_with_mkplan(&mut command);
    let started = Instant::now();
    let options = Options::new().timeout_ms(Some(READ_SLICE_MS));
    let mut session = rexpect::spawn_with_options(command, options)
        .map_err(|e| refused(format!("cannot start `{argv}`: {e}"), json!({})))?;
    let mut observed = Observed::default();
    let mut told_waiting = false;
    let mut timed_out = false;
    let mut waiting_for_prompt = step.pin_delivery == PinDelivery::Prompt;
    loop {
        if cx.cancel.requested() && !told_waiting {
            told_waiting = true;
            cx.notice("stop requested: waiting for pkcsep11_migrate to finish, since stopping it half-way would leave the store partly migrated");
        }
        if cx.deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            let _ = session.process_mut().exit();
            break;
        }
        let read = if waiting_for_prompt {
            session.exp_any(vec![
                ReadUntil::String(PIN_PROMPT.to_owned()),
                ReadUntil::String("\n".to_owned()),
            ])
        } else {
            session.exp_any(vec![ReadUntil::String("\n".to_owned())])
        };
        match read {
            Ok((before, matched)) if matched == PIN_PROMPT => {
                for line in before.lines() {
                    observed.line(line, &pin);
                }
                observed.prompted = true;
                waiting_for_prompt = false;
                std::thread::sleep(PROMPT_SETTLE);
                session.send_line(pin.expose()).map_err(|e| {
                    StepError::failed_with(
                        format!("cannot give the PIN to the tool: {e}"),
                        json!({"token": step.token.as_str(), "tool_started": true}),
                    )
                })?;
            }
            Ok((line, _)) => {
                observed.line(&line, &pin);
                if observed.started > 0 || observed.succeeded > 0 {
                    cx.progress(
                        observed.succeeded,
                        total,
                        format!("{} keys re-enciphered", observed.succeeded),
                    );
                }
                if total.is_some_and(|t| observed.succeeded * 2 >= t && observed.succeeded > 0) {
                    crate::engine::crash_hooks::kill_point("migrate:half");
                }
            }
            Err(PtyError::Timeout { .. }) => {}
            Err(PtyError::EOF { got, .. }) => {
                for line in got.lines() {
                    observed.line(line, &pin);
                }
                break;
            }
            Err(e) => {
                observed.line(
                    &format!("(mkplan: reading the tool's output failed: {e})"),
                    &pin,
                );
                break;
            }
        }
    }
    let status = session.process().wait();
    let (exit_code, signal) = match status {
        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => (Some(code), None),
        Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
        _ => (None, None),
    };
    let data = json!({
        "token": step.token.as_str(),
        "tool_started": true,
        "tool": tool,
        "argv": argv,
        "apqn": step.apqn.lszcrypt(),
        "pin_delivery": if step.pin_delivery == PinDelivery::Env { "env" } else { "prompt" },
        "exit_code": exit_code,
        "signal": signal,
        "timed_out": timed_out,
        "keys_started": observed.started,
        "keys_reenciphered": observed.succeeded,
        "objects_listed": total,
        "success_line": observed.success_line,
        "duration_ms": started.elapsed().as_millis() as u64,
        "preflight": checks,
        "restored_first": restored_first,
        "output": observed.lines,
        "output_lines_dropped": observed.dropped_lines,
    });
    match verdict(&observed, exit_code, signal, timed_out, step) {
        Ok(summary) => Ok(StepSuccess::new(summary).with_data(data)),
        Err(message) => Err(StepError::failed_with(message, data)),
    }
}

/// How much of the store differs from this run's verified backup: (object files that
/// changed, object files in the backup). `None` without a backup or a readable manifest.
pub fn store_changes(
    root: &crate::engine::ports::root::HostRoot,
    token: &Token,
    state: &crate::engine::state::RunState,
) -> Option<(usize, usize)> {
    let manifest = this_runs_backup(state, &token.id, None)?.manifest().ok()?;
    let store = root.path(&token.store);
    let parent = store.parent().unwrap_or(&store);
    let (mut changed, mut objects) = (0, 0);
    for file in manifest
        .regular_files
        .iter()
        .filter(|f| f.path.contains("/TOK_OBJ/") && !f.path.ends_with("OBJ.IDX"))
    {
        objects += 1;
        let now =
            crate::plan::input::read(&parent.join(&file.path), crate::plan::input::STORE_FILE)
                .map(|b| crate::engine::digest::sha256_hex(&b));
        if now.as_deref().ok() != Some(file.sha256.as_str()) {
            changed += 1;
        }
    }
    Some((changed, objects))
}

/// What resume says about a migration interrupted half-way: how much of the store differs
/// from this run's verified backup.
pub fn describe_uncertain(
    root: &crate::engine::ports::root::HostRoot,
    token: &Token,
    state: &crate::engine::state::RunState,
) -> Vec<String> {
    let Some(backup) = this_runs_backup(state, &token.id, None) else {
        return vec!["this run has no verified backup of the token".to_owned()];
    };
    let mut lines = vec![format!(
        "the store may be partly migrated; the verified backup is `{}`",
        backup.archive.display()
    )];
    match store_changes(root, token, state) {
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

pub fn check(step: &MigrateStep, cx: &CheckContext<'_>) -> CheckReport {
    match tool_path(&cx.host.root, step) {
        Ok(tool) => CheckReport::CannotSimulate(format!(
            "would run `{} -slot {} -adapter {} -domain {}` after re-checking pkcsslotd, token users, this run's backup and every APQN; re-enciphering cannot be simulated",
            tool.display(),
            cx.plan.tokens[&step.token].slot,
            step.apqn.adapter(),
            step.apqn.domain()
        )),
        Err(e) => CheckReport::Blocked(e),
    }
}
