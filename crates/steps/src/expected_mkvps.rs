//! `set_expected_mkvps`: after the TKE set the new CCA master keys, point `EXPECTED_MKVPS`
//! in the token's `ccatok.conf` at them (the token does not start while a named type's
//! pattern is not the current MK, so `pkcscca` could not even open a session); with
//! `to: current`, while the previous MKs are still current, point it back. Only the types
//! the file names change; every other byte is kept; the old file is kept beside it.

use std::collections::BTreeMap;

use crate::guards::mk::{MkNeed, check_cca, conf_type};
use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::crash_hooks::kill_point;
use mkplan_engine::record::command::ExpectedMkvpsOutput;
use mkplan_engine::step::{CheckContext, CheckReport, RunContext};
use mkplan_plan::ccaconf::{self, ConfMkType};
use mkplan_plan::model::{CcaMk, ExpectedTarget, ExpectedWkvpStep, Mkvp, Token};

/// `set_expected_mkvps`.
pub(crate) struct ExpectedMkvpsKind;

impl Kind for ExpectedMkvpsKind {
    type Args = ExpectedWkvpStep;
    type Output = ExpectedMkvpsOutput;

    fn check(step: &ExpectedWkvpStep, cx: &CheckContext<'_>) -> CheckReport {
        check(step, cx)
    }

    fn run(step: &ExpectedWkvpStep, cx: &mut RunContext<'_>) -> KindResult<ExpectedMkvpsOutput> {
        run(step, cx)
    }
}

/// The patterns `to` means, per type the file can name.
fn targets(token: &Token, to: ExpectedTarget) -> BTreeMap<ConfMkType, Mkvp> {
    token
        .mks
        .iter()
        .filter_map(|(mk, pair)| {
            let vp = match to {
                ExpectedTarget::New => pair.new,
                ExpectedTarget::Current => pair.current,
            };
            Some((conf_type(*mk)?, vp))
        })
        .collect()
}

fn run(step: &ExpectedWkvpStep, cx: &mut RunContext<'_>) -> KindResult<ExpectedMkvpsOutput> {
    let token = &cx.plan.tokens[&step.token];
    let Some(config) = &token.config else {
        return Ok(Done::new(format!(
            "note: token `{}` names no `config`; nothing to change",
            token.id
        )));
    };
    let mks: Vec<CcaMk> = token.mks.keys().copied().collect();
    // Fail closed on every APQN: the file may name only MKs that are current everywhere.
    let need = match step.to {
        ExpectedTarget::New => MkNeed::NewCurrent,
        ExpectedTarget::Current => MkNeed::PreviousCurrent,
    };
    check_cca(cx.host, token, &mks, need).map_err(|problems| {
        Failed::step(format!(
            "EXPECTED_MKVPS stays as it is: {}",
            problems.join("; ")
        ))
    })?;
    let target = targets(token, step.to);
    let path = cx.host.root().path(config);
    let text = cx
        .host
        .read_config(&path)
        .map_err(|e| Failed::step(format!("cannot read `{}`: {e}", config.display())))?;
    let bytes: BTreeMap<ConfMkType, [u8; 8]> =
        target.iter().map(|(mk, vp)| (*mk, *vp.bytes())).collect();
    let (rewritten, changed) = ccaconf::rewrite_expected_mkvps(&text, &bytes)
        .map_err(|e| Failed::step(format!("`{}`: {e}", config.display())))?;
    let named: BTreeMap<String, String> = changed
        .iter()
        .map(|mk| (mk.name().to_owned(), target[mk].to_string()))
        .collect();
    let shown = named
        .iter()
        .map(|(mk, vp)| format!("{mk} {vp}"))
        .collect::<Vec<_>>()
        .join(", ");
    if changed.is_empty() {
        return Ok(Done::new(format!(
            "note: `{}` expects none of the token's MK types; nothing to change",
            config.display()
        )));
    }
    if rewritten == text {
        return Ok(Done::new(format!(
            "`{}` already expects {shown}",
            config.display()
        )));
    }
    let previous = path.with_file_name(format!(
        "{}.mkplan-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("ccatok.conf"),
        cx.run.run_id
    ));
    cx.host
        .copy_file(&path, &previous)
        .map_err(|e| Failed::step(format!("cannot keep a copy of `{}`: {e}", config.display())))?;
    kill_point("set_expected_mkvps:copied");
    cx.host
        .replace_file(&path, rewritten.as_bytes())
        .map_err(|e| Failed::step(format!("cannot rewrite `{}`: {e}", config.display())))?;
    Ok(Done::new(format!(
        "`{}` now expects {shown}; the previous file is `{}`",
        config.display(),
        previous.display()
    ))
    .with(ExpectedMkvpsOutput {
        config: config.clone(),
        previous,
        expected_mkvps: named,
    }))
}

fn check(step: &ExpectedWkvpStep, cx: &CheckContext<'_>) -> CheckReport {
    let token = &cx.plan.tokens[&step.token];
    let Some(config) = &token.config else {
        return CheckReport::WouldSkip(format!("token `{}` names no `config`", token.id));
    };
    match cx
        .host
        .read_config(&cx.host.root().path(config))
        .map(|t| ccaconf::parse(&t))
    {
        Ok(Ok(parsed)) if parsed.expected_mkvps.is_empty() => {
            CheckReport::WouldSkip(format!("`{}` sets no EXPECTED_MKVPS", config.display()))
        }
        Ok(Ok(_)) => {
            let to: Vec<String> = targets(token, step.to)
                .iter()
                .map(|(mk, vp)| format!("{mk} {vp}"))
                .collect();
            CheckReport::WillRun(format!(
                "once the MKs are set, would point EXPECTED_MKVPS at {}",
                to.join(", ")
            ))
        }
        Ok(Err(e)) => CheckReport::Blocked(format!("`{}`: {e}", config.display())),
        Err(e) => CheckReport::Blocked(format!("cannot read `{}`: {e}", config.display())),
    }
}
