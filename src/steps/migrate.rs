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

use crate::host::{pin, tools};
use crate::plan::model::{AssertWk, CurrentWk, MigrateStep, NewWk, PinDelivery, Token};
use crate::secret::Pin;
use crate::steps::assert_wk::read_and_evaluate;
use crate::steps::backup::{restore_from, this_runs_backup};
use crate::steps::services::{describe_users, token_users};
use crate::steps::{CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess};

/// The prompt of every version since 3.9 (reference 1.3), trailing space included.
pub const PIN_PROMPT: &str = "Enter the USER PIN: ";
/// Per-key lines on stderr, with the source's typos (reference 1.2, step 12).
pub const KEY_STARTED: &str = "going to reencrpyt key ";
pub const KEY_DONE: &str = "reencryption success obj: ";
pub const SUCCESS_LINE: &str = "all keys successfully reencrypted";
/// Failures after which the released tool still exits 0 (reference 1.4).
pub const EXIT_ZERO_FAILURES: &[(&str, &str)] = &[
    (
        "ERROR do_GetFunctionList()",
        "openCryptoki's PKCS#11 library could not be loaded (the tool exits 0 here)",
    ),
    (
        "get_user_pin() failed",
        "the tool could not read the PIN (openCryptoki up to 3.27 exits 0 here)",
    ),
];
/// How much of the tool's output is kept in the journal.
const OUTPUT_LIMIT: usize = 64 * 1024;
const READ_SLICE_MS: u64 = 250;
/// The tool prints the prompt and then turns echo off with a flush that discards input
/// already waiting (reference 1.3); a PIN sent at once can be lost, and the tool then waits
/// for it until the step times out. openCryptoki's own test scripts wait before answering.
const PROMPT_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// What the run of the tool showed.
#[derive(Debug, Default)]
struct Observed {
    lines: Vec<String>,
    kept_bytes: usize,
    dropped_lines: u64,
    started: u64,
    succeeded: u64,
    success_line: bool,
    exit_zero_failure: Option<&'static str>,
    prompted: bool,
}

impl Observed {
    fn line(&mut self, line: &str, pin: &Pin) {
        let line = redact(line.trim_end_matches('\r'), pin);
        if line.starts_with(KEY_STARTED) {
            self.started += 1;
        } else if line.starts_with(KEY_DONE) {
            self.succeeded += 1;
        } else if line.trim() == SUCCESS_LINE {
            self.success_line = true;
        }
        for (marker, meaning) in EXIT_ZERO_FAILURES {
            if line.contains(marker) {
                self.exit_zero_failure = Some(meaning);
            }
        }
        if self.kept_bytes + line.len() <= OUTPUT_LIMIT {
            self.kept_bytes += line.len() + 1;
            self.lines.push(line);
        } else {
            self.dropped_lines += 1;
        }
    }
}

/// The PIN can never reach the journal, even if a tool echoed it.
fn redact(line: &str, pin: &Pin) -> String {
    if pin.expose().is_empty() {
        line.to_owned()
    } else {
        line.replace(pin.expose(), "<redacted>")
    }
}

fn tool_path(cx_root: &crate::host::HostRoot, step: &MigrateStep) -> Result<PathBuf, String> {
    match &step.tool {
        Some(tool) => tools::resolve(cx_root, &tool.display().to_string()),
        None => tools::find(cx_root, "pkcsep11_migrate").ok_or_else(|| {
            "`pkcsep11_migrate` is not installed (not on the system path under the host root); install openCryptoki's EP11 tools or name it with `tool:`".to_owned()
        }),
    }
}

/// `pkcsslotd` must run: the tool goes through libopencryptoki (reference 3.4).
fn slot_daemon_running(cx: &RunContext<'_>) -> Result<u32, String> {
    let pid_file = cx.host.root.path("/run/opencryptoki/pkcsslotd.pid");
    let text = std::fs::read_to_string(&pid_file)
        .map_err(|_| "pkcsslotd is not running (no `/run/opencryptoki/pkcsslotd.pid`); start it: `systemctl start pkcsslotd`".to_owned())?;
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| "pkcsslotd's pid file does not hold a pid".to_owned())?;
    let comm = std::fs::read_to_string(cx.host.proc_dir.join(pid.to_string()).join("comm"))
        .unwrap_or_default();
    if comm.trim() == "pkcsslotd" {
        Ok(pid)
    } else {
        Err(format!(
            "pkcsslotd is not running (its pid file names {pid}, which is not pkcsslotd); start it: `systemctl start pkcsslotd`"
        ))
    }
}

