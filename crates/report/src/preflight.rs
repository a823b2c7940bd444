//! The preflight's look at the report-signing key: readable (`check`), and proven to sign
//! (`run`), before anything is stopped.

use std::sync::Arc;

use crate::sign::{ReportSigner, SigningPorts, read_key_file};
use mkplan_engine::ports::Ports;
use mkplan_engine::ports::host::HostView;
use mkplan_engine::ports::operator::Operator;
use mkplan_engine::preflight::{Depth, Preflight};
use mkplan_plan::model::{PinSource, Pkcs11KeyRef, Plan, SignKey};

/// The report-signing key: readable (`check`), and signing (`run`).
pub fn signing(
    p: &mut Preflight,
    plan: &Plan,
    ports: &Ports,
    operator: &dyn Operator,
    depth: Depth,
) -> Option<ReportSigner> {
    let host: &dyn HostView = &*ports.host;
    let what = "report-signing key";
    // Nobody types a PIN for a run that is refused anyway: then it is only looked at.
    let prompted = matches!(
        &plan.report.sign,
        Some(SignKey::Pkcs11 { pin, .. }) if *pin == PinSource::Prompt
    );
    let ask = !prompted || p.problems.is_empty();
    if depth == Depth::Run && ask {
        let signing = SigningPorts {
            root: host.root(),
            pins: &*ports.pins,
            keys: Arc::clone(&ports.signing),
            operator,
        };
        let proven = ReportSigner::for_plan(plan, &signing).and_then(|signer| {
            let probe = b"mkplan preflight: the report-signing key signs";
            let signature = signer.sign(probe)?;
            signer.public().verify(probe, &signature)?;
            Ok(signer)
        });
        match proven {
            Ok(signer) => {
                p.hold(what, describe_signer(&signer));
                return Some(signer);
            }
            Err(e) => p.problem(what, e.to_string()),
        }
        return None;
    }
    match &plan.report.sign {
        None => p.hold(what, "none in the plan: an ephemeral key (integrity only)"),
        Some(SignKey::File(path)) => match read_key_file(&host.root().path(path), path) {
            Ok(key) => p.hold(
                what,
                format!(
                    "key file `{}` ({})",
                    path.display(),
                    key.algorithm().describe()
                ),
            ),
            Err(e) => p.problem(what, e.to_string()),
        },
        Some(SignKey::Pkcs11 {
            module, slot, key, ..
        }) => {
            let key = match key {
                Pkcs11KeyRef::Label(label) => format!("label `{label}`"),
                Pkcs11KeyRef::Id(id) => format!("id {}", hex::encode(id)),
            };
            let shown = format!("{key} in slot {slot} of `{}`", module.display());
            if host.root().path(module).is_file() {
                p.hold(
                    what,
                    format!("PKCS#11 key {shown} (its PIN is read and the key used by `run`)"),
                );
            } else {
                p.problem(
                    what,
                    format!("the PKCS#11 module of key {shown} does not exist"),
                );
            }
        }
    }
    None
}

fn describe_signer(signer: &ReportSigner) -> String {
    let facts = signer.facts();
    match &facts.key {
        Some(key) => format!("{} `{key}` ({}), signs", facts.method, facts.algorithm),
        None => format!("an ephemeral key ({}): integrity only", facts.algorithm),
    }
}
