//! `migrate` of a CCA token: `pkcscca -m keys -s <slot> -k <type> -d <store>` once per MK
//! type (opencryptoki-ep11.md 5), after the TKE set the new MKs. The tool re-enciphers each
//! key from the OLD register to CURRENT; it asks for the SO PIN and the USER PIN (typed on
//! its pty after the exact prompts, never in argv or the environment) and exits 0 even when
//! keys failed, so a run succeeds only with exit 0, a parsed summary and no failed key. The
//! first failure stops the step: rescue restores the verified backup, which `pkcscca` can
//! migrate again while OLD still holds the previous MK.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::MigrateRefused;
use crate::guards::mk::{MkNeed, check_cca};
use crate::kind::{Done, Failed, KindResult};
use mkplan_engine::ports::host::{HostView, PtyCommand, PtyDialog, PtyError, Reply};
use mkplan_engine::record::backup::RestoreOutput;
use mkplan_engine::record::migrate::{MigrateOutput, MigratePreflight};
use mkplan_engine::record::pkcscca::{CcaRegistersChecked, PkcsccaRun};
use mkplan_engine::secret::Pin;
use mkplan_engine::step::RunContext;
use mkplan_engine::trust::Trusted;
use mkplan_plan::model::{CcaMk, MigrateStep, Token};

pub const SO_PROMPT: &str = "Enter the SO PIN: ";
pub const USER_PROMPT: &str = "Enter the USER PIN: ";
/// The tool turns echo off after its prompt; a PIN sent at once can be lost (as for
/// `pkcsep11_migrate`, reference 1.3).
const PROMPT_SETTLE: Duration = Duration::from_millis(200);
/// How much of one run's output is kept in the journal.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// The tool: as the step names it, else `pkcscca` on the system path under the host root;
/// nobody but root or the operator may be able to change it (it gets both PINs).
pub(super) fn tool_path(
    host: &dyn HostView,
    step: &MigrateStep,
) -> Result<PathBuf, MigrateRefused> {
    let tool = match &step.tool {
        Some(tool) => host.resolve_program(&tool.display().to_string())?,
        None => host
            .find_program("pkcscca")
            .ok_or(MigrateRefused::NoCcaTool)?,
    };
    host.check_trusted(&tool, Trusted::Tool)?;
    Ok(tool)
}

/// The command line, for the journal and `check` (no PIN in it).
pub(super) fn args(token: &Token, mk: CcaMk) -> Vec<String> {
    vec![
        "-m".to_owned(),
        "keys".to_owned(),
        "-s".to_owned(),
        token.slot.get().to_string(),
        "-k".to_owned(),
        mk.key().to_owned(),
        "-d".to_owned(),
        token.store.display().to_string(),
    ]
}

/// Design rule 1, live, right before the first run: pkcsslotd runs, no tool or process
/// uses the token, this run has a verified backup the store still matches, and on every
/// APQN each MK type to migrate has the new MK in CUR and the current one in OLD.
fn preflight(
    cx: &mut RunContext<'_>,
    step: &MigrateStep,
    token: &Token,
) -> Result<(MigratePreflight, CcaRegistersChecked), MigrateRefused> {
    let checks = super::common_preflight(cx, step, token, "pkcscca")?;
    let registers = check_cca(cx.host, token, &step.mks, MkNeed::SetFromCurrent)
        .map_err(|problems| MigrateRefused::CcaRegisters(problems.join("; ")))?;
    Ok((checks, registers))
}

/// The step's side of one run's dialog: both PINs after their prompts, the output kept
/// (PINs redacted, bounded) as the transcript the parser reads.
struct Dialog<'p, 'c, 'a> {
    cx: &'c mut RunContext<'a>,
    so_pin: &'p Pin,
    user_pin: &'p Pin,
    so_typed: bool,
    user_typed: bool,
    transcript: String,
    kept: Vec<String>,
    kept_bytes: usize,
}