/// Design rule 1, live, right before the tool starts.
fn preflight(cx: &mut RunContext<'_>, step: &MigrateStep, token: &Token) -> Result<Value, String> {
    let daemon = slot_daemon_running(cx)?;
    let (users, scanned, unreadable) = token_users(cx.host, cx.plan);
    if !users.is_empty() {
        return Err(format!(
            "{} process(es) still use a token, so the migration is refused before the tool starts: {}",
            users.len(),
            describe_users(&users)
        ));
    }
    let backup = this_runs_backup(cx.state, &step.token, None)
        .ok_or_else(|| {
            format!(
                "this run has no verified backup of token `{}`; the migration is refused",
                step.token
            )
        })?
        .clone();
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
        "backup": backup["archive"],
        "store_files_checked": unchanged,
        "apqns": table,
    }))
}

/// Cheap proof that the store is still what was backed up: every file of the manifest has
/// its size and mtime, and there are no others. Returns the number of files checked.
fn store_matches_manifest(store: &Path, backup: &Value) -> Result<u64, String> {
    let manifest_path = backup["manifest"].as_str().unwrap_or_default();
    let manifest = crate::host::archive::read_manifest(Path::new(manifest_path))
        .map_err(|e| format!("cannot read this run's backup manifest: {e}"))?;
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
    let text = std::fs::read_to_string(store.join("TOK_OBJ/OBJ.IDX")).ok()?;
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
    if cx.retrying_uncertain {
        // A half-migrated store cannot be migrated again (reference 1.5): back to the backup.
        let backup = this_runs_backup(cx.state, &step.token, None)
            .cloned()
            .ok_or_else(|| {
                refused(
                    "cannot retry: this run has no verified backup to restore first".to_owned(),
                    json!({}),
                )
            })?;
        cx.notice("retrying an interrupted migration: restoring the verified backup first");
        restore_from(token, &backup, cx).map_err(|e| match e {
            StepError::Failed { message, .. } => refused(
                format!("restoring before the retry failed: {message}"),
                json!({}),
            ),
            denied => denied,
        })?;
    }
    let checks = preflight(cx, step, token).map_err(|e| refused(e, json!({})))?;
    let pin = pin::read(
        &token.pin,
        &cx.host.root,
        cx.operator,
        &format!("token `{}`", step.token),
    )
    .map_err(|e| refused(e, json!({})))?;
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
        "output": observed.lines,
        "output_lines_dropped": observed.dropped_lines,
    });
    match verdict(&observed, exit_code, signal, timed_out, step) {
        Ok(summary) => Ok(StepSuccess::new(summary).with_data(data)),
        Err(message) => Err(StepError::failed_with(message, data)),
    }
}

/// Design rule 6: success needs exit 0, the success line, equal started and succeeded counts,
/// and none of the exit-0 failure lines.
fn verdict(
    o: &Observed,
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    step: &MigrateStep,
) -> Result<String, String> {
    let partly = if o.succeeded > 0 || o.started > 0 {
        format!(
            " — it stopped at key {} of the run after {} succeeded: the store is partly migrated; rescue restores the verified backup",
            o.started, o.succeeded
        )
    } else {
        " — no key was re-enciphered".to_owned()
    };
    if timed_out {
        return Err(format!(
            "pkcsep11_migrate did not finish within the step's timeout and was stopped{partly}"
        ));
    }
    if let Some(signal) = signal {
        return Err(format!(
            "pkcsep11_migrate was killed by signal {signal}{partly}"
        ));
    }
    if let Some(meaning) = o.exit_zero_failure {
        return Err(format!("pkcsep11_migrate failed: {meaning}{partly}"));
    }
    match code {
        Some(0) if o.success_line && o.started == o.succeeded => Ok(format!(
            "{} keys re-enciphered through {} (`all keys successfully reencrypted`)",
            o.succeeded, step.apqn
        )),
        Some(0) if !o.success_line => Err(format!(
            "pkcsep11_migrate exited 0 without printing `{SUCCESS_LINE}`, so success cannot be confirmed{partly}"
        )),
        Some(0) => Err(format!(
            "pkcsep11_migrate started {} keys but confirmed {}{partly}",
            o.started, o.succeeded
        )),
        Some(1) => Err(format!(
            "pkcsep11_migrate found no committed new WK on {} (exit 1){partly}",
            step.apqn
        )),
        Some(6) => Err(format!(
            "the EP11 host library (libep11) could not be loaded or lacks a function (exit 6){partly}"
        )),
        Some(144) => Err(format!(
            "pkcsslotd is not running: openCryptoki could not initialise (exit 144){partly}"
        )),
        Some(160) => Err(format!(
            "the USER PIN is wrong (exit 160, CKR_PIN_INCORRECT): the token's failed-login counter was incremented{partly}"
        )),
        Some(164) => Err(format!(
            "the USER PIN is locked (exit 164, CKR_PIN_LOCKED){partly}"
        )),
        Some(224) => Err(format!(
            "the token is not present (exit 224): openCryptoki could not start it; check ep11tok.conf, EXPECTED_WKVP and that all APQNs have the same WK{partly}"
        )),
        Some(255) if o.started > 0 => Err(format!(
            "pkcsep11_migrate failed on a key (exit 255){partly}"
        )),
        Some(255) => Err(format!(
            "pkcsep11_migrate refused its arguments or could not set up (exit 255): {}",
            o.lines
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_default()
        )),
        Some(other) => Err(format!(
            "pkcsep11_migrate failed with exit {other} (a PKCS#11 return code & 0xFF){partly}"
        )),
        None => Err(format!(
            "pkcsep11_migrate ended without an exit code{partly}"
        )),
    }
}

