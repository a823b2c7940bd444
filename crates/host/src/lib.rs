//! The only code that touches the system. Every path is resolved under a
//! [`HostRoot`](mkplan_engine::ports::root::HostRoot), so tests and rehearsal run the same
//! code against a prepared tree.

pub mod archive;
mod fsutil;
pub mod inventory;
pub mod linux;
pub mod pin;
pub mod pkcs11;
pub mod pkcscca;
pub mod process;
pub mod procscan;
mod pty;
mod services;
pub mod signing;
pub mod slotd;
pub mod store;
pub mod terminal;
pub mod tools;
pub mod zcrypt;
