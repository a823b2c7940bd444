//! Someone who acts at a checkpoint instead of people.

use mkplan_plan::model::{Checkpoint, Plan, Step};

/// The simulated TKE operator of `mkplan rehearse`, which performs the checkpoint's `tke:`
/// action on the simulated adapters and returns who approves (journaled with the method
/// `rehearsal`). Real runs have none: people do the TKE work and approve.
pub trait CheckpointActor: Send + Sync {
    fn act(&self, plan: &Plan, step: &Step, checkpoint: &Checkpoint)
    -> Result<Vec<String>, String>;
}
