//! The faults a rehearsal injects: the simulated host's own (a tool that fails at a key, a
//! unit that will not stop, …) and the simulated TKE operator's (commit on one APQN only,
//! a wrong new WK, a denied checkpoint, a wrong PIN).

use serde::{Deserialize, Serialize};

use crate::Fault;
use mkplan_plan::model::Apqn;

/// What the simulated TKE operator does differently from the plan.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct OperatorFaults {
    /// lszcrypt notation, validated when parsed.
    pub(super) commit_only_on: Option<String>,
    pub(super) wrong_new_wkvp: bool,
    pub(super) activate_only_on: Option<String>,
    pub(super) deny: Vec<String>,
    /// The PIN sources give a PIN the simulated tokens refuse.
    #[serde(default)]
    pub(super) wrong_pin: bool,
    /// The SO PIN sources give an SO PIN the simulated CCA tokens refuse.
    #[serde(default)]
    pub(super) wrong_so_pin: bool,
    /// The TKE loads only a first key part of each new CCA MK (NEW partial), so the set
    /// cannot happen.
    #[serde(default)]
    pub(super) cca_partial_new: bool,
}

/// Every fault of one rehearsal.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    pub(super) host: Vec<Fault>,
    pub(super) operator: OperatorFaults,
}

fn apqn(text: &str) -> Result<Apqn, String> {
    Apqn::from_plan_value(&serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("`{text}` is not an APQN in lszcrypt notation (e.g. 0a.0011)"))
}

/// Whether a fault that names one APQN lets the action happen on `target`.
pub(super) fn allows(only: Option<&str>, target: Apqn) -> bool {
    only.is_none_or(|text| apqn(text).is_ok_and(|only| only == target))
}

impl Faults {
    /// `--fault NAME[=ARG]`, each one.
    pub fn parse(specs: &[String]) -> Result<Self, String> {
        let mut faults = Faults::default();
        let operator = &mut faults.operator;
        for spec in specs {
            let (name, arg) = match spec.split_once('=') {
                Some((n, a)) => (n, Some(a)),
                None => (spec.as_str(), None),
            };
            match (name, arg) {
                ("commit-only-on", Some(a)) => operator.commit_only_on = Some(apqn(a)?.lszcrypt()),
                ("activate-only-on", Some(a)) => {
                    operator.activate_only_on = Some(apqn(a)?.lszcrypt())
                }
                ("wrong-new-wkvp", None) => operator.wrong_new_wkvp = true,
                ("wrong-pin", None) => operator.wrong_pin = true,
                ("wrong-so-pin", None) => operator.wrong_so_pin = true,
                ("cca-partial-new", None) => operator.cca_partial_new = true,
                ("deny", Some(a)) => operator.deny.push(a.to_owned()),
                _ => faults.host.push(Fault::parse(name, arg)?),
            }
        }
        Ok(faults)
    }
}
