//! The ports: what the engine and the steps need of the host, as traits and the types they
//! exchange. The host adapters implement them for a real Linux on Z; a rehearsal plugs the
//! simulator's pieces in beside them. Nothing here touches the system.

pub mod root;
