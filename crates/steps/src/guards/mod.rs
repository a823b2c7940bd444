//! Live guards that several step kinds share, each answering from the host and the whole
//! journal, never from one attempt alone. No step file imports another: what two kinds
//! share lives here.

pub mod backup;
pub mod resume;
pub mod tools;
pub mod users;
pub mod wk;
