//! `mk_change`: the concurrent master-key change of openCryptoki 3.21+ with
//! `pkcshsm_mk_change` (opencryptoki-ep11.md 2), in three kinds: `reencipher` (every key
//! gets a blob under the new WK beside its current one while the applications keep
//! running), `finalize` (after the activation, the new blobs become current) and `cancel`
//! (before any activation, they are dropped). The operation ID the tool prints is journaled
//! at once and carried to finalize and cancel from the journal, never typed by hand. The
//! tool runs on a pty and is left to finish even if mkplan dies (ref 2.1).

mod cca;
mod dialog;
mod end;
mod patterns;
mod reencipher;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::guards::mk_change::TOOL;
use dialog::{Dialog, Observed};
use mkplan_engine::clock::now_rfc3339;
use mkplan_engine::ports::host::{HostView, PtyCommand, PtyError};
use mkplan_engine::record::mk_change::ToolRun;
use mkplan_engine::secret::Pin;
use mkplan_engine::step::RunContext;
use mkplan_engine::trust::Trusted;
use mkplan_plan::ep11conf::{self, ApqnMode};
use mkplan_plan::model::{Apqn, Plan, Token, TokenId};

pub(crate) use end::{CancelKind, FinalizeKind};
pub(crate) use reencipher::ReencipherKind;

/// The tool, as the plan names it or on the system path under the root; trusted like every
/// tool that gets a PIN.
fn tool_path(host: &dyn HostView, named: Option<&Path>) -> Result<PathBuf, String> {
    let tool = match named {
        Some(tool) => host
            .resolve_program(&tool.display().to_string())
            .map_err(|e| e.to_string())?,
        None => host.find_program(TOOL).ok_or_else(|| {
            format!("`{TOOL}` is not installed (not on the system path under the host root): the concurrent change needs openCryptoki 3.21 or later; use the offline plan (`migrate`) on older releases")
        })?,
    };
    host.check_trusted(&tool, Trusted::Tool)
        .map_err(|e| e.to_string())?;
    Ok(tool)
}

/// The tokens of an operation, in slot order.
fn tokens_of<'p>(plan: &'p Plan, ids: &[TokenId]) -> Vec<&'p Token> {
    ids.iter().filter_map(|t| plan.tokens.get(t)).collect()
}

/// `0a.0011,0b.0011`: hex, as the tool's `sscanf("%x.%x")` reads them (unlike
/// `pkcsep11_migrate`, which takes decimal).
fn apqn_list(apqns: &[Apqn]) -> String {
    apqns
        .iter()
        .map(|a| a.lszcrypt())
        .collect::<Vec<_>>()
        .join(",")
}

/// For every slot `opencryptoki.conf` configures: whether an operation on `apqns` provably
/// cannot affect it (the tool's own rule, ref 2.3 step 4), and why. An EP11 slot is
/// unaffected only if its config's APQN_ALLOWLIST is disjoint from `apqns`; a CCA slot only
/// if the operation names no CCA MKVP (`with_cca`): which APQNs a CCA token uses is not in
/// its config, so mkplan cannot prove it disjoint.
fn absent_verdicts(
    host: &dyn HostView,
    apqns: &[Apqn],
    with_cca: bool,
) -> BTreeMap<u16, (bool, String)> {
    let Ok(slots) = host.ock_slots() else {
        return BTreeMap::new();
    };
    slots
        .into_iter()
        .map(|slot| {
            if with_cca && is_cca_stdll(&slot.stdll) {
                let why = format!("{} is a CCA token and the operation names CCA MKVPs: it may be affected and lose its keys", slot.stdll);
                return (slot.slot, (false, why));
            }
            if !slot.ep11 {
                let why = format!("{} is not an EP11 token, cannot be affected", slot.stdll);
                return (slot.slot, (true, why));
            }
            let confname = slot.confname.unwrap_or_else(|| "ep11tok.conf".to_owned());
            let path = Path::new("/etc/opencryptoki").join(&confname);
            let parsed = host
                .read_config(&host.root().path(&path))
                .ok()
                .and_then(|text| ep11conf::parse(&text).ok());
            let verdict = match parsed.map(|c| c.apqns) {
                Some(ApqnMode::Allowlist(list)) if list.iter().all(|a| !apqns.contains(a)) => (
                    true,
                    format!("EP11 token whose APQN_ALLOWLIST ({}) shares no APQN with the operation", apqn_list(&list)),
                ),
                Some(ApqnMode::Allowlist(_)) => (false, "EP11 token whose APQN_ALLOWLIST shares APQNs with the operation: it may be affected and lose its keys".to_owned()),
                Some(ApqnMode::Any) => (false, "EP11 token with APQN_ANY: it may be affected and lose its keys".to_owned()),
                None => (false, format!("EP11 token whose config `{}` cannot be read: it may be affected", path.display())),
            };
            (slot.slot, verdict)
        })
        .collect()
}

