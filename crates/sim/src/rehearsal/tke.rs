//! The simulated TKE operator: does a checkpoint's `tke:` action on the simulated adapters,
//! then approves as the allowed approvers (journaled with the method `rehearsal`). It reads
//! the registers as mkplan does, through the host port, so it sees what a run sees.

use std::path::PathBuf;
use std::sync::Arc;

use super::faults::{OperatorFaults, allows};
use crate::cca::{MkType, Mkvp};
use crate::{TkeAction, TkeRequest};
use mkplan_engine::events::StepRef;
use mkplan_engine::ports::host::HostView;
use mkplan_engine::ports::tke::CheckpointActor;
use mkplan_engine::record::wk::NewState;
use mkplan_plan::model::{Apqn, Checkpoint, Plan, Step, TkeAction as PlanTke, Token, Wkvp};

pub struct SimulatedTke {
    pub(super) root: PathBuf,
    pub(super) faults: OperatorFaults,
    /// The simulated host as mkplan reads it.
    pub(super) host: Arc<dyn HostView>,
}

impl SimulatedTke {
    /// The APQN's current WKVP and its committed new one (first 16 bytes), as sysfs shows.
    fn registers(&self, apqn: Apqn) -> Option<([u8; 16], Option<[u8; 16]>)> {
        let status = self.host.read_apqn(apqn).ok()?;
        let first16 = |vp: [u8; 32]| -> [u8; 16] { vp[..16].try_into().expect("16 of 32 bytes") };
        let cur = status.cur.vp.map(first16)?;
        let committed = (status.new.state == NewState::Committed)
            .then(|| status.new.vp.map(first16))
            .flatten();
        Some((cur, committed))
    }
}

impl SimulatedTke {
    /// CCA has no commit: the plan's `commit` is the TKE's load of the new MK's last key
    /// part (NEW full), `activate` its set (NEW → CUR, CUR → OLD). Each MK type of the
    /// token, on each of its APQNs; work already done (a resumed run) is not redone.
    fn act_on_cca(&self, tokens: &[&Token], action: Option<&PlanTke>) -> Result<(), String> {
        let action = match action {
            Some(PlanTke::Commit) => TkeAction::Load,
            Some(PlanTke::Activate) => TkeAction::Activate,
            Some(PlanTke::Other(_)) | None => return Ok(()),
        };
        let state = crate::state::load(&self.root).map_err(|e| e.to_string())?;
        for token in tokens {
            for apqn in &token.apqns {
                let Some(queue) = state.cca_apqns.get(&apqn.lszcrypt()) else {
                    return Err(format!(
                        "APQN {apqn} of CCA token `{}` is not a simulated CCA APQN",
                        token.id
                    ));
                };
                let allowed = match action {
                    TkeAction::Load => allows(self.faults.commit_only_on.as_deref(), *apqn),
                    _ => allows(self.faults.activate_only_on.as_deref(), *apqn),
                };
                let mks: Vec<MkType> = token
                    .mks
                    .iter()
                    .filter(|(mk, pair)| {
                        let mk = MkType::parse(mk.key())
                            .expect("the plan's MK types are the simulator's");
                        let registers = queue.mk(mk);
                        let new = Mkvp::new(*pair.new.bytes());
                        let set = registers.cur.valid_vp() == Some(new);
                        let loaded = registers.new.full_vp() == Some(new);
                        !(set || (action == TkeAction::Load && loaded))
                    })
                    .filter_map(|(mk, _)| MkType::parse(mk.key()))
                    .collect();
                if mks.is_empty() || !allowed {
                    continue;
                }
                let request = TkeRequest {
                    apqn: Some(*apqn),
                    mks,
                    // Fault: only a first key part is loaded; NEW stays partial.
                    partial: action == TkeAction::Load && self.faults.cca_partial_new,
                    ..TkeRequest::new(action)
                };
                crate::tke_request(&self.root, &request).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

impl CheckpointActor for SimulatedTke {
    fn act(
        &self,
        plan: &Plan,
        step: &Step,
        checkpoint: &Checkpoint,
    ) -> Result<Vec<String>, String> {
        let position = StepRef::of(step).position();
        if self
            .faults
            .deny
            .iter()
            .any(|d| step.id.as_deref() == Some(d.as_str()) || *d == step.name || *d == position)
        {
            return Ok(Vec::new());
        }
        let tokens: Vec<_> = match &checkpoint.until {
            Some(until) => plan.tokens.get(until.check.token()).into_iter().collect(),
            None => plan.tokens.values().collect(),
        };
        let act = |action, apqn, wkvp| {
            crate::tke(&self.root, action, Some(apqn), wkvp).map_err(|e| e.to_string())
        };
        let (cca, tokens): (Vec<&Token>, Vec<&Token>) =
            tokens.into_iter().partition(|t| t.is_cca());
        self.act_on_cca(&cca, checkpoint.tke.as_ref())?;
        match &checkpoint.tke {
            Some(PlanTke::Commit) => {
                for token in &tokens {
                    let new = if self.faults.wrong_new_wkvp {
                        Wkvp::parse("0x5eed5eed5eed5eed5eed5eed5eed5eed")
                            .map(|(w, _)| w)
                            .ok()
                    } else {
                        Some(token.wkvp_new)
                    };
                    for apqn in &token.apqns {
                        // A resumed run may replay a checkpoint whose TKE work is done.
                        if self.registers(*apqn).is_some_and(|(cur, committed)| {
                            cur == token.wkvp_new.bytes()[..]
                                || new.is_some_and(|n| committed == Some(*n.bytes()))
                        }) {
                            continue;
                        }
                        act(TkeAction::Load, *apqn, new)?;
                        if allows(self.faults.commit_only_on.as_deref(), *apqn) {
                            act(TkeAction::Commit, *apqn, None)?;
                        }
                    }
                }
            }
            Some(PlanTke::Activate) => {
                for token in &tokens {
                    for apqn in &token.apqns {
                        let done = self
                            .registers(*apqn)
                            .is_some_and(|(cur, _)| cur == token.wkvp_new.bytes()[..]);
                        if !done && allows(self.faults.activate_only_on.as_deref(), *apqn) {
                            act(TkeAction::Activate, *apqn, None)?;
                        }
                    }
                }
            }
            Some(PlanTke::Other(_)) | None => {}
        }
        let needed = checkpoint.approvals as usize;
        Ok(if checkpoint.approvers.is_empty() {
            (1..=needed).map(|i| format!("rehearsal-{i}")).collect()
        } else {
            checkpoint.approvers.iter().take(needed).cloned().collect()
        })
    }
}
