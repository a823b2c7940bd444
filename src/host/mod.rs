//! The only code that touches the system. Every path is resolved under a
//! [`HostRoot`](crate::engine::ports::root::HostRoot), so tests and rehearsal run the same
//! code against a prepared tree.

pub mod archive;
pub mod pin;
pub mod pkcs11;
pub mod process;
pub mod procscan;
pub mod slotd;
pub mod tools;
pub mod zcrypt;
