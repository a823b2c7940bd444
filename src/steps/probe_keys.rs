//! `probe_keys`: list every object of the token through PKCS#11 and prove each key works
//! (encrypt, sign). The inventory is journaled; the report compares the probe before the
//! migration with the one after.

use std::path::PathBuf;

use serde_json::json;

use crate::engine::record::probe::Usability;
use crate::engine::step::{
    CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess,
};
use crate::plan::model::TokenId;

pub fn run(token_id: &TokenId, module: Option<&PathBuf>, cx: &mut RunContext<'_>) -> StepResult {
    let token = &cx.plan.tokens[token_id];
    let module = cx
        .host
        .pkcs11_module(module.map(PathBuf::as_path))
        .map_err(|e| StepError::failed(e.to_string()))?;
    let pin = cx
        .token_pin(token)
        .map_err(|e| match cx.cancel.requested() {
            // Ctrl-C at the PIN prompt: nothing was probed.
            true => StepError::Interrupted,
            false => StepError::failed(e),
        })?;
    let inventory = cx
        .keys
        .probe(&module, u64::from(token.slot.get()), &pin)
        .map_err(StepError::failed)?;
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
    let data = json!({ "token": token_id.as_str(), "inventory": inventory });
    if !unusable.is_empty() {
        return Err(StepError::failed_with(
            format!(
                "{} of {keys} keys do not work: {}",
                unusable.len(),
                unusable.join("; ")
            ),
            data,
        ));
    }
    Ok(StepSuccess::new(format!(
        "{} objects, {keys} keys; every exercised key works",
        inventory.objects.len()
    ))
    .with_data(data))
}

pub fn check(token_id: &TokenId, module: Option<&PathBuf>, cx: &CheckContext<'_>) -> CheckReport {
    match cx.host.pkcs11_module(module.map(PathBuf::as_path)) {
        Ok(m) => CheckReport::CannotSimulate(format!(
            "would log in to slot {} through `{}` and exercise every key; not done in a dry run, which does not read PINs",
            cx.plan.tokens[token_id].slot,
            m.display()
        )),
        Err(e) => CheckReport::Blocked(e.to_string()),
    }
}
