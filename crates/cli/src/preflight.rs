//! The preflight of `run` and `check` (design rule 9), composed from its three owners: who
//! may write what a run trusts (the engine), what the step kinds need of the host, and the
//! report-signing key. The signing key is looked at before the PINs, so nobody types a PIN
//! for a run a missing key refuses anyway.

use mkplan_engine::ports::Ports;
use mkplan_engine::ports::operator::Operator;
use mkplan_engine::preflight::{Depth, Preflight, Scope, trusted_files};
use mkplan_plan::Plan;
use mkplan_report::sign::ReportSigner;

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
    let daemon_ok = mkplan_steps::preflight::host(&mut p, plan, &*ports.host);
    let signer = mkplan_report::preflight::signing(&mut p, plan, ports, operator, depth);
    if !scope.cancel.requested() {
        mkplan_steps::preflight::pins(
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
    p.later = mkplan_steps::preflight::later(plan);
    (p, signer)
}
