//! What steps record in the journal, as types: one record per step kind, and the facts they
//! hold (APQN states, key inventories, token users, a program's end, a backup). Steps write
//! them; later steps, `resume` and the report read them back typed, never by key.
//!
//! In the journal a record is the `data` of a step's outcome, [`StepData`]: kept there as
//! the JSON it was written as, so that verifying the hash chain re-serializes every line
//! byte for byte, and decoded once, by the step's kind, when the run is replayed. The
//! records read what every mkplan so far wrote (`tests/compat.rs` holds such journals):
//! adding a field, or making one optional, keeps the journal at version 1; changing what a
//! field means needs a new version and a decoder for the old one.

pub mod backup;
pub mod checkpoint;
pub mod command;
pub mod end_state;
pub mod migrate;
pub mod mk;
pub mod mk_change;
pub mod origin;
pub mod pkcscca;
pub mod probe;
pub mod services;
pub mod users;
pub mod wk;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::backup::{BackupOutput, RestoreOutput};
use crate::record::checkpoint::CheckpointOutput;
use crate::record::command::{CommandOutput, ExpectedMkvpsOutput, ExpectedWkvpOutput};
use crate::record::migrate::MigrateOutput;
use crate::record::mk::MkTable;
use crate::record::mk_change::{CancelOutput, FinalizeOutput, ReencipherOutput};
use crate::record::probe::ProbeOutput;
use crate::record::services::{StartOutput, StopOutput};
use crate::record::wk::WkTable;
use mkplan_plan::model::KindName;

/// A step's record, by kind (boxed: some records are large, most steps have none).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StepOutput {
    /// No record: a step that had nothing to record, one that was denied, accepted by a
    /// decision, or whose `when` could not be evaluated.
    #[default]
    None,
    AssertWk(Box<WkTable>),
    Checkpoint(Box<CheckpointOutput>),
    Stop(Box<StopOutput>),
    Start(Box<StartOutput>),
    Backup(Box<BackupOutput>),
    Restore(Box<RestoreOutput>),
    Migrate(Box<MigrateOutput>),
    SetExpectedWkvp(Box<ExpectedWkvpOutput>),
    SetExpectedMkvps(Box<ExpectedMkvpsOutput>),
    AssertMk(Box<MkTable>),
    ProbeKeys(Box<ProbeOutput>),
    Command(Box<CommandOutput>),
    MkReencipher(Box<ReencipherOutput>),
    MkFinalize(Box<FinalizeOutput>),
    MkCancel(Box<CancelOutput>),
    /// A record this mkplan cannot read (why): guards take it as the worst case, the report
    /// as missing.
    Unreadable(String),
}

/// A record type, and how to find it in a [`StepOutput`].
pub trait Record: Sized {
    /// The kind that writes it.
    const KIND: KindName;
    fn of(output: &StepOutput) -> Option<&Self>;
}

macro_rules! records {
    ($($variant:ident($record:ty) = $kind:ident),* $(,)?) => {
        $(
            impl Record for $record {
                const KIND: KindName = KindName::$kind;
                fn of(output: &StepOutput) -> Option<&Self> {
                    match output {
                        StepOutput::$variant(record) => Some(&**record),
                        _ => None,
                    }
                }
            }

            impl From<$record> for StepOutput {
                fn from(record: $record) -> Self {
                    StepOutput::$variant(Box::new(record))
                }
            }
        )*

        impl StepOutput {
            /// The record of a step of `kind`, from the JSON it was written as.
            fn decode(kind: KindName, data: &Value) -> Self {
                if data.is_null() {
                    return StepOutput::None;
                }
                let decoded = match kind {
                    $(KindName::$kind => serde_json::from_value(data.clone()).map(|r| StepOutput::$variant(Box::new(r))),)*
                };
                decoded.unwrap_or_else(|e| StepOutput::Unreadable(e.to_string()))
            }

            fn to_json(&self) -> Value {
                let encoded = match self {
                    StepOutput::None | StepOutput::Unreadable(_) => return Value::Null,
                    $(StepOutput::$variant(record) => serde_json::to_value(record),)*
                };
                encoded.expect("step records serialize")
            }
        }
    };
}

records!(
    AssertWk(WkTable) = AssertWk,
    Checkpoint(CheckpointOutput) = Checkpoint,
    Stop(StopOutput) = Stop,
    Start(StartOutput) = Start,
    Backup(BackupOutput) = Backup,
    Restore(RestoreOutput) = Restore,
    Migrate(MigrateOutput) = Migrate,
    SetExpectedWkvp(ExpectedWkvpOutput) = SetExpectedWkvp,
    SetExpectedMkvps(ExpectedMkvpsOutput) = SetExpectedMkvps,
    AssertMk(MkTable) = AssertMk,
    ProbeKeys(ProbeOutput) = ProbeKeys,
    Command(CommandOutput) = Command,
    MkReencipher(ReencipherOutput) = MkReencipher,
    MkFinalize(FinalizeOutput) = MkFinalize,
    MkCancel(CancelOutput) = MkCancel,
);

/// A step's record as the journal holds it (`data` of `step_succeeded`/`step_failed`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepData(Value);

impl StepData {
    pub fn encode(output: &StepOutput) -> Self {
        Self(output.to_json())
    }

    /// The record a step of `kind` wrote.
    pub fn decode(&self, kind: KindName) -> StepOutput {
        StepOutput::decode(kind, &self.0)
    }

    /// A record that belongs to no step kind (the run's end state).
    pub fn of<T: Serialize>(record: &T) -> Self {
        Self(serde_json::to_value(record).expect("records serialize"))
    }

    /// Such a record read back; an error when this mkplan cannot read its shape.
    pub fn read<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.0)
    }

    /// Data as a journal held it, e.g. one a test writes by hand.
    pub fn from_json(value: Value) -> Self {
        Self(value)
    }
}