/// `libpkcs11_cca.so` (any directory or suffix): the CCA token's STDLL.
fn is_cca_stdll(stdll: &str) -> bool {
    Path::new(stdll)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("libpkcs11_cca.so"))
}

/// Runs the tool once on its pty with `args`, answering from `dialog`'s setup.
fn run_tool<'c, 'a>(
    cx: &'c mut RunContext<'a>,
    tool: &Path,
    args: Vec<String>,
    pins: BTreeMap<u16, &'c Pin>,
    setup: impl FnOnce(&mut Dialog<'c, 'a>),
) -> Result<(ToolRun, Observed), String> {
    let argv: Vec<String> = std::iter::once(tool.display().to_string())
        .chain(args.iter().cloned())
        .collect();
    let scrub_env: Vec<String> = cx
        .plan
        .pin_variables()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let command = PtyCommand {
        program: tool,
        args,
        scrub_env,
        secret_env: None,
        outlives_mkplan: true,
    };
    let (host, cancel) = (cx.host, cx.cancel);
    let mut dialog = Dialog::new(cx, pins);
    setup(&mut dialog);
    let started_at = now_rfc3339();
    let started = Instant::now();
    let ended = host.run_on_pty(&command, &mut dialog, None, cancel);
    let observed = dialog.observed;
    let exit = match ended {
        Ok(exit) => exit,
        Err(PtyError::Spawn(e)) => return Err(format!("cannot start `{}`: {e}", argv.join(" "))),
        Err(PtyError::SendPin(e)) => return Err(format!("cannot answer the tool: {e}")),
    };
    let run = ToolRun {
        argv,
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        exit_code: exit.exit_code,
        signal: exit.signal,
        timed_out: exit.timed_out,
        phase_reached: observed.phase(),
        continue_prompt: observed.continue_prompt.clone(),
        affected: observed.affected.clone(),
        pins_sent_for: observed.pins_sent_for.clone(),
        completion_line: observed.completed || observed.ended.is_some(),
        diagnostics: observed.diagnostics.clone(),
        output: observed.lines.clone(),
    };
    Ok((run, observed))
}

/// The tool's own words for a failed run, for the step's error.
fn tool_said(run: &ToolRun) -> String {
    let code = run
        .exit_code
        .map_or_else(|| "no exit code".to_owned(), |c| format!("exit {c}"));
    if run.diagnostics.is_empty() {
        code
    } else {
        format!("{code}: {}", run.diagnostics.join(" / "))
    }
}

/// EXPECTED_WKVP of each EP11 token's config: `(token, value)`, or why it cannot be read
/// (a CCA token's `ccatok.conf` is `cca::expected_mkvps_name`'s).
fn expected_wkvps(
    host: &dyn HostView,
    tokens: &[&Token],
) -> Result<Vec<(TokenId, PathBuf, Option<mkplan_plan::model::Wkvp>)>, String> {
    let mut out = Vec::new();
    for token in tokens.iter().filter(|t| !t.is_cca()) {
        let Some(config) = &token.config else {
            continue;
        };
        let text = host
            .read_config(&host.root().path(config))
            .map_err(|e| format!("cannot read `{}`: {e}", config.display()))?;
        let parsed = ep11conf::parse(&text).map_err(|e| format!("`{}`: {e}", config.display()))?;
        out.push((token.id.clone(), config.clone(), parsed.expected_wkvp));
    }
    Ok(out)
}
