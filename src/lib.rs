//! mkplan: a declarative, journaled plan executor for HSM master-key changes on Linux on
//! IBM Z. The binary is a thin shell around [`cli::main`].

// First: its `print!`/`println!`/`eprint!`/`eprintln!` replace std's in every module below.
#[macro_use]
mod stdio;

pub mod cli;
pub mod engine;
pub mod host;
pub mod plan;
pub mod report;
pub mod sim;
pub mod steps;
