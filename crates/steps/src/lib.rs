//! Step kinds: one file each, implementing the engine's step contract
//! ([`mkplan_engine::step`]). A step has a read-only `check` for the dry run and a `run`
//! that may change the system; only the executor in run mode calls `run`. What several
//! kinds share lives in `guards` (and `units`, for `stop` and `start`); no kind's file
//! imports another's. [`registry::Registry`] maps each kind to its file.

mod assert_mk;
mod assert_wk;
mod backup;
mod checkpoint;
mod command;
mod expected_mkvps;
mod expected_wkvp;
pub mod guards;
mod kind;
pub mod migrate;
mod mk_change;
pub mod preflight;
mod probe_keys;
pub mod registry;
mod restore;
mod start;
mod stop;
mod units;

pub use checkpoint::{shown_sha256, shown_text, shown_text_of};