impl Dialog<'_, '_, '_> {
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for pin in [self.so_pin, self.user_pin] {
            if !pin.expose().is_empty() {
                text = text.replace(pin.expose(), "<redacted>");
            }
        }
        text
    }

    fn keep(&mut self, text: &str) {
        let text = self.redact(text);
        self.transcript.push_str(&text);
        for line in text.lines() {
            if self.kept_bytes + line.len() <= OUTPUT_LIMIT {
                self.kept_bytes += line.len() + 1;
                self.kept.push(line.to_owned());
            }
        }
    }
}

impl PtyDialog for Dialog<'_, '_, '_> {
    fn prompts(&self) -> Vec<String> {
        match (self.so_typed, self.user_typed) {
            (false, _) => vec![SO_PROMPT.to_owned()],
            (true, false) => vec![USER_PROMPT.to_owned()],
            (true, true) => Vec::new(),
        }
    }

    fn answer(&mut self, prompt: &str) -> Reply<'_> {
        self.transcript.push_str(prompt);
        if prompt == SO_PROMPT {
            self.so_typed = true;
            Reply::Secret(self.so_pin, PROMPT_SETTLE)
        } else {
            self.user_typed = true;
            Reply::Secret(self.user_pin, PROMPT_SETTLE)
        }
    }

    fn line(&mut self, line: &str) {
        self.keep(&format!("{}\n", line.trim_end_matches('\r')));
    }

    fn rest(&mut self, text: &str) {
        self.keep(text);
    }

    fn stop_requested(&mut self) {
        self.cx.notice("stop requested: waiting for pkcscca to finish, since stopping it half-way would leave the store partly migrated");
    }
}

pub(super) fn run(
    step: &MigrateStep,
    cx: &mut RunContext<'_>,
    restored_first: Option<RestoreOutput>,
) -> KindResult<MigrateOutput> {
    let token = &cx.plan.tokens[&step.token];
    let refused =
        |message: String| Failed::with(message, MigrateOutput::stopped(&step.token, false));
    let tool = tool_path(cx.host, step).map_err(|e| refused(e.to_string()))?;
    let (checks, registers) = match preflight(cx, step, token) {
        Ok(checks) => checks,
        Err(message) => {
            let output = MigrateOutput::refused_in_preflight(&step.token, restored_first);
            return Err(Failed::with(message, output));
        }
    };
    let interrupted = |cx: &RunContext<'_>, e: String| match cx.cancel.requested() {
        true => Failed::Interrupted,
        false => refused(e),
    };
    let user_pin = cx
        .token_pin(token)
        .map_err(|e| interrupted(cx, e.to_string()))?;
    let so_pin = cx
        .token_so_pin(token)
        .map_err(|e| interrupted(cx, e.to_string()))?;
    let mut scrub_env = vec!["PKCS11_USER_PIN".to_owned()];
    scrub_env.extend(cx.plan.pin_variables().into_iter().map(str::to_owned));
    let mut runs = Vec::new();
    let mut failure = None;
    for mk in &step.mks {
        cx.notice(format!(
            "pkcscca: re-enciphering the {mk} keys of token `{}`",
            token.id
        ));
        let args = args(token, *mk);
        let argv = format!("{} {}", tool.display(), args.join(" "));
        let command = PtyCommand {
            program: &tool,
            args,
            scrub_env: scrub_env.clone(),
            secret_env: None,
            outlives_mkplan: false,
        };
        let (host, deadline, cancel) = (cx.host, cx.deadline, cx.cancel);
        let mut dialog = Dialog {
            cx: &mut *cx,
            so_pin: &so_pin,
            user_pin: &user_pin,
            so_typed: false,
            user_typed: false,
            transcript: String::new(),
            kept: Vec::new(),
            kept_bytes: 0,
        };
        let started = Instant::now();
        let ended = host.run_on_pty(&command, &mut dialog, deadline, cancel);
        let exit = match ended {
            Ok(exit) => exit,
            Err(PtyError::Spawn(e)) if runs.is_empty() => {
                return Err(refused(format!("cannot start `{argv}`: {e}")));
            }
            Err(e) => {
                failure = Some(format!("`{argv}`: {e}; earlier MK types were migrated"));
                break;
            }
        };
        let parsed = host.parse_pkcscca_output(&dialog.transcript);
        let verdict = verdict(
            *mk,
            &parsed,
            exit.exit_code,
            exit.signal,
            exit.timed_out,
            &dialog,
        );
        runs.push(PkcsccaRun {
            mk: mk.key().to_owned(),
            argv,
            exit_code: exit.exit_code.map(i64::from),
            signal: exit.signal.map(i64::from),
            timed_out: exit.timed_out,
            summary: parsed.as_ref().ok().cloned(),
            output_error: parsed.err(),
            duration_ms: started.elapsed().as_millis() as u64,
            output: dialog.kept,
        });
        match verdict {
            Ok(said) => cx.progress(runs.len() as u64, Some(step.mks.len() as u64), said),
            Err(why) => {
                failure = Some(why);
                break;
            }
        }
    }
    // Keys were rewritten if an earlier MK type's run succeeded, or the failed run got as
    // far as its summary (it writes back the keys that worked).
    let touched = runs.len() > 1 || runs.iter().any(|r| r.summary.is_some());
    let summary = summary(&runs);
    let output = MigrateOutput::ran_cca(&step.token, tool, runs, checks, registers, restored_first);
    match failure {
        None => Ok(Done::new(summary).with(output)),
        Some(why) if touched => Err(Failed::with(
            format!("{why}; the store may be partly migrated: rescue restores the verified backup"),
            output,
        )),
        Some(why) => Err(Failed::with(
            format!("{why}; no key was re-enciphered"),
            output,
        )),
    }
}

