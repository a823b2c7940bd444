//! What steps record in the journal, as types: the step records and the facts they hold
//! (APQN states, key inventories, token users, a program's end, a backup). Steps write
//! them, and later steps, `resume` and the report read them back.

pub mod backup;
pub mod command;
pub mod probe;
pub mod users;
pub mod wk;
