//! `probe_keys`: list every object of the token through PKCS#11 and prove each key works
//! (encrypt, sign). The inventory is journaled; the report compares the probe before the
//! migration with the one after.

use std::path::PathBuf;

use crate::kind::{Done, Failed, Kind, KindResult};
use mkplan_engine::record::probe::{ProbeOutput, Usability};
use mkplan_engine::step::{CheckContext, CheckReport, RunContext};
use mkplan_plan::model::ProbeKeysStep;

/// `probe_keys`.
pub(crate) struct ProbeKeysKind;

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
    let inventory = cx
        .keys
        .probe(&module, u64::from(token.slot.get()), &pin)
        .map_err(|e| Failed::step(e.to_string()))?;
    let keys = inventory
        .objects
        .iter()
        .filter(|o| o.key_type.is_some())
        .count();
    let unusable: Vec<String> = inventory
        .objects
        .iter()
        .filter_map(|o| match &o.usable {
            Usability::Unusable(reason) => {
                Some(format!("{} `{}` (id {}): {reason}", o.class, o.label, o.id))
            }
            _ => None,
        })
        .collect();
    let objects = inventory.objects.len();
    let output = ProbeOutput {
        token: token_id.clone(),
        inventory,
    };
    if !unusable.is_empty() {
        return Err(Failed::with(
            format!(
                "{} of {keys} keys do not work: {}",
                unusable.len(),
                unusable.join("; ")
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
