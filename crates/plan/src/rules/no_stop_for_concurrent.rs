//! A concurrent plan needs no `stop`: a warning that says why it may still want one.

use crate::diagnostic::Diagnostic;
use crate::model::{Plan, StepKind};
use crate::rules::{Rule, kind_pointer, operations, warning};

pub struct NoStopForConcurrent;

impl Rule for NoStopForConcurrent {
    fn id(&self) -> &'static str {
        "no-stop-for-concurrent"
    }

    fn why(&self) -> &'static str {
        "pkcshsm_mk_change: pkcsslotd tells every running process, which re-enciphers its session objects itself"
    }

    fn check(&self, plan: &Plan) -> Vec<Diagnostic> {
        if operations(plan).next().is_none() {
            return Vec::new();
        }
        plan.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Stop(group) => Some((s, group)),
                _ => None,
            })
            .map(|(step, group)| {
                warning(self, format!("`{}` stops `{group}`, but the concurrent change needs no downtime: applications keep using their keys while pkcshsm_mk_change re-enciphers them", step.name))
                    .with_pointer(kind_pointer(step))
                    .at_key()
                    .with_note("stop anyway an application that cannot take part: one built with openCryptoki older than 3.21 or linked statically (it never receives pkcsslotd's events), or one that keeps key blobs outside the token; say so in the step's name")
                    .with_hint("remove the `stop`/`start` pair, or keep it for such applications")
            })
            .collect()
    }
}
