//! `probe_keys`: list every object of the token through PKCS#11 and prove each key works
//! (encrypt, sign). Every object goes to a sorted JSON Lines side file in the run directory
//! (`engine::keylist`); the journal keeps its digest and counts; the report compares the
//! probe before the migration with the one after as a merge of the two files.

use std::path::PathBuf;

use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::keylist::KeyListWriter;
use mkplan_engine::record::probe::{Inventory, ProbeOutput};
use mkplan_engine::step::{CheckContext, CheckReport, RunContext};
use mkplan_plan::model::ProbeKeysStep;

/// `probe_keys`.
pub(crate) struct ProbeKeysKind;

/// Objects between two progress events.
const PROGRESS_EVERY: u64 = 250;

impl Kind for ProbeKeysKind {
    type Args = ProbeKeysStep;
    type Output = ProbeOutput;

    fn check(step: &ProbeKeysStep, cx: &CheckContext<'_>) -> CheckReport {
        check(step, cx)
    }

    fn run(step: &ProbeKeysStep, cx: &mut RunContext<'_>) -> KindResult<ProbeOutput> {
        run(step, cx)
    }
}

fn run(step: &ProbeKeysStep, cx: &mut RunContext<'_>) -> KindResult<ProbeOutput> {
    let (token_id, module) = (&step.token, step.module.as_ref());
    let token = &cx.plan.tokens[token_id];
    let module = cx
        .host
        .pkcs11_module(module.map(PathBuf::as_path))
        .map_err(|e| Failed::step(e.to_string()))?;
    let pin = cx
        .token_pin(token)
        .map_err(|e| match cx.cancel.requested() {
            // Ctrl-C at the PIN prompt: nothing was probed.
            true => Failed::Interrupted,
            false => Failed::step(e.to_string()),
        })?;
    // Every object goes to the run directory's side file as it is described; the record
    // keeps its digest, counts and the first unusable keys (issue 13: flat in keys).
    let stem = format!("keys-{}-{}", cx.step.section.key(), cx.step.index);
    let mut list =
        KeyListWriter::create(&cx.run.run_dir, &stem).map_err(|e| Failed::step(e.to_string()))?;
    let keys = cx.keys;
    let mut probed = 0u64;
    let module = keys
        .probe_into(&module, u64::from(token.slot.get()), &pin, &mut |object| {
            list.push(object)?;
            probed += 1;
            if probed.is_multiple_of(PROGRESS_EVERY) {
                cx.progress(probed, None, format!("{probed} objects probed"));
            }
            Ok(())
        })
        .map_err(|e| Failed::step(e.to_string()))?;
    let summary = list.finish().map_err(|e| Failed::step(e.to_string()))?;
    let totals = summary.totals;
    let output = ProbeOutput {
        token: token_id.clone(),
        inventory: Inventory {
            module,
            slot: u64::from(token.slot.get()),
            objects: Vec::new(),
            file: summary.file,
            totals: Some(totals),
            counts: summary.counts,
        },
    };
    let (objects, keys) = (totals.objects, totals.keys);
    if totals.unusable > 0 {
        let more = totals.unusable - summary.unusable.len() as u64;
        let more = match more {
            0 => String::new(),
            n => format!("; and {n} more (every one in the run's `{stem}` key list)"),
        };
        return Err(Failed::with(
            format!(
                "{} of {keys} keys do not work: {}{more}",
                totals.unusable,
                summary.unusable.join("; ")
            ),
            output,
        ));
    }
    Ok(Done::new(format!(
        "{objects} objects, {keys} keys; every exercised key works"
    ))
    .with(output))
}

fn check(step: &ProbeKeysStep, cx: &CheckContext<'_>) -> CheckReport {
    let (token_id, module) = (&step.token, step.module.as_ref());
    match cx.host.pkcs11_module(module.map(PathBuf::as_path)) {
        Ok(m) => CheckReport::CannotSimulate(format!(
            "would log in to slot {} through `{}` and exercise every key; not done in a dry run, which does not read PINs",
            cx.plan.tokens[token_id].slot,
            m.display()
        )),
        Err(e) => CheckReport::Blocked(e.to_string()),
    }
}
