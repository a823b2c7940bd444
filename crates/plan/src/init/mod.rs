//! `mkplan init`'s language side, with no I/O: the inventory a host reader fills, the
//! decisions taken from it ([`draft`]), the plan text written from them ([`write`]) and the
//! comparison of an existing plan with the host ([`drift`]).

mod backup;
pub mod draft;
pub mod drift;
pub mod inventory;
mod procedure;
mod token;
pub mod write;

pub use backup::{BackupChoice, bytes};
pub use draft::{Choice, Draft, InitError, Procedure, draft};
pub use drift::drift;
pub use inventory::Inventory;
pub use procedure::suggest;
pub use write::{ChangeRecord, render};

#[cfg(test)]
mod tests;