fn summary(runs: &[PkcsccaRun]) -> String {
    let parts: Vec<String> = runs
        .iter()
        .map(|r| {
            let n = r.summary.as_ref().map_or(0, |s| s.migrated_total());
            format!("{} {n}", r.mk.to_ascii_uppercase())
        })
        .collect();
    format!(
        "keys re-enciphered from OLD to CURRENT with pkcscca: {}",
        parts.join(", ")
    )
}

/// One run's verdict: exit 0, a summary, and no failed key (the tool exits 0 when keys
/// failed, reference 5).
fn verdict(
    mk: CcaMk,
    parsed: &Result<mkplan_engine::record::pkcscca::PkcsccaSummary, String>,
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    dialog: &Dialog<'_, '_, '_>,
) -> Result<String, String> {
    let run = format!("pkcscca -k {}", mk.key());
    if timed_out {
        return Err(format!(
            "{run} did not finish within the step's timeout and was stopped"
        ));
    }
    if let Some(signal) = signal {
        return Err(format!("{run} was killed by signal {signal}"));
    }
    let last = dialog
        .kept
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .cloned()
        .unwrap_or_default();
    match code {
        Some(0) => {}
        Some(2) => {
            return Err(format!(
                "{run}: openCryptoki could not initialise (exit 2; is pkcsslotd running?)"
            ));
        }
        Some(5) => {
            return Err(format!(
                "{run}: no session on the token (exit 5): the slot is wrong or openCryptoki does not start the token (check ccatok.conf's EXPECTED_MKVPS)"
            ));
        }
        Some(8) => return Err(format!("{run}: the USER PIN was refused at login (exit 8)")),
        Some(255) => {
            return Err(format!(
                "{run} refused its arguments or a PIN (exit 255): {last}"
            ));
        }
        Some(other) => return Err(format!("{run} failed with exit {other}: {last}")),
        None => return Err(format!("{run} ended without an exit code")),
    }
    let summary = parsed
        .as_ref()
        .map_err(|e| format!("{run} exited 0, but {e}"))?;
    if summary.failed_total() > 0 {
        let counts: Vec<String> = summary
            .failed
            .iter()
            .map(|c| format!("{} {}", c.algorithm, c.count))
            .collect();
        return Err(format!(
            "{run} exited 0, but {} key(s) failed to migrate ({}); they are still under the OLD master key",
            summary.failed_total(),
            counts.join(", ")
        ));
    }
    Ok(format!(
        "{run}: {} key(s) under the new {mk} master key",
        summary.migrated_total()
    ))
}
