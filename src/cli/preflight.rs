//! The preflight of `run` and `check` (design rule 9), composed from its three owners: who
//! may write what a run trusts (the engine), what the step kinds need of the host, and the
//! report-signing key. The signing key is looked at before the PINs, so nobody types a PIN
//! for a run a missing key refuses anyway.

use crate::engine::ports::Ports;
use crate::engine::ports::operator::Operator;
use crate::engine::preflight::{Depth, Preflight, Scope, trusted_files};
use crate::plan::Plan;
use crate::report::sign::ReportSigner;

/// Runs the preflight of `plan` on the ports' host: what it found, and (for `run`) the
/// report signer it proved.
pub fn preflight(
    plan: &Plan,
    ports: &Ports,
    operator: &dyn Operator,
    depth: Depth,
    scope: &Scope<'_>,
) -> (Preflight, Option<ReportSigner>) {
    let mut p = Preflight::default();
    trusted_files(&mut p, scope);
    let daemon_ok = crate::steps::preflight::host(&mut p, plan, &*ports.host);
    let signer = crate::report::preflight::signing(&mut p, plan, ports, operator, depth);
    if !scope.cancel.requested() {
        crate::steps::preflight::pins(
            &mut p,
            plan,
            ports,
            operator,
            depth,
            daemon_ok,
            scope.cancel,
        );
    }
    // Whatever was waiting when the stop came (a PIN prompt, the one login), the run stops.
    p.interrupted = scope.cancel.requested();
    p.later = crate::steps::preflight::later(plan);
    (p, signer)
}