/// What resume says about a migration interrupted half-way: how much of the store differs
/// from this run's verified backup.
pub fn describe_uncertain(
    cx_root: &crate::host::HostRoot,
    token: &Token,
    state: &crate::engine::state::RunState,
) -> Vec<String> {
    let Some(backup) = this_runs_backup(state, &token.id, None) else {
        return vec!["this run has no verified backup of the token".to_owned()];
    };
    let mut lines = vec![format!(
        "the store may be partly migrated; the verified backup is `{}`",
        backup["archive"].as_str().unwrap_or_default()
    )];
    let Ok(manifest) = crate::host::archive::read_manifest(Path::new(
        backup["manifest"].as_str().unwrap_or_default(),
    )) else {
        lines.push("(its manifest cannot be read)".to_owned());
        return lines;
    };
    let store = cx_root.path(&token.store);
    let parent = store.parent().unwrap_or(&store);
    let (mut changed, mut objects) = (0, 0);
    for file in manifest
        .regular_files
        .iter()
        .filter(|f| f.path.contains("/TOK_OBJ/") && !f.path.ends_with("OBJ.IDX"))
    {
        objects += 1;
        let now =
            std::fs::read(parent.join(&file.path)).map(|b| crate::engine::rundir::sha256_hex(&b));
        if now.as_deref().ok() != Some(file.sha256.as_str()) {
            changed += 1;
        }
    }
    let verdict = match changed {
        0 => "no key object changed",
        n if n == objects => "every key object changed",
        _ => "some key objects changed",
    };
    lines.push(format!(
        "compared with the backup: {verdict} ({changed} of {objects} object files differ)"
    ));
    lines.push("--retry-step restores the verified backup first, then runs the tool again; --accept-step takes the migration as complete".to_owned());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{Apqn, TokenId};

    fn step() -> MigrateStep {
        MigrateStep {
            token: TokenId::new("ep11"),
            apqn: Apqn::new(10, 17),
            tool: None,
            pin_delivery: PinDelivery::Prompt,
        }
    }

    fn observed(lines: &[&str]) -> Observed {
        let pin = Pin::new("S3cr3t-PIN-4711".to_owned());
        let mut o = Observed::default();
        for line in lines {
            o.line(line, &pin);
        }
        o
    }

    const KEY: &str = "going to reencrpyt key 0 with blob len 170: 'aes-1'";
    const DONE: &str = "reencryption success obj: 0 'aes-1:";

    #[test]
    fn success_needs_exit_zero_the_success_line_and_equal_counts() {
        let ok = observed(&[KEY, DONE, SUCCESS_LINE]);
        assert!(verdict(&ok, Some(0), None, false, &step()).is_ok());
        let no_line = observed(&[KEY, DONE]);
        assert!(
            verdict(&no_line, Some(0), None, false, &step())
                .unwrap_err()
                .contains("without printing")
        );
        let unequal = observed(&[KEY, KEY, DONE, SUCCESS_LINE]);
        assert!(
            verdict(&unequal, Some(0), None, false, &step())
                .unwrap_err()
                .contains("partly migrated")
        );
    }

    #[test]
    fn the_tools_exit_zero_failures_are_failures() {
        for line in [
            "ERROR do_GetFunctionList() Failed, rx = 0x0",
            "get_user_pin() failed",
        ] {
            let o = observed(&["Using slot #4...", line]);
            let e = verdict(&o, Some(0), None, false, &step()).unwrap_err();
            assert!(e.contains("exits 0 here"), "{e}");
        }
    }

    #[test]
    fn known_exit_codes_become_clear_messages() {
        let none = observed(&[]);
        let cases = [
            (1, "no committed new WK on 0a.0011 (adapter 10, domain 17)"),
            (6, "EP11 host library"),
            (144, "pkcsslotd is not running"),
            (160, "failed-login counter was incremented"),
            (224, "token is not present"),
        ];
        for (code, text) in cases {
            let e = verdict(&none, Some(code), None, false, &step()).unwrap_err();
            assert!(e.contains(text), "{code}: {e}");
        }
        let half = observed(&[KEY, DONE, KEY, "reencryption failed: 0x30"]);
        let e = verdict(&half, Some(255), None, false, &step()).unwrap_err();
        assert!(
            e.contains("stopped at key 2") && e.contains("partly migrated"),
            "{e}"
        );
    }

    #[test]
    fn the_pin_never_survives_into_kept_output() {
        let o = observed(&["echoed S3cr3t-PIN-4711 by a careless tool"]);
        assert!(!o.lines.join("\n").contains("S3cr3t"));
    }
}
