//! `probe_keys`: list every object of the token through PKCS#11 and prove each key works
//! (encrypt, sign). The inventory is journaled; the report compares the probe before the
//! migration with the one after.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::engine::record::probe::Usability;
use crate::plan::model::TokenId;
use crate::steps::{CheckContext, CheckReport, RunContext, StepError, StepResult, StepSuccess};

/// Where distributions install openCryptoki's PKCS#11 library.
const DEFAULT_MODULES: &[&str] = &[
    "/usr/lib/s390x-linux-gnu/opencryptoki/libopencryptoki.so",
    "/usr/lib64/opencryptoki/libopencryptoki.so",
    "/usr/lib/x86_64-linux-gnu/opencryptoki/libopencryptoki.so",
    "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so",
    "/usr/lib/opencryptoki/libopencryptoki.so",
];

pub fn module_path(
    cx_root: &crate::engine::ports::root::HostRoot,
    given: Option<&PathBuf>,
) -> Result<PathBuf, String> {
    if let Some(module) = given {
        return Ok(cx_root.path(module));
    }
    DEFAULT_MODULES
        .iter()
        .map(|m| cx_root.path(Path::new(m)))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("openCryptoki's libopencryptoki.so is not in any usual place ({}); name it with `module:`", DEFAULT_MODULES.join(", ")))
}

pub fn run(token_id: &TokenId, module: Option<&PathBuf>, cx: &mut RunContext<'_>) -> StepResult {
    let token = &cx.plan.tokens[token_id];
    let module = module_path(&cx.host.root, module).map_err(StepError::failed)?;
    let pin = cx
        .token_pin(token)
        .map_err(|e| match cx.cancel.requested() {
            // Ctrl-C at the PIN prompt: nothing was probed.
            true => StepError::Interrupted,
            false => StepError::failed(e),
        })?;
    let inventory = cx
        .host
        .prober
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
    match module_path(&cx.host.root, module) {
        Ok(m) => CheckReport::CannotSimulate(format!(
            "would log in to slot {} through `{}` and exercise every key; not done in a dry run, which does not read PINs",
            cx.plan.tokens[token_id].slot,
            m.display()
        )),
        Err(e) => CheckReport::Blocked(e),
    }
}
