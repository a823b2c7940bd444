//! `set_expected_wkvp`: after activation, point `EXPECTED_WKVP` in the token's
//! `ep11tok.conf` at the new WK (openCryptoki 3.19+ will not start the token otherwise;
//! reference 1.6, 3.2); with `to: current`, before any activation, point it back at the
//! current WK (a concurrent cancel needs that value, reference 2.4 step 2). Every other
//! byte is kept; the old file is kept beside it.

use crate::guards::wk::{read_and_evaluate, refuse_if_activated};
use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::crash_hooks::kill_point;
use mkplan_engine::record::command::ExpectedWkvpOutput;
use mkplan_engine::step::{CheckContext, CheckReport, RunContext};
use mkplan_plan::ep11conf;
use mkplan_plan::model::{AssertWk, CurrentWk, ExpectedTarget, ExpectedWkvpStep, NewWk};

/// `set_expected_wkvp`.
pub(crate) struct ExpectedWkvpKind;

impl Kind for ExpectedWkvpKind {
    type Args = ExpectedWkvpStep;
    type Output = ExpectedWkvpOutput;

    fn check(step: &ExpectedWkvpStep, cx: &CheckContext<'_>) -> CheckReport {
        check(step, cx)
    }

    fn run(step: &ExpectedWkvpStep, cx: &mut RunContext<'_>) -> KindResult<ExpectedWkvpOutput> {
        run(step, cx)
    }
}

fn run(step: &ExpectedWkvpStep, cx: &mut RunContext<'_>) -> KindResult<ExpectedWkvpOutput> {
    let token_id = &step.token;
    let token = &cx.plan.tokens[token_id];
    let Some(config) = &token.config else {
        return Ok(Done::new(format!(
            "note: token `{token_id}` names no `config`; nothing to change"
        )));
    };
    let target = match step.to {
        ExpectedTarget::New => {
            // Only once the new WK is current everywhere: before that, the old value is right.
            let activated = AssertWk {
                token: token_id.clone(),
                current: CurrentWk::New,
                new: NewWk::Any,
            };
            read_and_evaluate(cx.host, cx.plan, &activated).map_err(|p| {
                Failed::step(format!(
                    "the new WK is not current on every APQN yet, so EXPECTED_WKVP stays: {p}"
                ))
            })?;
            token.wkvp_new
        }
        ExpectedTarget::Current => {
            // Only while the old WK is current everywhere: once it is gone, it would stop the token.
            refuse_if_activated(cx.host, token).map_err(|e| {
                Failed::step(format!(
                    "EXPECTED_WKVP cannot go back to the current WK: {e}"
                ))
            })?;
            token.wkvp_current
        }
    };
    let path = cx.host.root().path(config);
    let text = cx
        .host
        .read_config(&path)
        .map_err(|e| Failed::step(format!("cannot read `{}`: {e}", config.display())))?;
    let rewritten = ep11conf::rewrite_expected_wkvp(&text, &target)
        .map_err(|e| Failed::step(format!("`{}`: {e}", config.display())))?;
    let Some(rewritten) = rewritten else {
        return Ok(Done::new(format!(
            "note: `{}` sets no EXPECTED_WKVP; nothing to change",
            config.display()
        )));
    };
    if rewritten == text {
        return Ok(Done::new(format!(
            "`{}` already expects {target}",
            config.display()
        )));
    }
    let backup = path.with_file_name(format!(
        "{}.mkplan-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("ep11tok.conf"),
        cx.run.run_id
    ));
    cx.host
        .copy_file(&path, &backup)
        .map_err(|e| Failed::step(format!("cannot keep a copy of `{}`: {e}", config.display())))?;
    kill_point("set_expected_wkvp:copied");
    cx.host
        .replace_file(&path, rewritten.as_bytes())
        .map_err(|e| Failed::step(format!("cannot rewrite `{}`: {e}", config.display())))?;
    Ok(Done::new(format!(
        "`{}` now expects {target}; the previous file is `{}`",
        config.display(),
        backup.display()
    ))
    .with(ExpectedWkvpOutput {
        config: config.clone(),
        previous: backup,
        expected_wkvp: target.to_string(),
    }))
}

fn check(step: &ExpectedWkvpStep, cx: &CheckContext<'_>) -> CheckReport {
    let token_id = &step.token;
    let token = &cx.plan.tokens[token_id];
    let Some(config) = &token.config else {
        return CheckReport::WouldSkip(format!("token `{token_id}` names no `config`"));
    };
    match cx
        .host
        .read_config(&cx.host.root().path(config))
        .map(|t| ep11conf::parse(&t))
    {
        Ok(Ok(parsed)) => match parsed.expected_wkvp {
            Some(w) if step.to == ExpectedTarget::Current => CheckReport::WillRun(format!(
                "before any activation, would change EXPECTED_WKVP from {w} to {}",
                token.wkvp_current
            )),
            Some(w) => CheckReport::WillRun(format!(
                "after activation, would change EXPECTED_WKVP from {w} to {}",
                token.wkvp_new
            )),
            None => CheckReport::WouldSkip(format!("`{}` sets no EXPECTED_WKVP", config.display())),
        },
        Ok(Err(e)) => CheckReport::Blocked(format!("`{}`: {e}", config.display())),
        Err(e) => CheckReport::Blocked(format!("cannot read `{}`: {e}", config.display())),
    }
}
